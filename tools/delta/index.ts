/**
 * The host patch generator: `makePatch(old, new)` = bsdiff matching + the
 * block encoder, by default with both codecs (the context-modelled range
 * coder, and node:zlib's raw DEFLATE at level 9), keeping the smaller patch.
 * Defaults are the measured choices (bench/delta.bench.ts, README "Delta updates").
 */
import { deflateRawSync, constants } from "node:zlib";
import { Codec, type CodecId } from "../../src/delta/format";
import { diffSegments, type Segment } from "./bsdiff";
import { encodePatch, type EncodedPatch } from "./encode";

/** Default new-image bytes per block (measured: see the bench's block-size table). */
export const DEFAULT_BLOCK_SIZE = 32 * 1024;

export interface MakePatchOptions {
  blockSize?: number;
  /** A codec, or "auto" (the default): RANGE and DEFLATE both, the smaller patch wins (RANGE on a tie). */
  codec?: CodecId | "auto";
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

export function makePatch(old: Uint8Array, nw: Uint8Array, options: MakePatchOptions = {}): EncodedPatch {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const codec = options.codec ?? "auto";
  if (codec === Codec.LZ) return encodePatch(old, nw, [], { blockSize, codec });
  const segments = options.segments ?? diffSegments(old, nw);
  if (codec !== "auto") return encodePatch(old, nw, segments, { blockSize, codec, compress: deflateBlock });
  const range = encodePatch(old, nw, segments, { blockSize, codec: Codec.RANGE });
  const deflate = encodePatch(old, nw, segments, { blockSize, codec: Codec.DEFLATE, compress: deflateBlock });
  return deflate.bytes.length < range.bytes.length ? deflate : range;
}
