/**
 * Flash conformance: what every Flash implementation (mock, file-backed
 * Node adapter, Moddable adapter on a device) must do. `strict` adds the
 * checks only strict implementations make (refusing writes over programmed
 * bytes), which real NOR controllers may not detect.
 */
import type { Flash } from "../../hal/types";
import { OtaError, Reason } from "../../src/errors";
import { assert, suite, type Suite } from "../lib/spec";

export interface FlashSubject {
  flash: Flash;
  teardown?: () => void;
}

export interface FlashConformanceOptions {
  name: string;
  make: () => FlashSubject;
  strict: boolean;
}

const code = (c: number) => (e: unknown) => e instanceof OtaError && e.code === c;

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

export function flashConformance(o: FlashConformanceOptions): Suite {
  const withFlash = (fn: (f: Flash) => void) => () => {
    const s = o.make();
    try {
      fn(s.flash);
    } finally {
      s.teardown?.();
    }
  };
  return suite(`Flash conformance: ${o.name}`, (it) => {
    it("status() reports a consistent geometry", withFlash((f) => {
      const { size, blockLength, writeAlign, eraseValue } = f.status();
      assert.ok(size > 0 && size % blockLength === 0, "size is a whole number of blocks");
      assert.ok(blockLength % writeAlign === 0, "block is a whole number of write units");
      assert.ok(eraseValue === 0xff || eraseValue === 0x00, "erase value is 0xff or 0x00");
    }));

    it("an erased block reads back as the erase value", withFlash((f) => {
      const { blockLength, eraseValue } = f.status();
      f.eraseBlock(0);
      for (let off = 0; off < blockLength; off += 1024) {
        const n = Math.min(1024, blockLength - off);
        const got = f.read(n, off);
        for (let i = 0; i < n; i++) assert.equal(got[i], eraseValue, `byte ${off + i}`);
      }
    }));

    it("writes read back exactly, at every aligned offset of a block", withFlash((f) => {
      const { blockLength, writeAlign } = f.status();
      f.eraseBlock(0);
      const data = pattern(Math.min(blockLength, 2048), 3);
      for (let off = 0; off + writeAlign <= data.length; off += writeAlign) f.write(data.subarray(off, off + writeAlign), off);
      assert.bytes(f.read(data.length, 0), data);
    }));

    it("the last block is usable and erase touches only its block", withFlash((f) => {
      const { size, blockLength, writeAlign } = f.status();
      const blocks = size / blockLength;
      if (blocks < 2) return;
      f.eraseBlock(blocks - 2);
      f.eraseBlock(blocks - 1);
      const a = pattern(writeAlign, 1);
      const b = pattern(writeAlign, 2);
      f.write(a, (blocks - 1) * blockLength - writeAlign);
      f.write(b, size - writeAlign);
      f.eraseBlock(blocks - 1);
      assert.bytes(f.read(writeAlign, (blocks - 1) * blockLength - writeAlign), a, "neighbouring block kept");
      const gone = f.read(writeAlign, size - writeAlign);
      for (const x of gone) assert.equal(x, f.status().eraseValue);
    }));

    it("refuses misaligned writes with FLASH_ALIGN", withFlash((f) => {
      const { writeAlign } = f.status();
      f.eraseBlock(0);
      if (writeAlign === 1) return;
      assert.throws(() => f.write(new Uint8Array(writeAlign), 1), code(Reason.FLASH_ALIGN), "misaligned offset");
      assert.throws(() => f.write(new Uint8Array(writeAlign + 1), 0), code(Reason.FLASH_ALIGN), "misaligned length");
    }));

    it("refuses out-of-range access with FLASH_RANGE", withFlash((f) => {
      const { size, blockLength, writeAlign } = f.status();
      assert.throws(() => f.read(2, size - 1), code(Reason.FLASH_RANGE), "read past end");
      assert.throws(() => f.read(1, -1), code(Reason.FLASH_RANGE), "negative offset");
      assert.throws(() => f.write(new Uint8Array(writeAlign), size), code(Reason.FLASH_RANGE), "write past end");
      assert.throws(() => f.eraseBlock(size / blockLength), code(Reason.FLASH_RANGE), "block past end");
      assert.throws(() => f.eraseBlock(-1), code(Reason.FLASH_RANGE), "negative block");
    }));

    if (o.strict) {
      it("refuses a write over programmed bytes with FLASH_NOT_ERASED, leaving them intact", withFlash((f) => {
        const { writeAlign } = f.status();
        f.eraseBlock(0);
        const a = pattern(writeAlign, 5);
        f.write(a, 0);
        assert.throws(() => f.write(pattern(writeAlign, 6), 0), code(Reason.FLASH_NOT_ERASED));
        assert.bytes(f.read(writeAlign, 0), a);
      }));
    }
  });
}
