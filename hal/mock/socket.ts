/**
 * In-memory sockets over the virtual clock: a MockNetwork routes `connect`
 * to listeners registered by host and port (the in-process broker, a scripted
 * server), and each connection is a pair of ends whose bytes are delivered on
 * the next clock tick (or after `latencyMs`). Tests can cut a link, stall it,
 * or refuse connections.
 */
import { OtaError, Reason } from "../../src/errors";
import type { Network, Socket, SocketHandlers, SocketOptions } from "../types";
import type { VirtualClock } from "./clock";

/** The server side of an accepted connection. */
export interface PeerSocket {
  write(data: Uint8Array): void;
  close(): void;
  readonly closed: boolean;
}

/** What a listener gets for each accepted connection; returns the server's handlers. */
export type Acceptor = (peer: PeerSocket, options: SocketOptions) => SocketHandlers;

/** Largest single write the HAL allows. */
export const MAX_SOCKET_WRITE = 16384;

class Link {
  closed = false;
  stalled = false;
  /** When each direction's wire is free again (bandwidth shaping). */
  private busyUntil = { client: 0, server: 0 };
  client!: SocketHandlers;
  server!: SocketHandlers;
  constructor(readonly net: MockNetwork) {}

  deliver(to: "client" | "server", data: Uint8Array): void {
    if (this.closed) return;
    const copy = data.slice();
    if (to === "server") this.net.bytesToServer += copy.length;
    else this.net.bytesToClient += copy.length;
    const now = this.net.clock.now();
    const bw = this.net.bytesPerMs;
    const start = Math.max(now, this.busyUntil[to]);
    this.busyUntil[to] = start + (bw > 0 ? copy.length / bw : 0);
    this.net.clock.setTimer(() => {
      if (this.closed || this.stalled) return;
      (to === "server" ? this.server : this.client).onData?.(copy);
    }, Math.ceil(this.busyUntil[to] - now) + this.net.latencyMs);
  }

  close(by: "client" | "server" | "network", reason: number): void {
    if (this.closed) return;
    this.closed = true;
    this.net.clock.setTimer(() => {
      if (by !== "client") this.client.onClose?.(reason);
      if (by !== "server") this.server.onClose?.(reason);
    }, 0);
  }
}

export class MockNetwork implements Network {
  private listeners = new Map<string, Acceptor>();
  private links: Link[] = [];
  latencyMs = 0;
  /** Link speed in each direction, bytes per ms (125 = 1 Mbit/s); 0 = unlimited. */
  bytesPerMs = 0;
  /** Connections attempted, for assertions. */
  connects = 0;
  /** Bytes carried in each direction over all links so far. */
  bytesToServer = 0;
  bytesToClient = 0;

  constructor(readonly clock: VirtualClock) {}

  /** Register a server at host:port. */
  listen(host: string, port: number, accept: Acceptor): void {
    this.listeners.set(`${host}:${port}`, accept);
  }

  unlisten(host: string, port: number): void {
    this.listeners.delete(`${host}:${port}`);
  }

  connect(options: SocketOptions, handlers: SocketHandlers): Socket {
    if (!options || typeof options.host !== "string" || !Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new OtaError(Reason.BAD_ARGUMENT, "connect: host and port 1..65535 required");
    }
    this.connects++;
    const link = new Link(this);
    link.client = handlers;
    const accept = this.listeners.get(`${options.host}:${options.port}`);
    if (!accept) {
      link.closed = true;
      this.clock.setTimer(() => handlers.onClose?.(Reason.SOCKET_REFUSED), this.latencyMs);
    } else {
      this.links.push(link);
      const peer: PeerSocket = {
        write: (data) => link.deliver("client", data),
        close: () => link.close("server", Reason.SOCKET_CLOSED),
        get closed() {
          return link.closed;
        },
      };
      link.server = accept(peer, options);
      this.clock.setTimer(() => {
        if (link.closed) return;
        link.server.onConnect?.();
        handlers.onConnect?.();
      }, this.latencyMs);
    }
    return {
      write(data: Uint8Array): void {
        if (link.closed) throw new OtaError(Reason.SOCKET_CLOSED, "write on a closed socket");
        if (data.length > MAX_SOCKET_WRITE) throw new OtaError(Reason.BAD_ARGUMENT, `write of ${data.length} > ${MAX_SOCKET_WRITE}`);
        link.deliver("server", data);
      },
      close(): void {
        link.close("client", Reason.SOCKET_CLOSED);
      },
    };
  }

  /** Drop every open link (the cable is pulled); both sides see SOCKET_CLOSED. */
  dropAll(): void {
    for (const l of this.links) l.close("network", Reason.SOCKET_CLOSED);
    this.links = [];
  }

  /** Stop delivering bytes on every open link without closing it. */
  stallAll(stalled = true): void {
    for (const l of this.links) l.stalled = stalled;
  }
}
