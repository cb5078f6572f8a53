/**
 * The protected counter's record format (hal/moddable/native/counter_core.c),
 * compiled for the host and run against a strict simulated NOR partition in
 * C (host-test/counter_test.c): round trip, refusal to decrease, exhaustion
 * after 4096 advances in 128 KiB, every single-bit corruption rejected, and a
 * power cut at every write, torn after every byte count, leaving the old or
 * the new value and never a lower one. Needs the host C compiler (cc), which
 * the XS lane already requires.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const out = mkdtempSync(join(tmpdir(), "xsota-counter-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("native counter core on the host", () => {
  it("builds with -Wall -Wextra -Werror and passes its power-cut campaign", () => {
    const exe = join(out, "counter_test");
    const build = spawnSync(
      "cc",
      ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-o", exe, "hal/moddable/native/host-test/counter_test.c", "hal/moddable/native/counter_core.c"],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(build.error, "the host C compiler (cc) is missing").toBeUndefined();
    expect(build.stderr).toBe("");
    expect(build.status).toBe(0);
    const run = spawnSync(exe, [], { encoding: "utf8", timeout: 120_000 });
    expect(run.stdout).toContain("ok 4096 advances fill 128 KiB");
    expect(run.stdout).toMatch(/power cut at every write of 5 advances, torn after every byte count 0\.\.32 \(165 runs\)/);
    expect(run.stdout.trim().endsWith("PASS")).toBe(true);
    expect(run.status).toBe(0);
  });
});
