/**
 * A deterministic virtual clock and timer queue. Time moves only when a test
 * (or the simulator's scheduler) calls `advance`; due timers then run in
 * deadline order, ties in creation order.
 */
import type { Clock, TimerId } from "../types";

interface Timer {
  id: number;
  due: number;
  repeat: number;
  callback: () => void;
}

/** Bound on timers fired by one `advance`, so a zero-period timer cannot hang a test. */
export const MAX_FIRES_PER_ADVANCE = 1_000_000;

export class VirtualClock implements Clock {
  private time: number;
  private nextId = 1;
  private timers: Timer[] = [];
  /** Set by the device model: called before a timer fires, may throw to stop the device. */
  guard: (() => void) | undefined;

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, delayMs: number, repeatMs?: number): TimerId {
    if (typeof callback !== "function") throw new TypeError("setTimer: callback must be a function");
    if (!(delayMs >= 0)) throw new RangeError(`setTimer: delayMs must be >= 0, got ${delayMs}`);
    if (repeatMs !== undefined && !(repeatMs > 0)) throw new RangeError(`setTimer: repeatMs must be > 0, got ${repeatMs}`);
    const id = this.nextId++;
    this.timers.push({ id, due: this.time + delayMs, repeat: repeatMs ?? 0, callback });
    return id;
  }

  clearTimer(id: TimerId): void {
    const i = this.timers.findIndex((t) => t.id === id);
    if (i >= 0) this.timers.splice(i, 1);
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.timers.length;
  }

  /** Deadline of the next timer, or undefined. */
  nextDue(): number | undefined {
    let best: number | undefined;
    for (const t of this.timers) if (best === undefined || t.due < best) best = t.due;
    return best;
  }

  /** Move time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance: ms must be >= 0, got ${ms}`);
    const end = this.time + ms;
    for (let fires = 0; ; fires++) {
      if (fires >= MAX_FIRES_PER_ADVANCE) throw new Error("advance: timer storm (more than 1e6 fires)");
      const t = this.earliestDue(end);
      if (!t) break;
      this.time = Math.max(this.time, t.due);
      if (t.repeat > 0) t.due += t.repeat;
      else this.timers.splice(this.timers.indexOf(t), 1);
      this.guard?.();
      t.callback();
    }
    this.time = Math.max(this.time, end);
  }

  /** Drop every timer (the device reset). */
  clearAll(): void {
    this.timers = [];
  }

  /**
   * CPU time passes inside a callback (a cost model charges computation):
   * time moves on without firing timers; those that fell due fire, late, once
   * the callback returns — as a real event loop would run them.
   */
  consume(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`consume: ms must be >= 0, got ${ms}`);
    // Whole milliseconds only (time stays an integer); the remainder carries over.
    this.carry += ms;
    const whole = Math.floor(this.carry);
    this.carry -= whole;
    this.time += whole;
  }

  private carry = 0;

  private earliestDue(limit: number): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.timers) {
      if (t.due <= limit && (!best || t.due < best.due || (t.due === best.due && t.id < best.id))) best = t;
    }
    return best;
  }
}

/**
 * One device's view of a shared VirtualClock: its timers run through `wrap`
 * (the device model's guard, so a reset inside a callback reboots that device
 * and nothing else) and `clearAll` drops only this device's timers (a reset).
 */
export class ClockView implements Clock {
  private readonly mine = new Set<TimerId>();
  /** Longest single callback of this device, in virtual ms (CPU time charged by a cost model). */
  longestCallbackMs = 0;

  constructor(
    readonly parent: VirtualClock,
    private readonly wrap: (fn: () => void) => void,
  ) {}

  now(): number {
    return this.parent.now();
  }

  setTimer(callback: () => void, delayMs: number, repeatMs?: number): TimerId {
    if (typeof callback !== "function") throw new TypeError("setTimer: callback must be a function");
    const id: TimerId = this.parent.setTimer(
      () => {
        if (repeatMs === undefined) this.mine.delete(id);
        const t0 = this.parent.now();
        this.wrap(callback);
        this.longestCallbackMs = Math.max(this.longestCallbackMs, this.parent.now() - t0);
      },
      delayMs,
      repeatMs,
    );
    this.mine.add(id);
    return id;
  }

  clearTimer(id: TimerId): void {
    if (!this.mine.delete(id)) return;
    this.parent.clearTimer(id);
  }

  /** Timers of this device still pending. */
  get pending(): number {
    return this.mine.size;
  }

  /** Drop every timer of this device. */
  clearAll(): void {
    for (const id of this.mine) this.parent.clearTimer(id);
    this.mine.clear();
  }
}
