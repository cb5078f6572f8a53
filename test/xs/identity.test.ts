import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startXs, type XsWorker } from "./harness";
import type { RunReport } from "../lib/spec";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs(new URL("./entries/identity.ts", import.meta.url).pathname);
});
afterAll(async () => xs?.close());

describe("XS lane: device identity", () => {
  it("keys, CSR, identity records and AT+CSR / AT+CERT pass inside XS", async () => {
    const { value, computrons } = await xs.run<RunReport>("identity-suites");
    console.log(`[xs] identity suites: ${value.passed} passed, ${value.failed.length} failed, ${computrons} computrons`);
    expect(value.failed).toEqual([]);
    expect(value.passed).toBeGreaterThanOrEqual(18);
  });
  it("reports the XS cost of what the first AT+CSR does (key from the generator, public point, signed CSR)", async () => {
    const { value, computrons } = await xs.run<number>("identity-keygen-csr");
    console.log(`[xs] device key + CSR: ${computrons} computrons, CSR ${value} bytes`);
    expect(value).toBeGreaterThan(200);
  });
  it("parses a device certificate inside XS", async () => {
    const { value } = await xs.run<string>("identity-cert-parse");
    expect(value).toBe("sim-0001");
  });
});
