/**
 * bsdiff's matching (Colin Percival, "Naive differences of executable code",
 * 2003), written for this project: a suffix array over the old image, the
 * longest exact match for each position of the new image found by binary
 * search, and matches extended forwards and backwards while at least half of
 * the bytes agree ("approximate matches"), so that code moved by a few bytes
 * with relocated addresses becomes one long diff of mostly zero bytes.
 *
 * The result is a list of segments covering the new image in order: `diff`
 * bytes computed as new − old from `oldPos`, then `extra` bytes taken from the
 * new image as they are.
 */
import { suffixArray } from "./sais";

export interface Segment {
  /** Where this segment's bytes start in the new image. */
  readonly newPos: number;
  /** Where the diff part reads the old image (meaningless when diff is 0). */
  readonly oldPos: number;
  /** Bytes produced as new[i] = old[oldPos + i] + diffByte. */
  readonly diff: number;
  /** Bytes copied literally from the new image after the diff part. */
  readonly extra: number;
}

function matchLength(old: Uint8Array, oldPos: number, nw: Uint8Array, newPos: number): number {
  let i = 0;
  const max = Math.min(old.length - oldPos, nw.length - newPos);
  while (i < max && old[oldPos + i] === nw[newPos + i]) i++;
  return i;
}

/** Compare old[a..] with new[b..] over the shorter length: <0, 0 or >0 (memcmp semantics). */
function compare(old: Uint8Array, a: number, nw: Uint8Array, b: number): number {
  const max = Math.min(old.length - a, nw.length - b);
  for (let i = 0; i < max; i++) {
    const d = old[a + i] - nw[b + i];
    if (d !== 0) return d;
  }
  return 0;
}

/** The longest match of new[newPos..] in old, by binary search over the suffix array. */
function search(sa: Int32Array, old: Uint8Array, nw: Uint8Array, newPos: number): { pos: number; length: number } {
  let lo = 0;
  let hi = sa.length - 1;
  // Bounded: the interval halves each pass.
  while (hi - lo >= 2) {
    const mid = lo + ((hi - lo) >> 1);
    if (compare(old, sa[mid], nw, newPos) < 0) lo = mid;
    else hi = mid;
  }
  const a = matchLength(old, sa[lo], nw, newPos);
  const b = matchLength(old, sa[hi], nw, newPos);
  return a > b ? { pos: sa[lo], length: a } : { pos: sa[hi], length: b };
}

/** Segments that turn `old` into `nw` (bsdiff's control stream, as absolute positions). */
export function diffSegments(old: Uint8Array, nw: Uint8Array): Segment[] {
  const segments: Segment[] = [];
  const oldSize = old.length;
  const newSize = nw.length;
  if (newSize === 0) return segments;
  if (oldSize === 0) {
    segments.push({ newPos: 0, oldPos: 0, diff: 0, extra: newSize });
    return segments;
  }
  const sa = suffixArray(old);
  let scan = 0;
  let length = 0;
  let pos = 0;
  let lastScan = 0;
  let lastPos = 0;
  let lastOffset = 0;
  while (scan < newSize) {
    let oldScore = 0;
    let scsc = (scan += length);
    // Find the next position where a fresh match beats the current alignment by more than 8 bytes.
    for (; scan < newSize; scan++) {
      const m = search(sa, old, nw, scan);
      pos = m.pos;
      length = m.length;
      for (; scsc < scan + length; scsc++) {
        if (scsc + lastOffset < oldSize && old[scsc + lastOffset] === nw[scsc]) oldScore++;
      }
      if ((length === oldScore && length !== 0) || length > oldScore + 8) break;
      if (scan + lastOffset < oldSize && old[scan + lastOffset] === nw[scan]) oldScore--;
    }
    if (length === oldScore && scan !== newSize) continue;

    // Extend the previous match forwards while at least half of the bytes agree.
    let lenF = 0;
    {
      let s = 0;
      let best = 0;
      for (let i = 0; lastScan + i < scan && lastPos + i < oldSize; ) {
        if (old[lastPos + i] === nw[lastScan + i]) s++;
        i++;
        if (s * 2 - i > best * 2 - lenF) {
          best = s;
          lenF = i;
        }
      }
    }
    // Extend the new match backwards likewise.
    let lenB = 0;
    if (scan < newSize) {
      let s = 0;
      let best = 0;
      for (let i = 1; scan >= lastScan + i && pos >= i; i++) {
        if (old[pos - i] === nw[scan - i]) s++;
        if (s * 2 - i > best * 2 - lenB) {
          best = s;
          lenB = i;
        }
      }
    }
    // Where the two extensions overlap, split at the best point.
    if (lastScan + lenF > scan - lenB) {
      const overlap = lastScan + lenF - (scan - lenB);
      let s = 0;
      let best = 0;
      let lenS = 0;
      for (let i = 0; i < overlap; i++) {
        if (nw[lastScan + lenF - overlap + i] === old[lastPos + lenF - overlap + i]) s++;
        if (nw[scan - lenB + i] === old[pos - lenB + i]) s--;
        if (s > best) {
          best = s;
          lenS = i + 1;
        }
      }
      lenF += lenS - overlap;
      lenB -= lenS;
    }
    segments.push({ newPos: lastScan, oldPos: lastPos, diff: lenF, extra: scan - lenB - (lastScan + lenF) });
    lastScan = scan - lenB;
    lastPos = pos - lenB;
    lastOffset = pos - scan;
  }
  return segments;
}

/** Check that segments cover `newLength` bytes in order and read only inside `oldLength`. */
export function checkSegments(segments: readonly Segment[], oldLength: number, newLength: number): void {
  let at = 0;
  for (const s of segments) {
    if (s.newPos !== at) throw new Error(`segment at ${s.newPos}, expected ${at}`);
    if (s.diff < 0 || s.extra < 0) throw new Error("negative segment length");
    if (s.diff > 0 && (s.oldPos < 0 || s.oldPos + s.diff > oldLength)) throw new Error(`segment reads old ${s.oldPos}+${s.diff} past ${oldLength}`);
    at += s.diff + s.extra;
  }
  if (at !== newLength) throw new Error(`segments cover ${at} bytes, new image has ${newLength}`);
}
