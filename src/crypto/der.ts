/**
 * Strict decoding of ECDSA P-256 signatures and public keys (internal to
 * src/crypto). Every malformed input yields `undefined`; callers turn that
 * into a reason code. Nothing here throws for bad bytes.
 *
 * Signatures: ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }` (what MCUboot's
 * imgtool and openssl write), or raw `r || s` (64 bytes, big-endian).
 * Public keys: SEC1 uncompressed points (0x04 || X || Y, 65 bytes) or the DER
 * SubjectPublicKeyInfo that wraps one (91 bytes, as imgtool embeds keys in
 * MCUboot and hashes them for the KEYHASH TLV).
 */

import { concat } from "../util/bytes";
import { P256_DOMAIN } from "./p256";

/** The P-256 group order n. */
export const P256_N = P256_DOMAIN.n;
/** The P-256 field prime p. */
export const P256_P = P256_DOMAIN.p;
const P256_B = P256_DOMAIN.b;

/**
 * Longest DER signature accepted: 2 + 2 × (2 + 33). Older imgtool versions
 * padded signatures with zero bytes to exactly this length (`pad_sig`).
 */
export const MAX_DER_SIGNATURE = 72;

/** The fixed DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point. */
export const SPKI_P256_PREFIX = Object.freeze([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
  0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
]);
export const SPKI_P256_LENGTH = SPKI_P256_PREFIX.length + 65;

export interface SignatureScalars {
  readonly r: bigint;
  readonly s: bigint;
}

function toBigInt(b: Uint8Array, start: number, end: number): bigint {
  let v = 0n;
  for (let i = start; i < end; i++) v = (v << 8n) | BigInt(b[i]);
  return v;
}

/** Read one minimal, positive DER INTEGER of at most 33 bytes at `at`; undefined when malformed. */
function derInteger(b: Uint8Array, at: number, end: number): { value: bigint; next: number } | undefined {
  if (at + 2 > end || b[at] !== 0x02) return undefined;
  const len = b[at + 1];
  // Short-form lengths only (a P-256 integer never needs the long form), 1..33 bytes.
  if (len < 1 || len > 33 || at + 2 + len > end) return undefined;
  const first = b[at + 2];
  if (first & 0x80) return undefined; // negative
  if (first === 0 && len > 1 && (b[at + 3] & 0x80) === 0) return undefined; // non-minimal leading zero
  return { value: toBigInt(b, at + 2, at + 2 + len), next: at + 2 + len };
}

function inRange(v: SignatureScalars): boolean {
  return v.r >= 1n && v.r < P256_N && v.s >= 1n && v.s < P256_N;
}

/**
 * Decode a DER ECDSA signature. Strict DER, except that zero bytes after the
 * SEQUENCE are tolerated up to 72 bytes in all (legacy imgtool padding, which
 * MCUboot also accepts). r and s must be in [1, n-1].
 */
export function decodeDerSignature(sig: Uint8Array): SignatureScalars | undefined {
  if (sig.length < 8 || sig.length > MAX_DER_SIGNATURE) return undefined;
  if (sig[0] !== 0x30) return undefined;
  const bodyLen = sig[1];
  if (bodyLen & 0x80) return undefined; // long form never needed for <= 70 bytes
  const end = 2 + bodyLen;
  if (end > sig.length) return undefined;
  for (let i = end; i < sig.length; i++) if (sig[i] !== 0) return undefined;
  const r = derInteger(sig, 2, end);
  if (!r) return undefined;
  const s = derInteger(sig, r.next, end);
  if (!s || s.next !== end) return undefined;
  const v = { r: r.value, s: s.value };
  return inRange(v) ? v : undefined;
}

/** Decode a raw `r || s` signature (64 bytes); r and s must be in [1, n-1]. */
export function decodeRawSignature(sig: Uint8Array): SignatureScalars | undefined {
  if (sig.length !== 64) return undefined;
  const v = { r: toBigInt(sig, 0, 32), s: toBigInt(sig, 32, 64) };
  return inRange(v) ? v : undefined;
}

/** `r || s`, 64 bytes. */
export function rawSignature(v: SignatureScalars): Uint8Array {
  const out = new Uint8Array(64);
  let r = v.r;
  let s = v.s;
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(r & 0xffn);
    out[32 + i] = Number(s & 0xffn);
    r >>= 8n;
    s >>= 8n;
  }
  return out;
}

/**
 * A validated SEC1 uncompressed point (65 bytes) from SEC1 or SPKI bytes, or
 * undefined: wrong length or prefix, a coordinate >= p, a point not on the
 * curve. (The point at infinity has no 65-byte encoding, so it never passes;
 * P-256 has cofactor 1, so a point on the curve is in the prime-order group.)
 */
export function decodePublicKey(key: Uint8Array): Uint8Array | undefined {
  let point: Uint8Array;
  if (key.length === 65) point = key;
  else if (key.length === SPKI_P256_LENGTH) {
    for (let i = 0; i < SPKI_P256_PREFIX.length; i++) if (key[i] !== SPKI_P256_PREFIX[i]) return undefined;
    point = key.subarray(SPKI_P256_PREFIX.length);
  } else return undefined;
  if (point[0] !== 0x04) return undefined;
  const x = toBigInt(point, 1, 33);
  const y = toBigInt(point, 33, 65);
  if (x >= P256_P || y >= P256_P) return undefined;
  const p = P256_P;
  // y^2 = x^3 - 3x + b (mod p)
  const lhs = (y * y) % p;
  const rhs = (((((x * x) % p) * x) % p) - 3n * x + P256_B + 3n * p) % p;
  if (lhs !== rhs) return undefined;
  return Uint8Array.from(point);
}

/** The DER SubjectPublicKeyInfo of a (validated) SEC1 uncompressed point. */
export function spkiOf(point: Uint8Array): Uint8Array {
  const out = new Uint8Array(SPKI_P256_LENGTH);
  out.set(SPKI_P256_PREFIX, 0);
  out.set(point, SPKI_P256_PREFIX.length);
  return out;
}

// ---------------------------------------------------------------------------
// DER encoding and a bounded TLV reader (the device's CSR, X.509 certificates).
// Only what PKCS#10 and X.509 v3 with P-256 need: definite lengths, at most
// 0xFFFF content bytes (a device never builds or reads a larger structure).

/** Largest DER content this module encodes or reads (two length bytes). */
export const DER_MAX_CONTENT = 0xffff;

/** DER tags used by the device's certificate code. */
export const DerTag = Object.freeze({
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
});

/**
 * One TLV: `tag`, the definite length in minimal form, `content`.
 * @throws RangeError when `content` is longer than DER_MAX_CONTENT or `tag` is not one byte.
 */
export function derTlv(tag: number, content: Uint8Array): Uint8Array {
  if (!(Number.isInteger(tag) && tag >= 0 && tag <= 0xff)) throw new RangeError(`derTlv: tag must be one byte, got ${tag}`);
  const n = content.length;
  if (n > DER_MAX_CONTENT) throw new RangeError(`derTlv: content of ${n} bytes > ${DER_MAX_CONTENT}`);
  const head = n < 0x80 ? [tag, n] : n < 0x100 ? [tag, 0x81, n] : [tag, 0x82, n >> 8, n & 0xff];
  const out = new Uint8Array(head.length + n);
  out.set(head, 0);
  out.set(content, head.length);
  return out;
}

/** SEQUENCE of the parts. */
export function derSequence(...parts: Uint8Array[]): Uint8Array {
  return derTlv(DerTag.SEQUENCE, concat(...parts));
}

/** A non-negative INTEGER from big-endian magnitude bytes (leading zeros stripped, a 0x00 added before a high bit). */
export function derUnsigned(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  if (m.length === 0) return derTlv(DerTag.INTEGER, Uint8Array.of(0));
  if (m[0] & 0x80) {
    const c = new Uint8Array(m.length + 1);
    c.set(m, 1);
    return derTlv(DerTag.INTEGER, c);
  }
  return derTlv(DerTag.INTEGER, m);
}

/** A BIT STRING with no unused bits. */
export function derBitString(bytes: Uint8Array): Uint8Array {
  const c = new Uint8Array(bytes.length + 1);
  c.set(bytes, 1);
  return derTlv(DerTag.BIT_STRING, c);
}

/** A DER ECDSA signature `SEQUENCE { INTEGER r, INTEGER s }` from raw `r || s` (64 bytes). */
export function derSignatureOf(raw: Uint8Array): Uint8Array {
  if (raw.length !== 64) throw new RangeError(`derSignatureOf: raw signature must be 64 bytes, got ${raw.length}`);
  return derSequence(derUnsigned(raw.subarray(0, 32)), derUnsigned(raw.subarray(32, 64)));
}

/** One TLV as read: its tag, where its content starts and ends, and where the TLV ends (= content end). */
export interface DerElement {
  readonly tag: number;
  /** Offset of the TLV's first byte. */
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/**
 * Read the TLV at `at` (strict DER lengths: definite, minimal, at most two
 * length bytes), within `[at, limit)`; undefined when malformed or overrunning.
 */
export function derRead(b: Uint8Array, at: number, limit: number = b.length): DerElement | undefined {
  if (at + 2 > limit) return undefined;
  const tag = b[at];
  if ((tag & 0x1f) === 0x1f) return undefined; // multi-byte tags are never needed here
  let len = b[at + 1];
  let contentStart = at + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count < 1 || count > 2 || at + 2 + count > limit) return undefined;
    len = 0;
    for (let i = 0; i < count; i++) len = (len << 8) | b[at + 2 + i];
    // Minimal form: the long form only for >= 128, no leading zero byte.
    if (len < 0x80 || (count === 2 && len < 0x100)) return undefined;
    contentStart += count;
  }
  const end = contentStart + len;
  if (end > limit) return undefined;
  return { tag, start: at, contentStart, end };
}

/** The children of a constructed element (each a TLV that ends inside it), or undefined when they do not tile it exactly. At most `max` children. */
export function derChildren(b: Uint8Array, parent: DerElement, max = 16): DerElement[] | undefined {
  const out: DerElement[] = [];
  let at = parent.contentStart;
  while (at < parent.end) {
    if (out.length >= max) return undefined;
    const e = derRead(b, at, parent.end);
    if (!e) return undefined;
    out.push(e);
    at = e.end;
  }
  return out;
}
