/**
 * The fleet simulator behind `xs-ota sim`: N virtual devices (targets/sim:
 * the MCUboot model, the strict mocks) each running the simulator firmware —
 * the AT console and the real update agent, configured from the console's
 * settings — over real TLS sockets (hal/node), all on ONE virtual clock. The
 * clock is a discrete-event scheduler: it runs the next timer only when the
 * work due at the current instant is done — no message owed on any socket
 * (tools/sim/ledger.ts) — and one timer at a time, so a slow or busy machine
 * takes longer in real time but gives the same run for the same seed.
 * `speed` only caps how far virtual time may run ahead of real time. The cloud is
 * `xs-ota serve` in this process (its embedded broker with a throwaway CA, or
 * `--broker` mode against an existing broker), or none (the devices talk to
 * a broker someone else serves).
 *
 * Faults (tools/sim/faults.ts) are armed per device when it starts
 * downloading. The outcome of every device is judged from what serve
 * received (its status reports) and from the device itself (the version it
 * runs, whether the bootloader found anything to boot).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualClock } from "../../hal/mock/clock";
import { Prng } from "../../hal/mock/prng";
import { NodeNetwork } from "../../hal/node/socket";
import type { Agent, AgentState } from "../../src/agent/agent";
import type { AgentConfig } from "../../src/agent/config";
import type { ConsoleOptions } from "../../src/at/console";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { compareVersions, formatVersion, type ImageVersion } from "../../src/image/format";
import { imageSignatureChecker } from "../../src/image/signature";
import { reasonName } from "../../src/errors";
import { VirtualDevice } from "../../targets/sim/device";
import { smallFlashMap, stm32h743FlashMap, slotLoadAddress, type FlashMapSpec } from "../../targets/sim/flashmap";
import { agentFirmware } from "../../targets/sim/firmware";
import { makePatch } from "../delta/index";
import { buildImage, HARDWARE, release } from "../demo/firmware";
import { publishRelease } from "../demo/rig";
import { encodeImage } from "../image/encode";
import { createHash, createPrivateKey } from "node:crypto";
import { publicPemOf } from "../keys/pem";
import { signerFromSecret } from "../keys/signer";
import { readReleaseDir } from "../release/read";
import { RETRYABLE } from "../serve/rollout";
import { startServe, type ReportLine, type ServeHandle, type ServeStats } from "../serve/server";
import { initCa } from "../ca/ca";
import { provisionSimDevice } from "../ca/provision";
import { chooseVictims, FleetNetwork, NO_FAULTS, type FaultPlan } from "./faults";
import { IoLedger } from "./ledger";

export type MapName = "small" | "device";

export function flashMapOf(name: MapName): FlashMapSpec {
  return name === "device" ? stm32h743FlashMap : smallFlashMap();
}

/** Write a confirmed (image_ok) unsigned factory image into slot 0 of a device that was never powered (console-only tests). */
export function installFactoryImage(device: VirtualDevice, version: ImageVersion = { major: 1, minor: 0, revision: 0, build: 0 }): void {
  const body = new Uint8Array(4096);
  for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) & 0xff;
  const image = encodeImage({
    body,
    version,
    securityCounter: 0,
    loadAddr: slotLoadAddress(device.map, 0),
    pad: { slotSize: device.map.slots[0].size, writeAlign: device.map.geometry.writeAlign, confirm: true, eraseValue: device.map.geometry.eraseValue },
  });
  device.slots[0].cells.set(image);
}

/** Where the devices' cloud is. */
export type CloudSpec =
  | { readonly mode: "embedded" }
  /** serve in --broker mode against this broker; the devices connect to it too. */
  | { readonly mode: "broker"; readonly url: string; readonly caPath: string }
  /** No serve here: the devices connect to this broker (another serve, or none, answers). */
  | { readonly mode: "none"; readonly url: string; readonly caPath: string };

export type ReleaseSpec =
  /** Sign a factory image and one release with a generated key: full, or delta (plus the full). */
  | {
      readonly kind: "demo";
      readonly delta: boolean;
      readonly imageBytes: number;
      /** The release carries an HTTPS URL on serve's Range server beside its MQTT stream, and the devices prefer it: they fetch with Range requests. */
      readonly https?: boolean;
    }
  /** Serve DIR; the devices trust `trust` and start from `factory` (a signed, confirmed slot-0 image). */
  | { readonly kind: "dir"; readonly dir: string; readonly trust: readonly Uint8Array[]; readonly factory: Uint8Array }
  /** A factory image only (devices trust a generated key); nothing to offer. */
  | { readonly kind: "none" };

export interface SimFleetOptions {
  readonly devices: number;
  readonly map?: MapName | FlashMapSpec;
  readonly seed?: number;
  /** At most this much virtual time per real time (a pacing cap); absent: as fast as the machine goes. */
  readonly speed?: number;
  /** Real ms without any I/O progress before the scheduler gives up on owed messages (default 30000; see ledger.ts). */
  readonly stallMs?: number;
  readonly cloud?: CloudSpec;
  readonly releases?: ReleaseSpec;
  /** Heartbeat interval serve tells the devices, s (default 60). */
  readonly heartbeatIntervalSec?: number;
  /** serve --max-in-flight (0 = no bound). */
  readonly maxInFlight?: number;
  /** serve --link-rate: bytes per second serve assumes for a device's download (default serve's). */
  readonly linkRate?: number;
  readonly faults?: FaultPlan;
  /** Power cuts land at the n-th mutating flash operation after the download starts, n in 1..cutWindow. */
  readonly cutWindow?: number;
  readonly hardwareId?: string;
  readonly console?: ConsoleOptions;
  /** Agent settings besides the simulator's defaults. */
  readonly agent?: Partial<AgentConfig>;
  /** serve's log lines. */
  readonly serveLog?: (line: string) => void;
  /**
   * Mutual TLS (embedded serve only): a fleet CA in the work directory, serve
   * requires client certificates from it, and each device is provisioned
   * through its own CSR and `ca sign` before its first boot (tools/ca/provision.ts).
   */
  readonly mutualTls?: boolean;
  /** Keep the work directory (keys, releases, reports). */
  readonly keep?: boolean;
}

export type Outcome = "committed" | "rolled-back" | "failed" | "aborted" | "refused" | "running" | "bricked";

export interface DeviceOutcome {
  readonly id: string;
  readonly outcome: Outcome;
  /** The reason of the last final report (0 when none or success). */
  readonly reason: number;
  readonly reasonName: string;
  /** The version it runs now ("none" while off or bricked). */
  readonly version: string;
  readonly slot: number | null;
  readonly state: string;
  /** offer-accepted reports (update attempts). */
  readonly attempts: number;
  /** MQTT sessions established, over all boots. */
  readonly mqttConnects: number;
  /** Socket connects attempted. */
  readonly socketConnects: number;
  readonly linkDrops: number;
  readonly powerCuts: number;
  readonly boots: number;
  /** Mutating flash operations since the factory (writes, erases, counter advances). */
  readonly flashOps: number;
  /** Of those, after the download started. */
  readonly updateFlashOps: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly faults: string;
  /** rolled-back reports serve received from it (every trial that did not end in a commit), and their reasons. */
  readonly rollbacks: number;
  readonly rollbackReasons: readonly string[];
  /** offer-refused reports (releases it would not take), by reason name. */
  readonly refusals: readonly string[];
  /** It runs the target release at the end. */
  readonly onTarget: boolean;
  /** Virtual seconds from power-on to the device's outcome (null while running). */
  readonly doneAtS: number | null;
  /** Last agent log lines of a device that did not commit. */
  readonly logTail?: readonly string[];
}

export interface FleetReport {
  readonly devices: number;
  readonly seed: number;
  /** The pacing cap, or null (as fast as the machine goes). */
  readonly speed: number | null;
  readonly faults: FaultPlan;
  readonly maxInFlight: number;
  readonly cloud: string;
  readonly target: { readonly version: string; readonly kind: string; readonly payloadBytes: number; readonly imageBytes: number } | null;
  readonly completion: { readonly allDone: boolean; readonly done: number; readonly onTarget: number; readonly realSeconds: number; readonly virtualSeconds: number };
  readonly outcomes: Record<Outcome, number>;
  readonly bricked: number;
  readonly bytes: {
    readonly devicesReceived: number;
    readonly devicesSent: number;
    readonly serveChunkBytes: number | null;
    readonly serveRangeBytes: number | null;
  };
  readonly retries: {
    readonly attempts: number;
    readonly mqttConnects: number;
    readonly reconnects: number;
    readonly linkDrops: number;
    readonly powerCuts: number;
    readonly resets: number;
  };
  readonly inFlight: { readonly limit: number; readonly peakDevices: number; readonly peakServe: number | null };
  /** Every rollback (rolled-back reports), by reason name. */
  readonly rollbacks: { readonly total: number; readonly byReason: Record<string, number> };
  /** Devices that do not run the target release, with their outcome and last reason. */
  readonly notOnTarget: readonly { readonly id: string; readonly outcome: Outcome; readonly reasonName: string; readonly version: string }[];
  /** offer-refused reports, by reason name. */
  readonly refusals: Record<string, number>;
  /**
   * The scheduler: timers run, messages accounted (ledger entries), waits for
   * I/O, and stalls (owed messages given up after stallMs: a run with stalls
   * is not promised to repeat).
   */
  readonly scheduler: { readonly timerEvents: number; readonly ioEntries: number; readonly ioWaits: number; readonly stalls: number; readonly stallDetail: readonly string[] };
  readonly serve: ServeStats | null;
  readonly simulatorErrors: readonly string[];
  readonly perDevice: readonly DeviceOutcome[];
}

const UPDATING: readonly AgentState[] = Object.freeze(["checking", "downloading", "verifying", "staged", "installing", "trial"]);
/**
 * Virtual time 0 in unix seconds for generated releases (serve's clock is the
 * fleet's virtual clock from there): fixed, so a run repeats byte for byte.
 * With --releases DIR, or with no serve here, it is the real time at the start.
 */
export const DEMO_EPOCH = 1_767_225_600; // 2026-01-01T00:00:00Z

/** An agent transition in its log: "from -event-> to". */
const TRANSITION = / -[a-z-]+-> ([a-z-]+)$/;

/** A free loopback TCP port (for a URL signed before its server starts). */
async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
const LOG_TAIL = 12;

interface Tracked {
  readonly id: string;
  readonly device: VirtualDevice;
  readonly net: FleetNetwork;
  agent: Agent | undefined;
  /** MQTT connects of the agents of earlier boots. */
  pastConnects: number;
  cut: { n: number; mode: "clean" | "torn" } | undefined;
  dropShares: number[];
  armed: boolean;
  /** rail.operations when the download started. */
  opsAtArm: number;
  attempts: number;
  lastFinal: ReportLine | undefined;
  /** The last rolled-back report: the reason a rolled-back device shows. */
  rollback: ReportLine | undefined;
  committed: Set<string>;
  doneAt: number | undefined;
  log: string[];
  /** The agent's state from its transitions (undefined while off). */
  state: string | undefined;
  done: boolean;
  rollbacks: ReportLine[];
  refusals: ReportLine[];
}

function parseBroker(url: string): { host: string; port: number } {
  const m = /^mqtts:\/\/([A-Za-z0-9.-]+):(\d{1,5})$/.exec(url);
  if (!m || +m[2] < 1 || +m[2] > 65535) throw new RangeError(`broker must be mqtts://host:port, got "${url}"`);
  return { host: m[1], port: +m[2] };
}

export class SimFleet {
  readonly clock = new VirtualClock();
  readonly tracked: Tracked[] = [];
  readonly simulatorErrors: string[] = [];
  private readonly network: NodeNetwork;
  readonly ledger: IoLedger;
  private readonly byId = new Map<string, Tracked>();
  private running = false;
  /** `run({ untilDone })`: stop advancing time once every device is done. */
  private haltWhenDone = false;
  private loopDone: Promise<void> | undefined;
  /** Devices whose outcome may have changed since it was last judged. */
  private readonly dirty = new Set<Tracked>();
  private notDone = 0;
  private updatingNow = 0;
  private startedReal = 0;
  private finishedReal: number | undefined;
  private finishedVirtual: number | undefined;
  private peakUpdating = 0;
  private readonly speed: number | undefined;
  private readonly prng: Prng;
  private readonly cutWindow: number;
  private readonly progressListeners: (() => void)[] = [];

  private constructor(
    readonly o: SimFleetOptions,
    readonly work: string,
    readonly serve: ServeHandle | undefined,
    readonly server: { host: string; port: number; ca: string },
    readonly target: FleetReport["target"],
    readonly hardwareId: string,
    map: FlashMapSpec,
    factory: Uint8Array,
    trust: readonly Uint8Array[],
  ) {
    this.speed = o.speed;
    this.ledger = new IoLedger(o.stallMs ?? 30_000);
    this.ledger.onStall = () => {
      for (const t of this.tracked) t.net.forgetOwed();
    };
    const io = { ledger: this.ledger, mqttPort: server.port, serveHere: serve !== undefined };
    const seed = o.seed ?? 1;
    this.prng = new Prng(seed * 40503 + 1);
    this.cutWindow = o.cutWindow ?? 24;
    this.network = new NodeNetwork({ ca: server.ca, connectTimeoutMs: 15_000 });
    const victims = chooseVictims(o.faults ?? NO_FAULTS, o.devices, seed);
    const checkSignature = imageSignatureChecker(createKeyring([...trust], softwareDigest));
    for (let k = 0; k < o.devices; k++) {
      const id = `sim-${String(k).padStart(4, "0")}`;
      const net = new FleetNetwork(this.network, io);
      const device = new VirtualDevice({ map, clock: this.clock, seed: seed * 1000 + k, network: net, bootWatchdogMs: 8000, checkSignature });
      if (o.mutualTls) provisionSimDevice(device, id, join(work, "fleet-ca"));
      const t: Tracked = {
        id,
        device,
        net,
        agent: undefined,
        pastConnects: 0,
        cut: victims.powercut.has(k) ? { n: 1 + this.prng.below(this.cutWindow), mode: this.prng.below(2) ? "torn" : "clean" } : undefined,
        dropShares: victims.linkdrop.has(k) ? Array.from({ length: 1 + this.prng.below(3) }, () => this.prng.next() * 1.2).sort((a, b) => a - b) : [],
        armed: false,
        opsAtArm: 0,
        attempts: 0,
        lastFinal: undefined,
        rollback: undefined,
        committed: new Set(),
        doneAt: undefined,
        log: [],
        state: undefined,
        done: false,
        rollbacks: [],
        refusals: [],
      };
      this.byId.set(id, t);
      // Every boot may change the device's outcome (bricked, reverted, the target running).
      const boot = device.boot.bind(device);
      device.boot = () => {
        this.setState(t, undefined);
        this.dirty.add(t);
        return boot();
      };
      device.firmware = agentFirmware({
        config: {
          deviceId: id,
          hardwareId,
          server: { host: server.host, port: server.port, tls: true, ca: server.ca },
          trustedKeys: [...trust],
          heartbeatIntervalS: 60,
          trialDeadlineMs: 300_000,
          backoffInitialMs: 1000,
          backoffMaxMs: 30_000,
          seed: seed * 7919 + k + 1,
          ...(o.releases?.kind === "demo" && o.releases.https ? { preferHttps: true } : {}),
          ...o.agent,
          log: (line) => {
            o.agent?.log?.(line);
            t.log.push(`[${(this.clock.now() / 1000).toFixed(1)}s] ${line}`);
            if (t.log.length > 2 * LOG_TAIL) t.log.splice(0, t.log.length - LOG_TAIL);
            // The agent's transitions, as they happen: faults armed at the download's start, devices updating, outcomes.
            const m = TRANSITION.exec(line);
            if (m) {
              this.setState(t, m[1]);
              if (!t.armed && m[1] === "downloading") this.arm(t);
              this.dirty.add(t);
            }
          },
        },
        console: o.console,
        onAgent: (a) => {
          if (t.agent) t.pastConnects += t.agent.cloud.connects;
          t.agent = a;
          this.setState(t, a.state);
          this.dirty.add(t);
        },
      });
      device.program(0, factory);
      this.tracked.push(t);
    }
    this.notDone = this.tracked.length;
  }

  /** Track the devices updating now (and the peak) from the agents' transitions. */
  private setState(t: Tracked, state: string | undefined): void {
    const was = t.state !== undefined && UPDATING.includes(t.state as AgentState);
    const is = state !== undefined && UPDATING.includes(state as AgentState);
    t.state = state;
    if (was !== is) {
      this.updatingNow += is ? 1 : -1;
      if (this.updatingNow > this.peakUpdating) this.peakUpdating = this.updatingNow;
    }
  }

  /** serve took a message from a device topic (its trace). */
  private traceReceived(topic: string): void {
    const t = this.deviceOfTopic(topic);
    t?.net.serveTook();
  }

  /** serve published a message (its trace): owed to the device when it is on a device topic. */
  private tracePublished(topic: string): void {
    const t = this.deviceOfTopic(topic);
    t?.net.servePublished();
  }

  /** The device of a topic in a device's namespace (`xs-ota/v1/<id>/…`, either direction). */
  private deviceOfTopic(topic: string): Tracked | undefined {
    if (!topic.startsWith("xs-ota/v1/")) return undefined;
    const end = topic.indexOf("/", 10);
    return end > 10 ? this.byId.get(topic.slice(10, end)) : undefined;
  }

  /**
   * Make the keys, images and releases, start serve (unless cloud is "none"),
   * and build the devices (not yet powered: call `start`).
   */
  static async create(o: SimFleetOptions): Promise<SimFleet> {
    if (!Number.isInteger(o.devices) || o.devices < 1 || o.devices > 10_000) throw new RangeError("devices must be 1..10000");
    const speed = o.speed ?? 20;
    if (!(speed > 0 && speed <= 1000)) throw new RangeError("speed must be > 0 and <= 1000");
    const map = typeof o.map === "object" ? o.map : flashMapOf(o.map ?? "small");
    const hardwareId = o.hardwareId ?? HARDWARE;
    const cloud = o.cloud ?? { mode: "embedded" };
    const spec = o.releases ?? { kind: "none" };
    const work = mkdtempSync(join(tmpdir(), "xs-ota-sim-"));
    try {
      let releasesDir = join(work, "releases");
      mkdirSync(releasesDir);
      let factory: Uint8Array;
      let trust: readonly Uint8Array[];
      let target: FleetReport["target"] = null;
      // Virtual time 0 in unix seconds: fixed when serve runs here on the fleet's clock; real when the releases'
      // dates are real (DIR) or another serve judges them by its own clock (cloud "none").
      const epoch = spec.kind === "dir" || cloud.mode === "none" ? Math.floor(Date.now() / 1000) : DEMO_EPOCH;
      // A release with a URL names serve's Range server in its signed URL: pick the port before signing.
      const httpsPort = spec.kind === "demo" && spec.https ? await freePort() : undefined;
      if (spec.kind === "dir") {
        releasesDir = spec.dir;
        factory = spec.factory;
        trust = spec.trust;
        let best: ReturnType<typeof readReleaseDir>[number] | undefined;
        for (const e of readReleaseDir(spec.dir)) {
          if (e.manifest.hardwareId !== hardwareId) continue;
          if (!best || compareVersions(e.manifest.version, best.manifest.version) > 0) best = e;
        }
        if (best) target = { version: formatVersion(best.manifest.version), kind: best.manifest.payload.kind, payloadBytes: best.manifest.payload.length, imageBytes: best.manifest.image.length };
      } else {
        // The run's release key and dates come from the seed (and ECDSA signatures are deterministic, RFC 6979):
        // the same seed signs the same bytes, so the devices receive the same bytes in every run.
        const secret = createHash("sha256").update(`xs-ota sim release key ${o.seed ?? 1}`).digest();
        const key = signerFromSecret(new Uint8Array(secret));
        const jwk = { kty: "EC", crv: "P-256", d: secret.toString("base64url"), x: Buffer.from(key.publicKey.subarray(1, 33)).toString("base64url"), y: Buffer.from(key.publicKey.subarray(33, 65)).toString("base64url") };
        writeFileSync(join(work, "release-key.pem"), createPrivateKey({ key: jwk, format: "jwk" }).export({ format: "pem", type: "pkcs8" }) as string, { mode: 0o600 });
        writeFileSync(join(work, "release-key.pub.pem"), publicPemOf(key.publicKey));
        trust = [key.publicKey];
        const size = spec.kind === "demo" ? spec.imageBytes : 4096;
        const base = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size });
        factory = base.bytes;
        if (spec.kind === "demo") {
          const next = buildImage(map, key, "1.1.0+2", 1, { size, securityCounter: 2 });
          const dates = { issuedAt: epoch - 60, expiresAt: epoch + 7 * 86400, hardwareId };
          const url = httpsPort !== undefined ? { url: (stream: string) => `https://127.0.0.1:${httpsPort}/streams/${stream}` } : {};
          const full = release(key, next, { ...dates, ...url });
          publishRelease(releasesDir, full);
          target = { version: next.version, kind: "full", payloadBytes: full.payload.length, imageBytes: full.manifest.image.length };
          if (spec.delta) {
            const delta = release(key, next, { ...dates, ...url, base, diff: (a, b) => makePatch(a, b).bytes });
            publishRelease(releasesDir, delta);
            target = { ...target, kind: "delta", payloadBytes: delta.payload.length };
          }
        }
      }

      let serve: ServeHandle | undefined;
      let server: { host: string; port: number; ca: string };
      const fleetRef: { fleet?: SimFleet } = {};
      // serve's clock is the fleet's virtual clock (offers, in-flight places and their timeouts follow virtual time).
      const serveOptions = {
        releasesDir,
        host: "127.0.0.1",
        mqttPort: 0,
        insecurePlaintext: false,
        heartbeatIntervalSec: o.heartbeatIntervalSec ?? 60,
        reportsPath: join(work, "reports.jsonl"),
        log: o.serveLog ?? (() => {}),
        maxInFlight: o.maxInFlight ?? 0,
        ...(o.linkRate !== undefined ? { linkRate: o.linkRate } : {}),
        httpsPort: httpsPort ?? 0,
        now: () => epoch + Math.floor((fleetRef.fleet?.clock.now() ?? 0) / 1000),
        onReport: (r: ReportLine) => fleetRef.fleet?.onReport(r),
        trace: {
          received: (topic: string) => fleetRef.fleet?.traceReceived(topic),
          published: (topic: string) => fleetRef.fleet?.tracePublished(topic),
        },
      };
      if (o.mutualTls && cloud.mode !== "embedded") throw new RangeError("mutualTls needs the embedded serve (an external broker has its own CA)");
      if (cloud.mode === "embedded") {
        if (o.mutualTls) initCa(join(work, "fleet-ca"), "xs-ota sim fleet CA", 30);
        serve = await startServe(o.mutualTls ? { ...serveOptions, clientCa: join(work, "fleet-ca", "ca.pem") } : serveOptions);
        server = { host: "127.0.0.1", port: serve.mqttPort!, ca: readFileSync(serve.caPath!, "utf8") };
      } else {
        const { host, port } = parseBroker(cloud.url);
        server = { host, port, ca: readFileSync(cloud.caPath, "utf8") };
        if (cloud.mode === "broker") {
          serve = await startServe({ ...serveOptions, broker: cloud.url, ca: cloud.caPath });
          // serve's HTTPS Range server has a certificate from its own throwaway CA (DIR/tls), not the broker's:
          // the devices trust both (one PEM bundle), as a device trusts its broker's CA and its CDN's.
          const rangeCa = join(releasesDir, "tls", "ca.pem");
          if (existsSync(rangeCa)) server = { ...server, ca: server.ca + readFileSync(rangeCa, "utf8") };
        }
      }
      const fleet = new SimFleet(o, work, serve, server, target, hardwareId, map, factory, trust);
      fleetRef.fleet = fleet;
      return fleet;
    } catch (e) {
      if (!o.keep) rmSync(work, { recursive: true, force: true });
      throw e;
    }
  }

  get devices(): VirtualDevice[] {
    return this.tracked.map((t) => t.device);
  }

  /**
   * Power every device on (one boot event each, in device order, at virtual
   * time 0) and start the scheduler.
   */
  start(): void {
    if (this.running) return;
    this.startedReal = performance.now();
    for (const t of this.tracked) this.clock.setTimer(() => t.device.boot(), 0);
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Called from the scheduler at most every 100 ms of real time (progress lines). */
  onTick(listener: () => void): void {
    this.progressListeners.push(listener);
  }

  /**
   * The discrete-event loop: wait until nothing is owed on any socket (the
   * ledger), then run the next timer — one at a time, in (deadline, creation)
   * order — and judge the devices it touched. Virtual time moves only here.
   */
  private async loop(): Promise<void> {
    let lastYield = performance.now();
    let lastProgress = lastYield;
    while (this.running) {
      if (this.haltWhenDone && this.finishedReal !== undefined) {
        // Done: time stops here, so the report is the fleet at the instant it finished (the same in every run).
        await new Promise<void>((r) => setTimeout(r, 20));
        continue;
      }
      if (this.ledger.outstanding > 0) {
        await this.ledger.quiet();
        this.judge();
        lastYield = performance.now();
        continue;
      }
      const now = performance.now();
      if (now - lastProgress >= 100) {
        lastProgress = now;
        for (const l of this.progressListeners) l();
      }
      // Let the event loop breathe between runs of timers that need no I/O (signals, progress, closes).
      if (now - lastYield >= 20) {
        await new Promise<void>((r) => setImmediate(r));
        lastYield = performance.now();
        continue;
      }
      const next = this.clock.nextDue();
      if (next === undefined) {
        await new Promise<void>((r) => setTimeout(r, 5));
        continue;
      }
      if (this.speed !== undefined) {
        const allowed = (now - this.startedReal) * this.speed;
        if (next > allowed) {
          await new Promise<void>((r) => setTimeout(r, Math.min(50, Math.max(1, (next - allowed) / this.speed!))));
          lastYield = performance.now();
          continue;
        }
      }
      try {
        this.clock.step();
      } catch (e) {
        // Not a reset (those never leave the device): a bug. Recorded; the fleet runs on.
        if (this.simulatorErrors.length < 20) this.simulatorErrors.push(String((e as Error)?.stack ?? e));
      }
      if (this.dirty.size > 0 && this.ledger.outstanding === 0) this.judge();
    }
  }

  /** Judge the devices whose outcome may have changed; note when the whole fleet is done. */
  private judge(): void {
    if (this.dirty.size === 0) return;
    // Without a serve here (cloud "none") only the devices are judged: committed on the device, or bricked.
    const judging = this.target !== null;
    for (const t of this.dirty) {
      const done = judging && this.outcomeOf(t) !== "running";
      if (done !== t.done) {
        t.done = done;
        this.notDone += done ? -1 : 1;
        t.doneAt = done ? this.clock.now() : undefined;
      }
    }
    this.dirty.clear();
    if (this.finishedReal === undefined && judging && this.notDone === 0) {
      this.finishedReal = performance.now();
      this.finishedVirtual = this.clock.now();
    }
  }

  private arm(t: Tracked): void {
    t.armed = true;
    t.opsAtArm = t.device.rail.operations;
    if (t.cut) t.device.rail.armCut(t.cut.n, t.cut.mode);
    const payload = this.target?.payloadBytes ?? 16 * 1024;
    t.net.dropAt = t.dropShares.map((s) => t.net.bytesReceived + Math.max(1, Math.round(s * payload)));
  }

  /** A status report serve logged. */
  private onReport(r: ReportLine): void {
    const t = this.byId.get(r.deviceId);
    if (!t) return;
    if (r.event === "offer-accepted") t.attempts++;
    if (["committed", "rolled-back", "failed", "aborted", "offer-refused"].includes(r.event)) t.lastFinal = r;
    if (r.event === "rolled-back") {
      t.rollback = r;
      t.rollbacks.push(r);
    }
    if (r.event === "offer-refused") t.refusals.push(r);
    if (r.event === "committed" && r.target) t.committed.add(r.target);
    this.dirty.add(t);
  }

  private runningVersion(t: Tracked): string {
    const info = t.device.lastBoot?.info;
    return info ? formatVersion(info.header.version) : "none";
  }

  /** The device itself committed the target: it runs it, and not as an unconfirmed trial (serve may not have heard). */
  private committedOnDevice(t: Tracked): boolean {
    if (!this.target || !t.device.running || this.runningVersion(t) !== this.target.version) return false;
    const state = t.agent?.state;
    return t.device.lastBoot?.trial === false ? state !== undefined : state === "committed" || state === "idle" || state === "checking" || state === "downloading";
  }

  /** The device booted the target at some point and now runs another image: MCUboot reverted it. */
  private rolledBackOnDevice(t: Tracked): boolean {
    if (!this.target || t.device.bricked) return false;
    const target = this.target.version;
    const tried = t.device.boots.some((b) => b.decision.info !== undefined && formatVersion(b.decision.info.header.version) === target);
    return tried && t.device.lastBoot?.info !== undefined && this.runningVersion(t) !== target;
  }

  /**
   * The outcome of one device now, from the device first (what it runs, what
   * it booted; true with or without a serve here), then from serve's reports.
   * A device that rolled back for good (a reason it does not retry) stays
   * "rolled-back" whatever it reports later (a re-offer it refuses as
   * MANIFEST_REPLAYED is the rollback's consequence); one that will retry
   * (ROLLED_BACK, TRIAL_NO_CLOUD_RETRY) is still running.
   */
  outcomeOf(t: Tracked): Outcome {
    if (t.device.bricked) return "bricked";
    const version = this.runningVersion(t);
    if (this.target && version === this.target.version && (t.committed.has(this.target.version) || this.committedOnDevice(t))) return "committed";
    if (this.rolledBackOnDevice(t) && t.rollback && !RETRYABLE.includes(t.rollback.reason)) return "rolled-back";
    const f = t.lastFinal;
    if (f && !RETRYABLE.includes(f.reason) && !(this.target && version === this.target.version)) {
      if (f.event === "offer-refused") return "refused";
      if (f.event === "committed") return "running";
      return f.event as Outcome;
    }
    return "running";
  }

  /**
   * Every device committed the target or reported a final failure (false with
   * no target; with no serve here, only a commit seen on the device counts).
   */
  allDone(): boolean {
    for (const t of this.tracked) this.dirty.add(t);
    this.judge();
    return this.target !== null && this.notDone === 0;
  }

  /**
   * Run until every device is done (when `untilDone`), or `timeoutS` real
   * seconds, or `stop` resolves. Returns why it ended.
   */
  async run(o: { untilDone: boolean; timeoutS?: number; stop?: Promise<void> }): Promise<"done" | "timeout" | "stopped"> {
    if (o.untilDone) this.haltWhenDone = true;
    if (!this.running) this.start();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const end = (why: "done" | "timeout" | "stopped") => {
        if (timer) clearTimeout(timer);
        clearInterval(poll);
        resolve(why);
      };
      const poll = setInterval(() => {
        if (o.untilDone && this.finishedReal !== undefined) end("done");
      }, 50);
      if (o.timeoutS !== undefined) timer = setTimeout(() => end("timeout"), o.timeoutS * 1000);
      void o.stop?.then(() => end("stopped"));
    });
  }

  /** The report (JSON-able). */
  report(): FleetReport {
    this.allDone();
    const perDevice: DeviceOutcome[] = this.tracked.map((t) => {
      const outcome = this.outcomeOf(t);
      const f = outcome === "committed" ? undefined : outcome === "rolled-back" ? (t.rollback ?? t.lastFinal) : t.lastFinal;
      const faults = [t.cut ? `cut@${t.cut.n}/${t.cut.mode}` : "", t.dropShares.length ? `drop×${t.dropShares.length}` : ""].filter(Boolean).join(" ");
      return {
        id: t.id,
        outcome,
        reason: f?.reason ?? 0,
        reasonName: f ? reasonName(f.reason) : "OK",
        version: this.runningVersion(t),
        slot: t.device.runningSlot ?? null,
        state: t.device.running ? (t.agent?.state ?? "none") : "off",
        attempts: t.attempts,
        mqttConnects: t.pastConnects + (t.agent?.cloud.connects ?? 0),
        socketConnects: t.net.connections,
        linkDrops: t.net.drops,
        powerCuts: t.device.boots.filter((b, i) => i > 0 && b.cause === "power-on").length,
        boots: t.device.boots.length,
        flashOps: t.device.rail.operations,
        updateFlashOps: t.armed ? t.device.rail.operations - t.opsAtArm : 0,
        bytesReceived: t.net.bytesReceived,
        bytesSent: t.net.bytesSent,
        faults,
        rollbacks: t.rollbacks.length,
        rollbackReasons: t.rollbacks.map((r) => reasonName(r.reason)),
        refusals: t.refusals.map((r) => reasonName(r.reason)),
        onTarget: this.target !== null && this.runningVersion(t) === this.target.version && !t.device.bricked,
        doneAtS: t.doneAt === undefined ? null : Math.round(t.doneAt / 100) / 10,
        ...(outcome !== "committed" ? { logTail: t.log.slice(-LOG_TAIL) } : {}),
      };
    });
    const outcomes: Record<Outcome, number> = { committed: 0, "rolled-back": 0, failed: 0, aborted: 0, refused: 0, running: 0, bricked: 0 };
    for (const d of perDevice) outcomes[d.outcome]++;
    const sum = (f: (d: DeviceOutcome) => number) => perDevice.reduce((a, d) => a + f(d), 0);
    const stats = this.serve?.stats() ?? null;
    const done = perDevice.filter((d) => d.outcome !== "running").length;
    const mqttConnects = sum((d) => d.mqttConnects);
    const byReason: Record<string, number> = {};
    const refusals: Record<string, number> = {};
    for (const d of perDevice) {
      for (const r of d.rollbackReasons) byReason[r] = (byReason[r] ?? 0) + 1;
      for (const r of d.refusals) refusals[r] = (refusals[r] ?? 0) + 1;
    }
    return {
      devices: this.tracked.length,
      seed: this.o.seed ?? 1,
      speed: this.speed ?? null,
      faults: this.o.faults ?? NO_FAULTS,
      maxInFlight: this.o.maxInFlight ?? 0,
      cloud: (this.o.cloud ?? { mode: "embedded" }).mode === "embedded" ? "embedded serve" : (this.o.cloud as { url: string; mode: string }).mode === "broker" ? `serve --broker ${(this.o.cloud as { url: string }).url}` : `broker ${(this.o.cloud as { url: string }).url} (no serve)`,
      target: this.target,
      completion: {
        allDone: this.finishedReal !== undefined,
        done,
        onTarget: perDevice.filter((d) => d.onTarget).length,
        realSeconds: Math.round(((this.finishedReal ?? performance.now()) - this.startedReal) / 100) / 10,
        virtualSeconds: Math.round((this.finishedVirtual ?? this.clock.now()) / 100) / 10,
      },
      outcomes,
      bricked: outcomes.bricked,
      bytes: {
        devicesReceived: sum((d) => d.bytesReceived),
        devicesSent: sum((d) => d.bytesSent),
        serveChunkBytes: stats?.chunkBytes ?? null,
        serveRangeBytes: stats?.rangeBytes ?? null,
      },
      retries: {
        attempts: sum((d) => d.attempts),
        mqttConnects,
        // sessions beyond the first of each boot (a reboot's new session is not a retry)
        reconnects: sum((d) => Math.max(0, d.mqttConnects - d.boots)),
        linkDrops: sum((d) => d.linkDrops),
        powerCuts: sum((d) => d.powerCuts),
        resets: sum((d) => d.boots - 1),
      },
      inFlight: { limit: this.o.maxInFlight ?? 0, peakDevices: this.peakUpdating, peakServe: stats?.peakInFlight ?? null },
      rollbacks: { total: sum((d) => d.rollbacks), byReason },
      notOnTarget: this.target ? perDevice.filter((d) => !d.onTarget).map((d) => ({ id: d.id, outcome: d.outcome, reasonName: d.reasonName, version: d.version })) : [],
      refusals,
      scheduler: { timerEvents: this.clock.fired, ioEntries: this.ledger.entries, ioWaits: this.ledger.waits, stalls: this.ledger.stalls, stallDetail: [...this.ledger.stallDetail] },
      serve: stats,
      simulatorErrors: [...this.simulatorErrors],
      perDevice,
    };
  }

  /** Stop the clock, close serve and every socket, remove the work directory (unless kept). */
  async close(): Promise<void> {
    this.running = false;
    await this.loopDone;
    for (const t of this.tracked) t.device.link.closeAll();
    this.network.destroyAll();
    await this.serve?.close();
    if (!this.o.keep) rmSync(this.work, { recursive: true, force: true });
  }
}
