/**
 * The codec-3 encoder (patch format version 2; decoder src/delta/lz.ts, byte
 * layout docs/formats.md "Codec 3"). Per block of the new image:
 *
 * 1. Parse: at each position, the cheapest of — continue the old alignment
 *    (exact copy, the "repeat offset"), the previous alignment, the longest
 *    match anywhere in the old image (suffix array), the longest match in the
 *    new image already produced (hash chains; copy-from-new, across blocks),
 *    an add (new = old + diff byte) where the alignment still holds around a
 *    changed byte (relocated pointers, moved calls), or a literal. Costs are
 *    estimated in bits from the previous pass's codes (two passes).
 * 2. Code: canonical Huffman codes per block for ops, literals, diff bytes,
 *    distances and alignment changes, length-limited to MAX_CODE_BITS so the
 *    device decodes each symbol with one table lookup.
 */
import {
  ALPHABET_MAX_BITS,
  ALPHABET_SIZES,
  Alphabet,
  CL_MAX_BITS,
  CL_REPEAT,
  CL_SYMBOLS,
  CL_ZEROS,
  CL_ZEROS_LONG,
  DIST_M,
  LEN_M,
  LEN_SYMBOLS,
  MAX_CODE_BITS,
  MAX_BRANCH_RULES,
  MAX_RULES,
  Op,
  SEEK_PREV_SYMBOL,
  SEEK_SYMBOL,
  bucketOf,
  zigzag,
} from "../../src/delta/lz";
import { transformUnits } from "../../src/delta/relocate";
import { suffixArray } from "./sais";

/** One decoded operation: a seek (kind -1: delta; -2: swap with previous) or an op of `length` bytes. */
export interface LzOp {
  kind: number;
  length: number;
  /** NEW: distance back; SEEK: alignment delta. */
  value: number;
}

class BitWriter {
  private buf = new Uint8Array(1024);
  private length = 0;
  private acc = 0;
  private count = 0;
  private put(byte: number): void {
    if (this.length === this.buf.length) {
      const b = new Uint8Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.length++] = byte;
  }
  bits(value: number, n: number): void {
    // n <= 31; split to stay within 32-bit arithmetic.
    if (n > 16) {
      this.bits(value % 65536, 16);
      this.bits(Math.floor(value / 65536), n - 16);
      return;
    }
    this.acc |= value << this.count;
    this.count += n;
    while (this.count >= 8) {
      this.put(this.acc & 0xff);
      this.acc >>>= 8;
      this.count -= 8;
    }
  }
  finish(): Uint8Array {
    if (this.count > 0) this.put(this.acc & 0xff);
    this.acc = 0;
    this.count = 0;
    return this.buf.slice(0, this.length);
  }
}

/** Huffman code lengths for `freq`, limited to `limit` bits (frequencies flattened until they fit). */
export function codeLengths(freq: ArrayLike<number>, limit: number): Uint8Array {
  const n = freq.length;
  const out = new Uint8Array(n);
  let f = Array.from(freq);
  for (;;) {
    const used: number[] = [];
    for (let i = 0; i < n; i++) if (f[i] > 0) used.push(i);
    if (used.length === 0) return out;
    if (used.length === 1) {
      out[used[0]] = 1;
      return out;
    }
    // Two-queue Huffman over sorted leaves.
    const leaves = used.map((s) => ({ w: f[s], s, l: -1, r: -1 })).sort((a, b) => a.w - b.w || a.s - b.s);
    const nodes: { w: number; s: number; l: number; r: number }[] = leaves.slice();
    const q2: number[] = [];
    let i1 = 0;
    let i2 = 0;
    const take = (): number => {
      if (i1 < leaves.length && (i2 >= q2.length || leaves[i1].w <= nodes[q2[i2]].w)) return i1++;
      return q2[i2++];
    };
    for (let k = 0; k < leaves.length - 1; k++) {
      const a = take();
      const b = take();
      nodes.push({ w: nodes[a].w + nodes[b].w, s: -1, l: a, r: b });
      q2.push(nodes.length - 1);
    }
    const depth = new Int32Array(nodes.length);
    let max = 0;
    for (let k = nodes.length - 1; k >= 0; k--) {
      const nd = nodes[k];
      if (nd.l >= 0) {
        depth[nd.l] = depth[k] + 1;
        depth[nd.r] = depth[k] + 1;
      }
    }
    for (let k = 0; k < leaves.length; k++) max = Math.max(max, depth[k]);
    if (max <= limit) {
      for (let k = 0; k < leaves.length; k++) out[leaves[k].s] = depth[k];
      return out;
    }
    f = f.map((v) => (v > 0 ? Math.max(1, v >> 1) : 0));
  }
}

/** Canonical codes (bit-reversed for the LSB-first stream), as the decoder's buildDecodeTable assigns them. */
function canonicalCodes(lengths: Uint8Array): Uint32Array {
  const counts = new Uint32Array(16);
  for (const l of lengths) counts[l]++;
  counts[0] = 0;
  const next = new Uint32Array(16);
  let code = 0;
  for (let l = 1; l < 16; l++) {
    code = (code + counts[l - 1]) << 1;
    next[l] = code;
  }
  const codes = new Uint32Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s];
    if (l === 0) continue;
    let c = next[l]++;
    let r = 0;
    for (let i = 0; i < l; i++) {
      r = (r << 1) | (c & 1);
      c >>>= 1;
    }
    codes[s] = r;
  }
  return codes;
}

/** Write a code table: count, code-length code, run-length coded lengths. */
function writeTable(w: BitWriter, lengths: Uint8Array): void {
  let count = lengths.length;
  while (count > 0 && lengths[count - 1] === 0) count--;
  w.bits(count, 9);
  if (count === 0) return;
  const syms: [number, number, number][] = []; // symbol, extra bits, extra value
  for (let i = 0; i < count; ) {
    const l = lengths[i];
    let run = 1;
    while (i + run < count && lengths[i + run] === l) run++;
    if (l === 0 && run >= 3) {
      const n = Math.min(run, 138);
      syms.push(n >= 11 ? [CL_ZEROS_LONG, 7, n - 11] : [CL_ZEROS, 3, n - 3]);
      i += n;
      continue;
    }
    syms.push([l, 0, 0]);
    i++;
    run--;
    while (l !== 0 && run >= 3) {
      const n = Math.min(run, 6);
      syms.push([CL_REPEAT, 2, n - 3]);
      i += n;
      run -= n;
    }
  }
  const freq = new Uint32Array(CL_SYMBOLS);
  for (const s of syms) freq[s[0]]++;
  const cl = codeLengths(freq, CL_MAX_BITS);
  for (let i = 0; i < CL_SYMBOLS; i++) w.bits(cl[i], 3);
  const codes = canonicalCodes(cl);
  for (const [s, eb, ev] of syms) {
    w.bits(codes[s], cl[s]);
    if (eb) w.bits(ev, eb);
  }
}

export function lenSymbol(kind: number, length: number): [number, number, number] {
  const [s, eb, ev] = bucketOf(length - 1, LEN_M);
  return [kind * LEN_SYMBOLS + s, eb, ev];
}

/** Per-alphabet code lengths used as the parse's cost model (bits per symbol). */
interface CostModel {
  lengths: Uint8Array[];
}

function flatModel(): CostModel {
  const lengths = ALPHABET_SIZES.map((n) => new Uint8Array(n).fill(0));
  lengths[Alphabet.OP].fill(5);
  lengths[Alphabet.LIT].fill(7);
  lengths[Alphabet.LIT_ODD].fill(7);
  lengths[Alphabet.DIFF].fill(5);
  lengths[Alphabet.DIST].fill(6);
  lengths[Alphabet.DELTA].fill(6);
  return { lengths };
}

/** The match finders shared by every block: old-image suffix array, new-image hash chains. */
class Matcher {
  private readonly sa: Int32Array;
  private readonly head = new Int32Array(1 << 16).fill(-1);
  private readonly prev: Int32Array;
  private inserted = 0;
  constructor(
    private readonly old: Uint8Array,
    private readonly nw: Uint8Array,
  ) {
    this.sa = old.length > 0 ? suffixArray(old) : new Int32Array(1);
    this.prev = new Int32Array(nw.length);
  }

  private hash(p: number): number {
    const n = this.nw;
    return ((n[p] | (n[p + 1] << 8) | (n[p + 2] << 16)) * 0x9e3779b1) >>> 16;
  }

  /** Insert new-image positions below `upTo` into the chains. */
  insertUpTo(upTo: number): void {
    const end = Math.min(upTo, this.nw.length - 2);
    for (; this.inserted < end; this.inserted++) {
      const h = this.hash(this.inserted);
      this.prev[this.inserted] = this.head[h];
      this.head[h] = this.inserted;
    }
    if (this.inserted < upTo) this.inserted = upTo;
  }

  /** Longest match of nw[p..limit) in nw before p (distance >= 1). */
  newMatch(p: number, limit: number, depth: number): { length: number; distance: number } {
    let best = 0;
    let bestDist = 0;
    if (p + 3 > this.nw.length) return { length: 0, distance: 0 };
    const n = this.nw;
    let c = this.head[this.hash(p)];
    for (let k = 0; k < depth && c >= 0; k++, c = this.prev[c]) {
      if (c >= p) continue;
      if (n[c + best] !== n[p + best]) continue;
      let l = 0;
      while (p + l < limit && n[c + l] === n[p + l]) l++;
      if (l > best) {
        best = l;
        bestDist = p - c;
        if (p + l === limit) break;
      }
    }
    return { length: best, distance: bestDist };
  }

  /** Longest match of nw[p..limit) anywhere in old (suffix array binary search). */
  oldMatch(p: number, limit: number): { length: number; pos: number } {
    const old = this.old;
    const nw = this.nw;
    if (old.length === 0) return { length: 0, pos: 0 };
    const sa = this.sa;
    const cmp = (a: number): number => {
      const max = Math.min(old.length - a, limit - p);
      for (let i = 0; i < max; i++) {
        const d = old[a + i] - nw[p + i];
        if (d !== 0) return d;
      }
      return 0;
    };
    let lo = 0;
    let hi = sa.length - 1;
    while (hi - lo >= 2) {
      const mid = lo + ((hi - lo) >> 1);
      if (cmp(sa[mid]) < 0) lo = mid;
      else hi = mid;
    }
    const len = (a: number) => {
      let i = 0;
      const max = Math.min(old.length - a, limit - p);
      while (i < max && old[a + i] === nw[p + i]) i++;
      return i;
    };
    const a = len(sa[lo]);
    const b = len(sa[hi]);
    return a >= b ? { length: a, pos: sa[lo] } : { length: b, pos: sa[hi] };
  }
}

/** A relocation rule: old words in [lo, lo + size) become word + delta (mod 2^32) inside old copies. */
export interface Rule {
  lo: number;
  size: number;
  delta: number;
}

const word = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

function relocated(w: number, rules: readonly Rule[]): number {
  for (const r of rules) if (w >= r.lo && w - r.lo < r.size) return (w + r.delta) >>> 0;
  return w;
}

/** A block's transforms: word rules and branch rules, also as the flat arrays the decoder uses. */
export interface Transforms {
  readonly rules: readonly Rule[];
  readonly branches: readonly Rule[];
  readonly ruleArray: Float64Array;
  readonly branchArray: Float64Array;
}

export function transforms(rules: readonly Rule[], branches: readonly Rule[]): Transforms {
  const flat = (rs: readonly Rule[]) => Float64Array.from(rs.flatMap((r) => [r.lo, r.size, r.delta]));
  return { rules, branches, ruleArray: flat(rules), branchArray: flat(branches) };
}

const NO_TRANSFORMS = transforms([], []);

/** What one OLD copy of `length` bytes at new offset p and `align` writes, as the decoder runs it. */
function copyOutput(old: Uint8Array, p: number, align: number, length: number, t: Transforms): Uint8Array {
  const buf = old.slice(p + align, p + align + length);
  transformUnits(buf, p, length, align, t.ruleArray, t.rules.length, t.branchArray, t.branches.length);
  return buf;
}

/**
 * Bytes from p that one OLD copy at `align` reproduces, as the decoder runs it
 * (units wholly inside the copy transformed, the rest raw).
 */
function runMatch(old: Uint8Array, nw: Uint8Array, p: number, align: number, limit: number, t: Transforms): number {
  if (t.rules.length === 0 && t.branches.length === 0) return exactRun(old, nw, p, align, limit);
  const o = p + align;
  if (o < 0) return 0;
  const max = Math.min(limit - p, old.length - o);
  // Grow the window while everything matches; then shrink to a length whose own output matches.
  let m = Math.min(max, 64);
  for (;;) {
    let length = m;
    // Bounded: each pass shortens the copy.
    for (;;) {
      const out = copyOutput(old, p, align, length, t);
      let i = 0;
      while (i < length && out[i] === nw[p + i]) i++;
      if (i === length) break;
      length = i;
    }
    if (length < m || m === max) return length;
    m = Math.min(max, m * 4);
  }
}

function exactRun(old: Uint8Array, nw: Uint8Array, p: number, align: number, limit: number): number {
  const o = p + align;
  if (o < 0) return 0;
  const max = Math.min(limit - p, old.length - o);
  let i = 0;
  while (i < max && old[o + i] === nw[p + i]) i++;
  return i;
}

/** How many of the `window` bytes after p agree under `align` (does the alignment hold around a changed byte?). */
function agreement(old: Uint8Array, nw: Uint8Array, p: number, align: number, limit: number, window: number): number {
  let n = 0;
  for (let i = 1; i <= window && p + i < limit; i++) {
    const o = p + i + align;
    if (o >= 0 && o < old.length && old[o] === nw[p + i]) n++;
  }
  return n;
}

/** Parse one block [start, end) into ops, given the cost model. */
function parseBlock(
  old: Uint8Array,
  nw: Uint8Array,
  start: number,
  end: number,
  startAlign: number,
  m: Matcher,
  model: CostModel,
  rules: Transforms,
  lazy = true,
): { ops: LzOp[]; align: number } {
  const L = model.lengths;
  const bitsOf = (alphabet: number, sym: number, fallback: number) => L[alphabet][sym] || fallback;
  const lenCost = (kind: number, length: number) => {
    const [s, eb] = lenSymbol(kind, length);
    return bitsOf(Alphabet.OP, s, 12) + eb;
  };
  const bucketCost = (alphabet: number, v: number) => {
    const [s, eb] = bucketOf(v, DIST_M);
    return bitsOf(alphabet, s, 12) + eb;
  };
  const litBits = (p: number) => bitsOf(p & 1 ? Alphabet.LIT_ODD : Alphabet.LIT, nw[p], 9);
  const diffBits = (p: number, align: number) => {
    const o = p + align;
    if (o < 0 || o >= old.length) return 99;
    return bitsOf(Alphabet.DIFF, (nw[p] - old[o]) & 0xff, 10);
  };
  const ops: LzOp[] = [];
  let align = startAlign;
  let prevAlign = startAlign;
  const push = (kind: number, length: number, value: number) => {
    const last = ops[ops.length - 1];
    if (last && last.kind === kind && kind >= Op.OLD && kind <= Op.LIT) last.length += length;
    else ops.push({ kind, length, value });
  };
  const lastKind = () => (ops.length ? ops[ops.length - 1].kind : -3);
  // Savings are measured against coding the covered bytes as literals, at this block's literal costs.
  const litPrefix = new Float64Array(end - start + 1);
  for (let i = start; i < end; i++) litPrefix[i - start + 1] = litPrefix[i - start] + litBits(i);
  const covered = (q: number, n: number) => litPrefix[Math.min(end, q + n) - start] - litPrefix[q - start];
  /** The best multi-byte choice at q (the alignment state as it is now): its gain in bits and how to take it. */
  const evaluate = (q: number): { gain: number; apply?: () => number; rep0: number } => {
    const rep0 = runMatch(old, nw, q, align, end, rules);
    let bestGain = 0;
    let best: (() => number) | undefined;
    const consider = (gain: number, apply: () => number) => {
      if (gain > bestGain) {
        bestGain = gain;
        best = apply;
      }
    };
    if (rep0 > 0) {
      const cont = lastKind() === Op.OLD ? 0 : lenCost(Op.OLD, rep0);
      consider(covered(q, rep0) - cont, () => {
        push(Op.OLD, rep0, 0);
        return rep0;
      });
    }
    if (prevAlign !== align) {
      const rep1 = runMatch(old, nw, q, prevAlign, end, rules);
      if (rep1 > 0) {
        consider(covered(q, rep1) - bitsOf(Alphabet.OP, SEEK_PREV_SYMBOL, 8) - lenCost(Op.OLD, rep1), () => {
          ops.push({ kind: -2, length: 0, value: 0 });
          const a = align;
          align = prevAlign;
          prevAlign = a;
          push(Op.OLD, rep1, 0);
          return rep1;
        });
      }
    }
    const om = m.oldMatch(q, end);
    if (om.length >= 6 && (rules.rules.length || rules.branches.length)) om.length = runMatch(old, nw, q, om.pos - q, end, rules);
    if (om.length >= 6 && om.pos - q !== align) {
      const delta = om.pos - q - align;
      const cost = bitsOf(Alphabet.OP, SEEK_SYMBOL, 8) + bucketCost(Alphabet.DELTA, zigzag(delta)) + lenCost(Op.OLD, om.length);
      consider(covered(q, om.length) - cost, () => {
        ops.push({ kind: -1, length: 0, value: delta });
        prevAlign = align;
        align = om.pos - q;
        push(Op.OLD, om.length, 0);
        return om.length;
      });
    }
    const nm = m.newMatch(q, end, 64);
    if (nm.length >= 4) {
      const cost = lenCost(Op.NEW, nm.length) + bucketCost(Alphabet.DIST, nm.distance - 1);
      consider(covered(q, nm.length) - cost, () => {
        ops.push({ kind: Op.NEW, length: nm.length, value: nm.distance });
        return nm.length;
      });
    }
    // A changed byte where the alignment holds on: add it, and go on copying (one OLD_ADD once merged).
    if (rep0 === 0) {
      const o1 = q + align;
      if (o1 >= 0 && o1 < old.length) {
        const r = runMatch(old, nw, q + 1, align, end, rules);
        if (r > 0) {
          const cost = diffBits(q, align) + lenCost(Op.OLD_ADD, Math.max(1, r)) + (lastKind() === Op.OLD ? 0 : lenCost(Op.OLD, 1));
          consider(covered(q, 1 + r) - cost, () => {
            push(Op.ADD, 1, 0);
            push(Op.OLD, r, 0);
            return 1 + r;
          });
        }
      }
    }
    return { gain: bestGain, apply: best, rep0 };
  };
  for (let p = start; p < end; ) {
    m.insertUpTo(p);
    const here = evaluate(p);
    if (here.rep0 >= 24) {
      push(Op.OLD, here.rep0, 0);
      p += here.rep0;
      continue;
    }
    // One byte: an add where the alignment holds, else a literal.
    const o = p + align;
    const inOld = o >= 0 && o < old.length;
    const holds = inOld && agreement(old, nw, p, align, end, 8) >= 4;
    const addCost = holds ? diffBits(p, align) + (lastKind() === Op.ADD ? 0 : 4) : 99;
    const oneLit = litBits(p) + (lastKind() === Op.LIT ? 0 : 4);
    const single = Math.min(addCost, oneLit);
    if (here.apply && here.gain > covered(p, 1) - single) {
      // Lazy matching: one byte here and the best choice at p + 1, if that gains more.
      if (lazy && !holds && here.rep0 === 0 && p + 1 < end) {
        m.insertUpTo(p + 1);
        const next = evaluate(p + 1);
        if (next.apply && covered(p, 1) - single + next.gain > here.gain + 1) {
          if (addCost <= oneLit) push(Op.ADD, 1, 0);
          else push(Op.LIT, 1, 0);
          p++;
          continue;
        }
      }
      p += here.apply();
      continue;
    }
    if (addCost <= oneLit) push(Op.ADD, 1, 0);
    else push(Op.LIT, 1, 0);
    p++;
  }
  return { ops, align };
}

/** Code one block's ops (ops cover exactly the span; tests hand it bad ones). */
/** Bits spent per part of the stream, summed over blocks (for tuning: `encodeLzBlocks(..., stats)`). */
export interface LzStats {
  [part: string]: number;
}

export function codeBlock(
  old: Uint8Array,
  nw: Uint8Array,
  start: number,
  startAlign: number,
  ops: LzOp[],
  stats?: LzStats,
  t: Transforms = NO_TRANSFORMS,
): { bytes: Uint8Array; lengths: Uint8Array[] } {
  const rules = t.rules;
  const freq = ALPHABET_SIZES.map((n) => new Uint32Array(n));
  let p = start;
  let align = startAlign;
  let prevAlign = startAlign;
  for (const op of ops) {
    if (op.kind === -1) {
      freq[Alphabet.OP][SEEK_SYMBOL]++;
      freq[Alphabet.DELTA][bucketOf(zigzag(op.value), DIST_M)[0]]++;
      prevAlign = align;
      align += op.value;
      continue;
    }
    if (op.kind === -2) {
      freq[Alphabet.OP][SEEK_PREV_SYMBOL]++;
      const a = align;
      align = prevAlign;
      prevAlign = a;
      continue;
    }
    freq[Alphabet.OP][lenSymbol(op.kind, op.length)[0]]++;
    if (op.kind === Op.NEW) freq[Alphabet.DIST][bucketOf(op.value - 1, DIST_M)[0]]++;
    if (op.kind === Op.LIT) for (let i = 0; i < op.length; i++) freq[(p + i) & 1 ? Alphabet.LIT_ODD : Alphabet.LIT][nw[p + i]]++;
    if (op.kind === Op.ADD) for (let i = 0; i < op.length; i++) freq[Alphabet.DIFF][(nw[p + i] - old[p + i + align]) & 0xff]++;
    if (op.kind === Op.OLD_ADD) freq[Alphabet.DIFF][(nw[p + op.length - 1] - old[p + op.length - 1 + align]) & 0xff]++;
    p += op.length;
  }
  const lengths = freq.map((f, a) => codeLengths(f, ALPHABET_MAX_BITS[a]));
  const codes = lengths.map(canonicalCodes);
  const w = new BitWriter();
  for (const l of lengths) writeTable(w, l);
  const z = zigzag(startAlign);
  const e = z === 0 ? 0 : 32 - Math.clz32(z);
  w.bits(e, 5);
  w.bits(z, e);
  if (rules.length > MAX_RULES) throw new RangeError("too many relocation rules");
  w.bits(rules.length, 4);
  for (const r of rules) {
    w.bits(r.lo % 65536, 16);
    w.bits(Math.floor(r.lo / 65536), 16);
    const sb = r.size === 0 ? 0 : Math.floor(Math.log2(r.size)) + 1;
    w.bits(sb, 6);
    w.bits(r.size, sb);
    const dz = zigzag(r.delta);
    const db = dz === 0 ? 0 : Math.floor(Math.log2(dz)) + 1;
    w.bits(db, 6);
    w.bits(dz, db);
  }
  if (t.branches.length > MAX_BRANCH_RULES) throw new RangeError("too many branch rules");
  w.bits(t.branches.length, 5);
  for (const r of t.branches) {
    w.bits(r.lo % 65536, 16);
    w.bits(Math.floor(r.lo / 65536), 8);
    const sb = Math.floor(Math.log2(r.size)) + 1;
    w.bits(sb, 5);
    w.bits(r.size, sb);
    const dz = zigzag(r.delta);
    const db = Math.floor(Math.log2(dz)) + 1;
    w.bits(db, 5);
    w.bits(dz, db);
  }
  if (stats) stats.rules = (stats.rules ?? 0) + 8 + rules.length * 100 + t.branches.length * 60;
  const add = (part: string, bits: number) => {
    if (stats) stats[part] = (stats[part] ?? 0) + bits;
  };
  const sym = (a: number, s: number, part = "op") => {
    add(part, lengths[a][s]);
    w.bits(codes[a][s], lengths[a][s]);
  };
  p = start;
  align = startAlign;
  prevAlign = startAlign;
  for (const op of ops) {
    if (op.kind === -1) {
      sym(Alphabet.OP, SEEK_SYMBOL, "seek");
      const [s, eb, ev] = bucketOf(zigzag(op.value), DIST_M);
      sym(Alphabet.DELTA, s, "seek");
      add("seek", eb);
      w.bits(ev, eb);
      prevAlign = align;
      align += op.value;
      continue;
    }
    if (op.kind === -2) {
      sym(Alphabet.OP, SEEK_PREV_SYMBOL, "seek");
      const a = align;
      align = prevAlign;
      prevAlign = a;
      continue;
    }
    const [s, eb, ev] = lenSymbol(op.kind, op.length);
    const part = ["old", "add", "lit", "new", "old+add"][op.kind];
    sym(Alphabet.OP, s, `${part} op`);
    add(`${part} op`, eb);
    add(`${part} count`, 1);
    add(`${part} bytes`, op.length);
    w.bits(ev, eb);
    if (op.kind === Op.NEW) {
      const [ds, deb, dev] = bucketOf(op.value - 1, DIST_M);
      sym(Alphabet.DIST, ds, "new dist");
      add("new dist", deb);
      w.bits(dev, deb);
    }
    if (op.kind === Op.LIT) for (let i = 0; i < op.length; i++) sym((p + i) & 1 ? Alphabet.LIT_ODD : Alphabet.LIT, nw[p + i], "lit symbols");
    if (op.kind === Op.ADD) for (let i = 0; i < op.length; i++) sym(Alphabet.DIFF, (nw[p + i] - old[p + i + align]) & 0xff, "diff symbols");
    if (op.kind === Op.OLD_ADD) sym(Alphabet.DIFF, (nw[p + op.length - 1] - old[p + op.length - 1 + align]) & 0xff, "diff symbols");
    p += op.length;
  }
  const bytes = w.finish();
  add("total", bytes.length * 8);
  return { bytes, lengths };
}

/** Split ops so that none is longer than the 65,536 bytes one length symbol can say. */
function splitLong(ops: LzOp[]): LzOp[] {
  const out: LzOp[] = [];
  for (const op of ops) {
    let left = op.length;
    if (op.kind < 0) {
      out.push(op);
      continue;
    }
    while (left > 65536) {
      out.push({ kind: op.kind, length: 65536, value: op.value });
      left -= 65536;
    }
    out.push({ kind: op.kind, length: left, value: op.value });
  }
  // An OLD run followed by an added byte becomes one OLD_ADD.
  const merged: LzOp[] = [];
  for (let i = 0; i < out.length; i++) {
    const op = out[i];
    const next = out[i + 1];
    if (op.kind === Op.OLD && next && next.kind === Op.ADD && op.length < 65536) {
      merged.push({ kind: Op.OLD_ADD, length: op.length + 1, value: 0 });
      if (next.length > 1) merged.push({ kind: Op.ADD, length: next.length - 1, value: 0 });
      i++;
      continue;
    }
    merged.push(op);
  }
  return merged;
}

/** True when every OLD copy of `ops`, run as the decoder runs it (relocating whole words inside it), gives nw's bytes. */
function copiesReproduce(old: Uint8Array, nw: Uint8Array, start: number, startAlign: number, ops: LzOp[], t: Transforms): boolean {
  let p = start;
  let align = startAlign;
  let prevAlign = startAlign;
  const copy = (q: number, length: number): boolean => {
    if (q + align < 0 || q + align + length > old.length) return false;
    const buf = copyOutput(old, q, align, length, t);
    for (let i = 0; i < length; i++) if (buf[i] !== nw[q + i]) return false;
    return true;
  };
  for (const op of ops) {
    if (op.kind === -1) {
      prevAlign = align;
      align += op.value;
      continue;
    }
    if (op.kind === -2) {
      const a = align;
      align = prevAlign;
      prevAlign = a;
      continue;
    }
    if (op.kind === Op.OLD && !copy(p, op.length)) return false;
    if (op.kind === Op.OLD_ADD && op.length > 1 && !copy(p, op.length - 1)) return false;
    p += op.length;
  }
  return true;
}

/**
 * Relocation rules for a block from a parse without them: over the whole
 * aligned words the parse took from the old image (copies and adds), the
 * changes new − old that recur, each as the range of old values it applies to,
 * kept while they fix more words than they break.
 */
function chooseRules(old: Uint8Array, nw: Uint8Array, start: number, end: number, startAlign: number, ops: LzOp[]): Rule[] {
  const alignAt = new Float64Array(end - start).fill(NaN);
  let p = start;
  let align = startAlign;
  let prevAlign = startAlign;
  for (const op of ops) {
    if (op.kind === -1) {
      prevAlign = align;
      align += op.value;
      continue;
    }
    if (op.kind === -2) {
      const a = align;
      align = prevAlign;
      prevAlign = a;
      continue;
    }
    if (op.kind === Op.OLD || op.kind === Op.ADD || op.kind === Op.OLD_ADD) for (let i = 0; i < op.length; i++) alignAt[p - start + i] = align;
    p += op.length;
  }
  const changed = new Map<number, number[]>();
  const unchanged: number[] = [];
  const pairs: [number, number][] = [];
  for (let q = (start + 3) & ~3; q + 4 <= end; q += 4) {
    const a = alignAt[q - start];
    if (Number.isNaN(a) || alignAt[q - start + 3] !== a) continue;
    const o = q + a;
    if (o < 0 || o + 4 > old.length) continue;
    const wo = word(old, o);
    const wn = word(nw, q);
    pairs.push([wo, wn]);
    if (wo === wn) unchanged.push(wo);
    else {
      const d = (wn - wo) | 0;
      let list = changed.get(d);
      if (!list) changed.set(d, (list = []));
      list.push(wo);
    }
  }
  const candidates: Rule[] = [];
  for (const [delta, values] of changed) {
    if (values.length < 6) continue;
    values.sort((x, y) => x - y);
    candidates.push({ lo: values[0], size: values[values.length - 1] - values[0] + 1, delta });
  }
  // Greedy: add the rule that helps most given those already chosen (first match wins, as in the decoder).
  const score = (rules: Rule[]) => {
    let n = 0;
    for (const [wo, wn] of pairs) {
      const r = relocated(wo, rules);
      if (r === wn && wo !== wn) n++;
      else if (r !== wn && wo === wn) n--;
      else if (r !== wn && wo !== wn && r !== wo) n -= 0; // was wrong, stays wrong
    }
    return n;
  };
  const chosen: Rule[] = [];
  let best = 0;
  for (let k = 0; k < MAX_RULES; k++) {
    let pick: Rule | undefined;
    let pickScore = best;
    for (const c of candidates) {
      if (chosen.includes(c)) continue;
      const sc = score([...chosen, c]);
      if (sc > pickScore + 10) {
        pickScore = sc;
        pick = c;
      }
    }
    if (!pick) break;
    chosen.push(pick);
    best = pickScore;
  }
  return chosen;
}

/** The immediate of a Thumb BL at b[i] (first halfword F000..F7FF, second F800..FFFF), or undefined. */
function blImmediate(b: Uint8Array, i: number): number | undefined {
  if (i < 0 || i + 3 >= b.length) return undefined;
  if ((b[i + 1] & 0xf8) !== 0xf0 || (b[i + 3] & 0xf8) !== 0xf8) return undefined;
  const hi = ((b[i + 1] & 7) << 8) | b[i];
  const lo = ((b[i + 3] & 7) << 8) | b[i + 2];
  let imm = (((hi & 0x3ff) << 11) | lo) << 1;
  if (hi & 0x400) imm -= 1 << 22;
  return imm;
}

/** The alignment each new byte of [start, end) was taken from the old image at (NaN: not from old). */
function alignMap(start: number, end: number, startAlign: number, ops: LzOp[]): Float64Array {
  const alignAt = new Float64Array(end - start).fill(NaN);
  let p = start;
  let align = startAlign;
  let prevAlign = startAlign;
  for (const op of ops) {
    if (op.kind === -1) {
      prevAlign = align;
      align += op.value;
      continue;
    }
    if (op.kind === -2) {
      const a = align;
      align = prevAlign;
      prevAlign = a;
      continue;
    }
    if (op.kind === Op.OLD || op.kind === Op.ADD || op.kind === Op.OLD_ADD) for (let i = 0; i < op.length; i++) alignAt[p - start + i] = align;
    p += op.length;
  }
  return alignAt;
}

/**
 * Branch rules for a block from a parse without them: every Thumb BL the parse
 * took from the old image, by its old target; runs of targets (in target
 * order) whose calls all moved by the same amount become one rule each, kept
 * where they fix enough calls to pay for themselves.
 */
function chooseBranchRules(old: Uint8Array, nw: Uint8Array, start: number, end: number, startAlign: number, ops: LzOp[]): Rule[] {
  const alignAt = alignMap(start, end, startAlign, ops);
  const items: { t: number; d: number; wrong: boolean }[] = [];
  for (let q = start + (start & 1); q + 4 <= end; q += 2) {
    const a = alignAt[q - start];
    if (Number.isNaN(a) || alignAt[q - start + 3] !== a) continue;
    const io = blImmediate(old, q + a);
    const inw = blImmediate(nw, q);
    if (io === undefined || inw === undefined) continue;
    const t = q + a + 4 + io;
    const d = q + 4 + inw - t;
    if (t >= 0 && t < 1 << 24 && d !== 0 && Math.abs(d) < 1 << 24) items.push({ t, d, wrong: io !== inw });
    q += 2;
  }
  items.sort((x, y) => x.t - y.t);
  const segments: { lo: number; hi: number; delta: number; fixes: number }[] = [];
  for (const it of items) {
    const last = segments[segments.length - 1];
    if (last && last.delta === it.d) {
      last.hi = it.t;
      if (it.wrong) last.fixes++;
    } else segments.push({ lo: it.t, hi: it.t, delta: it.d, fixes: it.wrong ? 1 : 0 });
  }
  return segments
    .filter((g) => g.fixes >= 4)
    .sort((x, y) => y.fixes - x.fixes)
    .slice(0, MAX_BRANCH_RULES)
    .sort((x, y) => x.lo - y.lo)
    .map((g) => ({ lo: g.lo, size: g.hi - g.lo + 1, delta: g.delta }));
}

export interface LzBlocks {
  /** Per block: undefined for an identity block, else the coded payload. */
  readonly payloads: (Uint8Array | undefined)[];
}

/** A final-pass block coder taking codec 3's parse: codec 4's range coding (lzr-encode.ts). */
export type BlockCoder = (old: Uint8Array, nw: Uint8Array, start: number, startAlign: number, ops: LzOp[], t: Transforms) => Uint8Array;

/**
 * Code the new image in blocks of `blockSize` for codec 3, or with `coder` (codec 4) on the last pass.
 * @param passes parse passes (the second uses the first's codes as costs).
 */

export function encodeLzBlocks(old: Uint8Array, nw: Uint8Array, blockSize: number, passes = 3, stats?: LzStats, coder?: BlockCoder): LzBlocks {
  const matcher = () => new Matcher(old, nw);
  const blockCount = Math.ceil(nw.length / blockSize);
  let models: CostModel[] = Array.from({ length: blockCount }, flatModel);
  const rules: Transforms[] = Array.from({ length: blockCount }, () => NO_TRANSFORMS);
  let payloads: (Uint8Array | undefined)[] = [];
  for (let pass = 0; pass < passes; pass++) {
    const m = matcher();
    payloads = [];
    const nextModels: CostModel[] = [];
    let align = 0;
    for (let b = 0; b < blockCount; b++) {
      const start = b * blockSize;
      const end = Math.min(start + blockSize, nw.length);
      let same = end <= old.length;
      for (let i = start; same && i < end; i++) same = old[i] === nw[i];
      if (same) {
        payloads.push(undefined);
        nextModels.push(models[b]);
        align = 0;
        continue;
      }
      const startAlign = align;
      let parsed = parseBlock(old, nw, start, end, startAlign, m, models[b], rules[b]);
      let ops = splitLong(parsed.ops);
      if (rules[b] !== NO_TRANSFORMS && !copiesReproduce(old, nw, start, startAlign, ops, rules[b])) {
        rules[b] = NO_TRANSFORMS;
        parsed = parseBlock(old, nw, start, end, startAlign, m, models[b], rules[b]);
        ops = splitLong(parsed.ops);
      }
      if (pass === 0) rules[b] = transforms(chooseRules(old, nw, start, end, startAlign, ops), chooseBranchRules(old, nw, start, end, startAlign, ops));
      align = parsed.align;
      const t = pass === 0 ? NO_TRANSFORMS : rules[b];
      const coded = codeBlock(old, nw, start, startAlign, ops, pass === passes - 1 ? stats : undefined, t);
      payloads.push(coder && pass === passes - 1 ? coder(old, nw, start, startAlign, ops, t) : coded.bytes);
      nextModels.push({ lengths: coded.lengths });
    }
    models = nextModels;
  }
  return { payloads };
}
