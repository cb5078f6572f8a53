/**
 * A monotonic counter that refuses to decrease. Its value survives resets of
 * the virtual device; `advance` is one mutating operation on the power rail,
 * atomic as the HAL promises (a cut leaves the old value).
 */
import { OtaError, Reason } from "../../src/errors";
import type { MonotonicCounter } from "../types";
import type { PowerRail } from "./rail";

export class MockCounter implements MonotonicCounter {
  value: number;
  /** Every value the counter ever held, in order (for the campaign's assertions). */
  readonly history: number[];

  constructor(private readonly rail: PowerRail, initial = 0) {
    this.value = initial;
    this.history = [initial];
  }

  read(): number {
    this.rail.check();
    return this.value;
  }

  advance(value: number): void {
    this.rail.check();
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new OtaError(Reason.BAD_ARGUMENT, `counter value ${value} not a 32-bit unsigned integer`);
    }
    if (value < this.value) throw new OtaError(Reason.COUNTER_DECREASE, `counter ${this.value} cannot go down to ${value}`);
    if (value === this.value) return;
    if (this.rail.mutate() !== "ok") this.rail.fail();
    this.value = value;
    this.history.push(value);
  }
}
