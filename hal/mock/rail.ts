/**
 * The virtual device's power rail: the supply voltage the Power HAL reports,
 * and the power-cut injector every mutating mock operation goes through.
 *
 * A cut is armed as a countdown of mutating operations (flash writes and
 * erases, counter advances). The operation that reaches zero is interrupted:
 * cleanly (it has no effect) or torn (partial effect, decided by the seeded
 * PRNG). From then on the rail is down and every mutating or reading call of
 * the mocks throws `PowerCut` until `restore()` (the device powers up again).
 */
import type { Power } from "../types";
import { Prng } from "./prng";

/** Thrown by a mock when the power is cut; the core must never catch it. */
export class PowerCut extends Error {
  constructor(readonly atOperation: number) {
    super(`power cut at mutating operation ${atOperation}`);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(PowerCut.prototype, "name", { value: "PowerCut", writable: true, configurable: true });

export type CutMode = "clean" | "torn";

export class PowerRail implements Power {
  /** Mutating operations performed since construction (or `resetCount`). */
  operations = 0;
  millivolts: number;
  private cutAt = 0;
  private mode: CutMode = "clean";
  private down = false;
  readonly prng: Prng;

  constructor(options: { millivolts?: number; seed?: number } = {}) {
    this.millivolts = options.millivolts ?? 3300;
    this.prng = new Prng(options.seed ?? 1);
  }

  supplyMillivolts(): number {
    return this.down ? 0 : this.millivolts;
  }

  /** Cut power during the `n`-th mutating operation from now (n >= 1). */
  armCut(n: number, mode: CutMode = "clean"): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`armCut: n must be an integer >= 1, got ${n}`);
    this.cutAt = this.operations + n;
    this.mode = mode;
  }

  /** Disarm a pending cut. */
  disarm(): void {
    this.cutAt = 0;
  }

  get isDown(): boolean {
    return this.down;
  }

  /** Power comes back (the device will boot again). A cut armed for later stays armed. */
  restore(): void {
    this.down = false;
  }

  /** Cut now, between operations (a pulled plug while the CPU computes). */
  cutNow(): never {
    this.down = true;
    throw new PowerCut(this.operations);
  }

  /** Throws PowerCut when the rail is down. Called by every mock access. */
  check(): void {
    if (this.down) throw new PowerCut(this.operations);
  }

  /**
   * Account for one mutating operation. Returns "ok" to proceed normally,
   * or the cut mode when this operation is the one interrupted: the caller
   * applies the torn effect (if "torn") and then calls `fail()`.
   */
  mutate(): "ok" | CutMode {
    this.check();
    this.operations++;
    if (this.cutAt !== 0 && this.operations === this.cutAt) return this.mode;
    return "ok";
  }

  /** Finish an interrupted operation: the rail goes down. */
  fail(): never {
    this.down = true;
    this.cutAt = 0;
    throw new PowerCut(this.operations);
  }
}
