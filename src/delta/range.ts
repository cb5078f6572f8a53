/**
 * The range decoder of codec 2 (the encoder is tools/delta/range-encoder.ts):
 * LZMA's binary range coder with 12-bit probabilities, over one block's
 * payload held in memory. The encoder leaves out LZMA's always-zero first
 * byte and the trailing zero bytes of its final flush, so bytes read past the
 * payload's end are zeros.
 *
 * Bounds: one decision reads at most two bytes (range >= 2^24 before it,
 * >= 2^12 after, since 1 <= p1 <= 4095); the caller bounds the number of
 * decisions per block. A state a valid stream cannot reach (code >= range)
 * is PATCH_DECOMPRESS.
 */
import { OtaError, Reason } from "../errors";
import { PROB_BITS, RANGE_TOP, type BitCoder } from "./cm";

export class RangeDecoder implements BitCoder {
  private input: Uint8Array = new Uint8Array(0);
  private end = 0;
  private at = 0;
  private range = 0;
  private code = 0;

  /** Start decoding `input[0, end)`. */
  begin(input: Uint8Array, end: number): void {
    this.input = input;
    this.end = end;
    this.at = 0;
    this.range = 0xffffffff;
    let code = 0;
    for (let i = 0; i < 4; i++) code = code * 256 + this.next();
    this.code = code;
    if (code >= this.range) throw new OtaError(Reason.PATCH_DECOMPRESS, "range coder: initial code out of range");
  }

  /** Payload bytes consumed so far, counting the virtual zeros past the end. */
  get position(): number {
    return this.at;
  }

  private next(): number {
    const i = this.at++;
    return i < this.end ? this.input[i] : 0;
  }

  /** Decode one decision with P(1) = p1 / 4096; `_bit` (the encoder's input) is ignored. */
  bit(p1: number, _bit: number): number {
    const bound = (this.range >>> PROB_BITS) * p1;
    let bit: number;
    if (this.code < bound) {
      this.range = bound;
      bit = 1;
    } else {
      this.code -= bound;
      this.range -= bound;
      bit = 0;
    }
    // At most two rounds (see the file comment).
    while (this.range < RANGE_TOP) {
      this.range = this.range * 256;
      this.code = this.code * 256 + this.next();
      if (this.code >= this.range) throw new OtaError(Reason.PATCH_DECOMPRESS, "range coder: code out of range");
    }
    return bit;
  }
}
