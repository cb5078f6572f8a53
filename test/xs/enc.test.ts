/**
 * XS lane: encrypted images inside the real XS engine (Moddable's frozen
 * built-ins, no TextEncoder): the Cipher conformance suite and AES-CTR's cost.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCipheriv } from "node:crypto";
import { startXs, type XsWorker } from "./harness";
import { encEntry } from "./enc-data";
import type { RunReport } from "../lib/spec";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs(encEntry());
});
afterAll(async () => xs?.close());

describe("XS lane: encrypted images", () => {
  it("the Cipher conformance suite (SP 800-38A, RFC 4231, RFC 5869) passes inside XS", async () => {
    const { value, computrons } = await xs.run<RunReport>("cipher-conformance");
    console.log(`[xs] cipher conformance: ${value.passed} passed, ${value.failed.length} failed, ${computrons} computrons`);
    expect(value.failed).toEqual([]);
    expect(value.passed).toBeGreaterThan(10);
  });
  it("AES-256-CTR over 64 KiB in 1 KiB calls: the result OpenSSL gives, and its XS cost", async () => {
    const { value, computrons } = await xs.run<number>("aes-ctr-64k");
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i * 3 + 1));
    const e = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
    const ks = e.update(Buffer.alloc(65536, 0x5a));
    let x = 0;
    for (let off = 0; off < 65536; off += 1024) x ^= ks[off + (off & 1023)];
    console.log(`[xs] AES-256-CTR 64 KiB: ${computrons} computrons (${Math.round(computrons / 65536)} per byte)`);
    expect(value).toBe(x);
  });
  it("an encrypted full release then an encrypted delta install and commit through the agent inside XS", async () => {
    const { value, computrons } = await xs.run<{ events: string[]; afterFull: { slot: number; version: string }; slot: number; version: string; log: string[] }>("enc-updates");
    console.log(`[xs] encrypted full + delta updates through the agent: ${computrons} computrons`);
    expect(value.events, value.log.join("\n")).toEqual([
      "offer-accepted", "download-started", "download-done", "verified", "committed",
      "offer-accepted", "download-started", "download-done", "verified", "committed",
    ]);
    expect(value.afterFull).toEqual({ slot: 1, version: "1.1.0+2" });
    expect(value.slot).toBe(0);
    expect(value.version).toBe("1.2.0+3");
  });
  it("an encrypted full release alone installs and commits inside XS (the device lane's comparison with the plain one)", async () => {
    const { value, computrons } = await xs.run<{ events: string[]; slot: number; version: string; log: string[] }>("enc-full-update");
    console.log(`[xs] encrypted full update through the agent: ${computrons} computrons`);
    expect(value.events, value.log.join("\n")).toEqual(["offer-accepted", "download-started", "download-done", "verified", "committed"]);
    expect(value.slot).toBe(1);
    expect(value.version).toBe("1.1.0+2");
  });
});
