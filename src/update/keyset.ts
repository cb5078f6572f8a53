/**
 * Key sets (device side): the root-signed list of the keys that may sign
 * release manifests, revocation records and time statements, each for which
 * hardware id and signing when, and the keys the root has retired. Its strict
 * decoder, the rule that only a newer set replaces the held one (by a bounded
 * step, or a root reset of the epoch), the compact form the device persists,
 * and `DeviceTrust`: who may sign what on this device now.
 * Byte layouts in docs/formats.md ("Key set"); the encoder is tools/release/keyset.ts.
 *
 * Record (the exact signed bytes), read by the manifest's record reader:
 *   "XSKS" | format u8 = 1 | records...   record = type u8 | length u16 LE | value
 * Envelope: the manifest's envelope layout behind the magic "XSKV", signed by
 * a root key (AgentConfig.rootKeys: trusted in the firmware, never online).
 *
 * Sequences (key sets and revocation records) are ordered by (epoch,
 * sequence). Within an epoch a sequence may move forward by at most
 * MAX_SEQUENCE_STEP, so no signer can exhaust the u32 space in one record; a
 * key set of the next epoch (only the root signs key sets) restarts every
 * sequence at 1..MAX_SEQUENCE_STEP: that is the root's reset.
 */
import { OtaError, Reason, type ReasonCode } from "../errors";
import type { Digest } from "../../hal/types";
import { verifyP256 } from "../crypto/ecdsa";
import { ALL_ROLES, KeyRole, keyIdOf, type KeyRoleBit, type KeyScope, type Keyring, type SignerLookup, type SignerResult, type TrustedKey } from "../crypto/keyring";
import { decodePublicKey, MAX_DER_SIGNATURE } from "../crypto/der";
import { sha256Of } from "../crypto/hash";
import { equalBytes, utf8Decode, utf8Encode } from "../util/bytes";
import {
  decodeEnvelopeOf,
  decodeRecords,
  ENVELOPE_HEADER_BYTES,
  KEY_ID_BYTES,
  requireField,
  type Envelope,
  type EnvelopeLayout,
  type FieldSpec,
  type RecordLayout,
} from "./manifest";

/** Magic of the signed key set bytes: "XSKS". */
export const KEYSET_MAGIC = Object.freeze([0x58, 0x53, 0x4b, 0x53]);
export const KEYSET_FORMAT = 1;
/** Magic of the key set envelope: "XSKV". */
export const KEYSET_ENVELOPE_MAGIC = Object.freeze([0x58, 0x53, 0x4b, 0x56]);
/** Most signing keys one key set names (the persisted state must fit TRUST_SPACE's 496 bytes). */
export const MAX_KEYSET_KEYS = 4;
/** Most retired key ids one key set carries. */
export const MAX_RETIRED = 4;
/** Bytes of a retired key id the device keeps (only to name the refusal KEY_RETIRED: a key the set does not list is refused anyway). */
export const RETIRED_PREFIX_BYTES = 8;
/** Longest hardware id a key may be limited to (AgentConfig.hardwareId's bound). */
export const MAX_SCOPE_HARDWARE_ID = 32;
/** Bytes of one key entry before its hardware id: point 65, roles 1, notBefore 4, notAfter 4, id length 1. */
export const ENTRY_FIXED_BYTES = 75;
/** Largest key set record accepted. */
export const MAX_KEYSET_BYTES = 2048;
/** Largest key set envelope. */
export const MAX_KEYSET_ENVELOPE_BYTES = ENVELOPE_HEADER_BYTES + MAX_KEYSET_BYTES + KEY_ID_BYTES + 1 + MAX_DER_SIGNATURE;
/** How far one record may move a sequence within an epoch (and the highest first sequence of a new epoch). */
export const MAX_SEQUENCE_STEP = 65536;
/** Format byte of the persisted state. */
export const KEYSET_STATE_FORMAT = 1;
/** Largest persisted state: format, sequence, epoch, issued-at, key count, keys, retired count, retired id prefixes (475). */
export const MAX_KEYSET_STATE_BYTES = 1 + 12 + 1 + MAX_KEYSET_KEYS * (ENTRY_FIXED_BYTES + MAX_SCOPE_HARDWARE_ID) + 1 + RETIRED_PREFIX_BYTES * MAX_RETIRED;

/** Record types; bit 7 marks a critical field. */
export const KeySetField = Object.freeze({
  /** Why (UTF-8, ≤ 256 bytes); not critical. */
  NOTE: 0x01,
  SEQUENCE: 0x81,
  EPOCH: 0x82,
  ISSUED_AT: 0x83,
  /** 1..8 key entries (docs/formats.md). */
  KEYS: 0x84,
  /** 0..8 key ids (32 bytes each) the root retired. */
  RETIRED: 0x85,
});

const HARDWARE_ID = /^[A-Za-z0-9._-]+$/;

const LAYOUT: RecordLayout = Object.freeze({
  noun: "key set",
  magic: KEYSET_MAGIC,
  format: KEYSET_FORMAT,
  maxBytes: MAX_KEYSET_BYTES,
  maxRecords: 16,
  specs: Object.freeze<{ [type: number]: FieldSpec }>({
    [KeySetField.NOTE]: { kind: "text", max: 256 },
    [KeySetField.SEQUENCE]: { kind: "u32" },
    [KeySetField.EPOCH]: { kind: "u32" },
    [KeySetField.ISSUED_AT]: { kind: "u32" },
    [KeySetField.KEYS]: { kind: "bytes", max: MAX_KEYSET_KEYS * (ENTRY_FIXED_BYTES + MAX_SCOPE_HARDWARE_ID) },
    [KeySetField.RETIRED]: { kind: "bytes", max: 32 * MAX_RETIRED },
  }),
  fields: KeySetField,
});

const ENVELOPE: EnvelopeLayout = Object.freeze({ noun: "key set", magic: KEYSET_ENVELOPE_MAGIC, maxBody: MAX_KEYSET_BYTES });

/** One signing key of a key set: the root's certificate of it. */
export interface KeySetEntry {
  /** SHA-256 of its SubjectPublicKeyInfo (the id envelopes name). */
  readonly keyId: Uint8Array;
  /** SEC1 uncompressed point, 65 bytes. */
  readonly publicKey: Uint8Array;
  /** KeyRole bits. */
  readonly roles: number;
  readonly scope: KeyScope;
}

/** A decoded key set. */
export interface KeySet {
  /** ≥ 1; ordered within its epoch. */
  readonly sequence: number;
  /** 0 at first; the root raises it by one to reset every sequence. */
  readonly epoch: number;
  /** Unix seconds: a signed time (advances the device's time floor). */
  readonly issuedAt: number;
  readonly keys: readonly KeySetEntry[];
  /** The first RETIRED_PREFIX_BYTES of each key id the root retired (a manifest such a key signs is refused with KEY_RETIRED). */
  readonly retired: readonly Uint8Array[];
}

/** (epoch, sequence): what key sets and revocation records are ordered by. */
export interface Sequenced {
  readonly epoch: number;
  readonly sequence: number;
}

/**
 * Where `incoming` stands against `held` (nothing held reads as epoch 0,
 * sequence 0): "newer", "same" (equal epoch and sequence), "older", or
 * "jump" — a sequence more than MAX_SEQUENCE_STEP ahead in the same epoch, a
 * first sequence over MAX_SEQUENCE_STEP in a later epoch, or an epoch above
 * `maxEpoch` (the newest the root has authorised).
 * @example sequenceOrder({ epoch: 0, sequence: 3 }, { epoch: 0, sequence: 0xffffffff }, 0) === "jump"
 */
export function sequenceOrder(held: Sequenced | undefined, incoming: Sequenced, maxEpoch: number): "newer" | "same" | "older" | "jump" {
  const h = held ?? { epoch: 0, sequence: 0 };
  if (incoming.epoch > maxEpoch) return "jump";
  if (incoming.epoch < h.epoch) return "older";
  if (incoming.epoch > h.epoch) return incoming.sequence <= MAX_SEQUENCE_STEP ? "newer" : "jump";
  if (incoming.sequence < h.sequence) return "older";
  if (incoming.sequence === h.sequence) return "same";
  return incoming.sequence - h.sequence > MAX_SEQUENCE_STEP ? "jump" : "newer";
}

function malformed(message: string, detail?: number): OtaError {
  return new OtaError(Reason.KEYSET_MALFORMED, message, detail);
}

function rdU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

function wrU32(out: Uint8Array, at: number, n: number): void {
  out[at] = n & 0xff;
  out[at + 1] = (n >>> 8) & 0xff;
  out[at + 2] = (n >>> 16) & 0xff;
  out[at + 3] = n >>> 24;
}

/**
 * Read `count` key entries from `b` at `at` (or, with count undefined, until
 * the end), checking each: a P-256 point, roles within ALL_ROLES and not 0,
 * notBefore < notAfter, a hardware id of 0..32 of [A-Za-z0-9._-], no key twice.
 * @returns the entries and the offset after them.
 * @throws OtaError KEYSET_MALFORMED (or `corrupt`'s code for persisted state).
 */
function readEntries(b: Uint8Array, at: number, end: number, count: number | undefined, digest: Digest, fail: (m: string) => OtaError): { entries: KeySetEntry[]; at: number } {
  const entries: KeySetEntry[] = [];
  while (count === undefined ? at < end : entries.length < count) {
    if (entries.length >= MAX_KEYSET_KEYS) throw fail(`more than ${MAX_KEYSET_KEYS} keys`);
    if (at + ENTRY_FIXED_BYTES > end) throw fail("a key entry is cut short");
    const point = b.subarray(at, at + 65);
    if (point[0] !== 0x04 || !decodePublicKey(point)) throw fail("a key is not an uncompressed P-256 point");
    const roles = b[at + 65];
    const notBefore = rdU32(b, at + 66);
    const notAfter = rdU32(b, at + 70);
    const h = b[at + 74];
    if (roles === 0 || (roles & ~ALL_ROLES) !== 0) throw fail(`roles 0x${roles.toString(16)}`);
    if (notAfter <= notBefore) throw fail("a key's validity ends before it begins");
    if (h > MAX_SCOPE_HARDWARE_ID || at + ENTRY_FIXED_BYTES + h > end) throw fail(`hardware id length ${h}`);
    let hardwareId: string | undefined;
    if (h > 0) {
      hardwareId = utf8Decode(b.subarray(at + ENTRY_FIXED_BYTES, at + ENTRY_FIXED_BYTES + h));
      if (hardwareId === undefined || !HARDWARE_ID.test(hardwareId)) throw fail("hardware id characters");
    }
    const keyId = keyIdOf(point, digest);
    for (const e of entries) if (equalBytes(e.keyId, keyId)) throw fail("a key appears twice");
    const scope: KeyScope = hardwareId === undefined ? Object.freeze({ notBefore, notAfter }) : Object.freeze({ hardwareId, notBefore, notAfter });
    entries.push(Object.freeze({ keyId, publicKey: Uint8Array.from(point), roles, scope }));
    at += ENTRY_FIXED_BYTES + h;
  }
  return { entries, at };
}

/** Retired ids of `width` bytes each (32 in the signed record, RETIRED_PREFIX_BYTES in the state), kept as prefixes. */
function readRetired(list: Uint8Array, width: number, entries: readonly KeySetEntry[], fail: (m: string) => OtaError): Uint8Array[] {
  if (list.length % width !== 0) throw fail("retired ids are not whole key ids");
  if (list.length > width * MAX_RETIRED) throw fail(`more than ${MAX_RETIRED} retired keys`);
  const out: Uint8Array[] = [];
  for (let at = 0; at < list.length; at += width) {
    const id = list.slice(at, at + RETIRED_PREFIX_BYTES);
    for (const r of out) if (equalBytes(r, id)) throw fail("a key is retired twice");
    for (const e of entries) if (equalBytes(e.keyId.subarray(0, RETIRED_PREFIX_BYTES), id)) throw fail("a key is both listed and retired");
    out.push(id);
  }
  return out;
}

/**
 * Decode a key set's exact bytes (after its signature was checked).
 * @throws OtaError the record reader's MANIFEST_* codes (magic, format, lengths,
 *   critical fields, duplicates, missing SEQUENCE/EPOCH/ISSUED_AT/KEYS),
 *   MANIFEST_BAD_VALUE (sequence 0), KEYSET_MALFORMED (entries, retired ids).
 * @example const ks = decodeKeySet(bytes, softwareDigest); ks.keys.length
 */
export function decodeKeySet(bytes: Uint8Array, digest: Digest): KeySet {
  const values = decodeRecords(bytes, LAYOUT);
  const need = (type: number) => requireField(values, type, LAYOUT);
  const sequence = need(KeySetField.SEQUENCE) as number;
  const epoch = need(KeySetField.EPOCH) as number;
  const issuedAt = need(KeySetField.ISSUED_AT) as number;
  const list = need(KeySetField.KEYS) as Uint8Array;
  if (sequence === 0) throw new OtaError(Reason.MANIFEST_BAD_VALUE, "sequence 0 (the first key set is 1)", KeySetField.SEQUENCE);
  const { entries } = readEntries(list, 0, list.length, undefined, digest, (m) => malformed(m, KeySetField.KEYS));
  if (entries.length === 0) throw malformed("a key set names at least one key", KeySetField.KEYS);
  const retired = readRetired((values[KeySetField.RETIRED] as Uint8Array | undefined) ?? new Uint8Array(0), 32, entries, (m) => malformed(m, KeySetField.RETIRED));
  return Object.freeze({ sequence, epoch, issuedAt, keys: Object.freeze(entries), retired: Object.freeze(retired) });
}

/**
 * Split a key set envelope into its parts (fixed layout; no signature check).
 * @throws OtaError as `decodeEnvelope` in ./manifest.
 */
export function decodeKeySetEnvelope(bytes: Uint8Array): Envelope {
  return decodeEnvelopeOf(bytes, ENVELOPE);
}

export type KeySetResult =
  | { readonly ok: true; readonly keySet: KeySet; readonly id: Uint8Array }
  | { readonly ok: false; readonly reason: ReasonCode; readonly message: string };

/**
 * Authenticate and decode a signed key set: layout, the key id must be one
 * of `roots` (KEYSET_UNKNOWN_ROOT), the signature over SHA-256(record) must
 * verify (KEYSET_BAD_SIGNATURE), then the strict decoder. Never throws for
 * bad input. Whether the device takes it is `acceptKeySet`.
 * @throws TypeError when `bytes` is not a Uint8Array (misuse).
 * @example const r = parseSignedKeySet(payload, roots, digest); if (r.ok) acceptKeySet(held, r.keySet)
 */
export function parseSignedKeySet(bytes: Uint8Array, roots: Keyring, digest: Digest): KeySetResult {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("key set envelope must be a Uint8Array");
  try {
    const env = decodeKeySetEnvelope(bytes);
    const root = roots.find(env.keyId);
    if (!root) return { ok: false, reason: Reason.KEYSET_UNKNOWN_ROOT, message: "signed by a key that is not a root key of this device" };
    const id = sha256Of(digest, env.manifest);
    const check = verifyP256(id, env.signature, root.publicKey, "der");
    if (check === Reason.SIGNATURE_INVALID) return { ok: false, reason: Reason.KEYSET_BAD_SIGNATURE, message: "signature does not verify" };
    if (check !== Reason.OK) return { ok: false, reason: check, message: "signature or key malformed" };
    return { ok: true, keySet: decodeKeySet(env.manifest, digest), id };
  } catch (e) {
    if (e instanceof OtaError) return { ok: false, reason: e.code, message: e.message };
    throw e;
  }
}

/**
 * Does the device take `incoming` in place of `held`? A newer (epoch,
 * sequence) by a bounded step, or the next epoch (the root's reset) from
 * sequence 1..MAX_SEQUENCE_STEP: OK; the same with the same content: OK (a
 * re-send, nothing to store); a jump: SEQUENCE_JUMP; else KEYSET_OLDER.
 * @example acceptKeySet(held, r.keySet) === Reason.OK
 */
export function acceptKeySet(held: KeySet | undefined, incoming: KeySet): ReasonCode {
  const order = sequenceOrder(held, incoming, (held?.epoch ?? 0) + 1);
  if (order === "newer") return Reason.OK;
  if (order === "jump") return Reason.SEQUENCE_JUMP;
  if (order === "same" && held && sameKeySet(held, incoming)) return Reason.OK;
  return Reason.KEYSET_OLDER;
}

/** Same content (everything the device stores; the note is not part of it). */
export function sameKeySet(a: KeySet, b: KeySet): boolean {
  return equalBytes(encodeKeySetState(a), encodeKeySetState(b));
}

/**
 * The key entries as they are laid out in the KEYS record and the persisted
 * state: point 65 | roles u8 | notBefore u32 | notAfter u32 | H u8 | hardware id H.
 * @throws RangeError for an entry no decoder would produce (misuse).
 */
export function encodeKeyEntries(keys: readonly { publicKey: Uint8Array; roles: number; scope: KeyScope }[]): Uint8Array {
  const ids = keys.map((k) => (k.scope.hardwareId === undefined ? new Uint8Array(0) : utf8Encode(k.scope.hardwareId)));
  let n = 0;
  for (const id of ids) n += ENTRY_FIXED_BYTES + id.length;
  const out = new Uint8Array(n);
  let at = 0;
  keys.forEach((k, i) => {
    if (!(k.publicKey instanceof Uint8Array) || k.publicKey.length !== 65) throw new RangeError("publicKey must be a 65-byte uncompressed point");
    if (!Number.isInteger(k.roles) || k.roles < 1 || (k.roles & ~ALL_ROLES) !== 0) throw new RangeError("roles must be KeyRole bits");
    if (ids[i].length > MAX_SCOPE_HARDWARE_ID) throw new RangeError(`hardwareId longer than ${MAX_SCOPE_HARDWARE_ID}`);
    out.set(k.publicKey, at);
    out[at + 65] = k.roles;
    wrU32(out, at + 66, k.scope.notBefore);
    wrU32(out, at + 70, k.scope.notAfter);
    out[at + 74] = ids[i].length;
    out.set(ids[i], at + ENTRY_FIXED_BYTES);
    at += ENTRY_FIXED_BYTES + ids[i].length;
  });
  return out;
}

/**
 * The compact form a device persists (≤ MAX_KEYSET_STATE_BYTES = 1127):
 *   format u8 = 1 | sequence u32 | epoch u32 | issuedAt u32 | K u8 | K entries | R u8 | R × 8 retired id prefixes
 * @throws RangeError for a key set no decoder would produce (misuse).
 */
export function encodeKeySetState(ks: KeySet): Uint8Array {
  if (ks.keys.length < 1 || ks.keys.length > MAX_KEYSET_KEYS) throw new RangeError(`1..${MAX_KEYSET_KEYS} keys`);
  if (ks.retired.length > MAX_RETIRED) throw new RangeError(`at most ${MAX_RETIRED} retired ids`);
  const entries = encodeKeyEntries(ks.keys);
  for (const r of ks.retired) if (!(r instanceof Uint8Array) || r.length !== RETIRED_PREFIX_BYTES) throw new RangeError(`retired ids are ${RETIRED_PREFIX_BYTES}-byte prefixes`);
  const out = new Uint8Array(1 + 12 + 1 + entries.length + 1 + RETIRED_PREFIX_BYTES * ks.retired.length);
  out[0] = KEYSET_STATE_FORMAT;
  wrU32(out, 1, ks.sequence);
  wrU32(out, 5, ks.epoch);
  wrU32(out, 9, ks.issuedAt);
  out[13] = ks.keys.length;
  out.set(entries, 14);
  let at = 14 + entries.length;
  out[at++] = ks.retired.length;
  for (const r of ks.retired) {
    out.set(r, at);
    at += RETIRED_PREFIX_BYTES;
  }
  return out;
}

/**
 * Inverse of `encodeKeySetState`, as strict as the signed decoder.
 * @throws OtaError KEYSET_MALFORMED for any defect.
 */
export function decodeKeySetState(bytes: Uint8Array, digest: Digest): KeySet {
  const fail = (m: string) => new OtaError(Reason.KEYSET_MALFORMED, `stored key set: ${m}`);
  if (!(bytes instanceof Uint8Array)) throw new TypeError("key set state must be a Uint8Array");
  if (bytes.length > MAX_KEYSET_STATE_BYTES || bytes.length < 15 || bytes[0] !== KEYSET_STATE_FORMAT) throw fail("format or length");
  const sequence = rdU32(bytes, 1);
  const epoch = rdU32(bytes, 5);
  const issuedAt = rdU32(bytes, 9);
  const k = bytes[13];
  if (sequence === 0 || k < 1 || k > MAX_KEYSET_KEYS) throw fail("sequence 0 or key count");
  const { entries, at } = readEntries(bytes, 14, bytes.length, k, digest, fail);
  if (at >= bytes.length) throw fail("truncated");
  const r = bytes[at];
  if (r > MAX_RETIRED || bytes.length !== at + 1 + RETIRED_PREFIX_BYTES * r) throw fail("retired ids length");
  const retired = readRetired(bytes.subarray(at + 1), RETIRED_PREFIX_BYTES, entries, fail);
  return Object.freeze({ sequence, epoch, issuedAt, keys: Object.freeze(entries), retired: Object.freeze(retired) });
}

function roleName(role: KeyRoleBit): string {
  return role === KeyRole.MANIFEST ? "manifest" : role === KeyRole.REVOCATION ? "revocation" : "time";
}

/**
 * Who may sign what on this device.
 *
 * - No root key (`roots` empty): the single-keyring model of earlier firmware:
 *   every keyring key signs manifests and revocation records; nothing signs time.
 * - Root keys but no key set yet (a fleet upgrading): the keyring still signs
 *   manifests and revocation records, so releases made before the key set keep
 *   working; nothing signs time.
 * - A key set held: only its keys, each for its roles and scope. A retired key
 *   is KEY_RETIRED; a keyring key the set does not name is KEY_LEGACY_SIGNER
 *   (to keep it for a while, list it in the key set).
 *
 * Image signatures are not decided here: the keyring holds MCUboot's image key
 * and `verifySlot` checks images against it, as the bootloader does.
 */
export class DeviceTrust implements SignerLookup {
  constructor(
    readonly keyring: Keyring,
    readonly roots: Keyring,
    private held: KeySet | undefined,
  ) {}

  /** The key set in force, if any. */
  get keySet(): KeySet | undefined {
    return this.held;
  }

  /** The newest epoch the root has authorised (0 without a key set). */
  get epoch(): number {
    return this.held?.epoch ?? 0;
  }

  /** Put `keySet` in force (after `acceptKeySet` and persisting it). */
  install(keySet: KeySet): void {
    this.held = keySet;
  }

  signer(keyId: Uint8Array, role: KeyRoleBit): SignerResult {
    const ks = this.held;
    if (this.roots.size === 0 || ks === undefined) {
      if (role === KeyRole.TIME) return { ok: false, message: "no key set: nothing may sign time" };
      return this.keyring.signer(keyId, role);
    }
    for (const e of ks.keys) {
      if (!equalBytes(e.keyId, keyId)) continue;
      if ((e.roles & role) === 0) return { ok: false, reason: Reason.KEY_WRONG_ROLE, message: `key set ${ks.sequence} does not let this key sign ${roleName(role)}s` };
      const key: TrustedKey = { keyId: e.keyId, publicKey: e.publicKey };
      return { ok: true, key, scope: e.scope };
    }
    for (const r of ks.retired) if (equalBytes(r, keyId.subarray(0, RETIRED_PREFIX_BYTES))) return { ok: false, reason: Reason.KEY_RETIRED, message: `key retired by key set ${ks.sequence}` };
    if (this.keyring.find(keyId)) return { ok: false, reason: Reason.KEY_LEGACY_SIGNER, message: `a device-keyring key that key set ${ks.sequence} does not name` };
    return { ok: false, message: `not in key set ${ks.sequence}` };
  }
}
