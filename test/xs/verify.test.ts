/**
 * XS lane: signed-update verification inside the real XS engine — a 1 MiB
 * signed image verified streaming from a mock flash slot, the tamper matrix
 * of a small image, and manifest parsing + policy.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startXs, type XsWorker } from "./harness";

let xs: XsWorker;
beforeAll(async () => {
  xs = await startXs(new URL("./entries/verify.ts", import.meta.url).pathname);
});
afterAll(async () => xs?.close());

describe("XS lane: signed updates", () => {
  it("verifies a 1 MiB signed image streaming from a mock flash slot, and refuses it with one flipped bit", async () => {
    const setup = await xs.run<number>("setup-1m");
    expect(setup.value).toBeGreaterThan(1024 * 1024);
    const { value, computrons } = await xs.run<{ ok: boolean; reason: string; totalLength: number }>("verify-1m");
    console.log(`[xs] verify 1 MiB signed image: ${computrons} computrons`);
    expect(value).toEqual({ ok: true, reason: "OK", totalLength: setup.value });
    expect(computrons).toBeGreaterThan(0);
    const bad = await xs.run<{ ok: boolean; reason: string }>("verify-1m-tampered");
    expect(bad.value).toEqual({ ok: false, reason: "IMAGE_HASH_MISMATCH" });
  });

  it("a small signed image: every single-byte flip is refused inside XS", async () => {
    const { value } = await xs.run<{ good: boolean; positions: number; accepted: number; refused: { [k: string]: number }; stranger: string; unsigned: string }>("small-matrix");
    expect(value.good).toBe(true);
    expect(value.accepted).toBe(0);
    expect(Object.values(value.refused).reduce((a, b) => a + b, 0)).toBe(value.positions);
    expect(Object.keys(value.refused)).toEqual(expect.arrayContaining(["IMAGE_HASH_MISMATCH", "IMAGE_BAD_SIGNATURE", "IMAGE_UNKNOWN_KEY"]));
    expect(value.stranger).toBe("IMAGE_UNKNOWN_KEY");
    expect(value.unsigned).toBe("IMAGE_NO_SIGNATURE");
  });

  it("manifest parsing, policy and the image binding give the same answers inside XS", async () => {
    const { value } = await xs.run("manifest");
    expect(value).toEqual({ parsed: "OK", policy: "OK", replay: "MANIFEST_REPLAYED", binding: "OK", tampered: "MANIFEST_BAD_SIGNATURE", unknownKey: "MANIFEST_UNKNOWN_KEY" });
  });

  it("one ECDSA P-256 verification inside XS", async () => {
    const { value, computrons } = await xs.run("ecdsa-verify");
    console.log(`[xs] one ECDSA P-256 verify: ${computrons} computrons`);
    expect(value).toBe("OK");
  });
});
