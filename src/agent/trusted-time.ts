/**
 * The device's trusted time: what expiry is decided against.
 *
 * - It only moves forward. A floor (unix seconds) is persisted in the journal's
 *   policy record and survives resets; `now()` is never below it.
 * - Only signed sources move it: the issued-at of an accepted release
 *   manifest, revocation record or key set (each raises the floor), and a time
 *   statement of the time role (src/update/time-statement.ts), which also
 *   starts a running clock: from then on `now()` is the statement's time plus
 *   the monotonic time since it arrived. A statement older than `now()` is
 *   ignored (TIME_BEHIND): a replayed or rewound one cannot take time back.
 * - The heartbeat ack's plain `time` is not a source (src/agent/agent.ts keeps
 *   it apart, for log timestamps and the maintenance window only).
 * - Only the root moves time backwards: a key set of a new epoch resets the
 *   floor to its issued-at (`reset`), the recovery from a stolen time key.
 *
 * Flash wear: the floor is written when a manifest, revocation record or key
 * set raised it, when it has run FLOOR_PERSIST_STEP_S past the stored value,
 * and by `save()` — which the agent calls before it reports a release expired,
 * so a refusal made at time T is still made after any reset.
 */
import { Reason, type ReasonCode } from "../errors";

/** The running clock is written to the floor whenever it has moved this far (seconds) past the stored floor. */
export const FLOOR_PERSIST_STEP_S = 3600;
/**
 * With the clock running, a statement is verified (one ECDSA verify, about 0.6 s of a
 * 400 MHz Cortex-M7 on the device lane) only when it claims at least this much (s)
 * more than `now()`: a fresh statement every heartbeat says what the clock already
 * knows, and an unverified one never moves time.
 */
export const STATEMENT_VERIFY_AHEAD_S = 300;

export class TrustedTime {
  private floor: number;
  private stored: number;
  /** The newest statement this boot and the monotonic ms it arrived at. */
  private anchor: { time: number; atMs: number } | undefined;

  /**
   * @param monotonicMs the device's monotonic clock (ms since boot)
   * @param storedFloor the persisted floor (0 for none)
   * @param persist writes a new floor (power-safe); called with values that never decrease, except after `reset`
   */
  constructor(
    private readonly monotonicMs: () => number,
    storedFloor: number,
    private readonly persist: (floor: number) => void,
  ) {
    if (!Number.isInteger(storedFloor) || storedFloor < 0) throw new RangeError("storedFloor must be a non-negative integer");
    this.floor = storedFloor;
    this.stored = storedFloor;
  }

  /** Unix seconds: max(floor, last statement + time since it); 0 when nothing signed was ever seen. */
  now(): number {
    const a = this.anchor;
    if (!a) return this.floor;
    return Math.max(this.floor, a.time + Math.floor((this.monotonicMs() - a.atMs) / 1000));
  }

  /** True once a time statement arrived this boot: `now()` is a running clock, not only a floor. */
  get running(): boolean {
    return this.anchor !== undefined;
  }

  /** The floor as stored in the journal. */
  get storedFloor(): number {
    return this.stored;
  }

  /** Is a statement claiming `claimed` worth verifying? Always before the clock runs; after, only when it is well ahead. */
  worthVerifying(claimed: number): boolean {
    return !this.running || claimed >= this.now() + STATEMENT_VERIFY_AHEAD_S;
  }

  /**
   * A signed issued-at (manifest, revocation record, key set): raises the
   * floor (and stores it) when later than `now()`.
   */
  observeIssuedAt(issuedAt: number): void {
    if (issuedAt <= this.now()) return;
    this.floor = issuedAt;
    this.write(issuedAt);
  }

  /**
   * A verified time statement: the running clock restarts from it when it
   * is not behind `now()`.
   * @returns Reason.OK, or TIME_BEHIND (ignored: time only moves forward).
   */
  observeStatement(time: number): ReasonCode {
    const now = this.now();
    if (time < now) return Reason.TIME_BEHIND;
    this.anchor = { time, atMs: this.monotonicMs() };
    this.floor = time;
    if (time - this.stored >= FLOOR_PERSIST_STEP_S) this.write(time);
    return Reason.OK;
  }

  /** Store `now()` if it moved past the stored floor (before reporting a decision that depends on it). */
  save(): void {
    const now = this.now();
    if (now > this.stored) this.write(now);
  }

  /** The root's reset (a key set of a new epoch): time restarts from `time`, even backwards. */
  reset(time: number): void {
    this.anchor = undefined;
    this.floor = time;
    this.write(time);
  }

  private write(floor: number): void {
    this.persist(floor);
    this.stored = floor;
  }
}
