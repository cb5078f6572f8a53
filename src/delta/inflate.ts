/**
 * A streaming DEFLATE (RFC 1951) decoder for one patch block: compressed
 * bytes in as they arrive, the whole raw block out, into a caller-owned buffer
 * of fixed size. The history window is that output buffer itself (blocks are
 * compressed independently, so no match reaches before the block's start):
 * the decoder needs no 32 KiB window of its own, only its Huffman tables and
 * a 1 KiB input staging buffer (~4 KiB in all).
 *
 * Strict: over-subscribed codes, distances before the block's start, output
 * past the expected length, input past its end, trailing input and a missing
 * end-of-block code are all PATCH_DECOMPRESS.
 *
 * Bounds: every decoded symbol and every block header consumes at least one
 * input bit, and every match produces at most 258 bytes into a buffer of
 * fixed length, so one block runs at most 8 × input + output steps. With an
 * output limit (`setLimit`, the patcher's slice) one call decodes at most the
 * limit plus one match (257 bytes) more, and resumes on the next call.
 */
import { OtaError, Reason } from "../errors";

const LENGTH_BASE = Object.freeze([3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]);
const LENGTH_EXTRA = Object.freeze([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]);
const DIST_BASE = Object.freeze([
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
]);
const DIST_EXTRA = Object.freeze([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]);
/** The order code-length code lengths are sent in (RFC 1951 3.2.7). */
const CODE_LENGTH_ORDER = Object.freeze([16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]);
const MAX_BITS = 15;

function corrupt(message: string): OtaError {
  return new OtaError(Reason.PATCH_DECOMPRESS, message);
}

/**
 * A canonical Huffman code: counts per length and symbols ordered by code
 * (for the bit-by-bit path), plus a lookup table on the first `fastBits` bits
 * (entry = symbol << 4 | length; 0 = code longer than fastBits or unused).
 */
class HuffmanCode {
  readonly count = new Uint16Array(MAX_BITS + 1);
  readonly symbol: Uint16Array;
  readonly fast: Uint16Array;
  private readonly next = new Uint16Array(MAX_BITS + 2);

  constructor(maxSymbols: number, readonly fastBits: number) {
    this.symbol = new Uint16Array(maxSymbols);
    this.fast = new Uint16Array(1 << fastBits);
  }

  get bytes(): number {
    return this.count.byteLength + this.symbol.byteLength + this.fast.byteLength + this.next.byteLength;
  }

  /** Build from `lengths[start, start + n)`. Incomplete codes are allowed; over-subscribed are not. */
  build(lengths: Uint8Array, start: number, n: number): void {
    const { count, symbol, fast, next } = this;
    count.fill(0);
    fast.fill(0);
    for (let s = 0; s < n; s++) count[lengths[start + s]]++;
    count[0] = 0;
    let left = 1;
    for (let len = 1; len <= MAX_BITS; len++) {
      left = left * 2 - count[len];
      if (left < 0) throw corrupt("over-subscribed Huffman code");
    }
    // Symbols in code order: by length, then by symbol value.
    next[1] = 0;
    for (let len = 1; len < MAX_BITS; len++) next[len + 1] = next[len] + count[len];
    for (let s = 0; s < n; s++) {
      const len = lengths[start + s];
      if (len !== 0) symbol[next[len]++] = s;
    }
    // Canonical codes, bit-reversed into the lookup table (DEFLATE sends codes MSB first).
    let code = 0;
    let index = 0;
    for (let len = 1; len <= MAX_BITS; len++) {
      for (let k = 0; k < count[len]; k++, index++, code++) {
        if (len > this.fastBits) continue;
        let reversed = 0;
        for (let b = 0; b < len; b++) reversed |= ((code >>> b) & 1) << (len - 1 - b);
        const entry = (symbol[index] << 4) | len;
        for (let r = reversed; r < fast.length; r += 1 << len) fast[r] = entry;
      }
      code <<= 1;
    }
  }
}

/** Input staging buffer: the compressed block streams through it, never buffered whole. */
export const INFLATE_STAGING = 1024;
/** Lookahead before a block header: the largest dynamic table header is 562 bytes. */
const TABLE_LOOKAHEAD = 600;
/** Lookahead before a symbol: length code + extra + distance code + extra <= 48 bits. */
const SYMBOL_LOOKAHEAD = 8;

const AT_HEADER = 0;
const IN_CODES = 1;
const IN_STORED = 2;
const ENDED = 3;

/**
 * One reusable streaming decoder. `begin` a block, `push` its compressed bytes
 * as they arrive (any split), and it is `done` when the DEFLATE stream has
 * ended having produced exactly the expected output from exactly the declared
 * input. Decoding steps run only with enough input staged for the largest
 * step (or with the whole rest of the input staged), so a step never stops in
 * the middle; "ends early" therefore means the stream really is truncated.
 */
export class Inflater {
  private readonly literal = new HuffmanCode(288, 9);
  private readonly distance = new HuffmanCode(32, 8);
  private readonly codeLength = new HuffmanCode(19, 7);
  private readonly lengths = new Uint8Array(288 + 32);
  private readonly input = new Uint8Array(INFLATE_STAGING);
  private pos = 0;
  private end = 0;
  private bitBuffer = 0;
  private bitCount = 0;
  private out: Uint8Array = new Uint8Array(0);
  private outLength = 0;
  private produced = 0;
  private unstaged = 0;
  private inputLength = 0;
  private state = ENDED;
  private last = 0;
  private storedLeft = 0;
  /** Decoding pauses once `produced` reaches this (a slice; one match may pass it by at most 257 bytes). */
  private limit = Infinity;

  /** Bytes of RAM this decoder holds (tables and staging buffer), for the memory account. */
  get bytes(): number {
    return this.literal.bytes + this.distance.bytes + this.codeLength.bytes + this.lengths.byteLength + this.input.byteLength;
  }

  /** Start a block: `inputLength` compressed bytes will produce exactly `outLength` bytes into `out`. */
  begin(out: Uint8Array, outLength: number, inputLength: number): void {
    if (outLength > out.length) throw new RangeError("inflate: output length exceeds the buffer");
    this.out = out;
    this.outLength = outLength;
    this.produced = 0;
    this.inputLength = inputLength;
    this.unstaged = inputLength;
    this.pos = 0;
    this.end = 0;
    this.bitBuffer = 0;
    this.bitCount = 0;
    this.state = AT_HEADER;
    this.last = 0;
  }

  /**
   * Pause decoding once the output holds `limit` bytes (Infinity: never);
   * `push` then takes no more input until the limit is raised.
   */
  setLimit(limit: number): void {
    this.limit = limit;
  }

  /** Output bytes decoded so far in this block. */
  get outputLength(): number {
    return this.produced;
  }

  /** True while decoding waits for the output limit to be raised. */
  get paused(): boolean {
    return this.state !== ENDED && this.produced >= this.limit;
  }

  /** True once the stream has ended and every check passed. */
  get done(): boolean {
    return this.state === ENDED;
  }

  /**
   * Feed `chunk[start, end)`; returns how many bytes were taken (no more than
   * the block's remaining input).
   * @throws OtaError PATCH_DECOMPRESS for a malformed or mismatched stream.
   */
  push(chunk: Uint8Array, start: number, end: number): number {
    let at = start;
    // Bounded: each pass stages at least one byte or ends (decoding consumes staged input).
    for (;;) {
      this.run();
      if (this.state === ENDED || at >= end || this.unstaged === 0 || this.produced >= this.limit) break;
      if (this.pos > 0) {
        this.input.copyWithin(0, this.pos, this.end);
        this.end -= this.pos;
        this.pos = 0;
      }
      const n = Math.min(this.input.length - this.end, end - at, this.unstaged);
      if (n === 0) break;
      this.input.set(chunk.subarray(at, at + n), this.end);
      this.end += n;
      at += n;
      this.unstaged -= n;
    }
    return at - start;
  }

  /** Whole bytes available to decode now (staged and buffered bits). */
  private available(): number {
    return this.end - this.pos + (this.bitCount >>> 3);
  }

  private enough(need: number): boolean {
    return this.unstaged === 0 || this.available() >= need;
  }

  private run(): void {
    // Bounded: every step consumes input bits or output space, both finite.
    while (this.state !== ENDED) {
      if (this.state === AT_HEADER) {
        if (!this.enough(TABLE_LOOKAHEAD)) return;
        if (this.last) {
          this.finishStream();
          return;
        }
        this.last = this.bits(1);
        const type = this.bits(2);
        if (type === 0) {
          this.storedHeader();
          this.state = IN_STORED;
        } else if (type === 1) {
          this.fixedTables();
          this.state = IN_CODES;
        } else if (type === 2) {
          this.dynamicTables();
          this.state = IN_CODES;
        } else throw corrupt("reserved block type 3");
      } else if (this.state === IN_CODES) {
        while (this.state === IN_CODES) {
          if (this.produced >= this.limit || !this.enough(SYMBOL_LOOKAHEAD)) return;
          if (this.symbol()) this.state = AT_HEADER;
        }
      } else {
        // Whole bytes left in the bit buffer come first, then the staged input.
        while (this.storedLeft > 0 && this.bitCount >= 8 && this.produced < this.limit) {
          this.out[this.produced++] = this.bits(8);
          this.storedLeft--;
        }
        const n = Math.min(this.storedLeft, this.end - this.pos, Math.max(0, this.limit - this.produced));
        if (n > 0) {
          if (this.produced + n > this.outLength) throw corrupt("output past the block's length");
          this.out.set(this.input.subarray(this.pos, this.pos + n), this.produced);
          this.produced += n;
          this.pos += n;
          this.storedLeft -= n;
        }
        if (this.storedLeft > 0) {
          if (this.produced >= this.limit) return;
          if (this.unstaged === 0) throw corrupt("stored block ends early");
          return;
        }
        this.state = AT_HEADER;
      }
    }
  }

  private finishStream(): void {
    if (this.produced !== this.outLength) throw corrupt(`stream produced ${this.produced} bytes, block says ${this.outLength}`);
    const unused = this.end - this.pos + (this.bitCount >>> 3) + this.unstaged;
    if (unused !== 0) throw corrupt(`stream ended ${unused} bytes before its declared length ${this.inputLength}`);
    this.state = ENDED;
  }

  private bits(n: number): number {
    while (this.bitCount < n) {
      if (this.pos >= this.end) throw corrupt("compressed block ends early");
      this.bitBuffer |= this.input[this.pos++] << this.bitCount;
      this.bitCount += 8;
    }
    const v = this.bitBuffer & ((1 << n) - 1);
    this.bitBuffer >>>= n;
    this.bitCount -= n;
    return v;
  }

  private decode(h: HuffmanCode): number {
    // Fast path: enough bits buffered (or available) for a table lookup.
    while (this.bitCount < h.fastBits && this.pos < this.end) {
      this.bitBuffer |= this.input[this.pos++] << this.bitCount;
      this.bitCount += 8;
    }
    const entry = h.fast[this.bitBuffer & ((1 << h.fastBits) - 1)];
    if (entry !== 0 && (entry & 15) <= this.bitCount) {
      this.bitBuffer >>>= entry & 15;
      this.bitCount -= entry & 15;
      return entry >>> 4;
    }
    // Slow path: walk the canonical code one bit at a time.
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= MAX_BITS; len++) {
      code |= this.bits(1);
      const count = h.count[len];
      if (code - first < count) return h.symbol[index + code - first];
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    throw corrupt("invalid Huffman code");
  }

  private storedHeader(): void {
    // Skip to a byte boundary; LEN and NLEN follow, read through the bit buffer
    // (whole bytes may already sit there: the staged input before them is gone).
    this.bits(this.bitCount & 7);
    const len = this.bits(16);
    const nlen = this.bits(16);
    if ((len ^ 0xffff) !== nlen) throw corrupt("stored block length check");
    if (this.produced + len > this.outLength) throw corrupt("output past the block's length");
    this.storedLeft = len;
  }

  private fixedTables(): void {
    const l = this.lengths;
    l.fill(8, 0, 144);
    l.fill(9, 144, 256);
    l.fill(7, 256, 280);
    l.fill(8, 280, 288);
    this.literal.build(l, 0, 288);
    l.fill(5, 0, 30);
    this.distance.build(l, 0, 30);
  }

  private dynamicTables(): void {
    const nlen = this.bits(5) + 257;
    const ndist = this.bits(5) + 1;
    const ncode = this.bits(4) + 4;
    if (nlen > 286 || ndist > 30) throw corrupt("too many length or distance codes");
    const l = this.lengths;
    l.fill(0, 0, 19);
    for (let i = 0; i < ncode; i++) l[CODE_LENGTH_ORDER[i]] = this.bits(3);
    this.codeLength.build(l, 0, 19);
    let i = 0;
    while (i < nlen + ndist) {
      const sym = this.decode(this.codeLength);
      if (sym < 16) {
        l[i++] = sym;
        continue;
      }
      let value = 0;
      let repeat: number;
      if (sym === 16) {
        if (i === 0) throw corrupt("repeat with no previous length");
        value = l[i - 1];
        repeat = 3 + this.bits(2);
      } else if (sym === 17) repeat = 3 + this.bits(3);
      else repeat = 11 + this.bits(7);
      if (i + repeat > nlen + ndist) throw corrupt("code lengths run past the table");
      l.fill(value, i, i + repeat);
      i += repeat;
    }
    if (l[256] === 0) throw corrupt("no end-of-block code");
    this.literal.build(l, 0, nlen);
    this.distance.build(l, nlen, ndist);
  }

  /** Decode one symbol; true at the end-of-block code. */
  private symbol(): boolean {
    const out = this.out;
    const sym = this.decode(this.literal);
    if (sym < 256) {
      if (this.produced >= this.outLength) throw corrupt("output past the block's length");
      out[this.produced++] = sym;
      return false;
    }
    if (sym === 256) return true;
    const li = sym - 257;
    if (li >= 29) throw corrupt(`invalid length symbol ${sym}`);
    const length = LENGTH_BASE[li] + this.bits(LENGTH_EXTRA[li]);
    const di = this.decode(this.distance);
    if (di >= 30) throw corrupt(`invalid distance symbol ${di}`);
    const dist = DIST_BASE[di] + this.bits(DIST_EXTRA[di]);
    let p = this.produced;
    if (dist > p) throw corrupt("distance before the block's start");
    if (p + length > this.outLength) throw corrupt("output past the block's length");
    for (let k = 0; k < length; k++, p++) out[p] = out[p - dist];
    this.produced = p;
    return false;
  }
}
