/**
 * Clock over Moddable's `time` (Time.ticks: monotonic milliseconds) and
 * `timer` (Timer.set / Timer.clear; callbacks run from the event loop, never
 * inside set). Live timers are held in a map bounded by what the core arms
 * (a handful); fired one-shot timers leave it.
 */
import Time from "time";
import Timer from "timer";
import type { Clock, TimerId } from "../types";

export class ModdableClock implements Clock {
  private readonly timers = new Map<TimerId, Timer>();
  private nextId = 1;

  now(): number {
    return Time.ticks;
  }

  setTimer(callback: () => void, delayMs: number, repeatMs?: number): TimerId {
    const id = this.nextId++;
    const repeating = repeatMs !== undefined;
    const timer = Timer.set(
      () => {
        if (!repeating) this.timers.delete(id);
        callback();
      },
      Math.max(0, delayMs),
      repeating ? Math.max(1, repeatMs) : undefined,
    );
    this.timers.set(id, timer);
    return id;
  }

  clearTimer(id: TimerId): void {
    const timer = this.timers.get(id);
    if (timer === undefined) return;
    this.timers.delete(id);
    Timer.clear(timer);
  }
}
