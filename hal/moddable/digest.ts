/**
 * SHA-256 by Moddable's native `crypt` Digest (C, not JS): the same
 * update()/finish() lifecycle as the software digest, misuse throws.
 */
import { Digest as CryptDigest } from "crypt";
import type { Digest, HashStream } from "../types";

function asArrayBuffer(data: Uint8Array): ArrayBuffer {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
  return whole ? (data.buffer as ArrayBuffer) : (data.slice().buffer as ArrayBuffer);
}

class NativeSha256 implements HashStream {
  private readonly digest = new CryptDigest("SHA256");
  private finished = false;

  update(data: Uint8Array): void {
    if (this.finished) throw new Error("sha256: update after finish");
    if (data.length > 0) this.digest.write(asArrayBuffer(data));
  }

  finish(): Uint8Array {
    if (this.finished) throw new Error("sha256: finish called twice");
    this.finished = true;
    return new Uint8Array(this.digest.close());
  }
}

export const nativeDigest: Digest = Object.freeze({
  sha256: (): HashStream => new NativeSha256(),
});
