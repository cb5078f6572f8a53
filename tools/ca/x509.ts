/**
 * X.509 v3 certificates for the fleet CA, built by our own DER encoder
 * (src/crypto/der.ts) and signed with ECDSA-SHA256 by node:crypto: the CA's
 * self-signed certificate and device certificates for verified CSRs. OpenSSL
 * accepts both (`openssl verify -CAfile ca.pem -purpose sslclient dev.pem`,
 * test/interop/ca.test.ts).
 *
 * Device certificate profile (RFC 5280):
 *   version v3; serial 16 random bytes (positive); issuer = the CA's subject,
 *   byte for byte; validity UTCTime (GeneralizedTime from 2050);
 *   subject CN=<device id> (UTF8String) — the identity serve's broker and
 *   mosquitto (use_identity_as_username) bind the MQTT client id to;
 *   extensions: basicConstraints critical CA:FALSE, keyUsage critical
 *   digitalSignature, extendedKeyUsage clientAuth, subjectKeyIdentifier,
 *   authorityKeyIdentifier.
 * CA profile: subject CN=<name>; basicConstraints critical CA:TRUE pathlen 0;
 *   keyUsage critical keyCertSign, cRLSign; subjectKeyIdentifier.
 */
import { createHash, randomBytes, sign, type KeyObject } from "node:crypto";
import { commonNameOf, ecdsaSha256Algorithm } from "../../src/crypto/csr";
import { derBitString, derSequence, DerTag, derTlv, derUnsigned, spkiOf } from "../../src/crypto/der";

const OIDS = {
  basicConstraints: [0x06, 0x03, 0x55, 0x1d, 0x13],
  keyUsage: [0x06, 0x03, 0x55, 0x1d, 0x0f],
  extKeyUsage: [0x06, 0x03, 0x55, 0x1d, 0x25],
  subjectKeyId: [0x06, 0x03, 0x55, 0x1d, 0x0e],
  authorityKeyId: [0x06, 0x03, 0x55, 0x1d, 0x23],
  clientAuth: [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
};

const TRUE = Uint8Array.of(0x01, 0x01, 0xff);

function extension(oid: number[], critical: boolean, value: Uint8Array): Uint8Array {
  const parts = [Uint8Array.from(oid), ...(critical ? [TRUE] : []), derTlv(DerTag.OCTET_STRING, value)];
  return derSequence(...parts);
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bytes (the point). */
export function keyIdentifier(point: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(point).digest());
}

function two(n: number): string {
  return String(n).padStart(2, "0");
}

/** UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5). */
export function derTime(d: Date): Uint8Array {
  const y = d.getUTCFullYear();
  const rest = `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
  const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  if (y >= 1950 && y < 2050) return derTlv(DerTag.UTC_TIME, ascii(`${two(y % 100)}${rest}`));
  return derTlv(DerTag.GENERALIZED_TIME, ascii(`${String(y).padStart(4, "0")}${rest}`));
}

export interface CertificateFields {
  /** The issuer's Name DER (a self-signed CA: its own subject). */
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  /** SEC1 uncompressed point of the subject's key. */
  readonly publicKey: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: readonly Uint8Array[];
  /** Serial number bytes (default: 16 random bytes, positive). */
  readonly serial?: Uint8Array;
}

/** Build the TBSCertificate and sign it with the issuer's key: the certificate's DER. */
export function buildCertificate(f: CertificateFields, issuerKey: KeyObject): Uint8Array {
  const serial = f.serial ?? new Uint8Array(randomBytes(16));
  if (!f.serial) serial[0] = (serial[0] & 0x7f) | 0x01; // positive, 16 bytes, never zero
  const tbs = derSequence(
    derTlv(0xa0, derUnsigned(Uint8Array.of(2))),
    derUnsigned(serial),
    ecdsaSha256Algorithm(),
    f.issuer,
    derSequence(derTime(f.notBefore), derTime(f.notAfter)),
    f.subject,
    spkiOf(f.publicKey),
    derTlv(0xa3, derSequence(...f.extensions)),
  );
  const sig = new Uint8Array(sign("sha256", tbs, { key: issuerKey, dsaEncoding: "der" }));
  return derSequence(tbs, ecdsaSha256Algorithm(), derBitString(sig));
}

/** The CA's extensions: CA:TRUE pathlen 0, keyCertSign + cRLSign, its key id. */
export function caExtensions(point: Uint8Array): Uint8Array[] {
  return [
    extension(OIDS.basicConstraints, true, derSequence(TRUE, derUnsigned(Uint8Array.of(0)))),
    extension(OIDS.keyUsage, true, Uint8Array.of(0x03, 0x02, 0x01, 0x06)),
    extension(OIDS.subjectKeyId, false, derTlv(DerTag.OCTET_STRING, keyIdentifier(point))),
  ];
}

/** A device certificate's extensions (see the profile above). */
export function deviceExtensions(point: Uint8Array, caPoint: Uint8Array): Uint8Array[] {
  return [
    extension(OIDS.basicConstraints, true, derSequence()),
    extension(OIDS.keyUsage, true, Uint8Array.of(0x03, 0x02, 0x07, 0x80)),
    extension(OIDS.extKeyUsage, false, derSequence(Uint8Array.from(OIDS.clientAuth))),
    extension(OIDS.subjectKeyId, false, derTlv(DerTag.OCTET_STRING, keyIdentifier(point))),
    extension(OIDS.authorityKeyId, false, derSequence(derTlv(0x80, keyIdentifier(caPoint)))),
  ];
}

export { commonNameOf };
