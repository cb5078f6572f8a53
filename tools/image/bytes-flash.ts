/**
 * A read-only Flash over a byte array: lets the host tools run the device's
 * own image verification (src/image/verify.ts) on an image file.
 */
import { OtaError, Reason } from "../../src/errors";
import type { Flash, FlashStatus } from "../../hal/types";

export class BytesFlash implements Flash {
  private readonly geometry: FlashStatus;
  constructor(private readonly bytes: Uint8Array, eraseValue = 0xff) {
    this.geometry = Object.freeze({ size: bytes.length, blockLength: Math.max(1, bytes.length), writeAlign: 1, eraseValue });
  }
  status(): FlashStatus {
    return this.geometry;
  }
  read(byteLength: number, byteOffset: number): Uint8Array {
    if (!Number.isInteger(byteLength) || !Number.isInteger(byteOffset) || byteLength < 0 || byteOffset < 0 || byteLength > 4096 || byteOffset + byteLength > this.bytes.length) {
      throw new OtaError(Reason.FLASH_RANGE, `read ${byteOffset}+${byteLength} past ${this.bytes.length}`, byteOffset);
    }
    return this.bytes.slice(byteOffset, byteOffset + byteLength);
  }
  write(): void {
    throw new OtaError(Reason.FLASH_IO, "read-only");
  }
  eraseBlock(): void {
    throw new OtaError(Reason.FLASH_IO, "read-only");
  }
}
