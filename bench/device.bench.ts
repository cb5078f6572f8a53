/**
 * `npm run bench -- device`: the device lane's table. Instructions executed on
 * the emulated Cortex-M7 (QEMU mps2-an500, `-icount shift=0`, calibrated every
 * boot), instructions per output byte, XS memory (chunks + slots) before the
 * task, at its peak and the difference, the time at 400 MHz assuming one
 * instruction per cycle, and beside it the flash time of the bytes the
 * workload writes, with the device budgets. See test/device/harness.ts.
 */
import { okTask, type DeviceRun } from "../test/device/harness";
import { BUDGET, buildLane, CLOCK_HZ, decodeRow, flashMs, fmt, msAt400, pairRow, pairSections, runBoots, SECTOR_BYTES, tableLine, type Row } from "../test/device/lane";

const lane = await buildLane();
// The longest boot (the AT command table) first; a generous host timeout, since a shared machine slows QEMU down.
const wanted = [...lane.benchBoots, ...lane.boots.filter((b) => !["throws", "delta-flipped", "strict-textencoder", "strict-frozen"].includes(b.id))];
const boots = runBoots(wanted, 3_600_000);
const runs: { [id: string]: DeviceRun } = {};
for (const b of wanted) runs[b.id] = await boots.get(b.id)!;

const rows: Row[] = [];
const f = runs.foundation;
for (const name of ["conformance", "powercut", "bootloader"]) rows.push({ workload: `HAL ${name} suite`, instructions: okTask(f, name).instructions, task: okTask(f, name) });
const ecdsa = runs.verify.tasks.filter((t) => t.name === "ecdsa-verify");
rows.push({ workload: "ECDSA P-256 verify, first call", instructions: ecdsa[0].instructions, task: ecdsa[0] });
rows.push({ workload: "ECDSA P-256 verify, later call", instructions: ecdsa[1].instructions, task: ecdsa[1] });
const sha = okTask(runs.verify, "sha256");
rows.push({ workload: "SHA-256 (JS digest), 64 KiB", instructions: sha.instructions, bytes: 64 * 1024, task: sha });
const nativeSha = okTask<{ instructions: number }>(runs.verify, "sha256-native");
rows.push({ workload: "SHA-256 (native digest), 64 KiB, hashing alone", instructions: nativeSha.value.instructions, bytes: 64 * 1024, task: nativeSha });
const v = okTask<{ totalLength: number }>(runs.verify, "verify-image");
rows.push({ workload: `verify signed image (${v.value.totalLength} B)`, instructions: v.instructions, bytes: v.value.totalLength, task: v });
const working: string[] = [];
const installs: string[] = [];
const deflatePerByte: number[] = [];
for (const pair of lane.pairs) if (pair.codec === "deflate") deflatePerByte[pair.index] = pairSections(runs[pair.boot], pair).decode / pair.newLength;
lane.pairs.forEach((pair) => {
  const run = runs[pair.boot];
  const p = pairSections(run, pair);
  if (!p.task.value.ok) throw new Error(`device: wrong image for ${pair.name}`);
  rows.push(pairRow(run, pair), decodeRow(run, pair));
  const perByte = p.decode / pair.newLength;
  const ms = msAt400(p.install);
  installs.push(
    `| ${pair.name} | ${fmt(p.hashOld)} | ${fmt(p.decode)} | ${fmt(perByte)} | ${(perByte / deflatePerByte[pair.index]).toFixed(2)}x | ${fmt(p.hashNew)} | ${fmt(p.install)} | ${fmt(ms)} ms | ${(flashMs(pair.newLength) / 1000).toFixed(1)} s | ${ms <= flashMs(pair.newLength) ? "yes" : "**no**"} |`,
  );
  const m = p.task.memory;
  working.push(`| ${pair.name} | ${p.task.value.workingMemory} | ${m.chunksPeak + m.slotsPeak - m.chunksBefore - m.slotsBefore} |`);
});
rows.push({ workload: "AT console, command table + lock + echo suites", instructions: okTask(runs["at-table"], "at-table").instructions, task: okTask(runs["at-table"], "at-table") });
for (const name of ["at-timing", "at-parse-cost"]) rows.push({ workload: `AT console ${name}`, instructions: okTask(runs.at, name).instructions, task: okTask(runs.at, name) });
const agent = okTask(runs.agent, "full-update");
rows.push({ workload: "whole update through the agent (sim world)", instructions: agent.instructions, task: agent });
// encrypted images (issue 19): AES-CTR, the key unwrap, the same update plain and encrypted (the device's run alone)
const aes = okTask(runs.enc, "aes-ctr-64k");
rows.push({ workload: "AES-256-CTR (JS), 64 KiB in 1 KiB calls", instructions: aes.instructions, bytes: 64 * 1024, task: aes });
const unwrap = okTask<{ instructions: number }>(runs.enc, "unwrap-timed");
rows.push({ workload: "key unwrap: ECDH P-256 + HKDF + HMAC + AES", instructions: unwrap.value.instructions, task: unwrap });
const pve = okTask<{ plain: { instructions: number; bytes: number }; enc: { instructions: number; bytes: number } }>(runs.enc, "install-plain-vs-enc");
rows.push({ workload: "whole update, plain (device run alone)", instructions: pve.value.plain.instructions, bytes: pve.value.plain.bytes, task: pve });
rows.push({ workload: "whole update, encrypted AES-256 (device run alone)", instructions: pve.value.enc.instructions, bytes: pve.value.enc.bytes, task: pve });

console.log(`XS engine (arm-none-eabi, -Os, Cortex-M7 hard float): .text+.rodata ${lane.elves.foundation.xsText} B; arena ${f.load!.memory.arenaSize} B`);
console.log("\n| workload | instructions | instructions/byte | XS memory before (chunks+slots) | at peak | difference | time at 400 MHz (1 IPC) | flash erase, STM32H743 (lower bound) |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(`${tableLine(r)} ${r.flashBytes ? `${(flashMs(r.flashBytes) / 1000).toFixed(1)} s (${Math.ceil(r.flashBytes / SECTOR_BYTES)} × 128 KiB)` : "-"} |`);
console.log(`\nTime at ${CLOCK_HZ / 1e6} MHz assumes one instruction per cycle. "before" is after a collection, with the bundle's parsed code in the arena (a device preloads it into flash).`);
console.log("The peak includes the task's mock flash (hal/mock, in the arena here; real flash on a device) and its inputs.\n");
console.log("Patch installs as the agent runs them (src/agent/sink.ts): hash the old image, decode + write with that hash known, hash the new image; SHA-256 by the native digest (hal/moddable/digest.ts over the lane's C SHA-256), each part counted inside the task:\n");
console.log("| install | hash old | decode + write | decode + write per output byte | vs DEFLATE, same pair | hash new | whole install | at 400 MHz | flash erase of the new image (lower bound) | install <= erase |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
for (const d of installs) console.log(d);
console.log("");
console.log(`| install (patch) | decoder working memory reported by the patcher (B) | XS difference, incl. mock flash and inputs (B) |`);
console.log("|---|---:|---:|");
for (const w of working) console.log(w);
console.log(`\nBudgets (design.md section 9): install working memory <= ${BUDGET.installWorkingMemory} B, patch decoder <= ${BUDGET.patchDecoder} B.`);
for (const [id, run] of Object.entries(runs)) {
  const l = run.load!;
  console.log(`boot ${id}: bundle ${l.bundleBytes} B parsed in ${fmt(l.loadInstructions)} instructions; XS memory after load ${fmt(l.memory.chunksBefore + l.memory.slotsBefore)} B; C heap (parser) ${fmt(l.cHeapAfterParse)} B`);
}
