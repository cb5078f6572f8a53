/**
 * The host patch generator: `makePatch(old, new)`. By default codec 3 (format
 * version 2, ./lz-encode.ts); the version-1 codecs (bsdiff matching, then the
 * context-modelled range coder or node:zlib's raw DEFLATE at level 9) on
 * request. Defaults are the measured choices (bench/delta.bench.ts, README
 * "Delta updates").
 */
import { deflateRawSync, constants } from "node:zlib";
import { Codec, type CodecId } from "../../src/delta/format";
import { diffSegments, type Segment } from "./bsdiff";
import { encodePatch, type EncodedPatch } from "./encode";

/** Default new-image bytes per block of the version-1 codecs (measured: see the bench's block-size table). */
export const DEFAULT_BLOCK_SIZE = 32 * 1024;
/**
 * The block sizes makePatch tries for codecs 3 and 4 when none is given,
 * keeping the smallest patch (the first on a tie, so the smaller block). Their
 * decoder's memory does not depend on the block size, so the choice is free
 * for the device: larger blocks send fewer code tables and relocation rules (a release
 * that moved everything by one delta), smaller ones adapt their codes to
 * local statistics and carry more rules per byte (many moves). Measured per
 * pair in the bench's size table (README "Delta updates").
 */
export const LZ_BLOCK_SIZES = Object.freeze([16 * 1024, 32 * 1024, 64 * 1024]);

export interface MakePatchOptions {
  /** New-image bytes per block; by default the best of LZ_BLOCK_SIZES for codec 3, DEFAULT_BLOCK_SIZE for the others. */
  blockSize?: number;
  /** A codec, "auto" (the default: codec 3) or "smallest" (see makePatch). */
  codec?: CodecId | "auto" | "smallest";
  /** Reuse segments (e.g. converted from a BSDIFF40 patch) instead of matching. */
  segments?: readonly Segment[];
}

/** Raw DEFLATE, level 9, best of the default and the filtered strategy. */
export function deflateBlock(raw: Uint8Array): Uint8Array {
  const a = deflateRawSync(raw, { level: 9, memLevel: 9, windowBits: 15 });
  const b = deflateRawSync(raw, { level: 9, memLevel: 9, windowBits: 15, strategy: constants.Z_FILTERED });
  const best = b.length < a.length ? b : a;
  return new Uint8Array(best.buffer, best.byteOffset, best.length);
}

/**
 * Make a patch. `codec`: "auto" (the default) is codec 3 (format version 2:
 * no larger than the best of bsdiff, xdelta3 and zstd on the measured pairs,
 * and about as cheap to decode as DEFLATE), or, for segments converted from
 * a BSDIFF40 patch, the smaller of RANGE and DEFLATE; "smallest" makes codecs
 * 3 and 4, RANGE and DEFLATE and keeps the smallest patch (codec 4, the same
 * parse as codec 3 range-coded, is the smallest on every measured pair and
 * costs about twice codec 3's decode work: for devices whose link is dearer
 * than their CPU); or a codec.
 */
export function makePatch(old: Uint8Array, nw: Uint8Array, options: MakePatchOptions = {}): EncodedPatch {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const codec = options.codec ?? "auto";
  if (codec === Codec.LZ || (codec === "auto" && !options.segments)) return makeLzPatch(old, nw, options.blockSize, Codec.LZ);
  if (codec === Codec.LZR) return makeLzPatch(old, nw, options.blockSize, Codec.LZR);
  const segments = options.segments ?? diffSegments(old, nw);
  if (codec !== "auto" && codec !== "smallest") return encodePatch(old, nw, segments, { blockSize, codec, compress: deflateBlock });
  const range = encodePatch(old, nw, segments, { blockSize, codec: Codec.RANGE });
  const deflate = encodePatch(old, nw, segments, { blockSize, codec: Codec.DEFLATE, compress: deflateBlock });
  const v1 = deflate.bytes.length < range.bytes.length ? deflate : range;
  if (codec === "auto") return v1;
  let best = v1;
  for (const c of [Codec.LZ, Codec.LZR] as const) {
    const p = makeLzPatch(old, nw, options.blockSize, c);
    if (p.bytes.length <= best.bytes.length) best = p;
  }
  return best;
}

/** Codec 3 or 4 with the given block size, or the smallest of LZ_BLOCK_SIZES. */
function makeLzPatch(old: Uint8Array, nw: Uint8Array, blockSize: number | undefined, codec: typeof Codec.LZ | typeof Codec.LZR): EncodedPatch {
  if (blockSize !== undefined) return encodePatch(old, nw, [], { blockSize, codec });
  let best: EncodedPatch | undefined;
  for (const size of LZ_BLOCK_SIZES) {
    const p = encodePatch(old, nw, [], { blockSize: size, codec });
    if (best === undefined || p.bytes.length < best.bytes.length) best = p;
    // A block covering the whole new image already: larger ones make the same patch.
    if (size >= nw.length) break;
  }
  return best as EncodedPatch;
}
