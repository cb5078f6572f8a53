/**
 * A serial pipe: the device end implements the Serial HAL; the host end is
 * what a test (or the simulator's PTY/TCP bridge) types into and reads from.
 * Delivery is deferred through the virtual clock (0 ms timer) so that no
 * callback runs re-entrantly, as the HAL promises.
 */
import type { Serial } from "../types";
import type { Clock } from "../types";

/** Bytes buffered toward the host before the oldest are dropped (a UART FIFO overrun). */
export const SERIAL_HOST_BUFFER = 64 * 1024;

export class SerialPipe implements Serial {
  private handler: ((data: Uint8Array) => void) | undefined;
  private toHost: Uint8Array[] = [];
  private toHostBytes = 0;
  /** Bytes dropped because the host did not read. */
  overruns = 0;
  /** Called when the device writes; the simulator bridges it to a PTY or TCP client. */
  onHostData: ((data: Uint8Array) => void) | undefined;

  constructor(private readonly clock: Clock) {}

  // device side (HAL)
  write(data: Uint8Array): void {
    const copy = data.slice();
    if (this.onHostData) {
      this.onHostData(copy);
      return;
    }
    this.toHost.push(copy);
    this.toHostBytes += copy.length;
    while (this.toHostBytes > SERIAL_HOST_BUFFER) {
      const dropped = this.toHost.shift()!;
      this.toHostBytes -= dropped.length;
      this.overruns += dropped.length;
    }
  }

  onReceive(handler: (data: Uint8Array) => void): void {
    this.handler = handler;
  }

  // host side
  /** The operator types bytes; they reach the device at the next clock tick. */
  send(data: Uint8Array | string): void {
    const bytes = typeof data === "string" ? asciiBytes(data) : data.slice();
    this.clock.setTimer(() => this.handler?.(bytes), 0);
  }

  /** Everything the device wrote since the last call. */
  drain(): Uint8Array {
    const out = new Uint8Array(this.toHostBytes);
    let o = 0;
    for (const c of this.toHost) {
      out.set(c, o);
      o += c.length;
    }
    this.toHost = [];
    this.toHostBytes = 0;
    return out;
  }

  /** Everything the device wrote since the last call, as Latin-1 text. */
  drainText(): string {
    const b = this.drain();
    let s = "";
    for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return s;
  }
}

function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}
