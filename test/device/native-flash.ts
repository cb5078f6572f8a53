/**
 * A flash partition for the device lane's installs that costs what a device's
 * flash driver costs the JS side: one native call per operation. The checks
 * are hal/mock/flash.ts's (a misaligned write, a write over programmed bytes,
 * an access out of range, a read over 4 KiB: each an OtaError with the same
 * reason), the byte-wise "is it erased" check in C (host.c `firstProgrammed`,
 * as Zephyr's STM32 driver does in C), copies and erases by native typed-array
 * methods. The JS mock's per-byte loop costs ~1,500 instructions per written
 * byte on the M7, as much as decoding. No power cuts here: the power-cut
 * campaigns run on the mock.
 */
import { OtaError, Reason } from "../../src/errors";
import type { Flash, FlashStatus } from "../../hal/types";
import { MAX_READ } from "../../hal/mock/flash";

interface DeviceHost {
  firstProgrammed(cells: Uint8Array, offset: number, length: number, eraseValue: number): number;
}

function host(): DeviceHost {
  const h = (globalThis as { __xsOtaDevice?: DeviceHost }).__xsOtaDevice;
  if (!h) throw new Error("native flash: only on the device lane (its platform installs __xsOtaDevice)");
  return h;
}

function range(length: number, offset: number, size: number, what: string): void {
  if (!Number.isInteger(length) || length < 0 || !Number.isInteger(offset) || offset < 0 || offset + length > size) {
    throw new OtaError(Reason.FLASH_RANGE, `${what} ${offset}+${length} outside the partition of ${size} bytes`, offset);
  }
}

export class NativeFlash implements Flash {
  readonly cells: Uint8Array;
  private readonly geometry: FlashStatus;
  private readonly native = host();

  constructor(size: number, blockLength: number, writeAlign: number, eraseValue = 0xff) {
    if (size % blockLength !== 0 || blockLength % writeAlign !== 0) throw new RangeError("native flash: bad geometry");
    this.geometry = Object.freeze({ size, blockLength, writeAlign, eraseValue });
    this.cells = new Uint8Array(size).fill(eraseValue);
  }

  status(): FlashStatus {
    return this.geometry;
  }

  read(byteLength: number, byteOffset: number): Uint8Array {
    range(byteLength, byteOffset, this.geometry.size, "read");
    if (byteLength > MAX_READ) throw new OtaError(Reason.FLASH_RANGE, `read of ${byteLength} bytes exceeds ${MAX_READ}`);
    // A driver's read is a memcpy. `set` between two Uint8Arrays is one here; `slice` is not in this
    // XS (xsnap 0.15's fx_TypedArray_prototype_slice copies element by element, ~130 instructions a
    // byte; the SDK's XS, 48ee02d, memmoves in both).
    const out = new Uint8Array(byteLength);
    out.set(this.cells.subarray(byteOffset, byteOffset + byteLength));
    return out;
  }

  write(data: Uint8Array, byteOffset: number): void {
    if (!(data instanceof Uint8Array)) throw new TypeError("write: data must be a Uint8Array");
    const { size, writeAlign, eraseValue } = this.geometry;
    range(data.length, byteOffset, size, "write");
    if (byteOffset % writeAlign !== 0 || data.length % writeAlign !== 0) {
      throw new OtaError(Reason.FLASH_ALIGN, `write ${byteOffset}+${data.length} not aligned to ${writeAlign}`, byteOffset);
    }
    const at = this.native.firstProgrammed(this.cells, byteOffset, data.length, eraseValue);
    if (at >= 0) throw new OtaError(Reason.FLASH_NOT_ERASED, `write over programmed byte at ${at}`, at);
    this.cells.set(data, byteOffset);
  }

  eraseBlock(block: number): void {
    const { size, blockLength, eraseValue } = this.geometry;
    if (!Number.isInteger(block) || block < 0 || block >= size / blockLength) throw new OtaError(Reason.FLASH_RANGE, `block ${block} out of range`, block);
    this.cells.fill(eraseValue, block * blockLength, (block + 1) * blockLength);
  }
}
