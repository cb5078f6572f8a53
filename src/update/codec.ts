/**
 * The release manifest's `payload.compression` (field 0x8b) as a binding: a
 * full image says "none"; a delta names its patch codec, the same names
 * `xs-ota diff --codec` takes. `xs-ota release` writes the name from the
 * patch header itself; the device refuses a name it does not decode before
 * anything is downloaded (PATCH_CODEC_UNSUPPORTED), and a patch whose header
 * is not the codec the manifest names before anything is erased
 * (PATCH_CODEC_MISMATCH). The server reads the name to choose, per device,
 * the codec its announced decode cost makes quickest (docs/protocol.md).
 */
import { Codec, PATCH_VERSION, PATCH_VERSION_LZ } from "../delta/format";

/** A full image's `payload.compression`. */
export const FULL_COMPRESSION = "none";

/** Canonical names of the patch codecs, by codec number (docs/formats.md, "Release manifest"). */
export const CODEC_NAMES: readonly string[] = Object.freeze(["stored", "deflate", "range", "lz"]);

/** Codecs every agent that predates the announcement decodes (patch format version 1). */
export const LEGACY_CODECS: readonly number[] = Object.freeze([Codec.STORED, Codec.DEFLATE, Codec.RANGE]);

/** Codecs this build's patcher decodes. */
export const DECODABLE_CODECS: readonly number[] = Object.freeze([Codec.STORED, Codec.DEFLATE, Codec.RANGE, Codec.LZ]);

/** The canonical name of a codec number, or undefined for a number no format defines. */
export function codecName(codec: number): string | undefined {
  return Number.isInteger(codec) && codec >= 0 && codec < CODEC_NAMES.length ? CODEC_NAMES[codec] : undefined;
}

/** The codec number a `payload.compression` name stands for, or undefined for any other name (including "none"). */
export function codecOfName(name: string): number | undefined {
  const i = CODEC_NAMES.indexOf(name);
  return i < 0 ? undefined : i;
}

/** The patch format version a codec's header carries: 2 for codec 3 (LZ), else 1. */
export function patchVersionOf(codec: number): number {
  return codec === Codec.LZ ? PATCH_VERSION_LZ : PATCH_VERSION;
}
