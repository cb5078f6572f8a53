/**
 * A strict NOR flash chip and partition views over it.
 *
 * Strict like MCUboot's simulator flash: a misaligned write, a write to bytes
 * that are not erased, or an access out of range throws an OtaError. Every
 * write and erase is a mutating operation accounted on the PowerRail, so a
 * test can cut power at any of them; a torn write leaves a prefix of the data
 * programmed (byte-granular, or whole write units with `tornWholeUnits`), a
 * torn erase leaves a random mix of erased and old bytes.
 */
import { OtaError, Reason } from "../../src/errors";
import type { Flash, FlashStatus } from "../types";
import { PowerRail } from "./rail";

export interface NorGeometry {
  /** Total size in bytes, a multiple of blockLength. */
  size: number;
  blockLength: number;
  writeAlign: number;
  eraseValue?: number;
}

/** Largest single read the mock accepts: the HAL promises bounded reads. */
export const MAX_READ = 4096;

function checkInt(value: number, title: string): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new OtaError(Reason.FLASH_RANGE, `${title} must be a non-negative integer, got ${value}`);
  }
}

/** The whole chip. Partitions (`partition()`) are what the HAL hands out. */
export class NorFlash implements Flash {
  readonly geometry: FlashStatus;
  /** The cells. Tests may read them directly to assert exact contents. */
  readonly cells: Uint8Array;
  readonly rail: PowerRail;
  /** Statistics, for benches and assertions. */
  readonly stats = { reads: 0, bytesRead: 0, writes: 0, bytesWritten: 0, erases: 0 };
  /** Per-block erase counts (wear). */
  readonly wear: Uint32Array;
  /** When false, a torn write programs a byte-granular prefix; when true, whole write units only. */
  tornWholeUnits = false;

  constructor(geometry: NorGeometry, rail: PowerRail = new PowerRail()) {
    const eraseValue = geometry.eraseValue ?? 0xff;
    const { size, blockLength, writeAlign } = geometry;
    if (!(blockLength > 0) || size % blockLength !== 0) throw new RangeError("size must be a multiple of blockLength");
    if (!(writeAlign > 0) || blockLength % writeAlign !== 0) throw new RangeError("blockLength must be a multiple of writeAlign");
    if (eraseValue !== 0xff && eraseValue !== 0x00) throw new RangeError("eraseValue must be 0xff or 0x00");
    this.geometry = Object.freeze({ size, blockLength, writeAlign, eraseValue });
    this.cells = new Uint8Array(size).fill(eraseValue);
    this.wear = new Uint32Array(size / blockLength);
    this.rail = rail;
  }

  status(): FlashStatus {
    return this.geometry;
  }

  read(byteLength: number, byteOffset: number): Uint8Array {
    this.rail.check();
    checkInt(byteLength, "byteLength");
    checkInt(byteOffset, "byteOffset");
    if (byteLength > MAX_READ) throw new OtaError(Reason.FLASH_RANGE, `read of ${byteLength} bytes exceeds ${MAX_READ}`);
    if (byteOffset + byteLength > this.geometry.size) {
      throw new OtaError(Reason.FLASH_RANGE, `read ${byteOffset}+${byteLength} past ${this.geometry.size}`, byteOffset);
    }
    this.stats.reads++;
    this.stats.bytesRead += byteLength;
    return this.cells.slice(byteOffset, byteOffset + byteLength);
  }

  write(data: Uint8Array, byteOffset: number): void {
    this.rail.check();
    if (!(data instanceof Uint8Array)) throw new TypeError("write: data must be a Uint8Array");
    checkInt(byteOffset, "byteOffset");
    const { writeAlign, size, eraseValue } = this.geometry;
    if (byteOffset % writeAlign !== 0 || data.length % writeAlign !== 0) {
      throw new OtaError(Reason.FLASH_ALIGN, `write ${byteOffset}+${data.length} not aligned to ${writeAlign}`, byteOffset);
    }
    if (byteOffset + data.length > size) {
      throw new OtaError(Reason.FLASH_RANGE, `write ${byteOffset}+${data.length} past ${size}`, byteOffset);
    }
    for (let i = 0; i < data.length; i++) {
      if (this.cells[byteOffset + i] !== eraseValue) {
        throw new OtaError(Reason.FLASH_NOT_ERASED, `write over programmed byte at ${byteOffset + i}`, byteOffset + i);
      }
    }
    const outcome = this.rail.mutate();
    if (outcome === "ok") {
      this.cells.set(data, byteOffset);
      this.stats.writes++;
      this.stats.bytesWritten += data.length;
      return;
    }
    if (outcome === "torn" && data.length > 0) {
      let n = this.rail.prng.below(data.length);
      if (this.tornWholeUnits) n -= n % writeAlign;
      this.cells.set(data.subarray(0, n), byteOffset);
    }
    this.rail.fail();
  }

  eraseBlock(block: number): void {
    this.rail.check();
    checkInt(block, "block");
    const { blockLength, size, eraseValue } = this.geometry;
    if (block >= size / blockLength) throw new OtaError(Reason.FLASH_RANGE, `block ${block} out of range`, block);
    const start = block * blockLength;
    const outcome = this.rail.mutate();
    if (outcome === "ok") {
      this.cells.fill(eraseValue, start, start + blockLength);
      this.stats.erases++;
      this.wear[block]++;
      return;
    }
    if (outcome === "torn") {
      const prng = this.rail.prng;
      for (let i = start; i < start + blockLength; i++) if (prng.below(2) === 0) this.cells[i] = eraseValue;
    }
    this.rail.fail();
  }

  /** A partition view: offsets relative to `offset`, erase blocks renumbered from 0. */
  partition(offset: number, size: number): FlashPartition {
    return new FlashPartition(this, offset, size);
  }
}

/** A window onto a NorFlash: the object the HAL hands to the core. */
export class FlashPartition implements Flash {
  private readonly geometry: FlashStatus;
  private readonly firstBlock: number;

  constructor(readonly chip: NorFlash, readonly offset: number, size: number) {
    const g = chip.status();
    if (offset % g.blockLength !== 0 || size % g.blockLength !== 0 || size <= 0) {
      throw new RangeError(`partition ${offset}+${size} not block-aligned`);
    }
    if (offset + size > g.size) throw new RangeError(`partition ${offset}+${size} past chip end`);
    this.geometry = Object.freeze({ size, blockLength: g.blockLength, writeAlign: g.writeAlign, eraseValue: g.eraseValue });
    this.firstBlock = offset / g.blockLength;
  }

  status(): FlashStatus {
    return this.geometry;
  }

  read(byteLength: number, byteOffset: number): Uint8Array {
    this.inRange(byteLength, byteOffset);
    return this.chip.read(byteLength, this.offset + byteOffset);
  }

  write(data: Uint8Array, byteOffset: number): void {
    this.inRange(data.length, byteOffset);
    this.chip.write(data, this.offset + byteOffset);
  }

  eraseBlock(block: number): void {
    checkInt(block, "block");
    if (block >= this.geometry.size / this.geometry.blockLength) {
      throw new OtaError(Reason.FLASH_RANGE, `block ${block} out of range`, block);
    }
    this.chip.eraseBlock(this.firstBlock + block);
  }

  /** The partition's cells (a view, for assertions). */
  get cells(): Uint8Array {
    return this.chip.cells.subarray(this.offset, this.offset + this.geometry.size);
  }

  private inRange(byteLength: number, byteOffset: number): void {
    checkInt(byteLength, "byteLength");
    checkInt(byteOffset, "byteOffset");
    if (byteOffset + byteLength > this.geometry.size) {
      throw new OtaError(Reason.FLASH_RANGE, `access ${byteOffset}+${byteLength} past partition size ${this.geometry.size}`, byteOffset);
    }
  }
}
