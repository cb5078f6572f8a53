/**
 * The agent's configuration: what the target (from its settings) hands to
 * `new Agent(platform, config)`. Every bound the agent runs under is here,
 * with its default and its allowed range; `checkConfig` refuses anything
 * outside, so a bad setting fails at start, not in the field.
 */
import type { SocketOptions } from "../../hal/types";
import { decodeCostProblem, type DecodeCost } from "../protocol/messages";
import { DECODABLE_CODECS } from "../update/codec";
import type { Settings } from "../store/settings";
import { httpRetryBudgetMs } from "./http-fetch";

export interface MaintenanceWindowConfig {
  /** Minutes after midnight UTC, 0..1439; the window may wrap past midnight. */
  readonly startMin: number;
  readonly endMin: number;
}

export interface AgentConfig {
  /** This device's id: its MQTT client id and topic segment. */
  readonly deviceId: string;
  /** Hardware class, e.g. "usr-n520": a manifest for another class is refused. */
  readonly hardwareId: string;
  /** The broker. */
  readonly server: SocketOptions;
  /**
   * The device keyring (65-byte uncompressed P-256 points); at least one. It holds
   * MCUboot's image key(s), which images are checked against; without a key set it
   * also signs manifests and revocation records (src/update/keyset.ts DeviceTrust).
   */
  readonly trustedKeys: readonly Uint8Array[];
  /**
   * Offline root keys (0..4 points), fixed by the firmware image: they sign key sets,
   * which name the keys that may sign manifests, revocation records and time.
   * None: the single-keyring model (no key sets, no signed time).
   */
  readonly rootKeys?: readonly Uint8Array[];

  /** Heartbeat interval until the server sets one, seconds (10..86400). */
  readonly heartbeatIntervalS?: number;
  /**
   * Periodic heartbeats (AT+HEARTEN). Off: one heartbeat per connection only
   * (the cloud still sees the device, can offer, and a trial still gets its ack).
   */
  readonly heartbeatEnabled?: boolean;
  /** Unacknowledged heartbeats in a row before the link is torn down and redialled (1..10). */
  readonly missedAcksBeforeReconnect?: number;
  /** MQTT keepalive, seconds. */
  readonly keepAliveSec?: number;
  /** Reconnect backoff: first delay and ceiling, ms. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Seed for the backoff jitter (a device would use its id; the simulator a test seed). */
  readonly seed?: number;

  /** Bytes asked per chunk request (256..4096). */
  readonly chunkSize?: number;
  /** Chunk requests outstanding at once (1..8). */
  readonly chunkWindow?: number;
  /** A chunk not answered within this is asked again, ms. */
  readonly chunkTimeoutMs?: number;
  /** Re-asks of one offset before the attempt fails (1..20). */
  readonly chunkRetries?: number;
  /** Slow-retrieval floor: fewer bytes than this per `slowWindowMs` fails the attempt (0 = off). */
  readonly slowFloorBytes?: number;
  readonly slowWindowMs?: number;
  /** Overall download deadline across reboots, ms. */
  readonly downloadDeadlineMs?: number;
  /** Download over HTTPS Range even when an MQTT stream is offered too (default: MQTT first). */
  readonly preferHttps?: boolean;
  /** Bytes per HTTPS Range request (1024..262144). */
  readonly httpRangeBytes?: number;
  /** Bytes of payload between journal progress records (a multiple of 4096 is sensible). */
  readonly progressEveryBytes?: number;

  /** Hardware watchdog timeout while the agent runs, ms (1..32000). */
  readonly watchdogTimeoutMs?: number;
  /** Software watchdog: how often the supervisor checks activities and feeds, ms (<= timeout / 2). */
  readonly supervisorPeriodMs?: number;
  /** Software watchdog deadlines, ms: no payload byte while downloading online; no hash slice while verifying. */
  readonly downloadStallMs?: number;
  readonly verifyStallMs?: number;
  /** Bytes hashed per slice before yielding to the event loop (1024..262144). */
  readonly hashSliceBytes?: number;
  /** The trial firmware must get an acknowledged heartbeat within this, ms. */
  readonly trialDeadlineMs?: number;
  /** Install preconditions: supply voltage floor (mV; 0 = off) and maintenance window (absent = always). */
  readonly minSupplyMv?: number;
  readonly maintenanceWindow?: MaintenanceWindowConfig;
  /** The application is busy (a session on the serial port): installs wait. */
  readonly isBusy?: () => boolean;
  /** How often a staged update re-checks its preconditions, ms. */
  readonly preconditionRetryMs?: number;

  /**
   * The patch codecs this device decodes and what each costs it, announced in
   * every heartbeat (`decode`, `mhz`) so the server can offer the delta that
   * installs quickest here; the agent refuses a delta coded otherwise
   * (PATCH_CODEC_UNSUPPORTED). Default DEVICE_DECODE_COST; a target whose CPU
   * or build differs sets its own (each codec one this build decodes).
   */
  readonly decodeCost?: DecodeCost;

  /** Log sink (one line per call); absent = silent. */
  readonly log?: (line: string) => void;
}

/**
 * The Cortex-M7 device lane's decode + write cost per output byte, at 400 MHz:
 * the worst pair (feature release) of each codec, measured by `npm run
 * test:device` (README, "Delta updates", decode-cost table). Codec 3 (LZ) 3,945,
 * codec 4 (LZR) 8,388, codec 1 (DEFLATE) 3,698, codec 2 (range coder) 81,120
 * instructions a byte.
 * Re-measure and update here when the decoders change. Codec 0 (stored) has
 * no device-lane figure and is not announced: it is never offered by default.
 */
export const DEVICE_DECODE_COST: DecodeCost = Object.freeze({
  mhz: 400,
  codecs: Object.freeze([
    Object.freeze({ codec: 3, instructionsPerByte: 3945 }),
    Object.freeze({ codec: 4, instructionsPerByte: 8388 }),
    Object.freeze({ codec: 1, instructionsPerByte: 3698 }),
    Object.freeze({ codec: 2, instructionsPerByte: 81120 }),
  ]),
});

/** The config with every default filled in. */
export type ResolvedConfig = Required<Omit<AgentConfig, "maintenanceWindow" | "isBusy" | "log">> &
  Pick<AgentConfig, "maintenanceWindow" | "isBusy" | "log">;

export const DEFAULTS = Object.freeze({
  rootKeys: Object.freeze([]) as readonly Uint8Array[],
  heartbeatIntervalS: 60,
  heartbeatEnabled: true,
  missedAcksBeforeReconnect: 3,
  keepAliveSec: 60,
  backoffInitialMs: 1000,
  backoffMaxMs: 5 * 60_000,
  seed: 1,
  chunkSize: 4096,
  chunkWindow: 3,
  chunkTimeoutMs: 10_000,
  chunkRetries: 5,
  slowFloorBytes: 1024,
  slowWindowMs: 60_000,
  downloadDeadlineMs: 6 * 3600_000,
  progressEveryBytes: 16 * 1024,
  preferHttps: false,
  httpRangeBytes: 16 * 1024,
  watchdogTimeoutMs: 8000,
  supervisorPeriodMs: 1000,
  downloadStallMs: 90_000,
  verifyStallMs: 30_000,
  hashSliceBytes: 16 * 1024,
  trialDeadlineMs: 120_000,
  minSupplyMv: 0,
  preconditionRetryMs: 60_000,
  decodeCost: DEVICE_DECODE_COST,
});

/**
 * How long a supervised download may go without a payload byte before the
 * agent itself ends it (DOWNLOAD_STALLED, reported): two supervisor periods
 * inside the software watchdog's download deadline, so a stall is a report,
 * never a watchdog reset.
 */
export function stallLimitMs(c: { downloadStallMs: number; supervisorPeriodMs: number }): number {
  return Math.max(1, c.downloadStallMs - 2 * c.supervisorPeriodMs);
}

function within(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`AgentConfig.${name} must be an integer ${lo}..${hi}, got ${v}`);
}

/**
 * Fill defaults and check every bound.
 * @throws TypeError / RangeError naming the offending field.
 */
export function checkConfig(c: AgentConfig): ResolvedConfig {
  if (typeof c.deviceId !== "string" || !/^[A-Za-z0-9._-]{1,32}$/.test(c.deviceId)) throw new TypeError("AgentConfig.deviceId must be 1..32 of [A-Za-z0-9._-]");
  if (typeof c.hardwareId !== "string" || !/^[A-Za-z0-9._-]{1,32}$/.test(c.hardwareId)) throw new TypeError("AgentConfig.hardwareId must be 1..32 of [A-Za-z0-9._-]");
  if (!c.server || typeof c.server.host !== "string" || typeof c.server.tls !== "boolean") throw new TypeError("AgentConfig.server needs host, port and tls");
  if (!Array.isArray(c.trustedKeys) || c.trustedKeys.length === 0) throw new TypeError("AgentConfig.trustedKeys needs at least one key");
  if (c.rootKeys !== undefined && (!Array.isArray(c.rootKeys) || c.rootKeys.length > 4 || !c.rootKeys.every((k) => k instanceof Uint8Array))) {
    throw new TypeError("AgentConfig.rootKeys must be at most 4 public keys");
  }
  const r = { ...DEFAULTS, ...stripUndefined(c) } as ResolvedConfig;
  within("heartbeatIntervalS", r.heartbeatIntervalS, 10, 86400);
  within("missedAcksBeforeReconnect", r.missedAcksBeforeReconnect, 1, 10);
  within("keepAliveSec", r.keepAliveSec, 5, 3600);
  within("chunkSize", r.chunkSize, 256, 4096);
  within("chunkWindow", r.chunkWindow, 1, 8);
  within("chunkTimeoutMs", r.chunkTimeoutMs, 100, 600_000);
  within("chunkRetries", r.chunkRetries, 1, 20);
  within("slowFloorBytes", r.slowFloorBytes, 0, 1 << 30);
  within("slowWindowMs", r.slowWindowMs, 1000, 3600_000);
  within("downloadDeadlineMs", r.downloadDeadlineMs, 1000, 7 * 86400_000);
  within("progressEveryBytes", r.progressEveryBytes, 1024, 1 << 24);
  within("httpRangeBytes", r.httpRangeBytes, 1024, 262_144);
  within("watchdogTimeoutMs", r.watchdogTimeoutMs, 100, 32000);
  within("trialDeadlineMs", r.trialDeadlineMs, 1000, 3600_000);
  within("supervisorPeriodMs", r.supervisorPeriodMs, 10, Math.floor(r.watchdogTimeoutMs / 2));
  within("downloadStallMs", r.downloadStallMs, 1000, 3600_000);
  within("verifyStallMs", r.verifyStallMs, 100, 3600_000);
  within("hashSliceBytes", r.hashSliceBytes, 1024, 262_144);
  within("minSupplyMv", r.minSupplyMv, 0, 60000);
  within("preconditionRetryMs", r.preconditionRetryMs, 100, 3600_000);
  const costProblem = decodeCostProblem(r.decodeCost);
  if (costProblem) throw new RangeError(`AgentConfig.decodeCost: ${costProblem}`);
  for (const c of r.decodeCost.codecs) if (DECODABLE_CODECS.indexOf(c.codec) < 0) throw new RangeError(`AgentConfig.decodeCost: codec ${c.codec} is not one this build decodes`);
  // Every bound nests inside the supervisor's: a fetcher gives up (and reports) before the watchdog would reset.
  const limit = stallLimitMs(r);
  if (r.downloadStallMs <= 2 * r.supervisorPeriodMs) throw new RangeError("AgentConfig.downloadStallMs must exceed two supervisor periods");
  if (httpRetryBudgetMs(r.chunkTimeoutMs, r.chunkRetries) >= limit) {
    throw new RangeError(`AgentConfig: the HTTP retry budget (${httpRetryBudgetMs(r.chunkTimeoutMs, r.chunkRetries)} ms from chunkTimeoutMs and chunkRetries) must be below the download stall limit (${limit} ms)`);
  }
  if ((r.chunkRetries + 1) * r.chunkTimeoutMs >= limit) {
    throw new RangeError(`AgentConfig: chunk re-asks ((chunkRetries + 1) × chunkTimeoutMs) must end below the download stall limit (${limit} ms)`);
  }
  const w = r.maintenanceWindow;
  if (w) {
    within("maintenanceWindow.startMin", w.startMin, 0, 1439);
    within("maintenanceWindow.endMin", w.endMin, 0, 1439);
  }
  return Object.freeze(r);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** Is `minuteOfDay` inside the window (wrapping past midnight when start > end)? */
export function inWindow(w: MaintenanceWindowConfig, minuteOfDay: number): boolean {
  if (w.startMin === w.endMin) return true;
  return w.startMin < w.endMin
    ? minuteOfDay >= w.startMin && minuteOfDay < w.endMin
    : minuteOfDay >= w.startMin || minuteOfDay < w.endMin;
}

/**
 * The agent's configuration from the device's active settings (what the AT
 * console saved) and what the target fixes: the hardware id, the CA the
 * adapter verifies the broker against, and any other bound.
 * @throws TypeError / RangeError from `checkConfig` when the settings cannot
 *   run an agent (e.g. no trusted key provisioned yet).
 */
export function configFromSettings(s: Settings, fixed: { hardwareId: string; ca?: string | Uint8Array } & Partial<AgentConfig>): AgentConfig {
  const { ca, ...rest } = fixed;
  const config: AgentConfig = {
    deviceId: s.deviceId,
    server: { host: s.serverHost, port: s.serverPort, tls: s.tls, ...(ca !== undefined ? { ca } : {}) },
    trustedKeys: s.trustedKeys,
    heartbeatIntervalS: s.heartbeatIntervalS,
    heartbeatEnabled: s.heartbeatEnabled,
    minSupplyMv: s.minSupplyMv,
    maintenanceWindow: s.window.always ? undefined : { startMin: s.window.startMin, endMin: s.window.endMin },
    ...rest,
  };
  checkConfig(config);
  return config;
}
