/**
 * The device key and its PKCS#10 certificate signing request (RFC 2986),
 * made on the device: a P-256 key from the platform's Random, and a CSR whose
 * subject is `CN=<device id>`, signed with ECDSA-SHA256 by the device key
 * (@noble/curves' generic Weierstrass code through ./p256, which runs on XS).
 *
 * Byte layout (docs/formats.md, "Device identity"):
 * ```
 * CertificationRequest ::= SEQUENCE {
 *   certificationRequestInfo SEQUENCE {
 *     version INTEGER 0,
 *     subject Name (one RDN: commonName UTF8String <device id>),
 *     subjectPKInfo (id-ecPublicKey, prime256v1, uncompressed point),
 *     attributes [0] IMPLICIT SET OF {} (empty) },
 *   signatureAlgorithm SEQUENCE { ecdsa-with-SHA256 },   -- parameters absent (RFC 5758)
 *   signature BIT STRING (DER SEQUENCE { r, s }) }
 * ```
 * `parseCsr` is the strict decoder the fleet CA (`xs-ota ca sign`) uses: it
 * accepts exactly this shape, with the signature verified.
 */
import type { Random } from "../../hal/types";
import { OtaError, Reason } from "../errors";
import { utf8Decode, utf8Encode } from "../util/bytes";
import {
  derBitString,
  derChildren,
  derRead,
  derSequence,
  derSignatureOf,
  DerTag,
  derTlv,
  P256_N,
  spkiOf,
  SPKI_P256_LENGTH,
  type DerElement,
} from "./der";
import { verifyP256 } from "./ecdsa";
import { p256 } from "./p256";
import { sha256 } from "@noble/hashes/sha2.js";

/** A device key's private scalar is this long (big-endian). */
export const DEVICE_KEY_LENGTH = 32;
/** Random bytes drawn per key: 64 bits more than n, so the reduction's bias is below 2^-64 (FIPS 186-5 A.2.1). */
export const KEYGEN_RANDOM_BYTES = 40;
/** A CSR is never longer than this (a 32-byte device id gives ~240). */
export const MAX_CSR = 512;

/** DER OBJECT IDENTIFIERs (full TLVs). */
export const OID = Object.freeze({
  EC_PUBLIC_KEY: Object.freeze([0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
  PRIME256V1: Object.freeze([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
  ECDSA_SHA256: Object.freeze([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
  COMMON_NAME: Object.freeze([0x06, 0x03, 0x55, 0x04, 0x03]),
});

function bytesOf(a: readonly number[]): Uint8Array {
  return Uint8Array.from(a);
}

/** True when the whole TLV `e` of `b` is the bytes `want` (an OID, a fixed encoding). */
export function sameTlv(b: Uint8Array, e: DerElement, want: readonly number[]): boolean {
  if (e.end - e.start !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (b[e.start + i] !== want[i]) return false;
  return true;
}

/** True for an AlgorithmIdentifier `SEQUENCE { ecdsa-with-SHA256 }` (no parameters). */
export function isEcdsaSha256(b: Uint8Array, e: DerElement): boolean {
  const c = e.tag === DerTag.SEQUENCE ? derChildren(b, e, 1) : undefined;
  return !!c && c.length === 1 && sameTlv(b, c[0], OID.ECDSA_SHA256);
}

/** `SEQUENCE { ecdsa-with-SHA256 }`: the signature algorithm of CSRs and certificates here. */
export function ecdsaSha256Algorithm(): Uint8Array {
  return derSequence(bytesOf(OID.ECDSA_SHA256));
}

/** `Name` with one RDN, `commonName` as UTF8String. */
export function commonNameOf(cn: string): Uint8Array {
  const atv = derSequence(bytesOf(OID.COMMON_NAME), derTlv(DerTag.UTF8_STRING, utf8Encode(cn)));
  return derSequence(derTlv(DerTag.SET, atv));
}

/**
 * A new device key: a scalar in [1, n-1] from KEYGEN_RANDOM_BYTES of `random`
 * (`1 + (r mod (n-1))`, FIPS 186-5 A.2.1). The caller stores it; it is never printed.
 * @throws OtaError IDENTITY_NO_RANDOM when the random source fails.
 */
export function generateDeviceKey(random: Random): Uint8Array {
  const r = random.fill(new Uint8Array(KEYGEN_RANDOM_BYTES));
  if (!(r instanceof Uint8Array) || r.length !== KEYGEN_RANDOM_BYTES) throw new OtaError(Reason.IDENTITY_NO_RANDOM, "random source returned no bytes");
  let v = 0n;
  for (let i = 0; i < r.length; i++) v = (v << 8n) | BigInt(r[i]);
  r.fill(0);
  let k = 1n + (v % (P256_N - 1n));
  const out = new Uint8Array(DEVICE_KEY_LENGTH);
  for (let i = DEVICE_KEY_LENGTH - 1; i >= 0; i--) {
    out[i] = Number(k & 0xffn);
    k >>= 8n;
  }
  return out;
}

/** True for a 32-byte scalar in [1, n-1]. */
export function isDeviceKey(key: Uint8Array): boolean {
  if (!(key instanceof Uint8Array) || key.length !== DEVICE_KEY_LENGTH) return false;
  let v = 0n;
  for (let i = 0; i < key.length; i++) v = (v << 8n) | BigInt(key[i]);
  return v >= 1n && v < P256_N;
}

/** The device key's public point, SEC1 uncompressed (65 bytes). @throws RangeError for a bad key. */
export function devicePublicKey(key: Uint8Array): Uint8Array {
  if (!isDeviceKey(key)) throw new RangeError("device key must be a 32-byte scalar in [1, n-1]");
  return p256.getPublicKey(key, false);
}

/** ECDSA-SHA256 over `message` with the device key: DER signature. Deterministic (RFC 6979). */
export function signWithDeviceKey(key: Uint8Array, message: Uint8Array): Uint8Array {
  if (!isDeviceKey(key)) throw new RangeError("device key must be a 32-byte scalar in [1, n-1]");
  const raw = p256.sign(sha256(message), key, { prehash: false, lowS: true });
  return derSignatureOf(raw);
}

/**
 * The device's CSR (DER) for `commonName` (the device id), signed by `key`.
 * @throws RangeError for a bad key or an empty/over-long name (1..64 bytes).
 */
export function buildCsr(key: Uint8Array, commonName: string): Uint8Array {
  const cn = utf8Encode(commonName);
  if (cn.length < 1 || cn.length > 64) throw new RangeError("commonName must be 1..64 bytes");
  const info = derSequence(
    derTlv(DerTag.INTEGER, Uint8Array.of(0)),
    commonNameOf(commonName),
    spkiOf(devicePublicKey(key)),
    derTlv(0xa0, new Uint8Array(0)),
  );
  return derSequence(info, ecdsaSha256Algorithm(), derBitString(signWithDeviceKey(key, info)));
}

/** What a CSR asks for. */
export interface CsrRequest {
  readonly commonName: string;
  /** SEC1 uncompressed point (65 bytes). */
  readonly publicKey: Uint8Array;
}

/** The single commonName of a Name with exactly one RDN holding one commonName (UTF8String or PrintableString); undefined otherwise. */
export function singleCommonName(b: Uint8Array, name: DerElement): string | undefined {
  if (name.tag !== DerTag.SEQUENCE) return undefined;
  const rdns = derChildren(b, name, 8);
  if (!rdns || rdns.length !== 1 || rdns[0].tag !== DerTag.SET) return undefined;
  const atvs = derChildren(b, rdns[0], 1);
  if (!atvs || atvs.length !== 1 || atvs[0].tag !== DerTag.SEQUENCE) return undefined;
  const kv = derChildren(b, atvs[0], 2);
  if (!kv || kv.length !== 2 || !sameTlv(b, kv[0], OID.COMMON_NAME)) return undefined;
  if (kv[1].tag !== DerTag.UTF8_STRING && kv[1].tag !== DerTag.PRINTABLE_STRING) return undefined;
  const s = utf8Decode(b.subarray(kv[1].contentStart, kv[1].end));
  return s && s.length > 0 ? s : undefined;
}

/** The point of a P-256 SubjectPublicKeyInfo element (exactly the 91-byte form); undefined otherwise. */
export function spkiPoint(b: Uint8Array, e: DerElement): Uint8Array | undefined {
  if (e.end - e.start !== SPKI_P256_LENGTH) return undefined;
  const point = b.subarray(e.end - 65, e.end);
  const spki = spkiOf(point);
  for (let i = 0; i < spki.length; i++) if (spki[i] !== b[e.start + i]) return undefined;
  return Uint8Array.from(point);
}

/** The signature bytes of a BIT STRING with no unused bits; undefined otherwise. */
export function bitStringBytes(b: Uint8Array, e: DerElement): Uint8Array | undefined {
  if (e.tag !== DerTag.BIT_STRING || e.end - e.contentStart < 1 || b[e.contentStart] !== 0) return undefined;
  return b.subarray(e.contentStart + 1, e.end);
}

/**
 * Decode and check a CSR of the shape `buildCsr` makes: version 0, a single
 * commonName, a P-256 key, no attributes, ECDSA-SHA256, and a signature that
 * verifies under the CSR's own key (proof of possession).
 * @returns the request, or undefined for anything else (malformed, other algorithms, a bad signature).
 */
export function parseCsr(der: Uint8Array): CsrRequest | undefined {
  if (!(der instanceof Uint8Array) || der.length > MAX_CSR) return undefined;
  const top = derRead(der, 0);
  if (!top || top.tag !== DerTag.SEQUENCE || top.end !== der.length) return undefined;
  const parts = derChildren(der, top, 3);
  if (!parts || parts.length !== 3) return undefined;
  const [info, alg, sig] = parts;
  if (info.tag !== DerTag.SEQUENCE || alg.tag !== DerTag.SEQUENCE) return undefined;
  const algs = derChildren(der, alg, 1);
  if (!algs || algs.length !== 1 || !sameTlv(der, algs[0], OID.ECDSA_SHA256)) return undefined;
  const fields = derChildren(der, info, 4);
  if (!fields || fields.length !== 4) return undefined;
  const [version, subject, spki, attributes] = fields;
  if (version.tag !== DerTag.INTEGER || version.end - version.contentStart !== 1 || der[version.contentStart] !== 0) return undefined;
  if (attributes.tag !== 0xa0 || attributes.end !== attributes.contentStart) return undefined;
  const commonName = singleCommonName(der, subject);
  const publicKey = spkiPoint(der, spki);
  const signature = bitStringBytes(der, sig);
  if (commonName === undefined || !publicKey || !signature) return undefined;
  const digest = sha256(der.subarray(info.start, info.end));
  if (verifyP256(digest, signature, publicKey) !== Reason.OK) return undefined;
  return Object.freeze({ commonName, publicKey });
}

/**
 * The device key as PKCS#8 DER (RFC 5208 / RFC 5915: id-ecPublicKey with
 * prime256v1, the ECPrivateKey without its optional fields): what TLS stacks
 * take (Node's tls, Moddable's ssl `clientKey`). Only for the TLS adapter.
 */
export function devicePkcs8(key: Uint8Array): Uint8Array {
  if (!isDeviceKey(key)) throw new RangeError("device key must be a 32-byte scalar in [1, n-1]");
  const ecPrivateKey = derSequence(derTlv(DerTag.INTEGER, Uint8Array.of(1)), derTlv(DerTag.OCTET_STRING, key));
  return derSequence(
    derTlv(DerTag.INTEGER, Uint8Array.of(0)),
    derSequence(bytesOf(OID.EC_PUBLIC_KEY), bytesOf(OID.PRIME256V1)),
    derTlv(DerTag.OCTET_STRING, ecPrivateKey),
  );
}
