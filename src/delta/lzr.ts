/**
 * Codec 4 (patch format version 2, docs/formats.md "Codec 4"): codec 3's
 * operations, relocation rules and block structure (lz.ts), coded with an
 * adaptive binary range coder instead of per-block Huffman codes. Nothing is
 * sent for the codes: every block starts from the same probabilities and
 * learns as it goes, and each symbol is coded in a context codec 3 cannot
 * afford a table for:
 *
 * - the operation symbol, by the previous operation's kind (after a literal
 *   run comes a copy, after a copy-and-add another one, ...);
 * - a length's two lowest extra bits, by the operation's kind, its extra-bit
 *   count and the new offset's position in its word (the distance to the next
 *   changed byte of a moved pointer depends on where in the word one is);
 * - literals and added bytes, by the offset's parity (Thumb halfwords);
 * - distances and alignment changes, one model each.
 *
 * Symbols are bit trees (LZMA's), MSB first, with cm.ts's 12-bit adaptive
 * probabilities (a 4-bit count for faster early learning); extra bits and the
 * header's fields (start alignment, rules: the same fields as codec 3) are
 * coded at probability 1/2. The range coder is codec 2's (range.ts; encoder
 * tools/delta/range-encoder.ts): the payload's trailing zero bytes are left
 * out, and the decoder reads zeros past its end.
 *
 * Memory: the decoder of codec 3 without its Huffman tables, plus the model
 * (`LZR_PROBS` u16, 9 KiB), reset at every block.
 */
import { PROB_BITS, PROB_INIT, RATE } from "./cm";
import { ALPHABET_SIZES, Alphabet, DIST_M, LEN_SYMBOLS, LZ_OLD_CHUNK, LZ_OUT_CHUNK, LzBlockDecoder, malformed, OP_ADD, OP_NEW, S_END, S_OFFSET, S_RULES, S_TABLE_HEAD, SEEK_PREV_SYMBOL, SEEK_SYMBOL, unzigzag, type LzInput, type LzIo } from "./lz";
import type { BlockCrc } from "./crc";

/** The previous-kind context of the first operation of a block, and after SEEK and SEEK_PREV (the op kinds are 0..4). */
export const PREV_START = 7;
export const PREV_SEEK = 5;
export const PREV_SEEK_PREV = 6;

/** Bits of the op symbol tree (the op alphabet has 162 symbols) and of the distance and alignment-change trees (100 and 108). */
export const OP_TREE_BITS = 8;
export const DIST_TREE_BITS = 7;

/** Model layout: offsets of each tree's probabilities (a tree of b bits uses 2^b entries, 0 unused). */
export const LZR_OP = 0; // 8 previous kinds × 256
export const LZR_LEN = LZR_OP + 8 * 256; // (5 kinds × 4 word positions × 16 extra-bit counts) × 4
export const LZR_DIST = LZR_LEN + 5 * 4 * 16 * 4;
export const LZR_DELTA = LZR_DIST + 128;
export const LZR_LIT = LZR_DELTA + 128; // 2 parities × 256
export const LZR_DIFF = LZR_LIT + 2 * 256; // 2 parities × 256
export const LZR_PROBS = LZR_DIFF + 2 * 256;

/** The tree of an operation symbol after an operation of kind `prev`. */
export function opContext(prev: number): number {
  return LZR_OP + prev * 256;
}

/** How many of a length's `extra` bits are coded in context (the lowest ones); the rest are direct. */
export function lowLengthBits(extra: number): number {
  return extra < 2 ? extra : 2;
}

/** The tree of the low extra bits of a length of `kind` with `extra` extra bits, at new offset `at`. */
export function lengthContext(kind: number, at: number, extra: number): number {
  return LZR_LEN + ((kind * 4 + (at & 3)) * 16 + extra) * 4;
}

/** The trees of a literal and of an added byte at new offset `at`. */
export function literalContext(at: number): number {
  return LZR_LIT + (at & 1) * 256;
}
export function diffContext(at: number): number {
  return LZR_DIFF + (at & 1) * 256;
}

/** The model at the start of every block. */
export function resetModel(probs: Uint16Array): void {
  probs.fill(PROB_INIT);
}

/**
 * The range coder's initial range and normalization threshold: codec 2's
 * coder (LZMA's) keeps the range in [2^24, 2^32); codec 4 keeps it in
 * [2^23, 2^31), so that the decoder's range, code and bounds are 31-bit
 * integers, which XS keeps as integers (above 2^31 a value becomes a double;
 * on the device lane this saved under 1 %: the bytecodes a decision takes
 * dominate). The encoder is the same (tools/delta/range-encoder.ts, with
 * these two values).
 */
export const LZR_RANGE = 0x7fffffff;
export const LZR_TOP = 1 << 23;

/** Most payload bytes one operation can take: at most 2 bytes a decision, at most 56 decisions (op 8, length 14, distance 7 + 22 or change 7 + 25). */
const NEED_OP_BYTES = 128;
/** Most payload bytes one literal or added byte can take (8 decisions). */
const SYMBOL_BYTES = 16;
/** What `available` (in bits) must show before a header step: the longest rule is 110 direct bits. */
const NEED_HEADER_BITS = 128;
const HALF = 1 << (PROB_BITS - 1);

/**
 * The codec-4 block decoder: codec 3's (lz.ts) with the symbol decoding
 * replaced; what the operations do, their checks and the bounded slices are
 * codec 3's.
 */
export class LzrBlockDecoder extends LzBlockDecoder {
  private readonly probs = new Uint16Array(LZR_PROBS);
  private range = 0;
  private code = 0;
  private prevKind = PREV_START;

  constructor(crcUpdate?: BlockCrc) {
    super(crcUpdate, false);
    // The range decoder never uses the bit buffer (bitCount stays 0): the bound is in whole bytes.
    this.needOpBits = NEED_OP_BYTES * 8;
  }

  override get bytes(): number {
    return super.bytes + this.probs.byteLength;
  }

  override begin(block: number, storedLength: number, span: number, newStart: number, oldLength: number): void {
    super.begin(block, storedLength, span, newStart, oldLength);
    resetModel(this.probs);
    this.prevKind = PREV_START;
  }

  /** The next payload byte, or a zero past its end (the callers have checked the window holds what they take). */
  private nextByte(input: LzInput): number {
    if (this.payloadLeft === 0) return 0;
    if (input.pos === input.end) throw new Error("LzrBlockDecoder: read past the input window");
    this.payloadLeft--;
    return input.buf[input.pos++];
  }

  /** Bits the window is sure to hold: a direct bit takes at most a seventh of a byte. */
  protected override available(input: LzInput): number {
    const inWindow = input.end - input.pos;
    if (inWindow >= this.payloadLeft) return Infinity;
    return inWindow > 1 ? (inWindow - 1) * 7 : 0;
  }

  protected override header(input: LzInput): boolean {
    const state = this.state;
    if (state === S_TABLE_HEAD) {
      // Start the range decoder: four bytes (zeros past the payload's end).
      const inWindow = input.end - input.pos;
      if (inWindow < 4 && inWindow < this.payloadLeft) return false;
      this.range = LZR_RANGE;
      let code = 0;
      for (let i = 0; i < 4; i++) code = code * 256 + this.nextByte(input);
      if (code >= this.range) throw malformed(this.block, "range coder: initial code out of range");
      this.code = code;
      this.state = S_OFFSET;
      return true;
    }
    if (this.available(input) < NEED_HEADER_BITS) return false;
    if (state === S_RULES) this.rule(input);
    else this.startAlignment(input);
    return true;
  }

  /** `n` direct bits (probability 1/2), MSB first; n <= 33. */
  protected override bits(input: LzInput, n: number): number {
    let range = this.range;
    let code = this.code;
    let v = 0;
    for (let i = 0; i < n; i++) {
      const bound = (range >>> PROB_BITS) * HALF;
      if (code < bound) {
        range = bound;
        v = v * 2 + 1;
      } else {
        code -= bound;
        range -= bound;
        v = v * 2;
      }
      while (range < LZR_TOP) {
        range = range * 256;
        code = code * 256 + this.nextByte(input);
        if (code >= range) throw malformed(this.block, "range coder: code out of range");
      }
    }
    this.range = range;
    this.code = code;
    return v;
  }

  /** A symbol of `n` bits from the bit tree at `base` (each decision adapts its probability). */
  private tree(input: LzInput, base: number, n: number): number {
    const probs = this.probs;
    let range = this.range;
    let code = this.code;
    let node = 1;
    for (let i = 0; i < n; i++) {
      // p1Of and adapt (cm.ts), written out: this is the codec's hot path.
      const at = base + node;
      const s = probs[at];
      const c = s & 15;
      const q = s & 0xfff0;
      let p = s >> 4;
      if (p < 1) p = 1;
      const bound = (range >>> PROB_BITS) * p;
      if (code < bound) {
        range = bound;
        node = node * 2 + 1;
        probs[at] = ((q + (((65535 - q) * RATE[c]) >> 15)) & 0xfff0) | (c < 15 ? c + 1 : 15);
      } else {
        code -= bound;
        range -= bound;
        node = node * 2;
        probs[at] = ((q + ((-q * RATE[c]) >> 15)) & 0xfff0) | (c < 15 ? c + 1 : 15);
      }
      while (range < LZR_TOP) {
        range = range * 256;
        code = code * 256 + this.nextByte(input);
        if (code >= range) throw malformed(this.block, "range coder: code out of range");
      }
    }
    this.range = range;
    this.code = code;
    return node - (1 << n);
  }

  protected override op(input: LzInput): void {
    const at = this.newStart + this.produced;
    const sym = this.tree(input, opContext(this.prevKind), OP_TREE_BITS);
    if (sym === SEEK_SYMBOL) {
      const s = this.tree(input, LZR_DELTA, DIST_TREE_BITS);
      if (s >= ALPHABET_SIZES[Alphabet.DELTA]) throw malformed(this.block, `alignment-change symbol ${s}`);
      this.seek(unzigzag(this.bucketValue(input, s, DIST_M)));
      this.prevKind = PREV_SEEK;
      return;
    }
    if (sym === SEEK_PREV_SYMBOL) {
      this.seekPrevious();
      this.prevKind = PREV_SEEK_PREV;
      return;
    }
    if (sym > SEEK_PREV_SYMBOL) throw malformed(this.block, `operation symbol ${sym}`);
    const kind = sym >>> 5;
    // The length's bucket (codec 3's, LEN_M = 1): 0..3 direct, then (2 + mantissa) << extra plus `extra` bits.
    let length = (sym & (LEN_SYMBOLS - 1)) + 1;
    if (length > 4) {
      const s = length - 5;
      const extra = (s >>> 1) + 1;
      const lo = lowLengthBits(extra);
      const high = this.bits(input, extra - lo);
      const low = this.tree(input, lengthContext(kind, at, extra), lo);
      length = ((2 + (s & 1)) << extra) + high * (1 << lo) + low + 1;
    }
    this.checkRun(kind, length);
    if (kind === OP_NEW) {
      const s = this.tree(input, LZR_DIST, DIST_TREE_BITS);
      if (s >= ALPHABET_SIZES[Alphabet.DIST]) throw malformed(this.block, `distance symbol ${s}`);
      this.checkDistance(this.bucketValue(input, s, DIST_M) + 1);
    }
    this.prevKind = kind;
    this.startRun(kind, length);
  }

  protected override symbolRun(input: LzInput, io: LzIo, kind: number, at: number, n: number): number {
    const inWindow = input.end - input.pos;
    if (inWindow < this.payloadLeft) {
      const fits = (inWindow / SYMBOL_BYTES) | 0;
      if (fits < n) n = fits;
    }
    if (n <= 0) return 0;
    const buf = this.work;
    let base: number;
    if (kind === OP_ADD) {
      if (n > LZ_OLD_CHUNK) n = LZ_OLD_CHUNK;
      // The old bytes go to the end of the output batch and the differences are added there.
      const oldAt = this.oldBytes(io, at + this.alignment, n);
      base = this.outRoom(io, n);
      buf.copyWithin(base, oldAt, oldAt + n);
      for (let i = 0; i < n; i++) buf[base + i] = (buf[base + i] + this.tree(input, diffContext(at + i), 8)) & 0xff;
    } else {
      if (n > LZ_OUT_CHUNK) n = LZ_OUT_CHUNK;
      base = this.outRoom(io, n);
      for (let i = 0; i < n; i++) buf[base + i] = this.tree(input, literalContext(at + i), 8);
    }
    this.outLength = base + n;
    this.produced += n;
    return n;
  }

  /** The span is complete: every payload byte must have been read (only zeros may follow, and they are left out). */
  protected override endBlock(): void {
    if (this.payloadLeft > 0) throw malformed(this.block, "payload continues after the span is complete");
    this.state = S_END;
  }
}
