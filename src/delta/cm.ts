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
 * Memory: the model's tables are `BlockModel.bytes` (14,666 B), fixed; the
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
export const RATE = new Int32Array(16);
for (let n = 0; n < 16; n++) RATE[n] = Math.floor(32768 / (n + 1.5));

/**
 * A probability is a Uint16: P(1) in the top 12 bits, a 4-bit count of how
 * often it was updated in the low 4 (faster learning at first).
 */
export const PROB_INIT = 0x8000;

export function p1Of(state: number): number {
  const p = state >> 4;
  return p < 1 ? 1 : p > 4095 ? 4095 : p;
}

export function adapt(table: Uint16Array, i: number, bit: number): void {
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
const ZERO_SLOTS = 512; // per hashed zero-flag model
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

function clampWeight(v: number): number {
  return v > WEIGHT_MAX ? WEIGHT_MAX : v < -WEIGHT_MAX ? -WEIGHT_MAX : v;
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
  private readonly extraIn = new Int32Array(EXTRA_INPUTS);
  /** The last nonzero diff value seen next to each old byte value (old[p + 1]). */
  private readonly lastDiff = new Uint8Array(256);
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
    for (const t of [this.zeroWeights, this.extraWeights, this.extraIn, this.lastDiff]) n += t.byteLength;
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

  /**
   * A diff byte (new − old, mod 256) at an old offset whose surroundings are `o`.
   * The hot path of the decoder (one call per diff byte): written out by hand,
   * without helper calls, for the interpreter.
   */
  codeDiffByte(c: BitCoder, o: OldContext, d: number): number {
    const lane = o.lane;
    const pd = this.previousChanged;
    const sn = this.sinceChange;
    const low = (lane << 1) | pd;
    const mask = ZERO_SLOTS - 1;
    const a0 = (Math.imul(((o.at << 4) | low) + 1, 0x9e3779b1) ^ 0x2f5e5358) & mask; // hash(x, 1)
    const a1 = ZERO_SLOTS + ((Math.imul(((o.next1 << 4) | low) + 1, 0x9e3779b1) ^ 0xb54a1dc3) & mask); // hash(x, 2)
    const a2 = 2 * ZERO_SLOTS + ((Math.imul(((o.next1 << 8) | o.next3) + 1, 0x9e3779b1) ^ Math.imul(low + 7, 0x85ebca6b)) & mask);
    const a3 = 3 * ZERO_SLOTS + ((Math.imul(((o.at << 16) | (o.next1 << 8) | o.next2) + 1, 0x9e3779b1) ^ Math.imul(((o.next3 << 4) | low) + 7, 0x85ebca6b)) & mask);
    const a4 = 4 * ZERO_SLOTS + ((Math.imul(((o.before << 8) | o.next1) + 1, 0x9e3779b1) ^ Math.imul(low + 23, 0x85ebca6b)) & mask);
    const direct = (lane << 2) | sn;
    const z = this.zero;
    const s0 = z[a0] >> 4;
    const s1 = z[a1] >> 4;
    const s2 = z[a2] >> 4;
    const s3 = z[a3] >> 4;
    const s4 = z[a4] >> 4;
    const zd = this.zeroDirect;
    const s5 = zd[direct] >> 4;
    const x0 = STRETCH[(s0 < 1 ? 1 : s0) >> 2];
    const x1 = STRETCH[(s1 < 1 ? 1 : s1) >> 2];
    const x2 = STRETCH[(s2 < 1 ? 1 : s2) >> 2];
    const x3 = STRETCH[(s3 < 1 ? 1 : s3) >> 2];
    const x4 = STRETCH[(s4 < 1 ? 1 : s4) >> 2];
    const x5 = STRETCH[(s5 < 1 ? 1 : s5) >> 2];
    const w = this.zeroWeights;
    const set = direct * ZERO_INPUTS;
    const dot = x0 * w[set] + x1 * w[set + 1] + x2 * w[set + 2] + x3 * w[set + 3] + x4 * w[set + 4] + x5 * w[set + 5] + 256 * w[set + 6];
    // squash(), written out.
    const sd = Math.floor(dot / 65536);
    let p: number;
    if (sd > 2047) p = 4095;
    else if (sd < -2047) p = 1;
    else {
      const sw = sd & 127;
      const si = (sd >> 7) + 16;
      p = (SQUASH_POINTS[si] * (128 - sw) + SQUASH_POINTS[si + 1] * sw + 64) >> 7;
      if (p < 1) p = 1;
      else if (p > 4095) p = 4095;
    }
    const changed = c.bit(p, d !== 0 ? 1 : 0);
    const err = ((changed << 12) - p) * MIX_RATE;
    w[set] = clampWeight(w[set] + ((x0 * err) >> 10));
    w[set + 1] = clampWeight(w[set + 1] + ((x1 * err) >> 10));
    w[set + 2] = clampWeight(w[set + 2] + ((x2 * err) >> 10));
    w[set + 3] = clampWeight(w[set + 3] + ((x3 * err) >> 10));
    w[set + 4] = clampWeight(w[set + 4] + ((x4 * err) >> 10));
    w[set + 5] = clampWeight(w[set + 5] + ((x5 * err) >> 10));
    w[set + 6] = clampWeight(w[set + 6] + ((256 * err) >> 10));
    // adapt(), written out.
    {
      const st = z[a0];
      const n = st & 15;
      const q = (st & 0xfff0) + ((((changed ? 65535 : 0) - (st & 0xfff0)) * RATE[n]) >> 15);
      z[a0] = (q & 0xfff0) | (n < 15 ? n + 1 : 15);
    }
    {
      const st = z[a1];
      const n = st & 15;
      const q = (st & 0xfff0) + ((((changed ? 65535 : 0) - (st & 0xfff0)) * RATE[n]) >> 15);
      z[a1] = (q & 0xfff0) | (n < 15 ? n + 1 : 15);
    }
    {
      const st = z[a2];
      const n = st & 15;
      const q = (st & 0xfff0) + ((((changed ? 65535 : 0) - (st & 0xfff0)) * RATE[n]) >> 15);
      z[a2] = (q & 0xfff0) | (n < 15 ? n + 1 : 15);
    }
    {
      const st = z[a3];
      const n = st & 15;
      const q = (st & 0xfff0) + ((((changed ? 65535 : 0) - (st & 0xfff0)) * RATE[n]) >> 15);
      z[a3] = (q & 0xfff0) | (n < 15 ? n + 1 : 15);
    }
    {
      const st = z[a4];
      const n = st & 15;
      const q = (st & 0xfff0) + ((((changed ? 65535 : 0) - (st & 0xfff0)) * RATE[n]) >> 15);
      z[a4] = (q & 0xfff0) | (n < 15 ? n + 1 : 15);
    }
    {
      const st = zd[direct];
      const n = st & 15;
      const q = (st & 0xfff0) + ((((changed ? 65535 : 0) - (st & 0xfff0)) * RATE[n]) >> 15);
      zd[direct] = (q & 0xfff0) | (n < 15 ? n + 1 : 15);
    }

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
    this.new2 = this.new1;
    this.new1 = (o.at + value) & 255;
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
