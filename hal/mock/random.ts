/**
 * TEST ONLY: a seeded, repeatable `Random` for the mocks, the XS lane and the
 * simulator's repeatable runs. Its bytes are SHA-256(seed || counter), so
 * every seed gives a different, reproducible stream; anyone who knows the
 * seed knows every key made from it. Never hand it to a device or a host
 * tool that makes real keys: hal/node/random.ts (the OS CSPRNG) and
 * hal/moddable/random.ts (the hardware RNG) are the real ones.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { Random } from "../types";

/** Largest single fill, as the HAL allows. */
export const RANDOM_FILL_MAX = 1024;

export class TestOnlySeededRandom implements Random {
  /** Marks the generator for anyone inspecting a Platform: never for real keys. */
  readonly testOnly = true;
  private counter = 0;
  private readonly seed: Uint8Array;

  /** @param seed any 32-bit integer; the same seed gives the same bytes. */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError("TestOnlySeededRandom: seed must be an integer");
    this.seed = Uint8Array.of(seed >>> 24, (seed >>> 16) & 0xff, (seed >>> 8) & 0xff, seed & 0xff);
  }

  fill(out: Uint8Array): Uint8Array {
    if (!(out instanceof Uint8Array)) throw new TypeError("fill: out must be a Uint8Array");
    if (out.length > RANDOM_FILL_MAX) throw new RangeError(`fill: at most ${RANDOM_FILL_MAX} bytes, got ${out.length}`);
    for (let at = 0; at < out.length; at += 32) {
      const c = this.counter++;
      const block = sha256(Uint8Array.of(...this.seed, c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff));
      out.set(block.subarray(0, Math.min(32, out.length - at)), at);
    }
    return out;
  }
}
