/** The portable SHA-256 (noble) behind the Digest HAL, with misuse checks: the default where a device has no native hash. */
import { sha256 } from "@noble/hashes/sha2.js";
import type { Digest, HashStream } from "../../hal/types";

class NobleSha256 implements HashStream {
  private h = sha256.create();
  private done = false;
  update(data: Uint8Array): void {
    if (this.done) throw new Error("sha256: update after finish");
    this.h.update(data);
  }
  finish(): Uint8Array {
    if (this.done) throw new Error("sha256: finish called twice");
    this.done = true;
    return this.h.digest();
  }
}

export const softwareDigest: Digest = Object.freeze({
  sha256(): HashStream {
    return new NobleSha256();
  },
});
