/**
 * Power cut at every mutating operation of a scripted multi-block
 * write-and-erase sequence, clean and torn, with the exact allowed flash
 * contents asserted afterwards (portable: runs on Node and in XS).
 */
import { NorFlash } from "../../hal/mock/flash";
import { PowerCut, PowerRail, type CutMode } from "../../hal/mock/rail";
import { assert, suite, type Suite } from "../lib/spec";

type Op = { kind: "write"; offset: number; data: Uint8Array } | { kind: "erase"; block: number };

const GEOMETRY = { size: 4 * 1024, blockLength: 1024, writeAlign: 16 };

/** The script: erase two blocks, fill them in writes of several sizes, erase one again, rewrite it. */
export function script(): Op[] {
  const ops: Op[] = [];
  const data = (n: number, seed: number) => {
    const d = new Uint8Array(n);
    for (let i = 0; i < n; i++) d[i] = (i * 7 + seed * 29 + 1) & 0xff || 0x5a;
    return d;
  };
  ops.push({ kind: "erase", block: 1 }, { kind: "erase", block: 2 });
  let off = 1024;
  for (const n of [16, 48, 256, 704, 512, 32, 480]) {
    ops.push({ kind: "write", offset: off, data: data(n, off) });
    off += n;
  }
  ops.push({ kind: "erase", block: 1 });
  ops.push({ kind: "write", offset: 1024, data: data(1024, 99) });
  ops.push({ kind: "erase", block: 3 });
  ops.push({ kind: "write", offset: 3072 + 512, data: data(512, 7) });
  return ops;
}

function apply(f: NorFlash, op: Op): void {
  if (op.kind === "write") f.write(op.data, op.offset);
  else f.eraseBlock(op.block);
}

function initial(): NorFlash {
  // Start from a chip whose blocks hold old data, so erases and torn erases are visible.
  const f = new NorFlash(GEOMETRY, new PowerRail({ seed: 1 }));
  for (let i = 0; i < f.cells.length; i++) f.cells[i] = (i * 3 + 0x11) & 0xff;
  return f;
}

/** Reference contents after ops[0..n) applied without faults. */
function reference(ops: Op[], n: number): Uint8Array {
  const f = initial();
  for (let i = 0; i < n; i++) apply(f, ops[i]);
  return f.cells.slice();
}

function checkOutcome(cells: Uint8Array, before: Uint8Array, op: Op, mode: CutMode, erased: number, label: string): void {
  const [start, end] = op.kind === "write" ? [op.offset, op.offset + op.data.length] : [op.block * 1024, op.block * 1024 + 1024];
  for (let i = 0; i < cells.length; i++) {
    if (i < start || i >= end) assert.equal(cells[i], before[i], `${label}: byte ${i} outside the interrupted op changed`);
  }
  if (mode === "clean") {
    for (let i = start; i < end; i++) assert.equal(cells[i], before[i], `${label}: clean cut changed byte ${i}`);
    return;
  }
  if (op.kind === "write") {
    // torn write: a strict prefix of the data is programmed, the rest still erased
    let k = 0;
    while (k < op.data.length && cells[start + k] === op.data[k]) k++;
    for (let i = start + k; i < end; i++) assert.equal(cells[i], erased, `${label}: torn write left byte ${i} neither data nor erased`);
  } else {
    for (let i = start; i < end; i++) {
      assert.ok(cells[i] === erased || cells[i] === before[i], `${label}: torn erase left byte ${i} neither old nor erased`);
    }
  }
}

export function powerCutSuite(): Suite {
  return suite("power cut at every mutating operation", (it) => {
    const ops = script();
    it("the script has the expected number of mutating operations", () => {
      const f = initial();
      for (const op of ops) apply(f, op);
      assert.equal(f.rail.operations, ops.length);
    });
    for (const mode of ["clean", "torn"] as const) {
      it(`${mode}: for every N, ops before N complete, op N interrupted, nothing after`, () => {
        for (let n = 1; n <= ops.length; n++) {
          const f = initial();
          f.rail.armCut(n, mode);
          let cutAt = -1;
          for (let i = 0; i < ops.length; i++) {
            try {
              apply(f, ops[i]);
            } catch (e) {
              if (!(e instanceof PowerCut)) throw e;
              cutAt = i;
              break;
            }
          }
          assert.equal(cutAt, n - 1, `cut at op ${n}`);
          const before = reference(ops, n - 1);
          checkOutcome(f.cells, before, ops[n - 1], mode, 0xff, `${mode} N=${n}`);
          // the rail is down: every access throws until power returns
          assert.throws(() => f.read(1, 0), (e) => e instanceof PowerCut);
          const snapshot = f.cells.slice();
          f.rail.restore();
          assert.bytes(f.read(1024, 0), snapshot.subarray(0, 1024), "contents survive the power cycle");
        }
      });
    }
    it("the same seed tears the same way (repeatable)", () => {
      const run = () => {
        const f = initial();
        f.rail.armCut(5, "torn");
        try {
          for (const op of ops) apply(f, op);
        } catch (e) {
          if (!(e instanceof PowerCut)) throw e;
        }
        return f.cells.slice();
      };
      assert.bytes(run(), run());
    });
  });
}
