/**
 * The delta sink's codec gate (src/agent/sink.ts): the patch header is
 * gathered before anything is erased, checked against the manifest's
 * payload.compression, and only then handed to the patcher — with the header
 * split at every point, a mismatch refused before the first erase of the
 * inactive slot, and a patch that ends inside its header refused as truncated.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { NorFlash, type FlashPartition } from "../../hal/mock/flash";
import { checkPatchCodec, openSink } from "../../src/agent/sink";
import { softwareDigest } from "../../src/crypto/sha256";
import { Codec, PATCH_HEADER_SIZE } from "../../src/delta/format";
import { isOtaError, Reason } from "../../src/errors";
import { parseVersion } from "../../src/image/format";
import { HeaderHold } from "../../src/update/slot-writer";
import type { ReleaseManifest } from "../../src/update/types";
import { makePatch } from "../../tools/delta/index";

const OLD = Uint8Array.from({ length: 8000 }, (_, i) => (i * 7 + (i >> 6)) & 0xff);
const NEW = Uint8Array.from(OLD, (b, i) => (i >= 2000 && i < 2400 ? (b ^ 0x3c) : b));

function manifestFor(patch: Uint8Array, compression: string): ReleaseManifest {
  return {
    hardwareId: "usr-n520",
    version: parseVersion("1.1.0+2"),
    securityCounter: 1,
    slot: 1,
    image: { length: NEW.length, sha256: sha256(NEW) },
    payload: { kind: "delta", length: patch.length, sha256: sha256(patch), baseSha256: sha256(OLD), compression },
    fetch: { stream: "p" },
    issuedAt: 1,
    expiresAt: 2,
    maxDownload: 1 << 20,
  };
}

function device(): { active: FlashPartition; inactive: FlashPartition; erases: () => number } {
  const chip = new NorFlash({ size: 128 * 1024, blockLength: 4096, writeAlign: 8 });
  const active = chip.partition(0, 64 * 1024);
  const inactive = chip.partition(64 * 1024, 64 * 1024);
  active.write(OLD, 0);
  // something in the inactive slot's trailer block, as a previous image leaves it
  inactive.write(new Uint8Array(8).fill(0x11), 64 * 1024 - 4096);
  return { active, inactive, erases: () => Array.from(chip.wear.subarray(16, 32)).reduce((a, b) => a + b, 0) };
}

function sinkFor(d: ReturnType<typeof device>, m: ReleaseManifest) {
  return openSink({ manifest: m, activeSlot: d.active, inactiveSlot: new HeaderHold(d.inactive), digest: softwareDigest }, { payloadOffset: 0, checkpoint: new Uint8Array(0) });
}

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (isOtaError(e)) return e.code;
    throw e;
  }
  return undefined;
}

describe("delta sink: the patch header is the codec the manifest names", () => {
  const lz = makePatch(OLD, NEW).bytes;
  const range = makePatch(OLD, NEW, { codec: Codec.RANGE }).bytes;

  it("header split at every point: nothing erased until it is complete, then the patch installs", () => {
    for (const [patch, name] of [[lz, "lz"], [range, "range"]] as const) {
      for (let k = 1; k < PATCH_HEADER_SIZE; k++) {
        const d = device();
        const sink = sinkFor(d, manifestFor(patch, name));
        sink.write(patch.subarray(0, k));
        while (sink.pump());
        expect(d.erases(), `${name}: ${k} header bytes`).toBe(0);
        expect(sink.nextOffset).toBe(k);
        for (let at = k; at < patch.length; at += 1000) {
          sink.write(patch.subarray(at, Math.min(patch.length, at + 1000)));
          while (sink.pump());
        }
        expect(d.erases()).toBeGreaterThan(0);
        expect(sink.finish(), `${name}: split at ${k}`).toBe(NEW.length);
        const written = new Uint8Array(NEW.length);
        for (let o = 0; o < NEW.length; o += 4096) written.set(d.inactive.read(Math.min(4096, NEW.length - o), o), o);
        expect(written.subarray(64)).toEqual(NEW.subarray(64)); // the header unit is held until the trial
      }
    }
  });

  it("a header of another codec: PATCH_CODEC_MISMATCH when its last byte arrives, before any erase", () => {
    for (const [patch, named] of [[lz, "range"], [lz, "deflate"], [range, "lz"], [range, "stored"]] as const) {
      const d = device();
      const trailer = d.inactive.read(4096, 64 * 1024 - 4096);
      const sink = sinkFor(d, manifestFor(patch, named));
      sink.write(patch.subarray(0, PATCH_HEADER_SIZE - 1));
      while (sink.pump());
      sink.write(patch.subarray(PATCH_HEADER_SIZE - 1, 2000));
      expect(codeOf(() => { while (sink.pump()); }), named).toBe(Reason.PATCH_CODEC_MISMATCH);
      expect(d.erases()).toBe(0);
      expect(d.inactive.read(4096, 64 * 1024 - 4096)).toEqual(trailer);
    }
  });

  it("the header's own defects keep their reasons (checked first); a patch ending inside its header is PATCH_TRUNCATED", () => {
    const bad = lz.slice();
    bad[20] ^= 1;
    expect(codeOf(() => checkPatchCodec(manifestFor(bad, "lz"), bad.subarray(0, PATCH_HEADER_SIZE)))).toBe(Reason.PATCH_HEADER_CRC);
    expect(codeOf(() => checkPatchCodec(manifestFor(lz, "lz"), new Uint8Array(PATCH_HEADER_SIZE)))).toBe(Reason.PATCH_BAD_MAGIC);
    expect(codeOf(() => checkPatchCodec(manifestFor(lz, "lz"), lz.subarray(0, PATCH_HEADER_SIZE)))).toBeUndefined();
    const d = device();
    const sink = sinkFor(d, manifestFor(lz, "lz"));
    sink.write(lz.subarray(0, 50));
    while (sink.pump());
    expect(codeOf(() => sink.finish())).toBe(Reason.PATCH_TRUNCATED);
    expect(d.erases()).toBe(0);
  });
});
