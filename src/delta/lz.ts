/**
 * Codec 3 (patch format version 2, docs/formats.md "Patch", "Codec 3"): a
 * block is a sequence of operations over three sources — the old image at a
 * running alignment (copy, or copy and add a diff byte), literals, and the new
 * image already written (LZ77 copy-from-new, read back from the inactive slot,
 * so it costs no RAM) — entropy-coded with canonical Huffman codes that each
 * block sends, decoded by table lookup.
 *
 * The decoder takes its payload from the patcher's input window a few bytes
 * at a time and stops when the window runs dry (so it never buffers a block),
 * and does at most a stated amount of output per call (bounded work). Every
 * length, offset and distance is checked before use: old reads stay inside the
 * old image, new reads stay below what is written, output stays in the span.
 *
 * Shared by the encoder (tools/delta/lz-encode.ts): the alphabets and the
 * bucket codes for lengths, distances and offset changes. The relocation
 * rules' transforms are in relocate.ts.
 */
import { OtaError, Reason } from "../errors";
import { blockCrcUpdate, type BlockCrc } from "./crc";
import { LZ_LITTLE_ENDIAN, transformUnits, transformUnitsAligned, unitRuleMap } from "./relocate";

/** Operation kinds; each op symbol is kind * LEN_SYMBOLS + a length bucket, or one of the two seeks. */
/**
 * OLD_ADD: `length - 1` bytes copied from old, then one byte added (a changed
 * byte after an unchanged run: a relocated pointer, a moved call) — one op
 * symbol for the most common change instead of two.
 */
export const Op = Object.freeze({ OLD: 0, ADD: 1, LIT: 2, NEW: 3, OLD_ADD: 4 });
// The same as plain constants for the decoder's hot paths (a frozen object's property is a lookup on XS).
const OP_OLD = 0;
export const OP_ADD = 1;
export const OP_NEW = 3;
const OP_OLD_ADD = 4;
const A_LIT = 1;
const A_DIFF = 2;
const A_LIT_ODD = 5;
export const LEN_SYMBOLS = 32;
/** Op symbol: change the old alignment by a delta (a DELTA symbol and its extra bits follow). */
export const SEEK_SYMBOL = 5 * LEN_SYMBOLS;
/** Op symbol: swap the old alignment with the previous one. */
export const SEEK_PREV_SYMBOL = SEEK_SYMBOL + 1;

/** The five alphabets of a block, in the order their code tables are sent. */
export const Alphabet = Object.freeze({ OP: 0, LIT: 1, DIFF: 2, DIST: 3, DELTA: 4, LIT_ODD: 5 });
/** LIT codes literals at even new-image offsets, LIT_ODD at odd ones (Thumb: the halfwords' low and high bytes differ). */
export const ALPHABETS = 6;
/** DIST covers distances to 2^24 (the largest image); DELTA covers alignment changes to 2 × MAX_ALIGNMENT. */
export const ALPHABET_SIZES = Object.freeze([SEEK_PREV_SYMBOL + 1, 256, 256, 100, 108, 256]);
/** Longest code per alphabet (its decode table has 2^this entries). */
export const ALPHABET_MAX_BITS = Object.freeze([11, 11, 11, 9, 9, 11]);
/** Longest code (bits); a decode table has 2^(longest code used) entries. */
export const MAX_CODE_BITS = 11;
/** Code-length code: lengths 0..11, repeat-previous, two zero runs. */
export const CL_SYMBOLS = 15;
export const CL_REPEAT = 12;
export const CL_ZEROS = 13;
export const CL_ZEROS_LONG = 14;
export const CL_MAX_BITS = 7;
/** Largest |alignment| a block may reach (beyond it every old read would be out of range anyway). */
export const MAX_ALIGNMENT = 1 << 25;

/** Bucket code with `m` mantissa bits: value -> [symbol, extra bit count, extra value]. */
export function bucketOf(v: number, m: number): [number, number, number] {
  const direct = 2 << m;
  if (v < direct) return [v, 0, 0];
  const e = 31 - Math.clz32(v);
  const shift = e - m;
  const sym = direct + (e - m - 1) * (1 << m) + ((v >>> shift) & ((1 << m) - 1));
  return [sym, shift, v & ((1 << shift) - 1)];
}

/** The value a bucket symbol and its extra bits stand for (inverse of bucketOf). */
export function bucketBase(sym: number, m: number): { base: number; bits: number } {
  const direct = 2 << m;
  if (sym < direct) return { base: sym, bits: 0 };
  const s = sym - direct;
  const e = (s >>> m) + m + 1;
  const mant = s & ((1 << m) - 1);
  return { base: ((1 << m) + mant) * 2 ** (e - m), bits: e - m };
}

/** Mantissa bits: lengths (value = length - 1) and distances/deltas. */
export const LEN_M = 1;
export const DIST_M = 2;

export function zigzag(v: number): number {
  return v >= 0 ? v * 2 : -v * 2 - 1;
}
export function unzigzag(v: number): number {
  return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
}

/** Input the decoder reads: the patcher's window, `buf[pos, end)` not yet consumed. */
export interface LzInput {
  buf: Uint8Array;
  pos: number;
  end: number;
}

/** What the decoder reads and writes through (the patcher binds them to the slots). */
export interface LzIo {
  /** Old image bytes [offset, offset + length) (checked in range by the decoder). */
  readOld(length: number, offset: number): Uint8Array;
  /** New image bytes already written, [offset, offset + length). */
  readNew(offset: number, length: number): Uint8Array;
  /** Append output (the decoder also keeps the block's CRC). */
  write(bytes: Uint8Array): void;
}

/** run() results. */
export const NEED_INPUT = 0;
export const BUDGET_SPENT = 1;
export const BLOCK_END = 2;

/** Bytes decoded per step of a literal run or a copy from the new image. */
export const LZ_OUT_CHUNK = 256;
/** Output gathered before one CRC update and one write. */
export const LZ_OUT_BATCH = 1024;
/** Old-image bytes per copy step (the relocation buffer's size). */
export const LZ_OLD_CHUNK = 1024;
/**
 * The old-image window: what one flash read brings in, and what copies are then
 * served from without another read (operations mostly read the old image
 * forward, a few bytes to a few hundred at a time). At least a copy step and
 * its two margins.
 */
export const LZ_OLD_WINDOW = 1280;

const NEED_OP_BITS = 64;
const NEED_TABLE_BITS = 64;
const NEED_RULE_BITS = 128;
/** Most relocation rules a block may carry. */
export const MAX_RULES = 15;
/** Most branch rules a block may carry. */
export const MAX_BRANCH_RULES = 31;
/** Old-image bytes read on each side of a copy's slice, so that a transformed unit (4 bytes) is seen whole. */
const UNIT_MARGIN = 3;

/** The relocation units: s0 (< 4) + a copy step and its two margins, a multiple of 4. */
const UNITS_BYTES = LZ_OLD_CHUNK + 12;
const WORK_UNITS = LZ_OUT_BATCH;
const WORK_WINDOW = WORK_UNITS + UNITS_BYTES;
const WORK_BYTES = WORK_WINDOW + LZ_OLD_WINDOW;

/** Decoder states (exported for codec 4's decoder, lzr.ts, which reads S_TABLE_HEAD as "start the range decoder"). */
export const S_TABLE_HEAD = 0;
const S_TABLE_LENGTHS = 1;
export const S_OFFSET = 2;
export const S_RULES = 6;
const S_OP = 3;
const S_RUN = 4;
export const S_END = 5;

export function malformed(block: number, why: string): OtaError {
  return new OtaError(Reason.PATCH_MALFORMED, `block ${block}: ${why}`, block);
}
function outOfRange(block: number, why: string): OtaError {
  return new OtaError(Reason.PATCH_OUT_OF_RANGE, `block ${block}: ${why}`, block);
}

/** Bit reversal of a byte (for the LSB-first table index of a canonical code). */
const REVERSED = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let r = 0;
  for (let k = 0; k < 8; k++) r |= ((i >>> k) & 1) << (7 - k);
  REVERSED[i] = r;
}

/**
 * Build a decode table for canonical code lengths `lengths[0, n)`: entries
 * (symbol << 4) | length, indexed by the next `bits` input bits (LSB first);
 * 0 marks a bit pattern no code has. Returns `bits` (0 for an empty code).
 *
 * The table is built doubling: the codes of length 1 go into a 2-entry table,
 * which is then copied onto its upper half (one native copy) before the codes
 * of length 2 go in, and so on up to `bits`. A code of length l lands at its
 * bit-reversed value, which no shorter code's entry occupies (the code is
 * prefix-free), and the copies repeat it every 2^l entries: what writing each
 * code's 2^(bits-l) entries one by one gives, in about one step per symbol.
 * `order` (n bytes) and `start` (16 entries) are scratch.
 * @throws OtaError PATCH_MALFORMED for an over-subscribed code.
 */
export function buildDecodeTable(
  lengths: Uint8Array,
  n: number,
  table: Uint16Array,
  counts: Uint16Array,
  next: Uint16Array,
  block: number,
  maxBits = MAX_CODE_BITS,
  order: Uint8Array = new Uint8Array(n),
  start: Uint16Array = new Uint16Array(16),
): number {
  counts.fill(0);
  let bits = 0;
  for (let s = 0; s < n; s++) {
    const l = lengths[s];
    counts[l]++;
    if (l > bits) bits = l;
  }
  if (bits === 0) return 0;
  if (bits > maxBits) throw malformed(block, `code of ${bits} bits, at most ${maxBits}`);
  counts[0] = 0;
  let left = 1;
  for (let l = 1; l <= bits; l++) {
    left = left * 2 - counts[l];
    if (left < 0) throw malformed(block, "over-subscribed Huffman code");
  }
  let code = 0;
  start[1] = 0;
  for (let l = 1; l <= bits; l++) {
    code = (code + counts[l - 1]) << 1;
    next[l] = code;
    if (l > 1) start[l] = start[l - 1] + counts[l - 1];
  }
  // The symbols grouped by length, in symbol order within a length (the canonical order).
  for (let s = 0; s < n; s++) {
    const l = lengths[s];
    if (l !== 0) order[start[l]++] = s;
  }
  table[0] = 0;
  table[1] = 0;
  let j = 0;
  // Bounded: `bits` doublings (at most 2^bits entries copied in all) and one step per coded symbol.
  for (let l = 1; l <= bits; l++) {
    if (l > 1) table.copyWithin(1 << (l - 1), 0, 1 << (l - 1));
    for (const end = j + counts[l]; j < end; j++) {
      const c = next[l]++;
      table[((REVERSED[c & 0xff] << 8) | REVERSED[c >>> 8]) >>> (16 - l)] = (order[j] << 4) | l;
    }
  }
  return bits;
}

/**
 * The codec-3 block decoder. One instance per install; `begin` for every
 * coded block, then `run` until it answers BLOCK_END.
 *
 * Working memory (`bytes`): six decode tables of 2^ALPHABET_MAX_BITS entries
 * (u16, 18 KiB), the code-length scratch, and one work buffer holding the
 * output batch, the relocation units and the old-image window; old-image
 * reads of at most LZ_OLD_WINDOW bytes are made by the caller's Flash.
 *
 * Bytes move inside the work buffer with `copyWithin` (one native call): on
 * XS a `subarray` and a `set` between two arrays cost about seven times
 * that, and a flash read (a new array) more than ten times; an operation is
 * often only a few bytes long.
 */
export class LzBlockDecoder {
  protected readonly tables: Uint16Array[] = [];
  protected readonly tableBits = new Uint8Array(ALPHABETS);
  protected readonly lengths = new Uint8Array(256);
  protected readonly clLengths = new Uint8Array(CL_SYMBOLS);
  protected readonly clTable = new Uint16Array(1 << CL_MAX_BITS);
  protected readonly counts = new Uint16Array(16);
  protected readonly next = new Uint16Array(16);
  /** buildDecodeTable's scratch: the symbols by length, and each length's place among them. */
  protected readonly order = new Uint8Array(256);
  protected readonly start = new Uint16Array(16);
  /** [0, WORK_UNITS): the output batch; [WORK_UNITS, WORK_WINDOW): the units; [WORK_WINDOW, WORK_BYTES): the old window. */
  protected readonly work = new Uint8Array(WORK_BYTES);
  protected readonly out = this.work.subarray(0, LZ_OUT_BATCH);
  protected outLength = 0;
  /** An old copy with relocation rules, placed so that new-image halfwords and words are elements of the views. */
  protected readonly units16 = new Uint16Array(this.work.buffer, WORK_UNITS, UNITS_BYTES / 2);
  protected readonly units32 = new Uint32Array(this.work.buffer, WORK_UNITS, UNITS_BYTES / 4);
  /** The old image's [windowStart, windowStart + windowLength) sits at work[WORK_WINDOW…]. */
  protected windowStart = 0;
  protected windowLength = 0;
  /** unitRuleMap of the block's rules. */
  protected readonly wordMap = new Uint8Array(256);

  protected block = 0;
  protected span = 0;
  protected produced = 0;
  protected newStart = 0;
  protected oldLength = 0;
  protected crc = 0;

  protected bitBuf = 0;
  protected bitCount = 0;
  /** Payload bytes not yet pulled into bitBuf. */
  protected payloadLeft = 0;
  protected pulledBits = 0;
  protected padBits = 0;

  protected state = S_END;
  protected alphabet = 0;
  protected tableCount = 0;
  protected tableFilled = 0;
  protected clBits = 0;

  /** Relocation rules (lo, size, delta) × ruleCount, and how many are still to read. */
  protected readonly rules = new Float64Array(3 * MAX_RULES);
  protected ruleCount = 0;
  protected rulesLeft = 0;
  /** Branch rules (lo, size, delta) × branchCount, and how many are still to read. */
  protected readonly branches = new Float64Array(3 * MAX_BRANCH_RULES);
  protected branchCount = 0;
  protected branchesLeft = -1;
  /** The current OLD copy's bounds (new-image offsets): only units wholly inside it are transformed. */
  protected copyStart = 0;
  protected copyEnd = 0;
  protected alignment = 0;
  protected previousAlignment = 0;
  protected runKind = 0;
  protected runLeft = 0;
  protected runDistance = 0;
  /** OLD_ADD: one ADD byte follows the current OLD run. */
  protected addAfter = false;

  /** Codec 3 (Huffman tables); false in codec 4's decoder. */
  protected readonly huffman: boolean;
  /** Input bits the window must hold before an operation is decoded (unless it holds the rest of the payload). */
  protected needOpBits = NEED_OP_BITS;

  /** tables[Alphabet.OP]. */
  protected readonly opTable: Uint16Array;

  /** @param crcUpdate the block CRC-32 (the platform's native one when it has one; src/delta/crc.ts). */
  constructor(
    protected readonly crcUpdate: BlockCrc = blockCrcUpdate,
    huffman = true,
  ) {
    // Codec 4's decoder (a subclass, lzr.ts) decodes without Huffman tables and allocates none.
    this.huffman = huffman;
    if (huffman) for (let a = 0; a < ALPHABETS; a++) this.tables.push(new Uint16Array(1 << ALPHABET_MAX_BITS[a]));
    this.opTable = huffman ? this.tables[0] : new Uint16Array(0);
  }

  /** RAM held by the decoder's own buffers. */
  get bytes(): number {
    let n = this.lengths.byteLength + this.clLengths.byteLength + this.clTable.byteLength + this.counts.byteLength + this.next.byteLength + this.order.byteLength + this.start.byteLength + REVERSED.byteLength + this.work.byteLength + this.wordMap.byteLength + this.tableBits.byteLength + this.rules.byteLength + this.branches.byteLength + 2 * UNIT_MARGIN;
    for (const t of this.tables) n += t.byteLength;
    return n;
  }

  /** CRC-32 of the block's output so far. */
  get outputCrc(): number {
    return this.crc;
  }

  begin(block: number, storedLength: number, span: number, newStart: number, oldLength: number): void {
    this.block = block;
    this.span = span;
    this.produced = 0;
    this.outLength = 0;
    this.newStart = newStart;
    this.oldLength = oldLength;
    this.crc = 0;
    this.bitBuf = 0;
    this.bitCount = 0;
    this.payloadLeft = storedLength;
    this.pulledBits = 0;
    this.padBits = 0;
    this.state = S_TABLE_HEAD;
    this.alphabet = 0;
    this.runLeft = 0;
  }

  /** Bits available to decode without waiting: held, plus this payload's bytes in the window. Infinity once the whole payload is there. */
  protected available(input: LzInput): number {
    const inWindow = input.end - input.pos;
    if (inWindow >= this.payloadLeft) return Infinity;
    return this.bitCount + inWindow * 8;
  }

  /** Top up bitBuf to more than 16 bits from the window (or zero padding past the payload's end). */
  protected refill(input: LzInput): void {
    while (this.bitCount <= 16) {
      if (this.payloadLeft > 0 && input.pos < input.end) {
        this.bitBuf |= input.buf[input.pos++] << this.bitCount;
        this.payloadLeft--;
        this.pulledBits += 8;
      } else if (this.payloadLeft === 0) {
        this.padBits += 8;
      } else {
        return;
      }
      this.bitCount += 8;
    }
  }

  protected bits(input: LzInput, n: number): number {
    if (n === 0) return 0;
    if (n > 16) {
      const low = this.bits(input, 16);
      return low + this.bits(input, n - 16) * 65536;
    }
    if (this.bitCount < n) this.refill(input);
    const v = this.bitBuf & ((1 << n) - 1);
    this.bitBuf >>>= n;
    this.bitCount -= n;
    return v;
  }

  protected symbol(input: LzInput, alphabet: number): number {
    const bits = this.tableBits[alphabet];
    if (bits === 0) throw malformed(this.block, `symbol from empty alphabet ${alphabet}`);
    if (this.bitCount < bits) this.refill(input);
    const e = this.tables[alphabet][this.bitBuf & ((1 << bits) - 1)];
    if (e === 0) throw malformed(this.block, "bit pattern outside the Huffman code");
    const l = e & 15;
    this.bitBuf >>>= l;
    this.bitCount -= l;
    return e >>> 4;
  }

  protected clSymbol(input: LzInput): number {
    if (this.bitCount < this.clBits) this.refill(input);
    const e = this.clTable[this.bitBuf & ((1 << this.clBits) - 1)];
    if (e === 0) throw malformed(this.block, "bit pattern outside the code-length code");
    const l = e & 15;
    this.bitBuf >>>= l;
    this.bitCount -= l;
    return e >>> 4;
  }

  protected bucket(input: LzInput, alphabet: number, m: number): number {
    const sym = this.symbol(input, alphabet);
    return this.bucketValue(input, sym, m);
  }

  /** The value of bucket symbol `sym` with its extra bits (bucketBase without an object per call). */
  protected bucketValue(input: LzInput, sym: number, m: number): number {
    const direct = 2 << m;
    if (sym < direct) return sym;
    const s = sym - direct;
    const bits = (s >>> m) + 1;
    const base = (1 << m) + (s & ((1 << m) - 1));
    // A shift while the value stays below 2^31 (every length and distance of a 16 MiB image); a product beyond.
    return (bits < 24 ? base << bits : base * 2 ** bits) + this.bits(input, bits);
  }

  /**
   * Output: small pieces gather in `out` (one CRC and one write per LZ_OUT_BATCH
   * bytes rather than per operation); everything is written before `run`
   * returns and before a copy from the new image reads it back.
   */
  protected emit(io: LzIo, bytes: Uint8Array): void {
    this.produced += bytes.length;
    if (this.outLength + bytes.length > this.out.length) this.flushOut(io);
    if (bytes.length >= this.out.length) {
      this.crc = this.crcUpdate(this.crc, bytes, 0, bytes.length);
      io.write(bytes);
      return;
    }
    this.out.set(bytes, this.outLength);
    this.outLength += bytes.length;
  }

  /** emit() for `n` bytes (at most LZ_OUT_BATCH) already in the work buffer at `from`. */
  protected emitWork(io: LzIo, from: number, n: number): void {
    this.produced += n;
    if (this.outLength + n > LZ_OUT_BATCH) this.flushOut(io);
    this.work.copyWithin(this.outLength, from, from + n);
    this.outLength += n;
  }

  /** Room for `n` bytes (at most LZ_OUT_BATCH) at the end of the output batch; answers where they go. */
  protected outRoom(io: LzIo, n: number): number {
    if (this.outLength + n > LZ_OUT_BATCH) this.flushOut(io);
    return this.outLength;
  }

  /**
   * The old image's [offset, offset + length) in the work buffer (length at
   * most LZ_OLD_WINDOW; the caller has checked it lies in the old image): where
   * it starts there. Reads the window from flash only when it does not hold it.
   */
  protected oldBytes(io: LzIo, offset: number, length: number): number {
    const rel = offset - this.windowStart;
    if (rel >= 0 && rel + length <= this.windowLength) return WORK_WINDOW + rel;
    // Forward from the first byte wanted (operations mostly go forward), within the old image.
    let start = offset;
    if (start + LZ_OLD_WINDOW > this.oldLength) start = this.oldLength > LZ_OLD_WINDOW ? this.oldLength - LZ_OLD_WINDOW : 0;
    const n = this.oldLength - start < LZ_OLD_WINDOW ? this.oldLength - start : LZ_OLD_WINDOW;
    this.windowLength = 0; // (a failed read leaves no stale window)
    this.work.set(io.readOld(n, start), WORK_WINDOW);
    this.windowStart = start;
    this.windowLength = n;
    return WORK_WINDOW + offset - start;
  }

  protected flushOut(io: LzIo): void {
    if (this.outLength === 0) return;
    this.crc = this.crcUpdate(this.crc, this.out, 0, this.outLength);
    io.write(this.out.subarray(0, this.outLength));
    this.outLength = 0;
  }

  /** The table header: how many lengths, then the code-length code. */
  protected tableHead(input: LzInput): void {
    const count = this.bits(input, 9);
    if (count > ALPHABET_SIZES[this.alphabet]) throw malformed(this.block, `alphabet ${this.alphabet}: ${count} code lengths`);
    this.tableCount = count;
    this.tableFilled = 0;
    this.lengths.fill(0);
    if (count === 0) {
      this.tableBits[this.alphabet] = 0;
      // The written-out symbol loops look up entry 0 of an unused alphabet: it must refuse.
      this.tables[this.alphabet][0] = 0;
      this.nextTable();
      return;
    }
    for (let i = 0; i < CL_SYMBOLS; i++) this.clLengths[i] = this.bits(input, 3);
    this.clBits = buildDecodeTable(this.clLengths, CL_SYMBOLS, this.clTable, this.counts, this.next, this.block, MAX_CODE_BITS, this.order, this.start);
    if (this.clBits === 0) throw malformed(this.block, "empty code-length code");
    this.state = S_TABLE_LENGTHS;
  }

  protected tableLength(input: LzInput): void {
    // Bounded: each pass takes one code-length symbol (at most 256 per alphabet); as many as
    // runSlice would take, one per pass, with the same check of the input before each.
    do this.tableLengthSymbol(input);
    while (this.state === S_TABLE_LENGTHS && this.available(input) >= NEED_TABLE_BITS);
  }

  protected tableLengthSymbol(input: LzInput): void {
    const sym = this.clSymbol(input);
    const count = this.tableCount;
    let at = this.tableFilled;
    if (sym < CL_REPEAT) {
      this.lengths[at++] = sym;
    } else {
      let n: number;
      let value = 0;
      if (sym === CL_REPEAT) {
        if (at === 0) throw malformed(this.block, "code-length repeat with nothing before");
        value = this.lengths[at - 1];
        n = 3 + this.bits(input, 2);
      } else if (sym === CL_ZEROS) n = 3 + this.bits(input, 3);
      else n = 11 + this.bits(input, 7);
      if (at + n > count) throw malformed(this.block, "code-length run past the alphabet");
      for (let i = 0; i < n; i++) this.lengths[at++] = value;
    }
    this.tableFilled = at;
    if (at === count) {
      const bits = buildDecodeTable(this.lengths, count, this.tables[this.alphabet], this.counts, this.next, this.block, ALPHABET_MAX_BITS[this.alphabet], this.order, this.start);
      if (bits === 0) throw malformed(this.block, `alphabet ${this.alphabet}: no code`);
      this.tableBits[this.alphabet] = bits;
      this.nextTable();
    }
  }

  protected nextTable(): void {
    this.alphabet++;
    this.state = this.alphabet === ALPHABETS ? S_OFFSET : S_TABLE_HEAD;
  }

  /**
   * Decode and write up to `budget` bytes of output (at least one step).
   * @returns NEED_INPUT (the window holds too little of the payload), BUDGET_SPENT
   *   (more to do), or BLOCK_END (the span is complete and the payload checked).
   * @throws OtaError PATCH_MALFORMED / PATCH_OUT_OF_RANGE for a bad block.
   */
  run(input: LzInput, io: LzIo, budget: number): number {
    const r = this.runSlice(input, io, budget);
    this.flushOut(io);
    return r;
  }

  protected runSlice(input: LzInput, io: LzIo, budget: number): number {
    const limit = this.produced + budget;
    // Bounded: every pass either consumes input bits, produces output, or ends.
    for (;;) {
      const state = this.state;
      if (state === S_RUN) {
        if (this.produced >= limit) return BUDGET_SPENT;
        if (!this.runStep(input, io, limit - this.produced)) return NEED_INPUT;
        continue;
      }
      if (state === S_OP) {
        if (this.produced === this.span) {
          this.endBlock();
          return BLOCK_END;
        }
        if (this.produced >= limit) return BUDGET_SPENT;
        // available(input) < needOpBits, written out (codec 4 keeps bitCount at 0: its bound is in bytes).
        const inWindow = input.end - input.pos;
        if (inWindow < this.payloadLeft && this.bitCount + inWindow * 8 < this.needOpBits) return NEED_INPUT;
        this.op(input);
        continue;
      }
      if (state === S_END) throw new Error("LzBlockDecoder: run without begin");
      if (!this.header(input)) return NEED_INPUT;
    }
  }

  /** One step of the block's header (code tables, start alignment, rules); false when it must wait for input. */
  protected header(input: LzInput): boolean {
    const state = this.state;
    if (this.available(input) < NEED_TABLE_BITS) return false;
    if (state === S_TABLE_HEAD) this.tableHead(input);
    else if (state === S_TABLE_LENGTHS) this.tableLength(input);
    else if (state === S_RULES) {
      if (this.available(input) < NEED_RULE_BITS) return false;
      this.rule(input);
    } else this.startAlignment(input);
    return true;
  }

  /** The block's start alignment (5 bits `e`, `e` bits zigzag) and word-rule count (4 bits); the rules follow. */
  protected startAlignment(input: LzInput): void {
    const e = this.bits(input, 5);
    const start = unzigzag(this.bits(input, e));
    if (Math.abs(start) > MAX_ALIGNMENT) throw outOfRange(this.block, `alignment ${start}`);
    this.alignment = start;
    this.previousAlignment = start;
    this.ruleCount = 0;
    this.branchCount = 0;
    this.branchesLeft = -1;
    this.rulesLeft = this.bits(input, 4);
    this.state = S_RULES;
  }

  /** The next rule: word rules, then the branch-rule count, then branch rules. */
  protected rule(input: LzInput): void {
    if (this.rulesLeft === 0) {
      if (this.branchesLeft < 0) {
        this.branchesLeft = this.bits(input, 5);
      }
      if (this.branchesLeft === 0) {
        unitRuleMap(this.rules, this.ruleCount, this.branchCount, this.wordMap);
        this.state = S_OP;
        return;
      }
      this.branchRule(input);
      return;
    }
    this.wordRule(input);
  }

  /** A branch rule: a Thumb BL whose old target offset is in [lo, lo + size) is re-aimed at target + delta. */
  protected branchRule(input: LzInput): void {
    const lo = this.bits(input, 24);
    const sizeBits = this.bits(input, 5);
    const size = this.bits(input, sizeBits);
    const deltaBits = this.bits(input, 5);
    if (deltaBits > 26) throw malformed(this.block, "bad branch rule");
    const delta = unzigzag(this.bits(input, deltaBits));
    if (size === 0 || delta === 0) throw malformed(this.block, "bad branch rule");
    const k = this.branchCount * 3;
    this.branches[k] = lo;
    this.branches[k + 1] = size;
    this.branches[k + 2] = delta;
    this.branchCount++;
    this.branchesLeft--;
  }

  /** One relocation rule: words in [lo, lo + size) get + delta (mod 2^32) inside old copies. */
  protected wordRule(input: LzInput): void {
    const lo = this.bits(input, 32);
    const sizeBits = this.bits(input, 6);
    if (sizeBits > 33) throw malformed(this.block, "bad relocation rule");
    const size = this.bits(input, sizeBits);
    const deltaBits = this.bits(input, 6);
    if (deltaBits > 33) throw malformed(this.block, "bad relocation rule");
    const delta = unzigzag(this.bits(input, deltaBits));
    if (size === 0 || size > 0x100000000 || lo + size > 0x100000000 || delta === 0 || Math.abs(delta) >= 0x100000000) {
      throw malformed(this.block, "bad relocation rule");
    }
    const k = this.ruleCount * 3;
    this.rules[k] = lo;
    this.rules[k + 1] = size;
    this.rules[k + 2] = delta;
    this.ruleCount++;
    this.rulesLeft--;
  }

  protected relocate(buf: Uint8Array, at: number, n: number): void {
    transformUnits(buf, at, n, this.alignment, this.rules, this.ruleCount, this.branches, this.branchCount);
  }

  protected op(input: LzInput): void {
    // symbol(input, Alphabet.OP) and the length's bucketValue, written out: one op per call, the
    // decoder's most frequent step after the byte loops.
    const opBits = this.tableBits[0];
    if (opBits === 0) throw malformed(this.block, `symbol from empty alphabet ${Alphabet.OP}`);
    if (this.bitCount < opBits) this.refill(input);
    const e = this.opTable[this.bitBuf & ((1 << opBits) - 1)];
    if (e === 0) throw malformed(this.block, "bit pattern outside the Huffman code");
    this.bitBuf >>>= e & 15;
    this.bitCount -= e & 15;
    const sym = e >>> 4;
    if (sym === SEEK_SYMBOL) {
      const delta = unzigzag(this.bucket(input, Alphabet.DELTA, DIST_M));
      if (this.padBits > this.bitCount) throw malformed(this.block, "payload ends inside an operation");
      this.seek(delta);
      return;
    }
    if (sym === SEEK_PREV_SYMBOL) {
      this.seekPrevious();
      return;
    }
    const kind = sym >>> 5;
    // bucketValue(sym & 31, LEN_M = 1): 0..3 direct, then (2 + mantissa) << extra, plus `extra` bits (at most 14).
    let length = (sym & (LEN_SYMBOLS - 1)) + 1;
    if (length > 4) {
      const s = length - 5;
      const extra = (s >>> 1) + 1;
      if (this.bitCount < extra) this.refill(input);
      length = ((2 + (s & 1)) << extra) + (this.bitBuf & ((1 << extra) - 1)) + 1;
      this.bitBuf >>>= extra;
      this.bitCount -= extra;
    }
    if (this.padBits > this.bitCount) throw malformed(this.block, "payload ends inside an operation");
    // checkRun, checkDistance and startRun, written out: a method call on XS costs about a thousand
    // M7 instructions, and this runs once per operation (codec 4's decoder calls them).
    if (length > this.span - this.produced) throw outOfRange(this.block, `operation of ${length} bytes past the span`);
    const at = this.newStart + this.produced;
    if (kind === OP_OLD || kind === OP_ADD || kind === OP_OLD_ADD) {
      const from = at + this.alignment;
      if (from < 0 || from + length > this.oldLength) throw outOfRange(this.block, `old read ${from}+${length} outside the old image`);
    } else if (kind === OP_NEW) {
      const distance = this.bucket(input, Alphabet.DIST, DIST_M) + 1;
      if (this.padBits > this.bitCount) throw malformed(this.block, "payload ends inside an operation");
      if (distance > at) throw outOfRange(this.block, `copy from ${distance} bytes back, ${at} written`);
      this.runDistance = distance;
    }
    if (kind === OP_OLD_ADD) {
      this.addAfter = true;
      if (length === 1) {
        this.runKind = OP_ADD;
        this.runLeft = 1;
        this.addAfter = false;
      } else {
        this.runKind = OP_OLD;
        this.runLeft = length - 1;
      }
    } else {
      this.addAfter = false;
      this.runKind = kind;
      this.runLeft = length;
    }
    this.copyStart = at;
    this.copyEnd = at + this.runLeft;
    this.state = S_RUN;
  }

  /** SEEK: the old alignment moves by `delta` (not 0); the previous one is kept for SEEK_PREV. */
  protected seek(delta: number): void {
    const a = this.alignment + delta;
    if (delta === 0 || Math.abs(a) > MAX_ALIGNMENT) throw outOfRange(this.block, `alignment ${a}`);
    this.previousAlignment = this.alignment;
    this.alignment = a;
  }

  /** SEEK_PREV: swap the alignment with the previous one. */
  protected seekPrevious(): void {
    const a = this.alignment;
    this.alignment = this.previousAlignment;
    this.previousAlignment = a;
  }

  /** An operation of `kind` and `length` at the current offset: inside the span, and its old read inside the old image. */
  protected checkRun(kind: number, length: number): void {
    if (length > this.span - this.produced) throw outOfRange(this.block, `operation of ${length} bytes past the span`);
    if (kind === OP_OLD || kind === OP_ADD || kind === OP_OLD_ADD) {
      const from = this.newStart + this.produced + this.alignment;
      if (from < 0 || from + length > this.oldLength) throw outOfRange(this.block, `old read ${from}+${length} outside the old image`);
    }
  }

  /** A copy from the new image `distance` bytes back: only from what is written. */
  protected checkDistance(distance: number): void {
    const at = this.newStart + this.produced;
    if (distance > at) throw outOfRange(this.block, `copy from ${distance} bytes back, ${at} written`);
    this.runDistance = distance;
  }

  /** Start running a checked operation. */
  protected startRun(kind: number, length: number): void {
    const at = this.newStart + this.produced;
    if (kind === OP_OLD_ADD) {
      this.addAfter = true;
      if (length === 1) {
        this.runKind = OP_ADD;
        this.runLeft = 1;
        this.addAfter = false;
      } else {
        this.runKind = OP_OLD;
        this.runLeft = length - 1;
      }
    } else {
      this.addAfter = false;
      this.runKind = kind;
      this.runLeft = length;
    }
    this.copyStart = at;
    this.copyEnd = at + this.runLeft;
    this.state = S_RUN;
  }

  /** One slice of the current operation; false when it must wait for input. */
  protected runStep(input: LzInput, io: LzIo, room: number): boolean {
    const kind = this.runKind;
    const at = this.newStart + this.produced;
    // (No Math.min/max here: on XS each is a lookup and a native call, several per operation.)
    let n = this.runLeft < room ? this.runLeft : room;
    if (kind === OP_OLD) {
      if (n > LZ_OLD_CHUNK) n = LZ_OLD_CHUNK;
      if (this.ruleCount > 0 || this.branchCount > 0) {
        // Units (words, calls) are transformed only when wholly inside the copy; read a
        // margin around the slice so that one cut by the slice is seen whole, either side.
        const from = this.copyStart > at - UNIT_MARGIN ? this.copyStart : at - UNIT_MARGIN;
        const to = this.copyEnd < at + n + UNIT_MARGIN ? this.copyEnd : at + n + UNIT_MARGIN;
        const src = this.oldBytes(io, from + this.alignment, to - from);
        if (LZ_LITTLE_ENDIAN) {
          const s0 = from & 3;
          this.work.copyWithin(WORK_UNITS + s0, src, src + to - from);
          transformUnitsAligned(this.wordMap, this.units16, this.units32, s0, from, to - from, this.alignment, this.rules, this.ruleCount, this.branches, this.branchCount);
          this.emitWork(io, WORK_UNITS + s0 + at - from, n);
        } else {
          const buf = this.work.slice(src, src + to - from);
          this.relocate(buf, from, to - from);
          this.emit(io, buf.subarray(at - from, at - from + n));
        }
      } else this.emitWork(io, this.oldBytes(io, at + this.alignment, n), n);
    } else if (kind === OP_NEW) {
      const distance = this.runDistance;
      if (n > LZ_OUT_CHUNK) n = LZ_OUT_CHUNK;
      if (n > distance) n = distance;
      const held = this.outLength;
      if (distance <= held && held + n <= this.out.length) {
        // The source is in the batch not yet written: copy it there (one native copy, no flash read).
        this.out.copyWithin(held, held - distance, held - distance + n);
        this.outLength = held + n;
        this.produced += n;
      } else {
        // Only when the source reaches into the batch not yet written.
        if (at - distance + n > at - held) this.flushOut(io);
        this.emit(io, io.readNew(at - distance, n));
      }
    } else if (this.huffman) {
      const alphabet = kind === OP_ADD ? A_DIFF : A_LIT;
      const avail = this.available(input);
      const even = this.tableBits[A_LIT];
      const odd = this.tableBits[A_LIT_ODD];
      const per = kind === OP_ADD ? this.tableBits[alphabet] : even > odd ? even : odd;
      if (per === 0) throw malformed(this.block, `symbol from empty alphabet ${alphabet}`);
      if (avail !== Infinity) {
        const fits = ((avail - 16) / per) | 0; // avail < 2^31 here (bits in the window)
        if (fits < n) n = fits;
      }
      if (n <= 0) return false;
      // The symbol loops are written out (no call per byte): this is the codec's hot path on a device.
      let bitBuf = this.bitBuf;
      let bitCount = this.bitCount;
      const src = input.buf;
      const end = input.end;
      let pos = input.pos;
      let left = this.payloadLeft;
      let pulled = this.pulledBits;
      let pad = this.padBits;
      // Both decode straight into the output batch, from `base`.
      const buf = this.work;
      let base: number;
      if (kind === OP_ADD) {
        if (n > LZ_OLD_CHUNK) n = LZ_OLD_CHUNK;
        // The old bytes go to the end of the output batch and the differences are added there.
        const oldAt = this.oldBytes(io, at + this.alignment, n);
        base = this.outRoom(io, n);
        buf.copyWithin(base, oldAt, oldAt + n);
        const table = this.tables[A_DIFF];
        const mask = (1 << per) - 1;
        for (let i = 0; i < n; i++) {
          if (bitCount < MAX_CODE_BITS) {
            // refill(), written out: to more than 16 bits, zero padding past the payload. Bounded: 3 bytes.
            while (bitCount <= 16) {
              if (left > 0) {
                if (pos === end) break;
                bitBuf |= src[pos++] << bitCount;
                left--;
                pulled += 8;
              } else pad += 8;
              bitCount += 8;
            }
          }
          const e = table[bitBuf & mask];
          if (e === 0) throw malformed(this.block, "bit pattern outside the Huffman code");
          bitBuf >>>= e & 15;
          bitCount -= e & 15;
          buf[base + i] = (buf[base + i] + (e >>> 4)) & 0xff;
        }
      } else {
        if (n > LZ_OUT_CHUNK) n = LZ_OUT_CHUNK;
        base = this.outRoom(io, n);
        const evenTable = this.tables[A_LIT];
        const oddTable = this.tables[A_LIT_ODD];
        const evenMask = (1 << this.tableBits[A_LIT]) - 1;
        const oddMask = (1 << this.tableBits[A_LIT_ODD]) - 1;
        for (let i = 0; i < n; i++) {
          if (bitCount < MAX_CODE_BITS) {
            // refill(), written out: to more than 16 bits, zero padding past the payload. Bounded: 3 bytes.
            while (bitCount <= 16) {
              if (left > 0) {
                if (pos === end) break;
                bitBuf |= src[pos++] << bitCount;
                left--;
                pulled += 8;
              } else pad += 8;
              bitCount += 8;
            }
          }
          // An unused alphabet has mask 0 and an all-zero table: its entry 0 is refused below.
          const e = (at + i) & 1 ? oddTable[bitBuf & oddMask] : evenTable[bitBuf & evenMask];
          if (e === 0) throw malformed(this.block, "bit pattern outside the Huffman code");
          bitBuf >>>= e & 15;
          bitCount -= e & 15;
          buf[base + i] = e >>> 4;
        }
      }
      this.bitBuf = bitBuf;
      this.bitCount = bitCount;
      input.pos = pos;
      this.payloadLeft = left;
      this.pulledBits = pulled;
      this.padBits = pad;
      if (this.padBits > this.bitCount) throw malformed(this.block, "payload ends inside an operation");
      this.outLength = base + n;
      this.produced += n;
    } else {
      n = this.symbolRun(input, io, kind, at, n);
      if (n === 0) return false;
    }
    this.runLeft -= n;
    if (this.runLeft === 0) {
      if (this.addAfter) {
        // OLD_ADD: the copy is done, one added byte follows.
        this.addAfter = false;
        this.runKind = OP_ADD;
        this.runLeft = 1;
      } else this.state = S_OP;
    }
    return true;
  }

  /**
   * Codec 4's literal (LIT) and added-byte (ADD) runs (lzr.ts): up to `n` bytes
   * at new offset `at`, decoded into the output batch; answers how many (0:
   * wait for input). Codec 3's are written out in runStep (a call per run step
   * costs about a thousand M7 instructions on XS).
   */
  protected symbolRun(_input: LzInput, _io: LzIo, _kind: number, _at: number, _n: number): number {
    throw new Error("LzBlockDecoder: symbolRun is codec 4's");
  }

  /** The span is complete: the payload must end here, to the byte. */
  protected endBlock(): void {
    const consumed = this.pulledBits + this.padBits - this.bitCount;
    const unpulled = this.payloadLeft * 8;
    if (consumed > this.pulledBits) throw malformed(this.block, "payload ends inside the last operation");
    if (this.pulledBits - consumed + unpulled >= 8) throw malformed(this.block, "payload continues after the span is complete");
    this.state = S_END;
  }
}
