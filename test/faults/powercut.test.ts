/**
 * `npm run test:faults`: the power-cut campaign at every mutating flash
 * operation of each scenario, clean and torn, with seed 1 (CI); `npm run
 * campaign` (FAULTS_SEEDS=1..5) repeats it for more torn-write patterns.
 * Fails on the first violation, printing what reproduces it.
 */
import { describe, expect, it } from "vitest";
import { runOnce, SCENARIOS, windowSize } from "./campaign";

const seeds = (process.env.FAULTS_SEEDS ?? "1").split(",").flatMap((p) => {
  const [a, b] = p.split("..").map(Number);
  return b ? Array.from({ length: b - a + 1 }, (_, i) => a + i) : [a];
});

describe("power-cut campaign", () => {
  let totalRuns = 0;
  for (const s of SCENARIOS) {
    it(`${s.name}: a cut at every mutating flash operation, clean and torn, seeds ${seeds.join(",")}`, () => {
      const ops = windowSize(s);
      let runs = 0;
      for (const seed of seeds) {
        for (let cut = 1; cut <= ops; cut++) {
          for (const mode of ["clean", "torn"] as const) {
            const r = runOnce(s, cut, mode, seed);
            runs++;
            if (r.violation) {
              expect.fail(`VIOLATION ${s.name}: ${r.violation}\n  reproduce: runOnce(SCENARIOS["${s.name}"], cut=${cut}, mode="${mode}", seed=${seed})`);
            }
          }
        }
      }
      totalRuns += runs;
      console.log(`[faults] ${s.name}: ${ops} cut points × 2 modes × ${seeds.length} seed(s) = ${runs} runs, 0 violations (total so far ${totalRuns})`);
      expect(runs).toBe(ops * 2 * seeds.length);
    });
  }
});
