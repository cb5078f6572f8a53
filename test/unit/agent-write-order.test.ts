/**
 * The write order under MCUboot's real rules (targets/sim/bootloader.ts): the
 * new image's header unit is programmed last, so a reset while downloading or
 * staged leaves a slot the bootloader does not count (boot_get_slot_usage)
 * and therefore does not erase (boot_select_or_erase); resume goes on. And the
 * "wedged in verifying" defect: a verdict that comes before the machine is in
 * "verifying" still ends the attempt with a report.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { formatVersion, hashedLength, parseImageHeader, parseVersion } from "../../src/image/format";
import { readTrailer } from "../../src/image/trailer";
import { headerUnitErased } from "../../src/update/slot-writer";
import type { ReleaseManifest } from "../../src/update/types";
import type { SimRelease } from "../../targets/sim/cloud";
import { signManifest } from "../../tools/release/encode";
import { buildImage, HARDWARE, imageBytes, release } from "../lib/sim-fixtures";
import { makeWorld } from "../lib/sim-world";

describe("write order: the header unit last", () => {
  it("a reset mid-download leaves no boot candidate in the inactive slot; the download resumes", () => {
    const w = makeWorld({ bytesPerMs: 8, releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }))] });
    const d = w.addDevice("dev", {});
    let sawPartial = false;
    for (let i = 0; i < 2000 && !sawPartial; i++) {
      d.run(20);
      const cells = d.slots[1].cells;
      // body bytes already in flash past the first block's header space
      sawPartial = cells.subarray(0x200, 0x400).some((b) => b !== 0xff) && w.logs.some((l) => l.includes("-accept-> downloading"));
    }
    expect(sawPartial, "the download wrote part of the image").toBe(true);
    expect(headerUnitErased(d.slots[1]), "no header in flash while downloading").toBe(true);
    d.pressReset();
    d.run(200);
    const boot = d.boots[d.boots.length - 1].decision;
    expect(boot.slot).toBe(0);
    expect(boot.erased, boot.log.join("\n")).toEqual([]);
    expect(d.slots[1].cells.subarray(0x200, 0x400).some((b) => b !== 0xff), "the partial image survived the boot").toBe(true);
    d.run(10 * 60_000);
    expect(w.logs.some((l) => l.includes("-resume-download->"))).toBe(true);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.filter((l) => !l.includes("heartbeat")).slice(-60).join("\n")).toHaveLength(1);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.1.0+0");
  });

  it("a staged image survives resets (no header, no trailer) and installs when allowed", () => {
    let busy = true;
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }))] });
    const d = w.addDevice("dev", { isBusy: () => busy, preconditionRetryMs: 1000 });
    d.run(3 * 60_000);
    expect(w.cloud.reportsOf("dev", "verified")).toHaveLength(1);
    expect(headerUnitErased(d.slots[1])).toBe(true);
    expect(readTrailer(d.slots[1]).magic).toBe("unset");
    for (let i = 0; i < 3; i++) {
      d.pressReset();
      d.run(5000);
      const boot = d.boots[d.boots.length - 1].decision;
      expect(boot.slot).toBe(0);
      expect(boot.erased).toEqual([]);
      expect(w.logs.some((l) => l.includes("-resume-staged-> staged"))).toBe(true);
    }
    busy = false;
    d.run(3 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-20).join("\n")).toHaveLength(1);
    expect(d.runningSlot).toBe(1);
    expect(w.cloud.reportsOf("dev", "download-started"), "downloaded once").toHaveLength(1);
  });
});

describe("no wedge in verifying", () => {
  it("an image whose extent cannot be read (bad TLV area magic) fails with a report, and the agent takes the next offer", () => {
    const w = makeWorld();
    const good = buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 });
    const cut = imageBytes(good).slice();
    // the TLV area's magic broken: imageExtent throws before any hashing (the manifest binds these bytes)
    cut[hashedLength(parseImageHeader(cut))] ^= 0xff;
    const manifest: ReleaseManifest = {
      hardwareId: HARDWARE,
      version: parseVersion("1.1.0"),
      securityCounter: 2,
      slot: 1,
      image: { length: cut.length, sha256: sha256(cut) },
      payload: { kind: "full", length: cut.length, sha256: sha256(cut), compression: "none" },
      fetch: { stream: "cut" },
      issuedAt: 1_790_000_000,
      expiresAt: 1_790_000_000 + 30 * 86400,
      maxDownload: 3 * cut.length,
    };
    const envelope = signManifest(manifest, w.key);
    const n = envelope[6] | (envelope[7] << 8);
    const bad: SimRelease = { envelope, manifest, releaseId: sha256(envelope.subarray(8, 8 + n)), payload: cut };
    w.cloud.releases = [bad];
    const d = w.addDevice("dev");
    d.run(3 * 60_000);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed, w.logs.slice(-20).join("\n")).toHaveLength(1);
    expect(failed[0].reason).toBe(Reason.IMAGE_BAD_TLV);
    expect(w.agents.get(d)!.state).toBe("idle");
    // not wedged: the next (good) release is taken and installed
    w.cloud.releases = [release(w.key, good)];
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-20).join("\n")).toHaveLength(1);
  });
});
