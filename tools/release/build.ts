/**
 * `xs-ota release`'s engine: from a signed image (and for a delta, the patch
 * and the base image) to a signed manifest envelope, with the payload placed
 * next to it (the release directory layout tools/release/read.ts reads).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { softwareDigest } from "../../src/crypto/sha256";
import { OtaError, Reason, reasonName } from "../../src/errors";
import { HexError, isHexPath, readHexFile } from "../image/ihex";
import { scanImage, type ImageInfo } from "../../src/image/verify";
import { decodeManifest, MAX_MANIFEST_BYTES } from "../../src/update/manifest";
import type { AcceptedManifest, PayloadKind, ReleaseManifest } from "../../src/update/types";
import { BytesFlash } from "../image/bytes-flash";
import { randomBytes } from "node:crypto";
import { softwareCipher } from "../../src/crypto/cipher";
import { IMAGE_F_ENCRYPTED } from "../../src/image/enc";
import { clearEncryptedFlags, encryptedLayout, readEncryptedTlvArea } from "../../src/image/enc-stream";
import { encryptPayload } from "../image/encrypt";
import type { SigningKey } from "../keys/signer";
import { parsePatchHeader } from "../../src/delta/format";
import { codecName, FULL_COMPRESSION } from "../../src/update/codec";
import { checkRelease } from "./check";
import { encodeManifest, signManifestBytes } from "./encode";

export class ReleaseError extends Error {
  constructor(message: string) {
    super(message);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(ReleaseError.prototype, "name", { value: "ReleaseError", writable: true, configurable: true });

export interface ReleaseOptions {
  key: SigningKey;
  hardwareId: string;
  /** The target MCUboot image file. */
  imagePath: string;
  slot: 0 | 1;
  kind: PayloadKind;
  /** The payload file: the patch for a delta; defaults to the image for a full release. */
  payloadPath?: string;
  /** For a delta: the base image file (its SHA-256 over header..TLV area is bound). */
  basePath?: string;
  /**
   * payload.compression: filled in (a delta's from its patch header, src/update/codec.ts; a full image "none");
   * when given, it must be that name (a contradicting label is refused).
   */
  compression?: string;
  /** Stream id; default: the payload's file name. */
  stream?: string;
  url?: string;
  issuedAt: number;
  expiresAt: number;
  /** Default: twice the payload length (one full retry). */
  maxDownload?: number;
  note?: string;
  /** Bytes an image may occupy in the device's slot (slot less trailer), when known: checked as the device does. */
  slotSize?: number;
  /** Overwrite an existing output (manifest or payload copy). */
  force?: boolean;
  /**
   * A delta encrypted for this P-256 public key (65-byte point): the patch is
   * AES-CTR encrypted whole, its key wrapped as MCUboot's ENC_EC256, and the
   * ciphertext is the payload (docs/formats.md, "Encrypted images"). A full
   * release is encrypted when its payload is `sign --encrypt`'s output.
   */
  encryptFor?: Uint8Array;
  /** Output envelope path; the payload is copied into its directory. */
  out: string;
}

export interface ReleaseResult {
  readonly envelopePath: string;
  readonly payloadPath: string;
  readonly envelope: Uint8Array;
  readonly accepted: AcceptedManifest;
}

/** Scan an image file as the device would (hash checked, no signature check). */
export function scanImageFile(path: string): { bytes: Uint8Array; info: ImageInfo } {
  let bytes: Uint8Array;
  try {
    bytes = isHexPath(path) ? readHexFile(path).bytes : new Uint8Array(readFileSync(path));
  } catch (e) {
    if (e instanceof HexError) throw new ReleaseError(e.message);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ReleaseError(`${path}: no such file`);
    if (code === "EISDIR") throw new ReleaseError(`${path} is a directory, not an image file`);
    throw e;
  }
  try {
    return { bytes, info: scanImage(new BytesFlash(bytes), { digest: softwareDigest }) };
  } catch (e) {
    if (e instanceof OtaError) {
      // The "slot" here is the file: an image that does not fit it is a truncated file.
      const why = e.code === Reason.IMAGE_TOO_LARGE || e.code === Reason.FLASH_RANGE ? `the file is truncated (${bytes.length} bytes)` : e.message;
      throw new ReleaseError(`${path}: not a valid MCUboot image (${why})`);
    }
    throw e;
  }
}

/**
 * The payload's compression name: "none" for a full image, the patch header's
 * codec for a delta (read before any encryption).
 * @throws ReleaseError for a delta whose header does not parse, or an explicit name that contradicts it.
 */
function compressionOf(o: ReleaseOptions, payload: Uint8Array, payloadPath: string): string {
  let name = FULL_COMPRESSION;
  if (o.kind === "delta") {
    let codec: number;
    try {
      codec = parsePatchHeader(payload).codec;
    } catch (e) {
      if (e instanceof OtaError) throw new ReleaseError(`every device would refuse this release: ${e.message} (--payload ${payloadPath} is not a patch a device can parse)`);
      throw e;
    }
    name = codecName(codec)!;
  }
  if (o.compression !== undefined && o.compression !== name) {
    const why = o.kind === "delta" ? `the patch header says codec ${name}` : `a full image is "${FULL_COMPRESSION}"`;
    throw new ReleaseError(`--compression ${o.compression} contradicts the payload: ${why} (leave --compression out: it is read from the payload)`);
  }
  return name;
}

/** Build, sign and write a release. */
export function makeRelease(o: ReleaseOptions): ReleaseResult {
  const target = scanImageFile(o.imagePath);
  const imageLength = target.info.totalLength;
  const imageSha256 = sha256(target.bytes.subarray(0, imageLength));
  let payloadPath: string;
  let baseSha256: Uint8Array | undefined;
  let base: { bytes: Uint8Array; info: ImageInfo } | undefined;
  if (o.kind === "full") {
    payloadPath = o.payloadPath ?? o.imagePath;
    if (o.basePath) throw new ReleaseError("--base is for a delta release");
    if (isHexPath(payloadPath)) throw new ReleaseError(`${payloadPath}: a full release's payload is the binary image a device downloads, not Intel HEX (sign to a .bin)`);
  } else {
    if (!o.payloadPath) throw new ReleaseError("a delta release needs --payload PATCH");
    if (!o.basePath) throw new ReleaseError("a delta release needs --base BASE_IMAGE");
    payloadPath = o.payloadPath;
    base = scanImageFile(o.basePath);
    baseSha256 = sha256(base.bytes.subarray(0, base.info.totalLength));
  }
  let payload: Uint8Array;
  try {
    payload = new Uint8Array(readFileSync(payloadPath));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ReleaseError(`--payload ${payloadPath}: no such file`);
    if (code === "EISDIR") throw new ReleaseError(`--payload ${payloadPath} is a directory, not a file`);
    throw e;
  }
  const compression = compressionOf(o, payload, payloadPath);
  let encryption: Uint8Array | undefined;
  let payloadFile = true;
  if (o.kind === "full" && payload.length >= 32 && payload[16] & IMAGE_F_ENCRYPTED) {
    if (o.encryptFor) throw new ReleaseError("--encrypt is for a delta; a full release's payload is encrypted by xs-ota sign --encrypt");
    encryption = encryptedPayloadOf(payload, target.bytes.subarray(0, imageLength), payloadPath);
  } else if (o.kind === "full" && o.encryptFor) {
    throw new ReleaseError("--encrypt is for a delta; for a full release give --payload the image xs-ota sign --encrypt wrote");
  } else if (o.kind === "delta" && o.encryptFor) {
    const e = encryptPayload(payload, { recipient: o.encryptFor, keyLength: 32, random: (n) => new Uint8Array(randomBytes(n)), cipher: softwareCipher });
    payload = e.payload;
    encryption = e.enc;
    payloadFile = false;
  }
  if (o.kind === "full" && !encryption && payload.length !== imageLength) {
    throw new ReleaseError(
      `${payloadPath} is ${payload.length} bytes but the image ends at ${imageLength}: a full release needs the unpadded image (sign without --pad)`,
    );
  }
  const stream = o.stream ?? (payloadFile ? basename(payloadPath) : `${basename(payloadPath)}.enc`);
  const manifest: ReleaseManifest = {
    hardwareId: o.hardwareId,
    version: target.info.header.version,
    securityCounter: target.info.securityCounter ?? 0,
    slot: o.slot,
    image: { length: imageLength, sha256: imageSha256 },
    payload: {
      kind: o.kind,
      length: payload.length,
      sha256: sha256(payload),
      ...(baseSha256 ? { baseSha256 } : {}),
      compression,
      ...(encryption ? { encryption } : {}),
    },
    fetch: { stream, ...(o.url !== undefined ? { url: o.url } : {}) },
    issuedAt: o.issuedAt,
    expiresAt: o.expiresAt,
    maxDownload: o.maxDownload ?? Math.min(0xffffffff, payload.length * 2),
  };
  let bytes: Uint8Array;
  try {
    bytes = encodeManifest(manifest, o.note);
  } catch (e) {
    throw new ReleaseError(`cannot encode the manifest: ${(e as Error).message}`);
  }
  if (bytes.length > MAX_MANIFEST_BYTES) throw new ReleaseError(`manifest of ${bytes.length} bytes exceeds ${MAX_MANIFEST_BYTES}`);
  // The device's decoder is the judge: refuse to publish what a device would refuse.
  let decoded: ReleaseManifest;
  try {
    decoded = decodeManifest(bytes);
  } catch (e) {
    throw new ReleaseError(`a device would refuse this manifest: ${(e as Error).message}`);
  }
  const problem = checkRelease({
    manifest: decoded,
    payload,
    image: target.bytes.subarray(0, imageLength),
    base: base ? base.bytes.subarray(0, base.info.totalLength) : undefined,
    baseVersion: base?.info.header.version,
    baseSecurityCounter: base ? (base.info.securityCounter ?? 0) : undefined,
    slotSize: o.slotSize,
  });
  if (problem) throw new ReleaseError(`every device would refuse this release: ${reasonName(problem.reason)}: ${problem.message}`);
  const envelope = signManifestBytes(bytes, o.key);
  const outDir = dirname(resolve(o.out));
  if (existsSync(o.out) && !o.force) throw new ReleaseError(`${o.out} exists; use --force to overwrite`);
  const dest = join(outDir, stream);
  mkdirSync(outDir, { recursive: true });
  if (!payloadFile) {
    if (existsSync(dest) && !equalFiles(dest, payload) && !o.force) throw new ReleaseError(`${dest} exists with different content; use --force to overwrite`);
    writeFileSync(dest, payload);
  } else if (!samePath(payloadPath, dest)) {
    if (existsSync(dest) && !equalFiles(dest, payload) && !o.force) throw new ReleaseError(`${dest} exists with different content; use --force to overwrite`);
    if (!existsSync(dest) || !equalFiles(dest, payload)) copyFileSync(payloadPath, dest);
  }
  writeFileSync(o.out, envelope);
  return Object.freeze({
    envelopePath: o.out,
    payloadPath: dest,
    envelope,
    accepted: Object.freeze({ manifest: decoded, releaseId: sha256(bytes), keyId: o.key.keyId }),
  });
}

/**
 * The ENC_EC256 value of an encrypted full payload, after checking without the
 * key that it is the image's encrypted form: the same header but the flag, and
 * slot TLVs that are the image's own TLV area (so the image's signature is the
 * one the device will check).
 */
function encryptedPayloadOf(payload: Uint8Array, image: Uint8Array, path: string): Uint8Array {
  try {
    const L = encryptedLayout(payload.subarray(0, 32));
    const area = payload.subarray(L.tlvStart);
    const { enc, slotTlvs } = readEncryptedTlvArea(area.subarray(0, area.length >= 4 ? area[2] | (area[3] << 8) : 0));
    if (!slotTlvs) throw new ReleaseError(`${path} has no slot TLVs (imgtool's output): direct-xip MCUboot cannot boot it; add them with xs-ota sign --add-slot-tlvs (or sign with xs-ota sign --encrypt)`);
    const header = clearEncryptedFlags(payload.subarray(0, L.bodyStart));
    const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
    if (!same(header, image.subarray(0, L.bodyStart)) || !same(slotTlvs, image.subarray(L.tlvStart)) || image.length !== L.tlvStart + slotTlvs.length) {
      throw new ReleaseError(`${path} is not the encrypted form of the image (header or slot TLVs differ): give --image the slot image xs-ota sign --encrypt --slot-image wrote`);
    }
    return enc;
  } catch (e) {
    if (e instanceof OtaError) throw new ReleaseError(`${path}: ${e.message}`);
    throw e;
  }
}

function samePath(a: string, b: string): boolean {
  if (!existsSync(b)) return false;
  return realpathSync(a) === realpathSync(b);
}

function equalFiles(path: string, bytes: Uint8Array): boolean {
  const other = readFileSync(path);
  return other.length === bytes.length && other.every((x, i) => x === bytes[i]);
}
