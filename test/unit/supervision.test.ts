/**
 * The software watchdog over the hardware one, and bounded computation
 * slices, on the simulator (issue: supervision and revocation).
 */
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { AgentAuditEvent } from "../../src/agent/events";
import { M7_XS_MODEL } from "../../hal/mock/cpu";
import { smallFlashMap } from "../../targets/sim/flashmap";
import { buildImage, release } from "../lib/sim-fixtures";
import { makeWorld } from "../lib/sim-world";
import { makePatch } from "../../tools/delta/index";

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
