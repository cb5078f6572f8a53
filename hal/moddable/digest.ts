/**
 * SHA-256 by Moddable's native `crypt` Digest (C, not JS): the same
 * update()/finish() lifecycle as the software digest, misuse throws. And the
 * patch blocks' CRC-32 in C (native/crc32.c): Moddable's `data/crc` module
 * has CRC-8 and CRC-16 only (SDK 48ee02d8), and in JS the CRC-32 costs about
 * 750 Cortex-M7 instructions a byte.
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

class NativeCrc32 {
  update(crc: number, data: Uint8Array, start: number, end: number): number {
    if (!(data instanceof Uint8Array)) throw new TypeError("crc32: data must be a Uint8Array");
    return this.native(crc, data, start, end);
  }

  // The one form xsc compiles into a direct host function (see system.ts).
  private native(crc: number, data: Uint8Array, start: number, end: number): number {
    return native("xs_otacrc32_update").call(this, crc, data, start, end);
  }
}

const crc32 = new NativeCrc32();

export const nativeDigest: Digest = Object.freeze({
  sha256: (): HashStream => new NativeSha256(),
  crc32: (crc: number, data: Uint8Array, start: number, end: number): number => crc32.update(crc, data, start, end),
});
