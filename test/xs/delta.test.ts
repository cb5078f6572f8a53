/**
 * XS lane: the delta patcher runs inside the real XS engine on a 1 MiB
 * fixture (generated in XS; the patch passed in through a bundled data
 * module), including power cuts with resume.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Codec } from "../../src/delta/format";
import { makePatch } from "../../tools/delta/index";
import { synthPair } from "../fixtures/firmware/synth";
import { deltaEntry } from "../fixtures/firmware/xs-data";
import { startXs, type XsWorker } from "./harness";

let xs: XsWorker;
const patchLength = { range: 0, deflate: 0, lz: 0, lzr: 0 };
beforeAll(async () => {
  const pair = synthPair();
  const patch = makePatch(pair.old, pair.new, { codec: Codec.RANGE }).bytes;
  const deflate = makePatch(pair.old, pair.new, { codec: Codec.DEFLATE }).bytes;
  patchLength.range = patch.length;
  patchLength.deflate = deflate.length;
  const lz = makePatch(pair.old, pair.new, { codec: Codec.LZ }).bytes;
  patchLength.lz = lz.length;
  const lzr = makePatch(pair.old, pair.new, { codec: Codec.LZR }).bytes;
  patchLength.lzr = lzr.length;
  xs = await startXs(
    deltaEntry({
      synthPatch: Buffer.from(patch).toString("base64"),
      synthDeflatePatch: Buffer.from(deflate).toString("base64"),
      synthLzPatch: Buffer.from(lz).toString("base64"),
      synthLzrPatch: Buffer.from(lzr).toString("base64"),
    }),
  );
});
afterAll(async () => xs?.close());

describe("XS lane: delta patcher", () => {
  for (const [task, codec] of [["apply-1mib", "range"], ["apply-1mib-deflate", "deflate"], ["apply-1mib-lz", "lz"], ["apply-1mib-lzr", "lzr"]] as const) {
    it(`applies a ${codec} patch to a 1 MiB image inside XS, byte for byte`, async () => {
      const { value, computrons } = await xs.run<{ length: number; identical: boolean; workingMemory: number; patchLength: number; codec: number }>(task);
      console.log(`[xs] ${task}: ${value.length} bytes out, patch ${value.patchLength} bytes, working memory ${value.workingMemory} B, ${computrons} computrons`);
      expect(value.length).toBe(1024 * 1024);
      expect(value.codec).toBe({ range: Codec.RANGE, lz: Codec.LZ, lzr: Codec.LZR, deflate: Codec.DEFLATE }[codec]);
      expect(value.patchLength).toBe(patchLength[codec]);
      expect(value.identical).toBe(true);
      expect(value.workingMemory).toBeLessThanOrEqual(64 * 1024);
      expect(computrons).toBeGreaterThan(0);
    });
  }
  it("resumes after power cuts inside XS with an exact result", async () => {
    const { value } = await xs.run<boolean[]>("powercut-1mib");
    expect(value).toEqual([true, true, true, true]);
  });
});
