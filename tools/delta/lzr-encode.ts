/**
 * The codec-4 block coder (decoder src/delta/lzr.ts, byte layout
 * docs/formats.md "Codec 4"): codec 3's parse (lz-encode.ts) coded with the
 * adaptive binary range coder. The syntax is the decoder's, in the same order.
 */
import { DIST_M, MAX_BRANCH_RULES, MAX_RULES, Op, SEEK_PREV_SYMBOL, SEEK_SYMBOL, bucketOf, zigzag } from "../../src/delta/lz";
import {
  DIST_TREE_BITS,
  LZR_DELTA,
  LZR_DIST,
  LZR_PROBS,
  LZR_RANGE,
  LZR_TOP,
  OP_TREE_BITS,
  PREV_SEEK,
  PREV_SEEK_PREV,
  PREV_START,
  diffContext,
  lengthContext,
  literalContext,
  lowLengthBits,
  opContext,
  resetModel,
} from "../../src/delta/lzr";
import { adapt, p1Of } from "../../src/delta/cm";
import { lenSymbol, type LzOp, type Transforms } from "./lz-encode";
import { RangeEncoder } from "./range-encoder";

class LzrWriter {
  private readonly enc = new RangeEncoder(LZR_RANGE, LZR_TOP);
  private readonly probs = new Uint16Array(LZR_PROBS);

  constructor() {
    resetModel(this.probs);
  }

  /** `n` bits of `v` at probability 1/2, MSB first (n <= 33). */
  direct(v: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.enc.bit(2048, Math.floor(v / 2 ** i) % 2);
  }

  /** `sym` (n bits) through the bit tree at `base`. */
  tree(base: number, n: number, sym: number): void {
    let node = 1;
    for (let i = n - 1; i >= 0; i--) {
      const bit = (sym >>> i) & 1;
      this.enc.bit(p1Of(this.probs[base + node]), bit);
      adapt(this.probs, base + node, bit);
      node = node * 2 + bit;
    }
  }

  finish(): Uint8Array {
    return this.enc.finish();
  }
}

/** Code one block's ops (covering exactly the span) with its start alignment and transforms. */
export function codeBlockLzr(old: Uint8Array, nw: Uint8Array, start: number, startAlign: number, ops: readonly LzOp[], t: Transforms): Uint8Array {
  const w = new LzrWriter();
  const z = zigzag(startAlign);
  const e = z === 0 ? 0 : 32 - Math.clz32(z);
  w.direct(e, 5);
  w.direct(z, e);
  if (t.rules.length > MAX_RULES) throw new RangeError("too many relocation rules");
  w.direct(t.rules.length, 4);
  const bitsOf = (v: number) => (v === 0 ? 0 : Math.floor(Math.log2(v)) + 1);
  for (const r of t.rules) {
    w.direct(r.lo, 32);
    w.direct(bitsOf(r.size), 6);
    w.direct(r.size, bitsOf(r.size));
    const dz = zigzag(r.delta);
    w.direct(bitsOf(dz), 6);
    w.direct(dz, bitsOf(dz));
  }
  if (t.branches.length > MAX_BRANCH_RULES) throw new RangeError("too many branch rules");
  w.direct(t.branches.length, 5);
  for (const r of t.branches) {
    w.direct(r.lo, 24);
    w.direct(bitsOf(r.size), 5);
    w.direct(r.size, bitsOf(r.size));
    const dz = zigzag(r.delta);
    w.direct(bitsOf(dz), 5);
    w.direct(dz, bitsOf(dz));
  }
  let p = start;
  let align = startAlign;
  let prevAlign = startAlign;
  let prev = PREV_START;
  for (const op of ops) {
    if (op.kind === -1) {
      w.tree(opContext(prev), OP_TREE_BITS, SEEK_SYMBOL);
      const [s, eb, ev] = bucketOf(zigzag(op.value), DIST_M);
      w.tree(LZR_DELTA, DIST_TREE_BITS, s);
      w.direct(ev, eb);
      prevAlign = align;
      align += op.value;
      prev = PREV_SEEK;
      continue;
    }
    if (op.kind === -2) {
      w.tree(opContext(prev), OP_TREE_BITS, SEEK_PREV_SYMBOL);
      const a = align;
      align = prevAlign;
      prevAlign = a;
      prev = PREV_SEEK_PREV;
      continue;
    }
    const [sym, eb, ev] = lenSymbol(op.kind, op.length);
    w.tree(opContext(prev), OP_TREE_BITS, sym);
    if (eb > 0) {
      const lo = lowLengthBits(eb);
      w.direct(Math.floor(ev / (1 << lo)), eb - lo);
      w.tree(lengthContext(op.kind, p, eb), lo, ev & ((1 << lo) - 1));
    }
    if (op.kind === Op.NEW) {
      const [ds, deb, dev] = bucketOf(op.value - 1, DIST_M);
      w.tree(LZR_DIST, DIST_TREE_BITS, ds);
      w.direct(dev, deb);
    }
    if (op.kind === Op.LIT) for (let i = 0; i < op.length; i++) w.tree(literalContext(p + i), 8, nw[p + i]);
    if (op.kind === Op.ADD) for (let i = 0; i < op.length; i++) w.tree(diffContext(p + i), 8, (nw[p + i] - old[p + i + align]) & 0xff);
    if (op.kind === Op.OLD_ADD) {
      const q = p + op.length - 1;
      w.tree(diffContext(q), 8, (nw[q] - old[q + align]) & 0xff);
    }
    prev = op.kind;
    p += op.length;
  }
  const bytes = w.finish();
  // An empty payload marks an identity block: a stream of zeros (all left out) keeps one.
  return bytes.length > 0 ? bytes : new Uint8Array(1);
}
