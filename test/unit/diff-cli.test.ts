/**
 * `xs-ota diff` / `xs-ota apply` as a user runs them (the built CLI):
 * `diff A B -o P && apply A P -o C && cmp B C` for empty, identical, unrelated
 * and firmware pairs; errors are one line with a reason code.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Prng } from "../../hal/mock/prng";
import { xsOta } from "../lib/cli";
import { fixturePairs } from "../fixtures/firmware/pairs";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-diff-"));
const p = new Prng(31);

function file(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

function roundTrip(a: string, b: string, extra: string[] = []): void {
  // Outputs go to the temp dir, never next to the inputs (some are committed fixtures).
  const stem = join(dir, `${b.split("/").pop()}.${extra.join("") || "default"}`);
  const patch = `${stem}.xsdp`;
  const out = `${stem}.out`;
  const d = xsOta(["diff", a, b, "-o", patch, ...extra]);
  expect(d.status, d.stderr).toBe(0);
  const r = xsOta(["apply", a, patch, "-o", out]);
  expect(r.status, r.stderr).toBe(0);
  expect(Buffer.compare(readFileSync(out), readFileSync(b))).toBe(0);
}

describe("xs-ota diff and apply", () => {
  const random = p.fill(new Uint8Array(70_000));
  const cases: [string, Uint8Array, Uint8Array][] = [
    ["identical", random, random],
    ["completely unrelated", random, p.fill(new Uint8Array(66_000))],
  ];
  for (const [name, a, b] of cases) {
    it(`round trip: ${name}`, () => roundTrip(file(`${name}-a`, a), file(`${name}-b`, b)));
  }
  it("an empty OLD or NEW is refused (exit 1, one line naming it): a patch goes between images", () => {
    const data = file("data", random.subarray(0, 1234));
    const empty = file("empty", new Uint8Array(0));
    for (const [a, b, what] of [[data, empty, "NEW"], [empty, data, "OLD"], [empty, empty, "OLD"]]) {
      const r = xsOta(["diff", a, b, "-o", join(dir, "never.xsdp")]);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`${what} .* is empty`));
      expect(r.stdout).toBe("");
    }
  });
  it("round trip: a firmware pair, with the stored codec and 1 KiB blocks too", () => {
    const pair = fixturePairs()[2];
    roundTrip(pair.fromFile, pair.toFile);
    const a = file("fw-a", pair.old);
    const b = file("fw-b", pair.new);
    roundTrip(a, b, ["--codec", "stored"]);
    roundTrip(a, b, ["--codec", "lz"]);
    roundTrip(a, b, ["--block-size", "1024"]);
  });
  it("--json reports the block size the patch uses: codec 3 chooses one unless told, the others take 32 KiB", () => {
    const pair = fixturePairs().find((q) => q.name === "other-slot")!;
    for (const [extra, want] of [[[], 64 * 1024], [["--codec", "deflate"], 32 * 1024], [["--block-size", "4096"], 4096]] as [string[], number][]) {
      const out = join(dir, `chosen${extra.join("")}.xsdp`);
      const d = xsOta(["diff", pair.fromFile, pair.toFile, "-o", out, "--json", ...extra]);
      expect(d.status, d.stderr).toBe(0);
      const header = readFileSync(out);
      expect(1 << header[6]).toBe(want);
      expect(JSON.parse(d.stdout).blockSize).toBe(want);
      expect(d.stderr).toMatch(new RegExp(`blocks of ${want},`));
    }
  });
  it("apply refuses a patch for another base with the reason code, one line, exit 1", () => {
    const a = file("base-a", random);
    const b = file("base-b", random.subarray(10));
    const patch = join(dir, "base.xsdp");
    expect(xsOta(["diff", a, b, "-o", patch]).status).toBe(0);
    const r = xsOta(["apply", b, patch, "-o", join(dir, "never")]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/reason 202 PATCH_OLD_MISMATCH/);
  });
  it("usage errors exit 2", () => {
    expect(xsOta(["diff", "only-one"]).status).toBe(2);
    expect(xsOta(["diff", "a", "b"]).status).toBe(2);
    expect(xsOta(["diff", "a", "b", "-o", "p", "--block-size", "3000"]).status).toBe(2);
    expect(xsOta(["apply", "a", "p"]).status).toBe(2);
    expect(xsOta(["diff", "--help"]).stdout).toMatch(/--from-bsdiff/);
  });
});
