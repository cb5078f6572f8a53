/**
 * The protected security counter through native/counter_zephyr.c: write-once
 * 32-byte records in the `counter_partition` flash partition (format and
 * power-cut argument in native/counter_core.h; capacity 4096 advances in
 * 128 KiB).
 *
 * Threat model, plainly: this stops a software downgrade — an old, validly
 * signed release offered again by the cloud or a man in the middle is refused
 * because its security counter is below this one, and nothing in the
 * firmware can lower it (there is no erase or rewrite path). It does NOT stop
 * an attacker with physical flash access, a debugger (SWD) or code execution
 * with flash-write rights: they can erase the partition. The STM32H743 has no
 * true OTP monotonic counter; stronger options are RDP level 2 plus write
 * protection of the partition, the STM32's OTP area (on parts that have one,
 * e.g. STM32H7A3/B3) burnt one bit per increment, a secure element (ATECC608,
 * SE050) with monotonic counters, or a TrustZone part (STM32U5/H5) with TF-M's
 * protected NV counters.
 */
import { OtaError, Reason } from "../../src/errors";
import type { MonotonicCounter } from "../types";

const STATUS_OK = 0;
const STATUS_DECREASE = 1;
const STATUS_FULL = 2;

export class ZephyrCounter implements MonotonicCounter {
  read(): number {
    const value = this.readRecords();
    if (value < 0) throw new OtaError(Reason.COUNTER_IO, "counter partition unreadable");
    return value;
  }

  advance(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new OtaError(Reason.BAD_ARGUMENT, `counter value ${value} not a 32-bit unsigned integer`);
    }
    const status = this.appendRecord(value);
    if (status === STATUS_OK) return;
    if (status === STATUS_DECREASE) throw new OtaError(Reason.COUNTER_DECREASE, `counter cannot go down to ${value}`);
    if (status === STATUS_FULL) throw new OtaError(Reason.COUNTER_IO, "counter partition exhausted (4096 advances)");
    throw new OtaError(Reason.COUNTER_IO, "counter write failed", status);
  }

  // Each host call is a method whose whole body is `return native("…").call(this, …args)`:
  // the one form xsc compiles into a direct host function (xs/sources/xsSyntaxical.c
  // fxCheckNativeFunction; anything else warns "cannot optimize native").
  private readRecords(): number {
    return native("xs_otacounter_read").call(this);
  }

  private appendRecord(value: number): number {
    return native("xs_otacounter_advance").call(this, value);
  }
}
