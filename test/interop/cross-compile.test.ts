/**
 * The native C modules compile for the device's CPU with warnings as errors,
 * against XS's real headers (xs.h, xsmc.h as shipped in @agoric/xsnap's copy
 * of Moddable's xs/includes) and hand-written declarations of the Zephyr APIs
 * (hal/moddable/native/zephyr-decls). A missing arm-none-eabi-gcc fails the
 * lane; a deliberately broken module must fail to compile.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const XS_INCLUDES = "node_modules/@agoric/xsnap/moddable/xs/includes";
const NATIVE = "hal/moddable/native";
const out = mkdtempSync(join(tmpdir(), "xsota-cc-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const FLAGS = ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16", "-std=gnu11", "-Os", "-Wall", "-Wextra", "-Werror"];

function compile(source: string, object: string) {
  return spawnSync("arm-none-eabi-gcc", [...FLAGS, `-I${XS_INCLUDES}`, `-I${NATIVE}/zephyr-decls`, `-I${NATIVE}`, "-c", source, "-o", object], {
    encoding: "utf8",
    timeout: 60_000,
  });
}

describe("native modules cross-compile for Cortex-M7", () => {
  it("arm-none-eabi-gcc is installed and XS's headers are where the check expects them", () => {
    const r = spawnSync("arm-none-eabi-gcc", ["--version"], { encoding: "utf8" });
    expect(r.error, "arm-none-eabi-gcc is missing: run .ci/run or apt-get install gcc-arm-none-eabi").toBeUndefined();
    expect(existsSync(join(XS_INCLUDES, "xs.h"))).toBe(true);
    expect(existsSync(join(XS_INCLUDES, "xsmc.h"))).toBe(true);
  });

  const sources = readdirSync(NATIVE).filter((f) => f.endsWith(".c"));
  it("finds the six native sources", () => {
    expect(sources.sort()).toEqual(["counter_core.c", "counter_zephyr.c", "crc32.c", "random_zephyr.c", "system_zephyr.c", "watchdog_zephyr.c"]);
  });

  for (const source of sources) {
    it(`${source} compiles with -Wall -Wextra -Werror into a Thumb-2 object exporting its host functions`, () => {
      const object = join(out, source.replace(/\.c$/, ".o"));
      const r = compile(join(NATIVE, source), object);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const nm = spawnSync("arm-none-eabi-nm", ["-g", object], { encoding: "utf8" });
      const wanted: Record<string, string[]> = {
        "counter_core.c": ["xsota_counter_scan", "xsota_counter_advance"],
        "counter_zephyr.c": ["xs_otacounter_read", "xs_otacounter_advance"],
        "system_zephyr.c": ["xs_otasystem_resetCause", "xs_otasystem_reboot"],
        "random_zephyr.c": ["xs_otarandom_fill"],
        "crc32.c": ["xs_otacrc32_update"],
        "watchdog_zephyr.c": ["xs_otawatchdog_start", "xs_otawatchdog_feed"],
      };
      for (const symbol of wanted[source]) expect(nm.stdout).toMatch(new RegExp(`\\bT ${symbol}\\b`));
      const header = spawnSync("arm-none-eabi-readelf", ["-h", "-A", object], { encoding: "utf8" });
      expect(header.stdout).toMatch(/Machine:\s+ARM/);
      expect(header.stdout).toMatch(/Tag_CPU_name: "7E-M"|Tag_CPU_arch: v7E-M/);
    });
  }

  it("the host functions the TypeScript adapters call all exist in the native sources", () => {
    const calls = new Set<string>();
    for (const f of readdirSync("hal/moddable").filter((n) => n.endsWith(".ts") && !n.endsWith(".d.ts"))) {
      const text = readFileSync(join("hal/moddable", f), "utf8");
      for (const m of text.matchAll(/native\("(\w+)"\)/g)) calls.add(m[1]);
    }
    expect(calls.size).toBe(8);
    const defined = spawnSync("arm-none-eabi-nm", ["-g", ...readdirSync(out).map((o) => join(out, o))], { encoding: "utf8" }).stdout;
    for (const c of calls) expect(defined, c).toMatch(new RegExp(`\\bT ${c}\\b`));
  });

  it("fails on a real error: a wrong argument type to a Zephyr API, and an implicit declaration", () => {
    const typeError = join(out, "broken-type.c");
    writeFileSync(typeError, '#include "xsmc.h"\n#include <zephyr/drivers/watchdog.h>\nvoid xs_broken(xsMachine *the) { (void)the; wdt_feed("watchdog0", 0); }\n');
    const r1 = compile(typeError, join(out, "broken-type.o"));
    expect(r1.status).not.toBe(0);
    expect(r1.stderr).toMatch(/incompatible pointer type|passing argument 1 of 'wdt_feed'/);

    const implicit = join(out, "broken-implicit.c");
    writeFileSync(implicit, '#include "xsmc.h"\nvoid xs_broken(xsMachine *the) { xsmcSetInteger(xsResult, wdt_feeed(0)); }\n');
    const r2 = compile(implicit, join(out, "broken-implicit.o"));
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toMatch(/implicit declaration of function 'wdt_feeed'/);
  });
});
