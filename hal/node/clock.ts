/**
 * The HAL `Clock` on Node: monotonic milliseconds (performance.now) and
 * timers from Node's event loop. Timers are unref'd only when asked, so a
 * process with a live link stays alive.
 */
import type { Clock, TimerId } from "../types";

export class NodeClock implements Clock {
  private nextId = 1;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly origin = performance.now();

  constructor(private readonly unref = false) {}

  now(): number {
    return Math.floor(performance.now() - this.origin);
  }

  setTimer(callback: () => void, delayMs: number, repeatMs?: number): TimerId {
    if (typeof callback !== "function") throw new TypeError("setTimer: callback must be a function");
    if (!(delayMs >= 0)) throw new RangeError(`setTimer: delayMs must be >= 0, got ${delayMs}`);
    if (repeatMs !== undefined && !(repeatMs > 0)) throw new RangeError(`setTimer: repeatMs must be > 0, got ${repeatMs}`);
    const id = this.nextId++;
    const t = setTimeout(() => {
      if (repeatMs === undefined) {
        this.timers.delete(id);
        callback();
        return;
      }
      const r = setInterval(callback, repeatMs);
      if (this.unref) r.unref();
      this.timers.set(id, r);
      callback();
    }, delayMs);
    if (this.unref) t.unref();
    this.timers.set(id, t);
    return id;
  }

  clearTimer(id: TimerId): void {
    const t = this.timers.get(id);
    if (t === undefined) return;
    clearTimeout(t);
    clearInterval(t);
    this.timers.delete(id);
  }

  /** Cancel every timer (teardown). */
  clearAll(): void {
    for (const t of this.timers.values()) {
      clearTimeout(t);
      clearInterval(t);
    }
    this.timers.clear();
  }
}
