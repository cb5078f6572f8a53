/**
 * Factory provisioning of a simulated device's identity, through the same
 * path an operator takes on a real one: the device makes its key from its
 * platform's Random and its CSR (src/store/identity.ts, what AT+CSR runs),
 * the fleet CA signs it (tools/ca/ca.ts, what `xs-ota ca sign` runs), the
 * device checks and stores the certificate (what AT+CERT=END runs). Done on
 * the powered-off device's storage partition, as a provisioning station would
 * over the console before first boot.
 */
import { Reason, reasonName } from "../../src/errors";
import { DeviceIdentity } from "../../src/store/identity";
import { openStorage } from "../../src/store/layout";
import type { VirtualDevice } from "../../targets/sim/device";
import { signCsr } from "./ca";

/**
 * Give `device` a key and a certificate for `deviceId` from the CA in `caDir`
 * (kept when it already holds one for that id).
 * @throws Error when the storage has no identity space or the CA refuses.
 */
export function provisionSimDevice(device: VirtualDevice, deviceId: string, caDir: string, days = 30): void {
  const identity = new DeviceIdentity(openStorage(device.storage).identity, device.platform.random);
  if (identity.certificate()?.commonName === deviceId) return;
  identity.ensureKey();
  const issued = signCsr(caDir, identity.csr(deviceId), days);
  const r = identity.installCertificate(issued.der, deviceId);
  if (r !== Reason.OK) throw new Error(`provisioning ${deviceId}: the device refused its certificate (${reasonName(r)})`);
}
