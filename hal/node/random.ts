/**
 * The HAL `Random` on a host (simulator, host tools): Node's CSPRNG
 * (`crypto.randomFillSync`, the OS's getrandom). Host-only: hal/node is never
 * part of a device build.
 */
import { randomFillSync } from "node:crypto";
import type { Random } from "../types";

export const nodeRandom: Random = Object.freeze({
  fill(out: Uint8Array): Uint8Array {
    if (!(out instanceof Uint8Array)) throw new TypeError("fill: out must be a Uint8Array");
    if (out.length > 1024) throw new RangeError(`fill: at most 1024 bytes, got ${out.length}`);
    return randomFillSync(out);
  },
});
