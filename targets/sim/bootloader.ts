/**
 * A model of MCUboot's boot decision in direct-xip mode with revert
 * (MCUBOOT_DIRECT_XIP + MCUBOOT_DIRECT_XIP_REVERT, versions compared with the
 * build number), written as MCUboot's own decision table: BOOT_RULES below,
 * one frozen row per decision, in the order `context_boot_go` takes them in
 * mcu-tools/mcuboot boot/bootutil/src/loader.c (commit 2d4bacc). Every row
 * names the function it follows. The model is never kinder than MCUboot: a
 * slot MCUboot would erase is erased here, one it would skip is skipped.
 *
 * The hardware security counter (MCUBOOT_HW_ROLLBACK_PROT, Kconfig
 * MCUBOOT_HW_DOWNGRADE_PREVENTION) is a build option: enforced only when
 * `hwRollbackProtection` is true. The targets' MCUboot builds
 * (targets/usr-*\/sysbuild/mcuboot.conf) leave it off, and so does the
 * simulated device (TARGET_MCUBOOT): the agent's policy and its own counter
 * advance after commit are the anti-rollback check; test/unit/bootloader-config
 * checks the two agree.
 */
import type { Digest, Flash, MonotonicCounter } from "../../hal/types";
import { Reason, type ReasonCode } from "../../src/errors";
import { compareVersions, formatVersion, IMAGE_F_NON_BOOTABLE, IMAGE_HEADER_SIZE, IMAGE_MAGIC, type ImageHeader } from "../../src/image/format";
import { readTrailer, setCopyDone, type TrailerState } from "../../src/image/trailer";
import { verifyImage, type ImageInfo } from "../../src/image/verify";

/** image.h: IMAGE_F_ENCRYPTED_AES128 | IMAGE_F_ENCRYPTED_AES256. */
export const IMAGE_F_ENCRYPTED = 0x04 | 0x08;
/** image.h: IMAGE_F_ROM_FIXED (imgtool --rom-fixed). */
export const IMAGE_F_ROM_FIXED = 0x100;

/** The MCUboot build options the model follows. */
export interface McubootBuild {
  /** MCUBOOT_HW_ROLLBACK_PROT (Kconfig MCUBOOT_HW_DOWNGRADE_PREVENTION). */
  readonly hwRollbackProtection: boolean;
}

/**
 * What the targets' MCUboot is built with (targets/usr-n520 and usr-g771,
 * sysbuild/mcuboot.conf): direct-xip, revert, build number compared, no
 * hardware security counter.
 */
export const TARGET_MCUBOOT: McubootBuild = Object.freeze({ hwRollbackProtection: false });

export interface BootOptions {
  digest: Digest;
  counter: MonotonicCounter;
  checkSignature?: (slot: Flash, info: ImageInfo) => ReasonCode;
  /** Default: TARGET_MCUBOOT. */
  build?: McubootBuild;
  /**
   * Each slot's offset from the start of the flash device
   * (`flash_area_get_off`), what `boot_rom_address_check` compares an
   * IMAGE_F_ROM_FIXED header's load address with. Absent: any ROM_FIXED
   * image is skipped (stricter than MCUboot, never kinder).
   */
  slotOffsets?: readonly [number, number];
}

export interface BootDecision {
  /** The slot booted, or undefined when nothing is bootable. */
  readonly slot: 0 | 1 | undefined;
  readonly info: ImageInfo | undefined;
  /** True when this boot is the image's trial (not yet confirmed). */
  readonly trial: boolean;
  /** Slots erased (scrambled) during this boot. */
  readonly erased: readonly number[];
  /** Why each slot was passed over, with the rule that did it. */
  readonly rejected: readonly { slot: number; reason: ReasonCode; why: string; rule: RuleName }[];
  /** Rules applied, in order (`rule slot: what`). */
  readonly log: readonly string[];
}

export type RuleName =
  | "header-valid"
  | "highest-version"
  | "rom-address"
  | "select-or-erase"
  | "copy-done"
  | "non-bootable"
  | "validate"
  | "hw-counter"
  | "no-slot";

/** What a rule does to the slot under consideration. */
type Verdict =
  | { readonly kind: "next" } // the rule lets it through
  | { readonly kind: "skip"; readonly reason: ReasonCode; readonly why: string } // slot unavailable, left as is
  | { readonly kind: "erase"; readonly reason: ReasonCode; readonly why: string }; // scrambled, then unavailable

interface SlotFacts {
  readonly index: 0 | 1;
  readonly flash: Flash;
  readonly header: ImageHeader;
  trailer?: TrailerState;
  info?: ImageInfo;
}

interface Ctx {
  readonly o: BootOptions;
  readonly build: McubootBuild;
}

export interface BootRule {
  readonly name: RuleName;
  /** The MCUboot function (file: function) the row follows. */
  readonly follows: string;
  /** What MCUboot does, in a line. */
  readonly does: string;
}

const NEXT: Verdict = Object.freeze({ kind: "next" });

/**
 * The rows, in MCUboot's order. Rows 1-2 pick the candidate; rows 3-7 run on
 * the chosen slot, each either letting it through, skipping it (the slot
 * becomes unavailable and row 2 picks again) or erasing it (likewise); row 8
 * runs on the slot that passed; row 9 when none is left.
 */
export const BOOT_RULES: readonly BootRule[] = Object.freeze(
  [
    {
      name: "header-valid",
      follows: "loader.c boot_get_slot_usage → bootutil_loader.c boot_check_header_valid",
      does: "a slot is a candidate when its header has IMAGE_MAGIC, hdr+img+protected TLV sizes fit below the slot size (no u32 overflow) and no encryption flag is set",
    },
    {
      name: "highest-version",
      follows: "loader.c find_slot_with_highest_version (boot_compare_version, build number included)",
      does: "of the available candidates, the one with the strictly highest version; a tie keeps the lower slot",
    },
    {
      name: "rom-address",
      follows: "loader.c boot_rom_address_check (boot_load_and_validate_images, MCUBOOT_DIRECT_XIP)",
      does: "an IMAGE_F_ROM_FIXED image whose load address is not this slot's offset is skipped (not erased)",
    },
    {
      name: "select-or-erase",
      follows: "loader.c boot_select_or_erase (MCUBOOT_DIRECT_XIP_REVERT), trailer from bootutil_public.c boot_read_swap_state",
      does: "trailer magic not good (unset included), or copy_done set and image_ok not set: the whole slot is scrambled",
    },
    {
      name: "copy-done",
      follows: "loader.c boot_select_or_erase → bootutil_misc.c boot_write_copy_done",
      does: "copy_done not set: it is written now, before validation (a failed write is ignored)",
    },
    {
      name: "non-bootable",
      follows: "loader.c boot_validate_slot (IMAGE_F_NON_BOOTABLE)",
      does: "a header flagged non-bootable gives no bootable image; in direct-xip nothing is erased",
    },
    {
      name: "validate",
      follows: "loader.c boot_validate_slot → image_validate.c bootutil_img_validate",
      does: "hash, key, signature (and, with MCUBOOT_HW_ROLLBACK_PROT, security counter >= the stored one) must pass; else the slot is scrambled (ARE_SLOTS_EQUIVALENT in direct-xip)",
    },
    {
      name: "hw-counter",
      follows: "loader.c boot_update_hw_rollback_protection (context_boot_go)",
      does: "with MCUBOOT_HW_ROLLBACK_PROT and image_ok set, the stored counter is raised to the image's; without it, nothing",
    },
    {
      name: "no-slot",
      follows: "loader.c boot_load_and_validate_images (BOOT_SLOT_NONE → FIH_FAILURE)",
      does: "no slot left: no bootable image",
    },
  ].map((r) => Object.freeze(r as BootRule)),
);

/** boot_check_header_valid on the raw 32 header bytes; undefined when not a candidate. */
function validHeader(flash: Flash): ImageHeader | undefined {
  const b = flash.read(IMAGE_HEADER_SIZE, 0);
  const v = new DataView(b.buffer, b.byteOffset, IMAGE_HEADER_SIZE);
  if (v.getUint32(0, true) !== IMAGE_MAGIC) return undefined;
  const hdrSize = v.getUint16(8, true);
  const protectTlvSize = v.getUint16(10, true);
  const imgSize = v.getUint32(12, true);
  const flags = v.getUint32(16, true);
  const size = imgSize + hdrSize + protectTlvSize; // no u32 overflow in JS numbers; the bound below covers it
  if (size > 0xffffffff || size >= flash.status().size) return undefined;
  if (flags & IMAGE_F_ENCRYPTED) return undefined;
  return Object.freeze({
    loadAddr: v.getUint32(4, true),
    hdrSize,
    protectTlvSize,
    imgSize,
    flags,
    version: Object.freeze({ major: b[20], minor: b[21], revision: v.getUint16(22, true), build: v.getUint32(24, true) }),
  });
}

/** The per-slot rows (3-7), each a function of the chosen slot. */
const SLOT_ROWS: readonly { name: RuleName; apply: (s: SlotFacts, c: Ctx) => Verdict }[] = Object.freeze([
  {
    name: "rom-address",
    apply: (s, c) => {
      if (!(s.header.flags & IMAGE_F_ROM_FIXED)) return NEXT;
      const off = c.o.slotOffsets?.[s.index];
      if (off !== undefined && s.header.loadAddr === off) return NEXT;
      return { kind: "skip", reason: Reason.IMAGE_BAD_HEADER, why: `built for 0x${s.header.loadAddr.toString(16)}, slot at ${off === undefined ? "unknown" : "0x" + off.toString(16)}` };
    },
  },
  {
    name: "select-or-erase",
    apply: (s) => {
      const t = readTrailer(s.flash);
      s.trailer = t;
      if (t.magic !== "good") return { kind: "erase", reason: Reason.IMAGE_BAD_HEADER, why: `trailer magic ${t.magic}` };
      if (t.copyDone === "set" && t.imageOk !== "set") return { kind: "erase", reason: Reason.ROLLED_BACK, why: "selected before (copy_done) and never confirmed (image_ok): revert" };
      return NEXT;
    },
  },
  {
    name: "copy-done",
    apply: (s) => {
      // boot_write_copy_done over a "bad" byte fails on NOR (not erased); MCUboot logs and goes on.
      if (s.trailer!.copyDone === "unset") setCopyDone(s.flash);
      return NEXT;
    },
  },
  {
    name: "non-bootable",
    apply: (s) => (s.header.flags & IMAGE_F_NON_BOOTABLE ? { kind: "skip", reason: Reason.IMAGE_BAD_HEADER, why: "IMAGE_F_NON_BOOTABLE" } : NEXT),
  },
  {
    name: "validate",
    apply: (s, c) => {
      const r = verifyImage(s.flash, { digest: c.o.digest, checkSignature: c.o.checkSignature });
      if (!r.ok) return { kind: "erase", reason: r.reason, why: `invalid image (${r.message})` };
      if (c.build.hwRollbackProtection) {
        const stored = c.o.counter.read();
        const sec = r.info.securityCounter ?? 0;
        if (sec < stored) return { kind: "erase", reason: Reason.IMAGE_BAD_SECURITY_COUNTER, why: `security counter ${sec} < stored ${stored}` };
      }
      s.info = r.info;
      return NEXT;
    },
  },
]);

/** boot_scramble_region over the whole slot: every erase block erased. */
function scramble(slot: Flash): void {
  const { size, blockLength } = slot.status();
  for (let b = 0; b < size / blockLength; b++) slot.eraseBlock(b);
}

/**
 * Run one boot decision over the two slots, through BOOT_RULES in order.
 * Mutates flash (copy_done, scrambles) and the counter exactly as MCUboot
 * would; a power cut inside propagates (PowerCut) like any other.
 */
export function bootSelect(slots: readonly [Flash, Flash], options: BootOptions): BootDecision {
  const c: Ctx = { o: options, build: options.build ?? TARGET_MCUBOOT };
  const log: string[] = [];
  const erased: number[] = [];
  const rejected: BootDecision["rejected"][number][] = [];
  // row 1: boot_get_slot_usage
  const facts: (SlotFacts | undefined)[] = [0, 1].map((i) => {
    const header = validHeader(slots[i]);
    log.push(`header-valid ${i}: ${header ? formatVersion(header.version) : "image not found"}`);
    return header ? { index: i as 0 | 1, flash: slots[i], header } : undefined;
  });
  // Bounded: every pass makes one slot unavailable.
  for (let pass = 0; pass < 2; pass++) {
    // row 2: find_slot_with_highest_version
    let pick: SlotFacts | undefined;
    for (const f of facts) if (f && (!pick || compareVersions(f.header.version, pick.header.version) > 0)) pick = f;
    if (!pick) break;
    log.push(`highest-version: slot ${pick.index} (${formatVersion(pick.header.version)})`);
    facts[pick.index] = undefined;
    let verdict: Verdict = NEXT;
    let rule: RuleName = "validate";
    for (const row of SLOT_ROWS) {
      verdict = row.apply(pick, c);
      rule = row.name;
      if (verdict.kind !== "next") break;
    }
    if (verdict.kind !== "next") {
      rejected.push({ slot: pick.index, reason: verdict.reason, why: verdict.why, rule });
      log.push(`${rule} ${pick.index}: ${verdict.kind} (${verdict.why})`);
      if (verdict.kind === "erase") {
        scramble(pick.flash);
        erased.push(pick.index);
      }
      continue;
    }
    const info = pick.info!;
    const trial = pick.trailer!.imageOk !== "set";
    // row 8: boot_update_hw_rollback_protection (direct-xip revert: only once image_ok is set)
    if (c.build.hwRollbackProtection && !trial) {
      const sec = info.securityCounter ?? 0;
      if (sec > options.counter.read()) {
        options.counter.advance(sec);
        log.push(`hw-counter ${pick.index}: raised to ${sec}`);
      }
    }
    log.push(`boot ${pick.index}: ${formatVersion(info.header.version)}${trial ? " (trial)" : ""}`);
    return Object.freeze({ slot: pick.index, info, trial, erased: Object.freeze(erased), rejected: Object.freeze(rejected), log: Object.freeze(log) });
  }
  // row 9
  log.push("no-slot: no bootable image");
  return Object.freeze({ slot: undefined, info: undefined, trial: false, erased: Object.freeze(erased), rejected: Object.freeze(rejected), log: Object.freeze(log) });
}
