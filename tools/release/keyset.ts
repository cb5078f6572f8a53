/**
 * Key sets and time statements on the host: the encoders (the decoders they
 * must agree with are src/update/keyset.ts and src/update/time-statement.ts),
 * `xs-ota keyset make`'s engine without the files, the newest key set of a
 * release directory (what `xs-ota serve` publishes), the check `xs-ota release
 * --keyset` makes of its batch key, and the readable dump `xs-ota keyset
 * inspect` prints. Byte layouts: docs/formats.md ("Key set", "Time
 * statement"). Portable (noble only), so XS entries and the simulator's cloud
 * can make them too.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { OtaError, Reason, reasonName } from "../../src/errors";
import { softwareDigest } from "../../src/crypto/sha256";
import { checkScope, KeyRole, type KeyScope } from "../../src/crypto/keyring";
import {
  decodeKeySet,
  decodeKeySetEnvelope,
  encodeKeyEntries,
  KEYSET_ENVELOPE_MAGIC,
  KEYSET_FORMAT,
  KEYSET_MAGIC,
  KeySetField,
  MAX_KEYSET_BYTES,
  MAX_KEYSET_KEYS,
  MAX_RETIRED,
  MAX_SEQUENCE_STEP,
  RETIRED_PREFIX_BYTES,
  type KeySet,
} from "../../src/update/keyset";
import { TIME_ENVELOPE_MAGIC, TIME_FORMAT, TIME_MAGIC, TimeField } from "../../src/update/time-statement";
import { toHex, utf8Decode, utf8Encode } from "../../src/util/bytes";
import type { SigningKey } from "../keys/signer";
import { encodeEnvelope, encodeRecords, type ManifestRecord } from "./encode";
import { u32 } from "./revoke";

export class KeySetError extends Error {
  constructor(message: string) {
    super(message);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(KeySetError.prototype, "name", { value: "KeySetError", writable: true, configurable: true });

/** One key as the host describes it: the public point, its roles, its scope. */
export interface KeySetKey {
  readonly publicKey: Uint8Array;
  /** KeyRole bits. */
  readonly roles: number;
  readonly scope: KeyScope;
}

/** What a key set says, as the host writes it (retired ids whole: 32 bytes each). */
export interface KeySetSpec {
  readonly sequence: number;
  readonly epoch: number;
  readonly issuedAt: number;
  readonly keys: readonly KeySetKey[];
  readonly retired?: readonly Uint8Array[];
}

/** The records of a key set, in ascending type order. */
export function keySetRecords(ks: KeySetSpec, note?: string): ManifestRecord[] {
  const out: ManifestRecord[] = [];
  const add = (type: number, value: Uint8Array) => out.push({ type, value });
  if (note !== undefined) add(KeySetField.NOTE, utf8Encode(note));
  add(KeySetField.SEQUENCE, u32(ks.sequence));
  add(KeySetField.EPOCH, u32(ks.epoch));
  add(KeySetField.ISSUED_AT, u32(ks.issuedAt));
  add(KeySetField.KEYS, encodeKeyEntries(ks.keys));
  const retired = ks.retired ?? [];
  if (retired.length > 0) {
    const list = new Uint8Array(32 * retired.length);
    retired.forEach((id, i) => list.set(id, 32 * i));
    add(KeySetField.RETIRED, list);
  }
  return out;
}

/** The exact key set bytes that get signed. Does not validate: the decoder is the judge. */
export function encodeKeySet(ks: KeySetSpec, note?: string, header: { magic?: readonly number[]; format?: number } = {}): Uint8Array {
  return encodeRecords(keySetRecords(ks, note), { magic: header.magic ?? KEYSET_MAGIC, format: header.format ?? KEYSET_FORMAT });
}

/** Sign key set bytes with a root key: the "XSKV" envelope. */
export function signKeySetBytes(record: Uint8Array, root: SigningKey): Uint8Array {
  return encodeEnvelope(record, root.keyId, root.sign(sha256(record)), { magic: KEYSET_ENVELOPE_MAGIC });
}

/** Encode and sign a key set (no checks: tests build refused ones with it; `makeKeySet` checks). */
export function signKeySet(ks: KeySetSpec, root: SigningKey, note?: string): Uint8Array {
  return signKeySetBytes(encodeKeySet(ks, note), root);
}

/** The exact time statement bytes ("XSTS", TIME). */
export function encodeTimeStatement(time: number): Uint8Array {
  return encodeRecords([{ type: TimeField.TIME, value: u32(time) }], { magic: TIME_MAGIC, format: TIME_FORMAT });
}

/** A signed time statement ("XSTV" envelope) as serve attaches it to acks. */
export function signTimeStatement(time: number, key: SigningKey): Uint8Array {
  const record = encodeTimeStatement(time);
  return encodeEnvelope(record, key.keyId, key.sign(sha256(record)), { magic: TIME_ENVELOPE_MAGIC });
}

export interface MakeKeySetResult {
  readonly envelope: Uint8Array;
  readonly keySet: KeySet;
  /** SHA-256 of the signed record bytes. */
  readonly id: Uint8Array;
}

/**
 * Build a key set, check it with the device's decoder (and, given the key
 * set it replaces, with the device's acceptance rule), and sign it with the root.
 * @throws KeySetError when a device would refuse it.
 */
export function makeKeySet(spec: KeySetSpec, root: SigningKey, o: { note?: string; previous?: KeySet } = {}): MakeKeySetResult {
  if (spec.keys.length === 0 || spec.keys.length > MAX_KEYSET_KEYS) throw new KeySetError(`a key set names 1..${MAX_KEYSET_KEYS} keys, got ${spec.keys.length}`);
  if ((spec.retired?.length ?? 0) > MAX_RETIRED) throw new KeySetError(`at most ${MAX_RETIRED} retired keys, got ${spec.retired!.length}`);
  let bytes: Uint8Array;
  try {
    bytes = encodeKeySet(spec, o.note);
  } catch (e) {
    throw new KeySetError(`cannot encode the key set: ${(e as Error).message}`);
  }
  if (bytes.length > MAX_KEYSET_BYTES) throw new KeySetError(`key set of ${bytes.length} bytes exceeds ${MAX_KEYSET_BYTES}`);
  let keySet: KeySet;
  try {
    keySet = decodeKeySet(bytes, softwareDigest);
  } catch (e) {
    throw new KeySetError(`a device would refuse this key set: ${refused(e)}`);
  }
  const prev = o.previous;
  if (prev) {
    if (keySet.epoch === prev.epoch && keySet.sequence <= prev.sequence) throw new KeySetError(`sequence ${keySet.sequence} is not above the previous key set's ${prev.sequence}`);
    if (keySet.epoch === prev.epoch && keySet.sequence - prev.sequence > MAX_SEQUENCE_STEP) throw new KeySetError(`sequence ${keySet.sequence} is more than ${MAX_SEQUENCE_STEP} past ${prev.sequence}: devices would refuse it (SEQUENCE_JUMP)`);
    if (keySet.epoch < prev.epoch || keySet.epoch > prev.epoch + 1) throw new KeySetError(`epoch ${keySet.epoch} after ${prev.epoch}: a key set keeps the epoch or raises it by one`);
    if (keySet.epoch === prev.epoch + 1 && keySet.sequence > MAX_SEQUENCE_STEP) throw new KeySetError(`a new epoch starts at a sequence of at most ${MAX_SEQUENCE_STEP}`);
  }
  return Object.freeze({ envelope: signKeySetBytes(bytes, root), keySet, id: sha256(bytes) });
}

/**
 * May `keyId` sign a release for `hardwareId` issued at `issuedAt` under `ks`?
 * `xs-ota release --keyset` refuses to write a manifest a device holding `ks` would refuse.
 * @returns Reason.OK, or the reason a device would give.
 */
export function checkBatchKey(ks: KeySet, keyId: Uint8Array, hardwareId: string, issuedAt: number, role: number = KeyRole.MANIFEST): number {
  for (const e of ks.keys) {
    if (toHex(e.keyId) !== toHex(keyId)) continue;
    if ((e.roles & role) === 0) return Reason.KEY_WRONG_ROLE;
    return checkScope(e.scope, hardwareId, issuedAt);
  }
  for (const r of ks.retired) if (toHex(r) === toHex(keyId.subarray(0, RETIRED_PREFIX_BYTES))) return Reason.KEY_RETIRED;
  return Reason.MANIFEST_UNKNOWN_KEY;
}

// ------------------------------------------------------------ a release directory's key sets

export interface KeySetEntryFile {
  readonly path: string;
  /** The envelope, published to devices as-is. */
  readonly bytes: Uint8Array;
  readonly keySet: KeySet;
}

/** (epoch, sequence) as one comparable number. */
export function keySetOrder(ks: { readonly epoch: number; readonly sequence: number }): number {
  return ks.epoch * 0x100000000 + ks.sequence;
}

/** The key set with the greatest (epoch, sequence) of `entries`, or undefined. */
export function newestKeySet(entries: readonly KeySetEntryFile[]): KeySetEntryFile | undefined {
  let best: KeySetEntryFile | undefined;
  for (const e of entries) if (!best || keySetOrder(e.keySet) > keySetOrder(best.keySet)) best = e;
  return best;
}

/** True when `bytes` start with the key set envelope magic "XSKV". */
export function isKeySetEnvelope(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && KEYSET_ENVELOPE_MAGIC.every((x, i) => bytes[i] === x);
}

// ------------------------------------------------------------ inspect

function refused(e: unknown): string {
  return e instanceof OtaError ? `${reasonName(e.code)} (${e.code}) ${e.message}` : String(e);
}

const ROLE_NAMES: readonly [number, string][] = [
  [KeyRole.MANIFEST, "manifest"],
  [KeyRole.REVOCATION, "revocation"],
  [KeyRole.TIME, "time"],
];

/** "manifest,time" for role bits. */
export function roleNames(roles: number): string {
  return ROLE_NAMES.filter(([bit]) => roles & bit)
    .map(([, n]) => n)
    .join(",");
}

/** Role bits from "manifest,revocation,time" (any subset). @throws KeySetError for an unknown name. */
export function parseRoles(s: string): number {
  let roles = 0;
  for (const part of s.split(",")) {
    const hit = ROLE_NAMES.find(([, n]) => n === part.trim());
    if (!hit) throw new KeySetError(`unknown role "${part}" (manifest, revocation, time)`);
    roles |= hit[0];
  }
  return roles;
}

function iso(t: number): string {
  return new Date(t * 1000).toISOString().replace(".000Z", "Z");
}

function noteOf(record: Uint8Array): string | undefined {
  for (let off = KEYSET_MAGIC.length + 1; off + 3 <= record.length; ) {
    const type = record[off];
    const len = record[off + 1] | (record[off + 2] << 8);
    if (type === KeySetField.NOTE) return utf8Decode(record.subarray(off + 3, off + 3 + len));
    off += 3 + len;
  }
  return undefined;
}

/** A multi-line description of a key set envelope (decoded with the device's strict decoder). */
export function describeKeySetEnvelope(bytes: Uint8Array): string {
  let env;
  try {
    env = decodeKeySetEnvelope(bytes);
  } catch (e) {
    return `signed key set: REFUSED: ${refused(e)}`;
  }
  const lines = [`signed key set (envelope v${bytes[4]}, ${bytes.length} bytes)`];
  lines.push(`  root key id:    ${toHex(env.keyId)}`);
  lines.push(`  signature:      ${env.signature.length} bytes DER, not checked here (devices check it against their root keys)`);
  let ks: KeySet;
  try {
    ks = decodeKeySet(env.manifest, softwareDigest);
  } catch (e) {
    lines.push(`  record: REFUSED by the device decoder: ${refused(e)}`);
    return lines.join("\n");
  }
  lines.push(`  key set id:     ${toHex(sha256(env.manifest))} (SHA-256 of the ${env.manifest.length} signed bytes)`);
  lines.push(`  sequence:       ${ks.sequence} (epoch ${ks.epoch})`);
  lines.push(`  issued at:      ${ks.issuedAt} (${iso(ks.issuedAt)})`);
  lines.push(`  keys:           ${ks.keys.length}`);
  for (const k of ks.keys) {
    lines.push(`    ${toHex(k.keyId)}`);
    lines.push(`      roles ${roleNames(k.roles)}; hardware ${k.scope.hardwareId ?? "any"}; valid ${iso(k.scope.notBefore)} .. ${iso(k.scope.notAfter)}`);
  }
  lines.push(`  retired:        ${ks.retired.length}${ks.retired.length ? "" : " (none)"}`);
  for (const r of ks.retired) lines.push(`    ${toHex(r)}… (key id prefix)`);
  const note = noteOf(env.manifest);
  if (note !== undefined) lines.push(`  note:           ${note}`);
  return lines.join("\n");
}
