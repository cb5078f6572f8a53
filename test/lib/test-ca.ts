/**
 * TEST ONLY, portable (runs inside XS): a minimal issuer for device
 * certificates, so the identity suites can install a certificate without
 * node:crypto. A v3 certificate with no extensions, signed by a P-256 test
 * CA scalar; the real CA is tools/ca (node:crypto, full profile, checked by
 * openssl in the interop lane).
 */
import { commonNameOf, ecdsaSha256Algorithm, signWithDeviceKey } from "../../src/crypto/csr";
import { derBitString, derSequence, DerTag, derTlv, derUnsigned, spkiOf } from "../../src/crypto/der";

const ascii = (s: string) => Uint8Array.from(s.split(""), (c) => c.charCodeAt(0));

/** A certificate DER for `point` named `cn`, "issued" by the test CA key `caKey` (32-byte scalar). */
export function issueTestCertificate(caKey: Uint8Array, cn: string, point: Uint8Array): Uint8Array {
  const tbs = derSequence(
    derTlv(0xa0, derUnsigned(Uint8Array.of(2))),
    derUnsigned(Uint8Array.of(0x01, 0x23)),
    ecdsaSha256Algorithm(),
    commonNameOf("test CA"),
    derSequence(derTlv(DerTag.UTC_TIME, ascii("250101000000Z")), derTlv(DerTag.UTC_TIME, ascii("350101000000Z"))),
    commonNameOf(cn),
    spkiOf(point),
  );
  return derSequence(tbs, ecdsaSha256Algorithm(), derBitString(signWithDeviceKey(caKey, tbs)));
}
