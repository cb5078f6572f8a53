/**
 * A virtual device on real sockets, for the demo, the interop lane and the
 * fleet: the real agent on the simulated MCUboot device, its virtual clock
 * driven from real time (`speed` × faster), talking TLS to a real broker.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Network } from "../../hal/types";
import type { VirtualClock } from "../../hal/mock/clock";
import { nodeRandom } from "../../hal/node/random";
import { NodeNetwork } from "../../hal/node/socket";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { imageSignatureChecker } from "../../src/image/signature";
import type { Agent } from "../../src/agent/agent";
import type { AgentConfig } from "../../src/agent/config";
import type { SimRelease } from "../../targets/sim/cloud";
import { VirtualDevice } from "../../targets/sim/device";
import type { FlashMapSpec } from "../../targets/sim/flashmap";
import { agentFirmware } from "../../targets/sim/firmware";
import { provisionSimDevice } from "../ca/provision";
import type { SigningKey } from "../keys/signer";
import { HARDWARE, type BuiltImage } from "./firmware";

export interface RigDeviceOptions {
  readonly deviceId: string;
  readonly map: FlashMapSpec;
  readonly clock: VirtualClock;
  readonly key: SigningKey;
  readonly factory: BuiltImage;
  readonly server: { host: string; port: number; ca: string };
  /** Shared by a fleet; one per device by default. */
  readonly network?: Network;
  readonly config?: Partial<AgentConfig>;
  readonly log?: (line: string) => void;
  readonly seed?: number;
  /**
   * A fleet CA directory (`xs-ota ca init`): the device is given its own key
   * and a certificate from it before the first boot (tools/ca/provision.ts),
   * so it can reach a broker that requires mutual TLS.
   */
  readonly fleetCa?: string;
}

export interface RigDevice {
  readonly device: VirtualDevice;
  agent(): Agent | undefined;
}

export function rigDevice(o: RigDeviceOptions): RigDevice {
  let agent: Agent | undefined;
  const device = new VirtualDevice({
    map: o.map,
    clock: o.clock,
    seed: o.seed,
    network: o.network ?? new NodeNetwork({ ca: o.server.ca }),
    bootWatchdogMs: 8000,
    checkSignature: imageSignatureChecker(createKeyring([o.key.publicKey], softwareDigest)),
    random: nodeRandom,
  });
  device.firmware = agentFirmware({
    config: {
      deviceId: o.deviceId,
      hardwareId: HARDWARE,
      server: { host: o.server.host, port: o.server.port, tls: true, ca: o.server.ca },
      trustedKeys: [o.key.publicKey],
      heartbeatIntervalS: 10,
      trialDeadlineMs: 60_000,
      backoffInitialMs: 1000,
      backoffMaxMs: 10_000,
      seed: o.seed ?? 1,
      log: o.log,
      ...o.config,
    },
    onAgent: (a) => (agent = a),
  });
  device.program(0, o.factory.bytes);
  if (o.fleetCa) provisionSimDevice(device, o.deviceId, o.fleetCa);
  return { device, agent: () => agent };
}

/** Drive a virtual clock from real time; returns the stop function. */
export function driveClock(clock: VirtualClock, speed: number, tickMs = 10): () => void {
  const t = setInterval(() => clock.advance(tickMs * speed), tickMs);
  return () => clearInterval(t);
}

/** Put a release where `xs-ota serve` reads it: the envelope and its payload, named by the stream. */
export function publishRelease(dir: string, r: SimRelease): void {
  const stream = r.manifest.fetch.stream!;
  writeFileSync(join(dir, stream), r.payload);
  writeFileSync(join(dir, `${stream}.manifest`), r.envelope);
}

export interface ServerReport {
  deviceId: string;
  event: string;
  reason: number;
  reasonName: string;
  release?: string;
  target?: string;
  version: string;
}

/** The server's JSON-lines report log. */
export function readReports(path: string): ServerReport[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as ServerReport);
}

export const FINAL_EVENTS = Object.freeze(["committed", "rolled-back", "failed", "offer-refused", "aborted"]);
