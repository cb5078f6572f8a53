/**
 * Codec 3 (patch format version 2): round trips on every fixture pair and on
 * empty, identical, unrelated and random pairs, fed whole, in tiny chunks and
 * in sliced mode (`update` within `inputBound`, `pump()` slice by slice, each
 * slice within PATCH_SLICE_OUTPUT and one erase); hand-made bad blocks (old
 * reads outside the old image, copies from the new image past what is
 * written, operations past the span, bad Huffman codes, payload too long or
 * short) refused with reason codes; 10,000 seeded mutations of codec-3
 * patches, with every read of the inactive slot checked to stay below what was
 * written; the decoder's working memory within 32 KiB.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { Prng } from "../../hal/mock/prng";
import type { Flash } from "../../hal/types";
import { softwareDigest } from "../../src/crypto/sha256";
import { Codec, PATCH_HEADER_SIZE, PATCH_MAGIC, PATCH_VERSION_LZ, writeU32 } from "../../src/delta/format";
import { Op } from "../../src/delta/lz";
import { PATCH_SLICE_OUTPUT, PatchApplier, type PatchApplierOptions } from "../../src/delta/patcher";
import { OtaError, Reason, reasonName } from "../../src/errors";
import { crc32 } from "../../src/util/crc32";
import { LZ_BLOCK_SIZES, makePatch } from "../../tools/delta/index";
import { codeBlock, transforms, type LzOp } from "../../tools/delta/lz-encode";
import { fixturePairs } from "../fixtures/firmware/pairs";

const KiB = 1024;

function slots(size: number, blockLength = 4 * KiB) {
  const slotSize = Math.max(blockLength, Math.ceil(size / blockLength) * blockLength);
  const chip = new NorFlash({ size: 3 * slotSize, blockLength, writeAlign: 32 });
  chip.cells.fill(0x11);
  const active = chip.partition(0, slotSize);
  const inactive = chip.partition(slotSize, slotSize);
  return { chip, active, inactive, slotSize };
}

/** Wraps the inactive slot: records the highest offset written, and fails any read at or past it while `strict`. */
function watched(slot: Flash) {
  let written = 0;
  let violations = 0;
  const w = {
    strict: true,
    get violations() {
      return violations;
    },
    status: () => slot.status(),
    read(n: number, at: number) {
      if (w.strict && at + n > written) violations++;
      return slot.read(n, at);
    },
    write(data: Uint8Array, at: number) {
      slot.write(data, at);
      written = Math.max(written, at + data.length);
    },
    eraseBlock(b: number) {
      slot.eraseBlock(b);
    },
  };
  return w;
}

function applyLz(old: Uint8Array, patch: Uint8Array, newLength: number, chunk = 4096): Uint8Array {
  const { active, inactive } = slots(Math.max(old.length, newLength, 1));
  active.cells.set(old);
  const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest });
  for (let at = 0; at < patch.length; at += chunk) a.update(patch.subarray(at, at + chunk));
  const r = a.finish();
  expect(a.workingMemory).toBeLessThanOrEqual(32 * KiB);
  return inactive.cells.slice(0, r.length);
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

/** Codecs 3 and 4: the same operations, Huffman-coded or range-coded. */
const V2_CODECS = [
  [Codec.LZ, "codec 3"],
  [Codec.LZR, "codec 4"],
] as const;

describe("codecs 3 and 4 round trips", () => {
  for (const [codec, label] of V2_CODECS)
  for (const pair of fixturePairs()) {
    it(`${label}, ${pair.name}: diff, apply, compare (whole, 1..7-byte chunks, 4 KiB chunks); version 2 header`, () => {
      const patch = makePatch(pair.old, pair.new, { codec }).bytes;
      expect(patch[4]).toBe(PATCH_VERSION_LZ);
      expect(patch[5]).toBe(codec);
      expect(same(applyLz(pair.old, patch, pair.new.length, patch.length), pair.new)).toBe(true);
      expect(same(applyLz(pair.old, patch, pair.new.length), pair.new)).toBe(true);
      // Tiny chunks: the decoder waits for input mid-operation and mid-table.
      const { active, inactive } = slots(pair.new.length);
      active.cells.set(pair.old);
      const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest });
      for (let at = 0, i = 0; at < patch.length; i++) {
        const n = 1 + (i % 7);
        a.update(patch.subarray(at, at + n));
        at += n;
      }
      a.finish();
      expect(same(inactive.cells.subarray(0, pair.new.length), pair.new)).toBe(true);
    });
  }

  it("without a block size, makePatch keeps the smallest of LZ_BLOCK_SIZES (the pair decides: 64 KiB for the other slot, 16 KiB for the bug fix)", () => {
    const chosen: number[] = [];
    for (const name of ["other-slot", "bug-fix"]) {
      const pair = fixturePairs().find((q) => q.name === name)!;
      const sizes = LZ_BLOCK_SIZES.map((blockSize) => makePatch(pair.old, pair.new, { codec: Codec.LZ, blockSize }).bytes.length);
      const patch = makePatch(pair.old, pair.new).bytes;
      expect(patch.length, name).toBe(Math.min(...sizes));
      const blockSize = 1 << patch[6];
      expect(blockSize, name).toBe(LZ_BLOCK_SIZES[sizes.indexOf(patch.length)]);
      expect(same(applyLz(pair.old, patch, pair.new.length), pair.new), name).toBe(true);
      chosen.push(blockSize);
    }
    expect(chosen).toEqual([64 * KiB, 16 * KiB]);
  });

  const p = new Prng(1515);
  const rnd = (n: number) => p.fill(new Uint8Array(n));
  const base = rnd(70 * KiB);
  const edited = base.slice();
  for (let i = 0; i < 300; i++) edited[p.below(edited.length)] = p.below(256);
  const grown = new Uint8Array([...base.subarray(0, 30000), ...rnd(5000), ...base.subarray(30000), ...base.subarray(1000, 9000)]);
  const text = new Uint8Array(50 * KiB);
  for (let i = 0; i < text.length; i++) text[i] = "the quick brown fox "[i % 20].charCodeAt(0) ^ (i % 977 === 0 ? 1 : 0);
  const cases: [string, Uint8Array, Uint8Array][] = [
    ["empty old", new Uint8Array(0), rnd(5000)],
    ["empty new", rnd(5000), new Uint8Array(0)],
    ["both empty", new Uint8Array(0), new Uint8Array(0)],
    ["identical", base, base],
    ["unrelated", base, rnd(60 * KiB)],
    ["scattered edits", base, edited],
    ["insertion and a copy of earlier new bytes", base, grown],
    ["repetitive (copies from the new image at short distances)", new Uint8Array(0), text],
    ["one byte", new Uint8Array([1]), new Uint8Array([2])],
    ["moved pointers and calls (word and branch rules)", relocatedPair(3, 40 * KiB).old, relocatedPair(3, 40 * KiB).new],
  ];
  for (const [name, o, n] of cases) {
    it(`${name}: diff, apply, compare, at every block size 1 KiB .. 64 KiB, codecs 3 and 4`, () => {
      for (const [codec, label] of V2_CODECS) {
        for (const blockSize of [1024, 4096, 32768, 65536]) {
          const patch = makePatch(o, n, { codec, blockSize }).bytes;
          expect(same(applyLz(o, patch, n.length, 777), n), `${name}, ${label}, ${blockSize}`).toBe(true);
        }
      }
    });
  }
});

describe("sliced mode (bounded work per call)", () => {
  for (const [codec, label] of V2_CODECS)
  it(`${label}: update takes at most inputBound; each pump writes at most one slice and erases at most one block`, () => {
    const pair = fixturePairs().find((q) => q.name === "feature")!;
    const patch = makePatch(pair.old, pair.new, { codec }).bytes;
    const { active, inactive } = slots(pair.new.length);
    active.cells.set(pair.old);
    let written = 0;
    let erases = 0;
    const counting: Flash = {
      status: () => inactive.status(),
      read: (n, at) => inactive.read(n, at),
      write: (d, at) => {
        written += d.length;
        inactive.write(d, at);
      },
      eraseBlock: (b) => {
        erases++;
        inactive.eraseBlock(b);
      },
    };
    const a = new PatchApplier({ activeSlot: active, inactiveSlot: counting, digest: softwareDigest, sliced: true });
    expect(() => a.update(new Uint8Array(a.inputBound + 1))).toThrow(RangeError);
    let pumps = 0;
    let maxWritten = 0;
    let maxErases = 0;
    for (let at = 0; at < patch.length || pumps === 0; ) {
      const n = Math.min(a.inputBound, patch.length - at);
      a.update(patch.subarray(at, at + n));
      at += n;
      for (let more = true; more; ) {
        written = 0;
        erases = 0;
        more = a.pump();
        pumps++;
        maxWritten = Math.max(maxWritten, written);
        maxErases = Math.max(maxErases, erases);
      }
    }
    a.finish();
    expect(same(inactive.cells.subarray(0, pair.new.length), pair.new)).toBe(true);
    // The slot writer programs its 512-byte buffer as it fills: a slice's 4 KiB can flush one buffer more.
    expect(maxWritten).toBeLessThanOrEqual(PATCH_SLICE_OUTPUT + 512);
    expect(maxErases).toBeLessThanOrEqual(1);
    expect(pumps).toBeGreaterThan(pair.new.length / PATCH_SLICE_OUTPUT);
  });
});

// ---- hand-made blocks ----

function v2Patch(old: Uint8Array, nw: Uint8Array, blockSize: number, payloads: (Uint8Array | undefined)[]): Uint8Array {
  const h = new Uint8Array(PATCH_HEADER_SIZE);
  h.set(PATCH_MAGIC, 0);
  h[4] = PATCH_VERSION_LZ;
  h[5] = Codec.LZ;
  h[6] = Math.log2(blockSize);
  writeU32(h, 8, old.length);
  writeU32(h, 12, nw.length);
  h.set(sha256(old), 16);
  h.set(sha256(nw), 48);
  writeU32(h, 80, Math.ceil(nw.length / blockSize));
  writeU32(h, 84, crc32(h.subarray(0, 84)));
  const out: number[] = Array.from(h);
  payloads.forEach((pl, b) => {
    const span = nw.subarray(b * blockSize, Math.min((b + 1) * blockSize, nw.length));
    let v = pl ? pl.length : 0;
    while (v >= 0x80) {
      out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
    const c = new Uint8Array(4);
    writeU32(c, 0, crc32(span));
    out.push(...c);
    if (pl) out.push(...pl);
  });
  return new Uint8Array(out);
}

const hp = new Prng(99);
const OLD = hp.fill(new Uint8Array(8 * KiB));
const NEW = OLD.slice();
NEW.set(hp.fill(new Uint8Array(64)), 3000);

/**
 * A pair made for the relocation transforms: pointer words (0x0800xxxx) and
 * Thumb BL pairs in the old image; in the new one, every pointer moved by
 * +0x40 and every call re-aimed 0x40 further (code moved).
 */
function relocatedPair(seed: number, size: number): { old: Uint8Array; new: Uint8Array } {
  const r = new Prng(seed);
  const old = r.fill(new Uint8Array(size));
  for (let i = 0; i < old.length; i++) if (old[i] >= 0xf0) old[i] &= 0x7f; // no stray BL-looking halfwords
  const nw = old.slice();
  for (let q = 0; q + 8 <= size; q += 32) {
    const target = 0x08000000 + r.below(size);
    writeU32(old, q, target);
    writeU32(nw, q, target + 0x40);
    // A BL at q + 4 with a small forward offset, re-aimed 0x40 further in the new image.
    const imm = 2 * r.below(2000);
    const put = (b: Uint8Array, v: number) => {
      const u = (v >> 1) & 0x3fffff;
      const hi = (u >> 11) & 0x7ff;
      b[q + 4] = hi & 0xff;
      b[q + 5] = 0xf0 | (hi >> 8);
      b[q + 6] = u & 0xff;
      b[q + 7] = 0xf8 | ((u >> 8) & 7);
    };
    put(old, imm);
    put(nw, imm + 0x40);
  }
  return { old, new: nw };
}

function outcome(patch: Uint8Array, chunk = 100): number {
  const { chip, active, inactive, slotSize } = slots(16 * KiB);
  active.cells.set(OLD);
  const before = chip.cells.slice();
  try {
    const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest });
    for (let at = 0; at < patch.length; at += chunk) a.update(patch.subarray(at, at + chunk));
    a.finish();
    return Reason.OK;
  } catch (e) {
    if (!(e instanceof OtaError)) throw e;
    return e.code;
  } finally {
    expect(Buffer.compare(chip.cells.subarray(0, slotSize), before.subarray(0, slotSize))).toBe(0);
    expect(Buffer.compare(chip.cells.subarray(2 * slotSize), before.subarray(2 * slotSize))).toBe(0);
  }
}

/** A one-block patch (4 KiB blocks, block 0 coded from `ops`, the rest identity or coded honestly). */
function craft(ops: LzOp[], startAlign = 0, nw = NEW): Uint8Array {
  const good = makePatch(OLD, nw, { codec: Codec.LZ, blockSize: 4096 }).bytes;
  expect(outcome(good)).toBe(Reason.OK);
  const payloads: (Uint8Array | undefined)[] = [codeBlock(OLD, nw, 0, startAlign, ops).bytes];
  for (let b = 1; b < 2; b++) payloads.push(undefined);
  return v2Patch(OLD, nw, 4096, payloads);
}

describe("codec 3: hand-made bad blocks are refused with reason codes", () => {
  const span = 4096;
  const cases: [string, LzOp[], number, number][] = [
    ["a copy from the new image with nothing written", [{ kind: Op.NEW, length: 16, value: 1 }, { kind: Op.OLD, length: span - 16, value: 0 }], 0, Reason.PATCH_OUT_OF_RANGE],
    ["a copy from the new image one byte past what is written", [{ kind: Op.OLD, length: 100, value: 0 }, { kind: Op.NEW, length: 8, value: 101 }, { kind: Op.OLD, length: span - 108, value: 0 }], 0, Reason.PATCH_OUT_OF_RANGE],
    ["an old read before the old image", [{ kind: -1, length: 0, value: -10 }, { kind: Op.OLD, length: span, value: 0 }], 0, Reason.PATCH_OUT_OF_RANGE],
    ["an old read past the old image", [{ kind: Op.OLD, length: span, value: 0 }], 8 * KiB - 100, Reason.PATCH_OUT_OF_RANGE],
    ["an operation past the block's span", [{ kind: Op.OLD, length: span + 1, value: 0 }], 0, Reason.PATCH_OUT_OF_RANGE],
    ["a span one byte short (payload ends first)", [{ kind: Op.OLD, length: span - 1, value: 0 }], 0, Reason.PATCH_MALFORMED],
    ["an alignment beyond the bound", [{ kind: -1, length: 0, value: (1 << 25) + 1 }, { kind: Op.OLD, length: span, value: 0 }], 0, Reason.PATCH_OUT_OF_RANGE],
  ];
  for (const [name, ops, align, reason] of cases) {
    it(`${name}: ${reasonName(reason)}`, () => {
      expect(reasonName(outcome(craft(ops, align)))).toBe(reasonName(reason));
    });
  }
  it("the same shape with valid operations applies (the cases fail only where they say)", () => {
    const ops: LzOp[] = [{ kind: Op.OLD, length: 100, value: 0 }, { kind: Op.NEW, length: 8, value: 100 }, { kind: Op.OLD, length: span - 108, value: 0 }];
    const nw = OLD.slice();
    nw.set(OLD.subarray(0, 8), 100);
    expect(outcome(craft(ops, 0, nw))).toBe(Reason.OK);
  });
  it("a payload with bytes after the span, over-long or truncated: PATCH_MALFORMED / PATCH_TRUNCATED", () => {
    const good = codeBlock(OLD, NEW, 0, 0, [{ kind: Op.OLD, length: span, value: 0 }]).bytes;
    expect(outcome(v2Patch(OLD, NEW, 4096, [good, undefined]))).not.toBe(Reason.OK); // NEW differs in block 0: CRC
    const ok = codeBlock(OLD, OLD, 0, 0, [{ kind: Op.OLD, length: span, value: 0 }]).bytes;
    const nwSame = OLD.slice();
    expect(reasonName(outcome(v2Patch(OLD, nwSame, 4096, [ok, undefined])))).toBe("OK");
    expect(reasonName(outcome(v2Patch(OLD, nwSame, 4096, [new Uint8Array([...ok, 0]), undefined])))).toBe("PATCH_MALFORMED");
    const full = v2Patch(OLD, nwSame, 4096, [ok, undefined]);
    for (let cut = PATCH_HEADER_SIZE; cut < full.length; cut++) expect(reasonName(outcome(full.subarray(0, cut)))).toBe("PATCH_TRUNCATED");
    // An over-subscribed code-length code: all 15 code-length lengths = 1.
    const bad = new Uint8Array(16);
    bad[0] = 0xff;
    bad[1] = 0xff;
    bad.fill(0x49, 2);
    expect(reasonName(outcome(v2Patch(OLD, nwSame, 4096, [bad, undefined])))).toBe("PATCH_MALFORMED");
  });
  it("bad relocation rules (a word range past 2^32, a branch delta over 26 bits): PATCH_MALFORMED; good ones apply", () => {
    const same = OLD.slice();
    const ops: LzOp[] = [{ kind: Op.OLD, length: span, value: 0 }];
    const bad = [
      transforms([{ lo: 0xffffff00, size: 0x200, delta: 1 }], []),
      transforms([], [{ lo: 0, size: 16, delta: 1 << 26 }]),
    ];
    for (const t of bad) expect(reasonName(outcome(v2Patch(OLD, same, 4096, [codeBlock(OLD, same, 0, 0, ops, undefined, t).bytes, undefined])))).toBe("PATCH_MALFORMED");
    // Rules that match nothing in this block leave the copy as it is.
    const idle = transforms([{ lo: 0, size: 1, delta: 5 }], [{ lo: 0xfff000, size: 4, delta: 2 }]);
    expect(reasonName(outcome(v2Patch(OLD, same, 4096, [codeBlock(OLD, same, 0, 0, ops, undefined, idle).bytes, undefined])))).toBe("OK");
  });
  it("a version 2 header with a version 1 codec, and codec 3 in a version 1 header: PATCH_UNSUPPORTED", () => {
    const p = makePatch(OLD, NEW, { codec: Codec.LZ, blockSize: 4096 }).bytes.slice();
    p[5] = Codec.RANGE;
    writeU32(p, 84, crc32(p.subarray(0, 84)));
    expect(reasonName(outcome(p))).toBe("PATCH_UNSUPPORTED");
    p[4] = 1;
    p[5] = Codec.LZ;
    writeU32(p, 84, crc32(p.subarray(0, 84)));
    expect(reasonName(outcome(p))).toBe("PATCH_UNSUPPORTED");
  });
});

describe("codecs 3 and 4: seeded random mutations", () => {
  for (const [codec, label] of V2_CODECS)
  it(`10,000 mutated ${label} patches: PATCH_* refusals or the exact image; no read of the new image past what is written`, () => {
    const p = new Prng(0x15c0de);
    const other = p.fill(new Uint8Array(9000));
    const rep = new Uint8Array(12000);
    for (let i = 0; i < rep.length; i++) rep[i] = (i * 7) % 251 ^ (i % 300 === 0 ? 5 : 0);
    const moved = relocatedPair(5, 8 * KiB);
    const bases = [
      { patch: makePatch(OLD, NEW, { codec, blockSize: 4096 }).bytes, new: NEW, old: OLD },
      { patch: makePatch(moved.old, moved.new, { codec, blockSize: 4096 }).bytes, new: moved.new, old: moved.old },
      { patch: makePatch(OLD, other, { codec, blockSize: 1024 }).bytes, new: other, old: OLD },
      { patch: makePatch(OLD, rep, { codec, blockSize: 2048 }).bytes, new: rep, old: OLD },
    ];
    // The transforms are in play: the moved pair's patch is far smaller than its changes.
    expect(bases[1].patch.length).toBeLessThan(600);
    const tally: { [name: string]: number } = {};
    const RUNS = 10_000;
    for (let run = 0; run < RUNS; run++) {
      const base = bases[run % bases.length];
      let m = base.patch.slice();
      const edits = 1 + p.below(4);
      for (let k = 0; k < edits && m.length > 0; k++) {
        // Mostly inside the blocks (the header is covered by its CRC and by the version 1 corpus).
        const at = PATCH_HEADER_SIZE + p.below(Math.max(1, m.length - PATCH_HEADER_SIZE));
        if (at >= m.length) continue;
        switch (p.below(5)) {
          case 0:
            m[at] ^= 1 << p.below(8);
            break;
          case 1:
            m[at] = p.below(256);
            break;
          case 2:
            m = m.subarray(0, at).slice();
            break;
          case 3:
            m = new Uint8Array([...m.subarray(0, at), p.below(256), ...m.subarray(at)]);
            break;
          default:
            m = new Uint8Array([...m.subarray(0, at), ...m.subarray(at + 1 + p.below(8))]);
        }
      }
      const { chip, active, inactive, slotSize } = slots(16 * KiB);
      active.cells.set(base.old);
      const before = chip.cells.slice();
      const w = watched(inactive);
      let code: number = Reason.OK;
      try {
        const a = new PatchApplier({ activeSlot: active, inactiveSlot: w, digest: softwareDigest });
        const chunk = 1 + p.below(600);
        for (let at = 0; at < m.length; at += chunk) a.update(m.subarray(at, at + chunk));
        w.strict = false; // finish reads the whole image back
        a.finish();
      } catch (e) {
        if (!(e instanceof OtaError)) throw e;
        code = e.code;
      }
      expect(w.violations, `run ${run}: read of the inactive slot past what was written`).toBe(0);
      expect(Buffer.compare(chip.cells.subarray(0, slotSize), before.subarray(0, slotSize))).toBe(0);
      expect(Buffer.compare(chip.cells.subarray(2 * slotSize), before.subarray(2 * slotSize))).toBe(0);
      if (code === Reason.OK) expect(Buffer.compare(inactive.cells.subarray(0, base.new.length), base.new)).toBe(0);
      else expect(code >= 200 && code < 250, `run ${run}: ${reasonName(code)}`).toBe(true);
      tally[reasonName(code)] = (tally[reasonName(code)] ?? 0) + 1;
    }
    expect(Object.keys(tally).length).toBeGreaterThanOrEqual(4);
    console.log(`[delta ${label}] ${RUNS} mutated patches:`, JSON.stringify(tally));
  });
});
