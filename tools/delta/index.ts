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

/** Default new-image bytes per block (measured: see the bench's block-size table). */
export const DEFAULT_BLOCK_SIZE = 32 * 1024;

export interface MakePatchOptions {
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
 * a BSDIFF40 patch, the smaller of RANGE and DEFLATE; "smallest" makes codec
 * 3, RANGE and DEFLATE and keeps the smallest patch (RANGE costs ~20 times the
 * decode work: for devices whose link is dearer than their CPU); or a codec.
 */
export function makePatch(old: Uint8Array, nw: Uint8Array, options: MakePatchOptions = {}): EncodedPatch {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const codec = options.codec ?? "auto";
  if (codec === Codec.LZ || (codec === "auto" && !options.segments)) return encodePatch(old, nw, [], { blockSize, codec: Codec.LZ });
  const segments = options.segments ?? diffSegments(old, nw);
  if (codec !== "auto" && codec !== "smallest") return encodePatch(old, nw, segments, { blockSize, codec, compress: deflateBlock });
  const range = encodePatch(old, nw, segments, { blockSize, codec: Codec.RANGE });
  const deflate = encodePatch(old, nw, segments, { blockSize, codec: Codec.DEFLATE, compress: deflateBlock });
  const v1 = deflate.bytes.length < range.bytes.length ? deflate : range;
  if (codec === "auto") return v1;
  const lz = encodePatch(old, nw, [], { blockSize, codec: Codec.LZ });
  return lz.bytes.length <= v1.bytes.length ? lz : v1;
}
