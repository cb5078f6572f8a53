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
import type { CodecCost, DecodeCost } from "../protocol/messages";
import type { ReleaseManifest } from "./types";

/** A full image's `payload.compression`. */
export const FULL_COMPRESSION = "none";

/** Canonical names of the patch codecs, by codec number (docs/formats.md, "Release manifest"). */
export const CODEC_NAMES: readonly string[] = Object.freeze(["stored", "deflate", "range", "lz", "lzr"]);

/** Codecs every agent that predates the announcement decodes (patch format version 1). */
export const LEGACY_CODECS: readonly number[] = Object.freeze([Codec.STORED, Codec.DEFLATE, Codec.RANGE]);

/** Codecs this build's patcher decodes. */
export const DECODABLE_CODECS: readonly number[] = Object.freeze([Codec.STORED, Codec.DEFLATE, Codec.RANGE, Codec.LZ, Codec.LZR]);

/** The canonical name of a codec number, or undefined for a number no format defines. */
export function codecName(codec: number): string | undefined {
  return Number.isInteger(codec) && codec >= 0 && codec < CODEC_NAMES.length ? CODEC_NAMES[codec] : undefined;
}

/** The codec number a `payload.compression` name stands for, or undefined for any other name (including "none"). */
export function codecOfName(name: string): number | undefined {
  const i = CODEC_NAMES.indexOf(name);
  return i < 0 ? undefined : i;
}

/** The patch format version a codec's header carries: 2 for codecs 3 and 4 (LZ, LZR), else 1. */
export function patchVersionOf(codec: number): number {
  return codec === Codec.LZ || codec === Codec.LZR ? PATCH_VERSION_LZ : PATCH_VERSION;
}

/**
 * Bytes per second a server assumes a device downloads at when choosing among
 * deltas (`xs-ota serve --link-rate`; the simulator's cloud): a Cat-1 modem's
 * sustained MQTT chunk rate.
 */
export const DEFAULT_LINK_RATE = 20_000;

/** The patch codecs a device decodes: the ones it announces, or the version-1 codecs when it announces none (an agent older than the announcement). */
export function deviceCodecs(decode: DecodeCost | undefined): readonly number[] {
  return decode ? decode.codecs.map((c) => c.codec) : LEGACY_CODECS;
}

/**
 * Estimated seconds to install release `m` on a device: download at
 * `linkRate` bytes a second, then (a delta) decode the new image at the cost
 * the device announces for its codec, one instruction a cycle:
 * payload.length / linkRate + image.length × instructionsPerByte / (mhz × 10^6).
 * Undefined when the device does not decode that codec (or the name is no
 * codec); for a device that announces no cost, the download time only.
 * @example installSeconds(delta, { mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 4211 }] }, 20_000)
 */
export function installSeconds(m: ReleaseManifest, decode: DecodeCost | undefined, linkRate: number): number | undefined {
  const download = m.payload.length / linkRate;
  if (m.payload.kind === "full") return download;
  const codec = codecOfName(m.payload.compression);
  if (codec === undefined || deviceCodecs(decode).indexOf(codec) < 0) return undefined;
  let cost: CodecCost | undefined;
  if (decode) for (const c of decode.codecs) if (c.codec === codec) cost = c;
  return decode && cost ? download + (m.image.length * cost.instructionsPerByte) / (decode.mhz * 1e6) : download;
}
