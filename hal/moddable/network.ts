/**
 * Byte sockets over ECMA-419 `embedded:io/socket/tcp` and Moddable's
 * `embedded:io/socket/tcp/tls`. Plaintext only when `tls === false` is asked
 * for explicitly (the HAL rule).
 *
 * TLS trust: `options.ca` must be the CA certificate in DER (Moddable's TLS
 * takes DER, not PEM); it is handed to Moddable's TLS as the `certificate`
 * of its `secure` dictionary (the SecureSocket convention). Without a CA the
 * TLS layer uses the certificates built into the firmware. SNI is
 * `serverName ?? host`.
 *
 * Sends the socket cannot take now wait in a queue bounded to MAX_QUEUED
 * bytes; a send beyond it closes the socket (SOCKET_CLOSED). A connection not
 * open within connectTimeoutMs is closed with SOCKET_TIMEOUT.
 */
import TCP from "embedded:io/socket/tcp";
import TLS from "embedded:io/socket/tcp/tls";
import Timer from "timer";
import { OtaError, Reason } from "../../src/errors";
import type { Network, Socket, SocketHandlers, SocketOptions } from "../types";

export const MAX_QUEUED = 32768;
export const MAX_SEND = 16384;

interface ByteIO {
  read(count: number): unknown;
  write(data: ArrayBuffer): unknown;
  close(): unknown;
}

function toArrayBuffer(data: Uint8Array): ArrayBuffer {
  return data.slice().buffer as ArrayBuffer;
}

class ModdableSocket implements Socket {
  private io: ByteIO | undefined;
  private open = false;
  private closed = false;
  private writable = 0;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private connectTimer: Timer | undefined;

  constructor(options: SocketOptions, private readonly handlers: SocketHandlers, connectTimeoutMs: number) {
    const self = this;
    const callbacks = {
      onReadable(bytes: number) {
        self.readable(bytes);
      },
      onWritable(bytes: number) {
        self.writableNow(bytes);
      },
      onError() {
        self.fail(self.open ? Reason.SOCKET_CLOSED : options.tls ? Reason.SOCKET_TLS : Reason.SOCKET_REFUSED);
      },
    };
    this.connectTimer = Timer.set(() => {
      this.connectTimer = undefined;
      if (!this.open) this.fail(Reason.SOCKET_TIMEOUT);
    }, connectTimeoutMs);
    if (options.tls) {
      this.io = new TLS({
        host: options.host,
        port: options.port,
        format: "buffer",
        secure: {
          serverName: options.serverName ?? options.host,
          protocolVersion: 0x0303,
          ...(options.ca instanceof Uint8Array ? { certificate: toArrayBuffer(options.ca) } : {}),
        },
        ...callbacks,
      }) as unknown as ByteIO;
    } else {
      this.io = new TCP({ host: options.host, port: options.port, format: "buffer", ...callbacks }) as unknown as ByteIO;
    }
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

  private writableNow(bytes: number): void {
    this.writable = bytes;
    if (!this.open && !this.closed) {
      this.open = true;
      if (this.connectTimer !== undefined) Timer.clear(this.connectTimer);
      this.connectTimer = undefined;
      this.handlers.onConnect?.();
    }
    this.flush();
  }

  private readable(bytes: number): void {
    if (this.closed || this.io === undefined) return;
    const got = this.io.read(bytes);
    if (got instanceof ArrayBuffer && got.byteLength > 0) this.handlers.onData?.(new Uint8Array(got));
  }

  /** Bounded by the queue (at most MAX_QUEUED bytes). */
  private flush(): void {
    while (!this.closed && this.open && this.queue.length > 0 && this.writable > 0 && this.io !== undefined) {
      const head = this.queue[0];
      const n = Math.min(head.length, this.writable);
      this.io.write(toArrayBuffer(head.subarray(0, n)));
      this.writable -= n;
      this.queued -= n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
    }
  }

  private fail(reason: number): void {
    if (this.closed) return;
    this.closed = true;
    this.teardown();
    this.handlers.onClose?.(reason);
  }

  private teardown(): void {
    if (this.connectTimer !== undefined) Timer.clear(this.connectTimer);
    this.connectTimer = undefined;
    this.queue = [];
    this.queued = 0;
    const io = this.io;
    this.io = undefined;
    io?.close();
  }
}

export class ModdableNetwork implements Network {
  constructor(private readonly connectTimeoutMs = 30000) {}

  connect(options: SocketOptions, handlers: SocketHandlers): Socket {
    if (typeof options.host !== "string" || options.host.length === 0 || options.host.length > 253) {
      throw new OtaError(Reason.BAD_ARGUMENT, "host must be a non-empty name of at most 253 characters");
    }
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new OtaError(Reason.BAD_ARGUMENT, `port ${options.port} outside 1..65535`);
    }
    if (options.tls !== true && options.tls !== false) throw new OtaError(Reason.BAD_ARGUMENT, "tls must be true or false");
    if (typeof options.ca === "string") throw new OtaError(Reason.BAD_ARGUMENT, "on the device the CA must be DER bytes, not PEM text");
    return new ModdableSocket(options, handlers, this.connectTimeoutMs);
  }
}
