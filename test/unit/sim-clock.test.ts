/**
 * hal/mock/clock.ts: the timer heap against a naive reference (a list
 * scanned for the earliest (due, id)), with random set/clear/advance mixes,
 * repeating timers, timers cleared or set from inside a callback, and the
 * heap's compaction after many cancellations.
 */
import { describe, expect, it } from "vitest";
import { ClockView, VirtualClock } from "../../hal/mock/clock";
import { Prng } from "../../hal/mock/prng";

/** The reference: the old linear scan. */
class Reference {
  time = 0;
  next = 1;
  timers: { id: number; due: number; repeat: number; cb: () => void }[] = [];
  set(cb: () => void, delay: number, repeat?: number): number {
    const id = this.next++;
    this.timers.push({ id, due: this.time + delay, repeat: repeat ?? 0, cb });
    return id;
  }
  clear(id: number): void {
    const i = this.timers.findIndex((t) => t.id === id);
    if (i >= 0) this.timers.splice(i, 1);
  }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let best: (typeof this.timers)[number] | undefined;
      for (const t of this.timers) if (t.due <= end && (!best || t.due < best.due || (t.due === best.due && t.id < best.id))) best = t;
      if (!best) break;
      this.time = Math.max(this.time, best.due);
      if (best.repeat > 0) best.due += best.repeat;
      else this.timers.splice(this.timers.indexOf(best), 1);
      best.cb();
    }
    this.time = end;
  }
}

describe("VirtualClock (timer heap)", () => {
  it("fires in (deadline, creation) order like the linear scan, over random set/clear/advance mixes", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const prng = new Prng(seed);
      const clock = new VirtualClock();
      const ref = new Reference();
      const got: string[] = [];
      const want: string[] = [];
      const ids: [number, number][] = [];
      for (let op = 0; op < 600; op++) {
        const r = prng.below(10);
        if (r < 5) {
          const delay = prng.below(5) === 0 ? 0 : prng.below(200);
          const repeat = prng.below(6) === 0 ? 1 + prng.below(50) : undefined;
          const tag = `t${op}`;
          // Some callbacks clear another timer or set a new one (the same in both).
          const effect = prng.below(8);
          const victim = ids.length ? prng.below(ids.length) : -1;
          let a = 0;
          let b = 0;
          a = clock.setTimer(() => {
            got.push(`${tag}@${clock.now()}`);
            if (effect === 0 && victim >= 0) clock.clearTimer(ids[victim][0]);
            if (effect === 1) clock.setTimer(() => got.push(`${tag}.child@${clock.now()}`), 3);
            if (repeat !== undefined && effect === 2) clock.clearTimer(a);
          }, delay, repeat) as number;
          b = ref.set(() => {
            want.push(`${tag}@${ref.time}`);
            if (effect === 0 && victim >= 0) ref.clear(ids[victim][1]);
            if (effect === 1) ref.set(() => want.push(`${tag}.child@${ref.time}`), 3);
            if (repeat !== undefined && effect === 2) ref.clear(b);
          }, delay, repeat);
          ids.push([a, b]);
        } else if (r < 7 && ids.length) {
          const k = prng.below(ids.length);
          clock.clearTimer(ids[k][0]);
          ref.clear(ids[k][1]);
        } else {
          const ms = prng.below(120);
          clock.advance(ms);
          ref.advance(ms);
          expect(clock.now()).toBe(ref.time);
        }
      }
      clock.advance(1000);
      ref.advance(1000);
      expect(got).toEqual(want);
      expect(clock.pending).toBe(ref.timers.length);
    }
  });

  it("step runs one timer at a time and reports the next deadline", () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    clock.setTimer(() => seen.push(2), 20);
    clock.setTimer(() => seen.push(1), 10);
    clock.setTimer(() => seen.push(3), 20);
    expect(clock.nextDue()).toBe(10);
    expect(clock.step(5)).toBe(false);
    expect(clock.now()).toBe(0);
    expect(clock.step()).toBe(true);
    expect(seen).toEqual([1]);
    expect(clock.now()).toBe(10);
    expect(clock.nextDue()).toBe(20);
    expect(clock.step()).toBe(true);
    expect(clock.step()).toBe(true);
    expect(seen).toEqual([1, 2, 3]);
    expect(clock.step()).toBe(false);
    expect(clock.nextDue()).toBeUndefined();
    expect(clock.fired).toBe(3);
  });

  it("keeps the heap small when timers are re-armed many times (a keepalive reset at every packet)", () => {
    const clock = new VirtualClock();
    let id = clock.setTimer(() => {}, 60_000);
    for (let i = 0; i < 100_000; i++) {
      clock.clearTimer(id);
      id = clock.setTimer(() => {}, 60_000);
    }
    expect(clock.pending).toBe(1);
    // compaction bounds the cancelled entries: the heap is a small multiple of the live timers
    expect((clock as unknown as { heap: unknown[] }).heap.length).toBeLessThanOrEqual(200);
  });

  it("a device view clears only its own timers", () => {
    const clock = new VirtualClock();
    const a = new ClockView(clock, (fn) => fn());
    const b = new ClockView(clock, (fn) => fn());
    const seen: string[] = [];
    a.setTimer(() => seen.push("a"), 5);
    b.setTimer(() => seen.push("b"), 5);
    a.setTimer(() => seen.push("a-repeat"), 2, 2);
    a.clearAll();
    clock.advance(10);
    expect(seen).toEqual(["b"]);
    expect(a.pending).toBe(0);
    expect(clock.pending).toBe(0);
  });
});
