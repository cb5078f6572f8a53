/**
 * The few facts the device reads from its own certificate (the one the fleet
 * CA returned for its CSR, installed with AT+CERT): the subject's commonName
 * (the device id, which is the MQTT client id the broker binds to it) and the
 * P-256 public key (which must be the device key's). The chain and the
 * signature are the broker's business: the device presents the certificate,
 * it does not trust itself by it.
 *
 * Strict where it reads: X.509 v3 (`[0] INTEGER 2`), the outer and inner
 * signature algorithms both ECDSA-SHA256, a subject of exactly one
 * commonName, a P-256 SubjectPublicKeyInfo of the 91-byte form.
 */
import { bitStringBytes, isEcdsaSha256, singleCommonName, spkiPoint } from "./csr";
import { derChildren, derRead, DerTag } from "./der";

/** The largest certificate the device stores (ours are ~420 bytes; headroom for longer names and extensions). */
export const MAX_DEVICE_CERT = 1024;

export interface DeviceCertificate {
  /** The subject's commonName. */
  readonly commonName: string;
  /** SEC1 uncompressed point (65 bytes). */
  readonly publicKey: Uint8Array;
  /** The DER TBSCertificate bytes (what the issuer signed). */
  readonly tbs: Uint8Array;
  /** The issuer's signature (DER ECDSA). */
  readonly signature: Uint8Array;
}

/**
 * Read a device certificate; undefined when it is not of the shape above.
 * @example parseDeviceCertificate(der)?.commonName === "sim-0001"
 */
export function parseDeviceCertificate(der: Uint8Array): DeviceCertificate | undefined {
  if (!(der instanceof Uint8Array) || der.length > MAX_DEVICE_CERT) return undefined;
  const top = derRead(der, 0);
  if (!top || top.tag !== DerTag.SEQUENCE || top.end !== der.length) return undefined;
  const parts = derChildren(der, top, 3);
  if (!parts || parts.length !== 3) return undefined;
  const [tbs, alg, sig] = parts;
  if (tbs.tag !== DerTag.SEQUENCE || !isEcdsaSha256(der, alg)) return undefined;
  const signature = bitStringBytes(der, sig);
  // version, serial, signature, issuer, validity, subject, spki, [extensions]
  const f = derChildren(der, tbs, 10);
  if (!signature || !f || f.length < 7 || f.length > 8) return undefined;
  const version = f[0];
  if (version.tag !== 0xa0) return undefined;
  const v = derRead(der, version.contentStart, version.end);
  if (!v || v.end !== version.end || v.tag !== DerTag.INTEGER || v.end - v.contentStart !== 1 || der[v.contentStart] !== 2) return undefined;
  if (f[1].tag !== DerTag.INTEGER || !isEcdsaSha256(der, f[2]) || f[3].tag !== DerTag.SEQUENCE || f[4].tag !== DerTag.SEQUENCE) return undefined;
  if (f.length === 8 && f[7].tag !== 0xa3) return undefined;
  const commonName = singleCommonName(der, f[5]);
  const publicKey = spkiPoint(der, f[6]);
  if (commonName === undefined || !publicKey) return undefined;
  return Object.freeze({ commonName, publicKey, tbs: der.slice(tbs.start, tbs.end), signature: Uint8Array.from(signature) });
}
