/**
 * Mutual TLS for serve's embedded broker (issue 16): with a fleet CA
 * (`--client-ca FILE`, made by `xs-ota ca init`), every device must present a
 * client certificate that chains to it, and its MQTT client id must equal the
 * certificate's subject commonName (CN; SANs are not used: `xs-ota ca sign`
 * writes the device id as CN only). A client without a certificate may
 * connect only with the operator credential (username + token, read-only
 * operator topic), so `xs-ota watch` keeps working.
 *
 * Why `rejectUnauthorized: false` at the TLS layer: the operator connects
 * without a certificate, so the handshake must not fail for its absence; a
 * presented certificate that does not verify is refused here, before the
 * broker answers CONNECT (CONNACK 5, not authorised), as is a device without
 * one. The binding is checked per connection, so a device with a valid
 * certificate for id B cannot connect as A (and so cannot take over A's
 * session, read A's offers or publish A's reports): topics are bound to the
 * client id (mayPublish / maySubscribe).
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as tls from "node:tls";

/** TLS server options that ask for (but do not require) a client certificate chaining to `fleetCaPem`. */
export function clientAuthTlsOptions(fleetCaPem: string | Buffer): Pick<tls.TlsOptions, "requestCert" | "rejectUnauthorized" | "ca"> {
  return { requestCert: true, rejectUnauthorized: false, ca: [fleetCaPem] };
}

export type ClientCheck =
  | { readonly ok: true; readonly commonName: string }
  | { readonly ok: false; readonly presented: boolean; readonly why: string };

/**
 * What the connection proves about `clientId`: ok when a verified fleet
 * certificate names exactly that id. `conn` is the client's stream (aedes
 * `client.conn`); a plaintext stream presents nothing.
 */
export function checkClientCertificate(conn: unknown, clientId: string): ClientCheck {
  const s = conn as Partial<tls.TLSSocket> | undefined;
  if (!s || typeof s.getPeerCertificate !== "function") return { ok: false, presented: false, why: "no TLS client certificate" };
  const cert = s.getPeerCertificate();
  if (!cert || !cert.raw) return { ok: false, presented: false, why: "no client certificate" };
  if (!s.authorized) return { ok: false, presented: true, why: `client certificate not from the fleet CA (${String(s.authorizationError)})` };
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? undefined : cn;
  if (typeof name !== "string" || name.length === 0) return { ok: false, presented: true, why: "client certificate has no single commonName" };
  if (name !== clientId) return { ok: false, presented: true, why: `client id "${clientId}" is not the certificate's CN "${name}"` };
  return { ok: true, commonName: name };
}

/**
 * serve's own client certificate for `--broker` (a broker that requires one,
 * e.g. mosquitto with require_certificate): the certificate PEM and its
 * P-256 private key PEM (PKCS#8 or SEC1, as `xs-ota keygen` or openssl write
 * it), as the HAL's `clientIdentity` (DER certificate, 32-byte scalar).
 * @throws Error naming the file when either is not a P-256 certificate or key.
 */
export function brokerIdentityFromFiles(certPath: string, keyPath: string): { certificate: Uint8Array; privateKey: Uint8Array } {
  const cert = new X509Certificate(readFileSync(certPath));
  const key = createPrivateKey(readFileSync(keyPath));
  const jwk = key.export({ format: "jwk" });
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || typeof jwk.d !== "string") throw new Error(`${keyPath}: not a P-256 private key`);
  if (!cert.checkPrivateKey(key)) throw new Error(`${certPath}: the certificate is not for the key in ${keyPath}`);
  return { certificate: new Uint8Array(cert.raw), privateKey: new Uint8Array(Buffer.from(jwk.d, "base64url")) };
}
