/**
 * Reset cause and reboot through native/system_zephyr.c (hwinfo, sys_reboot).
 * The running slot is fixed at build time: direct-xip links each build for
 * one slot, and the target manifest of that build sets `config.imageSlot`.
 */
import type { ResetCause, System } from "../types";

const causes: readonly ResetCause[] = Object.freeze(["power-on", "watchdog", "software", "pin", "brownout", "unknown"]);

export class ZephyrSystem implements System {
  constructor(private readonly slot: 0 | 1) {}

  resetCause(): ResetCause {
    const cause = this.hardwareCause();
    return causes.includes(cause as ResetCause) ? (cause as ResetCause) : "unknown";
  }

  reboot(): never {
    this.sysReboot();
    // sys_reboot does not return; if it ever did, stop here rather than run on.
    throw new Error("reboot returned");
  }

  runningSlot(): 0 | 1 {
    return this.slot;
  }

  // Each host call is a method whose whole body is `return native("…").call(this, …args)`:
  // the one form xsc compiles into a direct host function (xs/sources/xsSyntaxical.c
  // fxCheckNativeFunction; anything else warns "cannot optimize native").
  private hardwareCause(): string {
    return native("xs_otasystem_resetCause").call(this);
  }

  private sysReboot(): void {
    return native("xs_otasystem_reboot").call(this);
  }
}
