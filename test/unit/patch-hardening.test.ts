/**
 * Bad patches: a corpus of malformed ones (truncated at every length, every
 * header byte mutated with and without a fixed-up CRC, hand-made blocks with
 * out-of-range control values — the bsdiff CVE class) must each be refused
 * with a PATCH_* reason; and a seeded run of 10,000 randomly mutated patches
 * must neither crash (only OtaError with a PATCH_* code), nor hang, nor write
 * anywhere but the inactive slot. Each for the DEFLATE and the RANGE codec
 * (RANGE blocks with bad controls are coded by the real range encoder).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { Prng } from "../../hal/mock/prng";
import { softwareDigest } from "../../src/crypto/sha256";
import { crc32 } from "../../src/util/crc32";
import { Codec, PATCH_HEADER_SIZE, PATCH_MAGIC, maxRawLength, writeU32 } from "../../src/delta/format";
import { PatchApplier, type PatchApplierOptions } from "../../src/delta/patcher";
import { OtaError, Reason, reasonName } from "../../src/errors";
import { BlockModel, IntKind, zigzag as zz } from "../../src/delta/cm";
import { makePatch } from "../../tools/delta/index";
import { oldContext } from "../../tools/delta/encode";
import { RangeEncoder } from "../../tools/delta/range-encoder";

const KiB = 1024;
const BLOCK = 4 * KiB;

function varint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}
const zigzag = (v: number) => varint(v >= 0 ? v * 2 : -v * 2 - 1);

function header(old: Uint8Array, nw: Uint8Array, options: { codec?: number; log2?: number; blockCount?: number } = {}): Uint8Array {
  const h = new Uint8Array(PATCH_HEADER_SIZE);
  h.set(PATCH_MAGIC, 0);
  h[4] = 1;
  h[5] = options.codec ?? Codec.STORED;
  h[6] = options.log2 ?? 12;
  writeU32(h, 8, old.length);
  writeU32(h, 12, nw.length);
  h.set(sha256(old), 16);
  h.set(sha256(nw), 48);
  writeU32(h, 80, options.blockCount ?? Math.ceil(nw.length / (1 << (options.log2 ?? 12))));
  fixCrc(h);
  return h;
}

function fixCrc(patch: Uint8Array): void {
  writeU32(patch, 84, crc32(patch.subarray(0, 84)));
}

/** A block with a raw payload, stored as is; `crcOf` is the span it claims to produce. */
function block(raw: number[] | Uint8Array, crcOf: Uint8Array, stored?: number[]): number[] {
  const c = new Uint8Array(4);
  writeU32(c, 0, crc32(crcOf));
  const payload = stored ?? Array.from(raw);
  return [...varint(payload.length), ...varint(raw.length), ...c, ...payload];
}

const prng = new Prng(77);
const old = prng.fill(new Uint8Array(3 * BLOCK));
const nw = old.slice();
nw.set(prng.fill(new Uint8Array(100)), 5000);

function rig(oldImage = old, capacity = 4 * BLOCK) {
  const chip = new NorFlash({ size: 3 * capacity, blockLength: BLOCK, writeAlign: 32 });
  chip.cells.fill(0x11);
  const active = chip.partition(0, capacity);
  const inactive = chip.partition(capacity, capacity);
  active.cells.fill(0xff);
  active.cells.set(oldImage);
  const before = chip.cells.slice();
  const options: PatchApplierOptions = { activeSlot: active, inactiveSlot: inactive, digest: softwareDigest, maxBlockSize: 16 * KiB };
  /** Everything outside the inactive slot is as it was. */
  const untouchedOutside = () =>
    Buffer.compare(chip.cells.subarray(0, capacity), before.subarray(0, capacity)) === 0 &&
    Buffer.compare(chip.cells.subarray(2 * capacity), before.subarray(2 * capacity)) === 0;
  return { chip, active, inactive, options, untouchedOutside };
}

/** Apply and return the reason code of the refusal, or 0 on success. Non-OtaError exceptions propagate. */
function outcome(patch: Uint8Array, chunk = 333, r = rig()): number {
  try {
    const a = new PatchApplier(r.options);
    for (let at = 0; at < patch.length; at += chunk) a.update(patch.subarray(at, at + chunk));
    a.finish();
    return Reason.OK;
  } catch (e) {
    if (!(e instanceof OtaError)) throw e;
    return e.code;
  } finally {
    expect(r.untouchedOutside(), "nothing outside the inactive slot may change").toBe(true);
  }
}

const isPatchReason = (code: number) => code >= 200 && code < 250;

/**
 * A RANGE block payload coding `ints` ([kind, value] in order, values unchecked)
 * and then `zeroDiffs` zero diff bytes (reading old from offset 0) and the `extras` bytes.
 */
function rangePayload(ints: [number, number][], zeroDiffs = 0, extras: ArrayLike<number> = []): number[] {
  const m = new BlockModel();
  const e = new RangeEncoder();
  for (const [kind, v] of ints) m.codeInt(e, kind, v);
  const o = { before: 0, at: 0, next1: 0, next2: 0, next3: 0, lane: 0 };
  for (let i = 0; i < zeroDiffs; i++) m.codeDiffByte(e, oldContext(old, i, o), 0);
  for (let i = 0; i < extras.length; i++) m.codeExtraByte(e, zeroDiffs + i, extras[i]);
  return Array.from(e.finish());
}

for (const goodCodec of [Codec.RANGE, Codec.DEFLATE]) describe(`malformed patches are refused with reason codes (${goodCodec === Codec.RANGE ? "range" : "deflate"})`, () => {
  const good = makePatch(old, nw, { blockSize: BLOCK, codec: goodCodec }).bytes;

  it("the unmodified patch applies", () => {
    expect(outcome(good)).toBe(Reason.OK);
  });

  it("truncated at every length: PATCH_TRUNCATED", () => {
    for (let n = 0; n < good.length; n++) expect(reasonName(outcome(good.subarray(0, n), 97)), `length ${n}`).toBe("PATCH_TRUNCATED");
  });

  it("trailing bytes: PATCH_MALFORMED", () => {
    expect(outcome(new Uint8Array([...good, 0]))).toBe(Reason.PATCH_MALFORMED);
  });

  it("every header byte mutated, CRC left alone: magic, version or header CRC", () => {
    for (let i = 0; i < PATCH_HEADER_SIZE; i++) {
      const p = good.slice();
      p[i] ^= 0x01;
      const want = i < 4 ? Reason.PATCH_BAD_MAGIC : i === 4 ? Reason.PATCH_UNSUPPORTED : Reason.PATCH_HEADER_CRC;
      expect(reasonName(outcome(p)), `byte ${i}`).toBe(reasonName(want));
    }
  });

  it("every header field mutated with the CRC fixed up: the field's own reason", () => {
    const field = (i: number): number[] => {
      // Codec: an unknown one is refused; deflate -> stored is harmless when no block is compressed;
      // deflate <-> range decodes one codec's payload with the other's decoder.
      if (i === 5) return [Reason.PATCH_UNSUPPORTED, Reason.PATCH_MALFORMED, Reason.OK, Reason.PATCH_DECOMPRESS, Reason.PATCH_OUT_OF_RANGE, Reason.PATCH_BLOCK_HASH];
      if (i === 7) return [Reason.PATCH_UNSUPPORTED];
      if (i === 6) return [Reason.PATCH_UNSUPPORTED, Reason.PATCH_MALFORMED];
      if (i >= 8 && i < 12) return [Reason.PATCH_OLD_MISMATCH, Reason.PATCH_TOO_LARGE];
      if (i >= 12 && i < 16) return [Reason.PATCH_MALFORMED, Reason.PATCH_TOO_LARGE, Reason.PATCH_OUT_OF_RANGE, Reason.PATCH_BLOCK_HASH, Reason.PATCH_NEW_MISMATCH];
      if (i >= 16 && i < 48) return [Reason.PATCH_OLD_MISMATCH];
      if (i >= 48 && i < 80) return [Reason.PATCH_NEW_MISMATCH];
      return [Reason.PATCH_MALFORMED];
    };
    for (let i = 5; i < 84; i++) {
      for (const value of [0x01, 0x80, 0xff]) {
        const p = good.slice();
        p[i] ^= value;
        fixCrc(p);
        const code = outcome(p);
        expect(field(i).map(reasonName), `byte ${i} ^ 0x${value.toString(16)} gave ${reasonName(code)}`).toContain(reasonName(code));
      }
    }
  });

  it("refuses a patch for another base image before writing anything", () => {
    const r = rig(nw);
    expect(outcome(good, 333, r)).toBe(Reason.PATCH_OLD_MISMATCH);
    expect(r.chip.stats.writes + r.chip.stats.erases).toBe(0);
  });

  it("refuses a new image larger than the slot, and blocks larger than the device allows", () => {
    const big = new Uint8Array(5 * BLOCK);
    expect(outcome(header(old, big))).toBe(Reason.PATCH_TOO_LARGE);
    expect(outcome(header(old, nw, { log2: 15, blockCount: 1 }))).toBe(Reason.PATCH_UNSUPPORTED);
  });

  describe("control values out of range (the bsdiff CVE class)", () => {
    const span0 = nw.subarray(0, BLOCK);
    const h = header(old, nw);
    const rest = [...block([], nw.subarray(BLOCK, 2 * BLOCK), []), ...block([], nw.subarray(2 * BLOCK), [])];
    // [oldStart rel, controls, (diff, extra, seek)*] then diff runs, then extra.
    const cases: [string, number[], number][] = [
      ["old cursor before the old image", [...zigzag(-1), 1, ...varint(BLOCK), 0, 0], Reason.PATCH_OUT_OF_RANGE],
      ["old cursor past the old image", [...zigzag(old.length + 1), 1, ...varint(BLOCK), 0, 0], Reason.PATCH_OUT_OF_RANGE],
      ["diff reads past the old image", [...zigzag(old.length - 10), 1, ...varint(BLOCK), 0, 0], Reason.PATCH_OUT_OF_RANGE],
      ["seek to a negative position", [0, 2, ...varint(10), 0, ...zigzag(-100), ...varint(BLOCK - 10), 0, 0], Reason.PATCH_OUT_OF_RANGE],
      ["huge seek", [0, 2, ...varint(10), 0, ...zigzag(0x7fffffff), ...varint(BLOCK - 10), 0, 0], Reason.PATCH_OUT_OF_RANGE],
      ["output past the block's span", [0, 1, ...varint(BLOCK + 1), 0, 0], Reason.PATCH_OUT_OF_RANGE],
      ["output short of the span", [0, 1, ...varint(BLOCK - 1), 0, 0], Reason.PATCH_OUT_OF_RANGE],
      ["extra past the span", [0, 1, 0, ...varint(0xffffffff), 0], Reason.PATCH_OUT_OF_RANGE],
      ["no controls", [0, 0], Reason.PATCH_MALFORMED],
      ["more controls than bytes", [0, ...varint(BLOCK + 1)], Reason.PATCH_MALFORMED],
      ["an empty control", [0, 2, 0, 0, 0, ...varint(BLOCK), 0, 0], Reason.PATCH_MALFORMED],
      ["a varint of 6 bytes", [0, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00], Reason.PATCH_MALFORMED],
      ["a varint over 32 bits", [0, 1, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0], Reason.PATCH_MALFORMED],
      ["controls cut short", [0, 1, ...varint(BLOCK)], Reason.PATCH_MALFORMED],
      ["extra bytes overlapping the controls", [0, 1, 0, ...varint(BLOCK), 0, 1, 2, 3], Reason.PATCH_MALFORMED],
      ["a diff run of (0, 0)", [0, 1, ...varint(BLOCK), 0, 0, 0, 0], Reason.PATCH_MALFORMED],
      ["a diff run longer than the diff", [0, 1, ...varint(BLOCK), 0, 0, ...varint(BLOCK + 1), 0], Reason.PATCH_MALFORMED],
      ["diff literals past their section", [0, 1, ...varint(BLOCK), 0, 0, 0, 50, 1, 2], Reason.PATCH_MALFORMED],
      ["a diff run cut inside its varint", [0, 1, ...varint(BLOCK), 0, 0, 0x80], Reason.PATCH_MALFORMED],
      ["wrong output CRC", [0, 1, ...varint(BLOCK), 0, 0, 0, 1, 0x55], Reason.PATCH_BLOCK_HASH],
    ];
    for (const [name, raw, want] of cases) {
      it(name, () => {
        const patch = new Uint8Array([...h, ...block(raw, span0), ...rest]);
        expect(reasonName(outcome(patch))).toBe(reasonName(want));
      });
    }
    it("block header lengths: raw over the bound, stored over raw, compressed in a stored patch, unparsable", () => {
      const tooBig = new Uint8Array(maxRawLength(BLOCK) + 1);
      expect(outcome(new Uint8Array([...h, ...block(tooBig, span0)]))).toBe(Reason.PATCH_MALFORMED);
      expect(outcome(new Uint8Array([...h, ...varint(10), ...varint(5), 0, 0, 0, 0]))).toBe(Reason.PATCH_MALFORMED);
      expect(outcome(new Uint8Array([...h, ...varint(5), ...varint(10), 0, 0, 0, 0, 1, 2, 3, 4, 5]))).toBe(Reason.PATCH_MALFORMED);
      expect(outcome(new Uint8Array([...h, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toBe(Reason.PATCH_MALFORMED);
    });
    it("an identity block past the end of the old image", () => {
      const shortOld = old.subarray(0, BLOCK + 10);
      const hh = header(shortOld, nw);
      const patch = new Uint8Array([...hh, ...block([], nw.subarray(0, BLOCK), []), ...block([], nw.subarray(BLOCK, 2 * BLOCK), [])]);
      expect(outcome(patch, 333, rig(shortOld))).toBe(Reason.PATCH_OUT_OF_RANGE);
    });
    it("a corrupt range-coded stream: a code past the range", () => {
      const hr = header(old, nw, { codec: Codec.RANGE });
      const patch = new Uint8Array([...hr, ...varint(8), ...varint(100), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
      expect(outcome(patch)).toBe(Reason.PATCH_DECOMPRESS);
    });
    it("a corrupt DEFLATE stream", () => {
      const hd = header(old, nw, { codec: Codec.DEFLATE });
      const patch = new Uint8Array([...hd, ...varint(8), ...varint(100), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
      expect(outcome(patch)).toBe(Reason.PATCH_DECOMPRESS);
    });
  });

  if (goodCodec === Codec.RANGE) describe("range-coded control values out of range", () => {
    const hr = header(old, nw, { codec: Codec.RANGE });
    const S = IntKind.START;
    const C = IntKind.COUNT;
    const D = IntKind.DIFF;
    const E = IntKind.EXTRA;
    const K = IntKind.SEEK;
    const one = (diff: number, extra: number, seek: number): [number, number][] => [[D, diff], [E, extra], [K, zz(seek)]];
    const cases: [string, number[], number][] = [
      ["old cursor before the old image", rangePayload([[S, zz(-1)], [C, 1], ...one(BLOCK, 0, 0)]), Reason.PATCH_OUT_OF_RANGE],
      ["old cursor past the old image", rangePayload([[S, zz(old.length + 1)], [C, 1], ...one(BLOCK, 0, 0)]), Reason.PATCH_OUT_OF_RANGE],
      ["diff reads past the old image", rangePayload([[S, zz(old.length - 10)], [C, 1], ...one(BLOCK, 0, 0)]), Reason.PATCH_OUT_OF_RANGE],
      ["seek to a negative position", rangePayload([[S, 0], [C, 2], ...one(10, 0, -100), ...one(BLOCK - 10, 0, 0)], 10), Reason.PATCH_OUT_OF_RANGE],
      ["huge seek", rangePayload([[S, 0], [C, 2], ...one(10, 0, 0x7fffffff), ...one(BLOCK - 10, 0, 0)], 10), Reason.PATCH_OUT_OF_RANGE],
      ["output past the block's span", rangePayload([[S, 0], [C, 1], ...one(BLOCK + 1, 0, 0)]), Reason.PATCH_OUT_OF_RANGE],
      ["output short of the span", rangePayload([[S, 0], [C, 1], ...one(BLOCK - 1, 0, 0)], BLOCK - 1), Reason.PATCH_OUT_OF_RANGE],
      ["extra past the span", rangePayload([[S, 0], [C, 1], ...one(0, 0xffffffff, 0)]), Reason.PATCH_OUT_OF_RANGE],
      ["no controls", rangePayload([[S, 0], [C, 0]]), Reason.PATCH_MALFORMED],
      ["more controls than bytes", rangePayload([[S, 0], [C, BLOCK + 1]]), Reason.PATCH_MALFORMED],
      ["an empty control", rangePayload([[S, 0], [C, 2], ...one(0, 0, 0), ...one(BLOCK, 0, 0)]), Reason.PATCH_MALFORMED],
      ["an integer over 32 bits", rangePayload([[S, 0], [C, 2 ** 40]]), Reason.PATCH_MALFORMED],
      ["a payload longer than its stream", [...rangePayload([[S, 0], [C, 1], ...one(BLOCK, 0, 0)], BLOCK), 1, 2, 3, 4, 5, 6, 7, 8], Reason.PATCH_MALFORMED],
      ["wrong output CRC", rangePayload([[S, 0], [C, 1], ...one(BLOCK - 1, 1, 0)], BLOCK - 1, [old[BLOCK - 1] ^ 0xff]), Reason.PATCH_BLOCK_HASH],
    ];
    const rest = [...block([], nw.subarray(BLOCK, 2 * BLOCK), []), ...block([], nw.subarray(2 * BLOCK), [])];
    for (const [name, payload, want] of cases) {
      it(name, () => {
        // Declared raw length: anything above the payload, within the bound.
        const patch = new Uint8Array([...hr, ...block(new Uint8Array(Math.min(maxRawLength(BLOCK), payload.length + 100)), nw.subarray(0, BLOCK), payload), ...rest]);
        expect(reasonName(outcome(patch))).toBe(reasonName(want));
      });
    }
    it("the same hand-made blocks with valid controls apply (the cases above fail only where they say)", () => {
      // Span 0 of nw equals old's (the change is at 5000, in span 1): all-zero diffs reproduce it.
      expect(Buffer.compare(nw.subarray(0, BLOCK), old.subarray(0, BLOCK))).toBe(0);
      const span1 = nw.subarray(BLOCK, 2 * BLOCK);
      const patch = new Uint8Array([
        ...hr,
        ...block(new Uint8Array(200), nw.subarray(0, BLOCK), rangePayload([[S, 0], [C, 1], ...one(BLOCK, 0, 0)], BLOCK)),
        ...block(new Uint8Array(maxRawLength(BLOCK)), span1, rangePayload([[S, 0], [C, 1], ...one(0, BLOCK, 0)], 0, span1)),
        ...block([], nw.subarray(2 * BLOCK), []),
      ]);
      expect(reasonName(outcome(patch))).toBe("OK");
    });
  });

  it("a spent applier rethrows its reason; misuse throws", () => {
    const r = rig();
    const a = new PatchApplier(r.options);
    const bad = good.slice();
    bad[0] = 0;
    expect(() => a.update(bad)).toThrow(/PATCH_BAD_MAGIC/);
    expect(() => a.update(good)).toThrow(/PATCH_BAD_MAGIC/);
    expect(() => new PatchApplier({ ...r.options, inactiveSlot: r.active })).toThrow(RangeError);
    expect(() => new PatchApplier({ ...r.options, maxBlockSize: 100 })).toThrow(RangeError);
  });
});

describe("seeded random mutations", () => {
  it("10,000 mutated patches: only PATCH_* refusals or correct results, nothing outside the inactive slot written", () => {
    const p = new Prng(0xc0ffee);
    const bases: { patch: Uint8Array; new: Uint8Array }[] = [];
    const other = p.fill(new Uint8Array(2 * BLOCK + 123));
    for (const codec of [Codec.DEFLATE, Codec.STORED, Codec.RANGE]) {
      bases.push({ patch: makePatch(old, nw, { blockSize: BLOCK, codec }).bytes, new: nw });
      bases.push({ patch: makePatch(old, other, { blockSize: 1024, codec }).bytes, new: other });
    }
    const tally: { [name: string]: number } = {};
    const RUNS = 10_000;
    for (let run = 0; run < RUNS; run++) {
      const base = bases[run % bases.length];
      let m = base.patch.slice();
      const edits = 1 + p.below(4);
      for (let k = 0; k < edits && m.length > 0; k++) {
        const at = p.below(m.length);
        switch (p.below(6)) {
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
          case 4:
            m = new Uint8Array([...m.subarray(0, at), ...m.subarray(at + 1 + p.below(8))]);
            break;
          default:
            // Keep the header CRC valid so mutations reach the blocks.
            if (at >= PATCH_HEADER_SIZE) m[at] = p.below(256);
            else {
              m[at] = p.below(256);
              if (m.length >= PATCH_HEADER_SIZE) fixCrc(m);
            }
        }
      }
      const r = rig();
      const code = outcome(m, 1 + p.below(600), r);
      if (code === Reason.OK) {
        // Accepted only if the result is exactly the header's new image (checked by finish via SHA-256).
        expect(Buffer.compare(r.inactive.cells.subarray(0, base.new.length), base.new)).toBe(0);
      } else expect(isPatchReason(code), `run ${run}: ${reasonName(code)}`).toBe(true);
      tally[reasonName(code)] = (tally[reasonName(code)] ?? 0) + 1;
    }
    // The corpus reaches the deep checks, not just the header.
    expect(Object.keys(tally).length).toBeGreaterThanOrEqual(6);
    console.log(`[delta] ${RUNS} mutated patches:`, JSON.stringify(tally));
  });
});
