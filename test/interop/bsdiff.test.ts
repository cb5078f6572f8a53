/**
 * Interop with the stock Debian `bsdiff`/`bspatch` (BSDIFF40, bzip2): a patch
 * made by the stock tool, converted by `xs-ota diff --from-bsdiff` and applied
 * by the device's patcher (`xs-ota apply`), yields the new image exactly. A
 * missing peer (bsdiff, bspatch, bzip2) fails the lane.
 */
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Prng } from "../../hal/mock/prng";
import { xsOta } from "../lib/cli";
import { fixturePairs } from "../fixtures/firmware/pairs";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-bsdiff-"));

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000 });
  expect(r.error, `${cmd} is missing: run .ci/run or apt-get install it`).toBeUndefined();
  expect(r.status, `${cmd} ${args.join(" ")}: ${r.stderr}`).toBe(0);
}

function convertAndApply(name: string, oldFile: string, newFile: string): { bsdiff: number; ours: number } {
  const bsd = join(dir, `${name}.bsdiff`);
  run("bsdiff", [oldFile, newFile, bsd]);
  // The stock bspatch agrees with the stock bsdiff (sanity of the peer itself).
  run("bspatch", [oldFile, join(dir, `${name}.bspatched`), bsd]);
  expect(Buffer.compare(readFileSync(join(dir, `${name}.bspatched`)), readFileSync(newFile))).toBe(0);
  const ours = join(dir, `${name}.xsdp`);
  const c = xsOta(["diff", "--from-bsdiff", bsd, oldFile, "--new", newFile, "-o", ours]);
  expect(c.status, c.stderr).toBe(0);
  const out = join(dir, `${name}.out`);
  const a = xsOta(["apply", oldFile, ours, "-o", out]);
  expect(a.status, a.stderr).toBe(0);
  expect(Buffer.compare(readFileSync(out), readFileSync(newFile))).toBe(0);
  return { bsdiff: readFileSync(bsd).length, ours: readFileSync(ours).length };
}

describe("stock bsdiff patches, converted and applied by the device's patcher", () => {
  it("the bzip2 program is installed (needed to read BSDIFF40)", () => {
    const r = spawnSync("bzip2", ["--help"], { encoding: "utf8" });
    expect(r.error, "bzip2 is missing: apt-get install bzip2").toBeUndefined();
  });
  for (const pair of fixturePairs()) {
    it(`firmware pair ${pair.name}`, () => {
      const r = convertAndApply(pair.name, pair.fromFile, pair.toFile);
      expect(r.ours).toBeGreaterThan(0);
    });
  }
  it("random, empty and unrelated pairs", () => {
    const p = new Prng(8);
    const a = p.fill(new Uint8Array(60_000));
    const b = a.slice();
    b.set(p.fill(new Uint8Array(500)), 30_000);
    const cases: [string, Uint8Array, Uint8Array][] = [
      ["edit", a, b],
      ["unrelated", a, p.fill(new Uint8Array(20_000))],
      // (No empty file: the stock bsdiff cannot mmap one; our own generator's empty cases are in test/unit.)
      ["to-tiny", a, new Uint8Array([7])],
      ["identical", a, a],
    ];
    for (const [name, x, y] of cases) {
      const xf = join(dir, `${name}.old`);
      const yf = join(dir, `${name}.new`);
      writeFileSync(xf, x);
      writeFileSync(yf, y);
      convertAndApply(name, xf, yf);
    }
  });
  it("a corrupt BSDIFF40 patch is refused with one line", () => {
    const pair = fixturePairs()[0];
    const bsd = join(dir, "corrupt.bsdiff");
    run("bsdiff", [pair.fromFile, pair.toFile, bsd]);
    const bytes = readFileSync(bsd);
    bytes[40] ^= 0xff;
    writeFileSync(bsd, bytes);
    const r = xsOta(["diff", "--from-bsdiff", bsd, pair.fromFile, "--new", pair.toFile, "-o", join(dir, "never.xsdp")]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
  it("a BSDIFF40 patch converted against the wrong OLD is refused (it carries no hash: the expected NEW is required)", () => {
    const [a, b] = fixturePairs();
    const bsd = join(dir, "wrong-old.bsdiff");
    run("bsdiff", [a.fromFile, a.toFile, bsd]);
    const bare = xsOta(["diff", "--from-bsdiff", bsd, b.fromFile, "-o", join(dir, "never2.xsdp")]);
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/--from-bsdiff needs --new NEW or --new-sha256/);
    const wrong = xsOta(["diff", "--from-bsdiff", bsd, b.fromFile, "--new", a.toFile, "-o", join(dir, "never2.xsdp")]);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/does not make the expected NEW .*another OLD/);
    expect(wrong.stderr.trim().split("\n")).toHaveLength(1);
    const sha = createHash("sha256").update(readFileSync(a.toFile)).digest("hex");
    expect(xsOta(["diff", "--from-bsdiff", bsd, a.fromFile, "--new-sha256", sha, "-o", join(dir, "right.xsdp")]).status).toBe(0);
  });
});
