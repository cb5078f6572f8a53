/**
 * A simulated world for agent tests: one virtual cloud on a mock network and
 * virtual devices running the real agent, all on one virtual clock.
 */
import { VirtualClock } from "../../hal/mock/clock";
import type { CpuModel } from "../../hal/mock/cpu";
import { MockNetwork } from "../../hal/mock/socket";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { imageSignatureChecker } from "../../src/image/signature";
import type { Agent } from "../../src/agent/agent";
import type { AgentConfig } from "../../src/agent/config";
import { VirtualCloud, type SimRelease } from "../../targets/sim/cloud";
import { VirtualDevice } from "../../targets/sim/device";
import { smallFlashMap, type FlashMapSpec } from "../../targets/sim/flashmap";
import { agentFirmware } from "../../targets/sim/firmware";
import { programSlot } from "../conformance/bootloader";
import { buildImage, HARDWARE, testKey, type BuiltImage } from "./sim-fixtures";

export interface World {
  clock: VirtualClock;
  net: MockNetwork;
  cloud: VirtualCloud;
  map: FlashMapSpec;
  key: ReturnType<typeof testKey>;
  factory: BuiltImage;
  devices: VirtualDevice[];
  agents: Map<VirtualDevice, Agent>;
  logs: string[];
  addDevice(id: string, config?: Partial<AgentConfig>): VirtualDevice;
}

export interface WorldOptions {
  releases?: (w: World) => SimRelease[];
  map?: FlashMapSpec;
  seed?: number;
  /** The image every device starts with in slot 0 (confirmed); default: a 24 KiB synthetic 1.0.0+1. */
  factory?: (map: FlashMapSpec, key: ReturnType<typeof testKey>) => BuiltImage;
  /** Link speed, bytes per ms (125 = 1 Mbit/s); default unlimited. */
  bytesPerMs?: number;
  /** CPU cost model for the devices (hal/mock/cpu.ts); default: computation is free. */
  cpu?: CpuModel;
}

export function makeWorld(o: WorldOptions = {}): World {
  const clock = new VirtualClock();
  const net = new MockNetwork(clock);
  // A little latency so that an update takes virtual time (as on a real link).
  net.latencyMs = 2;
  net.bytesPerMs = o.bytesPerMs ?? 0;
  const map = o.map ?? smallFlashMap(128);
  const key = testKey();
  const factory = o.factory ? o.factory(map, key) : buildImage(map, key, "1.0.0+1", 0, { confirm: true });
  const cloud = new VirtualCloud(net, { heartbeatIntervalS: 10 });
  const logs: string[] = [];
  const w: World = {
    clock,
    net,
    cloud,
    map,
    key,
    factory,
    devices: [],
    agents: new Map(),
    logs,
    addDevice(id, config = {}) {
      const device = new VirtualDevice({
        map,
        clock,
        network: net,
        seed: o.seed ?? 1,
        bootWatchdogMs: 8000,
        cpu: o.cpu,
        checkSignature: imageSignatureChecker(createKeyring([key.publicKey], softwareDigest)),
      });
      device.firmware = agentFirmware({
        config: {
          deviceId: id,
          hardwareId: HARDWARE,
          server: { host: cloud.host, port: cloud.port, tls: true },
          trustedKeys: [key.publicKey],
          heartbeatIntervalS: 10,
          chunkTimeoutMs: 2000,
          trialDeadlineMs: 60_000,
          backoffInitialMs: 500,
          backoffMaxMs: 10_000,
          log: (line) => logs.push(`${clock.now()} ${line}`),
          ...config,
        },
        onAgent: (agent, d) => w.agents.set(d, agent),
      });
      programSlot(device, 0, factory.bytes);
      w.devices.push(device);
      return device;
    },
  };
  if (o.releases) cloud.releases = o.releases(w);
  return w;
}
