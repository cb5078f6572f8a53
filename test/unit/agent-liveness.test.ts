/**
 * The HTTPS download path's liveness defects (issue 14), one test each, on
 * the virtual clock against the simulator's misbehaving Range server:
 *  - the HTTP retry budget exceeded the supervisor's download deadline, so a
 *    silent server reset the device through the watchdog (12 resets in 20 min);
 *  - header bytes reset the HTTP timer without being progress (a header byte
 *    every 9 s: hundreds of resets, no report);
 *  - download time was journaled only on progress (a stall, then a reset, lost it);
 *  - no slow-transfer floor (a body at 1 byte per 1.5 s ran for hours).
 * After the fix each ends the attempt with DOWNLOAD_STALLED and a report,
 * without a reset.
 */
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { checkConfig, DEFAULTS, stallLimitMs } from "../../src/agent/config";
import { httpRetryBudgetMs } from "../../src/agent/http-fetch";
import { buildImage, release } from "../lib/sim-fixtures";
import { makeWorld } from "../lib/sim-world";
import { HARDWARE } from "../lib/sim-fixtures";
import type { AgentConfig } from "../../src/agent/config";

type Mode = "silent" | "drip-head" | "drip-body" | "close-mid-body";

/** The shipped defaults for the download path (the test world shortens chunkTimeoutMs; the defects need the real one). */
const SHIPPED: Partial<AgentConfig> = { chunkTimeoutMs: 10_000 };

function httpsWorld(mode: Mode, dripMs = 9000, config: Partial<AgentConfig> = SHIPPED) {
  const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }), { url: (s) => w.cloud.urlOf(s), httpsOnly: true })] });
  w.cloud.httpMode = mode;
  w.cloud.httpDripMs = dripMs;
  const d = w.addDevice("dev", config);
  return { w, d };
}

const failedAt = (w: ReturnType<typeof httpsWorld>["w"]) => w.cloud.reports.filter((r) => r.deviceId === "dev" && r.report.event === "failed").map((r) => r.at);

const watchdogResets = (d: ReturnType<typeof httpsWorld>["d"]) => d.boots.filter((b) => b.cause === "watchdog").length;

describe("HTTPS liveness: every bound inside the supervisor's", () => {
  it("the default HTTP retry budget is below the download stall limit, which is below the software watchdog's deadline", () => {
    const c = checkConfig({ deviceId: "d", hardwareId: HARDWARE, server: { host: "h", port: 1, tls: true }, trustedKeys: [new Uint8Array(65)] });
    expect(httpRetryBudgetMs(c.chunkTimeoutMs, c.chunkRetries)).toBeLessThan(stallLimitMs(c));
    expect(stallLimitMs(c)).toBeLessThan(c.downloadStallMs);
    // a setting that breaks the nesting is refused at start, not found in the field
    expect(() => checkConfig({ deviceId: "d", hardwareId: HARDWARE, server: { host: "h", port: 1, tls: true }, trustedKeys: [new Uint8Array(65)], chunkTimeoutMs: 20_000 })).toThrow(/retry budget/);
    expect(DEFAULTS.downloadStallMs).toBe(90_000);
  });

  it("a silent server: the attempt ends DOWNLOAD_STALLED with a report, no watchdog reset in 20 minutes", () => {
    const { w, d } = httpsWorld("silent");
    d.run(20 * 60_000);
    expect(watchdogResets(d), w.logs.slice(-10).join("\n")).toBe(0);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((f) => f.reason === Reason.DOWNLOAD_STALLED)).toBe(true);
  });

  it("a header byte every 9 s: header bytes are not progress; the attempt ends with a report, no reset", () => {
    const { w, d } = httpsWorld("drip-head", 9000);
    d.run(60 * 60_000);
    expect(watchdogResets(d), w.logs.slice(-10).join("\n")).toBe(0);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0].reason).toBe(Reason.DOWNLOAD_STALLED);
    expect(failedAt(w)[0]).toBeLessThan(3 * 60_000);
  });

  it("a body at 1 byte per 1.5 s falls below the slow-transfer floor: ended with a report within minutes", () => {
    const { w, d } = httpsWorld("drip-body", 1500);
    d.run(10 * 60_000);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed.length, w.logs.slice(-10).join("\n")).toBeGreaterThan(0);
    expect(failed[0].reason).toBe(Reason.DOWNLOAD_STALLED);
    expect(failedAt(w)[0]).toBeLessThan(3 * 60_000);
    expect(watchdogResets(d)).toBe(0);
  });

  it("a server-set heartbeat interval longer than the start-up deadline: the heartbeat supervision follows it, no reset loop", () => {
    const w = makeWorld();
    w.cloud.heartbeatIntervalS = 600;
    const d = w.addDevice("dev");
    d.run(3600_000);
    expect(d.boots.filter((b) => b.cause === "watchdog"), w.logs.filter((l) => l.includes("stuck")).slice(0, 3).join("\n")).toHaveLength(0);
    expect(w.cloud.heartbeats.length).toBeGreaterThanOrEqual(6);
  });

  it("stalled time is journaled while nothing arrives, and counts across a reset", () => {
    // the defaults (10 s per request): an attempt lasts long enough to be journaled while stalled
    const { w, d } = httpsWorld("silent", 0);
    d.run(50_000);
    const agent = w.agents.get(d)!;
    expect(agent.state, w.logs.join("\n")).toBe("downloading");
    const before = agent.journal.progress();
    expect(before.elapsedMs, "time journaled without progress").toBeGreaterThanOrEqual(30_000);
    expect(before.stalledMs ?? 0).toBeGreaterThanOrEqual(30_000);
    d.cutPower();
    d.run(5_000);
    const again = w.agents.get(d)!;
    expect(again.state).toBe("downloading");
    d.run(35_000);
    expect(again.journal.progress().elapsedMs).toBeGreaterThan(before.elapsedMs + 20_000);
  });
});
