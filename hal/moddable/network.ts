/**
 * Byte sockets over Moddable's ECMA-419 TCP (`embedded:io/socket/tcp`,
 * modules/io/socket/zephyr/tcp.js and tcp.c) and its TLS socket
 * (`embedded:io/socket/tcp/tls`, examples/io/tcp/tlssocket/tlssocket.js, the
 * only TLS for ECMA-419 sockets the SDK has on Zephyr). Plaintext only when
 * `tls === false` is asked for explicitly (the HAL rule).
 *
 * Names: Moddable's Zephyr TCP reads `address` and parses it with
 * net_addr_pton(AF_INET) ("invalid address" otherwise); it never reads
 * `host`. So the adapter connects at once to an IPv4 literal and resolves any
 * other host first with the resolver the platform gives it (Moddable's
 * `embedded:network/dns/resolver/udp`, examples/io/udp/dns/dns.js: A records
 * over UDP from the configured servers, 5 tries a server, 1 s apart). Without
 * a resolver a host name is refused up front (BAD_ARGUMENT); a name that does
 * not resolve closes the socket with SOCKET_REFUSED.
 *
 * TLS: TLSSocket opens its own TCP socket with `new options.TCP.io({...options})`,
 * so the adapter hands it the TCP class and the resolved `address`; `host`
 * stays the name, for SNI. `options.ca` must be the CA certificate in DER
 * (Moddable's TLS takes DER): it goes in `secure.certificate`, which
 * ssl/ssl_cert.js registers as trusted. Without a CA the TLS layer uses the
 * certificates built into the firmware. SNI is `serverName ?? host`.
 *
 * CA pin (`caPin`) and the chain: the SDK's ssl/ssl_cert.js gives the
 * application no view of the chain (verify() answers yes or no) and its
 * verify() does not bind the leaf to the chain (see cert-manager.ts). A build
 * that includes hal/moddable/tls/manifest.json replaces it with
 * cert-manager.ts, which checks the whole path strictly and the pin, and
 * reports its verdict through `secure.xsOtaVerdict`; the adapter passes the
 * pin as `secure.xsOtaCaPin`. A pinned connection is opened to the
 * application only with a verdict of OK from that manager: a chain without
 * the pinned CA fails with TLS_PIN_MISMATCH (the handshake stops at the
 * certificate message), and a TLS stack that never gave a verdict (the SDK's
 * own ssl/cert, which cannot check a pin) is closed at the end of the
 * handshake, before any application byte, with TLS_PIN_MISMATCH too: a pin
 * is never silently ignored.
 *
 * Client certificate (`clientIdentity`, mutual TLS): the SDK's TLS takes
 * one as `secure.clientCertificates` (an array of DER certificates; ssl/ssl_cert.js
 * `findPreferredCert` returns it when the server sends CertificateRequest) and
 * `secure.clientKey` (PKCS#8 DER; `getKey(cert)` returns `PKCS8.parse(clientKey)`),
 * and the adapter passes them in that shape. But at SDK 48ee02d it cannot
 * sign with the device's P-256 key: etc/pkcs8.js `parse` reads RSA fields
 * only, and ssl/ssl_handshake.js `certificateVerify.packetize` signs only when
 * the key exchange is RSA or ECDHE_RSA, with PKCS1_5, and throws
 * "certificateVerify: unimplemented" otherwise. So, like the pin, it fails
 * closed: with a client identity the connection closes, without connecting,
 * with TLS_CLIENT_AUTH_UNSUPPORTED (until SDK_SIGNS_P256_CLIENT_AUTH is true:
 * an ECDSA branch in certificateVerify and an EC PKCS#8 parse).
 *
 * Both modules report free send space in onWritable (TCP: its send buffer less
 * bytes in flight; TLS: that less 96 bytes of record overhead, only after the
 * handshake) and throw on a write larger than it ("would block"), so the
 * adapter writes at most what was last reported. Sends the socket cannot take
 * now wait in a queue bounded to MAX_QUEUED bytes; a send beyond it closes the
 * socket (SOCKET_CLOSED). A connection not open within connectTimeoutMs
 * (resolution included) is closed with SOCKET_TIMEOUT.
 */
import TCP from "embedded:io/socket/tcp";
import TLS from "embedded:io/socket/tcp/tls";
import Timer from "timer";
import { devicePkcs8 } from "../../src/crypto/csr";
import { OtaError, Reason } from "../../src/errors";
import type { Network, Socket, SocketHandlers, SocketOptions } from "../types";

export const MAX_QUEUED = 32768;
/** Whether the SDK's TLS can sign CertificateVerify with a P-256 client key (no at 48ee02d: see above). */
export const SDK_SIGNS_P256_CLIENT_AUTH = false;
export const MAX_SEND = 16384;

/** One name lookup, shaped like Moddable's `embedded:network/dns/resolver/udp` (examples/io/udp/dns/dns.js). */
export interface NameResolver {
  resolve(options: { host: string; onResolved(host: string, address: string): void; onError(host: string): void }): void;
  close(): void;
}

interface ByteIO {
  read(count: number): unknown;
  write(data: ArrayBuffer): unknown;
  close(): unknown;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True for a dotted-quad IPv4 literal, the only address form Moddable's Zephyr TCP accepts. */
export function isIPv4Literal(host: string): boolean {
  return IPV4.test(host);
}

function toArrayBuffer(data: Uint8Array): ArrayBuffer {
  return data.slice().buffer as ArrayBuffer;
}

class ModdableSocket implements Socket {
  private io: ByteIO | undefined;
  private resolver: NameResolver | undefined;
  private open = false;
  private closed = false;
  private writable = 0;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private connectTimer: Timer | undefined;
  /** The chain check's verdict (cert-manager.ts), when the TLS stack gave one. */
  private verdict: number | undefined;

  constructor(
    private readonly options: SocketOptions,
    private readonly handlers: SocketHandlers,
    connectTimeoutMs: number,
    makeResolver: (() => NameResolver) | undefined,
  ) {
    this.connectTimer = Timer.set(() => {
      this.connectTimer = undefined;
      if (!this.open) this.fail(Reason.SOCKET_TIMEOUT);
    }, connectTimeoutMs);
    if (options.tls && options.clientIdentity !== undefined && !SDK_SIGNS_P256_CLIENT_AUTH) {
      Timer.set(() => this.fail(Reason.TLS_CLIENT_AUTH_UNSUPPORTED), 0);
      return;
    }
    if (isIPv4Literal(options.host)) {
      this.connectTo(options.host);
      return;
    }
    // connect() refused a name without a resolver, so makeResolver is set here.
    const resolver = (makeResolver as () => NameResolver)();
    this.resolver = resolver;
    resolver.resolve({
      host: options.host,
      onResolved: (_host, address) => {
        this.dropResolver();
        if (this.closed) return;
        if (typeof address === "string" && isIPv4Literal(address)) this.connectTo(address);
        else this.fail(Reason.SOCKET_REFUSED);
      },
      onError: () => {
        this.dropResolver();
        this.fail(Reason.SOCKET_REFUSED);
      },
    });
  }

  write(data: Uint8Array): void {
    if (this.closed) throw new OtaError(Reason.SOCKET_CLOSED, "write after close");
    if (data.length > MAX_SEND) throw new OtaError(Reason.BAD_ARGUMENT, `send of ${data.length} bytes exceeds ${MAX_SEND}`);
    if (this.queued + data.length > MAX_QUEUED) {
      this.fail(Reason.SOCKET_CLOSED);
      throw new OtaError(Reason.SOCKET_CLOSED, "send queue full; socket closed");
    }
    this.queue.push(data.slice());
    this.queued += data.length;
    this.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.teardown();
  }

  private connectTo(address: string): void {
    const self = this;
    const options = this.options;
    const callbacks = {
      onReadable(bytes: number) {
        self.readable(bytes);
      },
      onWritable(bytes: number) {
        self.writableNow(bytes);
      },
      onError() {
        const refusedPin = !self.open && self.verdict === Reason.TLS_PIN_MISMATCH;
        self.fail(self.open ? Reason.SOCKET_CLOSED : refusedPin ? Reason.TLS_PIN_MISMATCH : options.tls ? Reason.SOCKET_TLS : Reason.SOCKET_REFUSED);
      },
    };
    try {
      if (options.tls) {
        this.io = new TLS({
          host: options.host,
          address,
          port: options.port,
          format: "buffer",
          TCP: { io: TCP },
          secure: {
            serverName: options.serverName ?? options.host,
            // Read by hal/moddable/cert-manager.ts when the build includes it (ignored by the SDK's ssl/cert).
            ...(options.caPin ? { xsOtaCaPin: options.caPin.slice() } : {}),
            xsOtaVerdict: (reason: number) => {
              this.verdict = reason;
            },
            ...(options.ca instanceof Uint8Array ? { certificate: toArrayBuffer(options.ca) } : {}),
            ...(options.clientIdentity
              ? { clientCertificates: [toArrayBuffer(options.clientIdentity.certificate)], clientKey: toArrayBuffer(devicePkcs8(options.clientIdentity.privateKey)) }
              : {}),
          },
          ...callbacks,
        }) as unknown as ByteIO;
      } else {
        this.io = new TCP({ address, port: options.port, format: "buffer", ...callbacks }) as unknown as ByteIO;
      }
    } catch {
      // tcp.c throws for no socket, a failed bind or connect; session_419 for bad options.
      this.fail(options.tls ? Reason.SOCKET_TLS : Reason.SOCKET_REFUSED);
    }
  }

  private writableNow(bytes: number): void {
    this.writable = bytes;
    if (!this.open && !this.closed && this.options.tls && this.options.caPin !== undefined && this.verdict !== Reason.OK) {
      // The handshake finished but nothing checked the pin (the SDK's ssl/cert): refuse before any byte.
      this.fail(Reason.TLS_PIN_MISMATCH);
      return;
    }
    if (!this.open && !this.closed) {
      this.open = true;
      if (this.connectTimer !== undefined) Timer.clear(this.connectTimer);
      this.connectTimer = undefined;
      this.handlers.onConnect?.();
    }
    this.flush();
  }

  private readable(bytes: number): void {
    if (this.closed || this.io === undefined || bytes <= 0) return;
    const got = this.io.read(bytes);
    if (got instanceof ArrayBuffer && got.byteLength > 0) this.handlers.onData?.(new Uint8Array(got));
  }

  /** Bounded by the queue (at most MAX_QUEUED bytes). */
  private flush(): void {
    while (!this.closed && this.open && this.queue.length > 0 && this.writable > 0 && this.io !== undefined) {
      const head = this.queue[0];
      const n = Math.min(head.length, this.writable);
      this.writable -= n;
      this.queued -= n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
      try {
        this.io.write(toArrayBuffer(head.subarray(0, n)));
      } catch {
        this.fail(Reason.SOCKET_CLOSED);
        return;
      }
    }
  }

  private fail(reason: number): void {
    if (this.closed) return;
    this.closed = true;
    this.teardown();
    this.handlers.onClose?.(reason);
  }

  private dropResolver(): void {
    const resolver = this.resolver;
    this.resolver = undefined;
    resolver?.close();
  }

  private teardown(): void {
    if (this.connectTimer !== undefined) Timer.clear(this.connectTimer);
    this.connectTimer = undefined;
    this.queue = [];
    this.queued = 0;
    this.dropResolver();
    const io = this.io;
    this.io = undefined;
    io?.close();
  }
}

export class ModdableNetwork implements Network {
  /**
   * @param connectTimeoutMs bound on resolution plus connection
   * @param makeResolver a fresh name resolver per connection; without one only IPv4 literals can be reached
   */
  constructor(
    private readonly connectTimeoutMs = 30000,
    private readonly makeResolver?: () => NameResolver,
  ) {}

  connect(options: SocketOptions, handlers: SocketHandlers): Socket {
    if (typeof options.host !== "string" || options.host.length === 0 || options.host.length > 253) {
      throw new OtaError(Reason.BAD_ARGUMENT, "host must be a non-empty name of at most 253 characters");
    }
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new OtaError(Reason.BAD_ARGUMENT, `port ${options.port} outside 1..65535`);
    }
    if (options.tls !== true && options.tls !== false) throw new OtaError(Reason.BAD_ARGUMENT, "tls must be true or false");
    if (typeof options.ca === "string") throw new OtaError(Reason.BAD_ARGUMENT, "on the device the CA must be DER bytes, not PEM text");
    if (this.makeResolver === undefined && !isIPv4Literal(options.host)) {
      throw new OtaError(Reason.BAD_ARGUMENT, `host "${options.host}" is not an IPv4 literal and no DNS server is configured (mc/config dnsServers)`);
    }
    return new ModdableSocket(options, handlers, this.connectTimeoutMs, this.makeResolver);
  }
}
