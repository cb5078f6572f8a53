/**
 * A rollout plan: which devices get one release, in which waves, how long
 * each wave soaks, how many failures a wave may have before the rollout
 * halts, and when it may start. A plan file is JSON (format below); its
 * rollout id is the SHA-256 of the file's exact bytes, and when it is signed
 * (`xs-ota rollout start --key KEY.pem`) the detached ECDSA P-256 signature
 * over that hash travels with it and serve checks it against its --trust keys.
 *
 * ```json
 * {
 *   "release": { "hardwareId": "usr-n520", "version": "1.1.0+2" },
 *   "target": { "groups": ["line-a"] },
 *   "groups": { "line-a": ["sim-00*", "sim-0100"] },
 *   "waves": [
 *     { "name": "canary", "upToPercent": 1,   "soakSec": 600,  "failureBudget": 0, "minDevices": 5 },
 *     { "name": "early",  "upToPercent": 10,  "soakSec": 1800, "failureBudget": 2 },
 *     { "name": "rest",   "upToPercent": 100, "soakSec": 0,    "failureBudget": 20 }
 *   ],
 *   "maxInFlight": 25,
 *   "window": { "notBefore": "2026-12-01T02:00:00Z", "notAfter": "2026-12-08T02:00:00Z" }
 * }
 * ```
 *
 * Wave membership is a pure function of the rollout id and the device id
 * (the first 32 bits of SHA-256(rolloutId ":" deviceId) as a fraction of
 * 2^32, against the waves' cumulative `upToPercent`), so every serve
 * instance, before and after a restart, puts a device in the same wave with
 * no shared state at all.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { verifyP256 } from "../../src/crypto/ecdsa";
import { Reason, OtaError } from "../../src/errors";
import { formatVersion, parseVersion } from "../../src/image/format";
import type { ImageVersion } from "../../src/image/format";
import { fromHex, toHex, utf8Encode } from "../../src/util/bytes";

export interface Wave {
  readonly name: string;
  /** Cumulative share of the targeted fleet this wave reaches, 0 < p ≤ 100, increasing; the last wave is 100. */
  readonly upToPercent: number;
  /** Seconds the wave runs with nothing in flight or pending, after its last final report, before the next wave opens. */
  readonly soakSec: number;
  /** Rolled-back + failed + bricked-suspect devices this wave may have; one more halts the rollout. */
  readonly failureBudget: number;
  /**
   * The wave completes only once at least this many of its devices finished (default 1): a wave
   * whose devices were not seen yet (a connect storm, devices offline) never passes for done.
   */
  readonly minDevices: number;
}

export interface Plan {
  readonly release: { readonly hardwareId: string; readonly version: ImageVersion };
  /** Target device groups (names in `groups`); absent = every device of the hardware id. */
  readonly targetGroups?: readonly string[];
  /** Group name → device id patterns (`*` matches any run of characters). */
  readonly groups: { readonly [name: string]: readonly string[] };
  readonly waves: readonly Wave[];
  /** Devices of this rollout in an update at once, over all serve instances (0 = no bound). */
  readonly maxInFlight: number;
  /** Unix seconds: no offer before / after. */
  readonly notBefore?: number;
  readonly notAfter?: number;
}

/** A plan as published: its exact bytes, their hash (the rollout id) and the optional signature. */
export interface SignedPlan {
  readonly id: string;
  readonly text: string;
  /** Hex DER signature over SHA-256(text), or absent. */
  readonly signature?: string;
  readonly plan: Plan;
}

const MAX_PLAN_BYTES = 8 * 1024;
const NAME = /^[A-Za-z0-9._-]{1,32}$/;
const PATTERN = /^[A-Za-z0-9_*-]{1,64}$/;

function fail(message: string): never {
  throw new OtaError(Reason.PLAN_INVALID, message);
}

function obj(v: unknown, what: string, keys: readonly string[]): { [k: string]: unknown } {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(`${what} must be an object`);
  for (const k of Object.keys(v)) if (!keys.includes(k)) fail(`${what}: unknown field "${k}"`);
  return v as { [k: string]: unknown };
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) fail(`${what} must be an integer ${min}..${max}`);
  return v;
}

function time(v: unknown, what: string): number {
  if (typeof v !== "string" || !/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?(\.\d+)?Z$/.test(v) || Number.isNaN(Date.parse(v))) fail(`${what} must be an ISO 8601 UTC time like 2026-12-01T02:00:00Z`);
  return Math.floor(Date.parse(v) / 1000);
}

/**
 * Parse a plan file's text strictly: unknown fields, wrong types, waves out of order are errors.
 * @throws OtaError PLAN_INVALID naming the field.
 */
export function parsePlan(text: string): Plan {
  if (utf8Encode(text).length > MAX_PLAN_BYTES) fail(`a plan is at most ${MAX_PLAN_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(`not JSON: ${(e as Error).message}`);
  }
  const p = obj(raw, "plan", ["release", "target", "groups", "waves", "maxInFlight", "window", "comment"]);
  const r = obj(p.release, "release", ["hardwareId", "version"]);
  if (typeof r.hardwareId !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(r.hardwareId)) fail("release.hardwareId must be 1..64 of [A-Za-z0-9._-]");
  if (typeof r.version !== "string") fail('release.version must be a version string like "1.1.0+2"');
  let version: ImageVersion;
  try {
    version = parseVersion(r.version);
  } catch {
    fail(`release.version "${r.version}" is not major.minor.revision+build`);
  }
  const groups: { [name: string]: string[] } = {};
  if (p.groups !== undefined) {
    const g = obj(p.groups, "groups", Object.keys(p.groups as object));
    for (const [name, list] of Object.entries(g)) {
      if (!NAME.test(name)) fail(`group name "${name}" must be 1..32 of [A-Za-z0-9._-]`);
      if (!Array.isArray(list) || list.length === 0 || list.length > 1000) fail(`groups.${name} must be a list of 1..1000 device id patterns`);
      for (const pat of list) if (typeof pat !== "string" || !PATTERN.test(pat)) fail(`groups.${name}: "${String(pat)}" is not a device id pattern ([A-Za-z0-9_-] and *)`);
      groups[name] = list as string[];
    }
  }
  let targetGroups: string[] | undefined;
  if (p.target !== undefined) {
    const t = obj(p.target, "target", ["groups"]);
    if (!Array.isArray(t.groups) || t.groups.length === 0) fail("target.groups must be a non-empty list of group names");
    for (const name of t.groups) if (typeof name !== "string" || !(name in groups)) fail(`target.groups: "${String(name)}" is not defined in groups`);
    targetGroups = t.groups as string[];
  }
  if (!Array.isArray(p.waves) || p.waves.length === 0 || p.waves.length > 10) fail("waves must be a list of 1..10 waves");
  const waves: Wave[] = [];
  let last = 0;
  for (const [i, w0] of p.waves.entries()) {
    const w = obj(w0, `waves[${i}]`, ["name", "upToPercent", "soakSec", "failureBudget", "minDevices"]);
    if (typeof w.name !== "string" || !NAME.test(w.name)) fail(`waves[${i}].name must be 1..32 of [A-Za-z0-9._-]`);
    if (typeof w.upToPercent !== "number" || !(w.upToPercent > last) || w.upToPercent > 100) fail(`waves[${i}].upToPercent must be above the previous wave's (${last}) and at most 100`);
    last = w.upToPercent;
    waves.push({ name: w.name, upToPercent: w.upToPercent, soakSec: int(w.soakSec ?? 0, `waves[${i}].soakSec`, 0, 30 * 86400), failureBudget: int(w.failureBudget ?? 0, `waves[${i}].failureBudget`, 0, 1_000_000), minDevices: int(w.minDevices ?? 1, `waves[${i}].minDevices`, 0, 1_000_000) });
  }
  if (last !== 100) fail("the last wave's upToPercent must be 100 (the rest of the fleet)");
  const maxInFlight = int(p.maxInFlight ?? 0, "maxInFlight", 0, 1_000_000);
  let notBefore: number | undefined;
  let notAfter: number | undefined;
  if (p.window !== undefined) {
    const w = obj(p.window, "window", ["notBefore", "notAfter"]);
    if (w.notBefore !== undefined) notBefore = time(w.notBefore, "window.notBefore");
    if (w.notAfter !== undefined) notAfter = time(w.notAfter, "window.notAfter");
    if (notBefore !== undefined && notAfter !== undefined && notAfter <= notBefore) fail("window.notAfter must be after window.notBefore");
  }
  return {
    release: { hardwareId: r.hardwareId, version },
    ...(targetGroups ? { targetGroups } : {}),
    groups,
    waves,
    maxInFlight,
    ...(notBefore !== undefined ? { notBefore } : {}),
    ...(notAfter !== undefined ? { notAfter } : {}),
  };
}

/** The rollout id of a plan: hex SHA-256 of its exact bytes. */
export function planId(text: string): string {
  return toHex(sha256(utf8Encode(text)));
}

/**
 * Check and bind a plan: parse it, hash it, and when `trusted` keys are given require a signature by one of them.
 * @throws OtaError PLAN_INVALID, PLAN_SIGNATURE.
 */
export function signedPlan(text: string, signature: string | undefined, trusted: readonly Uint8Array[] = []): SignedPlan {
  const plan = parsePlan(text);
  const id = planId(text);
  if (signature !== undefined || trusted.length > 0) {
    if (signature === undefined) throw new OtaError(Reason.PLAN_SIGNATURE, "serve trusts release keys (--trust): the plan must be signed (xs-ota rollout start --key KEY.pem)");
    const sig = fromHex(signature);
    if (!sig) throw new OtaError(Reason.PLAN_SIGNATURE, "the signature is not hex");
    if (trusted.length > 0 && !trusted.some((k) => verifyP256(fromHex(id)!, sig, k) === Reason.OK)) throw new OtaError(Reason.PLAN_SIGNATURE, "no trusted key verifies the plan's signature");
  }
  return { id, text, ...(signature !== undefined ? { signature } : {}), plan };
}

/** A device's position in the rollout, in [0, 1): the same on every instance. */
export function devicePosition(rolloutId: string, deviceId: string): number {
  const h = sha256(utf8Encode(`${rolloutId}:${deviceId}`));
  return (((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0) / 2 ** 32;
}

/** The index of the wave `deviceId` belongs to. */
export function waveOf(plan: Plan, rolloutId: string, deviceId: string): number {
  const p = devicePosition(rolloutId, deviceId) * 100;
  const i = plan.waves.findIndex((w) => p < w.upToPercent);
  return i < 0 ? plan.waves.length - 1 : i;
}

function globMatch(pattern: string, id: string): boolean {
  const re = new RegExp(`^${pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\-]/g, "\\$&")).join(".*")}$`);
  return re.test(id);
}

/** Is the device (hardware id and id) targeted by the plan? */
export function isTargeted(plan: Plan, hardwareId: string, deviceId: string): boolean {
  if (hardwareId !== plan.release.hardwareId) return false;
  if (!plan.targetGroups) return true;
  return plan.targetGroups.some((g) => plan.groups[g].some((pat) => globMatch(pat, deviceId)));
}

/** "usr-n520 1.1.0+2" */
export function planLabel(plan: Plan): string {
  return `${plan.release.hardwareId} ${formatVersion(plan.release.version)}`;
}
