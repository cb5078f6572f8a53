/**
 * The update journal: what must survive a reset, in the journal space of
 * src/store (power-safe records: a cut leaves the old or the new value).
 *
 *   key 0  session   phase, the signed manifest envelope, last reason, trial boots
 *                    (written at every phase change)
 *   key 1  progress  payload bytes durably consumed, bytes fetched (data
 *                    budget), download time spent, the patcher's checkpoint
 *                    (written every `progressEveryBytes` and at each patch block)
 *   key 2  policy    the trusted-time floor and the handled release ids
 *                    (replay defence), written when a release is taken or done
 * and, in the trust space beside it (src/store/layout.ts TRUST_SPACE):
 *   key 0  key set   the root-signed key set in force (src/update/keyset.ts
 *                    state encoding), written when a newer one is accepted
 *
 * A reset between two records converges: the agent at boot reads the session
 * phase first and reconciles it with what the bootloader actually booted.
 */
import { OtaError, Reason } from "../errors";
import type { RecordSpace, SpaceSpec } from "../store/records";
import { JOURNAL_SPACE } from "../store/layout";
import { MAX_HANDLED_RELEASES } from "../update/policy";
import { MAX_REVOCATION_STATE_BYTES } from "../update/revocation";
import { MAX_ENVELOPE_BYTES } from "../update/manifest";
import type { ImageVersion } from "../image/format";

/** The journal's record space (the storage layout's default journal space). */
export const AGENT_JOURNAL_SPACE: SpaceSpec = JOURNAL_SPACE;

export const Phase = Object.freeze({
  /** No update in progress. */
  IDLE: 0,
  /** Fetching the payload into the inactive slot (full write or patch). */
  DOWNLOADING: 1,
  /** Written and verified; waiting for the install preconditions. */
  STAGED: 2,
  /** Trailer written for a trial boot; the device is (re)booting into the new image. */
  TRIAL_PENDING: 3,
  /** The trial image confirmed itself (image_ok); raising the protected counter. */
  CONFIRMED: 4,
  /** The trial firmware gave up (no cloud within the deadline) and reboots unconfirmed. */
  TRIAL_FAILED: 5,
});
export type PhaseCode = (typeof Phase)[keyof typeof Phase];
export const PHASE_NAMES: readonly string[] = Object.freeze(["idle", "downloading", "staged", "trial-pending", "confirmed", "trial-failed"]);

/**
 * The final report of a finished release, kept until the cloud acknowledged
 * it, so an outcome is reported at least once whatever reset falls between
 * the journal saying "done" and the PUBACK.
 */
export interface Outcome {
  /** Index into OUTCOME_EVENTS. */
  readonly event: number;
  readonly reason: number;
  readonly target: ImageVersion;
  readonly releaseId: Uint8Array;
}

/** The status events an outcome can carry (docs/protocol.md). */
export const OUTCOME_EVENTS = Object.freeze(["committed", "rolled-back", "failed", "aborted"] as const);

export interface Session {
  readonly phase: PhaseCode;
  readonly lastReason: number;
  readonly trialBoots: number;
  /** The signed manifest envelope of the release in progress (empty when idle). */
  readonly envelope: Uint8Array;
  /** An outcome not yet acknowledged by the cloud (only while idle). */
  readonly outcome?: Outcome;
}

export interface Progress {
  /** Payload bytes consumed durably (full: bytes in the slot; delta: patch bytes up to the checkpoint). */
  readonly payloadOffset: number;
  /** Payload bytes received in all attempts (the data budget). */
  readonly bytesFetched: number;
  /** Download time spent across boots, ms. */
  readonly elapsedMs: number;
  /** The patcher's encoded checkpoint, or empty. */
  readonly checkpoint: Uint8Array;
  /**
   * The new image's first write unit(s) (its header), held back from flash
   * until the trial is requested (src/update/slot-writer.ts HeaderHold), or
   * empty while not all received. Absent reads as empty.
   */
  readonly header?: Uint8Array;
  /** Download time during which nothing arrived (stalled), across boots, ms. Absent reads as 0. */
  readonly stalledMs?: number;
  /** The release this progress belongs to (32 bytes), or empty: a re-offer of the same release goes on from here. */
  readonly release?: Uint8Array;
  /** Trials of `release` that rolled back without reaching the cloud (src/agent/retry.ts bounds them). Absent reads as 0. */
  readonly noCloudTrials?: number;
}

export interface PolicyRecord {
  readonly newestIssuedAt: number;
  readonly handled: readonly Uint8Array[];
  /** The newest accepted revocation record, in its state encoding (src/update/revocation.ts), or empty. */
  readonly revocation?: Uint8Array;
}

const FORMAT = 1;
const KEY_SESSION = 0;
const KEY_PROGRESS = 1;
const KEY_POLICY = 2;
const KEY_KEYSET = 0;

export const IDLE_SESSION: Session = Object.freeze({ phase: Phase.IDLE, lastReason: 0, trialBoots: 0, envelope: new Uint8Array(0) });
export const NO_PROGRESS: Progress = Object.freeze({ payloadOffset: 0, bytesFetched: 0, elapsedMs: 0, checkpoint: new Uint8Array(0) });

function corrupt(what: string): OtaError {
  return new OtaError(Reason.JOURNAL_CORRUPT, what);
}

/** Bytes of an encoded outcome: event u8, reason u16, version 8, release id 32. */
const OUTCOME_SIZE = 43;

export function encodeSession(s: Session): Uint8Array {
  if (s.envelope.length > MAX_ENVELOPE_BYTES) throw new RangeError("session envelope too large");
  const o = s.outcome;
  if (o && s.envelope.length > 0) throw new RangeError("an outcome is kept only by an idle session");
  const out = new Uint8Array(8 + s.envelope.length + (o ? OUTCOME_SIZE : 0));
  const v = new DataView(out.buffer);
  out[0] = FORMAT;
  out[1] = s.phase;
  v.setUint16(2, s.lastReason, true);
  out[4] = Math.min(255, s.trialBoots);
  out[5] = o ? 1 : 0;
  v.setUint16(6, s.envelope.length, true);
  out.set(s.envelope, 8);
  if (o) {
    const at = 8 + s.envelope.length;
    out[at] = o.event;
    v.setUint16(at + 1, o.reason, true);
    out[at + 3] = o.target.major;
    out[at + 4] = o.target.minor;
    v.setUint16(at + 5, o.target.revision, true);
    v.setUint32(at + 7, o.target.build, true);
    out.set(o.releaseId.subarray(0, 32), at + 11);
  }
  return out;
}

export function decodeSession(b: Uint8Array): Session {
  if (b.length < 8 || b[0] !== FORMAT) throw corrupt("session record format");
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const phase = b[1];
  if (phase > Phase.TRIAL_FAILED) throw corrupt(`session phase ${phase}`);
  const n = v.getUint16(6, true);
  const hasOutcome = b[5] === 1;
  if (b[5] > 1 || 8 + n + (hasOutcome ? OUTCOME_SIZE : 0) !== b.length) throw corrupt("session record length");
  if (phase !== Phase.IDLE && n === 0) throw corrupt("session without its manifest");
  let outcome: Outcome | undefined;
  if (hasOutcome) {
    const at = 8 + n;
    if (b[at] >= OUTCOME_EVENTS.length) throw corrupt(`outcome event ${b[at]}`);
    outcome = Object.freeze({
      event: b[at],
      reason: v.getUint16(at + 1, true),
      target: Object.freeze({ major: b[at + 3], minor: b[at + 4], revision: v.getUint16(at + 5, true), build: v.getUint32(at + 7, true) }),
      releaseId: b.slice(at + 11, at + 43),
    });
  }
  return Object.freeze({ phase: phase as PhaseCode, lastReason: v.getUint16(2, true), trialBoots: b[4], envelope: b.slice(8, 8 + n), outcome });
}

/**
 * Progress format 2: format 1's 16 bytes and checkpoint, then the held
 * header unit (u16 length + bytes), the stalled time (u32 ms) and the
 * release id (u8 length, 0 or 32, + bytes). Byte 1 (zero in format 1 and in
 * records written before it was used) counts the release's trials that
 * rolled back without the cloud. A format 1 record (before the header was
 * held back) still reads, with none of them.
 */
const PROGRESS_FORMAT = 2;
/** Largest header unit the record keeps (a 256-byte write unit). */
export const MAX_HELD_HEADER = 256;

export function encodeProgress(p: Progress): Uint8Array {
  const header = p.header ?? new Uint8Array(0);
  if (header.length > MAX_HELD_HEADER) throw new RangeError("progress: held header too large");
  const release = p.release ?? new Uint8Array(0);
  if (release.length !== 0 && release.length !== 32) throw new RangeError("progress: release id must be 32 bytes");
  const at = 16 + p.checkpoint.length;
  const out = new Uint8Array(at + 2 + header.length + 4 + 1 + release.length);
  const v = new DataView(out.buffer);
  out[0] = PROGRESS_FORMAT;
  out[1] = Math.min(255, p.noCloudTrials ?? 0);
  v.setUint32(2, p.payloadOffset, true);
  v.setUint32(6, p.bytesFetched, true);
  v.setUint32(10, Math.min(0xffffffff, p.elapsedMs), true);
  v.setUint16(14, p.checkpoint.length, true);
  out.set(p.checkpoint, 16);
  v.setUint16(at, header.length, true);
  out.set(header, at + 2);
  v.setUint32(at + 2 + header.length, Math.min(0xffffffff, p.stalledMs ?? 0), true);
  out[at + 6 + header.length] = release.length;
  out.set(release, at + 7 + header.length);
  return out;
}

export function decodeProgress(b: Uint8Array): Progress {
  if (b.length < 16 || (b[0] !== FORMAT && b[0] !== PROGRESS_FORMAT)) throw corrupt("progress record format");
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const n = v.getUint16(14, true);
  const base = {
    payloadOffset: v.getUint32(2, true),
    bytesFetched: v.getUint32(6, true),
    elapsedMs: v.getUint32(10, true),
    checkpoint: b.slice(16, 16 + n),
  };
  if (b[0] === FORMAT) {
    if (16 + n !== b.length) throw corrupt("progress checkpoint length");
    return Object.freeze({ ...base, header: new Uint8Array(0), stalledMs: 0, release: new Uint8Array(0) });
  }
  const at = 16 + n;
  if (at + 2 > b.length) throw corrupt("progress checkpoint length");
  const h = v.getUint16(at, true);
  if (h > MAX_HELD_HEADER || at + 7 + h > b.length) throw corrupt("progress header length");
  const r = b[at + 6 + h];
  if ((r !== 0 && r !== 32) || at + 7 + h + r !== b.length) throw corrupt("progress release length");
  return Object.freeze({ ...base, header: b.slice(at + 2, at + 2 + h), stalledMs: v.getUint32(at + 2 + h, true), release: b.slice(at + 7 + h), noCloudTrials: b[1] });
}

export function encodePolicy(p: PolicyRecord): Uint8Array {
  if (p.handled.length > MAX_HANDLED_RELEASES) throw new RangeError("too many handled releases");
  const rev = p.revocation ?? new Uint8Array(0);
  if (rev.length > MAX_REVOCATION_STATE_BYTES) throw new RangeError("revocation state too large");
  const at = 6 + 32 * p.handled.length;
  const out = new Uint8Array(at + 2 + rev.length);
  const v = new DataView(out.buffer);
  out[0] = FORMAT;
  v.setUint32(1, p.newestIssuedAt, true);
  out[5] = p.handled.length;
  p.handled.forEach((id, i) => out.set(id, 6 + 32 * i));
  v.setUint16(at, rev.length, true);
  out.set(rev, at + 2);
  return out;
}

export function decodePolicy(b: Uint8Array): PolicyRecord {
  if (b.length < 6 || b[0] !== FORMAT) throw corrupt("policy record format");
  const n = b[5];
  const at = 6 + 32 * n;
  if (n > MAX_HANDLED_RELEASES || b.length < at + 2) throw corrupt("policy record length");
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const r = v.getUint16(at, true);
  if (b.length !== at + 2 + r) throw corrupt("policy record length");
  const handled: Uint8Array[] = [];
  for (let i = 0; i < n; i++) handled.push(b.slice(6 + 32 * i, 38 + 32 * i));
  return Object.freeze({ newestIssuedAt: v.getUint32(1, true), handled: Object.freeze(handled), revocation: b.slice(at + 2) });
}

/** Typed access to the journal space. A corrupt record reads as absent and is reported once. */
export class Journal {
  /** Reason of the last unreadable record found (0 = none). */
  corruption = 0;

  /**
   * @param space the journal space
   * @param trust the trust space (TRUST_SPACE); without it no key set is kept (setKeySet throws)
   */
  constructor(
    private readonly space: RecordSpace,
    private readonly trust?: RecordSpace,
  ) {
    if (space.spec.keys < 3 || space.spec.maxValue < 8 + MAX_ENVELOPE_BYTES) throw new RangeError("journal space too small for the agent");
  }

  session(): Session {
    return this.read(KEY_SESSION, decodeSession) ?? IDLE_SESSION;
  }

  setSession(s: Session): void {
    this.space.put(KEY_SESSION, encodeSession(s));
  }

  progress(): Progress {
    return this.read(KEY_PROGRESS, decodeProgress) ?? NO_PROGRESS;
  }

  setProgress(p: Progress): void {
    this.space.put(KEY_PROGRESS, encodeProgress(p));
  }

  policy(): PolicyRecord {
    return this.read(KEY_POLICY, decodePolicy) ?? { newestIssuedAt: 0, handled: [] };
  }

  setPolicy(p: PolicyRecord): void {
    this.space.put(KEY_POLICY, encodePolicy(p));
  }

  /** The stored key set state (src/update/keyset.ts `encodeKeySetState`), or undefined. Decoded by the caller. */
  keySet(): Uint8Array | undefined {
    return this.trust?.get(KEY_KEYSET);
  }

  /** @throws RangeError without a trust space; OtaError STORE_TOO_LARGE for a state over its 496 bytes. */
  setKeySet(state: Uint8Array): void {
    if (!this.trust) throw new RangeError("no trust space to keep a key set in");
    this.trust.put(KEY_KEYSET, state);
  }

  private read<T>(key: number, decode: (b: Uint8Array) => T): T | undefined {
    const b = this.space.get(key);
    if (!b) return undefined;
    try {
      return decode(b);
    } catch (e) {
      if (!(e instanceof OtaError)) throw e;
      this.corruption = e.code;
      return undefined;
    }
  }
}
