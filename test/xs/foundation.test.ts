import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startXs, type XsWorker } from "./harness";
import type { RunReport } from "../lib/spec";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs(new URL("./entries/foundation.ts", import.meta.url).pathname);
});
afterAll(async () => xs?.close());

async function suiteInXs(task: string): Promise<void> {
  const { value, computrons } = await xs.run<RunReport>(task);
  console.log(`[xs] ${task}: ${value.passed} passed, ${value.failed.length} failed, ${computrons} computrons`);
  expect(value.failed).toEqual([]);
  expect(value.passed).toBeGreaterThan(0);
  expect(computrons).toBeGreaterThan(0);
}

describe("XS lane: foundation", () => {
  it("HAL conformance on the mocks passes inside XS", () => suiteInXs("conformance"));
  it("power cut at every operation passes inside XS", () => suiteInXs("powercut"));
  it("the bootloader model passes inside XS", () => suiteInXs("bootloader"));
  it("an exception thrown inside XS fails the run on the Node side", async () => {
    await expect(xs.run("throws")).rejects.toThrow(/RangeError: deliberate failure inside XS/);
  });
});
