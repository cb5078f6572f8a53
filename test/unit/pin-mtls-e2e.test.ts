/**
 * End to end over real TLS (issue 16): a simulated device with its own key and
 * certificate (provisioned through its CSR and the fleet CA) reaches serve's
 * mutual-TLS broker; then, pinned by AT+OTATLS to a CA that is valid but not
 * the server's issuer (the fleet CA), every connection is refused by the Node
 * adapter with TLS_PIN_MISMATCH and the audit log holds event 10 with reason
 * 16 (AT+LOG shows it); pinned to the server's CA it connects again.
 */
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VirtualClock } from "../../hal/mock/clock";
import { nodeRandom } from "../../hal/node/random";
import { NodeNetwork } from "../../hal/node/socket";
import type { ConsoleRuntime } from "../../src/at/start";
import { Reason } from "../../src/errors";
import { AuditEvent } from "../../src/store/audit";
import { VirtualDevice } from "../../targets/sim/device";
import { agentFirmware } from "../../targets/sim/firmware";
import { smallFlashMap } from "../../targets/sim/flashmap";
import { initCa } from "../../tools/ca/ca";
import { provisionSimDevice } from "../../tools/ca/provision";
import { driveClock } from "../../tools/demo/rig";
import { HARDWARE, testKey } from "../../tools/demo/firmware";
import { startServe, type ServeHandle } from "../../tools/serve/server";
import { installFactoryImage } from "../../tools/sim/fleet";

let dir: string;
let serve: ServeHandle;
const logs: string[] = [];
const fingerprint = (pemPath: string) => createHash("sha256").update(new X509Certificate(readFileSync(pemPath)).raw).digest("hex");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-pin-e2e-"));
  initCa(join(dir, "fleet"), "fleet CA", 30);
  serve = await startServe({
    releasesDir: dir,
    host: "127.0.0.1",
    mqttPort: 0,
    httpsPort: 0,
    insecurePlaintext: false,
    clientCa: join(dir, "fleet", "ca.pem"),
    heartbeatIntervalSec: 10,
    reportsPath: join(dir, "reports.jsonl"),
    log: (l) => logs.push(l),
  });
});
afterAll(async () => {
  await serve?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("CA pin and device identity over real TLS", () => {
  it("connects with its certificate; a pin of another valid CA is refused with reason 16 in the audit log; the server's CA pin connects", async () => {
    const ca = readFileSync(serve.caPath!, "utf8");
    const clock = new VirtualClock();
    const network = new NodeNetwork({ ca, connectTimeoutMs: 5000 });
    const runtimes: ConsoleRuntime[] = [];
    const device = new VirtualDevice({
      map: smallFlashMap(),
      clock,
      network,
      random: nodeRandom,
      firmware: agentFirmware({
        config: {
          deviceId: "pin-0001",
          hardwareId: HARDWARE,
          server: { host: "127.0.0.1", port: serve.mqttPort!, tls: true, ca },
          trustedKeys: [testKey().publicKey],
          heartbeatIntervalS: 10,
          backoffInitialMs: 500,
          backoffMaxMs: 2000,
          seed: 5,
        },
        console: { startMode: "command" },
        onBoot: (r) => runtimes.push(r),
      }),
    });
    installFactoryImage(device);
    provisionSimDevice(device, "pin-0001", join(dir, "fleet"));
    const stop = driveClock(clock, 1);
    const at = async (line: string) => {
      device.serial.send(line + "\r");
      await new Promise((r) => setTimeout(r, 60));
      return device.serial.drainText();
    };
    const audit = () => runtimes[runtimes.length - 1].audit;
    const pinRefusals = () => audit().read(audit().first, 64).filter((e) => e.event === AuditEvent.TLS_PIN_REFUSED).map((e) => e.reason);
    try {
      device.run(0);
      await until("the first heartbeat, over mutual TLS", () => serve.stats().heartbeats > 0);
      expect(logs.filter((l) => l.startsWith("refused client"))).toEqual([]);
      expect(await at("AT+E=OFF")).toContain("+OK");
      // A valid CA, but not the one above the server's certificate.
      expect(await at(`AT+OTATLS=ON,${fingerprint(join(dir, "fleet", "ca.pem"))}`)).toBe("\r\n+OK=pending; AT+S saves\r\n");
      expect(await at("AT+S")).toBe("\r\n+OK=saved; AT+Z applies\r\n");
      await at("AT+Z");
      await until("the pin refusal in the audit log", () => runtimes.length >= 2 && pinRefusals().length > 0);
      const heartbeats = serve.stats().heartbeats;
      await new Promise((r) => setTimeout(r, 1500));
      expect(serve.stats().heartbeats, "no heartbeat through a refused connection").toBe(heartbeats);
      expect(pinRefusals()).toEqual([Reason.TLS_PIN_MISMATCH]);
      expect(await at("AT+LOG=0,16")).toMatch(/\+LOG=\d+,\d+,\d+,10,[^,]+,[^,]+,16\r\n/);
      // The server's own CA: connects again.
      await at(`AT+OTATLS=ON,${fingerprint(serve.caPath!)}`);
      await at("AT+S");
      await at("AT+Z");
      await until("heartbeats again", () => serve.stats().heartbeats > heartbeats);
    } finally {
      stop();
      network.destroyAll();
    }
  }, 60_000);
});
