/**
 * The targets' MCUboot build and the simulator's bootloader model agree:
 * direct-xip with revert, the build number compared, and the hardware
 * security counter exactly as TARGET_MCUBOOT says.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TARGET_MCUBOOT } from "../../targets/sim/bootloader";

function options(target: string): Map<string, string> {
  const text = readFileSync(new URL(`../../targets/${target}/sysbuild/mcuboot.conf`, import.meta.url), "utf8");
  const m = new Map<string, string>();
  for (const line of text.split("\n")) {
    const set = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (set) m.set(set[1], set[2]);
    const unset = /^# (CONFIG_[A-Z0-9_]+) is not set$/.exec(line.trim());
    if (unset) m.set(unset[1], "n");
  }
  return m;
}

describe("mcuboot.conf matches the bootloader model", () => {
  for (const target of ["usr-n520", "usr-g771"]) {
    it(target, () => {
      const o = options(target);
      expect(o.get("CONFIG_BOOT_DIRECT_XIP")).toBe("y");
      expect(o.get("CONFIG_BOOT_DIRECT_XIP_REVERT")).toBe("y");
      expect(o.get("CONFIG_BOOT_VERSION_CMP_USE_BUILD_NUMBER")).toBe("y");
      // the counter option is stated explicitly, one way or the other, and matches the model
      expect(o.has("CONFIG_MCUBOOT_HW_DOWNGRADE_PREVENTION")).toBe(true);
      expect(o.get("CONFIG_MCUBOOT_HW_DOWNGRADE_PREVENTION") === "y").toBe(TARGET_MCUBOOT.hwRollbackProtection);
    });
  }
});
