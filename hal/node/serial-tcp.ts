/**
 * A simulated serial port served on a local TCP port (raw bytes, no telnet
 * negotiation): `nc 127.0.0.1 7000` or a terminal program's TCP mode
 * attaches. Several clients may attach at once (bounded); all see the
 * device's output, and what any of them types reaches the device.
 */
import * as net from "node:net";
import type { SerialBridge } from "./serial-bridge";

/** Clients per port; more are refused (closed at once). */
export const MAX_SERIAL_TCP_CLIENTS = 4;

export interface SerialTcpServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Listen on `host:port` (port 0 picks a free one).
 * @throws the listen error (EADDRINUSE, …) through the promise.
 */
export function serveSerialTcp(bridge: SerialBridge, port: number, host = "127.0.0.1"): Promise<SerialTcpServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    if (sockets.size >= MAX_SERIAL_TCP_CLIENTS) {
      socket.end("console busy\r\n");
      return;
    }
    sockets.add(socket);
    socket.setNoDelay(true);
    const detach = bridge.attach((data) => {
      if (!socket.destroyed) socket.write(data);
    });
    socket.on("data", (chunk: Buffer) => bridge.send(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice()));
    socket.on("close", () => {
      detach();
      sockets.delete(socket);
    });
    socket.on("error", () => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address() as net.AddressInfo;
      resolve({
        host,
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
