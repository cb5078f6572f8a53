import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { startXs, type XsWorker } from "./harness";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs("test/xs/entries/trust.ts");
});
afterAll(async () => xs?.close());

describe("XS lane: key roles and trusted time (issue 16B)", () => {
  it("the expired-release replay through rewound acks is refused, before and after a reset", async () => {
    const { value } = await xs.run<{ refused: number[]; accepted: number; untouched: boolean; log: string[] }>("expired-replay");
    expect(value.refused, value.log.join("\n")).toEqual([Reason.MANIFEST_EXPIRED, Reason.MANIFEST_EXPIRED, Reason.MANIFEST_EXPIRED]);
    expect(value.accepted).toBe(0);
    expect(value.untouched).toBe(true);
  });

  it("a manifest signed by the retired batch key is refused after the new key set; the new key's release installs", async () => {
    const { value, computrons } = await xs.run<{ keySet: unknown; refused: number[]; committed: number; version: string; log: string[] }>("retired-batch-key");
    console.log(`[xs] key rotation and an update signed by the new batch key: ${computrons} computrons`);
    expect(value.keySet).toEqual({ epoch: 0, sequence: 2 });
    expect(value.refused, value.log.join("\n")).toEqual([Reason.KEY_RETIRED]);
    expect(value.committed).toBe(1);
    expect(value.version).toBe("1.1.0+0");
  });

  it("the 0xFFFFFFFF revocation lockout is refused; the root's epoch reset opens a new sequence", async () => {
    const { value } = await xs.run<{ afterLockout: number | null; keySet: unknown; revocation: number[] }>("revocation-lockout");
    expect(value.afterLockout).toBeNull();
    expect(value.keySet).toEqual({ epoch: 1, sequence: 1 });
    expect(value.revocation).toEqual([1, 1]);
  });

  it("key sets decode and are judged in XS as on Node", async () => {
    const { value } = await xs.run<{ ok: boolean; keys: number; jump: number; forged: number; expected: number[] }>("keyset-decode");
    expect(value.ok).toBe(true);
    expect(value.keys).toBe(2);
    expect([value.jump, value.forged]).toEqual(value.expected);
  });

  it("what a device pays: a key set's root signature and decode; then a time statement (key set parse included)", async () => {
    const ks = await xs.run<{ ok: boolean; bytes: number }>("keyset-parse-cost");
    const both = await xs.run<{ ok: boolean }>("time-parse-cost");
    console.log(`[xs] parse a ${ks.value.bytes}-byte key set: ${ks.computrons} computrons; key set + time statement: ${both.computrons}`);
    expect(ks.value.ok).toBe(true);
    expect(both.value.ok).toBe(true);
  });
});
