/**
 * The operator's AT console over ECMA-419 `embedded:io/serial`, built from
 * the host provider (`device.io.Serial` with `device.Serial.default`, the
 * board's console UART). Output the UART cannot take now waits in a queue
 * bounded to MAX_QUEUED bytes; beyond that bytes are dropped and counted
 * (the HAL's write never throws and never blocks).
 */
import type { Serial } from "../types";

export const MAX_QUEUED = 4096;

type SerialIO = InstanceType<typeof device.io.Serial>;

export class ModdableSerial implements Serial {
  /** Bytes dropped because the queue was full. */
  dropped = 0;
  private readonly io: SerialIO;
  private handler: ((data: Uint8Array) => void) | undefined;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private writable = 0;

  constructor(baud: number) {
    const self = this;
    this.io = new device.io.Serial({
      ...device.Serial.default,
      baud,
      format: "buffer",
      onReadable(bytes: number) {
        self.received(bytes);
      },
      onWritable(bytes: number) {
        self.writable = bytes;
        self.flush();
      },
    });
  }

  write(data: Uint8Array): void {
    if (this.queued + data.length > MAX_QUEUED) {
      this.dropped += data.length;
      return;
    }
    this.queue.push(data.slice());
    this.queued += data.length;
    this.flush();
  }

  onReceive(handler: (data: Uint8Array) => void): void {
    this.handler = handler;
  }

  private received(bytes: number): void {
    const got = this.io.read(bytes);
    if (got instanceof ArrayBuffer && got.byteLength > 0) this.handler?.(new Uint8Array(got));
  }

  /** Bounded by the queue length (at most MAX_QUEUED bytes). */
  private flush(): void {
    while (this.queue.length > 0 && this.writable > 0) {
      const head = this.queue[0];
      const n = Math.min(head.length, this.writable);
      this.io.write(head.subarray(0, n));
      this.writable -= n;
      this.queued -= n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
    }
  }
}
