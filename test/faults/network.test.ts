/**
 * Seeded network faults during an update: links dropped at random moments,
 * stalls past the keepalive, broker restarts, chunk replies dropped,
 * duplicated or corrupted (caught by the hashes), a server that lies about
 * the size. Every run must end committed, or failed with a reason reported
 * to the cloud — never bricked, never on an unverified image. FAULTS_RUNS
 * sets the number of seeds (default 40 in CI; `npm run campaign` runs 400).
 */
import { describe, expect, it } from "vitest";
import { Prng } from "../../hal/mock/prng";
import { formatVersion } from "../../src/image/format";
import { buildImage, release } from "../../tools/demo/firmware";
import { makePatch } from "../../tools/delta/index";
import { makeWorld } from "../lib/sim-world";
import { isRetryable } from "../../src/agent/retry";

const RUNS = Number(process.env.FAULTS_RUNS ?? 40);
const diff = (a: Uint8Array, b: Uint8Array) => makePatch(a, b).bytes;

function runSeed(seed: number): { outcome: string; plan: string[] } {
  const rnd = new Prng(seed);
  const plan: string[] = [];
  const delta = rnd.below(2) === 1;
  const w = makeWorld({
    seed,
    releases: (w) => {
      const target = buildImage(w.map, w.key, "1.1.0", 1, { size: 48 * 1024 });
      return [release(w.key, target, delta ? { base: w.factory, diff } : {})];
    },
  });
  const corrupt = rnd.below(4) === 0;
  const lie = rnd.below(10) === 0;
  const dropRate = rnd.below(4); // 0..3 in 10
  const dupRate = rnd.below(3);
  let corrupted = false;
  w.cloud.faults = {
    drop: () => rnd.below(10) < dropRate,
    duplicate: () => rnd.below(10) < dupRate,
    corrupt: (offset, data) => {
      if (!corrupt || corrupted || offset < 8192) return undefined;
      corrupted = true;
      return data.map((b, i) => (i === 7 ? b ^ 0x20 : b));
    },
    ...(lie ? { total: (real: number) => real + 512 } : {}),
  };
  plan.push(`${delta ? "delta" : "full"}, drop ${dropRate}/10, dup ${dupRate}/10${corrupt ? ", one corrupt chunk" : ""}${lie ? ", lying size" : ""}`);
  const d = w.addDevice("dev", { keepAliveSec: 20, chunkTimeoutMs: 3000 });
  for (let t = 0; t < 30; t++) {
    d.run(rnd.below(4000));
    const f = rnd.below(8);
    if (f === 0) {
      plan.push(`drop links at ${w.clock.now()}`);
      w.net.dropAll();
    } else if (f === 1) {
      plan.push(`stall 45 s at ${w.clock.now()}`);
      w.net.stallAll(true);
      d.run(45_000);
      w.net.stallAll(false);
    } else if (f === 2) {
      plan.push(`broker restart at ${w.clock.now()}`);
      w.cloud.stop();
      d.run(rnd.below(20_000));
      w.cloud.listen();
    }
  }
  d.run(20 * 60_000);
  if (d.bricked || !d.lastBoot?.info) return { outcome: "BRICKED", plan };
  const running = formatVersion(d.lastBoot.info.header.version);
  const committed = w.cloud.reportsOf("dev", "committed").length;
  const failed = w.cloud.reportsOf("dev", "failed");
  if (committed === 1 && running === "1.1.0+0") return { outcome: "committed", plan };
  // a failure that ends a release for good must be an integrity one (corrupt chunk, lying size); network ones are retried
  const final = failed.filter((f) => !isRetryable(f.reason));
  if (final.length >= 1 && running === "1.0.0+1") return { outcome: `failed ${final[0].reason}`, plan };
  return { outcome: `UNCLEAN: running ${running}, committed ${committed}, failed ${failed.length}`, plan };
}

describe("network fault campaign", () => {
  it(`${RUNS} seeded runs end committed or cleanly failed`, () => {
    const tally = new Map<string, number>();
    for (let seed = 1; seed <= RUNS; seed++) {
      const r = runSeed(seed);
      if (r.outcome === "BRICKED" || r.outcome.startsWith("UNCLEAN")) {
        expect.fail(`VIOLATION seed ${seed}: ${r.outcome}\n  plan: ${r.plan.join("; ")}`);
      }
      const k = r.outcome.startsWith("failed") ? r.outcome : "committed";
      tally.set(k, (tally.get(k) ?? 0) + 1);
    }
    console.log(`[faults] network: ${RUNS} runs, 0 violations; outcomes ${JSON.stringify(Object.fromEntries(tally))}`);
    expect(tally.get("committed") ?? 0).toBeGreaterThan(RUNS / 2);
  });
});
