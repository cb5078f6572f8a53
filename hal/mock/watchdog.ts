/**
 * A hardware watchdog over the virtual clock: once started it cannot be
 * stopped; when not fed within its timeout it calls `onExpire` (the device
 * model resets the virtual device with cause "watchdog").
 */
import { OtaError, Reason } from "../../src/errors";
import type { Watchdog } from "../types";
import type { Clock } from "../types";

export const WATCHDOG_MAX_MS = 32000;

export class MockWatchdog implements Watchdog {
  timeoutMs = 0;
  /** Feeds since start, for assertions. */
  feeds = 0;
  /** Longest gap between feeds seen, in ms. */
  longestGapMs = 0;
  private timer: number | undefined;
  private lastFeed = 0;

  constructor(private readonly clock: Clock, private readonly onExpire: () => void) {}

  start(timeoutMs: number): void {
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > WATCHDOG_MAX_MS) {
      throw new OtaError(Reason.BAD_ARGUMENT, `watchdog timeout ${timeoutMs} outside 1..${WATCHDOG_MAX_MS} ms`);
    }
    this.timeoutMs = timeoutMs;
    this.lastFeed = this.clock.now();
    this.arm();
  }

  feed(): void {
    if (this.timeoutMs === 0) return;
    const now = this.clock.now();
    // Fed too late: on hardware the reset would already have happened during the computation.
    if (now - this.lastFeed > this.timeoutMs) return this.onExpire();
    this.longestGapMs = Math.max(this.longestGapMs, now - this.lastFeed);
    this.lastFeed = now;
    this.feeds++;
    this.arm();
  }

  private arm(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.onExpire();
    }, this.timeoutMs);
  }
}
