/**
 * A replacement for Moddable's `ssl/cert` (modules/crypt/ssl/ssl_cert.js,
 * SDK 48ee02d) with the same interface, for device builds that include
 * hal/moddable/tls/manifest.json. Why: the SDK's `verify(certs, options)`
 * checks the links of the presented chain in turn, skips (`continue`) a link
 * that fails, and returns at the first presented certificate that is signed
 * by its successor and anchors to a trusted CA, taking the name from that
 * certificate; it never requires that the leaf (certs[0], whose key the
 * handshake then uses: `session.peerCert = certs[0]`) be signed by anything.
 * So a server presenting [its own key, a genuine certificate for the name,
 * that certificate's issuer] passes. It also gives the application no view
 * of the chain, so a CA pin cannot be checked.
 *
 * This manager checks the chain with src/crypto/server-chain.ts (every link
 * from the leaf to the configured CA, the leaf's SAN, the dates, the pin;
 * ECDSA P-256 only, the fleet PKI), reports its verdict to the socket adapter
 * through `secure.xsOtaVerdict`, and trusts only `secure.certificate` (the CA
 * the adapter is given) and certificates added with the static `register`:
 * not the SDK's built-in CA list. Session methods it serves, as the SDK calls
 * them (ssl/session_419.js, ssl/ssl_handshake.js): `verify` (certificate
 * message), `register(peerCert)` then `getKey(peerCert)` (the server's key
 * for ServerKeyExchange, in the SDK's X509.decodeSPKI form), `findPreferredCert`
 * (CertificateRequest: the client certificates); `getCerts`/`getDH` are the
 * server side's and throw.
 */
import X509 from "x509";
import { checkServerChain } from "../../src/crypto/server-chain";
import { Reason } from "../../src/errors";
import { equalBytes as same } from "../../src/util/bytes";
import { nativeDigest } from "./digest";

type Buffer = ArrayBuffer | Uint8Array;

/** The `secure` options this manager reads (the adapter sets the xsOta ones). */
export interface StrictTlsOptions {
  readonly certificate?: ArrayBuffer;
  readonly clientCertificates?: ArrayBuffer[];
  /** SHA-256 of a CA certificate's DER that must be on the path above the leaf. */
  readonly xsOtaCaPin?: Uint8Array;
  /** Called with the verdict of every chain check (a Reason code). */
  readonly xsOtaVerdict?: (reason: number) => void;
}

function bytes(b: Buffer): Uint8Array {
  return b instanceof Uint8Array ? b : new Uint8Array(b);
}

const registered: Uint8Array[] = [];

export default class CertificateManager {
  readonly #anchors: Uint8Array[];
  readonly #pin: Uint8Array | undefined;
  readonly #verdict: ((reason: number) => void) | undefined;
  readonly #client: ArrayBuffer[];
  #peer: Uint8Array | undefined;

  constructor(options: StrictTlsOptions) {
    this.#anchors = options.certificate ? [bytes(options.certificate).slice()] : [];
    this.#pin = options.xsOtaCaPin;
    this.#verdict = options.xsOtaVerdict;
    this.#client = options.clientCertificates ?? [];
  }

  /** The certificate message's check (ssl_handshake.js `certificate.unpacketize`). */
  verify(certs: readonly Buffer[], options: { readonly tls_server_name?: string }): boolean {
    const reason = checkServerChain({
      presented: certs.map(bytes),
      anchors: [...this.#anchors, ...registered],
      serverName: options.tls_server_name ?? "",
      ...(this.#pin ? { pin: this.#pin } : {}),
      now: Math.floor(Date.now() / 1000),
      digest: nativeDigest,
    });
    this.#verdict?.(reason);
    return reason === Reason.OK;
  }

  /** The verified peer certificate (called right after `verify`). */
  register(cert: Buffer): void {
    this.#peer = bytes(cert).slice();
  }

  /** The peer's public key in the SDK's form (X509.decodeSPKI), for ServerKeyExchange. */
  getKey(cert?: Buffer): unknown {
    if (cert !== undefined && this.#peer && same(bytes(cert), this.#peer)) return X509.decode(this.#peer).spki;
    throw new Error("ssl/cert: no such key (the device's own key is not kept here)");
  }

  findPreferredCert(_types?: unknown, _names?: unknown): ArrayBuffer[] {
    return this.#client;
  }

  getCerts(): never {
    throw new Error("ssl/cert: the device is not a TLS server");
  }

  getDH(): never {
    throw new Error("ssl/cert: the device is not a TLS server");
  }

  /** Trust `cert` (DER) for every later connection. */
  static register(cert: Buffer): void {
    const c = bytes(cert).slice();
    for (const r of registered) if (same(r, c)) return;
    registered.push(c);
  }
}
