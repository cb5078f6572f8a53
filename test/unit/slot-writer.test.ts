/**
 * The slot writer over the strict mock NOR flash: the mock itself refuses a
 * misaligned write, a write over programmed bytes (a byte written twice) and
 * out-of-range access, so every passing write sequence here obeys the rules.
 */
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { Prng } from "../../hal/mock/prng";
import { PowerCut, PowerRail } from "../../hal/mock/rail";
import { isOtaError, Reason } from "../../src/errors";
import { HeaderHold, headerUnitErased, headerUnitLength, SlotWriter } from "../../src/update/slot-writer";

function flash(options: { size?: number; blockLength?: number; writeAlign?: number; eraseValue?: number; rail?: PowerRail } = {}) {
  const chip = new NorFlash(
    { size: options.size ?? 16 * 1024, blockLength: options.blockLength ?? 1024, writeAlign: options.writeAlign ?? 16, eraseValue: options.eraseValue },
    options.rail,
  );
  // Stale contents, as an inactive slot holds an older image.
  chip.cells.fill(0x5a);
  return chip;
}

const data = new Prng(3).fill(new Uint8Array(5000));

function writeAll(w: SlotWriter, bytes: Uint8Array, size: (i: number) => number): void {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, size(i));
    w.write(bytes.subarray(at, at + n));
    at += n;
  }
}

describe("slot writer", () => {
  it("writes split at every point, erasing each block once, padding the last unit", () => {
    for (let cut = 0; cut <= data.length; cut += 7) {
      const chip = flash();
      const w = SlotWriter.open(chip, { bufferSize: 64 });
      w.write(data.subarray(0, cut));
      w.write(data.subarray(cut));
      expect(w.finish()).toBe(data.length);
      expect(Buffer.compare(chip.cells.subarray(0, data.length), data)).toBe(0);
      // The tail of the last write unit is padding (erase value); the rest of its block is erased.
      expect(chip.cells.subarray(data.length, 5 * 1024).every((b) => b === 0xff)).toBe(true);
      // Blocks past the image are not touched.
      expect(chip.cells.subarray(5 * 1024).every((b) => b === 0x5a)).toBe(true);
      expect(Array.from(chip.wear.subarray(0, 6))).toEqual([1, 1, 1, 1, 1, 0]);
    }
  });

  it("takes every chunk size 1..200 and large chunks without copying limits", () => {
    for (let size = 1; size <= 200; size++) {
      const chip = flash();
      const w = SlotWriter.open(chip, { bufferSize: 64 });
      writeAll(w, data, () => size);
      w.finish();
      expect(Buffer.compare(chip.cells.subarray(0, data.length), data), `chunk ${size}`).toBe(0);
    }
    const chip = flash({ size: 64 * 1024, blockLength: 4096, writeAlign: 32 });
    const big = new Prng(9).fill(new Uint8Array(40_000));
    const w = SlotWriter.open(chip);
    w.write(big);
    w.finish();
    expect(Buffer.compare(chip.cells.subarray(0, big.length), big)).toBe(0);
  });

  it("works with flash whose erase value is 0x00", () => {
    const chip = flash({ eraseValue: 0x00 });
    const w = SlotWriter.open(chip);
    w.write(data.subarray(0, 1001));
    w.finish();
    expect(Buffer.compare(chip.cells.subarray(0, 1001), data.subarray(0, 1001))).toBe(0);
    expect(chip.cells.subarray(1001, 1024).every((b) => b === 0)).toBe(true);
  });

  it("refuses bytes past its limit and takes none of them", () => {
    const chip = flash();
    const w = SlotWriter.open(chip, { limit: 3000 });
    w.write(data.subarray(0, 2990));
    const e = (() => {
      try {
        w.write(data.subarray(0, 11));
      } catch (err) {
        return err;
      }
    })();
    expect(isOtaError(e, Reason.FLASH_RANGE)).toBe(true);
    expect(w.offset).toBe(2990);
  });

  it("flush makes whole write units durable; misuse throws", () => {
    const chip = flash();
    const w = SlotWriter.open(chip, { bufferSize: 64 });
    w.write(data.subarray(0, 40));
    expect(w.durableOffset).toBe(0);
    w.flush();
    expect(w.durableOffset).toBe(32);
    expect(w.offset).toBe(40);
    w.finish();
    expect(() => w.write(data)).toThrow(/after finish/);
    expect(() => w.finish()).toThrow(/twice/);
    expect(() => SlotWriter.open(chip, { bufferSize: 24 })).toThrow(RangeError);
    expect(() => SlotWriter.open(chip, { limit: 1 << 30 })).toThrow(RangeError);
  });

  it("resumes mid-block when the tail is erased, and answers the block start when it is not", () => {
    const chip = flash();
    const w = SlotWriter.open(chip, { bufferSize: 64 });
    w.write(data.subarray(0, 1536));
    w.flush();
    // Clean tail: resume exactly at 1536.
    expect(SlotWriter.safeResumeOffset(chip, 1536)).toBe(1536);
    const r = SlotWriter.resume(chip, 1536, { bufferSize: 64 });
    r.write(data.subarray(1536, 1600));
    r.flush();
    // Now flash after 1536 is programmed: resuming at 1536 again must go back to the block start.
    expect(SlotWriter.safeResumeOffset(chip, 1536)).toBe(1024);
    expect(() => SlotWriter.resume(chip, 1536)).toThrow(/FLASH_NOT_ERASED/);
    const again = SlotWriter.resume(chip, 1024, { bufferSize: 64 });
    again.write(data.subarray(1024));
    again.finish();
    expect(Buffer.compare(chip.cells.subarray(0, data.length), data)).toBe(0);
    expect(() => SlotWriter.safeResumeOffset(chip, 17)).toThrow(RangeError);
  });

  for (const mode of ["clean", "torn"] as const) {
    it(`after a ${mode} power cut at every mutating operation, resuming from the last durable offset completes the image`, () => {
      // Count the operations of an uninterrupted run.
      const probe = flash();
      const pw = SlotWriter.open(probe, { bufferSize: 64 });
      writeAll(pw, data, () => 300);
      pw.finish();
      const total = probe.rail.operations;
      expect(total).toBeGreaterThan(10);
      for (let cutAt = 1; cutAt <= total; cutAt++) {
        const rail = new PowerRail({ seed: cutAt });
        const chip = flash({ rail });
        rail.armCut(cutAt, mode);
        let journal = 0; // what an agent would have journaled: the durable offset after each flush
        try {
          const w = SlotWriter.open(chip, { bufferSize: 64 });
          for (let at = 0; at < data.length; at += 300) {
            w.write(data.subarray(at, at + 300));
            w.flush();
            journal = w.durableOffset;
          }
          w.finish();
        } catch (e) {
          if (!(e instanceof PowerCut)) throw e;
        }
        rail.restore();
        const from = SlotWriter.safeResumeOffset(chip, journal);
        const w = SlotWriter.resume(chip, from, { bufferSize: 64 });
        w.write(data.subarray(from));
        w.finish();
        expect(Buffer.compare(chip.cells.subarray(0, data.length), data), `cut at ${cutAt}`).toBe(0);
      }
    });
  }
});

describe("HeaderHold: the header unit held in RAM, programmed last", () => {
  for (const writeAlign of [8, 16, 32, 64]) {
    it(`write unit ${writeAlign}: the image goes to flash except its header unit; reads see it; commit programs it`, () => {
      const chip = flash({ writeAlign });
      const hold = new HeaderHold(chip);
      expect(hold.unit).toBe(Math.max(32, writeAlign));
      expect(headerUnitLength(chip)).toBe(hold.unit);
      const w = SlotWriter.open(hold);
      writeAll(w, data, (i) => 1 + ((i * 37) % 300));
      w.finish();
      expect(headerUnitErased(chip), "nothing of the header in flash").toBe(true);
      expect(chip.cells.subarray(hold.unit, data.length)).toEqual(data.subarray(hold.unit));
      expect(hold.read(100, 0)).toEqual(data.subarray(0, 100));
      expect(hold.bytes()).toEqual(data.subarray(0, hold.unit));
      hold.commit();
      expect(chip.cells.subarray(0, data.length)).toEqual(data);
      hold.commit(); // a repeat after a reset: the same bytes are left alone
    });
  }

  it("resumes from the journaled header; an erase of block 0 clears it (a restart writes it again)", () => {
    const chip = flash();
    const hold = new HeaderHold(chip);
    const w = SlotWriter.open(hold);
    w.write(data.subarray(0, 3000));
    w.flush();
    const header = hold.bytes()!;
    const durable = w.durableOffset;
    // a reset: RAM is gone, the journal kept the header and the offset
    const again = new HeaderHold(chip, header);
    const r = SlotWriter.resume(again, SlotWriter.safeResumeOffset(again, durable));
    r.write(data.subarray(r.offset));
    r.finish();
    again.commit();
    expect(chip.cells.subarray(0, data.length)).toEqual(data);
    again.eraseBlock(0);
    expect(again.bytes()).toBeUndefined();
    expect(() => new HeaderHold(chip, header.subarray(1))).toThrow(RangeError);
  });

  it("commit refuses an incomplete unit; an out-of-order header write is refused", () => {
    const chip = flash({ writeAlign: 8 });
    const hold = new HeaderHold(chip);
    expect(() => hold.commit()).toThrow();
    expect(() => hold.write(new Uint8Array(8), 8)).toThrow();
  });
});

describe("SlotWriter.readWritten", () => {
  it("answers every written byte (held header from RAM, programmed from flash, buffered from RAM) and refuses beyond", () => {
    const chip = flash();
    const hold = new HeaderHold(chip);
    const w = SlotWriter.open(hold);
    w.write(data.subarray(0, 2100));
    expect(w.durableOffset).toBeLessThan(2100);
    for (const [off, n] of [[0, 2100], [0, 10], [30, 40], [1000, 1100], [2099, 1], [2100, 0]] as const) {
      expect(w.readWritten(off, n)).toEqual(data.subarray(off, off + n));
    }
    expect(() => w.readWritten(2000, 101)).toThrow(RangeError);
    expect(() => w.readWritten(-1, 1)).toThrow(RangeError);
  });
});
