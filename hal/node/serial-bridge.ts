/**
 * Host side of a simulated serial port: fans the device's output out to
 * every attached client (TCP connections, a PTY) and merges their input into
 * the device's receive path. The device end is hal/mock's SerialPipe.
 */
import type { SerialPipe } from "../mock/serial";

export type SerialClient = (data: Uint8Array) => void;

export class SerialBridge {
  private readonly clients = new Set<SerialClient>();
  /** Device output dropped because no client was attached. */
  droppedBytes = 0;

  constructor(private readonly pipe: SerialPipe) {
    pipe.onHostData = (data) => {
      if (this.clients.size === 0) {
        this.droppedBytes += data.length;
        return;
      }
      for (const c of this.clients) c(data);
    };
  }

  /** Receive the device's output from now on; returns the detach function. */
  attach(client: SerialClient): () => void {
    this.clients.add(client);
    return () => this.clients.delete(client);
  }

  /** Bytes typed by a client, toward the device. */
  send(data: Uint8Array): void {
    if (data.length > 0) this.pipe.send(data);
  }

  get clientCount(): number {
    return this.clients.size;
  }
}
