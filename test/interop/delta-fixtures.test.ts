/**
 * The firmware fixtures are reproducible: build.mjs (arm-none-eabi-gcc, newlib
 * nano) rebuilds every committed binary byte for byte when the compiler is
 * the version recorded in fixtures.json; with another compiler version it must
 * at least build every image at a plausible size. A missing toolchain fails.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { binPath, fixtureRecord } from "../fixtures/firmware/pairs";

describe("firmware fixtures", () => {
  it("build.mjs reproduces the committed binaries", () => {
    const out = mkdtempSync(join(tmpdir(), "xs-ota-fixtures-"));
    execFileSync(process.execPath, ["test/fixtures/firmware/build.mjs", "--out", out], { stdio: "inherit", timeout: 300_000 });
    const rebuilt = JSON.parse(readFileSync(join(out, "fixtures.json"), "utf8"));
    for (const name of Object.keys(fixtureRecord.builds)) {
      const fresh = readFileSync(join(out, `${name}.bin`));
      const committed = readFileSync(binPath(name));
      if (rebuilt.gcc === fixtureRecord.gcc) {
        expect(Buffer.compare(fresh, committed), `${name} differs from the committed build`).toBe(0);
      } else {
        console.warn(`[fixtures] gcc ${rebuilt.gcc} differs from the recorded ${fixtureRecord.gcc}: checking sizes only`);
        expect(Math.abs(fresh.length - committed.length)).toBeLessThan(committed.length / 5);
      }
      expect(fresh.length).toBeGreaterThan(100 * 1024);
    }
  });
});
