/**
 * Supply voltage. Neither target has a documented supply-sense ADC input, so
 * the adapter reports the configured nominal voltage: on these boards the
 * agent's low-supply install precondition is therefore not enforced. A board
 * that wires its supply to an ADC replaces this with a reading.
 */
import type { Power } from "../types";

export class NominalPower implements Power {
  constructor(private readonly millivolts: number) {}

  supplyMillivolts(): number {
    return this.millivolts;
  }
}
