/**
 * One case (or more) per row of the bootloader model's table (BOOT_RULES),
 * each the MCUboot behaviour of loader.c the row cites. A case builds the two
 * slots, runs one boot decision and checks the slot booted, what was erased
 * and which rule passed a slot over.
 */
import { describe, expect, it } from "vitest";
import { parseVersion } from "../../src/image/format";
import { readTrailer, setConfirmed, setPending, trailerLayout } from "../../src/image/trailer";
import { softwareDigest } from "../../src/crypto/sha256";
import { BOOT_RULES, bootSelect, IMAGE_F_ENCRYPTED, IMAGE_F_ROM_FIXED, TARGET_MCUBOOT, type BootDecision, type RuleName } from "../../targets/sim/bootloader";
import { VirtualDevice } from "../../targets/sim/device";
import { slotLoadAddress } from "../../targets/sim/flashmap";
import { encodeImage } from "../../tools/image/encode";
import { IMAGE_F_NON_BOOTABLE } from "../../src/image/format";

interface Img {
  version: string;
  sec?: number;
  /** Trailer: "confirmed" (magic + image_ok), "pending" (magic only), "none" (erased). */
  trailer?: "confirmed" | "pending" | "none" | "tried" | "bad-magic" | "bad-copy-done";
  flags?: number;
  /** Link for this slot (ROM_FIXED) instead of its own. */
  linkedFor?: 0 | 1;
  corrupt?: boolean;
  /** Program everything but the first write unit (the agent's partial image). */
  headerless?: boolean;
  /** Header sizes past the slot. */
  oversize?: boolean;
}

function body(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function put(d: VirtualDevice, slot: 0 | 1, img: Img): void {
  const f = d.slots[slot];
  const linked = img.linkedFor ?? slot;
  const bytes = encodeImage({
    body: body(3000 + slot * 100, slot + 1),
    version: parseVersion(img.version),
    securityCounter: img.sec ?? 1,
    loadAddr: slotLoadAddress(d.map, linked),
    flags: IMAGE_F_ROM_FIXED | (img.flags ?? 0),
  });
  if (img.oversize) new DataView(bytes.buffer).setUint32(12, f.status().size, true);
  d.program(slot, bytes);
  if (img.headerless) {
    // the first write unit erased again: program everything but it (a fresh slot written from unit 1)
    d.program(slot, new Uint8Array(0));
    const { writeAlign } = f.status();
    f.write(bytes.subarray(writeAlign, bytes.length - (bytes.length % writeAlign)), writeAlign);
  }
  if (img.corrupt) f.cells[600] ^= 0x40;
  const t = img.trailer ?? "confirmed";
  const layout = trailerLayout(f);
  if (t === "confirmed" || t === "pending" || t === "tried" || t === "bad-copy-done") setPending(f, t === "confirmed");
  if (t === "tried") f.write(flagUnit(f, 0x01), layout.copyDoneOffset);
  if (t === "bad-copy-done") f.write(flagUnit(f, 0x5a), layout.copyDoneOffset);
  if (t === "bad-magic") {
    const { writeAlign } = f.status();
    const unit = new Uint8Array(Math.max(16, writeAlign)).fill(0xff);
    unit[unit.length - 1] = 0x00;
    f.write(unit, f.status().size - unit.length);
  }
}

function flagUnit(f: VirtualDevice["slots"][0], value: number): Uint8Array {
  const u = new Uint8Array(trailerLayout(f).maxAlign).fill(0xff);
  u[0] = value;
  return u;
}

function erased(d: VirtualDevice, slot: 0 | 1): boolean {
  return d.slots[slot].cells.every((x) => x === 0xff);
}

function boot(d: VirtualDevice, hw = false): BootDecision {
  return bootSelect(d.slots, {
    digest: softwareDigest,
    counter: d.counter,
    build: { hwRollbackProtection: hw },
    slotOffsets: [d.map.slots[0].offset, d.map.slots[1].offset],
  });
}

interface Case {
  readonly name: string;
  readonly slots: readonly [Img | undefined, Img | undefined];
  readonly hw?: boolean;
  readonly counter?: number;
  readonly boots: 0 | 1 | undefined;
  readonly trial?: boolean;
  readonly erased?: readonly number[];
  /** The rule that passed over a slot. */
  readonly passedOver?: readonly [number, RuleName][];
  readonly after?: (d: VirtualDevice, b: BootDecision) => void;
}

const OLD: Img = { version: "1.0.0", trailer: "confirmed" };

const CASES: Readonly<Record<RuleName, readonly Case[]>> = {
  "header-valid": [
    { name: "an erased slot is no candidate", slots: [OLD, undefined], boots: 0, erased: [] },
    { name: "a partial image without its header unit is no candidate and is left alone", slots: [OLD, { version: "2.0.0", trailer: "none", headerless: true }], boots: 0, erased: [], after: (d) => expect(erased(d, 1)).toBe(false) },
    { name: "sizes past the slot: no candidate", slots: [OLD, { version: "2.0.0", oversize: true }], boots: 0, erased: [] },
    { name: "an encryption flag: no candidate", slots: [OLD, { version: "2.0.0", flags: IMAGE_F_ENCRYPTED }], boots: 0, erased: [] },
  ],
  "highest-version": [
    { name: "the higher version wins whatever its slot", slots: [{ version: "1.2.0" }, { version: "1.1.0" }], boots: 0 },
    { name: "slot 1 with the higher version", slots: [OLD, { version: "1.0.1" }], boots: 1 },
    { name: "the build number counts", slots: [{ version: "1.0.0+3" }, { version: "1.0.0+4" }], boots: 1 },
    { name: "a tie keeps the lower slot", slots: [{ version: "1.0.0+4" }, { version: "1.0.0+4" }], boots: 0 },
    {
      name: "a valid header with no trailer magic is picked (highest) and erased: why the agent programs the header last",
      slots: [OLD, { version: "2.0.0", trailer: "none" }],
      boots: 0,
      erased: [1],
      passedOver: [[1, "select-or-erase"]],
    },
  ],
  "rom-address": [
    { name: "an image linked for slot 0 placed in slot 1 is skipped, not erased", slots: [OLD, { version: "2.0.0", linkedFor: 0 }], boots: 0, erased: [], passedOver: [[1, "rom-address"]], after: (d) => expect(erased(d, 1)).toBe(false) },
    { name: "linked for the other slot in both: nothing boots", slots: [{ version: "1.0.0", linkedFor: 1 }, { version: "2.0.0", linkedFor: 0 }], boots: undefined, erased: [] },
  ],
  "select-or-erase": [
    { name: "unset magic: erased", slots: [OLD, { version: "2.0.0", trailer: "none" }], boots: 0, erased: [1], passedOver: [[1, "select-or-erase"]] },
    { name: "bad magic (a bad trailer): erased", slots: [OLD, { version: "2.0.0", trailer: "bad-magic" }], boots: 0, erased: [1], passedOver: [[1, "select-or-erase"]] },
    { name: "copy_done without image_ok (tried, never confirmed): erased, revert", slots: [OLD, { version: "2.0.0", trailer: "tried" }], boots: 0, erased: [1], passedOver: [[1, "select-or-erase"]] },
    { name: "the running slot itself with unset magic is erased too (nothing kinder for slot 0)", slots: [{ version: "1.0.0", trailer: "none" }, undefined], boots: undefined, erased: [0] },
  ],
  "copy-done": [
    { name: "pending: copy_done written, booted as a trial", slots: [OLD, { version: "2.0.0", trailer: "pending" }], boots: 1, trial: true, after: (d) => expect(readTrailer(d.slots[1]).copyDone).toBe("set") },
    { name: "a trial's second boot (no image_ok) reverts", slots: [OLD, { version: "2.0.0", trailer: "pending" }], boots: 1, after: (d) => {
      const b = boot(d);
      expect(b.slot).toBe(0);
      expect(b.erased).toEqual([1]);
    } },
    { name: "confirmed after the trial: stays", slots: [OLD, { version: "2.0.0", trailer: "pending" }], boots: 1, after: (d) => {
      setConfirmed(d.slots[1]);
      expect(boot(d).slot).toBe(1);
      expect(boot(d).trial).toBe(false);
    } },
    { name: "copy_done 'bad' is not rewritten (the write would fail; MCUboot goes on)", slots: [OLD, { version: "2.0.0", trailer: "bad-copy-done" }], boots: 1, after: (d) => expect(readTrailer(d.slots[1]).copyDone).toBe("bad") },
  ],
  "non-bootable": [
    { name: "IMAGE_F_NON_BOOTABLE: skipped, not erased", slots: [OLD, { version: "2.0.0", flags: IMAGE_F_NON_BOOTABLE }], boots: 0, erased: [], passedOver: [[1, "non-bootable"]] },
  ],
  validate: [
    { name: "an invalid image (hash) is erased, the other boots", slots: [OLD, { version: "2.0.0", corrupt: true }], boots: 0, erased: [1], passedOver: [[1, "validate"]] },
    { name: "an invalid image in slot 0 is erased too (ARE_SLOTS_EQUIVALENT)", slots: [{ version: "1.0.0", corrupt: true }, { version: "0.9.0" }], boots: 1, erased: [0] },
    { name: "counter on: a security counter below the stored one is erased", hw: true, counter: 3, slots: [{ version: "1.0.0", sec: 3 }, { version: "2.0.0", sec: 2 }], boots: 0, erased: [1], passedOver: [[1, "validate"]] },
    { name: "counter off (the targets): the same image boots", hw: false, counter: 3, slots: [{ version: "1.0.0", sec: 3 }, { version: "2.0.0", sec: 2 }], boots: 1, erased: [] },
  ],
  "hw-counter": [
    { name: "counter on, image_ok set: raised to the image's", hw: true, counter: 1, slots: [{ version: "1.0.0", sec: 4 }, undefined], boots: 0, after: (d) => expect(d.counter.read()).toBe(4) },
    { name: "counter on, a trial: not raised (revert must stay possible)", hw: true, counter: 1, slots: [OLD, { version: "2.0.0", sec: 5, trailer: "pending" }], boots: 1, trial: true, after: (d) => expect(d.counter.read()).toBe(1) },
    { name: "counter off: never raised", hw: false, counter: 1, slots: [{ version: "1.0.0", sec: 4 }, undefined], boots: 0, after: (d) => expect(d.counter.read()).toBe(1) },
  ],
  "no-slot": [
    { name: "both slots erased: nothing boots", slots: [undefined, undefined], boots: undefined },
    { name: "both invalid: both erased, nothing boots", slots: [{ version: "1.0.0", corrupt: true }, { version: "2.0.0", trailer: "tried" }], boots: undefined, erased: [1, 0] },
  ],
};

describe("bootloader model: MCUboot's rules, one table row at a time", () => {
  it("the rows are frozen, ordered as context_boot_go takes them, each citing loader.c", () => {
    expect(Object.isFrozen(BOOT_RULES)).toBe(true);
    expect(BOOT_RULES.map((r) => r.name)).toEqual(["header-valid", "highest-version", "rom-address", "select-or-erase", "copy-done", "non-bootable", "validate", "hw-counter", "no-slot"]);
    for (const r of BOOT_RULES) expect(r.follows).toMatch(/loader\.c /);
  });

  it("every row has a case", () => {
    for (const r of BOOT_RULES) expect(CASES[r.name].length, r.name).toBeGreaterThan(0);
  });

  it("the simulated device follows the targets' build: no hardware counter", () => {
    expect(TARGET_MCUBOOT.hwRollbackProtection).toBe(false);
    expect(new VirtualDevice().mcuboot).toBe(TARGET_MCUBOOT);
  });

  for (const rule of BOOT_RULES) {
    describe(`${rule.name} (${rule.follows})`, () => {
      for (const c of CASES[rule.name]) {
        it(c.name, () => {
          const d = new VirtualDevice();
          if (c.counter) d.counter.advance(c.counter);
          c.slots.forEach((img, i) => img && put(d, i as 0 | 1, img));
          const b = boot(d, c.hw);
          expect(b.slot, b.log.join("\n")).toBe(c.boots);
          if (c.trial !== undefined) expect(b.trial).toBe(c.trial);
          if (c.erased) {
            expect([...b.erased]).toEqual(c.erased);
            for (const s of c.erased) expect(erased(d, s as 0 | 1)).toBe(true);
          }
          for (const [slot, name] of c.passedOver ?? []) expect(b.rejected.some((r) => r.slot === slot && r.rule === name), b.log.join("\n")).toBe(true);
          c.after?.(d, b);
        });
      }
    });
  }
});
