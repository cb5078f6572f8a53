/**
 * The delta engine end to end on the host: the generator (tools/delta) and the
 * device's patcher (src/delta) over strict mock flash.
 *
 * Chunking (what "split at every size" means here): every fixture pair's patch
 * is fed in chunks of every size 1..64, then a sweep of larger sizes (65..4096
 * in steps of 61, plus the whole patch in one call); and a small patch is fed
 * in two chunks split at every byte position and in three chunks around every
 * block boundary.
 */
import { deflateRawSync, constants } from "node:zlib";
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { Prng } from "../../hal/mock/prng";
import { softwareDigest } from "../../src/crypto/sha256";
import { Codec, PATCH_HEADER_SIZE, decodeCheckpoint, encodeCheckpoint, parseBlockHeader } from "../../src/delta/format";
import { BlockModel, IntKind } from "../../src/delta/cm";
import { Inflater } from "../../src/delta/inflate";
import { RangeDecoder } from "../../src/delta/range";
import { PATCH_SLICE_OUTPUT, PatchApplier } from "../../src/delta/patcher";
import type { Flash } from "../../hal/types";
import type { PatchCheckpoint } from "../../src/delta/format";
import { isOtaError, Reason } from "../../src/errors";
import { checkSegments, diffSegments } from "../../tools/delta/bsdiff";
import { DEFAULT_BLOCK_SIZE, makePatch } from "../../tools/delta/index";
import { inspectPatch, isPatch } from "../../tools/delta/inspect";
import { RangeEncoder } from "../../tools/delta/range-encoder";
import { suffixArray } from "../../tools/delta/sais";
import { fixturePairs } from "../fixtures/firmware/pairs";

const KiB = 1024;

/** Two slots on one strict NOR chip: 4 KiB erase blocks, 32-byte write unit (the sim's small map geometry). */
function slots(size: number, geometry = { blockLength: 4 * KiB, writeAlign: 32 }) {
  const slotSize = Math.max(geometry.blockLength, Math.ceil(size / geometry.blockLength) * geometry.blockLength);
  const chip = new NorFlash({ size: 2 * slotSize, ...geometry });
  return { chip, active: chip.partition(0, slotSize), inactive: chip.partition(slotSize, slotSize) };
}

/** Apply `patch` to `old` feeding chunks cut by `cuts` (sizes, repeated); returns the new image from flash. */
function apply(old: Uint8Array, patch: Uint8Array, chunkSizes: (i: number) => number, newLength?: number): Uint8Array {
  const { active, inactive } = slots(Math.max(old.length, newLength ?? old.length + 64 * KiB, 1));
  active.cells.set(old);
  const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest });
  for (let at = 0, i = 0; at < patch.length; i++) {
    const n = Math.max(1, chunkSizes(i));
    a.update(patch.subarray(at, at + n));
    at += n;
  }
  const r = a.finish();
  return inactive.cells.slice(0, r.length);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

describe("suffix array (SA-IS)", () => {
  it("matches a naive sort on random small inputs of 1..4 letter alphabets", () => {
    const p = new Prng(11);
    for (let t = 0; t < 400; t++) {
      const b = new Uint8Array(p.below(80));
      const alphabet = 1 + p.below(4);
      for (let i = 0; i < b.length; i++) b[i] = p.below(alphabet);
      const naive = Array.from({ length: b.length + 1 }, (_, i) => i).sort((x, y) => Buffer.compare(Buffer.from(b.subarray(x)), Buffer.from(b.subarray(y))));
      expect(Array.from(suffixArray(b))).toEqual(naive);
    }
  });
});

describe("bsdiff segments", () => {
  it("cover the new image exactly and read only inside the old one", () => {
    for (const pair of fixturePairs()) checkSegments(diffSegments(pair.old, pair.new), pair.old.length, pair.new.length);
  });
});

describe("inflater against node:zlib", () => {
  const p = new Prng(5);
  const inputs: Uint8Array[] = [];
  for (let k = 0; k < 24; k++) {
    const n = p.below(40 * KiB);
    const b = new Uint8Array(n);
    const mode = k % 4;
    for (let i = 0; i < n; i++) b[i] = mode === 0 ? p.below(256) : mode === 1 ? p.below(4) : mode === 2 ? (i % 97) & 0xff : p.below(50) === 0 ? p.below(256) : 0;
    inputs.push(b);
  }
  const variants: [string, object][] = [
    ["level 9", { level: 9 }],
    ["level 1", { level: 1 }],
    ["stored (level 0)", { level: 0 }],
    ["fixed Huffman", { level: 9, strategy: constants.Z_FIXED }],
    ["Huffman only", { level: 9, strategy: constants.Z_HUFFMAN_ONLY }],
    ["RLE", { level: 9, strategy: constants.Z_RLE }],
  ];
  for (const [name, options] of variants) {
    it(`decodes ${name} streams fed in random splits`, () => {
      const inf = new Inflater();
      for (const input of inputs) {
        const z = new Uint8Array(deflateRawSync(input, options));
        const out = new Uint8Array(input.length + 7);
        inf.begin(out, input.length, z.length);
        for (let at = 0; at < z.length; ) {
          const n = 1 + p.below(700);
          at += inf.push(z, at, Math.min(z.length, at + n));
        }
        expect(inf.done).toBe(true);
        expect(equal(out.subarray(0, input.length), input)).toBe(true);
      }
    });
  }
  it("refuses a wrong declared output length, trailing input and truncation", () => {
    const input = new Uint8Array(5000).map((_, i) => i * 7);
    const z = new Uint8Array(deflateRawSync(input, { level: 9 }));
    const inf = new Inflater();
    const out = new Uint8Array(6000);
    const run = (outLength: number, bytes: Uint8Array) => {
      inf.begin(out, outLength, bytes.length);
      inf.push(bytes, 0, bytes.length);
      return inf.done;
    };
    const isDecompress = (e: unknown) => isOtaError(e, Reason.PATCH_DECOMPRESS);
    expect(() => run(4999, z)).toThrow();
    expect(() => run(5001, z)).toThrow();
    expect(() => run(5000, new Uint8Array([...z, 0]))).toThrow();
    for (const cut of [1, 10, z.length - 1]) {
      try {
        run(5000, z.subarray(0, cut));
        expect.unreachable("a truncated stream must not decode");
      } catch (e) {
        expect(isDecompress(e)).toBe(true);
      }
    }
  });
});

describe("patches of the firmware fixtures", () => {
  for (const pair of fixturePairs()) for (const codec of [Codec.RANGE, Codec.DEFLATE]) {
    const patch = makePatch(pair.old, pair.new, { codec }).bytes;
    const name = `${pair.name} (${codec === Codec.RANGE ? "range" : "deflate"})`;
    it(`${name}: applies byte for byte with every chunk size 1..64`, () => {
      for (let size = 1; size <= 64; size++) expect(equal(apply(pair.old, patch, () => size), pair.new), `chunk ${size}`).toBe(true);
    });
    it(`${name}: applies with chunk sizes 65..4096 (step 61), random sizes, and in one call`, () => {
      for (let size = 65; size <= 4096; size += 61) expect(equal(apply(pair.old, patch, () => size), pair.new), `chunk ${size}`).toBe(true);
      const p = new Prng(pair.new.length);
      expect(equal(apply(pair.old, patch, () => 1 + p.below(3000)), pair.new)).toBe(true);
      expect(equal(apply(pair.old, patch, () => patch.length), pair.new)).toBe(true);
    });
    if (pair.minor) {
      it(`${name} (a minor release): the patch is at most 1/10 of the full image`, () => {
        expect(patch.length * 10).toBeLessThanOrEqual(pair.new.length);
      });
    }
  }
});

describe("split at every point", () => {
  it("a small patch fed in two chunks split at every byte, and three chunks around every block", () => {
    const p = new Prng(99);
    const old = p.fill(new Uint8Array(10 * KiB));
    const nw = old.slice();
    nw.set(p.fill(new Uint8Array(300)), 2000);
    nw[7000] ^= 0xff;
    for (const codec of [Codec.RANGE, Codec.DEFLATE]) {
      const patch = makePatch(old, nw, { blockSize: 1024, codec }).bytes;
      expect(patch.length).toBeLessThan(1500);
      for (let cut = 0; cut <= patch.length; cut++) {
        expect(equal(apply(old, patch, (i) => (i === 0 ? cut || patch.length : patch.length)), nw), `split at ${cut}`).toBe(true);
      }
      for (let cut = 1; cut < patch.length - 3; cut += 3) {
        expect(equal(apply(old, patch, (i) => (i === 0 ? cut : i === 1 ? 3 : patch.length)), nw), `three chunks at ${cut}`).toBe(true);
    }
    }
  });
});

describe("round trips of arbitrary pairs", () => {
  const p = new Prng(2024);
  const rand = (n: number) => p.fill(new Uint8Array(n));
  const base = rand(50 * KiB);
  const cases: [string, Uint8Array, Uint8Array][] = [
    ["both empty", new Uint8Array(0), new Uint8Array(0)],
    ["empty to something", new Uint8Array(0), rand(5000)],
    ["something to empty", rand(5000), new Uint8Array(0)],
    ["identical", base, base.slice()],
    ["completely unrelated", rand(40 * KiB), rand(45 * KiB)],
    ["one byte", new Uint8Array([1]), new Uint8Array([2])],
    ["shrunk", base, base.subarray(1000, 30000)],
    ["grown past a block", base, new Uint8Array([...base, ...rand(40 * KiB)])],
    ["all zeros to all 0xff", new Uint8Array(70 * KiB), new Uint8Array(70 * KiB).fill(0xff)],
    ["length not a write-unit multiple", base.subarray(0, 33333), base.subarray(7, 33339)],
  ];
  for (const [name, old, nw] of cases) {
    for (const codec of [Codec.RANGE, Codec.DEFLATE, Codec.STORED]) {
      it(`${name} (${["stored", "deflate", "range"][codec]})`, () => {
        const patch = makePatch(old, nw, { codec, blockSize: 4096 }).bytes;
        expect(equal(apply(old, patch, () => 777, nw.length), nw)).toBe(true);
      });
    }
  }
  it("every block size 1 KiB .. 64 KiB", () => {
    const nw = base.slice();
    nw.set(rand(100), 20000);
    for (let bs = 1024; bs <= 65536; bs *= 2) for (const codec of [Codec.RANGE, Codec.DEFLATE]) {
      const patch = makePatch(base, nw, { blockSize: bs, codec }).bytes;
      const { active, inactive } = slots(base.length);
      active.cells.set(base);
      const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest, maxBlockSize: 65536 });
      a.update(patch);
      a.finish();
      expect(equal(inactive.cells.subarray(0, nw.length), nw), `block size ${bs}`).toBe(true);
    }
  });
  it("generates a patch between two 2 MiB images in seconds", () => {
    const old = new Uint8Array(2048 * KiB);
    new Prng(3).fill(old);
    for (let i = 0; i < old.length; i += 5) old[i] = 0;
    const nw = new Uint8Array(old.length + 512);
    nw.set(old.subarray(0, 1000 * KiB));
    nw.set(old.subarray(1000 * KiB), 1000 * KiB + 512);
    const t0 = Date.now();
    const patch = makePatch(old, nw).bytes;
    // Not a timing assertion (benches measure speed): a hang or a quadratic blow-up would time the test out.
    expect(patch.length).toBeLessThan(20 * KiB);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(0);
  });
});

describe("the range coder (codec RANGE)", () => {
  it("round-trips random decisions at random probabilities, and integers from 0 to 2^32 - 1", () => {
    const p = new Prng(5);
    const probs = Array.from({ length: 20000 }, () => 1 + p.below(4095));
    const bits = probs.map((q) => (p.below(4096) < q ? 1 : 0));
    const enc = new RangeEncoder();
    bits.forEach((b, i) => enc.bit(probs[i], b));
    const ints = [0, 1, 2, 3, 127, 128, 0xffff, 0x10000, 2 ** 31, 0xffffffff, ...Array.from({ length: 200 }, () => p.below(0xffffffff))];
    const m = new BlockModel();
    for (const v of ints) m.codeInt(enc, IntKind.EXTRA, v);
    const bytes = enc.finish();
    const dec = new RangeDecoder();
    dec.begin(bytes, bytes.length);
    expect(probs.map((q) => dec.bit(q, 0))).toEqual(bits);
    const md = new BlockModel();
    expect(ints.map(() => md.codeInt(dec, IntKind.EXTRA, 0))).toEqual(ints);
    expect(dec.position).toBeGreaterThanOrEqual(bytes.length);
  });
  it("makePatch: the default is codec 3; \"smallest\" keeps the smallest of codecs 3 and 4, range and deflate; every decoder within 64 KiB", () => {
    for (const pair of fixturePairs()) {
      expect(makePatch(pair.old, pair.new).bytes[5], pair.name).toBe(Codec.LZ);
      const auto = makePatch(pair.old, pair.new, { codec: "smallest" }).bytes;
      const sizes = [Codec.LZ, Codec.LZR, Codec.RANGE, Codec.DEFLATE].map((codec) => makePatch(pair.old, pair.new, { codec }).bytes.length);
      expect(auto.length).toBe(Math.min(...sizes));
      const { active, inactive } = slots(pair.new.length);
      active.cells.set(pair.old);
      const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest });
      a.update(auto);
      a.finish();
      expect(a.workingMemory).toBeLessThanOrEqual(64 * KiB);
    }
  });
});

describe("format helpers", () => {
  it("checkpoint records round-trip and refuse corruption", () => {
    const old = new Prng(1).fill(new Uint8Array(100 * KiB));
    const nw = old.slice();
    nw[50000] ^= 1;
    const patch = makePatch(old, nw, { blockSize: DEFAULT_BLOCK_SIZE }).bytes;
    const { active, inactive } = slots(old.length);
    active.cells.set(old);
    const seen: Uint8Array[] = [];
    const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest, onBlock: (cp) => seen.push(encodeCheckpoint(cp)) });
    a.update(patch);
    expect(seen.length).toBe(Math.ceil(nw.length / DEFAULT_BLOCK_SIZE));
    const cp = decodeCheckpoint(seen[1]);
    expect(cp.nextBlock).toBe(2);
    expect(cp.nextNewOffset).toBe(2 * DEFAULT_BLOCK_SIZE);
    const bad = seen[1].slice();
    bad[PATCH_HEADER_SIZE + 2] ^= 1;
    expect(() => decodeCheckpoint(bad)).toThrow(/CHECKPOINT/);
    expect(() => decodeCheckpoint(bad.subarray(1))).toThrow(/CHECKPOINT/);
  });
  it("block headers parse only when complete", () => {
    const b = new Uint8Array([0x80, 0x01, 0x05, 1, 2, 3, 4]);
    expect(parseBlockHeader(b, 6)).toBeUndefined();
    expect(parseBlockHeader(b, 7)).toEqual({ storedLength: 128, rawLength: 5, crc: 0x04030201, size: 7 });
    expect(() => parseBlockHeader(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 6)).toThrow(/PATCH_MALFORMED/);
  });
  it("inspect describes a patch and isPatch tells patches from other files", () => {
    const pair = fixturePairs()[1];
    const patch = makePatch(pair.old, pair.new, { codec: Codec.RANGE }).bytes;
    expect(isPatch(patch)).toBe(true);
    expect(isPatch(pair.old)).toBe(false);
    const text = inspectPatch(patch);
    expect(text).toMatch(/codec: +range/);
    const lz = inspectPatch(makePatch(pair.old, pair.new).bytes);
    expect(lz).toMatch(/format version: 2/);
    expect(lz).toMatch(/codec: +lz/);
    expect(lz).not.toMatch(/MALFORMED|TRUNCATED|TRAILING/);
    expect(inspectPatch(makePatch(pair.old, pair.new, { codec: Codec.DEFLATE }).bytes)).toMatch(/codec: +deflate/);
    expect(text).toMatch(new RegExp(`new image: +${pair.new.length} bytes`));
    expect(inspectPatch(patch.subarray(0, 50))).toMatch(/INVALID/);
    expect(inspectPatch(patch.subarray(0, patch.length - 1))).toMatch(/TRUNCATED|MALFORMED|payload truncated/);
  });
});

describe("sliced mode, version 1 (codecs 0, 1 and 2)", () => {
  /** The inactive slot, counting what each pump programs and erases. */
  function counted(inactive: Flash) {
    const c = { written: 0, erases: 0, maxWritten: 0, maxErases: 0, inflated: 0, maxInflated: 0 };
    const flash: Flash = {
      status: () => inactive.status(),
      read: (n, at) => inactive.read(n, at),
      write: (d, at) => {
        c.written += d.length;
        inactive.write(d, at);
      },
      eraseBlock: (b) => {
        c.erases++;
        inactive.eraseBlock(b);
      },
    };
    return { c, flash };
  }

  /** Feed `patch[from, ...)` within inputBound in pieces of at most `piece`, pumping each slice; stops after `stopAfter` pumps. */
  function drive(a: PatchApplier, patch: Uint8Array, from: number, piece: number, c: ReturnType<typeof counted>["c"], stopAfter = Infinity): number {
    let pumps = 0;
    for (let at = from; at < patch.length || pumps === 0; ) {
      const n = Math.min(a.inputBound, piece, patch.length - at);
      a.update(patch.subarray(at, at + n));
      at += n;
      for (let more = true; more; ) {
        c.written = 0;
        c.erases = 0;
        c.inflated = 0;
        more = a.pump();
        pumps++;
        c.maxWritten = Math.max(c.maxWritten, c.written);
        c.maxErases = Math.max(c.maxErases, c.erases);
        c.maxInflated = Math.max(c.maxInflated, c.inflated);
        if (pumps >= stopAfter) return pumps;
      }
    }
    return pumps;
  }

  const p = new Prng(1414);
  const old = new Uint8Array(96 * KiB);
  for (let i = 0; i < old.length; i++) old[i] = p.below(256);
  const edited = old.slice();
  for (let i = 0; i < 200; i++) edited[40 * KiB + p.below(40 * KiB)] = p.below(256); // the first 40 KiB: identity blocks
  const grown = new Uint8Array(160 * KiB);
  grown.set(edited.subarray(0, 80 * KiB));
  for (let i = 100 * KiB; i < grown.length; i++) grown[i] = p.below(256); // extra bytes
  const zeros = new Uint8Array(448 * KiB); // expands hugely from a tiny patch
  const cases: [string, Uint8Array, number][] = [];
  for (const codec of [Codec.STORED, Codec.DEFLATE, Codec.RANGE]) {
    cases.push([`codec ${codec}, scattered edits and identity blocks`, edited, codec]);
    cases.push([`codec ${codec}, growth with new bytes`, grown, codec]);
  }
  cases.push(["codec 2, 448 KiB of zeros from a tiny patch", zeros, Codec.RANGE]);
  cases.push(["codec 1, 448 KiB of zeros from a tiny patch", zeros, Codec.DEFLATE]);

  for (const [name, nw, codec] of cases) {
    it(`${name}: each pump writes at most one slice and erases at most one block; byte for byte`, () => {
      const patch = makePatch(old, nw, { codec: codec as 0 | 1 | 2 }).bytes;
      const { active, inactive } = slots(Math.max(old.length, nw.length));
      active.cells.set(old);
      const { c, flash } = counted(inactive);
      const a = new PatchApplier({ activeSlot: active, inactiveSlot: flash, digest: softwareDigest, sliced: true });
      // Meter the inflater's output (decoded into the raw block buffer) per pump.
      const push = Inflater.prototype.push;
      Inflater.prototype.push = function (this: Inflater, chunk: Uint8Array, start: number, end: number): number {
        const before = this.outputLength;
        const n = push.call(this, chunk, start, end);
        c.inflated += this.outputLength - before;
        return n;
      };
      let pumps: number;
      try {
        pumps = drive(a, patch, 0, 777, c);
      } finally {
        Inflater.prototype.push = push;
      }
      a.finish();
      // One DEFLATE match may pass the slice by at most 257 bytes.
      expect(c.maxInflated).toBeLessThanOrEqual(PATCH_SLICE_OUTPUT + 257);
      if (codec === Codec.DEFLATE) expect(c.maxInflated).toBeGreaterThan(0);
      expect(equal(inactive.cells.slice(0, nw.length), nw)).toBe(true);
      expect(c.maxWritten).toBeLessThanOrEqual(PATCH_SLICE_OUTPUT + 512);
      expect(c.maxErases).toBeLessThanOrEqual(1);
      expect(pumps).toBeGreaterThan(nw.length / PATCH_SLICE_OUTPUT);
      if (nw === zeros) expect(patch.length, "one input window").toBeLessThan(2048);
    });
  }

  it("a power cut in the middle of a block's slices resumes from the block's start (no mid-block checkpoint), sliced, byte for byte", () => {
    for (const codec of [Codec.DEFLATE, Codec.RANGE] as const) {
      const patch = makePatch(old, grown, { codec }).bytes;
      const { active, inactive } = slots(Math.max(old.length, grown.length));
      active.cells.set(old);
      let midBlock = false;
      for (const cutAfter of [3, 13, 22, 31, 40, 49]) {
        inactive.cells.fill(0xff);
        let cp: PatchCheckpoint | undefined;
        const onBlock = (k: PatchCheckpoint) => (cp = k);
        const { c, flash } = counted(inactive);
        const a = new PatchApplier({ activeSlot: active, inactiveSlot: flash, digest: softwareDigest, sliced: true, onBlock });
        drive(a, patch, 0, 2048, c, cutAfter);
        const mid = a.checkpoint()!;
        expect(mid.nextNewOffset % DEFAULT_BLOCK_SIZE, "checkpoints are at block boundaries").toBe(0);
        if (cp) expect(mid).toEqual(cp);
        // The cut falls inside a block: bytes past the checkpoint are programmed already.
        if (cutAfter > 3) midBlock ||= !inactive.cells.subarray(mid.nextNewOffset, mid.nextNewOffset + 512).every((x) => x === 0xff);
        const b = PatchApplier.resume({ activeSlot: active, inactiveSlot: flash, digest: softwareDigest, sliced: true, onBlock }, mid);
        drive(b, patch, b.patchOffset, 999, c);
        b.finish();
        expect(equal(inactive.cells.slice(0, grown.length), grown), `${codec}/${cutAfter}`).toBe(true);
        expect(c.maxWritten).toBeLessThanOrEqual(PATCH_SLICE_OUTPUT + 512);
        expect(c.maxErases).toBeLessThanOrEqual(1);
      }
      expect(midBlock, `${codec}: some cut fell in the middle of a block`).toBe(true);
    }
  });
});
