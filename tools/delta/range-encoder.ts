/**
 * The range encoder of codec 2 (decoder: src/delta/range.ts). LZMA's carry
 * propagating encoder with 12-bit probabilities; it leaves out the always-zero
 * first byte, ends on the value in the final interval with the most trailing
 * zero bytes, and drops those (the decoder reads zeros past the end).
 */
import { PROB_BITS, RANGE_TOP, type BitCoder } from "../../src/delta/cm";

export class RangeEncoder implements BitCoder {
  private low = 0; // up to 2^32 + 2^32: a carry sits in bit 32

  /**
   * @param range the initial range (codec 4: 2^31 - 1, so that the decoder's range and code fit a 31-bit integer)
   * @param top normalize when the range falls below this (codec 4: 2^23)
   */
  constructor(
    private range = 0xffffffff,
    private readonly top = RANGE_TOP,
  ) {}

  private cache = 0;
  private pending = 1; // bytes waiting for a possible carry: the cache, then 0xFF bytes
  private first = true;
  private readonly out: number[] = [];

  bit(p1: number, bit: number): number {
    if (!(p1 >= 1 && p1 <= 4095)) throw new RangeError(`probability ${p1}`);
    const bound = (this.range >>> PROB_BITS) * p1;
    if (bit) this.range = bound;
    else {
      this.low += bound;
      this.range -= bound;
    }
    while (this.range < this.top) {
      this.range = this.range * 256;
      this.shiftLow();
    }
    return bit;
  }

  private shiftLow(): void {
    if (this.low < 0xff000000 || this.low >= 0x100000000) {
      const carry = this.low >= 0x100000000 ? 1 : 0;
      let byte = this.cache;
      do {
        if (this.first) this.first = false;
        else this.out.push((byte + carry) & 0xff);
        byte = 0xff;
      } while (--this.pending !== 0);
      this.cache = Math.floor(this.low / 0x1000000) & 0xff;
    }
    this.pending++;
    this.low = (this.low % 0x1000000) * 256;
  }

  /** End the stream and return its bytes. */
  finish(): Uint8Array {
    // Any value in [low, low + range) decodes the same: take the one with the most trailing zero bytes.
    for (const unit of [0x100000000, 0x1000000, 0x10000, 0x100, 1]) {
      const v = Math.ceil(this.low / unit) * unit;
      if (v < this.low + this.range) {
        this.low = v;
        break;
      }
    }
    for (let i = 0; i < 5; i++) this.shiftLow();
    let n = this.out.length;
    while (n > 0 && this.out[n - 1] === 0) n--;
    return Uint8Array.from(this.out.slice(0, n));
  }
}
