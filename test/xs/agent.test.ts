import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startXs, type XsWorker } from "./harness";
import { Reason } from "../../src/errors";
import { MAX_NO_CLOUD_TRIALS } from "../../src/agent/retry";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs("test/xs/entries/agent.ts");
});
afterAll(async () => xs?.close());

describe("XS lane: the agent", () => {
  it("runs one full update inside XS: offer, download, verify, trial, commit", async () => {
    const { value, computrons } = await xs.run<{ events: string[]; slot: number; version: string; counter: number; log: string[] }>("full-update");
    console.log(`[xs] full update through the agent: ${computrons} computrons`);
    expect(value.events, value.log.join("\n")).toEqual(["offer-accepted", "download-started", "download-done", "verified", "committed"]);
    expect(value.slot).toBe(1);
    expect(value.version).toBe("1.1.0+2");
    expect(value.counter).toBe(2);
  });

  it("retries a trial that found no cloud a bounded number of times, then gives the release up (inside XS)", async () => {
    const { value } = await xs.run<{ rollbacks: number; reasons: number[]; accepted: number; slot: number; log: string[] }>("no-cloud-retry");
    expect(value.rollbacks, value.log.join("\n")).toBe(MAX_NO_CLOUD_TRIALS);
    expect(value.accepted).toBe(MAX_NO_CLOUD_TRIALS);
    expect(value.reasons[0]).toBe(Reason.TRIAL_NO_CLOUD_RETRY);
    expect(value.reasons[value.reasons.length - 1]).toBe(Reason.TRIAL_NO_CLOUD);
    expect(value.slot).toBe(0);
  });
});
