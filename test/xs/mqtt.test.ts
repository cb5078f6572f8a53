/** The portable MQTT client inside XS, against the in-XS scripted broker over the MockNetwork and the VirtualClock. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startXs, type XsWorker } from "./harness";
import type { RunReport } from "../lib/spec";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs(new URL("./entries/mqtt.ts", import.meta.url).pathname);
});
afterAll(async () => xs?.close());

describe("XS lane: MQTT client", () => {
  it("the MQTT client suite passes inside XS", async () => {
    const { value, computrons } = await xs.run<RunReport>("mqtt-client");
    console.log(`[xs] mqtt-client: ${value.passed} passed, ${value.failed.length} failed, ${computrons} computrons`);
    expect(value.failed).toEqual([]);
    expect(value.passed).toBeGreaterThanOrEqual(17);
  });
  it("a scripted session runs inside XS (50 QoS 1 out and echoed back by the subscription, 50 QoS 1 in)", async () => {
    const { value, computrons } = await xs.run<{ received: number; acked: number }>("mqtt-session");
    console.log(`[xs] mqtt-session: ${computrons} computrons`);
    expect(value).toEqual({ received: 100, acked: 100 });
  });
});
