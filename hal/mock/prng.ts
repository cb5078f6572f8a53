/**
 * A small seeded PRNG (xorshift32) so that every fault run is repeatable from
 * its seed, on Node and on XS alike. Not for cryptography.
 */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = (seed >>> 0) || 0x9e3779b9;
  }
  /** A uniformly distributed 32-bit unsigned integer. */
  nextU32(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    if (!(n > 0)) throw new RangeError(`below: n must be > 0, got ${n}`);
    return this.nextU32() % n;
  }
  /** A float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }
  /** Fill `out` with random bytes. */
  fill(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i++) out[i] = this.nextU32() & 0xff;
    return out;
  }
}
