/**
 * The hardware watchdog (STM32H7 IWDG) through the native module
 * native/watchdog_zephyr.c. Zephyr cannot change an installed timeout and the
 * IWDG cannot be stopped: the first start() fixes the timeout for this boot;
 * start() again with the same timeout feeds, with another one it throws.
 */
import { OtaError, Reason } from "../../src/errors";
import type { Watchdog } from "../types";

export const WATCHDOG_MAX_MS = 32000;

const failures: { readonly [code: number]: string } = Object.freeze({
  [-1]: "watchdog device not ready",
  [-2]: "wdt_install_timeout failed",
  [-3]: "wdt_setup failed",
  [-4]: "the watchdog is already armed with another timeout (Zephyr cannot change it)",
  [-5]: "wdt_feed failed",
});

export class ZephyrWatchdog implements Watchdog {
  timeoutMs = 0;

  /**
   * @throws OtaError BAD_ARGUMENT outside 1..32000 ms, when already armed with
   *   another timeout, or when the driver refuses (detail: the native code; the
   *   HAL has no platform-failure reason code yet, see the README).
   */
  start(timeoutMs: number): void {
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > WATCHDOG_MAX_MS) {
      throw new OtaError(Reason.BAD_ARGUMENT, `watchdog timeout ${timeoutMs} outside 1..${WATCHDOG_MAX_MS} ms`);
    }
    const rc = this.install(timeoutMs);
    if (rc !== 0) throw new OtaError(Reason.BAD_ARGUMENT, failures[rc] ?? `watchdog start failed`, rc);
    this.timeoutMs = timeoutMs;
  }

  /** Never throws: a failed feed ends in a watchdog reset, which is the point. */
  feed(): void {
    native("xs_otawatchdog_feed").call(this);
  }

  // Each host call is a method whose whole body is `return native("…").call(this, …args)`:
  // the one form xsc compiles into a direct host function (xs/sources/xsSyntaxical.c
  // fxCheckNativeFunction; anything else warns "cannot optimize native").
  private install(timeoutMs: number): number {
    return native("xs_otawatchdog_start").call(this, timeoutMs);
  }
}
