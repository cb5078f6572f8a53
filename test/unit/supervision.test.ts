/**
 * The software watchdog over the hardware one, and bounded computation
 * slices, on the simulator (issue: supervision and revocation).
 */
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { AgentAuditEvent } from "../../src/agent/events";
import { M7_XS_MODEL } from "../../hal/mock/cpu";
import { smallFlashMap } from "../../targets/sim/flashmap";
import { buildImage, imageFromBinary, release } from "../lib/sim-fixtures";
import { makeWorld } from "../lib/sim-world";
import { makePatch } from "../../tools/delta/index";
import { Codec, type CodecId } from "../../src/delta/format";
import { SINK_SLICE_BYTES } from "../../src/agent/sink";
import { PATCH_SLICE_OUTPUT } from "../../src/delta/patcher";
import type { VirtualDevice } from "../../targets/sim/device";

describe("software watchdog", () => {
  it("a download that stalls without the network closing ends DOWNLOAD_STALLED with a report before the software watchdog would fire: no reset; retried after the pause, it commits", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { size: 64 * 1024 }))] });
    let stalled = true;
    w.cloud.faults = { drop: (offset) => stalled && offset >= 16 * 1024 };
    // chunk re-asks (4 × 3 s) end inside the 20 s stall limit
    const d = w.addDevice("dev", { downloadStallMs: 20_000, chunkTimeoutMs: 3000, chunkRetries: 3, keepAliveSec: 600, slowFloorBytes: 0 });
    d.run(10_000);
    expect(w.agents.get(d)!.state).toBe("downloading");
    d.run(40_000);
    expect(d.boots.filter((b) => b.cause === "watchdog"), w.logs.slice(-10).join("\n")).toHaveLength(0);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed).toHaveLength(1);
    expect(failed[0].reason).toBe(Reason.DOWNLOAD_STALLED);
    stalled = false;
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
    expect(w.cloud.reportsOf("dev", "download-started"), "the second attempt goes on from the journaled progress").toHaveLength(2);
  });

  it("the software watchdog stays the backstop: an activity that stops checking in starves the hardware watchdog; the audit log names it", () => {
    const w = makeWorld();
    const d = w.addDevice("dev");
    d.run(5000);
    const agent = w.agents.get(d)!;
    agent.supervisor.register("download", 5000); // never checks in: a wedged activity
    d.run(5000 + 1000 + 8000 + 500);
    const watchdogBoots = d.boots.filter((b) => b.cause === "watchdog");
    expect(watchdogBoots).toHaveLength(1);
    const log = agent.audit.log.read(Math.max(0, agent.audit.log.count - 16), 16);
    const stuck = log.find((e) => e.event === AgentAuditEvent.STUCK_DOWNLOAD);
    expect(stuck, "the audit log names the stuck activity").toBeDefined();
    expect(stuck!.reason).toBe(Reason.ACTIVITY_STUCK);
    d.run(30_000);
    const after = w.cloud.heartbeats.filter((h) => h.at > watchdogBoots[0].at);
    expect(after[0].heartbeat.reason).toBe(Reason.WATCHDOG_RESET);
  });

  it("while every activity is on time the hardware watchdog is fed and never fires", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1))] });
    const d = w.addDevice("dev");
    d.run(30 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed")).toHaveLength(1);
    expect(d.boots.filter((b) => b.cause === "watchdog")).toHaveLength(0);
    expect(d.watchdog.longestGapMs).toBeLessThanOrEqual(1000);
  });
});

describe("bounded computation slices", () => {
  it("hashing and verifying a 1 MiB image never holds the loop longer than one slice, and the watchdog is never starved", () => {
    const SLICE = 16 * 1024;
    // CPU model: SHA-256 at 1 µs per byte (an XS-on-M7 estimate): a whole 1 MiB pass would take ~1 s in one go
    const w = makeWorld({
      map: smallFlashMap(1152),
      cpu: M7_XS_MODEL,
      factory: (map, key) => buildImage(map, key, "1.0.0+1", 0, { confirm: true, size: 1024 * 1024 }),
      releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { size: 1024 * 1024 }))],
    });
    const d = w.addDevice("dev", { hashSliceBytes: SLICE, watchdogTimeoutMs: 500, supervisorPeriodMs: 100, chunkTimeoutMs: 5000 });
    d.run(20 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
    const budgetMs = (SLICE * M7_XS_MODEL.sha256NsPerByte) / 1e6;
    expect(d.timers.longestCallbackMs, "the longest single callback (virtual CPU time)").toBeLessThanOrEqual(budgetMs * 1.25);
    expect(d.boots.filter((b) => b.cause === "watchdog"), "the hardware watchdog never fired").toHaveLength(0);
    expect(d.watchdog.longestGapMs).toBeLessThan(500);
  });
});

describe("bounded computation slices: delta", () => {
  it("a 1 MiB delta install never holds the loop longer than the slice budget plus one patch block", () => {
    const SLICE = 16 * 1024;
    const w = makeWorld({
      map: smallFlashMap(1152),
      cpu: M7_XS_MODEL,
      factory: (map, key) => buildImage(map, key, "1.0.0+1", 0, { confirm: true, size: 1024 * 1024 }),
      releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { size: 1024 * 1024 }), { base: w.factory, diff: (a, b) => makePatch(a, b).bytes })],
    });
    const d = w.addDevice("dev", { hashSliceBytes: SLICE, watchdogTimeoutMs: 500, supervisorPeriodMs: 100, chunkTimeoutMs: 5000 });
    d.run(20 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
    // hashing is charged by the CPU model; a patch block's inflate+write is not, so the budget is the hash slice
    expect(d.timers.longestCallbackMs).toBeLessThanOrEqual((SLICE * M7_XS_MODEL.sha256NsPerByte) / 1e6 * 1.25);
    expect(d.boots.filter((b) => b.cause === "watchdog")).toHaveLength(0);
  });
});

/**
 * Bounded work per call: every entry into the device's code (a timer, a
 * socket callback) is metered for the flash work it does on the inactive
 * slot. The slice: at most one erase block entered and SINK_SLICE_BYTES (plus
 * the writer's 512-byte buffer) programmed — for a full image, and for a
 * patch of either version (PATCH_SLICE_OUTPUT of new image per pump).
 */
describe("bounded work per call", () => {
  function metered(d: VirtualDevice) {
    const slot = d.slots[1];
    let erases = 0;
    let programmed = 0;
    const worst = { erases: 0, programmed: 0 };
    const erase = slot.eraseBlock.bind(slot);
    const write = slot.write.bind(slot);
    slot.eraseBlock = (b: number) => {
      erases++;
      erase(b);
    };
    slot.write = (data: Uint8Array, at: number) => {
      programmed += data.length;
      write(data, at);
    };
    const guard = d.guard.bind(d);
    d.guard = (fn: () => void) => {
      erases = 0;
      programmed = 0;
      try {
        return guard(fn);
      } finally {
        worst.erases = Math.max(worst.erases, erases);
        worst.programmed = Math.max(worst.programmed, programmed);
      }
    };
    return worst;
  }

  // [name, kind, image size, most bytes one call may program]
  type Kind = "full-mqtt" | "full-https" | "delta-v2" | "delta-v1-range" | "delta-v1-deflate" | "delta-v1-zeros";
  const cases: [string, Kind, number, number][] = [
    ["a full image over MQTT", "full-mqtt", 512 * 1024, SINK_SLICE_BYTES + 512],
    ["a full image over HTTPS (16 KiB ranges)", "full-https", 512 * 1024, SINK_SLICE_BYTES + 512],
    ["a version-2 (codec 3) patch, 448 KiB image from a 256 KiB base", "delta-v2", 448 * 1024, PATCH_SLICE_OUTPUT + 512],
    // Version 1 (codecs 1 and 2) is sliced the same way: a block's output is produced PATCH_SLICE_OUTPUT per pump.
    ["a version-1 (codec 2, range) patch, 32 KiB blocks", "delta-v1-range", 448 * 1024, PATCH_SLICE_OUTPUT + 512],
    ["a version-1 (codec 1, deflate) patch, 32 KiB blocks", "delta-v1-deflate", 448 * 1024, PATCH_SLICE_OUTPUT + 512],
    // A tiny range-coded patch that expands hugely: 896 KiB of zeros from a few hundred bytes (one input window).
    ["a crafted version-1 range patch: 896 KiB of zeros", "delta-v1-zeros", 896 * 1024, PATCH_SLICE_OUTPUT + 512],
  ];
  for (const [name, kind, size, bound] of cases) {
    it(`${name}: no call erases more than one block or programs more than ${bound} bytes`, () => {
      let patchBytes = 0;
      const w = makeWorld({
        map: smallFlashMap(1152, 128),
        factory: (map, key) => buildImage(map, key, "1.0.0+1", 0, { confirm: true, size: 256 * 1024 }),
        releases: (w) => {
          const target = kind === "delta-v1-zeros" ? imageFromBinary(w.map, w.key, new Uint8Array(size), "1.1.0", 1, false) : buildImage(w.map, w.key, "1.1.0", 1, { size });
          const v1 = (codec: CodecId) => (a: Uint8Array, b: Uint8Array) => {
            const bytes = makePatch(a, b, { codec }).bytes;
            patchBytes = bytes.length;
            return bytes;
          };
          if (kind === "delta-v2") return [release(w.key, target, { base: w.factory, diff: (a, b) => makePatch(a, b, { codec: Codec.LZ }).bytes })];
          if (kind === "delta-v1-range" || kind === "delta-v1-zeros") return [release(w.key, target, { base: w.factory, diff: v1(Codec.RANGE) })];
          if (kind === "delta-v1-deflate") return [release(w.key, target, { base: w.factory, diff: v1(Codec.DEFLATE) })];
          return [release(w.key, target, kind === "full-https" ? { url: (s) => w.cloud.urlOf(s), httpsOnly: true } : {})];
        },
      });
      const d = w.addDevice("dev", { chunkTimeoutMs: 5000 });
      const worst = metered(d);
      d.run(20 * 60_000);
      expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
      console.log(`[slice] ${name}: worst call erased ${worst.erases} block(s) of 128 KiB, programmed ${worst.programmed} bytes${patchBytes ? ` (patch of ${patchBytes} bytes)` : ""}`);
      if (kind === "delta-v1-zeros") expect(patchBytes, "the crafted patch is tiny: it fits one input window").toBeLessThan(2048);
      expect(worst.erases).toBeLessThanOrEqual(1);
      expect(worst.programmed).toBeLessThanOrEqual(bound);
      expect(d.boots.filter((b) => b.cause === "watchdog")).toHaveLength(0);
    });
  }
});
