/**
 * The reconnect policy: exponential backoff with jitter, bounded, reset on
 * success. Jitter spreads a fleet's reconnects after a broker restart so
 * 10,000 devices do not arrive in the same second; the random source is
 * injected so a run is repeatable from its seed.
 */

/** A source of floats in [0, 1). */
export type RandomSource = () => number;

/**
 * xorshift32 as a RandomSource (the same generator as the mocks' Prng, so a
 * device seeded from its id and uptime spreads differently from its peers).
 * Not for cryptography.
 */
export function seededRandom(seed: number): RandomSource {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

export interface BackoffOptions {
  /** First delay in ms (before jitter). 1..maxMs. */
  readonly initialMs: number;
  /** Ceiling of every delay in ms. initialMs..3_600_000. */
  readonly maxMs: number;
  /** Growth per failed attempt, 1..10 (default 2). */
  readonly multiplier?: number;
  /**
   * Fraction of the delay that is random, 0..1 (default 0.5): the delay is
   * `d * (1 - jitter * r)` with r in [0, 1), so it never exceeds the ceiling.
   */
  readonly jitter?: number;
  readonly random: RandomSource;
}

function aRange(v: unknown, lo: number, hi: number, what: string): number {
  if (typeof v === "number" && v >= lo && v <= hi) return v;
  throw new RangeError(`Backoff: ${what} must be a number in ${lo}..${hi}, got ${String(v)}`);
}

/**
 * Exponential backoff. `next()` gives the delay before the next attempt and
 * counts the attempt; `reset()` after a successful connection.
 * Bound: every delay is in [initialMs * (1 - jitter), maxMs].
 *
 * @example
 *   const b = new Backoff({ initialMs: 1000, maxMs: 60000, random: seededRandom(id) });
 *   clock.setTimer(reconnect, b.next());
 */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly multiplier: number;
  private readonly jitter: number;
  private readonly random: RandomSource;
  private base: number;
  /** Failed attempts since the last reset. */
  attempts = 0;

  constructor(o: BackoffOptions) {
    this.maxMs = aRange(o.maxMs, 1, 3_600_000, "maxMs");
    this.initialMs = aRange(o.initialMs, 1, this.maxMs, "initialMs");
    this.multiplier = aRange(o.multiplier ?? 2, 1, 10, "multiplier");
    this.jitter = aRange(o.jitter ?? 0.5, 0, 1, "jitter");
    if (typeof o.random !== "function") throw new TypeError("Backoff: random must be a function returning [0, 1)");
    this.random = o.random;
    this.base = this.initialMs;
  }

  /** The delay in whole ms before the next attempt. */
  next(): number {
    const r = Math.min(Math.max(this.random(), 0), 0.999999);
    const delay = Math.round(this.base * (1 - this.jitter * r));
    this.base = Math.min(this.base * this.multiplier, this.maxMs);
    this.attempts++;
    return Math.max(1, Math.min(delay, this.maxMs));
  }

  /** After a success: the next failure starts from initialMs again. */
  reset(): void {
    this.base = this.initialMs;
    this.attempts = 0;
  }
}
