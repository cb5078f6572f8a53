/**
 * Signed revocation records on the host: the encoder (the decoder it must
 * agree with is src/update/revocation.ts), `xs-ota revoke`'s engine without
 * the files, the newest record per hardware id (what `xs-ota serve`
 * publishes; the directory reader is tools/serve/revocations.ts), and the
 * readable dump `xs-ota inspect` prints. Byte layout: docs/formats.md
 * ("Revocation record"). The record and envelope writers are the manifest's
 * (./encode), with the revocation magics. Portable (noble only), so XS test
 * entries and the simulator's cloud can make records too.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { OtaError, reasonName } from "../../src/errors";
import { formatVersion } from "../../src/image/format";
import {
  decodeRevocation,
  decodeRevocationEnvelope,
  MAX_BLOCKED,
  MAX_REVOCATION_BYTES,
  REVOCATION_ENVELOPE_MAGIC,
  REVOCATION_FORMAT,
  REVOCATION_MAGIC,
  RevocationField,
  type RevocationRecord,
} from "../../src/update/revocation";
import { toHex, utf8Decode, utf8Encode } from "../../src/util/bytes";
import type { SigningKey } from "../keys/signer";
import { encodeEnvelope, encodeRecords, versionBytes, type ManifestRecord } from "./encode";

export class RevokeError extends Error {
  constructor(message: string) {
    super(message);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(RevokeError.prototype, "name", { value: "RevokeError", writable: true, configurable: true });

/** A u32 as 4 little-endian bytes (the records' integer encoding). @throws RangeError when it does not fit. */
export function u32(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${n} does not fit a u32`);
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}

/** The records of a revocation, in ascending type order (what `encodeRevocation` writes). */
export function revocationRecords(r: RevocationRecord, note?: string): ManifestRecord[] {
  const out: ManifestRecord[] = [];
  const add = (type: number, value: Uint8Array) => out.push({ type, value });
  if (note !== undefined) add(RevocationField.NOTE, utf8Encode(note));
  add(RevocationField.HARDWARE_ID, utf8Encode(r.hardwareId));
  add(RevocationField.SEQUENCE, u32(r.sequence));
  add(RevocationField.ISSUED_AT, u32(r.issuedAt));
  add(RevocationField.MIN_VERSION, versionBytes(r.minVersion));
  add(RevocationField.MIN_SECURITY_COUNTER, u32(r.minSecurityCounter));
  const list = new Uint8Array(32 * r.blocked.length);
  r.blocked.forEach((h, i) => list.set(h, 32 * i));
  add(RevocationField.BLOCKED, list);
  if (r.epoch) add(RevocationField.EPOCH, u32(r.epoch));
  return out;
}

/** Record bytes from raw records (tests use it to build malformed records). */
export function encodeRevocationRecords(records: readonly ManifestRecord[], header: { magic?: readonly number[]; format?: number } = {}): Uint8Array {
  return encodeRecords(records, { magic: header.magic ?? REVOCATION_MAGIC, format: header.format ?? REVOCATION_FORMAT });
}

/** The exact revocation bytes that get signed. Does not validate: the decoder is the judge. */
export function encodeRevocation(r: RevocationRecord, note?: string): Uint8Array {
  return encodeRevocationRecords(revocationRecords(r, note));
}

/** Sign record bytes: the "XSRV" envelope holding them, the key id and a DER signature over their SHA-256. */
export function signRevocationBytes(record: Uint8Array, key: SigningKey, header: { magic?: readonly number[] } = {}): Uint8Array {
  return encodeEnvelope(record, key.keyId, key.sign(sha256(record)), { magic: header.magic ?? REVOCATION_ENVELOPE_MAGIC });
}

/** Encode and sign a revocation record. */
export function signRevocation(r: RevocationRecord, key: SigningKey, note?: string): Uint8Array {
  return signRevocationBytes(encodeRevocation(r, note), key);
}

export interface RevokeOptions {
  key: SigningKey;
  hardwareId: string;
  sequence: number;
  /** The sequence epoch (default 0); a device takes it once it holds a key set of that epoch. */
  epoch?: number;
  issuedAt: number;
  minVersion: RevocationRecord["minVersion"];
  minSecurityCounter: number;
  blocked: Uint8Array[];
  note?: string;
}

export interface RevokeResult {
  readonly envelope: Uint8Array;
  readonly record: RevocationRecord;
  /** SHA-256 of the signed record bytes. */
  readonly id: Uint8Array;
}

/**
 * Build a revocation record, check it with the device's decoder, and sign it.
 * @throws RevokeError when a device would refuse it.
 */
export function makeRevocation(o: RevokeOptions): RevokeResult {
  if (o.blocked.length > MAX_BLOCKED) throw new RevokeError(`at most ${MAX_BLOCKED} --block entries, got ${o.blocked.length}`);
  const seen = new Set<string>();
  const blocked: Uint8Array[] = [];
  for (const h of o.blocked) {
    const k = toHex(h);
    if (!seen.has(k)) blocked.push(h); // naming the same image twice is not an error on the command line
    seen.add(k);
  }
  let bytes: Uint8Array;
  try {
    bytes = encodeRevocation(
      { hardwareId: o.hardwareId, sequence: o.sequence, ...(o.epoch ? { epoch: o.epoch } : {}), issuedAt: o.issuedAt, minVersion: o.minVersion, minSecurityCounter: o.minSecurityCounter, blocked },
      o.note,
    );
  } catch (e) {
    throw new RevokeError(`cannot encode the revocation record: ${(e as Error).message}`);
  }
  if (bytes.length > MAX_REVOCATION_BYTES) throw new RevokeError(`revocation record of ${bytes.length} bytes exceeds ${MAX_REVOCATION_BYTES}`);
  let record: RevocationRecord;
  try {
    record = decodeRevocation(bytes);
  } catch (e) {
    throw new RevokeError(`a device would refuse this revocation record: ${(e as Error).message}`);
  }
  const envelope = signRevocationBytes(bytes, o.key);
  return Object.freeze({ envelope, record, id: sha256(bytes) });
}

// ------------------------------------------------------------ the records of a release directory

export interface RevocationEntry {
  readonly path: string;
  /** The envelope, published to devices as-is. */
  readonly bytes: Uint8Array;
  readonly record: RevocationRecord;
}

/** True when `bytes` start with the revocation envelope magic "XSRV". */
export function isRevocationEnvelope(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && REVOCATION_ENVELOPE_MAGIC.every((x, i) => bytes[i] === x);
}

/** True when `bytes` start with the bare record magic "XSRR". */
export function isBareRevocation(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && REVOCATION_MAGIC.every((x, i) => bytes[i] === x);
}

/** (epoch, sequence) of a record as one comparable number (epoch × 2^32 + sequence: exact below 2^53). */
export function revocationOrder(r: { readonly epoch?: number; readonly sequence: number }): number {
  return (r.epoch ?? 0) * 0x100000000 + r.sequence;
}

/**
 * The record that wins for each hardware id: the greatest (epoch, sequence).
 * Two different files with the same hardware id, epoch and sequence are a
 * signer's mistake: the first in path order wins and `onConflict` is told.
 */
export function newestRevocations(entries: readonly RevocationEntry[], onConflict?: (kept: RevocationEntry, dropped: RevocationEntry) => void): Map<string, RevocationEntry> {
  const best = new Map<string, RevocationEntry>();
  for (const e of entries) {
    const cur = best.get(e.record.hardwareId);
    if (!cur || revocationOrder(e.record) > revocationOrder(cur.record)) best.set(e.record.hardwareId, e);
    else if (revocationOrder(e.record) === revocationOrder(cur.record) && !equal(e.bytes, cur.bytes)) onConflict?.(cur, e);
  }
  return best;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// ------------------------------------------------------------ inspect

function refused(e: unknown): string {
  return e instanceof OtaError ? `${reasonName(e.code)} (${e.code}) ${e.message}` : String(e);
}

/** The non-critical NOTE record, if any. */
function noteOf(record: Uint8Array): string | undefined {
  for (let off = REVOCATION_MAGIC.length + 1; off + 3 <= record.length; ) {
    const type = record[off];
    const len = record[off + 1] | (record[off + 2] << 8);
    if (type === RevocationField.NOTE) return utf8Decode(record.subarray(off + 3, off + 3 + len));
    off += 3 + len;
  }
  return undefined;
}

/** Describe record bytes (decoded with the device's strict decoder). */
export function describeRevocationBytes(record: Uint8Array, lines: string[]): void {
  let r: RevocationRecord;
  try {
    r = decodeRevocation(record);
  } catch (e) {
    lines.push(`  record: REFUSED by the device decoder: ${refused(e)}`);
    return;
  }
  lines.push(`  revocation id:  ${toHex(sha256(record))} (SHA-256 of the ${record.length} signed bytes)`);
  lines.push(`  hardware id:    ${r.hardwareId}`);
  lines.push(`  sequence:       ${r.sequence}${r.epoch ? ` (epoch ${r.epoch})` : ""}`);
  lines.push(`  issued at:      ${r.issuedAt} (${new Date(r.issuedAt * 1000).toISOString()})`);
  lines.push(`  min version:    ${formatVersion(r.minVersion)}`);
  lines.push(`  min sec count:  ${r.minSecurityCounter}`);
  lines.push(`  blocked images: ${r.blocked.length}${r.blocked.length ? "" : " (none)"}`);
  for (const h of r.blocked) lines.push(`    whole-image SHA-256 ${toHex(h)}`);
  const note = noteOf(record);
  if (note !== undefined) lines.push(`  note:           ${note}`);
}

/** A multi-line description of a revocation envelope. */
export function describeRevocationEnvelope(bytes: Uint8Array): string {
  let env;
  try {
    env = decodeRevocationEnvelope(bytes);
  } catch (e) {
    return `signed revocation record: REFUSED: ${refused(e)}`;
  }
  const lines = [`signed revocation record (envelope v${bytes[4]}, ${bytes.length} bytes)`];
  lines.push(`  key id:         ${toHex(env.keyId)}`);
  lines.push(`  signature:      ${env.signature.length} bytes DER, not checked here (devices check it against their keyring)`);
  describeRevocationBytes(env.manifest, lines);
  return lines.join("\n");
}
