/** The reconnect policy: exponential, jittered inside its bounds, capped, reset on success, repeatable from a seed. */
import { describe, expect, it } from "vitest";
import { Backoff, seededRandom } from "../../src/protocol/backoff";

describe("Backoff", () => {
  it("doubles up to the ceiling without jitter", () => {
    const b = new Backoff({ initialMs: 500, maxMs: 10_000, jitter: 0, random: () => 0.7 });
    expect(Array.from({ length: 8 }, () => b.next())).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
    expect(b.attempts).toBe(8);
  });
  it("keeps every jittered delay in [base × (1 − jitter), base] and never above the ceiling", () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 60_000, jitter: 0.5, random: seededRandom(42) });
    let base = 1000;
    for (let i = 0; i < 200; i++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.5));
      expect(d).toBeLessThanOrEqual(base);
      expect(d).toBeLessThanOrEqual(60_000);
      base = Math.min(base * 2, 60_000);
    }
  });
  it("spreads devices: different seeds give different delays at the same attempt", () => {
    const delays = new Set<number>();
    for (let seed = 1; seed <= 50; seed++) {
      const b = new Backoff({ initialMs: 1000, maxMs: 60_000, random: seededRandom(seed) });
      for (let i = 0; i < 5; i++) b.next();
      delays.add(b.next());
    }
    expect(delays.size).toBeGreaterThan(40);
  });
  it("is repeatable from its seed", () => {
    const run = () => {
      const b = new Backoff({ initialMs: 100, maxMs: 5000, random: seededRandom(9) });
      return Array.from({ length: 10 }, () => b.next());
    };
    expect(run()).toEqual(run());
  });
  it("starts over after reset", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 5000, jitter: 0, random: () => 0 });
    b.next();
    b.next();
    b.next();
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(100);
  });
  it("refuses bad options", () => {
    const r = () => 0.5;
    expect(() => new Backoff({ initialMs: 0, maxMs: 10, random: r })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 20, maxMs: 10, random: r })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 1, maxMs: 10, jitter: 2, random: r })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 1, maxMs: 10, random: undefined as never })).toThrow(TypeError);
  });
});
