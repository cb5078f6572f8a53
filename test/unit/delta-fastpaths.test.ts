/**
 * The codec-3 decoder's fast paths give exactly what the reference definitions
 * give: transformUnitsAligned (halfword/word views) against transformUnits (the
 * byte-wise definition the encoder predicts with), and the patch blocks'
 * slicing-by-four CRC against src/util/crc32.ts, on seeded random inputs split
 * at every alignment; and a platform's native CRC-32 (the Digest's optional
 * `crc32`, C on Moddable) is the one the patcher checks every block with.
 */
import { describe, expect, it } from "vitest";
import { Prng } from "../../hal/mock/prng";
import { NorFlash } from "../../hal/mock/flash";
import type { Digest } from "../../hal/types";
import { softwareDigest } from "../../src/crypto/sha256";
import { blockCrcOf, blockCrcUpdate } from "../../src/delta/crc";
import { Codec } from "../../src/delta/format";
import { PatchApplier } from "../../src/delta/patcher";
import { makePatch } from "../../tools/delta/index";
import { buildDecodeTable } from "../../src/delta/lz";
import { transformUnits, transformUnitsAligned, unitRuleMap } from "../../src/delta/relocate";
import { OtaError, Reason } from "../../src/errors";
import { crc32Update } from "../../src/util/crc32";

/** Thumb-like bytes: random halfwords with many BL pairs (F000..F7FF then F800..FFFF) and pointer-like words. */
function thumbish(prng: Prng, n: number, pointerBase: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i + 4 <= n; i += 2) {
    const r = prng.below(10);
    if (r < 3) {
      b[i] = prng.below(256);
      b[i + 1] = 0xf0 | prng.below(8);
      b[i + 2] = prng.below(256);
      b[i + 3] = 0xf8 | prng.below(8);
      i += 2;
    } else if (r < 5 && i % 4 === 0) {
      const w = (pointerBase + prng.below(0x40000)) >>> 0;
      b[i] = w & 0xff;
      b[i + 1] = (w >>> 8) & 0xff;
      b[i + 2] = (w >>> 16) & 0xff;
      b[i + 3] = w >>> 24;
      i += 2;
    } else {
      b[i] = prng.below(256);
      b[i + 1] = prng.below(256);
    }
  }
  return b;
}

describe("codec 3 fast paths", () => {
  it("transformUnitsAligned rewrites exactly what transformUnits rewrites (2,000 seeded cases, every alignment)", () => {
    const prng = new Prng(1507);
    const units = new Uint8Array(1024 + 12);
    const u16 = new Uint16Array(units.buffer);
    const u32 = new Uint32Array(units.buffer);
    const map = new Uint8Array(256);
    let changed = 0;
    for (let t = 0; t < 2000; t++) {
      const base = [0x08000000, 0x20000000, 0, 0xfffc0000][t % 4];
      const n = 1 + prng.below(1030);
      const at = prng.below(200000);
      const alignment = prng.below(4000) - 2000;
      const bytes = thumbish(prng, n, base);
      const ruleCount = prng.below(5);
      const rules: number[] = [];
      for (let r = 0; r < ruleCount; r++) {
        // Mostly narrow ranges; some spanning several top bytes, overlapping the others.
        const size = r === 3 ? 1 + prng.below(0x8000000) : 1 + prng.below(0x30000);
        const lo = Math.min(base + prng.below(0x20000), 0x100000000 - size);
        rules.push(lo, size, (prng.below(2) ? 1 : -1) * (1 + prng.below(0x1000)));
      }
      const branchCount = prng.below(3);
      const branches: number[] = [];
      // Wide ranges some of the time, so that BL targets (anywhere in +-4 MiB) fall inside.
      for (let r = 0; r < branchCount; r++) branches.push(prng.below(220000), 1 + prng.below(r === 0 ? 1 << 23 : 100000), (prng.below(2) ? 2 : -2) * (1 + prng.below(3000)));
      const reference = bytes.slice();
      transformUnits(reference, at, n, alignment, rules, ruleCount, branches, branchCount);
      const s0 = at & 3;
      units.fill(0);
      units.set(bytes, s0);
      unitRuleMap(rules, ruleCount, branchCount, map);
      transformUnitsAligned(map, u16, u32, s0, at, n, alignment, rules, ruleCount, branches, branchCount);
      expect(units.subarray(s0, s0 + n)).toEqual(reference);
      if (!reference.every((v, i) => v === bytes[i])) changed++;
    }
    expect(changed).toBeGreaterThan(600); // the cases do exercise the rules
  });

  it("the blocks' CRC-32 four bytes a step equals crc32Update, at every offset, length and seed", () => {
    const prng = new Prng(99);
    const data = new Uint8Array(700);
    for (let i = 0; i < data.length; i++) data[i] = prng.below(256);
    for (let offset = 0; offset < 8; offset++) {
      const view = data.subarray(offset);
      for (let start = 0; start < 6; start++) {
        for (const end of [start, start + 1, start + 31, start + 32, start + 33, 300, view.length]) {
          for (const seed of [0, 0xdeadbeef, crc32Update(0, data.subarray(0, 5))]) {
            expect(blockCrcUpdate(seed, view, start, end)).toBe(crc32Update(seed, view, start, end));
          }
        }
      }
    }
    expect(blockCrcUpdate(0, new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
  });

  it("the decode table built by doubling equals the one-entry-at-a-time canonical table (3,000 seeded codes, complete and not)", () => {
    const prng = new Prng(15);
    const table = new Uint16Array(2048);
    const counts = new Uint16Array(16);
    const next = new Uint16Array(16);
    for (let t = 0; t < 3000; t++) {
      const n = 1 + prng.below(256);
      const lengths = new Uint8Array(256);
      // Kraft-valid lengths: give symbols lengths while the code has room.
      let room = 1 << 11;
      for (let s = 0; s < n; s++) {
        if (prng.below(4) === 0) continue;
        const l = 1 + prng.below(11);
        if (room >= 1 << (11 - l)) {
          lengths[s] = l;
          room -= 1 << (11 - l);
        }
      }
      const bits = Math.max(0, ...lengths.subarray(0, n));
      const expected = new Uint16Array(2048);
      const byLength = new Uint16Array(16);
      for (let s = 0; s < n; s++) byLength[lengths[s]]++;
      byLength[0] = 0;
      const code = new Uint16Array(16);
      for (let l = 1, c = 0; l <= bits; l++) code[l] = c = (c + byLength[l - 1]) << 1;
      for (let s = 0; s < n; s++) {
        const l = lengths[s];
        if (!l) continue;
        const c = code[l]++;
        let r = 0;
        for (let i = 0; i < l; i++) r |= ((c >>> i) & 1) << (l - 1 - i);
        for (let k = r; k < 1 << bits; k += 1 << l) expected[k] = (s << 4) | l;
      }
      table.fill(0xffff);
      expect(buildDecodeTable(lengths, n, table, counts, next, 0)).toBe(bits);
      if (bits > 0) expect(table.subarray(0, 1 << bits)).toEqual(expected.subarray(0, 1 << bits));
    }
    // Over-subscribed: three codes of length 1.
    expect(() => buildDecodeTable(Uint8Array.of(1, 1, 1), 3, table, counts, next, 0)).toThrow(OtaError);
  });

  describe("a platform CRC-32 (Digest.crc32) is the one the patcher uses", () => {
    const prng = new Prng(77);
    const old = new Uint8Array(40_000).map(() => prng.below(256));
    const nw = old.slice();
    for (let i = 0; i < 300; i++) nw[prng.below(nw.length)] = prng.below(256);
    const install = (digest: Digest, codec: number) => {
      const chip = new NorFlash({ size: 2 * 40_960, blockLength: 4096, writeAlign: 32 });
      const active = chip.partition(0, 40_960);
      const inactive = chip.partition(40_960, 40_960);
      active.cells.set(old);
      const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest });
      a.update(makePatch(old, nw, { codec: codec as 1 | 2 | 3 }).bytes);
      const r = a.finish();
      return { image: inactive.cells.slice(0, r.length), memory: a.workingMemory };
    };
    for (const codec of [Codec.LZ, Codec.DEFLATE, Codec.RANGE]) {
      it(`codec ${codec}: a correct native CRC installs byte-exact and is called; a wrong one fails the first block (PATCH_BLOCK_HASH)`, () => {
        let calls = 0;
        const native: Digest = { sha256: softwareDigest.sha256, crc32: (c, d, s, e) => (calls++, crc32Update(c, d.subarray(s, e))) };
        const plain = install(softwareDigest, codec);
        const ok = install(native, codec);
        expect(ok.image).toEqual(nw);
        expect(calls).toBeGreaterThan(0);
        // Its table is the platform's: the decoder's account drops the JS tables.
        expect(plain.memory - ok.memory).toBe(4096);
        const wrong: Digest = { sha256: softwareDigest.sha256, crc32: (c, d, s, e) => (crc32Update(c, d.subarray(s, e)) ^ 1) >>> 0 };
        let error: unknown;
        try {
          install(wrong, codec);
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(OtaError);
        expect((error as OtaError).code).toBe(Reason.PATCH_BLOCK_HASH);
      });
    }
    it("blockCrcOf: the JS CRC without a native one", () => {
      expect(blockCrcOf(softwareDigest)).toBe(blockCrcUpdate);
    });
  });
});
