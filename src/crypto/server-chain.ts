/**
 * A strict check of a TLS server's certificate chain, for TLS stacks that do
 * not check it well enough themselves (Moddable's ssl/ssl_cert.js at SDK
 * 48ee02d: its verify() skips a link that fails and accepts the first
 * presented certificate that anchors, so a chain [any key, a genuine
 * certificate for the name, its issuer] passes with the attacker's key as the
 * server's; see hal/moddable/tls/cert-manager.ts). Used there in place of the
 * SDK's check; portable (runs under XS).
 *
 * The rule, as Node's TLS (OpenSSL) applies it plus the CA pin:
 * - every certificate is X.509 v3 with an ECDSA-SHA256 signature and a P-256
 *   key (the fleet's PKI: anything else is refused, not half-checked);
 * - the path starts at the presented leaf (the key the handshake uses) and
 *   each link is verified: the issuer's subject is the child's issuer, byte
 *   for byte, the issuer is a CA (basicConstraints cA), and its key verifies
 *   the child's signature; presented certificates are taken in order, and the
 *   path must end at a trust anchor (the configured CA) within 4 links;
 * - the leaf's subjectAltName has the server name (dNSName, one leftmost
 *   wildcard label; or an IPv4 iPAddress); the commonName is not used;
 * - every certificate in the path is within its validity at `now`;
 * - with a pin, the SHA-256 of a CA certificate's DER in the path above the
 *   leaf (a presented intermediate or the anchor) equals it.
 */
import type { Digest } from "../../hal/types";
import { Reason } from "../errors";
import { equalBytes as equal, utf8Decode } from "../util/bytes";
import { bitStringBytes, isEcdsaSha256, sameTlv as sameBytes, spkiPoint } from "./csr";
import { derChildren, derRead, DerTag, type DerElement } from "./der";
import { verifyP256 } from "./ecdsa";
import { sha256Of } from "./hash";

/** Certificates in a path, at most (leaf, two intermediates, the anchor). */
export const MAX_CHAIN = 4;
/** The largest certificate read. */
export const MAX_CERTIFICATE = 4096;

export interface Certificate {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  readonly signature: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  /** Unix seconds. */
  readonly notBefore: number;
  readonly notAfter: number;
  readonly publicKey: Uint8Array;
  readonly isCa: boolean;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

function digits(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = b[at + i] - 0x30;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return v;
}

/** UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5) as unix seconds; NaN otherwise. */
function timeOf(b: Uint8Array, e: DerElement): number {
  const n = e.end - e.contentStart;
  let at = e.contentStart;
  let year: number;
  if (e.tag === DerTag.UTC_TIME && n === 13) {
    const yy = digits(b, at, 2);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    at += 2;
  } else if (e.tag === DerTag.GENERALIZED_TIME && n === 15) {
    year = digits(b, at, 4);
    at += 4;
  } else return NaN;
  if (b[e.end - 1] !== 0x5a) return NaN; // 'Z'
  const month = digits(b, at, 2);
  const day = digits(b, at + 2, 2);
  const hour = digits(b, at + 4, 2);
  const minute = digits(b, at + 6, 2);
  const second = digits(b, at + 8, 2);
  if (!(month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour < 24 && minute < 60 && second < 60)) return NaN;
  // Days from the civil date (proleptic Gregorian), without Date: XS has it, but this keeps the rule explicit.
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  const days = era * 146097 + doe - 719468;
  return days * 86400 + hour * 3600 + minute * 60 + second;
}

const EXT_BASIC_CONSTRAINTS = Object.freeze([0x06, 0x03, 0x55, 0x1d, 0x13]);
const EXT_SUBJECT_ALT_NAME = Object.freeze([0x06, 0x03, 0x55, 0x1d, 0x11]);

/** Parse a certificate of the shape above; undefined for anything else. */
export function parseCertificate(der: Uint8Array): Certificate | undefined {
  if (!(der instanceof Uint8Array) || der.length > MAX_CERTIFICATE) return undefined;
  const top = derRead(der, 0);
  if (!top || top.tag !== DerTag.SEQUENCE || top.end !== der.length) return undefined;
  const parts = derChildren(der, top, 3);
  if (!parts || parts.length !== 3 || parts[0].tag !== DerTag.SEQUENCE || !isEcdsaSha256(der, parts[1])) return undefined;
  const signature = bitStringBytes(der, parts[2]);
  const f = derChildren(der, parts[0], 10);
  if (!signature || !f || f.length < 7) return undefined;
  let i = 0;
  if (f[0].tag !== 0xa0) return undefined;
  const v = derRead(der, f[0].contentStart, f[0].end);
  if (!v || v.tag !== DerTag.INTEGER || v.end !== f[0].end || v.end - v.contentStart !== 1 || der[v.contentStart] !== 2) return undefined;
  i = 1;
  const [serial, alg, issuer, validity, subject, spki] = f.slice(i, i + 6);
  if (serial.tag !== DerTag.INTEGER || !isEcdsaSha256(der, alg) || issuer.tag !== DerTag.SEQUENCE || subject.tag !== DerTag.SEQUENCE) return undefined;
  const times = validity.tag === DerTag.SEQUENCE ? derChildren(der, validity, 2) : undefined;
  if (!times || times.length !== 2) return undefined;
  const notBefore = timeOf(der, times[0]);
  const notAfter = timeOf(der, times[1]);
  const publicKey = spkiPoint(der, spki);
  if (!(notBefore <= notAfter) || !publicKey) return undefined;
  let isCa = false;
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const rest = f.slice(i + 6);
  for (const e of rest) {
    // issuerUniqueID [1] / subjectUniqueID [2] are not used by our PKI: refuse them; [3] extensions.
    if (e.tag !== 0xa3) return undefined;
    const seq = derRead(der, e.contentStart, e.end);
    const exts = seq && seq.tag === DerTag.SEQUENCE && seq.end === e.end ? derChildren(der, seq, 16) : undefined;
    if (!exts) return undefined;
    for (const x of exts) {
      const c = x.tag === DerTag.SEQUENCE ? derChildren(der, x, 3) : undefined;
      if (!c || c.length < 2) return undefined;
      const value = c[c.length - 1];
      if (value.tag !== DerTag.OCTET_STRING) return undefined;
      const inner = derRead(der, value.contentStart, value.end);
      if (!inner || inner.end !== value.end) return undefined;
      if (sameBytes(der, c[0], EXT_BASIC_CONSTRAINTS)) {
        const bc = derChildren(der, inner, 2);
        if (!bc) return undefined;
        isCa = bc.length >= 1 && bc[0].tag === 0x01 && bc[0].end - bc[0].contentStart === 1 && der[bc[0].contentStart] === 0xff;
      } else if (sameBytes(der, c[0], EXT_SUBJECT_ALT_NAME)) {
        const names = derChildren(der, inner, 16);
        if (!names) return undefined;
        for (const n of names) {
          const body = der.subarray(n.contentStart, n.end);
          if (n.tag === 0x82) {
            const s = utf8Decode(body);
            if (s) dnsNames.push(s.toLowerCase());
          } else if (n.tag === 0x87 && body.length === 4) ipAddresses.push(`${body[0]}.${body[1]}.${body[2]}.${body[3]}`);
        }
      } else if (c.length === 3 && c[1].tag === 0x01 && der[c[1].contentStart] === 0xff) {
        // A critical extension this check does not understand (name constraints, policies, ...): refuse, as RFC 5280 6.1 asks.
        const known = [0x0f, 0x25, 0x0e, 0x23]; // keyUsage, extKeyUsage, SKI, AKI (their meaning is not needed for a server path)
        const oid = der.subarray(c[0].start, c[0].end);
        if (!(oid.length === 5 && oid[2] === 0x55 && oid[3] === 0x1d && known.indexOf(oid[4]) >= 0)) return undefined;
      }
    }
  }
  return Object.freeze({
    der,
    tbs: der.subarray(parts[0].start, parts[0].end),
    signature: Uint8Array.from(signature),
    issuer: der.subarray(issuer.start, issuer.end),
    subject: der.subarray(subject.start, subject.end),
    notBefore,
    notAfter,
    publicKey,
    isCa,
    dnsNames: Object.freeze(dnsNames),
    ipAddresses: Object.freeze(ipAddresses),
  });
}

/** The server name matches a SAN of the leaf (case-insensitive; `*.` only as the whole leftmost label). */
export function nameMatches(cert: Certificate, serverName: string): boolean {
  const name = serverName.toLowerCase();
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return cert.ipAddresses.indexOf(name) >= 0;
  for (const d of cert.dnsNames) {
    if (d === name) return true;
    if (d.startsWith("*.") && d.indexOf("*", 1) < 0) {
      const dot = name.indexOf(".");
      if (dot > 0 && name.slice(dot) === d.slice(1)) return true;
    }
  }
  return false;
}

export interface ServerChainCheck {
  /** The certificates the server presented, leaf first (DER). */
  readonly presented: readonly Uint8Array[];
  /** Trusted CA certificates (DER): the configured CA. */
  readonly anchors: readonly Uint8Array[];
  readonly serverName: string;
  /** SHA-256 of a CA certificate's DER that must be in the path above the leaf. */
  readonly pin?: Uint8Array;
  /** Unix seconds. */
  readonly now: number;
  readonly digest: Digest;
}

function signedBy(child: Certificate, issuer: Certificate, digest: Digest): boolean {
  return issuer.isCa && equal(child.issuer, issuer.subject) && verifyP256(sha256Of(digest, child.tbs), child.signature, issuer.publicKey) === Reason.OK;
}

/**
 * @returns Reason.OK; SOCKET_TLS (a malformed or unverifiable chain, the name,
 *   the dates, no anchor); TLS_PIN_MISMATCH (a good chain without the pinned CA).
 */
export function checkServerChain(c: ServerChainCheck): number {
  if (c.presented.length < 1 || c.presented.length > MAX_CHAIN || c.anchors.length < 1) return Reason.SOCKET_TLS;
  const presented: Certificate[] = [];
  for (const d of c.presented) {
    const p = parseCertificate(d);
    if (!p) return Reason.SOCKET_TLS;
    presented.push(p);
  }
  const anchors: Certificate[] = [];
  for (const d of c.anchors) {
    const p = parseCertificate(d);
    if (p && p.isCa) anchors.push(p);
  }
  const leaf = presented[0];
  if (!nameMatches(leaf, c.serverName)) return Reason.SOCKET_TLS;
  const path: Certificate[] = [leaf];
  let anchor: Certificate | undefined;
  for (let k = 1; k <= MAX_CHAIN && !anchor; k++) {
    const cur = path[path.length - 1];
    for (const a of anchors) {
      if (signedBy(cur, a, c.digest)) {
        anchor = a;
        break;
      }
    }
    if (anchor) break;
    const next = presented[k];
    if (!next || !signedBy(cur, next, c.digest)) return Reason.SOCKET_TLS;
    path.push(next);
  }
  if (!anchor) return Reason.SOCKET_TLS;
  for (const p of [...path, anchor]) if (!(p.notBefore <= c.now && c.now <= p.notAfter)) return Reason.SOCKET_TLS;
  if (c.pin) {
    let pinned = false;
    for (const p of [...path.slice(1), anchor]) if (equal(sha256Of(c.digest, p.der), c.pin)) pinned = true;
    if (!pinned) return Reason.TLS_PIN_MISMATCH;
  }
  return Reason.OK;
}
