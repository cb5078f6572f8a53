/**
 * A full vs a delta update of each firmware fixture pair, end to end through
 * the real agent on the simulator over a link shaped to 1 Mbit/s each way
 * (2 ms latency): bytes on the wire (both directions, MQTT framing included)
 * and simulated time from power-on to the committed report. The peer column
 * is the stock `bsdiff` patch of the same pair (bzip2), measured in this run:
 * the payload a bsdiff-based delta would have to carry.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makePatch } from "../tools/delta/index";
import { fixturePairs } from "../test/fixtures/firmware/pairs";
import { imageFromBinary, release } from "../tools/demo/firmware";
import { makeWorld } from "../test/lib/sim-world";
import { smallFlashMap } from "../targets/sim/flashmap";

const MBIT = 125; // bytes per ms
const map = smallFlashMap(256);


function bsdiffSize(a: Uint8Array, b: Uint8Array): number {
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-bench-"));
  try {
    writeFileSync(join(dir, "a"), a);
    writeFileSync(join(dir, "b"), b);
    execFileSync("bsdiff", [join(dir, "a"), join(dir, "b"), join(dir, "p")]);
    return readFileSync(join(dir, "p")).length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(pair: ReturnType<typeof fixturePairs>[number], kind: "full" | "delta") {
  const fromVersion = "1.0.0+0";
  const toVersion = "1.0.0+1";
  let payload = 0;
  const w = makeWorld({
    map,
    bytesPerMs: MBIT,
    factory: (m, key) => imageFromBinary(m, key, pair.old, fromVersion, 0, true),
    releases: (w) => {
      const target = imageFromBinary(w.map, w.key, pair.new, toVersion, 1, false);
      const r = kind === "full" ? release(w.key, target) : release(w.key, target, { base: w.factory, diff: (a, b) => makePatch(a, b).bytes });
      payload = r.payload.length;
      return [r];
    },
  });
  const d = w.addDevice("bench");
  // step until the commit report arrives (bounded: one simulated hour)
  for (let t = 0; t < 3_600_000 && !w.cloud.reports.some((r) => r.report.event === "committed"); t += 100) d.run(100);
  const done = w.cloud.reports.find((r) => r.report.event === "committed");
  if (!done) throw new Error(`${pair.name} ${kind}: no commit\n${w.logs.slice(-10).join("\n")}`);
  return { payload, wire: w.net.bytesToClient + w.net.bytesToServer, ms: done.at };
}

console.log("| pair | full payload | delta payload | bsdiff (peer) | wire, full | wire, delta | time to commit, full | time to commit, delta |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
for (const pair of fixturePairs()) {
  const full = run(pair, "full");
  const delta = run(pair, "delta");
  console.log(
    `| ${pair.name} | ${full.payload} | ${delta.payload} | ${bsdiffSize(pair.old, pair.new)} | ${full.wire} | ${delta.wire} | ${(full.ms / 1000).toFixed(1)} s | ${(delta.ms / 1000).toFixed(1)} s |`,
  );
}
console.log("\nLink: 1 Mbit/s each way, 2 ms latency (MockNetwork shaping). Wire bytes and simulated time from power-on to the committed report");
console.log("(MQTT connect, heartbeats, offer, chunk requests and replies, status reports, the reconnect after the trial reboot).");
console.log("Each target is signed for slot 1 whatever slot its binary was linked for (the simulator does not execute it).");
