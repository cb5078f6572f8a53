/**
 * `xs-ota sim` start-up failures end the run at once with one line and a
 * non-zero exit (issue 17, item 2): a factory image that does not fit slot 0,
 * a demo image too large for the map.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";

describe("xs-ota sim start-up failures exit non-zero", () => {
  it("--link-rate outside 1..10^9 bytes/s is a misuse (exit 2, before any device starts); one inside is taken", () => {
    for (const rate of ["0", "2000000000", "fast"]) {
      const r = xsOta(["sim", "--devices", "1", "--link-rate", rate], { timeoutMs: 30_000 });
      expect(r.status, rate).toBe(2);
      expect(r.stderr).toMatch(rate === "fast" ? /--link-rate must be an integer/ : /--link-rate must be 1\.\.1000000000 bytes per second/);
    }
    // A rate in range is taken: the fleet runs (one device, no releases) and exits 0.
    const ok = xsOta(["sim", "--devices", "1", "--link-rate", "50000", "--duration", "1"], { timeoutMs: 60_000 });
    expect(ok.stderr).not.toMatch(/link-rate/);
    expect(ok.status).toBe(0);
  });

  it("a factory image that does not fit slot 0 → one line, exit 1, no hang", () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-sim-cli-"));
    const p = (n: string) => join(dir, n);
    writeFileSync(p("big.bin"), Uint8Array.from({ length: 80_000 }, (_, i) => (i * 13) & 0xff));
    expect(xsOta(["keygen", "-o", p("key.pem"), "--public", p("pub.pem")]).status).toBe(0);
    expect(xsOta(["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", p("big.bin"), p("big.img")]).status).toBe(0);
    mkdirSync(p("rel"));
    const t = Date.now();
    const r = xsOta(["sim", "--releases", p("rel"), "--trust", p("pub.pem"), "--factory", p("big.img")], { timeoutMs: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/do(es)? not fit slot 0/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(Date.now() - t).toBeLessThan(25_000);
  });
  it("a factory image without boot magic for the map (signed without --pad --confirm, or for another write size) → one line naming the fix", () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-sim-cli-"));
    const p = (n: string) => join(dir, n);
    writeFileSync(p("app.bin"), Uint8Array.from({ length: 20_000 }, (_, i) => (i * 13) & 0xff));
    expect(xsOta(["keygen", "-o", p("key.pem"), "--public", p("pub.pem")]).status).toBe(0);
    expect(xsOta(["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", p("app.bin"), p("plain.img")]).status).toBe(0);
    expect(xsOta(["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", "-S", "0x10000", "--align", "8", "--pad", "--confirm", p("app.bin"), p("align8.img")]).status).toBe(0);
    mkdirSync(p("rel"));
    for (const f of ["plain.img", "align8.img"]) {
      const r = xsOta(["sim", "--releases", p("rel"), "--trust", p("pub.pem"), "--factory", p(f)], { timeoutMs: 30_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/no boot magic .*sign it with --pad --confirm --slot-size 0x10000 --align 32/);
    }
  });
  it("a demo image too large for the map → one line naming the map, exit 1", () => {
    const r = xsOta(["sim", "--demo-releases", "--image-kib", "100"], { timeoutMs: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/small map's slots are 64 KiB/);
  });
  it("--json: the report as one object on stdout, the summary on stderr", () => {
    const r = xsOta(["sim", "--devices", "2", "--demo-releases", "--until-done", "--timeout", "60", "--progress", "0", "--json"], { timeoutMs: 90_000 });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ devices: 2, outcomes: { committed: 2, bricked: 0 } });
    expect(r.stderr).toMatch(/\| committed \| rolled back \|/);
  });
});
