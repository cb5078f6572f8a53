/**
 * The virtual device's flash map. The default is the USR-N520/G771 class part
 * (STM32H743: 2 MiB in two 1 MiB banks, 128 KiB sectors, 32-byte write unit):
 *
 *   bootloader  0x000000  128 KiB   MCUboot
 *   slot 0      0x020000  768 KiB   image slot (direct-xip, built for slot 0)
 *   slot 1      0x0E0000  768 KiB   image slot (built for slot 1)
 *   storage     0x1A0000  256 KiB   power-safe records (settings, journal, audit)
 *   counter     0x1E0000  128 KiB   protected security counter (write-once records)
 *
 * The counter partition is what the device's native counter writes (one
 * 32-byte record per advance, see hal/moddable/native/counter_core.c); the
 * simulator models the counter as a MockCounter that survives resets and
 * does not use this partition. The partitions.overlay of targets/usr-n520 and
 * targets/usr-g771 must agree with this table (test/unit/partitions.test.ts).
 * Tests use `smallFlashMap` for speed: same structure, 8 KiB sectors (the
 * smallest that holds the agent journal's live set in half a block).
 */
import type { NorGeometry } from "../../hal/mock/flash";

export interface PartitionSpec {
  readonly offset: number;
  readonly size: number;
}

export interface FlashMapSpec {
  readonly geometry: NorGeometry;
  /** Base address of the flash in the CPU's memory map (load addresses). */
  readonly baseAddress: number;
  readonly bootloader: PartitionSpec;
  readonly slots: readonly [PartitionSpec, PartitionSpec];
  readonly storage: PartitionSpec;
  /** The protected counter's own partition (device maps only; the simulator uses MockCounter). */
  readonly counter?: PartitionSpec;
}

const KiB = 1024;

export const stm32h743FlashMap: FlashMapSpec = Object.freeze({
  geometry: Object.freeze({ size: 2048 * KiB, blockLength: 128 * KiB, writeAlign: 32, eraseValue: 0xff }),
  baseAddress: 0x08000000,
  bootloader: Object.freeze({ offset: 0, size: 128 * KiB }),
  slots: Object.freeze([
    Object.freeze({ offset: 128 * KiB, size: 768 * KiB }),
    Object.freeze({ offset: 896 * KiB, size: 768 * KiB }),
  ]) as readonly [PartitionSpec, PartitionSpec],
  storage: Object.freeze({ offset: 1664 * KiB, size: 256 * KiB }),
  counter: Object.freeze({ offset: 1920 * KiB, size: 128 * KiB }),
});

/** A small map with the same structure, for fast exhaustive tests. */
export function smallFlashMap(slotKiB = 64, blockKiB = 8, writeAlign = 32): FlashMapSpec {
  const b = blockKiB * KiB;
  const slot = slotKiB * KiB;
  const storage = 8 * b;
  return Object.freeze({
    geometry: Object.freeze({ size: b + 2 * slot + storage, blockLength: b, writeAlign, eraseValue: 0xff }),
    baseAddress: 0x08000000,
    bootloader: Object.freeze({ offset: 0, size: b }),
    slots: Object.freeze([
      Object.freeze({ offset: b, size: slot }),
      Object.freeze({ offset: b + slot, size: slot }),
    ]) as readonly [PartitionSpec, PartitionSpec],
    storage: Object.freeze({ offset: b + 2 * slot, size: storage }),
  });
}

/**
 * The address an image for `slot` carries with IMAGE_F_ROM_FIXED (imgtool
 * --rom-fixed): the slot's offset from the start of the flash device, which
 * is what MCUboot's `boot_rom_address_check` (loader.c) compares the header's
 * load address with (`flash_area_get_off`). An image carrying another slot's
 * address is skipped by the bootloader.
 */
export function slotLoadAddress(map: FlashMapSpec, slot: 0 | 1): number {
  return map.slots[slot].offset;
}
