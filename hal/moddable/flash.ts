/**
 * Flash over ECMA-419 `embedded:storage/flash` (Moddable's Zephyr module,
 * modules/io/flash/zephyr/flash-zephyr.js and .c): a partition opened by its
 * devicetree `label` ("image-0", "image-1", "storage"). The module's default
 * export opens a partition and returns a `Flash`; `status()` returns a
 * `FlashStatus`.
 *
 * Every write logs a line: flash-zephyr.c's xs_flashstorage_write calls
 * `xsLog("write returned %d\n", ...)`, which prints on the console (and to
 * xsbug in debug builds) unless XS is built with mxNoConsole. The adapter
 * therefore makes exactly one module write per HAL write, never splits one
 * and never writes zero bytes; the callers batch (the slot writer programs
 * 512-byte buffers, the record store one record per write).
 *
 * The adapter adds what the HAL promises and the module does not check:
 * bounds, alignment and the 4 KiB read cap, as OtaError reason codes; driver
 * exceptions become FLASH_IO. It is not strict: a write over programmed bytes
 * is refused by the STM32H7 driver (-EIO, ECC flash words cannot be
 * reprogrammed) and therefore reported as FLASH_IO, not FLASH_NOT_ERASED.
 */
import flashStorage, { type Flash as FlashPartition } from "embedded:storage/flash";
import { OtaError, Reason } from "../../src/errors";
import type { Flash, FlashStatus } from "../types";

/** The largest read the HAL allows (bounded RAM). */
export const MAX_FLASH_READ = 4096;

function checkInt(value: number, title: string): void {
  if (!Number.isInteger(value) || value < 0) throw new OtaError(Reason.FLASH_RANGE, `${title} must be a non-negative integer`);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class ModdableFlash implements Flash {
  private readonly partition: FlashPartition;
  private readonly geometry: FlashStatus;

  /** @throws OtaError FLASH_IO when the partition does not exist or reports an unusable geometry. */
  constructor(readonly label: string) {
    try {
      this.partition = flashStorage.open({ path: label, mode: "r+" });
    } catch (e) {
      throw new OtaError(Reason.FLASH_IO, `no flash partition "${label}": ${describe(e)}`);
    }
    const s = this.partition.status();
    const ok = s.blockLength > 0 && s.size > 0 && s.size % s.blockLength === 0 && s.writeAlign > 0 && s.blockLength % s.writeAlign === 0;
    if (!ok || (s.eraseValue !== 0xff && s.eraseValue !== 0x00)) {
      throw new OtaError(Reason.FLASH_IO, `partition "${label}" reports an unusable geometry`);
    }
    this.geometry = Object.freeze({ size: s.size, blockLength: s.blockLength, writeAlign: s.writeAlign, eraseValue: s.eraseValue });
  }

  status(): FlashStatus {
    return this.geometry;
  }

  read(byteLength: number, byteOffset: number): Uint8Array {
    checkInt(byteLength, "byteLength");
    checkInt(byteOffset, "byteOffset");
    if (byteLength > MAX_FLASH_READ) throw new OtaError(Reason.FLASH_RANGE, `read of ${byteLength} bytes exceeds ${MAX_FLASH_READ}`);
    if (byteOffset + byteLength > this.geometry.size) throw new OtaError(Reason.FLASH_RANGE, `read past ${this.geometry.size}`, byteOffset);
    if (byteLength === 0) return new Uint8Array(0);
    try {
      return new Uint8Array(this.partition.read(byteLength, byteOffset));
    } catch (e) {
      throw new OtaError(Reason.FLASH_IO, `read ${this.label}: ${describe(e)}`, byteOffset);
    }
  }

  write(data: Uint8Array, byteOffset: number): void {
    if (!(data instanceof Uint8Array)) throw new TypeError("write: data must be a Uint8Array");
    checkInt(byteOffset, "byteOffset");
    const { writeAlign, size } = this.geometry;
    if (byteOffset % writeAlign !== 0 || data.length % writeAlign !== 0) {
      throw new OtaError(Reason.FLASH_ALIGN, `write ${byteOffset}+${data.length} not aligned to ${writeAlign}`, byteOffset);
    }
    if (byteOffset + data.length > size) throw new OtaError(Reason.FLASH_RANGE, `write past ${size}`, byteOffset);
    if (data.length === 0) return;
    try {
      this.partition.write(data, byteOffset);
    } catch (e) {
      throw new OtaError(Reason.FLASH_IO, `write ${this.label}: ${describe(e)}`, byteOffset);
    }
  }

  eraseBlock(block: number): void {
    const blocks = this.geometry.size / this.geometry.blockLength;
    if (!Number.isInteger(block) || block < 0 || block >= blocks) throw new OtaError(Reason.FLASH_RANGE, `block ${block} outside 0..${blocks - 1}`);
    try {
      this.partition.eraseBlock(block);
    } catch (e) {
      throw new OtaError(Reason.FLASH_IO, `erase ${this.label} block ${block}: ${describe(e)}`, block);
    }
  }
}
