import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startXs, type XsWorker } from "./harness";

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
});
