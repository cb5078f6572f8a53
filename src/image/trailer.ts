/**
 * MCUboot's image trailer at the end of each slot: the boot-control records
 * (magic, image_ok, copy_done, swap_info) that the application writes to ask
 * for a trial boot or confirm an image, and that the bootloader reads.
 *
 * Layout from the end of the slot (maxAlign = max(8, write unit)):
 *   magic      16 bytes at end-16, in an area of max(16, maxAlign) bytes
 *   image_ok   1 byte + padding to maxAlign, below the magic area
 *   copy_done  likewise, below image_ok
 *   swap_info  likewise, below copy_done
 *   swap_size  4 bytes + padding, below swap_info (swap modes only)
 * With maxAlign 8 the magic is the classic 16 bytes; with a larger alignment
 * it is the alignment as a LE16 followed by MCUboot's 14-byte second magic.
 *
 * The application-side API mirrors MCUboot's bootutil: `setPending`
 * (boot_set_pending, test or permanent) and `setConfirmed` (boot_set_confirmed).
 */
import { OtaError, Reason } from "../errors";
import type { Flash } from "../../hal/types";

export const BOOT_FLAG_SET = 0x01;

const MAGIC_CLASSIC = Object.freeze([
  0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80,
]);
const MAGIC_ALIGNED_TAIL = Object.freeze([0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a]);

export type MagicState = "good" | "unset" | "bad";
export type FlagState = "set" | "unset" | "bad";

export interface TrailerState {
  readonly magic: MagicState;
  readonly imageOk: FlagState;
  readonly copyDone: FlagState;
}

export interface TrailerLayout {
  readonly maxAlign: number;
  readonly magicOffset: number;
  readonly imageOkOffset: number;
  readonly copyDoneOffset: number;
  readonly swapInfoOffset: number;
  readonly swapSizeOffset: number;
  /** First byte of the trailer records (the image must end before it). */
  readonly start: number;
}

/** The trailer's byte magic for a given maximum alignment. */
export function bootMagic(maxAlign: number): Uint8Array {
  if (maxAlign <= 8) return Uint8Array.from(MAGIC_CLASSIC);
  const m = new Uint8Array(16);
  m[0] = maxAlign & 0xff;
  m[1] = (maxAlign >> 8) & 0xff;
  m.set(MAGIC_ALIGNED_TAIL, 2);
  return m;
}

/** Where the records sit in a slot of the given geometry. */
export function trailerLayout(slot: Flash): TrailerLayout {
  const { size, writeAlign } = slot.status();
  const maxAlign = Math.max(8, writeAlign);
  const magicArea = Math.max(16, maxAlign);
  const magicOffset = size - 16;
  const imageOkOffset = size - magicArea - maxAlign;
  const copyDoneOffset = imageOkOffset - maxAlign;
  const swapInfoOffset = copyDoneOffset - maxAlign;
  const swapSizeOffset = swapInfoOffset - maxAlign;
  return Object.freeze({ maxAlign, magicOffset, imageOkOffset, copyDoneOffset, swapInfoOffset, swapSizeOffset, start: swapSizeOffset });
}

function readFlag(slot: Flash, offset: number): FlagState {
  const b = slot.read(1, offset)[0];
  if (b === slot.status().eraseValue) return "unset";
  return b === BOOT_FLAG_SET ? "set" : "bad";
}

/** Read the trailer records of a slot. @throws OtaError from the flash. */
export function readTrailer(slot: Flash): TrailerState {
  const layout = trailerLayout(slot);
  const erased = slot.status().eraseValue;
  const raw = slot.read(16, layout.magicOffset);
  const want = bootMagic(layout.maxAlign);
  let magic: MagicState = "good";
  let allErased = true;
  for (let i = 0; i < 16; i++) {
    if (raw[i] !== want[i]) magic = "bad";
    if (raw[i] !== erased) allErased = false;
  }
  if (magic === "bad" && allErased) magic = "unset";
  return Object.freeze({
    magic,
    imageOk: readFlag(slot, layout.imageOkOffset),
    copyDone: readFlag(slot, layout.copyDoneOffset),
  });
}

/** One write unit (or maxAlign bytes) holding a flag byte, padded with the erase value. */
function writeFlag(slot: Flash, offset: number, maxAlign: number): void {
  const unit = new Uint8Array(maxAlign).fill(slot.status().eraseValue);
  unit[0] = BOOT_FLAG_SET;
  slot.write(unit, offset);
}

function writeMagic(slot: Flash, layout: TrailerLayout): void {
  const { writeAlign, eraseValue } = slot.status();
  // The magic ends the slot; write the whole aligned unit that holds it.
  const unitLength = Math.max(16, writeAlign);
  const unit = new Uint8Array(unitLength).fill(eraseValue);
  unit.set(bootMagic(layout.maxAlign), unitLength - 16);
  slot.write(unit, slot.status().size - unitLength);
}

/**
 * Ask the bootloader to boot this slot: a trial (`permanent` false: reverted
 * unless confirmed) or for good. Preconditions: the trailer area is erased
 * (the slot writer erased the whole slot before the image was written).
 * @throws OtaError FLASH_NOT_ERASED when the trailer was already written.
 */
export function setPending(slot: Flash, permanent: boolean): void {
  const layout = trailerLayout(slot);
  const state = readTrailer(slot);
  if (state.magic !== "unset") throw new OtaError(Reason.FLASH_NOT_ERASED, "trailer already written; erase the slot first");
  if (permanent) writeFlag(slot, layout.imageOkOffset, layout.maxAlign);
  writeMagic(slot, layout);
}

/**
 * Confirm the running image (image_ok = 1), as boot_set_confirmed does.
 * Idempotent: an image already confirmed is left alone.
 * @throws OtaError IMAGE_BAD_HEADER when the slot has no good magic (nothing to confirm).
 */
export function setConfirmed(slot: Flash): void {
  const layout = trailerLayout(slot);
  const state = readTrailer(slot);
  if (state.magic !== "good") throw new OtaError(Reason.IMAGE_BAD_HEADER, "no boot magic: image was never made pending");
  if (state.imageOk === "unset") writeFlag(slot, layout.imageOkOffset, layout.maxAlign);
}

/** Mark the image as selected for boot (the bootloader's side, direct-xip revert). */
export function setCopyDone(slot: Flash): void {
  const layout = trailerLayout(slot);
  if (readFlag(slot, layout.copyDoneOffset) === "unset") writeFlag(slot, layout.copyDoneOffset, layout.maxAlign);
}
