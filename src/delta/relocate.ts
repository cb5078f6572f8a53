/**
 * Codec 3's relocation rules applied to an old copy (docs/formats.md, "Codec 3",
 * relocation and branch rules): the byte-wise definition the encoder predicts
 * its output with (`transformUnits`), and the decoder's word-at-a-time form
 * with the same result (`transformUnitsAligned`, over `unitRuleMap`). Pure
 * functions over the caller's buffers; checked against each other in
 * test/unit/delta-fastpaths.test.ts.
 */

/**
 * Transform the units of `buf` (old bytes for new offsets [at, at + n), all
 * inside the current copy): Thumb BL pairs at even offsets (first halfword
 * F000..F7FF, second F800..FFFF) re-aimed by the branch rules; then aligned
 * words relocated by the word rules — when the block has branch rules, only
 * words with both halfwords below F000, so that units never overlap.
 * `buf` holds old bytes for new offsets [at, at + n) (copied at `alignment`);
 * shared with the encoder, which must predict the output exactly.
 */
export function transformUnits(
  buf: Uint8Array,
  at: number,
  n: number,
  alignment: number,
  rules: ArrayLike<number>,
  ruleCount: number,
  branches: ArrayLike<number>,
  branchCount: number,
): void {
  const bcount = branchCount * 3;
  const oldAt = at + alignment;
  if (bcount > 0) {
    // Bounded: n / 2 positions, each checked against at most MAX_BRANCH_RULES rules.
    for (let i = at & 1; i + 4 <= n; i += 2) {
      if ((buf[i + 1] & 0xf8) !== 0xf0 || (buf[i + 3] & 0xf8) !== 0xf8) continue;
      const hi = ((buf[i + 1] & 7) << 8) | buf[i];
      const lo = ((buf[i + 3] & 7) << 8) | buf[i + 2];
      // S = bit 10 of hi; J1 = J2 = 1, so imm = sign-extended S:imm10:imm11:0 (23 bits).
      let imm = (((hi & 0x3ff) << 11) | lo) << 1;
      if (hi & 0x400) imm -= 1 << 22;
      const target = oldAt + i + 4 + imm;
      for (let k = 0; k < bcount; k += 3) {
        const d = target - branches[k];
        if (d >= 0 && d < branches[k + 1]) {
          const v = target + branches[k + 2] - (at + i + 4);
          if (v >= -(1 << 22) && v < 1 << 22) {
            const u = (v >> 1) & 0x3fffff;
            const nh = ((u >> 11) & 0x7ff) | (v < 0 ? 0x400 : 0);
            buf[i] = nh & 0xff;
            buf[i + 1] = 0xf0 | (nh >> 8);
            buf[i + 2] = u & 0xff;
            buf[i + 3] = 0xf8 | ((u >> 8) & 7);
          }
          break;
        }
      }
      i += 2;
    }
  }
  const count = ruleCount;
  // Bounded: n / 4 words, each checked against at most MAX_RULES rules.
  for (let i = (4 - (at & 3)) & 3; i + 4 <= n; i += 4) {
    if (bcount > 0 && (buf[i + 1] >= 0xf0 || buf[i + 3] >= 0xf0)) continue;
    const w = (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)) >>> 0;
    for (let k = 0; k < count * 3; k += 3) {
      const d = w - rules[k];
      if (d >= 0 && d < rules[k + 1]) {
        const v = (w + rules[k + 2]) >>> 0;
        buf[i] = v & 0xff;
        buf[i + 1] = (v >>> 8) & 0xff;
        buf[i + 2] = (v >>> 16) & 0xff;
        buf[i + 3] = v >>> 24;
        break;
      }
    }
  }
}

/**
 * transformUnits for the decoder's hot path, with the same result: the bytes
 * sit in `b8` from index `s0` (`s0` ≡ `at` mod 4, so that halfwords and words
 * of the new image are elements of the `b16` and `b32` views of the same
 * buffer), and the copy is read once, a word at a time. `unitMap`
 * (unitRuleMap) tells by a word's top byte what may apply: nothing (0, the
 * word is passed over after one lookup: most words), the word rules from the
 * first that may hold it, or, with branch rules, UNIT_BRANCH: the top byte is
 * F0..FF, the only words in which a BL can start (its first halfword is
 * F000..F7FF, its second F800..FFFF) and which no word rule touches. Which
 * halfwords start a BL does not depend on what came before (a second
 * halfword can never be a first), so each word's check is local: the pair in
 * the word, or the pair from its upper halfword into the next word. (On XS a
 * typed-array access and a loop pass are each an interpreted step: this
 * reads the copy with about a sixth of the byte-wise steps.) Typed arrays here
 * are little-endian (LZ_LITTLE_ENDIAN); elsewhere the decoder uses transformUnits.
 */
export function transformUnitsAligned(
  unitMap: Uint8Array,
  b16: Uint16Array,
  b32: Uint32Array,
  s0: number,
  at: number,
  n: number,
  alignment: number,
  rules: ArrayLike<number>,
  ruleCount: number,
  branches: ArrayLike<number>,
  branchCount: number,
): void {
  const end = s0 + n;
  const bcount = branchCount * 3;
  const count = ruleCount * 3;
  // BLs may start at halfwords [hFirst, hLast]; word rules apply to words [wFirst, wLast].
  const hFirst = (s0 + 1) >> 1;
  const hLast = (end - 4) >> 1;
  const wFirst = (s0 + 3) >> 2;
  const wLast = (end - 4) >> 2;
  if (wLast < wFirst) {
    // No whole word: at most one BL (n < 8).
    if (bcount > 0) for (let h = hFirst; h <= hLast; h++) if (branchAt(b16, h, at + 2 * h - s0 + 4, alignment, branches, bcount)) h++;
    return;
  }
  // A BL from the halfword before the first word (s0 = 1 or 2).
  if (bcount > 0 && hFirst < 2 * wFirst) branchAt(b16, hFirst, at + 2 * hFirst - s0 + 4, alignment, branches, bcount);
  // The last word's upper halfword may start a BL only when the pair ends inside the copy.
  const upperLast = hLast >= 2 * wLast + 1;
  const pc0 = at - s0 + 4; // + 2h: the Thumb PC of a BL at halfword h
  // Bounded: wLast - wFirst + 1 words, each with at most one BL check or MAX_RULES rule checks.
  for (let k = wFirst; k <= wLast; k++) {
    const w = b32[k];
    const m = unitMap[w >>> 24];
    if (m === 0) continue;
    if (m === UNIT_BRANCH) {
      // (Bits 11..15 and 27..31, the halfwords' top five: 11110 then 11111; `w & …` would be a negative int32.)
      if (((w >>> 11) & 0x1f001f) === 0x1f001e) branchAt(b16, 2 * k, pc0 + 4 * k, alignment, branches, bcount);
      else if (w >>> 27 === 0x1e && (k < wLast || upperLast)) branchAt(b16, 2 * k + 1, pc0 + 4 * k + 2, alignment, branches, bcount);
      continue;
    }
    // A word holding a BL-shaped halfword is not relocated when there are branch rules.
    if (bcount > 0 && ((w >>> 8) & 0xff) >= 0xf0) continue;
    for (let r = (m - 1) * 3; r < count; r += 3) {
      const d = w - rules[r];
      if (d >= 0 && d < rules[r + 1]) {
        b32[k] = w + rules[r + 2];
        break;
      }
    }
  }
}

/**
 * The BL check of transformUnitsAligned at halfword `h` (`pc`: the new-image
 * offset of the instruction + 4): when halfwords h, h+1 are BL-shaped, re-aim
 * it by the first branch rule holding its old target (if the new offset fits).
 * Answers whether the pair was BL-shaped.
 */
function branchAt(b16: Uint16Array, h: number, pc: number, alignment: number, branches: ArrayLike<number>, bcount: number): boolean {
  const hi = b16[h];
  if ((hi & 0xf800) !== 0xf000) return false;
  const lo = b16[h + 1];
  if ((lo & 0xf800) !== 0xf800) return false;
  let imm = (((hi & 0x3ff) << 11) | (lo & 0x7ff)) << 1;
  if (hi & 0x400) imm -= 1 << 22;
  const target = pc + alignment + imm;
  // Bounded: MAX_BRANCH_RULES rules.
  for (let r = 0; r < bcount; r += 3) {
    const d = target - branches[r];
    if (d >= 0 && d < branches[r + 1]) {
      const v = target + branches[r + 2] - pc;
      if (v >= -(1 << 22) && v < 1 << 22) {
        const u = (v >> 1) & 0x3fffff;
        b16[h] = 0xf000 | ((u >> 11) & 0x7ff) | (v < 0 ? 0x400 : 0);
        b16[h + 1] = 0xf800 | (u & 0x7ff);
      }
      break;
    }
  }
  return true;
}

/** unitRuleMap's mark for top bytes F0..FF when there are branch rules. */
export const UNIT_BRANCH = 255;

/**
 * The word rules' map by a word's top byte: 1 + the index of the first rule whose
 * range holds a word with that top byte, or 0 (no rule can apply: the word is
 * passed over after one lookup). Rules are tried in order from there, so the
 * first matching rule wins as in transformUnits.
 */
export function wordRuleMap(rules: ArrayLike<number>, ruleCount: number, map: Uint8Array): void {
  map.fill(0);
  // Bounded: MAX_RULES rules, each over at most 256 top bytes.
  for (let r = ruleCount - 1; r >= 0; r--) {
    const lo = rules[3 * r];
    const hi = lo + rules[3 * r + 1] - 1;
    for (let t = Math.floor(lo / 0x1000000); t <= Math.floor(hi / 0x1000000) && t < 256; t++) map[t] = r + 1;
  }
}

/**
 * transformUnitsAligned's map: wordRuleMap, and with branch rules UNIT_BRANCH
 * for top bytes F0..FF (where a BL may start; such words are never relocated
 * while there are branch rules).
 */
export function unitRuleMap(rules: ArrayLike<number>, ruleCount: number, branchCount: number, map: Uint8Array): void {
  wordRuleMap(rules, ruleCount, map);
  if (branchCount > 0) map.fill(UNIT_BRANCH, 0xf0);
}

/** Typed arrays are little-endian here (every target we know; checked, not assumed). */
export const LZ_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
