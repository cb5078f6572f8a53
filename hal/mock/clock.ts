/**
 * A deterministic virtual clock and timer queue. Time moves only when a test
 * (or the simulator's scheduler) calls `advance` or `step`; due timers then
 * run in deadline order, ties in creation order.
 *
 * The queue is a binary min-heap on (due, id) with lazy cancellation: a
 * cleared timer stays in the heap, marked, until it reaches the top (or the
 * heap is compacted when cancelled entries outnumber live ones), so setTimer,
 * clearTimer and the next deadline cost O(log n) whatever the number of
 * timers — a fleet of 1,000 devices keeps tens of thousands.
 */
import type { Clock, TimerId } from "../types";

interface Timer {
  id: number;
  due: number;
  repeat: number;
  callback: () => void;
  cancelled: boolean;
}

/** Bound on timers fired by one `advance`, so a zero-period timer cannot hang a test. */
export const MAX_FIRES_PER_ADVANCE = 1_000_000;

function before(a: Timer, b: Timer): boolean {
  return a.due < b.due || (a.due === b.due && a.id < b.id);
}

export class VirtualClock implements Clock {
  private time: number;
  private nextId = 1;
  /** Min-heap on (due, id); may hold cancelled entries. */
  private heap: Timer[] = [];
  /** Live timers by id. */
  private readonly live = new Map<number, Timer>();
  /** Timers fired since construction (the simulator's event count). */
  fired = 0;
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
    const t: Timer = { id: this.nextId++, due: this.time + delayMs, repeat: repeatMs ?? 0, callback, cancelled: false };
    this.live.set(t.id, t);
    this.push(t);
    return t.id;
  }

  clearTimer(id: TimerId): void {
    const t = this.live.get(id as number);
    if (!t) return;
    t.cancelled = true;
    this.live.delete(t.id);
    if (this.heap.length > 64 && this.heap.length > 3 * this.live.size) this.compact();
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.live.size;
  }

  /** Deadline of the next timer, or undefined. */
  nextDue(): number | undefined {
    return this.top()?.due;
  }

  /** Move time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance: ms must be >= 0, got ${ms}`);
    const end = this.time + ms;
    for (let fires = 0; ; fires++) {
      if (fires >= MAX_FIRES_PER_ADVANCE) throw new Error("advance: timer storm (more than 1e6 fires)");
      if (!this.step(end)) break;
    }
    this.time = Math.max(this.time, end);
  }

  /**
   * Run the one earliest timer if it is due at or before `limit`, moving time
   * to its deadline (never backwards: a late timer runs at the current time).
   * Returns false, with time unchanged, when there is none.
   */
  step(limit: number = Infinity): boolean {
    const t = this.top();
    if (!t || t.due > limit) return false;
    this.time = Math.max(this.time, t.due);
    this.pop();
    if (t.repeat > 0) {
      t.due += t.repeat;
      this.push(t);
    } else this.live.delete(t.id);
    this.fired++;
    this.guard?.();
    t.callback();
    return true;
  }

  /** Drop every timer (the device reset). */
  clearAll(): void {
    for (const t of this.heap) t.cancelled = true;
    this.heap = [];
    this.live.clear();
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

  /** The earliest live timer (cancelled entries at the top are dropped on the way). */
  private top(): Timer | undefined {
    while (this.heap.length > 0 && this.heap[0].cancelled) this.pop();
    return this.heap[0];
  }

  private push(t: Timer): void {
    const h = this.heap;
    let i = h.push(t) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(t, h[parent])) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = t;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && before(h[r], h[l]) ? r : l;
      if (!before(h[c], last)) break;
      h[i] = h[c];
      i = c;
    }
    h[i] = last;
  }

  /** Rebuild the heap from the live timers only. */
  private compact(): void {
    const live = this.heap.filter((t) => !t.cancelled);
    this.heap = [];
    for (const t of live) this.push(t);
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
