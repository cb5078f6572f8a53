/**
 * `npm run test:faults`: the power-cut campaign against the faithful
 * bootloader model — a cut at every mutating operation of each scenario,
 * clean and torn, and double cuts (a second cut at an operation of the
 * recovery from the first) for a seeded subset; `npm run campaign`
 * (FAULTS_SEEDS=1..5, FAULTS_DOUBLE=all) runs every double cut. Prints the
 * runs and violations per phase (download, patch, staged, trial, commit,
 * rollback) and kind (clean, torn, double); fails on any violation, listing
 * what reproduces it.
 */
import { afterAll, describe, expect, it } from "vitest";
import { Prng } from "../../hal/mock/prng";
import { PHASES, runOnce, SCENARIOS, windowOf, type Cut, type PhaseName } from "./campaign";

const seeds = (process.env.FAULTS_SEEDS ?? "1").split(",").flatMap((p) => {
  const [a, b] = p.split("..").map(Number);
  return b ? Array.from({ length: b - a + 1 }, (_, i) => a + i) : [a];
});
/** Double cuts per scenario and seed in CI (a seeded subset); "all" = every (first, second) pair. */
const DOUBLE = process.env.FAULTS_DOUBLE === "all" ? "all" : Number(process.env.FAULTS_DOUBLE ?? 300);

type Kind = "clean" | "torn" | "double";
const table = new Map<PhaseName, Record<Kind, { runs: number; violations: number }>>();
for (const p of PHASES) table.set(p, { clean: { runs: 0, violations: 0 }, torn: { runs: 0, violations: 0 }, double: { runs: 0, violations: 0 } });
const violations: string[] = [];

function count(phase: PhaseName, kind: Kind, violation: string | undefined, repro: string): void {
  const cell = table.get(phase)![kind];
  cell.runs++;
  if (violation) {
    cell.violations++;
    violations.push(`VIOLATION [${phase}/${kind}] ${violation}\n  reproduce: ${repro}`);
  }
}

describe("power-cut campaign (faithful MCUboot model)", () => {
  for (const s of SCENARIOS) {
    it(`${s.name}: a cut at every mutating operation (clean, torn) and double cuts in the recovery, seeds ${seeds.join(",")}`, () => {
      const win = windowOf(s);
      const before = violations.length;
      let runs = 0;
      for (const seed of seeds) {
        const rnd = new Prng(seed * 7919 + s.name.length);
        const firsts: { at: number; mode: "clean" | "torn"; recovery: number }[] = [];
        for (let at = 1; at <= win.ops; at++) {
          for (const mode of ["clean", "torn"] as const) {
            const r = runOnce(s, { at, mode }, seed);
            runs++;
            count(win.phaseOf[at - 1], mode, r.violation, `runOnce(SCENARIOS["${s.name}"], { at: ${at}, mode: "${mode}" }, ${seed})`);
            firsts.push({ at, mode, recovery: r.recoveryOps });
          }
        }
        // double cuts: every (first, second) pair, or a seeded subset of them
        const pairs: Cut[] = [];
        const total = firsts.reduce((n, f) => n + f.recovery, 0);
        for (const f of firsts) {
          for (let m = 1; m <= f.recovery; m++) {
            if (DOUBLE !== "all" && rnd.below(total) >= DOUBLE) continue;
            pairs.push({ at: f.at, mode: f.mode, then: { at: m, mode: rnd.below(2) === 0 ? "clean" : "torn" } });
          }
        }
        for (const c of pairs) {
          const r = runOnce(s, c, seed);
          runs++;
          count(win.phaseOf[c.at - 1], "double", r.violation, `runOnce(SCENARIOS["${s.name}"], ${JSON.stringify(c)}, ${seed})`);
        }
      }
      const mine = violations.length - before;
      console.log(`[faults] ${s.name}: ${win.ops} operations in the window, ${runs} runs, ${mine} violations`);
      if (mine > 0) expect.fail(violations.slice(before, before + 5).join("\n"));
    });
  }

  afterAll(() => {
    const rows = PHASES.map((p) => {
      const c = table.get(p)!;
      const cell = (k: Kind) => `${c[k].runs} (${c[k].violations})`.padStart(12);
      return `| ${p.padEnd(8)} | ${cell("clean")} | ${cell("torn")} | ${cell("double")} |`;
    });
    console.log(
      [
        "[faults] power cuts per phase: runs (violations)",
        "| phase    |        clean |         torn |       double |",
        "|----------|--------------|--------------|--------------|",
        ...rows,
        `[faults] total: ${violations.length} violations`,
      ].join("\n"),
    );
  });
});
