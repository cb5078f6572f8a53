/**
 * End to end, the codec choice by the server: an embedded `xs-ota serve` holds
 * a codec-3 (LZ) and a codec-2 (range) delta for the same base, and simulated
 * devices running the real agent over real TLS sockets (tools/sim/fleet.ts)
 * announce their decode cost in their heartbeats; each installs the delta that
 * cost makes quickest, and the patch it got is the one its manifest names.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { DecodeCost } from "../../src/protocol/messages";
import { Codec, parsePatchHeader } from "../../src/delta/format";
import { smallFlashMap } from "../../targets/sim/flashmap";
import { buildImage, release, testKey } from "../../tools/demo/firmware";
import { publishRelease } from "../../tools/demo/rig";
import { makePatch } from "../../tools/delta/index";
import { SimFleet } from "../../tools/sim/fleet";
import { formatInventory, inventory } from "../../tools/serve/inventory";

async function installWith(decodeCost: DecodeCost | undefined, linkRate: number): Promise<{ offers: string[]; outcomes: string[]; versions: string[]; chunkBytes: number; sizes: { lz: number; lzr: number; range: number } }> {
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-codec-"));
  try {
    const map = smallFlashMap();
    const key = testKey(1);
    const factory = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size: 16 * 1024 });
    const next = buildImage(map, key, "1.1.0+2", 1, { size: 16 * 1024 });
    const now = Math.floor(Date.now() / 1000);
    const dates = { issuedAt: now - 60, expiresAt: now + 86400 };
    const lz = release(key, next, { ...dates, base: factory, diff: (a, b) => makePatch(a, b).bytes, stream: "next-lz.patch" });
    const range = release(key, next, { ...dates, base: factory, diff: (a, b) => makePatch(a, b, { codec: Codec.RANGE }).bytes, stream: "next-range.patch" });
    const lzr = release(key, next, { ...dates, base: factory, diff: (a, b) => makePatch(a, b, { codec: Codec.LZR }).bytes, stream: "next-lzr.patch" });
    publishRelease(dir, release(key, next, dates));
    publishRelease(dir, lz);
    publishRelease(dir, range);
    publishRelease(dir, lzr);
    // the release directory holds what the manifests name
    expect(parsePatchHeader(readFileSync(join(dir, "next-lz.patch"))).codec).toBe(Codec.LZ);
    expect(parsePatchHeader(readFileSync(join(dir, "next-range.patch"))).codec).toBe(Codec.RANGE);
    expect([lz.manifest.payload.compression, range.manifest.payload.compression, lzr.manifest.payload.compression]).toEqual(["lz", "range", "lzr"]);
    const offers: string[] = [];
    const fleet = await SimFleet.create({
      devices: 2,
      seed: 1,
      speed: 50,
      releases: { kind: "dir", dir, trust: [key.publicKey], factory: factory.bytes },
      heartbeatIntervalSec: 10,
      linkRate,
      ...(decodeCost ? { agent: { decodeCost } } : {}),
      serveLog: (line) => {
        if (/^offer /.test(line)) offers.push(line);
      },
    });
    try {
      expect(await fleet.run({ untilDone: true, timeoutS: 90 })).toBe("done");
      const r = fleet.report();
      return {
        offers,
        outcomes: r.perDevice.map((d) => d.outcome),
        versions: r.perDevice.map((d) => d.version),
        chunkBytes: r.bytes.serveChunkBytes ?? -1,
        sizes: { lz: lz.payload.length, lzr: lzr.payload.length, range: range.payload.length },
      };
    } finally {
      await fleet.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("serve chooses the delta's codec by the decode cost each device announces", () => {
  it("the default Cortex-M7 announcement on a fast link: the LZ delta (codec 3), cheap to decode", async () => {
    const r = await installWith(undefined, 1_000_000_000);
    // range is the smaller patch here: the choice by size alone would have offered it
    expect(r.sizes.range).toBeLessThan(r.sizes.lz);
    expect(r.outcomes).toEqual(["committed", "committed"]);
    expect(r.versions).toEqual(["1.1.0+2", "1.1.0+2"]);
    expect([...r.offers].sort()).toEqual(["offer 1.1.0+2 (delta lz, slot 1) to sim-0000", "offer 1.1.0+2 (delta lz, slot 1) to sim-0001"]);
    expect(r.chunkBytes).toBe(2 * r.sizes.lz);
  }, 120_000);

  it("the default announcement on a slow link: the LZR delta (codec 4), its decode cost outweighed by the download", async () => {
    const r = await installWith(undefined, 200);
    // On this 16 KiB image the range delta is about as small (±1 byte) but costs ten times codec 4's decode.
    expect(r.sizes.lzr).toBeLessThan(r.sizes.lz);
    expect(Math.abs(r.sizes.lzr - r.sizes.range)).toBeLessThan(r.sizes.lz - r.sizes.lzr);
    expect(r.outcomes).toEqual(["committed", "committed"]);
    expect([...r.offers].sort()).toEqual(["offer 1.1.0+2 (delta lzr, slot 1) to sim-0000", "offer 1.1.0+2 (delta lzr, slot 1) to sim-0001"]);
    expect(r.chunkBytes).toBe(2 * r.sizes.lzr);
  }, 120_000);

  it("a device whose announced cost makes range cheaper: the range delta (codec 2)", async () => {
    const r = await installWith({ mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 90_000 }, { codec: 2, instructionsPerByte: 2_000 }] }, 1_000_000_000);
    expect(r.outcomes).toEqual(["committed", "committed"]);
    expect(r.offers.sort()).toEqual(["offer 1.1.0+2 (delta range, slot 1) to sim-0000", "offer 1.1.0+2 (delta range, slot 1) to sim-0001"]);
    expect(r.chunkBytes).toBe(2 * r.sizes.range);
  }, 120_000);

  it("a device that does not announce range never gets it, on a slow link where it is the smaller patch", async () => {
    const r = await installWith({ mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 4211 }, { codec: 1, instructionsPerByte: 3698 }] }, 10);
    expect(r.sizes.range).toBeLessThan(r.sizes.lz);
    expect(r.outcomes).toEqual(["committed", "committed"]);
    expect([...r.offers].sort()).toEqual(["offer 1.1.0+2 (delta lz, slot 1) to sim-0000", "offer 1.1.0+2 (delta lz, slot 1) to sim-0001"]);
  }, 120_000);
});

describe("serve's start-up listing names each delta's codec", () => {
  it("a delta labelled with no codec (signed before the binding) is listed with a warning: every device refuses it", () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-codec-inv-"));
    try {
      const map = smallFlashMap();
      const key = testKey(1);
      const factory = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size: 8192 });
      const next = buildImage(map, key, "1.1.0+2", 1, { size: 8192 });
      const diff = (a: Uint8Array, b: Uint8Array) => makePatch(a, b).bytes;
      publishRelease(dir, release(key, next, { base: factory, diff, stream: "good.patch" }));
      publishRelease(dir, release(key, next, { base: factory, diff, stream: "old.patch", compression: "none" }));
      const lines = formatInventory(dir, inventory(dir, undefined, 1_790_000_000), false);
      expect(lines.some((l) => /good\.patch\.manifest: usr-n520 1\.1\.0\+2 delta \(lz\) for slot 1/.test(l)), lines.join("\n")).toBe(true);
      expect(lines.some((l) => /^WARNING .*old\.patch\.manifest: served but every device will refuse it: PATCH_CODEC_MISMATCH/.test(l)), lines.join("\n")).toBe(true);
      expect(lines.filter((l) => l.startsWith("WARNING"))).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
