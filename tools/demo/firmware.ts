/**
 * Signed firmware images and releases for simulator tests: factory images,
 * full and delta releases built with the project's own host tools (signer,
 * manifest encoder; the patch generator is passed in as `diff`, since it
 * compresses with node:zlib), as `xs-ota sign/release/diff` make them.
 * Portable: the XS lane builds its update with it.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { parseVersion } from "../../src/image/format";
import { scanImage } from "../../src/image/verify";
import { softwareDigest } from "../../src/crypto/sha256";
import type { ReleaseManifest } from "../../src/update/types";
import { behaviourMarker, type Behaviour } from "../../targets/sim/behaviour";
import type { SimRelease } from "../../targets/sim/cloud";
import { slotLoadAddress, type FlashMapSpec } from "../../targets/sim/flashmap";
import { signImage } from "../image/sign";
import { BytesFlash } from "../image/bytes-flash";
import { signerFromSecret, type SigningKey } from "../keys/signer";
import { signManifest } from "../release/encode";
import { utf8Encode } from "../../src/util/bytes";
import { Codec, parsePatchHeader } from "../../src/delta/format";
import { CODEC_NAMES, codecName, FULL_COMPRESSION } from "../../src/update/codec";

export const HARDWARE = "usr-n520";

/** A fixed test key (never a production key). */
export function testKey(seed = 7): SigningKey {
  const secret = new Uint8Array(32);
  for (let i = 0; i < 32; i++) secret[i] = (seed * 31 + i * 7 + 1) & 0xff;
  secret[0] = 0x11;
  return signerFromSecret(secret);
}

/**
 * A firmware body: a behaviour marker, a version string, and pseudo-code that
 * changes a little between versions (so deltas are small, as on real releases).
 */
export function firmwareBody(version: string, behaviour: Behaviour = "healthy", size = 24 * 1024): Uint8Array {
  const body = new Uint8Array(size);
  let x = 0x1234567;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    body[i] = (x >>> 16) & 0xff;
  }
  const tag = utf8Encode(`fw-version=${version};`);
  body.set(tag, 64);
  body.set(behaviourMarker(behaviour), 128);
  // a "bug fix": a few bytes that depend on the version
  const v = utf8Encode(version);
  for (let i = 0; i < v.length; i++) body[4096 + i * 97] = v[i];
  return body;
}

export interface BuiltImage {
  readonly bytes: Uint8Array;
  readonly version: string;
  readonly slot: 0 | 1;
  readonly securityCounter: number;
}

export function buildImage(map: FlashMapSpec, key: SigningKey, version: string, slot: 0 | 1, o: { behaviour?: Behaviour; securityCounter?: number; confirm?: boolean; size?: number } = {}): BuiltImage {
  const securityCounter = o.securityCounter ?? 1;
  const bytes = signImage({
    input: firmwareBody(version, o.behaviour, o.size),
    version: parseVersion(version),
    securityCounter,
    headerSize: 0x200,
    padHeader: true,
    signer: key,
    romFixed: slotLoadAddress(map, slot),
    align: map.geometry.writeAlign,
    ...(o.confirm ? { pad: true, confirm: true, slotSize: map.slots[slot].size } : {}),
  });
  return { bytes, version, slot, securityCounter };
}

/** Sign a raw firmware binary (e.g. a test/fixtures/firmware build) into an image for `slot`, security counter 1. */
export function imageFromBinary(map: FlashMapSpec, key: SigningKey, bin: Uint8Array, version: string, slot: 0 | 1, confirm: boolean): BuiltImage {
  const bytes = signImage({
    input: bin,
    version: parseVersion(version),
    securityCounter: 1,
    headerSize: 0x200,
    padHeader: true,
    signer: key,
    romFixed: slotLoadAddress(map, slot),
    align: map.geometry.writeAlign,
    ...(confirm ? { pad: true, confirm: true, slotSize: map.slots[slot].size } : {}),
  });
  return { bytes, version, slot, securityCounter: 1 };
}

/** The image bytes without the slot padding (header through TLV area). */
export function imageBytes(img: BuiltImage): Uint8Array {
  const info = scanImage(new BytesFlash(img.bytes), { digest: softwareDigest });
  return img.bytes.subarray(0, info.totalLength);
}

function fetchOf(stream: string, o: { url?: string | ((stream: string) => string); httpsOnly?: boolean }): { stream?: string; url?: string } {
  const url = typeof o.url === "function" ? o.url(stream) : o.url;
  if (o.httpsOnly) return { url };
  return url ? { stream, url } : { stream };
}

export type Diff = (oldImage: Uint8Array, newImage: Uint8Array) => Uint8Array;

/** A delta's payload.compression: its header's codec name (as xs-ota release writes it); "lz" for a payload that is no parsable patch (a fault test's), which the device then refuses for its header. */
function deltaCompression(patch: Uint8Array): string {
  try {
    return codecName(parsePatchHeader(patch).codec)!;
  } catch {
    return CODEC_NAMES[Codec.LZ];
  }
}

export function release(
  key: SigningKey,
  target: BuiltImage,
  o: { base?: BuiltImage; diff?: Diff; stream?: string; url?: string | ((stream: string) => string); httpsOnly?: boolean; expiresAt?: number; issuedAt?: number; hardwareId?: string; maxDownload?: number; compression?: string } = {},
): SimRelease {
  const image = imageBytes(target);
  let payload: Uint8Array = image;
  let baseSha256: Uint8Array | undefined;
  if (o.base) {
    const base = imageBytes(o.base);
    if (!o.diff) throw new TypeError("release: a delta needs `diff` (e.g. tools/delta makePatch)");
    payload = o.diff(base, image);
    baseSha256 = sha256(base);
  }
  const manifest: ReleaseManifest = {
    hardwareId: o.hardwareId ?? HARDWARE,
    version: parseVersion(target.version),
    securityCounter: target.securityCounter,
    slot: target.slot,
    image: { length: image.length, sha256: sha256(image) },
    payload: { kind: o.base ? "delta" : "full", length: payload.length, sha256: sha256(payload), baseSha256, compression: o.compression ?? (o.base ? deltaCompression(payload) : FULL_COMPRESSION) },
    fetch: fetchOf(o.stream ?? `${target.version.replace(/[^0-9A-Za-z]/g, "_")}-s${target.slot}${o.base ? "-delta" : ""}`, o),
    issuedAt: o.issuedAt ?? 1_790_000_000,
    expiresAt: o.expiresAt ?? 1_790_000_000 + 30 * 86400,
    maxDownload: o.maxDownload ?? 3 * payload.length,
  };
  const envelope = signManifest(manifest, key);
  const manifestBytes = envelope.subarray(8, 8 + (envelope[6] | (envelope[7] << 8)));
  return { envelope, manifest, releaseId: sha256(manifestBytes), payload };
}
