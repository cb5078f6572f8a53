/**
 * The HAL `Network` on Node: TCP and TLS sockets for the simulator and the
 * host tools (serve's external-broker mode uses the device's own MQTT client
 * over this). TLS always verifies the server certificate against the CA given
 * (per connection or as the network's default; Node's store otherwise) and the
 * server name; plaintext only when the caller says `tls: false`. With a CA
 * pin (`caPin`, SHA-256 of a CA certificate's DER), the verified chain must
 * also contain that CA above the server's certificate, or the handshake is
 * failed with TLS_PIN_MISMATCH before any application byte is sent.
 * With `clientIdentity` (mutual TLS) the device's certificate and key
 * (PKCS#8, built from the scalar per connection) are presented when the
 * server asks for a client certificate.
 *
 * Events are delivered from Node's event loop, so no handler ever runs inside
 * `connect`, `write` or `close`.
 */
import { createHash, createPrivateKey } from "node:crypto";
import * as net from "node:net";
import * as tls from "node:tls";
import { devicePkcs8 } from "../../src/crypto/csr";
import { OtaError, Reason } from "../../src/errors";
import type { Network, Socket, SocketHandlers, SocketOptions } from "../types";

/** Largest single write the HAL allows. */
export const MAX_SOCKET_WRITE = 16384;

export interface NodeNetworkOptions {
  /** CA used when a connection does not name one (PEM or DER). */
  readonly ca?: string | Uint8Array;
  /** Connect + TLS handshake must finish within this (default 15000 ms). */
  readonly connectTimeoutMs?: number;
}

function pem(ca: string | Uint8Array): string | Buffer {
  if (typeof ca === "string") return ca;
  // DER: wrap as PEM so Node's TLS accepts it.
  // 64-character lines; a base64 length that is a multiple of 64 must not leave an empty line (OpenSSL refuses it).
  const b64 = Buffer.from(ca).toString("base64").match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

const TLS_ERRORS = /^(CERT_|ERR_TLS_|ERR_SSL_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_|HOSTNAME_|ERR_OSSL)/;

/** The error code a pin mismatch is reported with inside Node (mapped to Reason.TLS_PIN_MISMATCH). */
export const PIN_MISMATCH_CODE = "ERR_XS_OTA_TLS_PIN_MISMATCH";
/** A CA pin is the SHA-256 of the CA certificate's DER. */
export const CA_PIN_LENGTH = 32;

/**
 * True when a CA above the leaf of a verified chain (Node's detailed peer
 * certificate: the presented chain completed from the trust store, linked by
 * `issuerCertificate`, a self-signed root linking to itself) has the DER
 * SHA-256 `pin`.
 */
export function chainHasPin(leaf: tls.DetailedPeerCertificate, pin: Uint8Array): boolean {
  const want = Buffer.from(pin);
  const seen = new Set<tls.DetailedPeerCertificate>([leaf]);
  let c: tls.DetailedPeerCertificate | undefined = leaf.issuerCertificate;
  while (c && c.raw && !seen.has(c)) {
    if (createHash("sha256").update(c.raw).digest().equals(want)) return true;
    seen.add(c);
    c = c.issuerCertificate;
  }
  return false;
}

/**
 * The device certificate and key as Node's TLS takes them (PEM); a key that is
 * not the certificate's is a malformed option (BAD_ARGUMENT), found before
 * any byte is sent.
 */
function clientCredentials(identity: NonNullable<SocketOptions["clientIdentity"]>): { cert: string; key: string } {
  try {
    const key = createPrivateKey({ key: Buffer.from(devicePkcs8(identity.privateKey)), format: "der", type: "pkcs8" }).export({ format: "pem", type: "pkcs8" }) as string;
    const cert = pem(identity.certificate) as string;
    tls.createSecureContext({ cert, key }); // checks that the key is the certificate's
    return { cert, key };
  } catch (e) {
    throw new OtaError(Reason.BAD_ARGUMENT, `connect: clientIdentity: ${(e as Error).message}`);
  }
}

/** Map a Node socket error to a HAL reason code. */
export function reasonForError(e: NodeJS.ErrnoException | undefined, duringTls: boolean): number {
  const code = e?.code ?? "";
  if (code === PIN_MISMATCH_CODE) return Reason.TLS_PIN_MISMATCH;
  if (code === "ECONNREFUSED") return Reason.SOCKET_REFUSED;
  if (code === "ETIMEDOUT") return Reason.SOCKET_TIMEOUT;
  if (TLS_ERRORS.test(code) || /SSL|TLS|certificate/i.test(e?.message ?? "")) return Reason.SOCKET_TLS;
  if (duringTls) return Reason.SOCKET_TLS;
  return Reason.SOCKET_CLOSED;
}

export class NodeNetwork implements Network {
  private readonly defaultCa: string | Uint8Array | undefined;
  private readonly connectTimeoutMs: number;
  /** Open sockets, so a test can close everything it started. */
  private readonly open = new Set<net.Socket>();

  constructor(options: NodeNetworkOptions = {}) {
    this.defaultCa = options.ca;
    const t = options.connectTimeoutMs ?? 15_000;
    if (!Number.isInteger(t) || t < 1 || t > 600_000) throw new RangeError("NodeNetwork: connectTimeoutMs must be 1..600000");
    this.connectTimeoutMs = t;
  }

  connect(options: SocketOptions, handlers: SocketHandlers): Socket {
    if (!options || typeof options.host !== "string" || options.host.length === 0 || !Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new OtaError(Reason.BAD_ARGUMENT, "connect: host and port 1..65535 required");
    }
    if (options.tls !== true && options.tls !== false) {
      throw new OtaError(Reason.BAD_ARGUMENT, "connect: tls must be stated (plaintext only with tls: false)");
    }
    const pin = options.caPin;
    if (pin !== undefined && (!(pin instanceof Uint8Array) || pin.length !== CA_PIN_LENGTH)) {
      throw new OtaError(Reason.BAD_ARGUMENT, `connect: caPin must be ${CA_PIN_LENGTH} bytes (SHA-256 of the CA certificate's DER)`);
    }
    const identity = options.clientIdentity;
    if (identity !== undefined && (!(identity.certificate instanceof Uint8Array) || !(identity.privateKey instanceof Uint8Array) || identity.privateKey.length !== 32)) {
      throw new OtaError(Reason.BAD_ARGUMENT, "connect: clientIdentity needs the certificate's DER and the 32-byte device key");
    }
    let closed = false; // by us or after onClose
    let connected = false;
    let reported = false;
    const report = (reason: number) => {
      if (reported || closed) return;
      reported = true;
      closed = true;
      handlers.onClose?.(reason);
    };
    let sock: net.Socket;
    if (options.tls) {
      const ca = options.ca ?? this.defaultCa;
      const servername = options.serverName ?? (net.isIP(options.host) ? undefined : options.host);
      sock = tls.connect({
        host: options.host,
        port: options.port,
        // One SecureContext per CA, reused by every connection (making one parses the CA: up to 14 % of a 1,000-device fleet's CPU);
        // with a client identity, one per identity (it carries the device's certificate and key too).
        secureContext: identity ? this.identityContext(ca, identity) : this.secureContext(ca),
        ...(servername ? { servername } : {}),
        rejectUnauthorized: true,
        minVersion: "TLSv1.2",
        // Runs after the chain verified (Node passes the detailed chain); an error fails the handshake.
        checkServerIdentity: (hostname: string, cert: tls.PeerCertificate) => {
          const e = tls.checkServerIdentity(hostname, cert);
          if (e || !pin) return e;
          if (chainHasPin(cert as tls.DetailedPeerCertificate, pin)) return undefined;
          const err: NodeJS.ErrnoException = new Error("TLS_PIN_MISMATCH: the server's chain does not contain the pinned CA");
          err.code = PIN_MISMATCH_CODE;
          return err;
        },
      });
      sock.once("secureConnect", () => {
        connected = true;
        sock.setTimeout(0);
        if (!closed) handlers.onConnect?.();
      });
    } else {
      sock = net.connect({ host: options.host, port: options.port });
      sock.once("connect", () => {
        connected = true;
        sock.setTimeout(0);
        if (!closed) handlers.onConnect?.();
      });
    }
    this.open.add(sock);
    sock.setNoDelay(true);
    sock.setTimeout(this.connectTimeoutMs, () => {
      if (!connected) {
        report(Reason.SOCKET_TIMEOUT);
        sock.destroy();
      }
    });
    sock.on("data", (b: Buffer) => {
      if (!closed) handlers.onData?.(new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));
    });
    sock.on("error", (e: NodeJS.ErrnoException) => report(reasonForError(e, options.tls && !connected)));
    sock.on("close", () => {
      this.open.delete(sock);
      report(options.tls && !connected ? Reason.SOCKET_TLS : connected ? Reason.SOCKET_CLOSED : Reason.SOCKET_REFUSED);
    });
    return {
      write(data: Uint8Array): void {
        if (closed) throw new OtaError(Reason.SOCKET_CLOSED, "write on a closed socket");
        if (!(data instanceof Uint8Array)) throw new OtaError(Reason.BAD_ARGUMENT, "write: data must be a Uint8Array");
        if (data.length > MAX_SOCKET_WRITE) throw new OtaError(Reason.BAD_ARGUMENT, `write of ${data.length} > ${MAX_SOCKET_WRITE}`);
        // Node writes before the connection is up are queued by the stream.
        sock.write(Buffer.from(data));
      },
      close(): void {
        if (closed) return;
        closed = true;
        sock.end();
        // Do not wait for the peer's FIN forever.
        setTimeout(() => sock.destroy(), 2000).unref();
      },
    };
  }

  private readonly contexts = new Map<string, tls.SecureContext>();
  private readonly identityContexts = new WeakMap<object, { ca: string | Uint8Array | undefined; context: tls.SecureContext }>();

  /**
   * A context with the CA and the device's certificate and key, kept per
   * identity object (the firmware makes one per boot and passes it to every
   * connection), so reconnections parse neither again.
   * @throws OtaError BAD_ARGUMENT when the key is not the certificate's.
   */
  private identityContext(ca: string | Uint8Array | undefined, identity: NonNullable<SocketOptions["clientIdentity"]>): tls.SecureContext {
    const cached = this.identityContexts.get(identity);
    if (cached && cached.ca === ca) return cached.context;
    const context = tls.createSecureContext({ ...(ca !== undefined ? { ca: pem(ca) } : {}), ...clientCredentials(identity), minVersion: "TLSv1.2" });
    this.identityContexts.set(identity, { ca, context });
    return context;
  }

  /** The TLS context for a CA (Node's store when undefined), made once per CA and kept (at most 16). */
  private secureContext(ca: string | Uint8Array | undefined): tls.SecureContext {
    const key = ca === undefined ? "" : typeof ca === "string" ? ca : Buffer.from(ca).toString("base64");
    let c = this.contexts.get(key);
    if (!c) {
      c = tls.createSecureContext({ ...(ca !== undefined ? { ca: pem(ca) } : {}), minVersion: "TLSv1.2" });
      if (this.contexts.size >= 16) this.contexts.clear();
      this.contexts.set(key, c);
    }
    return c;
  }

  /** Destroy every socket this network opened (test teardown). */
  destroyAll(): void {
    for (const s of this.open) s.destroy();
    this.open.clear();
  }
}
