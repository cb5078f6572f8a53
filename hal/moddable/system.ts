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
    const cause = native("xs_otasystem_resetCause").call(this) as string;
    return causes.includes(cause as ResetCause) ? (cause as ResetCause) : "unknown";
  }

  reboot(): never {
    native("xs_otasystem_reboot").call(this);
    // sys_reboot does not return; if it ever did, stop here rather than run on.
    throw new Error("reboot returned");
  }

  runningSlot(): 0 | 1 {
    return this.slot;
  }
}
