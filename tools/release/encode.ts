/**
 * The release manifest encoder and the signed envelope writer (host side).
 * The decoder they must agree with is src/update/manifest.ts; the byte
 * layouts are in docs/formats.md. Portable (noble only).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { utf8Encode } from "../../src/util/bytes";
import {
  ENVELOPE_ALG_ECDSA_P256_SHA256,
  ENVELOPE_MAGIC,
  ENVELOPE_VERSION,
  Field,
  MANIFEST_FORMAT,
  MANIFEST_MAGIC,
  PAYLOAD_KINDS,
} from "../../src/update/manifest";
import type { ReleaseManifest } from "../../src/update/types";
import type { ImageVersion } from "../../src/image/format";
import type { SigningKey } from "../keys/signer";

export interface ManifestRecord {
  type: number;
  value: Uint8Array;
}

function u8(n: number): Uint8Array {
  return Uint8Array.of(n);
}

function u32(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${n} does not fit a u32`);
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}

/** The 8-byte version, laid out as in the MCUboot header. */
export function versionBytes(v: ImageVersion): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = v.major;
  b[1] = v.minor;
  b[2] = v.revision & 0xff;
  b[3] = v.revision >> 8;
  b.set(u32(v.build), 4);
  return b;
}

/** The records of a manifest, in ascending type order (what `encodeManifest` writes). */
export function manifestRecords(m: ReleaseManifest, note?: string): ManifestRecord[] {
  const r: ManifestRecord[] = [];
  const add = (type: number, value: Uint8Array) => r.push({ type, value });
  if (note !== undefined) add(Field.NOTE, utf8Encode(note));
  add(Field.HARDWARE_ID, utf8Encode(m.hardwareId));
  add(Field.VERSION, versionBytes(m.version));
  add(Field.SECURITY_COUNTER, u32(m.securityCounter));
  add(Field.SLOT, u8(m.slot));
  add(Field.IMAGE_LENGTH, u32(m.image.length));
  add(Field.IMAGE_SHA256, m.image.sha256);
  const kind = PAYLOAD_KINDS.indexOf(m.payload.kind);
  if (kind < 0) throw new RangeError(`payload kind ${m.payload.kind}`);
  add(Field.PAYLOAD_KIND, u8(kind));
  add(Field.PAYLOAD_LENGTH, u32(m.payload.length));
  add(Field.PAYLOAD_SHA256, m.payload.sha256);
  if (m.payload.baseSha256) add(Field.BASE_SHA256, m.payload.baseSha256);
  add(Field.COMPRESSION, utf8Encode(m.payload.compression));
  if (m.fetch.stream !== undefined) add(Field.FETCH_STREAM, utf8Encode(m.fetch.stream));
  if (m.fetch.url !== undefined) add(Field.FETCH_URL, utf8Encode(m.fetch.url));
  add(Field.ISSUED_AT, u32(m.issuedAt));
  add(Field.EXPIRES_AT, u32(m.expiresAt));
  add(Field.MAX_DOWNLOAD, u32(m.maxDownload));
  if (m.payload.encryption) add(Field.PAYLOAD_ENCRYPTION, m.payload.encryption);
  return r;
}

/** Manifest bytes from raw records (tests use it to build malformed manifests). */
export function encodeRecords(records: readonly ManifestRecord[], header: { magic?: readonly number[]; format?: number } = {}): Uint8Array {
  const parts: number[] = [...(header.magic ?? MANIFEST_MAGIC), header.format ?? MANIFEST_FORMAT];
  for (const rec of records) {
    if (rec.value.length > 0xffff) throw new RangeError("record value over 65535 bytes");
    parts.push(rec.type, rec.value.length & 0xff, rec.value.length >> 8, ...rec.value);
  }
  return Uint8Array.from(parts);
}

/** The exact manifest bytes that get signed. Does not validate: the decoder is the judge. */
export function encodeManifest(m: ReleaseManifest, note?: string): Uint8Array {
  return encodeRecords(manifestRecords(m, note));
}

/** Assemble an envelope from its parts (tests use the overrides to build bad ones). */
export function encodeEnvelope(
  manifest: Uint8Array,
  keyId: Uint8Array,
  signature: Uint8Array,
  header: { magic?: readonly number[]; version?: number; algorithm?: number } = {},
): Uint8Array {
  const out = new Uint8Array(8 + manifest.length + keyId.length + 1 + signature.length);
  out.set(header.magic ?? ENVELOPE_MAGIC, 0);
  out[4] = header.version ?? ENVELOPE_VERSION;
  out[5] = header.algorithm ?? ENVELOPE_ALG_ECDSA_P256_SHA256;
  out[6] = manifest.length & 0xff;
  out[7] = manifest.length >> 8;
  out.set(manifest, 8);
  out.set(keyId, 8 + manifest.length);
  out[8 + manifest.length + keyId.length] = signature.length;
  out.set(signature, 9 + manifest.length + keyId.length);
  return out;
}

/** Sign manifest bytes: the envelope holding them, the key id and a DER signature over their SHA-256. */
export function signManifestBytes(manifest: Uint8Array, key: SigningKey): Uint8Array {
  return encodeEnvelope(manifest, key.keyId, key.sign(sha256(manifest)));
}

/** Encode and sign a manifest. */
export function signManifest(m: ReleaseManifest, key: SigningKey, note?: string): Uint8Array {
  return signManifestBytes(encodeManifest(m, note), key);
}
