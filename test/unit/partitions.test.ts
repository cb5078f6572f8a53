/**
 * Both device targets' flash partition tables (their devicetree overlays)
 * against the STM32H743 geometry, against targets/sim/flashmap.ts, and against
 * MCUboot's image trailer for a 32-byte write unit.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { stm32h743FlashMap, type PartitionSpec } from "../../targets/sim/flashmap";

const KiB = 1024;
const FLASH_SIZE = 2048 * KiB;
const BANK_SIZE = 1024 * KiB;

interface DtPartition {
  nodeLabel: string;
  label: string;
  offset: number;
  size: number;
  unitAddress: number;
}

interface Overlay {
  writeBlockSize: number;
  eraseBlockSize: number;
  partitions: DtPartition[];
  aliases: Map<string, string>;
}

/** Parses the subset of devicetree source the overlays use; anything it does not recognise inside a partition is an error. */
export function parseOverlay(text: string): Overlay {
  const src = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
  const cell = (name: string): number => {
    const m = new RegExp(`\\b${name}\\s*=\\s*<\\s*(0x[0-9a-fA-F]+|\\d+)\\s*>\\s*;`).exec(src);
    if (!m) throw new Error(`no ${name}`);
    return Number(m[1]);
  };
  const partitions: DtPartition[] = [];
  const re = /(\w+)\s*:\s*partition@([0-9a-fA-F]+)\s*\{([^{}]*)\}\s*;/g;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    const body = m[3];
    const label = /label\s*=\s*"([^"]*)"\s*;/.exec(body);
    const reg = /reg\s*=\s*<\s*(0x[0-9a-fA-F]+|\d+)\s+(0x[0-9a-fA-F]+|\d+)\s*>\s*;/.exec(body);
    if (!label || !reg) throw new Error(`partition ${m[1]} lacks label or reg`);
    partitions.push({ nodeLabel: m[1], label: label[1], offset: Number(reg[1]), size: Number(reg[2]), unitAddress: parseInt(m[2], 16) });
  }
  const aliases = new Map<string, string>();
  const aliasBlock = /aliases\s*\{([^{}]*)\}/.exec(src);
  if (aliasBlock) for (const a of aliasBlock[1].matchAll(/([\w-]+)\s*=\s*&(\w+)\s*;/g)) aliases.set(a[1], a[2]);
  return { writeBlockSize: cell("write-block-size"), eraseBlockSize: cell("erase-block-size"), partitions, aliases };
}

/**
 * imgtool's trailer size (scripts/imgtool/image.py `_trailer_size`, swap
 * modes: imgtool has no direct-xip mode and reserves the same area):
 * max_sectors * 3 * write_size (swap status) + max_align * 4 (image_ok,
 * copy_done, swap_info, swap_size) + align_up(16, max_align) (magic), where
 * max_align = max(8, write_size).
 */
export function imgtoolTrailerSize(writeSize: number, maxSectors = 128): number {
  const maxAlign = Math.max(8, writeSize);
  const magic = Math.ceil(16 / maxAlign) * maxAlign;
  return maxSectors * 3 * writeSize + maxAlign * 4 + magic;
}

/** What MCUboot's direct-xip-with-revert reads at the end of a slot: magic, image_ok, copy_done, each in its own write unit. */
export function directXipTrailerSize(writeSize: number): number {
  const maxAlign = Math.max(8, writeSize);
  return Math.max(16, maxAlign) + 2 * maxAlign;
}

const targets = ["usr-n520", "usr-g771"];
const byLabel = (o: Overlay, label: string): DtPartition => {
  const p = o.partitions.find((x) => x.label === label);
  if (!p) throw new Error(`no partition labelled ${label}`);
  return p;
};
const spec = (p: DtPartition): PartitionSpec => ({ offset: p.offset, size: p.size });

/** Every rule a table must keep; returns the broken ones (empty when the table is good). */
export function tableProblems(o: Overlay): string[] {
  const problems: string[] = [];
  const parts = [...o.partitions].sort((a, b) => a.offset - b.offset);
  let end = 0;
  for (const p of parts) {
    if (p.offset % o.eraseBlockSize !== 0 || p.size % o.eraseBlockSize !== 0 || p.size === 0) problems.push(`${p.label} not sector-aligned`);
    if (p.unitAddress !== p.offset) problems.push(`${p.label} unit address differs from reg`);
    if (p.offset < end) problems.push(`${p.label} overlaps`);
    if (p.offset > end) problems.push(`gap before ${p.label}`);
    end = Math.max(end, p.offset + p.size);
  }
  if (end !== FLASH_SIZE) problems.push(`table ends at ${end}, flash at ${FLASH_SIZE}`);
  const s0 = o.partitions.find((p) => p.label === "image-0");
  const s1 = o.partitions.find((p) => p.label === "image-1");
  if (!s0 || !s1 || s0.size !== s1.size) problems.push("slots missing or unequal");
  if (s0 && imgtoolTrailerSize(o.writeBlockSize) >= o.eraseBlockSize) problems.push("trailer larger than a sector");
  return problems;
}

describe("imgtool trailer size", () => {
  it("matches the formula's known values", () => {
    expect(imgtoolTrailerSize(8)).toBe(128 * 3 * 8 + 32 + 16); // 3120, imgtool's classic default with --align 8
    expect(imgtoolTrailerSize(32)).toBe(12448);
    expect(imgtoolTrailerSize(32, 6)).toBe(736);
    expect(directXipTrailerSize(32)).toBe(96);
  });
});

for (const target of targets) {
  describe(`${target} partition table`, () => {
    const overlay = parseOverlay(readFileSync(`targets/${target}/zephyr/partitions.overlay`, "utf8"));
    const parts = [...overlay.partitions].sort((a, b) => a.offset - b.offset);

    it("states the STM32H743 geometry: 32-byte write unit, 128 KiB erase blocks", () => {
      expect(overlay.writeBlockSize).toBe(32);
      expect(overlay.eraseBlockSize).toBe(128 * KiB);
    });

    it("has MCUboot's node labels and the labels the adapters open", () => {
      const want: [string, string][] = [
        ["boot_partition", "mcuboot"],
        ["slot0_partition", "image-0"],
        ["slot1_partition", "image-1"],
        ["storage_partition", "storage"],
        ["counter_partition", "counter"],
      ];
      expect(parts.map((p) => [p.nodeLabel, p.label])).toEqual(want);
      expect(overlay.aliases.get("watchdog0")).toBe("iwdg1");
    });

    it("is sector-aligned, covers the flash with no overlap and no gap, slots equal", () => {
      expect(tableProblems(overlay)).toEqual([]);
    });

    it("has equal slots, the counter alone in its sector, storage and counter in bank 2", () => {
      expect(byLabel(overlay, "image-0").size).toBe(byLabel(overlay, "image-1").size);
      expect(byLabel(overlay, "counter").size).toBe(overlay.eraseBlockSize);
      expect(byLabel(overlay, "storage").offset).toBeGreaterThanOrEqual(BANK_SIZE);
      expect(byLabel(overlay, "counter").offset).toBeGreaterThanOrEqual(BANK_SIZE);
      expect(byLabel(overlay, "storage").size / overlay.eraseBlockSize).toBeGreaterThanOrEqual(2);
    });

    it("is the simulator's stm32h743FlashMap, partition for partition", () => {
      const m = stm32h743FlashMap;
      expect(m.geometry.size).toBe(FLASH_SIZE);
      expect(m.geometry.blockLength).toBe(overlay.eraseBlockSize);
      expect(m.geometry.writeAlign).toBe(overlay.writeBlockSize);
      expect(spec(byLabel(overlay, "mcuboot"))).toEqual({ ...m.bootloader });
      expect(spec(byLabel(overlay, "image-0"))).toEqual({ ...m.slots[0] });
      expect(spec(byLabel(overlay, "image-1"))).toEqual({ ...m.slots[1] });
      expect(spec(byLabel(overlay, "storage"))).toEqual({ ...m.storage });
      expect(m.counter).toBeDefined();
      expect(spec(byLabel(overlay, "counter"))).toEqual({ ...m.counter });
    });

    it("leaves room for MCUboot's trailer with a 32-byte write unit; states the image size limit", () => {
      const slot = byLabel(overlay, "image-0").size;
      const trailer = imgtoolTrailerSize(overlay.writeBlockSize);
      // Conservative limit: what imgtool itself accepts with Zephyr's default signing (--align 32, 128 max sectors).
      expect(slot - trailer).toBe(786432 - 12448);
      expect(slot - trailer).toBe(773984);
      // The trailer fits in the slot's last sector, so erasing that sector never touches another partition.
      expect(trailer).toBeLessThan(overlay.eraseBlockSize);
      expect(directXipTrailerSize(overlay.writeBlockSize)).toBeLessThanOrEqual(trailer);
      // The header (CONFIG_ROM_START_OFFSET 0x400) plus the trailer leave the image body its room.
      expect(slot - 0x400 - trailer).toBeGreaterThan(700 * KiB);
    });
  });
}

describe("the checks fail on a broken table", () => {
  const good = readFileSync("targets/usr-n520/zephyr/partitions.overlay", "utf8");
  const broken = (from: string, to: string) => tableProblems(parseOverlay(good.replace(from, to)));
  it("a partition without reg is a parse error", () => {
    expect(() => parseOverlay(good.replace("reg = <0x001E0000 0x00020000>;", ""))).toThrow(/lacks label or reg/);
  });
  it("overlap, misalignment, unequal slots and a short table are each reported", () => {
    expect(broken("reg = <0x000E0000 0x000C0000>;", "reg = <0x000D0000 0x000C0000>;")).toContain("image-1 overlaps");
    expect(broken("reg = <0x001A0000 0x00040000>;", "reg = <0x001A0000 0x0003F000>;")).toContain("storage not sector-aligned");
    expect(broken("reg = <0x000E0000 0x000C0000>;", "reg = <0x000E0000 0x000A0000>;")).toContain("slots missing or unequal");
    expect(broken("reg = <0x001E0000 0x00020000>;", "reg = <0x001E0000 0x00000000>;").length).toBeGreaterThan(0);
  });
});
