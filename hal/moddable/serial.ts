/**
 * The operator's AT console over ECMA-419 `embedded:io/serial` on Zephyr
 * (modules/io/serial/zephyr/serial.js and serial.c), opened from the host
 * provider's `device.serial.default`. tools/mcdevicetree.js generates that
 * entry for every devicetree UART as `{io: Serial, port: "<node label>"}`,
 * with `baud` only where the node has `current-speed`, and makes the first
 * one `default`; there is no `device.Serial`. xs_serial_constructor requires
 * `port` ("invalid port") and `baud` ("invalid baud", 1..20000000), so the
 * adapter passes the configured baud explicitly.
 *
 * From serial.c: onWritable(count) reports the free space of the transmit
 * ring buffer (not an increment), write() throws "output full" when the data
 * does not fit, read(count) returns an ArrayBuffer of at most count bytes (or
 * undefined). Output the UART cannot take now waits in a queue bounded to
 * MAX_QUEUED bytes; beyond that bytes are dropped and counted (the HAL's write
 * never throws and never blocks).
 */
import type { Serial } from "../types";

export const MAX_QUEUED = 4096;

/** The Serial instance as serial.js defines it. */
export interface SerialIO {
  read(count?: number): ArrayBuffer | number | undefined;
  write(data: ArrayBuffer | ArrayBufferView | number): void;
  close(): void;
}

/** One entry of the host provider's `device.serial` (tools/mcdevicetree.js). */
export interface SerialPort {
  readonly io: new (options: {
    port: string;
    baud: number;
    format: "buffer";
    onReadable(this: SerialIO, bytes: number): void;
    onWritable(this: SerialIO, bytes: number): void;
  }) => SerialIO;
  readonly port: string;
  readonly baud?: number;
}

/**
 * A UART from a host provider shaped like Moddable's Zephyr one: the node
 * labelled `label` when given (mc/config serialPort), else `default` (the
 * first UART in the devicetree, which on a board with a modem UART may not be
 * the console).
 * @throws TypeError when the provider has no such entry
 */
export function serialPort(provider: unknown, label?: string): SerialPort {
  const serial = (provider as { serial?: Record<string, SerialPort | undefined> } | undefined)?.serial;
  const port = serial?.[label ?? "default"];
  if (port === undefined || typeof port.io !== "function" || typeof port.port !== "string") {
    throw new TypeError(`the host provider has no device.serial.${label ?? "default"} (no such UART in the devicetree)`);
  }
  return port;
}

export class ModdableSerial implements Serial {
  /** Bytes dropped because the queue was full. */
  dropped = 0;
  private readonly io: SerialIO;
  private handler: ((data: Uint8Array) => void) | undefined;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private writable = 0;

  /**
   * @param port the UART, from serialPort(device, config.serialPort)
   * @param baud the console's baud rate (mc/config serialBaud)
   * @throws the module's errors: "invalid port", "uart not ready", "invalid baud", "UART configure failed"
   */
  constructor(port: SerialPort, baud: number) {
    const self = this;
    this.io = new port.io({
      port: port.port,
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
      try {
        this.io.write(head.subarray(0, n));
      } catch {
        // "output full": the reported space was stale. Keep the bytes; the next onWritable resumes.
        this.writable = 0;
        return;
      }
      this.writable -= n;
      this.queued -= n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
    }
  }
}
