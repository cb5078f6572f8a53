import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startXs, type XsWorker } from "./harness";
import type { RunReport } from "../lib/spec";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs(new URL("./entries/at.ts", import.meta.url).pathname);
});
afterAll(async () => xs?.close());

async function suiteInXs(task: string): Promise<void> {
  const { value, computrons } = await xs.run<RunReport>(task);
  console.log(`[xs] ${task}: ${value.passed} passed, ${value.failed.length} failed, ${computrons} computrons`);
  expect(value.failed).toEqual([]);
  expect(value.passed).toBeGreaterThan(0);
}

describe("XS lane: AT console", () => {
  it("the command table, lock and echo suites pass inside XS", () => suiteInXs("at-table"));
  it("the +++ timing suite passes inside XS", () => suiteInXs("at-timing"));
  it("a seeded random-input run passes inside XS", () => suiteInXs("at-random"));
  it("reports the XS cost of 1000 query lines through parser and table", async () => {
    const { value, computrons } = await xs.run<{ replies: number }>("at-parse-cost");
    console.log(`[xs] 1000 x AT+HEARTTM? through the console: ${computrons} computrons (${Math.round(computrons / 1000)} per line)`);
    expect(value.replies).toBe(1000);
  });
  it("reports the XS cost of one password check (PBKDF2-SHA256, 1024 iterations)", async () => {
    const { value, computrons } = await xs.run<number>("at-password-cost");
    console.log(`[xs] one password hash: ${computrons} computrons`);
    expect(value).toBe(64);
  });
});
