/**
 * The agent's working memory during an install (design budget: ≤ 64 KiB
 * besides the engine and TLS): the peak, over every delivered chunk of a
 * delta and a full update of each firmware fixture, of the install's buffers
 * — the patcher (raw block, inflater window and tables, CRC table, slot-writer
 * program buffer, header buffers, one flash read), early chunk replies held
 * for ordering, and the MQTT packet being decoded. The peer column is the
 * stock `bspatch`, which holds old, new and patch in RAM (its figure is the
 * sum of those sizes for the same pair).
 */
import { statSync } from "node:fs";
import { makePatch } from "../tools/delta/index";
import { fixturePairs } from "../test/fixtures/firmware/pairs";
import { imageFromBinary, release } from "../tools/demo/firmware";
import { makeWorld } from "../test/lib/sim-world";
import { smallFlashMap } from "../targets/sim/flashmap";

const map = smallFlashMap(256);


function peak(pair: ReturnType<typeof fixturePairs>[number], kind: "full" | "delta"): { peak: number; patch: number } {
  let patch = 0;
  const w = makeWorld({
    map,
    factory: (m, key) => imageFromBinary(m, key, pair.old, "1.0.0+0", 0, true),
    releases: (w) => {
      const target = imageFromBinary(w.map, w.key, pair.new, "1.0.0+1", 1, false);
      const r = kind === "full" ? release(w.key, target) : release(w.key, target, { base: w.factory, diff: (a, b) => makePatch(a, b).bytes });
      patch = r.payload.length;
      return [r];
    },
  });
  const d = w.addDevice("mem");
  let best = 0;
  for (let t = 0; t < 600_000 && !w.cloud.reports.some((r) => r.report.event === "committed" || r.report.event === "failed"); t += 50) {
    d.run(50);
    const a = w.agents.get(d);
    if (a) best = Math.max(best, a.installPeakMemory);
  }
  if (!w.cloud.reports.some((r) => r.report.event === "committed")) throw new Error(`${pair.name} ${kind}: no commit`);
  return { peak: best, patch };
}

console.log("| pair | delta install peak (B) | full install peak (B) | budget | bspatch holds old+new+patch (B) |");
console.log("|---|---:|---:|---:|---:|");
for (const pair of fixturePairs()) {
  const delta = peak(pair, "delta");
  const full = peak(pair, "full");
  const peer = statSync(pair.fromFile).size + statSync(pair.toFile).size + delta.patch;
  console.log(`| ${pair.name} | ${delta.peak} | ${full.peak} | 65536 | ${peer} |`);
}
console.log("\nCounted: the install's own buffers (PatchApplier.workingMemory, early chunk replies, the MQTT decoder's packet buffer) at every delivered chunk;");
console.log("not counted: the XS engine, TLS, JS object headers, the SHA-256 state (~200 B). Chunk window 3 × 4 KiB.");
