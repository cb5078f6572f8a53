/**
 * The fleet CA on disk: DIR/ca.pem (the certificate devices' brokers trust for
 * client certificates), DIR/ca-key.pem (PKCS#8, mode 0600; keep it offline),
 * DIR/serial.log (one line per issued certificate: serial, device id, not-after).
 *
 * `initCa` makes the key and the self-signed certificate; `signCsr` checks a
 * device's CSR (shape, device-id syntax, proof of possession: the CSR's
 * signature under its own key) and issues the device certificate.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from "node:crypto";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCsr } from "../../src/crypto/csr";
import { derChildren, derRead } from "../../src/crypto/der";
import { isDeviceId } from "../../src/store/settings";
import { toHex } from "../../src/util/bytes";
import { pemLines } from "../../src/util/base64";
import { buildCertificate, caExtensions, commonNameOf, deviceExtensions } from "./x509";

export interface CaFiles {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  readonly log: string;
}

export function caFiles(dir: string): CaFiles {
  return { dir, cert: join(dir, "ca.pem"), key: join(dir, "ca-key.pem"), log: join(dir, "serial.log") };
}

const DAY = 86_400_000;

function pointOf(key: KeyObject): Uint8Array {
  const spki = new Uint8Array(key.export({ format: "der", type: "spki" }));
  return spki.subarray(spki.length - 65);
}

/** PEM text of one DER object. */
export function toPem(label: string, der: Uint8Array): string {
  return pemLines(label, der).join("\n") + "\n";
}

/** DER from PEM text (the first block with `label`) or DER bytes as given. */
export function fromPem(data: Uint8Array | string, label: string): Uint8Array {
  const text = typeof data === "string" ? data : Buffer.from(data).toString("latin1");
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(text);
  if (m) return new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ""), "base64"));
  if (typeof data === "string") throw new Error(`no ${label} PEM block found`);
  return data;
}

/** SHA-256 of the CA certificate's DER: the pin devices take (AT+OTATLS) for a server chain under this CA. */
export function fingerprint(der: Uint8Array): string {
  return new X509Certificate(Buffer.from(der)).fingerprint256.replace(/:/g, "").toLowerCase();
}

/**
 * Make a fleet CA in `dir` (refuses to overwrite one).
 * @returns the CA certificate's DER
 */
export function initCa(dir: string, name: string, days: number, now = new Date()): Uint8Array {
  const f = caFiles(dir);
  if (existsSync(f.cert) || existsSync(f.key)) throw new Error(`${dir} already holds a CA (ca.pem / ca-key.pem); refusing to overwrite`);
  mkdirSync(dir, { recursive: true });
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const point = pointOf(publicKey);
  const subject = commonNameOf(name);
  const der = buildCertificate(
    { issuer: subject, subject, publicKey: point, notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + days * DAY), extensions: caExtensions(point) },
    privateKey,
  );
  writeFileSync(f.key, privateKey.export({ format: "pem", type: "pkcs8" }) as string, { mode: 0o600 });
  chmodSync(f.key, 0o600);
  writeFileSync(f.cert, toPem("CERTIFICATE", der));
  return der;
}

export interface Issued {
  readonly deviceId: string;
  readonly der: Uint8Array;
  readonly serial: string;
  readonly notAfter: Date;
}

/**
 * Issue a device certificate for a CSR (PEM or DER) with the CA in `dir`.
 * @throws Error naming what is wrong: no CA, a malformed or unverifiable CSR, a commonName that is not a device id.
 */
export function signCsr(dir: string, csr: Uint8Array | string, days: number, now = new Date()): Issued {
  const f = caFiles(dir);
  if (!existsSync(f.cert) || !existsSync(f.key)) throw new Error(`no CA in ${dir} (xs-ota ca init --dir ${dir})`);
  const caDer = fromPem(readFileSync(f.cert, "utf8"), "CERTIFICATE");
  const caKey = createPrivateKey(readFileSync(f.key));
  const caPoint = pointOf(createPublicKey(caKey));
  const req = parseCsr(fromPem(csr, "CERTIFICATE REQUEST"));
  if (!req) throw new Error("the CSR is malformed, not P-256/ECDSA-SHA256 with a single commonName, or its signature does not verify");
  if (!isDeviceId(req.commonName)) throw new Error(`the CSR's commonName "${req.commonName}" is not a device id (1..32 of A-Z a-z 0-9 . _ -)`);
  // The issuer Name, byte for byte from the CA certificate (tbs field 4: version, serial, alg, issuer, validity, subject).
  const top = derRead(caDer, 0)!;
  const tbs = derChildren(caDer, derChildren(caDer, top, 3)![0], 10)!;
  const caSubject = caDer.slice(tbs[5].start, tbs[5].end);
  const notAfter = new Date(now.getTime() + days * DAY);
  const der = buildCertificate(
    {
      issuer: caSubject,
      subject: commonNameOf(req.commonName),
      publicKey: req.publicKey,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter,
      extensions: deviceExtensions(req.publicKey, caPoint),
    },
    caKey,
  );
  const serial = new X509Certificate(Buffer.from(der)).serialNumber.toLowerCase();
  appendFileSync(f.log, `${serial} ${req.commonName} ${notAfter.toISOString()} ${toHex(req.publicKey).slice(2, 18)}\n`);
  return { deviceId: req.commonName, der, serial, notAfter };
}
