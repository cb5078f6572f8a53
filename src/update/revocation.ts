/**
 * Signed revocation (device side): the record the cloud publishes to stop a
 * bad release everywhere at once, its strict decoder, the rule that only a
 * newer record replaces the one a device holds, the check of a release (or of
 * the running image) against it, and the compact form the device persists.
 * Byte layouts in docs/formats.md ("Revocation record"); the encoder is
 * tools/release/revoke.ts.
 *
 * Record (the exact signed bytes), built like the release manifest and read
 * by the same record reader (./manifest `decodeRecords`):
 *   "XSRR" | format u8 = 1 | records...   record = type u8 | length u16 LE | value
 * Envelope: the manifest's envelope layout behind the magic "XSRV".
 *
 * A device accepts a record only for its own hardware id and only with a
 * sequence strictly greater than the one it holds (an identical re-send of
 * the held record is harmless); it stores the decoded record (≤ 599 bytes),
 * never the envelope. A held record revokes every image whose SHA-256 it
 * lists, whose version is below its minimum version, or whose security
 * counter is below its minimum counter.
 */
import { OtaError, Reason, type ReasonCode } from "../errors";
import type { Digest } from "../../hal/types";
import { compareVersions, type ImageVersion } from "../image/format";
import { verifyP256 } from "../crypto/ecdsa";
import { checkScope, KeyRole, type SignerLookup } from "../crypto/keyring";
import { sequenceOrder } from "./keyset";
import { sha256Of } from "../crypto/hash";
import { MAX_DER_SIGNATURE } from "../crypto/der";
import { equalBytes, utf8Decode, utf8Encode } from "../util/bytes";
import {
  decodeEnvelopeOf,
  decodeRecords,
  ENVELOPE_HEADER_BYTES,
  KEY_ID_BYTES,
  PRINTABLE,
  requireField,
  type Envelope,
  type EnvelopeLayout,
  type FieldSpec,
  type RecordLayout,
} from "./manifest";

/** Magic of the signed record bytes: "XSRR". */
export const REVOCATION_MAGIC = Object.freeze([0x58, 0x53, 0x52, 0x52]);
export const REVOCATION_FORMAT = 1;
/** Magic of the revocation envelope: "XSRV" (otherwise the manifest envelope's layout). */
export const REVOCATION_ENVELOPE_MAGIC = Object.freeze([0x58, 0x53, 0x52, 0x56]);
/** Most image hashes one record may block. */
export const MAX_BLOCKED = 16;
/** Largest record accepted (the largest valid one, with a 64-byte id, 16 hashes and a 256-byte note, is 878). */
export const MAX_REVOCATION_BYTES = 1024;
/** Most records (known or skipped) in one revocation record. */
export const MAX_REVOCATION_RECORDS = 16;
/** Largest envelope: header + record + key id + length byte + signature (1137). */
export const MAX_REVOCATION_ENVELOPE_BYTES = ENVELOPE_HEADER_BYTES + MAX_REVOCATION_BYTES + KEY_ID_BYTES + 1 + MAX_DER_SIGNATURE;
/** Format byte of the persisted state (`encodeRevocationState`). */
export const REVOCATION_STATE_FORMAT = 1;
/** Format byte of the persisted state of a record with an epoch above 0 (the epoch follows the sequence). */
export const REVOCATION_STATE_FORMAT_EPOCH = 2;
/** Largest persisted state: format, id length, 64-byte id, sequence, epoch, issued-at, version, counter, count, 16 hashes (603). */
export const MAX_REVOCATION_STATE_BYTES = 1 + 1 + 64 + 4 + 4 + 4 + 8 + 4 + 1 + 32 * MAX_BLOCKED;

/** Record types; bit 7 marks a critical field. */
export const RevocationField = Object.freeze({
  /** Why (UTF-8, ≤ 256 bytes); not critical, the device skips it. */
  NOTE: 0x01,
  HARDWARE_ID: 0x81,
  SEQUENCE: 0x82,
  ISSUED_AT: 0x83,
  MIN_VERSION: 0x84,
  MIN_SECURITY_COUNTER: 0x85,
  /** n × 32 bytes, n = 0..16: SHA-256 of complete images (header through TLV area). */
  BLOCKED: 0x86,
  /** u32, optional (absent = 0): the sequence epoch; a key set of that epoch must be held (docs/formats.md "Key set"). */
  EPOCH: 0x87,
});

const LAYOUT: RecordLayout = Object.freeze({
  noun: "revocation record",
  magic: REVOCATION_MAGIC,
  format: REVOCATION_FORMAT,
  maxBytes: MAX_REVOCATION_BYTES,
  maxRecords: MAX_REVOCATION_RECORDS,
  specs: Object.freeze<{ [type: number]: FieldSpec }>({
    [RevocationField.NOTE]: { kind: "text", max: 256 },
    [RevocationField.HARDWARE_ID]: { kind: "text", max: 64, charset: PRINTABLE },
    [RevocationField.SEQUENCE]: { kind: "u32" },
    [RevocationField.ISSUED_AT]: { kind: "u32" },
    [RevocationField.MIN_VERSION]: { kind: "version" },
    [RevocationField.MIN_SECURITY_COUNTER]: { kind: "u32" },
    [RevocationField.BLOCKED]: { kind: "bytes", max: 32 * MAX_BLOCKED },
    [RevocationField.EPOCH]: { kind: "u32" },
  }),
  fields: RevocationField,
});

const ENVELOPE: EnvelopeLayout = Object.freeze({ noun: "revocation record", magic: REVOCATION_ENVELOPE_MAGIC, maxBody: MAX_REVOCATION_BYTES });

/** A decoded revocation record: what a device holds and checks releases against. */
export interface RevocationRecord {
  /** The device class it applies to, e.g. "usr-n520". */
  readonly hardwareId: string;
  /** Monotonic, ≥ 1: a device takes only a greater one than it holds, by at most MAX_SEQUENCE_STEP (./keyset). */
  readonly sequence: number;
  /** The sequence epoch (absent = 0): (epoch, sequence) orders records; the root's key set authorises each epoch. */
  readonly epoch?: number;
  /** Unix seconds (informational: a record never expires, a newer sequence replaces it). */
  readonly issuedAt: number;
  /** Images with a lower version (build number included) are revoked. */
  readonly minVersion: ImageVersion;
  /** Images with a lower security counter (SEC_CNT) are revoked. */
  readonly minSecurityCounter: number;
  /** SHA-256 of each revoked complete image (header through TLV area), at most MAX_BLOCKED, no repeats. */
  readonly blocked: readonly Uint8Array[];
}

/** What `checkRevoked` looks at: an offered release (its manifest) or the running image. */
export interface RevocationSubject {
  readonly version: ImageVersion;
  readonly securityCounter: number;
  /** SHA-256 of the complete image, header through TLV area (`ReleaseManifest.image.sha256`). */
  readonly imageSha256: Uint8Array;
}

function hasRepeat(list: readonly Uint8Array[]): boolean {
  for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) if (equalBytes(list[i], list[j])) return true;
  return false;
}

/**
 * Decode a revocation record's exact bytes (after its signature was checked).
 * @throws OtaError MANIFEST_TOO_LARGE, MANIFEST_BAD_MAGIC, MANIFEST_UNSUPPORTED_VERSION,
 *   MANIFEST_TRUNCATED, MANIFEST_MALFORMED (too many records), MANIFEST_UNKNOWN_CRITICAL,
 *   MANIFEST_DUPLICATE_FIELD, MANIFEST_WRONG_TYPE (incl. a block list that is not whole
 *   hashes), MANIFEST_FIELD_TOO_LONG (incl. more than 16 hashes), MANIFEST_BAD_VALUE
 *   (sequence 0, hardware id characters), MANIFEST_MISSING_FIELD, REVOCATION_MALFORMED
 *   (a hash blocked twice).
 * @example const r = decodeRevocation(bytes); r.sequence
 */
export function decodeRevocation(bytes: Uint8Array): RevocationRecord {
  const values = decodeRecords(bytes, LAYOUT);
  const need = (type: number) => requireField(values, type, LAYOUT);
  const hardwareId = need(RevocationField.HARDWARE_ID) as string;
  const sequence = need(RevocationField.SEQUENCE) as number;
  const issuedAt = need(RevocationField.ISSUED_AT) as number;
  const minVersion = need(RevocationField.MIN_VERSION) as ImageVersion;
  const minSecurityCounter = need(RevocationField.MIN_SECURITY_COUNTER) as number;
  const list = need(RevocationField.BLOCKED) as Uint8Array;
  if (sequence === 0) throw new OtaError(Reason.MANIFEST_BAD_VALUE, "sequence 0 (the first record is 1)", RevocationField.SEQUENCE);
  if (list.length % 32 !== 0) throw new OtaError(Reason.MANIFEST_WRONG_TYPE, `BLOCKED is ${list.length} bytes, not whole SHA-256 hashes`, RevocationField.BLOCKED);
  const blocked: Uint8Array[] = [];
  for (let at = 0; at < list.length; at += 32) blocked.push(list.slice(at, at + 32));
  if (hasRepeat(blocked)) throw new OtaError(Reason.REVOCATION_MALFORMED, "an image hash is blocked twice", RevocationField.BLOCKED);
  const epoch = (values[RevocationField.EPOCH] as number | undefined) ?? 0;
  return Object.freeze({ hardwareId, sequence, ...(epoch ? { epoch } : {}), issuedAt, minVersion, minSecurityCounter, blocked: Object.freeze(blocked) });
}

/**
 * Split a revocation envelope into its parts (fixed layout; no signature check).
 * @throws OtaError as `decodeEnvelope` in ./manifest (MANIFEST_BAD_MAGIC for a manifest envelope).
 */
export function decodeRevocationEnvelope(bytes: Uint8Array): Envelope {
  return decodeEnvelopeOf(bytes, ENVELOPE);
}

export type RevocationResult =
  | {
      readonly ok: true;
      readonly record: RevocationRecord;
      /** SHA-256 of the exact signed record bytes (for logs and reports). */
      readonly id: Uint8Array;
    }
  | { readonly ok: false; readonly reason: ReasonCode; readonly message: string };

function refuse(reason: ReasonCode, message: string): RevocationResult {
  return { ok: false, reason, message };
}

/**
 * Authenticate and decode a signed revocation envelope: layout, then the key
 * id must be allowed to sign revocations (`signers`, as parseSignedManifest), then the signature over SHA-256(record) must
 * verify, then the record is decoded strictly. Whether this device takes it
 * is `acceptRevocation`.
 *
 * Never throws for bad input: every defect is `{ ok: false, reason }`
 * (MANIFEST_* for layout and records, SIGNATURE_MALFORMED,
 * REVOCATION_UNKNOWN_KEY, REVOCATION_BAD_SIGNATURE, REVOCATION_MALFORMED).
 * Exceptions that are not OtaError (a native digest failing, a device reset)
 * propagate.
 * @throws TypeError when `bytes` is not a Uint8Array (misuse).
 * @example const r = parseSignedRevocation(payload, keyring, platform.digest); if (r.ok) acceptRevocation(held, r.record, hwId)
 */
export function parseSignedRevocation(bytes: Uint8Array, signers: SignerLookup, digest: Digest): RevocationResult {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("revocation envelope must be a Uint8Array");
  try {
    const env = decodeRevocationEnvelope(bytes);
    const signer = signers.signer(env.keyId, KeyRole.REVOCATION);
    if (!signer.ok) return refuse(signer.reason ?? Reason.REVOCATION_UNKNOWN_KEY, signer.message);
    const id = sha256Of(digest, env.manifest);
    const check = verifyP256(id, env.signature, signer.key.publicKey, "der");
    if (check === Reason.SIGNATURE_INVALID) return refuse(Reason.REVOCATION_BAD_SIGNATURE, "signature does not verify");
    if (check !== Reason.OK) return refuse(check, "signature or key malformed");
    const record = decodeRevocation(env.manifest);
    const scope = checkScope(signer.scope, record.hardwareId, record.issuedAt);
    if (scope !== Reason.OK) return refuse(scope, `the key set does not let this key revoke for ${record.hardwareId} at ${record.issuedAt}`);
    return { ok: true, record, id };
  } catch (e) {
    if (e instanceof OtaError) return refuse(e.code, e.message);
    throw e;
  }
}

/**
 * Does the device take `incoming` in place of `held`? Checked in this order:
 * the record is for `hardwareId` (REVOCATION_WRONG_HARDWARE); its (epoch,
 * sequence) against the held one's (nothing held = epoch 0, sequence 0;
 * ./keyset `sequenceOrder`): an epoch above `maxEpoch` (the held key set's,
 * 0 without one), a sequence more than MAX_SEQUENCE_STEP ahead, or a first
 * sequence of a new epoch above it is SEQUENCE_JUMP (so no record can lock
 * the sequence at 0xFFFFFFFF, and a device that holds such a record takes a
 * new epoch's records once the root's key set opens it); newer, yes; the
 * same with the same content (`sameRevocation`: a re-send), yes, and there
 * is nothing to store; else REVOCATION_OLDER (a lower one, or a different
 * record under one already held). Pure.
 * @returns Reason.OK, REVOCATION_WRONG_HARDWARE, SEQUENCE_JUMP or REVOCATION_OLDER.
 * @throws TypeError when `hardwareId` is not a string (misuse).
 * @example if (acceptRevocation(held, r.record, "usr-n520", trust.epoch) === Reason.OK && !(held && sameRevocation(held, r.record))) store(r.record)
 */
export function acceptRevocation(held: RevocationRecord | undefined, incoming: RevocationRecord, hardwareId: string, maxEpoch = 0): ReasonCode {
  if (typeof hardwareId !== "string") throw new TypeError("hardwareId must be a string");
  if (incoming.hardwareId !== hardwareId) return Reason.REVOCATION_WRONG_HARDWARE;
  const order = sequenceOrder(held && { epoch: held.epoch ?? 0, sequence: held.sequence }, { epoch: incoming.epoch ?? 0, sequence: incoming.sequence }, maxEpoch);
  if (order === "newer") return Reason.OK;
  if (order === "jump") return Reason.SEQUENCE_JUMP;
  if (order === "same" && held && sameRevocation(held, incoming)) return Reason.OK;
  return Reason.REVOCATION_OLDER;
}

/**
 * Which rule of `record` revokes `subject`, checked in this order: its image
 * hash is blocked, its version is below the minimum, its security counter is
 * below the minimum; undefined when none does (or there is no record).
 * @throws RangeError when `subject.imageSha256` is not 32 bytes (misuse).
 * @example whyRevoked(held, { version, securityCounter, imageSha256 }) // "blocked"
 */
export function whyRevoked(record: RevocationRecord | undefined, subject: RevocationSubject): "blocked" | "version" | "counter" | undefined {
  if (!(subject.imageSha256 instanceof Uint8Array) || subject.imageSha256.length !== 32) throw new RangeError("imageSha256 must be 32 bytes");
  if (record === undefined) return undefined;
  for (const h of record.blocked) if (equalBytes(h, subject.imageSha256)) return "blocked";
  if (compareVersions(subject.version, record.minVersion) < 0) return "version";
  if (subject.securityCounter < record.minSecurityCounter) return "counter";
  return undefined;
}

/**
 * Is `subject` (an offered release, or the running image) revoked by the held record?
 * An offer that is refuses with REVOKED; a running image that is asks the cloud for a replacement.
 * @returns Reason.OK or Reason.REVOKED.
 * @throws RangeError when `subject.imageSha256` is not 32 bytes (misuse).
 * @example checkRevoked(held, { version: m.version, securityCounter: m.securityCounter, imageSha256: m.image.sha256 })
 */
export function checkRevoked(record: RevocationRecord | undefined, subject: RevocationSubject): ReasonCode {
  return whyRevoked(record, subject) === undefined ? Reason.OK : Reason.REVOKED;
}

/**
 * Same content (everything the device stores; the non-critical note and the
 * signature are not part of it).
 */
export function sameRevocation(a: RevocationRecord, b: RevocationRecord): boolean {
  return equalBytes(encodeRevocationState(a), encodeRevocationState(b));
}

function u32(out: Uint8Array, at: number, n: number): void {
  out[at] = n & 0xff;
  out[at + 1] = (n >>> 8) & 0xff;
  out[at + 2] = (n >>> 16) & 0xff;
  out[at + 3] = n >>> 24;
}

function rdU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

function isU32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function isVersion(v: ImageVersion | undefined): boolean {
  return (
    v !== undefined &&
    Number.isInteger(v.major) && v.major >= 0 && v.major <= 0xff &&
    Number.isInteger(v.minor) && v.minor >= 0 && v.minor <= 0xff &&
    Number.isInteger(v.revision) && v.revision >= 0 && v.revision <= 0xffff &&
    isU32(v.build)
  );
}

/**
 * The compact form a device persists (≤ MAX_REVOCATION_STATE_BYTES = 603):
 *   format u8 = 1 | H u8 | hardware id (H bytes) | sequence u32 LE | issuedAt u32 LE |
 *   minVersion (8, as the MCUboot header) | minSecurityCounter u32 LE | N u8 | N × 32 hashes
 * and, for a record of epoch > 0, format 2 with `epoch u32 LE` after the sequence.
 * @throws RangeError / TypeError for a record no decoder would produce (misuse).
 * @example store.put("revocation", encodeRevocationState(record))
 */
export function encodeRevocationState(record: RevocationRecord): Uint8Array {
  const id = typeof record.hardwareId === "string" ? utf8Encode(record.hardwareId) : undefined;
  if (id === undefined || id.length < 1 || id.length > 64 || !PRINTABLE.test(record.hardwareId)) throw new RangeError("hardwareId must be 1..64 printable ASCII");
  if (!isU32(record.sequence) || record.sequence === 0) throw new RangeError("sequence must be 1..2^32-1");
  const epoch = record.epoch ?? 0;
  if (!isU32(epoch)) throw new RangeError("epoch must be a u32");
  const e = epoch > 0 ? 4 : 0;
  if (!isU32(record.issuedAt)) throw new RangeError("issuedAt must be a u32");
  if (!isVersion(record.minVersion)) throw new RangeError("minVersion is not a u8.u8.u16+u32 version");
  if (!isU32(record.minSecurityCounter)) throw new RangeError("minSecurityCounter must be a u32");
  if (!Array.isArray(record.blocked) || record.blocked.length > MAX_BLOCKED) throw new RangeError(`blocked must be an array of at most ${MAX_BLOCKED} hashes`);
  for (const h of record.blocked) if (!(h instanceof Uint8Array) || h.length !== 32) throw new RangeError("each blocked hash must be 32 bytes");
  const n = record.blocked.length;
  const out = new Uint8Array(1 + 1 + id.length + 4 + e + 4 + 8 + 4 + 1 + 32 * n);
  let at = 0;
  out[at++] = e ? REVOCATION_STATE_FORMAT_EPOCH : REVOCATION_STATE_FORMAT;
  out[at++] = id.length;
  out.set(id, at);
  at += id.length;
  u32(out, at, record.sequence);
  if (e) u32(out, at + 4, epoch);
  u32(out, at + 4 + e, record.issuedAt);
  at += 8 + e;
  const v = record.minVersion;
  out[at] = v.major;
  out[at + 1] = v.minor;
  out[at + 2] = v.revision & 0xff;
  out[at + 3] = v.revision >> 8;
  u32(out, at + 4, v.build);
  at += 8;
  u32(out, at, record.minSecurityCounter);
  at += 4;
  out[at++] = n;
  for (const h of record.blocked) {
    out.set(h, at);
    at += 32;
  }
  return out;
}

function corrupt(why: string): OtaError {
  return new OtaError(Reason.REVOCATION_MALFORMED, `stored revocation state: ${why}`);
}

/**
 * Inverse of `encodeRevocationState`, as strict as the signed decoder.
 * @throws OtaError REVOCATION_MALFORMED for any defect (wrong format, lengths,
 *   hardware id characters, sequence 0, too many or repeated hashes, trailing bytes).
 * @example const held = bytes ? decodeRevocationState(bytes) : undefined
 */
export function decodeRevocationState(bytes: Uint8Array): RevocationRecord {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("revocation state must be a Uint8Array");
  if (bytes.length > MAX_REVOCATION_STATE_BYTES) throw corrupt(`${bytes.length} bytes (max ${MAX_REVOCATION_STATE_BYTES})`);
  if (bytes.length < 2) throw corrupt("truncated");
  if (bytes[0] !== REVOCATION_STATE_FORMAT && bytes[0] !== REVOCATION_STATE_FORMAT_EPOCH) throw corrupt(`format ${bytes[0]}`);
  const e = bytes[0] === REVOCATION_STATE_FORMAT_EPOCH ? 4 : 0;
  const h = bytes[1];
  if (h < 1 || h > 64) throw corrupt(`hardware id length ${h}`);
  const fixed = 2 + h + 20 + e + 1;
  if (bytes.length < fixed) throw corrupt("truncated");
  const hardwareId = utf8Decode(bytes.subarray(2, 2 + h));
  if (hardwareId === undefined || !PRINTABLE.test(hardwareId)) throw corrupt("hardware id characters");
  let at = 2 + h;
  const sequence = rdU32(bytes, at);
  const epoch = e ? rdU32(bytes, at + 4) : 0;
  const issuedAt = rdU32(bytes, at + 4 + e);
  at += 8 + e;
  if (e && epoch === 0) throw corrupt("format 2 with epoch 0");
  const minVersion = Object.freeze({ major: bytes[at], minor: bytes[at + 1], revision: bytes[at + 2] | (bytes[at + 3] << 8), build: rdU32(bytes, at + 4) });
  at += 8;
  const minSecurityCounter = rdU32(bytes, at);
  at += 4;
  const n = bytes[at++];
  if (sequence === 0) throw corrupt("sequence 0");
  if (n > MAX_BLOCKED) throw corrupt(`${n} blocked hashes (max ${MAX_BLOCKED})`);
  if (bytes.length !== at + 32 * n) throw corrupt(`${bytes.length} bytes, expected ${at + 32 * n}`);
  const blocked: Uint8Array[] = [];
  for (let i = 0; i < n; i++) blocked.push(bytes.slice(at + 32 * i, at + 32 * i + 32));
  if (hasRepeat(blocked)) throw corrupt("an image hash is blocked twice");
  return Object.freeze({ hardwareId, sequence, ...(epoch ? { epoch } : {}), issuedAt, minVersion, minSecurityCounter, blocked: Object.freeze(blocked) });
}
