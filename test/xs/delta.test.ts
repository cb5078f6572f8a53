/**
 * XS lane: the delta patcher runs inside the real XS engine on a 1 MiB
 * fixture (generated in XS; the patch passed in through a bundled data
 * module), including power cuts with resume.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePatch } from "../../tools/delta/index";
import { synthPair } from "../fixtures/firmware/synth";
import { deltaEntry } from "../fixtures/firmware/xs-data";
import { startXs, type XsWorker } from "./harness";

let xs: XsWorker;
let patchLength = 0;
beforeAll(async () => {
  const pair = synthPair();
  const patch = makePatch(pair.old, pair.new).bytes;
  patchLength = patch.length;
  xs = await startXs(deltaEntry({ synthPatch: Buffer.from(patch).toString("base64") }));
});
afterAll(async () => xs?.close());

describe("XS lane: delta patcher", () => {
  it("applies a patch to a 1 MiB image inside XS, byte for byte", async () => {
    const { value, computrons } = await xs.run<{ length: number; identical: boolean; workingMemory: number; patchLength: number }>("apply-1mib");
    console.log(`[xs] apply-1mib: ${value.length} bytes out, patch ${value.patchLength} bytes, working memory ${value.workingMemory} B, ${computrons} computrons`);
    expect(value.length).toBe(1024 * 1024);
    expect(value.patchLength).toBe(patchLength);
    expect(value.identical).toBe(true);
    expect(value.workingMemory).toBeLessThanOrEqual(64 * 1024);
    expect(computrons).toBeGreaterThan(0);
  });
  it("resumes after power cuts inside XS with an exact result", async () => {
    const { value } = await xs.run<boolean[]>("powercut-1mib");
    expect(value).toEqual([true, true, true, true]);
  });
});
