import { describe, expect, it } from "vitest";
import { formatVersion } from "../../src/image/format";
import { Reason } from "../../src/errors";
import { buildImage, release } from "../lib/sim-fixtures";
import { makeWorld } from "../lib/sim-world";
import { makePatch } from "../../tools/delta/index";

const diff = (a: Uint8Array, b: Uint8Array) => makePatch(a, b).bytes;

describe("agent end to end on the simulator", () => {
  it("full update: offer, download, verify, trial boot, commit", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0+2", 1, { securityCounter: 2 }))] });
    const d = w.addDevice("dev-1");
    d.run(5 * 60_000);
    const events = w.cloud.reportsOf("dev-1").map((r) => r.event);
    expect(events, w.logs.slice(-30).join("\n")).toEqual(["offer-accepted", "download-started", "download-done", "verified", "committed"]);
    expect(d.runningSlot).toBe(1);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.1.0+2");
    expect(d.counter.read()).toBe(2);
    d.pressReset();
    d.run(30_000);
    expect(d.runningSlot, "the confirmed image stays after a reset").toBe(1);
    expect(d.lastBoot!.trial).toBe(false);
    expect(w.cloud.reportsOf("dev-1", "rolled-back")).toHaveLength(0);
  });

  it("reports install progress while downloading: bytes of the new image in the inactive slot, rising to its length", () => {
    const target = { image: undefined as undefined | number };
    const w = makeWorld({
      releases: (w) => {
        const r = release(w.key, buildImage(w.map, w.key, "1.1.0+2", 1, { securityCounter: 2 }));
        target.image = r.manifest.image.length;
        return [r];
      },
    });
    const d = w.addDevice("dev-p");
    const seen: number[] = [];
    for (let t = 0; t < 300_000 && w.cloud.reportsOf("dev-p", "committed").length === 0; t++) {
      d.run(1);
      const s = w.agents.get(d)?.status();
      if (s?.state === "downloading" && s.installed) {
        expect(s.installed.of).toBe(target.image);
        expect(s.installed.bytes).toBeLessThanOrEqual(s.installed.of);
        seen.push(s.installed.bytes);
      } else expect(s?.installed).toBeUndefined();
    }
    expect(w.cloud.reportsOf("dev-p", "committed")).toHaveLength(1);
    expect(seen.length, "sampled while downloading").toBeGreaterThan(1);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(seen[seen.length - 1]).toBeGreaterThan(seen[0]);
  });

  it("delta update: the patch is applied against the running image", () => {
    const w = makeWorld({
      releases: (w) => {
        const target = buildImage(w.map, w.key, "1.2.0+3", 1, { securityCounter: 1 });
        return [release(w.key, target), release(w.key, target, { base: w.factory, diff })];
      },
    });
    const d = w.addDevice("dev-2");
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("dev-2", "committed"), w.logs.slice(-30).join("\n")).toHaveLength(1);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.2.0+3");
    const full = w.cloud.releases.find((r) => r.manifest.payload.kind === "full")!;
    expect(w.cloud.bytesSent.get("dev-2")!).toBeLessThan(full.payload.length / 2);
  });

  it("a release whose firmware never reaches the cloud is rolled back and reported (retried a bounded number of times: test/unit/agent-retry.test.ts)", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "2.0.0", 1, { behaviour: "no-cloud" }))] });
    const d = w.addDevice("dev-3");
    d.run(10 * 60_000);
    const rb = w.cloud.reportsOf("dev-3", "rolled-back");
    expect(rb.length, w.logs.slice(-30).join("\n")).toBeGreaterThanOrEqual(1);
    expect(rb[0].reason).toBe(Reason.TRIAL_NO_CLOUD_RETRY);
    expect(d.runningSlot).toBe(0);
  });

  it("a firmware that hangs in its trial is reset by the watchdog and rolled back", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "2.0.0", 1, { behaviour: "hang" }))] });
    const d = w.addDevice("dev-4");
    d.run(10 * 60_000);
    const rb = w.cloud.reportsOf("dev-4", "rolled-back");
    expect(rb, w.logs.slice(-30).join("\n")).toHaveLength(1);
    expect(rb[0].reason).toBe(Reason.TRIAL_FAILED);
    expect(d.boots.some((b) => b.cause === "watchdog")).toBe(true);
    expect(d.runningSlot).toBe(0);
  });

  it("a crash-looping firmware is rolled back", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "2.0.0", 1, { behaviour: "crash-loop" }))] });
    const d = w.addDevice("dev-5");
    d.run(10 * 60_000);
    expect(w.cloud.reportsOf("dev-5", "rolled-back"), w.logs.slice(-30).join("\n")).toHaveLength(1);
    expect(d.runningSlot).toBe(0);
  });
});
