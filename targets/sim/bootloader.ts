/**
 * A model of MCUboot's boot decision in direct-xip mode with revert
 * (MCUBOOT_DIRECT_XIP + MCUBOOT_DIRECT_XIP_REVERT, hardware rollback
 * protection on, version comparison including the build number).
 *
 * Decision order (as bootutil's loader does it):
 *  1. Candidates: slots whose header has the image magic.
 *  2. Take the candidate with the highest version (a tie keeps the lower slot).
 *  3. Trailer rule (boot_select_or_erase): if its magic is not good, or it was
 *     selected before (copy_done set) and never confirmed (image_ok unset),
 *     it is rejected; a rejected slot with good magic is erased. Otherwise, if
 *     copy_done is unset, copy_done is written (this boot is its trial).
 *  4. Validation: hash (and signature when a checker is given) and security
 *     counter >= the protected counter. Invalid: rejected, not erased.
 *  5. Boot it. A confirmed image (image_ok set) raises the protected counter to
 *     its security counter (MCUboot's boot_update_hw_rollback_protection).
 *  No candidate left: no bootable image (the device is bricked).
 */
import type { Digest, Flash, MonotonicCounter } from "../../hal/types";
import { Reason, type ReasonCode } from "../../src/errors";
import { compareVersions, formatVersion, parseImageHeader, type ImageHeader } from "../../src/image/format";
import { readTrailer, setCopyDone } from "../../src/image/trailer";
import { verifyImage, type ImageInfo } from "../../src/image/verify";
import { isOtaError } from "../../src/errors";

export interface BootOptions {
  digest: Digest;
  counter: MonotonicCounter;
  checkSignature?: (slot: Flash, info: ImageInfo) => ReasonCode;
}

export interface BootDecision {
  /** The slot booted, or undefined when nothing is bootable. */
  readonly slot: 0 | 1 | undefined;
  readonly info: ImageInfo | undefined;
  /** True when this boot is the image's trial (not yet confirmed). */
  readonly trial: boolean;
  /** Slots erased by the revert rule during this boot. */
  readonly erased: readonly number[];
  /** Why each rejected slot was rejected. */
  readonly rejected: readonly { slot: number; reason: ReasonCode; why: string }[];
  readonly log: readonly string[];
}

function headerOf(slot: Flash): ImageHeader | undefined {
  try {
    return parseImageHeader(slot.read(32, 0));
  } catch (e) {
    if (isOtaError(e)) return undefined;
    throw e;
  }
}

function eraseSlot(slot: Flash): void {
  const { size, blockLength } = slot.status();
  for (let b = 0; b < size / blockLength; b++) slot.eraseBlock(b);
}

/** Run one boot decision over the two slots. Mutates flash exactly as MCUboot would. */
export function bootSelect(slots: readonly [Flash, Flash], options: BootOptions): BootDecision {
  const log: string[] = [];
  const erased: number[] = [];
  const rejected: { slot: number; reason: ReasonCode; why: string }[] = [];
  const headers = slots.map(headerOf);
  const available = [headers[0] !== undefined, headers[1] !== undefined];
  for (let s = 0; s < 2; s++) if (!available[s]) log.push(`slot ${s}: no image`);

  for (let round = 0; round < 2; round++) {
    let pick: 0 | 1 | undefined;
    for (const s of [0, 1] as const) {
      if (!available[s]) continue;
      if (pick === undefined || compareVersions(headers[s]!.version, headers[pick]!.version) > 0) pick = s;
    }
    if (pick === undefined) break;
    const slot = slots[pick];
    available[pick] = false;
    const trailer = readTrailer(slot);
    if (trailer.magic !== "good" || (trailer.copyDone === "set" && trailer.imageOk !== "set")) {
      const why = trailer.magic !== "good" ? `trailer magic ${trailer.magic}` : "selected before and never confirmed: revert";
      rejected.push({ slot: pick, reason: trailer.magic !== "good" ? Reason.IMAGE_BAD_HEADER : Reason.ROLLED_BACK, why });
      log.push(`slot ${pick}: ${formatVersion(headers[pick]!.version)} rejected (${why})`);
      if (trailer.magic === "good") {
        eraseSlot(slot);
        erased.push(pick);
        log.push(`slot ${pick}: erased`);
      }
      continue;
    }
    const result = verifyImage(slot, { digest: options.digest, checkSignature: options.checkSignature });
    if (!result.ok) {
      rejected.push({ slot: pick, reason: result.reason, why: result.message });
      log.push(`slot ${pick}: invalid image (${result.message})`);
      continue;
    }
    const counter = options.counter.read();
    const sec = result.info.securityCounter ?? 0;
    if (sec < counter) {
      rejected.push({ slot: pick, reason: Reason.IMAGE_BAD_SECURITY_COUNTER, why: `security counter ${sec} < ${counter}` });
      log.push(`slot ${pick}: security counter ${sec} below protected ${counter}`);
      continue;
    }
    const trial = trailer.imageOk !== "set";
    if (trailer.copyDone !== "set") setCopyDone(slot);
    if (!trial && sec > counter) options.counter.advance(sec);
    log.push(`slot ${pick}: boot ${formatVersion(result.info.header.version)}${trial ? " (trial)" : ""}`);
    return Object.freeze({ slot: pick, info: result.info, trial, erased, rejected, log });
  }
  log.push("no bootable image");
  return Object.freeze({ slot: undefined, info: undefined, trial: false, erased, rejected, log });
}
