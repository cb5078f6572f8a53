/**
 * `xs-ota serve` as an operator starts it (the built CLI): it lists what it
 * loaded and skipped, with reasons, before "ready"; a port in use, or any
 * other start-up failure, is one line and a non-zero exit, never a hang
 * (issue 17, items 2 and 9).
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { repoRoot, xsOta } from "../lib/cli";

let dir: string;
const p = (name: string) => join(dir, name);

/** Start serve, collect its output until "ready" (or exit), then stop it. */
function serveUntilReady(args: string[], timeoutMs = 30_000): Promise<{ stdout: string; stderr: string; status: number | null; ready: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [repoRoot + "bin/xs-ota.mjs", "serve", "--mqtt-port", "0", "--https-port", "0", "--host", "127.0.0.1", ...args]);
    let stdout = "";
    let stderr = "";
    let ready = false;
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (d) => {
      stdout += d;
      if (!ready && /^ready$/m.test(stdout)) {
        ready = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (status) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, status, ready });
    });
  });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-cli-"));
  writeFileSync(p("app.bin"), Uint8Array.from({ length: 5000 }, (_, i) => (i * 11) & 0xff));
  expect(xsOta(["keygen", "-o", p("key.pem"), "--public", p("pub.pem")]).status).toBe(0);
  expect(xsOta(["sign", "-k", p("key.pem"), "-v", "1.1.0", "--pad-header", p("app.bin"), p("app.img")]).status).toBe(0);
  mkdirSync(p("good"));
  expect(xsOta(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("app.img"), "--slot", "1", "-o", p("good/app.manifest")]).status).toBe(0);
  mkdirSync(p("empty"));
  mkdirSync(p("tampered"));
  const m = new Uint8Array(readFileSync(p("good/app.manifest")));
  m[m.length - 80] ^= 1; // inside the signed manifest bytes or the signature: it no longer verifies
  writeFileSync(p("tampered/app.manifest"), m);
  copyFileSync(p("good/app.img"), p("tampered/app.img"));
  writeFileSync(p("tampered/notes.txt"), "hello");
});

describe("xs-ota serve lists what it serves", () => {
  it("a good folder: the release with its version, slot and payload, then ready", async () => {
    const r = await serveUntilReady(["--releases", p("good")]);
    expect(r.ready).toBe(true);
    expect(r.stdout).toMatch(/releases in .*good: 1/);
    expect(r.stdout).toMatch(/app\.manifest: usr-n520 1\.1\.0\+0 full for slot 1, \d+ bytes/);
    expect(r.stdout.indexOf("app.manifest")).toBeLessThan(r.stdout.indexOf("ready"));
  });
  it("an empty folder: a warning that nothing will be offered", async () => {
    const r = await serveUntilReady(["--releases", p("empty")]);
    expect(r.ready).toBe(true);
    expect(r.stdout).toMatch(/releases in .*empty: 0/);
    expect(r.stderr).toMatch(/WARNING no release to offer/);
  });
  it("a tampered manifest with --trust: skipped with the reason; a stray file is named as ignored", async () => {
    const r = await serveUntilReady(["--releases", p("tampered"), "--trust", p("pub.pem")]);
    expect(r.ready).toBe(true);
    expect(r.stdout).toMatch(/releases in .*tampered: 0 \(signatures checked/);
    expect(r.stderr).toMatch(/WARNING .*app\.manifest: skipped: /);
    expect(r.stdout).toMatch(/ignored\): .*notes\.txt/);
  });
  it("a payload that is not the one its manifest names is a warning", async () => {
    mkdirSync(p("badpayload"));
    copyFileSync(p("good/app.manifest"), p("badpayload/app.manifest"));
    writeFileSync(p("badpayload/app.img"), "not the image");
    const r = await serveUntilReady(["--releases", p("badpayload")]);
    expect(r.ready).toBe(true);
    expect(r.stderr).toMatch(/WARNING .*app\.img: served but every device will refuse it/);
  });
});

describe("xs-ota serve warns about releases devices would refuse", () => {
  it("an expired release is named", async () => {
    mkdirSync(p("expired"));
    expect(xsOta(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("app.img"), "--slot", "1", "--issued-at", "1700000000", "--expires", "1700086400", "-o", p("expired/app.manifest")]).status).toBe(0);
    const r = await serveUntilReady(["--releases", p("expired")]);
    expect(r.ready).toBe(true);
    expect(r.stderr).toMatch(/WARNING .*app\.manifest: expired at 2023-11-15T.*MANIFEST_EXPIRED/);
  });
});

describe("xs-ota serve start-up failures exit non-zero", () => {
  it("the MQTT port in use → one line, exit 1, at once", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const t = Date.now();
      const r = xsOta(["serve", "--releases", p("good"), "--host", "127.0.0.1", "--mqtt-port", String(port), "--https-port", "0"], { timeoutMs: 20_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cannot listen for MQTT on 127\\.0\\.0\\.1:${port}: the port is in use.*--mqtt-port`));
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(Date.now() - t).toBeLessThan(15_000);
      const h = xsOta(["serve", "--releases", p("good"), "--host", "127.0.0.1", "--mqtt-port", "0", "--https-port", String(port)], { timeoutMs: 20_000 });
      expect(h.status).toBe(1);
      expect(h.stderr).toMatch(/cannot listen for HTTPS .*--https-port/);
    } finally {
      blocker.close();
    }
  });
  it("a missing releases folder → one line, exit 1", () => {
    const r = xsOta(["serve", "--releases", p("nope")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--releases .*nope: no such directory/);
  });
});
