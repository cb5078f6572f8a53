/**
 * The release manifest decoder (device side) and the signed envelope that
 * carries it. Byte layouts in docs/formats.md ("Release manifest", "Signed
 * manifest envelope"); the encoder is tools/release/encode.ts.
 *
 * Manifest (the exact signed bytes):
 *   "XSRM" | format u8 = 1 | records...
 *   record = type u8 | length u16 LE | value
 * Bit 7 of the type marks a critical field: an unknown critical field is an
 * error, an unknown non-critical one is skipped. Every field appears at most
 * once. Any order is accepted (the encoder writes ascending types).
 *
 * Envelope (one file, one MQTT payload):
 *   "XSRE" | version u8 = 1 | algorithm u8 = 1 | manifest length u16 LE |
 *   manifest | key id (32) | signature length u8 | DER signature
 *
 * Parsing is strict and bounded: the envelope is at most MAX_ENVELOPE_BYTES,
 * the manifest at most MAX_MANIFEST_BYTES, each field has a maximum length,
 * and every defect has its own reason code. The signature is checked before
 * the manifest's records are parsed, so unauthenticated bytes only ever meet
 * the envelope's fixed-layout reader.
 */
import { OtaError, Reason, type ReasonCode } from "../errors";
import type { Digest, Flash } from "../../hal/types";
import type { ImageVersion } from "../image/format";
import type { ImageInfo } from "../image/verify";
import { verifyP256 } from "../crypto/ecdsa";
import { checkScope, KeyRole, type SignerLookup } from "../crypto/keyring";
import { hashFlashRange, sha256Of } from "../crypto/hash";
import { MAX_DER_SIGNATURE } from "../crypto/der";
import { equalBytes, utf8Decode } from "../util/bytes";
import type { AcceptedManifest, PayloadKind, ReleaseManifest } from "./types";

export const MANIFEST_MAGIC = Object.freeze([0x58, 0x53, 0x52, 0x4d]); // "XSRM"
export const MANIFEST_FORMAT = 1;
export const ENVELOPE_MAGIC = Object.freeze([0x58, 0x53, 0x52, 0x45]); // "XSRE"
export const ENVELOPE_VERSION = 1;
/** Envelope algorithm 1: ECDSA P-256 over SHA-256(manifest), DER signature. */
export const ENVELOPE_ALG_ECDSA_P256_SHA256 = 1;

/** Largest manifest accepted (a typical one is ~250 bytes). */
export const MAX_MANIFEST_BYTES = 1024;
/** Most records in a manifest. */
export const MAX_RECORDS = 48;
export const ENVELOPE_HEADER_BYTES = 8;
export const KEY_ID_BYTES = 32;
/** Smallest DER P-256 signature: SEQUENCE { INTEGER(1 byte), INTEGER(1 byte) }. */
export const MIN_SIGNATURE_BYTES = 8;
/** Largest envelope: header + manifest + key id + length byte + signature. */
export const MAX_ENVELOPE_BYTES = ENVELOPE_HEADER_BYTES + MAX_MANIFEST_BYTES + KEY_ID_BYTES + 1 + MAX_DER_SIGNATURE;

/** Bit 7 of a record type: the field is critical. */
export const CRITICAL = 0x80;

/** Record types. Critical fields have bit 7 set. */
export const Field = Object.freeze({
  /** Release notes (UTF-8, ≤ 256 bytes); not critical, the device skips it. */
  NOTE: 0x01,
  HARDWARE_ID: 0x81,
  VERSION: 0x82,
  SECURITY_COUNTER: 0x83,
  SLOT: 0x84,
  IMAGE_LENGTH: 0x85,
  IMAGE_SHA256: 0x86,
  PAYLOAD_KIND: 0x87,
  PAYLOAD_LENGTH: 0x88,
  PAYLOAD_SHA256: 0x89,
  BASE_SHA256: 0x8a,
  COMPRESSION: 0x8b,
  FETCH_STREAM: 0x8c,
  FETCH_URL: 0x8d,
  ISSUED_AT: 0x8e,
  EXPIRES_AT: 0x8f,
  MAX_DOWNLOAD: 0x90,
  /** The payload is encrypted for the device: the ENC_EC256 value its key is wrapped in (113 or 129 bytes). */
  PAYLOAD_ENCRYPTION: 0x91,
});

/**
 * How a record's value is encoded. "bytes" is a raw value of 0..max bytes
 * whose structure the record's own decoder checks (a list of hashes).
 */
export type ValueKind = "u8" | "u32" | "version" | "sha256" | "text" | "bytes";

/** One record type of a record format: its value kind and bounds. */
export interface FieldSpec {
  readonly kind: ValueKind;
  /** For text and bytes: the longest value in bytes. */
  readonly max?: number;
  /** For text: the allowed characters. */
  readonly charset?: RegExp;
}

/** Printable ASCII without space (hardware ids, URLs). */
export const PRINTABLE = /^[\x21-\x7e]+$/;
/** A stream id is a file name in the release directory and an MQTT topic level. */
const STREAM_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const COMPRESSION = /^[a-z0-9][a-z0-9-]*$/;

const SPECS: { readonly [type: number]: FieldSpec } = Object.freeze<{ [type: number]: FieldSpec }>({
  [Field.NOTE]: { kind: "text", max: 256 },
  [Field.HARDWARE_ID]: { kind: "text", max: 64, charset: PRINTABLE },
  [Field.VERSION]: { kind: "version" },
  [Field.SECURITY_COUNTER]: { kind: "u32" },
  [Field.SLOT]: { kind: "u8" },
  [Field.IMAGE_LENGTH]: { kind: "u32" },
  [Field.IMAGE_SHA256]: { kind: "sha256" },
  [Field.PAYLOAD_KIND]: { kind: "u8" },
  [Field.PAYLOAD_LENGTH]: { kind: "u32" },
  [Field.PAYLOAD_SHA256]: { kind: "sha256" },
  [Field.BASE_SHA256]: { kind: "sha256" },
  [Field.COMPRESSION]: { kind: "text", max: 16, charset: COMPRESSION },
  [Field.FETCH_STREAM]: { kind: "text", max: 128, charset: STREAM_ID },
  [Field.FETCH_URL]: { kind: "text", max: 512, charset: PRINTABLE },
  [Field.ISSUED_AT]: { kind: "u32" },
  [Field.EXPIRES_AT]: { kind: "u32" },
  [Field.MAX_DOWNLOAD]: { kind: "u32" },
  [Field.PAYLOAD_ENCRYPTION]: { kind: "bytes", max: 129 },
});

const FIXED_LENGTH: { readonly [k in ValueKind]: number } = Object.freeze({ u8: 1, u32: 4, version: 8, sha256: 32, text: 0, bytes: 0 });

/** Payload kinds on the wire. */
export const PAYLOAD_KINDS: readonly PayloadKind[] = Object.freeze(["full", "delta"] as PayloadKind[]);

/** A field's name for messages. */
export function fieldName(type: number): string {
  return nameIn(Field, type);
}

function nameIn(fields: { readonly [name: string]: number }, type: number): string {
  for (const k of Object.keys(fields)) if (fields[k] === type) return k;
  return `0x${type.toString(16).padStart(2, "0")}`;
}

/** A decoded record value: u8/u32 → number, text → string, sha256/bytes → a copy, version → ImageVersion. */
export type Value = number | string | Uint8Array | ImageVersion;

function u32le(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

function decodeValue(name: string, type: number, spec: FieldSpec, v: Uint8Array): Value {
  if (spec.kind === "bytes") {
    if (v.length > spec.max!) throw new OtaError(Reason.MANIFEST_FIELD_TOO_LONG, `${name} is ${v.length} bytes (max ${spec.max})`, type);
    return Uint8Array.from(v);
  }
  if (spec.kind === "text") {
    if (v.length > spec.max!) throw new OtaError(Reason.MANIFEST_FIELD_TOO_LONG, `${name} is ${v.length} bytes (max ${spec.max})`, type);
    const s = utf8Decode(v);
    if (s === undefined) throw new OtaError(Reason.MANIFEST_WRONG_TYPE, `${name} is not UTF-8 text`, type);
    if (s.length === 0 || (spec.charset && !spec.charset.test(s))) throw new OtaError(Reason.MANIFEST_BAD_VALUE, `${name} "${s}" has characters it may not have`, type);
    return s;
  }
  const want = FIXED_LENGTH[spec.kind];
  if (v.length !== want) throw new OtaError(Reason.MANIFEST_WRONG_TYPE, `${name} must be ${want} bytes, is ${v.length}`, type);
  switch (spec.kind) {
    case "u8":
      return v[0];
    case "u32":
      return u32le(v, 0);
    case "version":
      return Object.freeze({ major: v[0], minor: v[1], revision: v[2] | (v[3] << 8), build: u32le(v, 4) });
    default:
      return Uint8Array.from(v);
  }
}

/**
 * A signed record format built like the manifest: magic, format byte, then
 * type-length-value records with the critical bit. Shared by the release
 * manifest and the revocation record (./revocation) so both are read by one
 * bounded loop with the same refusals.
 */
export interface RecordLayout {
  /** What the bytes are, for messages ("manifest", "revocation record"). */
  readonly noun: string;
  readonly magic: readonly number[];
  readonly format: number;
  /** Largest encoding accepted. */
  readonly maxBytes: number;
  /** Most records (known or skipped) accepted. */
  readonly maxRecords: number;
  readonly specs: { readonly [type: number]: FieldSpec };
  /** Field names by type, for messages. */
  readonly fields: { readonly [name: string]: number };
}

/** Decoded records of a RecordLayout: the value of each known type that was present. */
export type RecordValues = { readonly [type: number]: Value };

/**
 * Read the records of `bytes` laid out as `layout`: magic, format, then at
 * most `maxRecords` records; unknown non-critical types are skipped, every
 * known value is decoded by its spec. Checks nothing about which fields are
 * present: the caller does (`requireField`).
 * @throws OtaError MANIFEST_TOO_LARGE, MANIFEST_BAD_MAGIC, MANIFEST_UNSUPPORTED_VERSION,
 *   MANIFEST_TRUNCATED, MANIFEST_MALFORMED (too many records), MANIFEST_UNKNOWN_CRITICAL,
 *   MANIFEST_DUPLICATE_FIELD, MANIFEST_WRONG_TYPE, MANIFEST_FIELD_TOO_LONG, MANIFEST_BAD_VALUE.
 * @example const values = decodeRecords(bytes, REVOCATION_LAYOUT); values[0x82]
 */
export function decodeRecords(bytes: Uint8Array, layout: RecordLayout): RecordValues {
  const noun = layout.noun;
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${noun} must be a Uint8Array`);
  if (bytes.length > layout.maxBytes) throw new OtaError(Reason.MANIFEST_TOO_LARGE, `${noun} of ${bytes.length} bytes (max ${layout.maxBytes})`);
  const m = layout.magic.length;
  for (let i = 0; i < m; i++) {
    if (i >= bytes.length) throw new OtaError(Reason.MANIFEST_TRUNCATED, `${noun} shorter than its magic`);
    if (bytes[i] !== layout.magic[i]) throw new OtaError(Reason.MANIFEST_BAD_MAGIC, `no ${noun} magic`);
  }
  if (bytes.length < m + 1) throw new OtaError(Reason.MANIFEST_TRUNCATED, `${noun} has no format byte`);
  if (bytes[m] !== layout.format) throw new OtaError(Reason.MANIFEST_UNSUPPORTED_VERSION, `${noun} format ${bytes[m]}`);

  const values: { [type: number]: Value } = {};
  let off = m + 1;
  for (let n = 0; off < bytes.length; n++) {
    if (n >= layout.maxRecords) throw new OtaError(Reason.MANIFEST_MALFORMED, `more than ${layout.maxRecords} records`, off);
    if (off + 3 > bytes.length) throw new OtaError(Reason.MANIFEST_TRUNCATED, "record header runs past the end", off);
    const type = bytes[off];
    const length = bytes[off + 1] | (bytes[off + 2] << 8);
    const start = off + 3;
    const name = nameIn(layout.fields, type);
    if (start + length > bytes.length) throw new OtaError(Reason.MANIFEST_TRUNCATED, `${name} runs past the end`, off);
    off = start + length;
    const spec = layout.specs[type];
    if (!spec) {
      if (type & CRITICAL) throw new OtaError(Reason.MANIFEST_UNKNOWN_CRITICAL, `unknown critical field ${name}`, type);
      continue;
    }
    if (values[type] !== undefined) throw new OtaError(Reason.MANIFEST_DUPLICATE_FIELD, `${name} appears twice`, type);
    values[type] = decodeValue(name, type, spec, bytes.subarray(start, start + length));
  }
  return values;
}

/**
 * The value of a required field.
 * @throws OtaError MANIFEST_MISSING_FIELD when it is absent.
 */
export function requireField(values: RecordValues, type: number, layout: RecordLayout): Value {
  const v = values[type];
  if (v === undefined) throw new OtaError(Reason.MANIFEST_MISSING_FIELD, `${nameIn(layout.fields, type)} is missing`, type);
  return v;
}

const MANIFEST_LAYOUT: RecordLayout = Object.freeze({
  noun: "manifest",
  magic: MANIFEST_MAGIC,
  format: MANIFEST_FORMAT,
  maxBytes: MAX_MANIFEST_BYTES,
  maxRecords: MAX_RECORDS,
  specs: SPECS,
  fields: Field,
});

/**
 * Decode the manifest's exact bytes (after its signature was checked).
 * @throws OtaError MANIFEST_TOO_LARGE, MANIFEST_BAD_MAGIC, MANIFEST_UNSUPPORTED_VERSION,
 *   MANIFEST_TRUNCATED (a record runs past the end), MANIFEST_MALFORMED (too many
 *   records), MANIFEST_UNKNOWN_CRITICAL, MANIFEST_DUPLICATE_FIELD, MANIFEST_WRONG_TYPE,
 *   MANIFEST_FIELD_TOO_LONG, MANIFEST_BAD_VALUE, MANIFEST_MISSING_FIELD, MANIFEST_INCONSISTENT.
 * @example const m = decodeManifest(bytes); m.version.major
 */
export function decodeManifest(bytes: Uint8Array): ReleaseManifest {
  const values = decodeRecords(bytes, MANIFEST_LAYOUT);
  const need = (type: number): Value => requireField(values, type, MANIFEST_LAYOUT);
  const hardwareId = need(Field.HARDWARE_ID) as string;
  const version = need(Field.VERSION) as ImageVersion;
  const securityCounter = need(Field.SECURITY_COUNTER) as number;
  const slot = need(Field.SLOT) as number;
  const imageLength = need(Field.IMAGE_LENGTH) as number;
  const imageSha256 = need(Field.IMAGE_SHA256) as Uint8Array;
  const kindCode = need(Field.PAYLOAD_KIND) as number;
  const payloadLength = need(Field.PAYLOAD_LENGTH) as number;
  const payloadSha256 = need(Field.PAYLOAD_SHA256) as Uint8Array;
  const compression = need(Field.COMPRESSION) as string;
  const issuedAt = need(Field.ISSUED_AT) as number;
  const expiresAt = need(Field.EXPIRES_AT) as number;
  const maxDownload = need(Field.MAX_DOWNLOAD) as number;
  const stream = values[Field.FETCH_STREAM] as string | undefined;
  const url = values[Field.FETCH_URL] as string | undefined;
  const baseSha256 = values[Field.BASE_SHA256] as Uint8Array | undefined;
  const encryption = values[Field.PAYLOAD_ENCRYPTION] as Uint8Array | undefined;

  if (encryption !== undefined && encryption.length !== 113 && encryption.length !== 129) {
    throw new OtaError(Reason.MANIFEST_WRONG_TYPE, `payload encryption of ${encryption.length} bytes (113 or 129)`, Field.PAYLOAD_ENCRYPTION);
  }
  if (slot > 1) throw new OtaError(Reason.MANIFEST_BAD_VALUE, `slot ${slot}`, Field.SLOT);
  if (kindCode >= PAYLOAD_KINDS.length) throw new OtaError(Reason.MANIFEST_BAD_VALUE, `payload kind ${kindCode}`, Field.PAYLOAD_KIND);
  if (imageLength < 32) throw new OtaError(Reason.MANIFEST_BAD_VALUE, `image length ${imageLength}`, Field.IMAGE_LENGTH);
  if (payloadLength < 1) throw new OtaError(Reason.MANIFEST_BAD_VALUE, "payload length 0", Field.PAYLOAD_LENGTH);
  if (url !== undefined && !/^https?:\/\/[^/]/.test(url)) throw new OtaError(Reason.MANIFEST_BAD_VALUE, "url is not http(s)://host...", Field.FETCH_URL);
  if (stream === undefined && url === undefined) throw new OtaError(Reason.MANIFEST_MISSING_FIELD, "neither FETCH_STREAM nor FETCH_URL", Field.FETCH_STREAM);
  const kind = PAYLOAD_KINDS[kindCode];
  if (kind === "delta" && baseSha256 === undefined) throw new OtaError(Reason.MANIFEST_MISSING_FIELD, "a delta needs BASE_SHA256", Field.BASE_SHA256);
  if (kind === "full") {
    if (baseSha256 !== undefined) throw new OtaError(Reason.MANIFEST_INCONSISTENT, "a full payload has no base", Field.BASE_SHA256);
    // an encrypted full payload is the encrypted image; the image is what it decrypts to in the slot
    if (encryption === undefined && (payloadLength !== imageLength || !equalBytes(payloadSha256, imageSha256))) {
      throw new OtaError(Reason.MANIFEST_INCONSISTENT, "a full payload is the image: lengths and hashes must agree", Field.PAYLOAD_SHA256);
    }
  }
  if (expiresAt <= issuedAt) throw new OtaError(Reason.MANIFEST_INCONSISTENT, "expires at or before it was issued", Field.EXPIRES_AT);

  const fetch: { stream?: string; url?: string } = {};
  if (stream !== undefined) fetch.stream = stream;
  if (url !== undefined) fetch.url = url;
  const payload: { kind: PayloadKind; length: number; sha256: Uint8Array; baseSha256?: Uint8Array; compression: string; encryption?: Uint8Array } = {
    kind,
    length: payloadLength,
    sha256: payloadSha256,
    compression,
  };
  if (baseSha256 !== undefined) payload.baseSha256 = baseSha256;
  if (encryption !== undefined) payload.encryption = encryption;
  return Object.freeze({
    hardwareId,
    version,
    securityCounter,
    slot: slot as 0 | 1,
    image: Object.freeze({ length: imageLength, sha256: imageSha256 }),
    payload: Object.freeze(payload),
    fetch: Object.freeze(fetch),
    issuedAt,
    expiresAt,
    maxDownload,
  });
}

/** The parts of a signed envelope, before any check of the signature. */
export interface Envelope {
  /** The exact signed manifest bytes (a view into the input). */
  readonly manifest: Uint8Array;
  readonly keyId: Uint8Array;
  /** DER ECDSA signature over SHA-256(manifest). */
  readonly signature: Uint8Array;
}

/** The fixed layout of a signed envelope: which magic, what it carries, how large. */
export interface EnvelopeLayout {
  /** What the body is, for messages ("manifest", "revocation record"). */
  readonly noun: string;
  readonly magic: readonly number[];
  /** Largest body accepted (the u16 length field is checked against it). */
  readonly maxBody: number;
}

const MANIFEST_ENVELOPE: EnvelopeLayout = Object.freeze({ noun: "manifest", magic: ENVELOPE_MAGIC, maxBody: MAX_MANIFEST_BYTES });

/**
 * Split an envelope into its parts (fixed layout; no signature check).
 * @throws OtaError MANIFEST_TOO_LARGE, MANIFEST_BAD_MAGIC, MANIFEST_TRUNCATED,
 *   MANIFEST_UNSUPPORTED_VERSION (envelope version or algorithm), MANIFEST_MALFORMED
 *   (empty manifest), SIGNATURE_MALFORMED (signature length out of range),
 *   MANIFEST_TRAILING_BYTES.
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  return decodeEnvelopeOf(bytes, MANIFEST_ENVELOPE);
}

/**
 * Split an envelope of any signed record format into its parts: the
 * manifest's envelope layout (version, algorithm, u16 body length, body,
 * key id, signature length, DER signature) behind `layout.magic`. The body is
 * returned in `manifest` whatever it is.
 * @throws OtaError as `decodeEnvelope`.
 * @example const env = decodeEnvelopeOf(bytes, { noun: "revocation record", magic: [0x58, 0x53, 0x52, 0x56], maxBody: 1024 })
 */
export function decodeEnvelopeOf(bytes: Uint8Array, layout: EnvelopeLayout): Envelope {
  const noun = layout.noun;
  const maxEnvelope = ENVELOPE_HEADER_BYTES + layout.maxBody + KEY_ID_BYTES + 1 + MAX_DER_SIGNATURE;
  if (!(bytes instanceof Uint8Array)) throw new TypeError("envelope must be a Uint8Array");
  if (bytes.length > maxEnvelope) throw new OtaError(Reason.MANIFEST_TOO_LARGE, `envelope of ${bytes.length} bytes (max ${maxEnvelope})`);
  for (let i = 0; i < 4; i++) {
    if (i >= bytes.length) throw new OtaError(Reason.MANIFEST_TRUNCATED, "envelope shorter than its magic");
    if (bytes[i] !== layout.magic[i]) throw new OtaError(Reason.MANIFEST_BAD_MAGIC, `no ${noun} envelope magic`);
  }
  if (bytes.length < ENVELOPE_HEADER_BYTES) throw new OtaError(Reason.MANIFEST_TRUNCATED, "envelope header cut short");
  if (bytes[4] !== ENVELOPE_VERSION) throw new OtaError(Reason.MANIFEST_UNSUPPORTED_VERSION, `envelope version ${bytes[4]}`);
  if (bytes[5] !== ENVELOPE_ALG_ECDSA_P256_SHA256) throw new OtaError(Reason.MANIFEST_UNSUPPORTED_VERSION, `signature algorithm ${bytes[5]}`);
  const m = bytes[6] | (bytes[7] << 8);
  if (m > layout.maxBody) throw new OtaError(Reason.MANIFEST_TOO_LARGE, `${noun} of ${m} bytes (max ${layout.maxBody})`);
  if (m === 0) throw new OtaError(Reason.MANIFEST_MALFORMED, `empty ${noun}`);
  const keyAt = ENVELOPE_HEADER_BYTES + m;
  const sigLenAt = keyAt + KEY_ID_BYTES;
  if (sigLenAt + 1 > bytes.length) throw new OtaError(Reason.MANIFEST_TRUNCATED, "envelope ends before the signature");
  const s = bytes[sigLenAt];
  if (s < MIN_SIGNATURE_BYTES || s > MAX_DER_SIGNATURE) throw new OtaError(Reason.SIGNATURE_MALFORMED, `signature length ${s}`);
  const end = sigLenAt + 1 + s;
  if (end > bytes.length) throw new OtaError(Reason.MANIFEST_TRUNCATED, "signature cut short");
  if (end < bytes.length) throw new OtaError(Reason.MANIFEST_TRAILING_BYTES, `${bytes.length - end} bytes after the signature`);
  return Object.freeze({
    manifest: bytes.subarray(ENVELOPE_HEADER_BYTES, keyAt),
    keyId: bytes.subarray(keyAt, sigLenAt),
    signature: bytes.subarray(sigLenAt + 1, end),
  });
}

export type ManifestResult =
  | { readonly ok: true; readonly accepted: AcceptedManifest }
  | { readonly ok: false; readonly reason: ReasonCode; readonly message: string };

/**
 * Authenticate and decode a signed envelope: layout, then the key id must be
 * allowed to sign manifests (`signers`: a flat Keyring, or the device's trust
 * with its key set: ./keyset `DeviceTrust`), then the signature over
 * SHA-256(manifest) must verify, then the manifest is decoded, then a key
 * set's scope for that key must cover the manifest's hardware id and its
 * issued-at. Policy (is this release for me, now?) is separate: `checkPolicy`
 * in ./policy.
 *
 * Never throws for bad input: every defect is `{ ok: false, reason }`
 * (MANIFEST_*, SIGNATURE_MALFORMED, KEY_WRONG_ROLE, KEY_RETIRED,
 * KEY_LEGACY_SIGNER, KEY_WRONG_HARDWARE, KEY_NOT_VALID). Exceptions that are
 * not OtaError (a native digest failing, a device reset) propagate.
 * @example const r = parseSignedManifest(bytes, keyring, platform.digest); if (r.ok) r.accepted.releaseId
 */
export function parseSignedManifest(bytes: Uint8Array, signers: SignerLookup, digest: Digest): ManifestResult {
  try {
    const env = decodeEnvelope(bytes);
    const signer = signers.signer(env.keyId, KeyRole.MANIFEST);
    if (!signer.ok) return refuse(signer.reason ?? Reason.MANIFEST_UNKNOWN_KEY, signer.message);
    const releaseId = sha256Of(digest, env.manifest);
    const check = verifyP256(releaseId, env.signature, signer.key.publicKey, "der");
    if (check === Reason.SIGNATURE_INVALID) return refuse(Reason.MANIFEST_BAD_SIGNATURE, "signature does not verify");
    if (check !== Reason.OK) return refuse(check, "signature or key malformed");
    const manifest = decodeManifest(env.manifest);
    const scope = checkScope(signer.scope, manifest.hardwareId, manifest.issuedAt);
    if (scope !== Reason.OK) return refuse(scope, `the key set does not let this key sign for ${manifest.hardwareId} at ${manifest.issuedAt}`);
    return { ok: true, accepted: Object.freeze({ manifest, releaseId, keyId: Uint8Array.from(env.keyId) }) };
  } catch (e) {
    if (e instanceof OtaError) return refuse(e.code, e.message);
    throw e;
  }
}

function refuse(reason: ReasonCode, message: string): ManifestResult {
  return { ok: false, reason, message };
}

/**
 * Does the verified image in `slot` (as `verifyImage` returned it) match what
 * the manifest promised? Its length (header through TLV area), its SHA-256 over
 * that length, its version and its security counter must all agree.
 * Reads the slot in bounded chunks.
 * @returns Reason.OK or MANIFEST_IMAGE_MISMATCH.
 * @throws OtaError from the flash.
 */
export function checkImageAgainstManifest(slot: Flash, info: ImageInfo, manifest: ReleaseManifest, digest: Digest): ReasonCode {
  const v = info.header.version;
  const w = manifest.version;
  if (info.totalLength !== manifest.image.length) return Reason.MANIFEST_IMAGE_MISMATCH;
  if (v.major !== w.major || v.minor !== w.minor || v.revision !== w.revision || v.build !== w.build) return Reason.MANIFEST_IMAGE_MISMATCH;
  if ((info.securityCounter ?? 0) !== manifest.securityCounter) return Reason.MANIFEST_IMAGE_MISMATCH;
  const hash = hashFlashRange(slot, digest, 0, info.totalLength);
  return equalBytes(hash, manifest.image.sha256) ? Reason.OK : Reason.MANIFEST_IMAGE_MISMATCH;
}
