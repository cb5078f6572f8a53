/**
 * The context-modelled range coder of codec 2 (docs/formats.md, "Patch"): the
 * block's controls, diff bytes and extra bytes are coded one binary decision
 * at a time with an adaptive probability from a small model, by a range coder
 * (LZMA's carry-less decoder with 12-bit probabilities).
 *
 * Why it beats DEFLATE (and bzip2) on firmware: when code moves, the diff
 * stream is mostly zeros with a few thousand isolated changed bytes (the low
 * byte of moved pointers, the offset field of branches). Whether a diff byte
 * is zero is predicted from the OLD image's bytes around it (the byte itself,
 * the next three and the one before, and its position in the word), which
 * the decoder has in the active slot: a pointer 0x0802xxxx or a BL
 * instruction's halfword look the same wherever they sit. Several such
 * contexts are mixed in the logistic domain (PAQ-style mixer), so the model
 * learns within a few changes even though it starts afresh in every block.
 *
 * The syntax functions below (`codeInt`, `codeDiffByte`, `codeExtraByte`) are
 * written once for both directions over a `BitCoder`: the encoder's `bit`
 * codes the bit it is given, the decoder's ignores it and returns the bit it
 * decodes. All arithmetic is integer (Math.imul, shifts, exact divisions by
 * powers of two), so XS and V8 compute identical probabilities.
 *
 * Memory: the model's tables are `BlockModel.bytes` (about 20 KiB), fixed; the
 * model resets at the start of every block (blocks stay independent, so a
 * power cut resumes at any block boundary).
 */

/** Codes one binary decision with P(bit = 1) = p1 / 4096 (1 <= p1 <= 4095). */
export interface BitCoder {
  bit(p1: number, bit: number): number;
}

/** Range coder constants shared by encoder and decoder. */
export const PROB_BITS = 12;
export const RANGE_TOP = 1 << 24;

// Logistic squash (stretch domain -2047..2047 -> probability 0..4095) by interpolating a 33-point table.
const SQUASH_POINTS = Object.freeze([
  1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785, 3901, 3975, 4024, 4050, 4068, 4079,
  4085, 4089, 4092, 4093, 4094,
]);

export function squash(d: number): number {
  if (d > 2047) return 4095;
  if (d < -2047) return 1;
  const w = d & 127;
  const i = (d >> 7) + 16;
  return (SQUASH_POINTS[i] * (128 - w) + SQUASH_POINTS[i + 1] * w + 64) >> 7;
}

/** stretch(p) = squash⁻¹(p), tabulated on p / 4 (1024 entries). */
const STRETCH = new Int16Array(1024);
{
  let pi = 0;
  for (let x = -2047; x <= 2047; x++) {
    const v = squash(x) >> 2;
    for (let i = pi; i <= v; i++) STRETCH[i] = x;
    pi = v + 1;
  }
  for (let i = pi; i < 1024; i++) STRETCH[i] = 2047;
}

/** Adaptation rate by how often a context was seen: 1/(n+1.5), then fixed at 1/16.5. */
const RATE = new Int32Array(16);
for (let n = 0; n < 16; n++) RATE[n] = Math.floor(32768 / (n + 1.5));

/**
 * A probability is a Uint16: P(1) in the top 12 bits, a 4-bit count of how
 * often it was updated in the low 4 (faster learning at first).
 */
const PROB_INIT = 0x8000;

function p1Of(state: number): number {
  const p = state >> 4;
  return p < 1 ? 1 : p > 4095 ? 4095 : p;
}

function adapt(table: Uint16Array, i: number, bit: number): void {
  const s = table[i];
  const n = s & 15;
  const p = s & 0xfff0;
  const q = p + ((((bit ? 65535 : 0) - p) * RATE[n]) >> 15);
  table[i] = (q & 0xfff0) | (n < 15 ? n + 1 : 15);
}

function hash(a: number, b: number): number {
  return (Math.imul(a + 1, 0x9e3779b1) ^ Math.imul(b + 7, 0x85ebca6b)) >>> 0;
}

/** Integers the block header codes, each with its own model. */
export const IntKind = Object.freeze({ START: 0, COUNT: 1, DIFF: 2, EXTRA: 3, SEEK: 4 });
const INT_KINDS = 5;
const INT_TREE = 64; // bit-length 0..32 as a 6-bit tree
const INT_TOP = 33; // the bit below the leading one, by bit length

const ZERO_MODELS = 5;
const ZERO_SLOTS = 1024; // per hashed zero-flag model
const ZERO_SETS = 16; // mixer weight sets: word position x distance since the last change
const ZERO_INPUTS = ZERO_MODELS + 2; // five hashed models, one small direct one, a bias
const EXTRA_SLOTS = 1024; // per hashed extra-byte model (order 1 and order 2)
const EXTRA_INPUTS = 4; // order 0, 1, 2 and a bias
const MIX_RATE = 6;
const WEIGHT_MAX = 524287;

/** Weighted logistic mix of `n` stretched inputs; returns P(1), 12 bits. */
function mix(w: Int32Array, base: number, x: Int32Array, n: number): number {
  let dot = 0;
  for (let i = 0; i < n; i++) dot += x[i] * w[base + i];
  const p = squash(Math.floor(dot / 65536));
  return p < 1 ? 1 : p > 4095 ? 4095 : p;
}

function train(w: Int32Array, base: number, x: Int32Array, n: number, p: number, bit: number): void {
  const err = ((bit << 12) - p) * MIX_RATE;
  for (let i = 0; i < n; i++) {
    let v = w[base + i] + ((x[i] * err) >> 10);
    if (v > WEIGHT_MAX) v = WEIGHT_MAX;
    else if (v < -WEIGHT_MAX) v = -WEIGHT_MAX;
    w[base + i] = v;
  }
}

/** The old image's bytes around a diff byte at old offset p (0 outside the image). */
export interface OldContext {
  /** old[p - 1] */ before: number;
  /** old[p] */ at: number;
  /** old[p + 1] */ next1: number;
  /** old[p + 2] */ next2: number;
  /** old[p + 3] */ next3: number;
  /** p & 3: the byte's place in a word (images start word-aligned). */
  lane: number;
}

/**
 * The adaptive model of one block. `reset()` at every block start; then the
 * syntax functions, in the order the block is laid out.
 */
export class BlockModel {
  private readonly ints = new Uint16Array(INT_KINDS * (INT_TREE + INT_TOP));
  private readonly zeroDirect = new Uint16Array(16);
  private readonly zero = new Uint16Array(ZERO_MODELS * ZERO_SLOTS);
  private readonly same = new Uint16Array(64);
  private readonly value = new Uint16Array(512);
  private readonly extra0 = new Uint16Array(256);
  private readonly extraHashed = new Uint16Array(2 * EXTRA_SLOTS);
  private readonly zeroWeights = new Int32Array(ZERO_SETS * ZERO_INPUTS);
  private readonly extraWeights = new Int32Array(EXTRA_INPUTS);
  private readonly zeroIn = new Int32Array(ZERO_INPUTS);
  private readonly extraIn = new Int32Array(EXTRA_INPUTS);
  /** The last nonzero diff value seen next to each old byte value (old[p + 1]). */
  private readonly lastDiff = new Uint8Array(256);
  private readonly zeroAt = new Int32Array(ZERO_MODELS);
  private previousChanged = 0;
  private sinceChange = 0;
  private new1 = 0;
  private new2 = 0;

  constructor() {
    this.reset();
  }

  /** Bytes of RAM the model holds: its tables, plus the shared stretch table (2 KiB). */
  get bytes(): number {
    let n = STRETCH.byteLength;
    for (const t of [this.ints, this.zeroDirect, this.zero, this.same, this.value, this.extra0, this.extraHashed]) n += t.byteLength;
    for (const t of [this.zeroWeights, this.extraWeights, this.zeroIn, this.extraIn, this.zeroAt, this.lastDiff]) n += t.byteLength;
    return n;
  }

  reset(): void {
    this.ints.fill(PROB_INIT);
    this.zeroDirect.fill(PROB_INIT);
    this.zero.fill(PROB_INIT);
    this.same.fill(PROB_INIT);
    this.value.fill(PROB_INIT);
    this.extra0.fill(PROB_INIT);
    this.extraHashed.fill(PROB_INIT);
    this.zeroWeights.fill(Math.floor(65536 / ZERO_INPUTS));
    this.extraWeights.fill(Math.floor(65536 / EXTRA_INPUTS));
    this.lastDiff.fill(0);
    this.previousChanged = 0;
    this.sinceChange = 0;
    this.new1 = 0;
    this.new2 = 0;
  }

  /**
   * An unsigned integer below 2^32: its bit length (6-bit tree), the bit
   * under the leading one (modelled), the rest at p = 1/2. Returns the value,
   * or -1 when a decoder reads a bit length over 32 (malformed).
   */
  codeInt(c: BitCoder, kind: number, v: number): number {
    const t = this.ints;
    const base = kind * (INT_TREE + INT_TOP);
    let length = 0;
    if (v > 0) {
      for (let x = v; x >= 1; x = Math.floor(x / 2)) length++;
    }
    let node = 1;
    for (let b = 5; b >= 0; b--) {
      const bit = c.bit(p1Of(t[base + node]), (length >> b) & 1);
      adapt(t, base + node, bit);
      node = (node << 1) | bit;
    }
    length = node - INT_TREE;
    if (length > 32) return -1;
    if (length === 0) return 0;
    let value = 1;
    for (let b = length - 2; b >= 0; b--) {
      const want = Math.floor(v / 2 ** b) & 1;
      let bit: number;
      if (b === length - 2) {
        const i = base + INT_TREE + length;
        bit = c.bit(p1Of(t[i]), want);
        adapt(t, i, bit);
      } else {
        bit = c.bit(2048, want);
      }
      value = value * 2 + bit;
    }
    return value;
  }

  /** A diff byte (new − old, mod 256) at an old offset whose surroundings are `o`. */
  codeDiffByte(c: BitCoder, o: OldContext, d: number): number {
    const lane = o.lane;
    const pd = this.previousChanged;
    const sn = this.sinceChange;
    const low = (lane << 1) | pd;
    const at = this.zeroAt;
    at[0] = hash((o.at << 4) | low, 1) & (ZERO_SLOTS - 1);
    at[1] = ZERO_SLOTS + (hash((o.next1 << 4) | low, 2) & (ZERO_SLOTS - 1));
    at[2] = 2 * ZERO_SLOTS + (hash((o.next1 << 8) | o.next3, low) & (ZERO_SLOTS - 1));
    at[3] = 3 * ZERO_SLOTS + (hash((o.at << 16) | (o.next1 << 8) | o.next2, (o.next3 << 4) | low) & (ZERO_SLOTS - 1));
    at[4] = 4 * ZERO_SLOTS + (hash((o.before << 8) | o.next1, low + 16) & (ZERO_SLOTS - 1));
    const direct = (lane << 2) | sn;
    const x = this.zeroIn;
    const z = this.zero;
    for (let i = 0; i < ZERO_MODELS; i++) x[i] = STRETCH[p1Of(z[at[i]]) >> 2];
    x[ZERO_MODELS] = STRETCH[p1Of(this.zeroDirect[direct]) >> 2];
    x[ZERO_MODELS + 1] = 256;
    const set = direct * ZERO_INPUTS;
    const p = mix(this.zeroWeights, set, x, ZERO_INPUTS);
    const changed = c.bit(p, d !== 0 ? 1 : 0);
    train(this.zeroWeights, set, x, ZERO_INPUTS, p, changed);
    for (let i = 0; i < ZERO_MODELS; i++) adapt(z, at[i], changed);
    adapt(this.zeroDirect, direct, changed);

    let value = 0;
    if (changed) {
      const key = o.next1;
      const si = (o.next1 >> 4) | (lane << 4);
      const same = c.bit(p1Of(this.same[si]), d === this.lastDiff[key] ? 1 : 0);
      adapt(this.same, si, same);
      if (same) value = this.lastDiff[key];
      else {
        const v = this.value;
        const vb = pd << 8;
        let node = 1;
        for (let b = 7; b >= 0; b--) {
          const bit = c.bit(p1Of(v[vb + node]), (d >> b) & 1);
          adapt(v, vb + node, bit);
          node = (node << 1) | bit;
        }
        value = node & 255;
      }
      this.lastDiff[key] = value;
      this.sinceChange = 0;
    } else if (sn < 3) this.sinceChange = sn + 1;
    this.previousChanged = value !== 0 ? 1 : 0;
    this.produced((o.at + value) & 255);
    return value;
  }

  /** An extra byte (copied into the new image), at new-image offset `newOffset`. */
  codeExtraByte(c: BitCoder, newOffset: number, v: number): number {
    const x = this.extraIn;
    const w = this.extraWeights;
    const h = this.extraHashed;
    const parity = newOffset & 1;
    let node = 1;
    for (let b = 7; b >= 0; b--) {
      const i1 = (hash(this.new1, node) ^ parity) & (EXTRA_SLOTS - 1);
      const i2 = EXTRA_SLOTS + (hash((this.new1 << 8) | this.new2, node) & (EXTRA_SLOTS - 1));
      x[0] = STRETCH[p1Of(this.extra0[node]) >> 2];
      x[1] = STRETCH[p1Of(h[i1]) >> 2];
      x[2] = STRETCH[p1Of(h[i2]) >> 2];
      x[3] = 256;
      const p = mix(w, 0, x, EXTRA_INPUTS);
      const bit = c.bit(p, (v >> b) & 1);
      train(w, 0, x, EXTRA_INPUTS, p, bit);
      adapt(this.extra0, node, bit);
      adapt(h, i1, bit);
      adapt(h, i2, bit);
      node = (node << 1) | bit;
    }
    const value = node & 255;
    this.previousChanged = 0;
    this.produced(value);
    return value;
  }

  private produced(byte: number): void {
    this.new2 = this.new1;
    this.new1 = byte;
  }
}

/** Zigzag: 0, −1, 1, −2 … ↔ 0, 1, 2, 3 … */
export function zigzag(v: number): number {
  return v >= 0 ? v * 2 : -v * 2 - 1;
}

export function unzigzag(v: number): number {
  return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
}
