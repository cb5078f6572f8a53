/**
 * The agent's bounded retry of a trial that rolled back without reaching the
 * cloud (src/agent/retry.ts): a good release whose trial fell in a cloud
 * outage is taken again and committed; a release whose firmware never
 * reaches the cloud is tried MAX_NO_CLOUD_TRIALS times, with doubling pauses,
 * and then given up for good; a rollback that shows the image is bad (a hang)
 * stays final at once. The count is journaled (progress record byte 1).
 */
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { decodeProgress, encodeProgress } from "../../src/agent/journal";
import { MAX_NO_CLOUD_TRIALS, noCloudPauseMs, RETRY_PAUSE_MIN_MS, rollbackVerdict } from "../../src/agent/retry";
import { formatVersion } from "../../src/image/format";
import { RETRYABLE } from "../../tools/serve/rollout";
import { buildImage, release } from "../lib/sim-fixtures";
import { makeWorld } from "../lib/sim-world";

/** Virtual times of the agent's rollbacks, from its log. */
function reverts(logs: readonly string[]): number[] {
  return logs.filter((l) => /boot -reverted-> rolled-back/.test(l)).map((l) => Number(l.split(" ")[0]));
}

describe("bounded retry of TRIAL_NO_CLOUD", () => {
  it("the verdict: retryable below the bound, final at it; image faults and other reasons unchanged", () => {
    expect(MAX_NO_CLOUD_TRIALS).toBe(3);
    expect(rollbackVerdict(Reason.TRIAL_NO_CLOUD, 1)).toEqual({ reason: Reason.TRIAL_NO_CLOUD_RETRY, final: false });
    expect(rollbackVerdict(Reason.TRIAL_NO_CLOUD, 2)).toEqual({ reason: Reason.TRIAL_NO_CLOUD_RETRY, final: false });
    expect(rollbackVerdict(Reason.TRIAL_NO_CLOUD, 3)).toEqual({ reason: Reason.TRIAL_NO_CLOUD, final: true });
    expect(rollbackVerdict(Reason.TRIAL_FAILED, 0)).toEqual({ reason: Reason.TRIAL_FAILED, final: true });
    expect(rollbackVerdict(Reason.TRIAL_LIMIT, 0)).toEqual({ reason: Reason.TRIAL_LIMIT, final: true });
    expect(rollbackVerdict(Reason.ROLLED_BACK, 0)).toEqual({ reason: Reason.ROLLED_BACK, final: false });
    expect(noCloudPauseMs(1)).toBe(RETRY_PAUSE_MIN_MS);
    expect(noCloudPauseMs(2)).toBe(2 * RETRY_PAUSE_MIN_MS);
    // serve re-offers exactly what the device retries
    expect(RETRYABLE).toContain(Reason.TRIAL_NO_CLOUD_RETRY);
    expect(RETRYABLE).not.toContain(Reason.TRIAL_NO_CLOUD);
  });

  it("the count rides in the progress record's byte 1; records written before it read 0", () => {
    const release32 = new Uint8Array(32).fill(7);
    const p = decodeProgress(encodeProgress({ payloadOffset: 0, bytesFetched: 0, elapsedMs: 0, checkpoint: new Uint8Array(0), release: release32, noCloudTrials: 2 }));
    expect(p.noCloudTrials).toBe(2);
    expect(p.release).toEqual(release32);
    const old = encodeProgress({ payloadOffset: 5, bytesFetched: 5, elapsedMs: 1, checkpoint: new Uint8Array(0) });
    expect(old[1]).toBe(0);
    expect(decodeProgress(old).noCloudTrials).toBe(0);
  });

  it("a good release whose trial fell in a cloud outage is taken again and committed", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "2.0.0", 1, { securityCounter: 1 }))] });
    const key = `${w.cloud.host}:${w.cloud.port}`;
    const listeners = (w.net as unknown as { listeners: Map<string, unknown> }).listeners;
    const accept = listeners.get(key);
    expect(accept).toBeDefined();
    // The cloud goes away when the device reboots into its trial, and comes back once MCUboot reverted it.
    const d = w.addDevice("dev-out", {
      log: (line) => {
        w.logs.push(`${w.clock.now()} ${line}`);
        if (/rebooting into 2\.0\.0/.test(line) && w.logs.filter((l) => /rebooting into/.test(l)).length === 1) listeners.delete(key);
        if (/-reverted-> rolled-back/.test(line)) listeners.set(key, accept);
      },
    });
    d.run(5 * 60_000);
    const rb = w.cloud.reportsOf("dev-out", "rolled-back");
    expect(rb, w.logs.slice(-30).join("\n")).toHaveLength(1);
    expect(rb[0].reason).toBe(Reason.TRIAL_NO_CLOUD_RETRY);
    d.run(10 * 60_000);
    expect(w.cloud.reportsOf("dev-out", "committed"), w.logs.slice(-30).join("\n")).toHaveLength(1);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("2.0.0+0");
    expect(w.cloud.reportsOf("dev-out", "offer-accepted")).toHaveLength(2);
  });

  it("a firmware that never reaches the cloud: MAX_NO_CLOUD_TRIALS trials, doubling pauses, then final", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "2.0.0", 1, { behaviour: "no-cloud" }))] });
    const d = w.addDevice("dev-bad");
    d.run(40 * 60_000);
    const rb = w.cloud.reportsOf("dev-bad", "rolled-back");
    // (the virtual cloud keeps one report per event, reason and release: the second retryable rollback is a "duplicate")
    expect(rb.map((r) => r.reason), w.logs.slice(-30).join("\n")).toEqual([Reason.TRIAL_NO_CLOUD_RETRY, Reason.TRIAL_NO_CLOUD]);
    expect(w.logs.filter((l) => /boot -reverted-> rolled-back/.test(l))).toHaveLength(MAX_NO_CLOUD_TRIALS);
    expect(w.logs.filter((l) => /trial \d of 2\.0\.0\+0 found no cloud/.test(l))).toHaveLength(MAX_NO_CLOUD_TRIALS - 1);
    expect(w.cloud.reportsOf("dev-bad", "offer-accepted")).toHaveLength(MAX_NO_CLOUD_TRIALS);
    expect(d.runningSlot).toBe(0);
    // the pauses: the next offer is taken no sooner than the pause after each retryable rollback
    const at = (event: string) => (w.cloud as unknown as { reports: { deviceId: string; report: { event: string }; at: number }[] }).reports.filter((r) => r.deviceId === "dev-bad" && r.report.event === event).map((r) => r.at);
    const rolled = reverts(w.logs);
    const accepted = at("offer-accepted");
    expect(accepted[1] - rolled[0]).toBeGreaterThanOrEqual(noCloudPauseMs(1));
    expect(accepted[2] - rolled[1]).toBeGreaterThanOrEqual(noCloudPauseMs(2));
    // given up: not taken again, however long it runs
    d.run(30 * 60_000);
    expect(w.cloud.reportsOf("dev-bad", "offer-accepted")).toHaveLength(MAX_NO_CLOUD_TRIALS);
  }, 60_000);

  it("a firmware that hangs in its trial is rolled back once, for good (no retry)", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "2.0.0", 1, { behaviour: "hang" }))] });
    const d = w.addDevice("dev-hang");
    d.run(30 * 60_000);
    const rb = w.cloud.reportsOf("dev-hang", "rolled-back");
    expect(rb.map((r) => r.reason), w.logs.slice(-30).join("\n")).toEqual([Reason.TRIAL_FAILED]);
    expect(w.cloud.reportsOf("dev-hang", "offer-accepted")).toHaveLength(1);
  }, 60_000);
});
