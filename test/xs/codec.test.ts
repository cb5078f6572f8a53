/** The delta codec binding, the heartbeat's decode cost and the agent's codec checks, inside XS. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { startXs, type XsWorker } from "./harness";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs("test/xs/entries/codec.ts");
});
afterAll(async () => xs?.close());

describe("XS lane: delta codec announcement and binding", () => {
  it("the heartbeat's decode cost round-trips, and malformed ones are MESSAGE_MALFORMED", async () => {
    const { value } = await xs.run<{ mhz: number; codecs: string; refused: string[] }>("heartbeat-decode-cost");
    expect(value.mhz).toBe(400);
    expect(value.codecs).toBe("3:4211,1:3698,2:81120");
    expect(value.refused).toEqual(Array(5).fill(String(Reason.MESSAGE_MALFORMED)));
  });
  it("the agent installs the delta its announced cost says, and refuses a mislabelled one before any erase", async () => {
    const { value, computrons } = await xs.run<{ events: string[]; version: string; chosen: string; announced: number[]; mismatch: number[]; erases: number; log: string[] }>("choice-and-binding");
    console.log(`[xs] codec choice and binding: ${computrons} computrons`);
    expect(value.events, value.log.join("\n")).toEqual(["offer-accepted", "download-started", "download-done", "verified", "committed"]);
    expect(value.version).toBe("1.1.0+2");
    expect(value.chosen).toBe("range");
    expect(value.announced).toEqual([3, 2]);
    expect(value.mismatch).toEqual([Reason.PATCH_CODEC_MISMATCH]);
    expect(value.erases).toBe(0);
  });
});
