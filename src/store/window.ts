/**
 * A window of whole erase blocks of a Flash, itself a Flash: how the storage
 * partition is cut into regions (settings, journal, audit) without the
 * regions knowing where they sit.
 */
import { OtaError, Reason } from "../errors";
import type { Flash, FlashStatus } from "../../hal/types";

export class FlashWindow implements Flash {
  private readonly geometry: FlashStatus;
  private readonly base: number;

  /**
   * @param flash the partition to cut
   * @param firstBlock first erase block of the window (in `flash`'s numbering)
   * @param blocks number of blocks, >= 1
   * @throws RangeError when the window is not inside `flash`
   */
  constructor(private readonly flash: Flash, private readonly firstBlock: number, blocks: number) {
    const g = flash.status();
    const total = g.size / g.blockLength;
    if (!Number.isInteger(firstBlock) || firstBlock < 0) throw new RangeError(`firstBlock must be a non-negative integer, got ${firstBlock}`);
    if (!Number.isInteger(blocks) || blocks < 1 || firstBlock + blocks > total) {
      throw new RangeError(`window ${firstBlock}+${blocks} blocks outside a flash of ${total} blocks`);
    }
    this.base = firstBlock * g.blockLength;
    this.geometry = Object.freeze({ size: blocks * g.blockLength, blockLength: g.blockLength, writeAlign: g.writeAlign, eraseValue: g.eraseValue });
  }

  status(): FlashStatus {
    return this.geometry;
  }

  read(byteLength: number, byteOffset: number): Uint8Array {
    this.inRange(byteLength, byteOffset);
    return this.flash.read(byteLength, this.base + byteOffset);
  }

  write(data: Uint8Array, byteOffset: number): void {
    this.inRange(data.length, byteOffset);
    this.flash.write(data, this.base + byteOffset);
  }

  eraseBlock(block: number): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.geometry.size / this.geometry.blockLength) {
      throw new OtaError(Reason.FLASH_RANGE, `block ${block} outside the window`, block);
    }
    this.flash.eraseBlock(this.firstBlock + block);
  }

  private inRange(byteLength: number, byteOffset: number): void {
    if (!(byteOffset >= 0) || !(byteLength >= 0) || byteOffset + byteLength > this.geometry.size) {
      throw new OtaError(Reason.FLASH_RANGE, `access ${byteOffset}+${byteLength} outside the window of ${this.geometry.size}`, byteOffset);
    }
  }
}
