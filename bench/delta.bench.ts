/**
 * Delta engine benchmark (`npm run bench -- delta`). Per pair (the firmware
 * fixtures built here, and real releases of the Pybricks firmware from npm):
 * full image size, our patch with every codec (codec 3, the default; range;
 * deflate), the stock `bsdiff` (BSDIFF40, bzip2), `xdelta3 -9 -S djw` and
 * `zstd --ultra -22 --long=27 --patch-from`, the smallest marked; apply time of
 * our patcher (every codec) in Node beside the stock `bspatch` on the same
 * pair; XS computrons per MiB of output per codec; the decoder's working
 * memory. Plus the measurement behind the block size. Peers run in the same
 * run; a missing peer fails the bench. Device instructions per byte come from
 * the device lane (`npm run test:device`), not from here.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NorFlash } from "../hal/mock/flash";
import { softwareDigest } from "../src/crypto/sha256";
import { Codec } from "../src/delta/format";
import { PatchApplier } from "../src/delta/patcher";
import { diffSegments } from "../tools/delta/bsdiff";
import { LZ_BLOCK_SIZES, makePatch } from "../tools/delta/index";
import { startXs } from "../test/xs/harness";
import { fixturePairs } from "../test/fixtures/firmware/pairs";
import { realPairs } from "../test/fixtures/firmware/real";
import { synthPair } from "../test/fixtures/firmware/synth";
import { deltaEntry } from "../test/fixtures/firmware/xs-data";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-delta-bench-"));
const MiB = 1024 * 1024;

function peer(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  const ms = performance.now() - t0;
  if (r.error || r.status !== 0) throw new Error(`${cmd} failed (${r.error?.message ?? r.stderr}); install the Debian peers (.ci/run)`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** One device-side install on mock flash; returns ms and the decoder's working memory. */
function applyOnce(old: Uint8Array, patch: Uint8Array, newLength: number): { ms: number; memory: number } {
  const slot = Math.ceil(Math.max(old.length, newLength, 1) / 4096) * 4096;
  const chip = new NorFlash({ size: 2 * slot, blockLength: 4096, writeAlign: 32 });
  const active = chip.partition(0, slot);
  const inactive = chip.partition(slot, slot);
  active.cells.set(old);
  const t0 = performance.now();
  const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest, maxBlockSize: 65536 });
  for (let at = 0; at < patch.length; at += 4096) a.update(patch.subarray(at, at + 4096));
  a.finish();
  return { ms: performance.now() - t0, memory: a.workingMemory };
}

const pairs = fixturePairs();
const real = realPairs();
const rows: string[] = [];
const sizeRows: string[] = [];
const speed: string[] = [];
const xsPairs: { name: string; old: string; patch: string; newSha256: string }[] = [];
const codecName = (patch: Uint8Array) => ["stored", "deflate", "range", "lz"][patch[5]];
const notes: string[] = [];
const ours: Uint8Array[] = [];
for (const pair of [...pairs, ...real]) {
  // Codec 3 (format version 2) beside the version-1 codecs and every peer, the smallest marked.
  const lzBytes = makePatch(pair.old, pair.new, { codec: Codec.LZ }).bytes;
  const lz = lzBytes.length;
  const lzrBytes = makePatch(pair.old, pair.new, { codec: Codec.LZR }).bytes;
  const lzr = lzrBytes.length;
  const r = makePatch(pair.old, pair.new, { codec: Codec.RANGE }).bytes.length;
  const d = makePatch(pair.old, pair.new, { codec: Codec.DEFLATE }).bytes.length;
  const b = join(dir, `${pair.name}.all.bsdiff`);
  peer("bsdiff", [pair.fromFile, pair.toFile, b]);
  const x = join(dir, `${pair.name}.all.xd3`);
  peer("xdelta3", ["-9", "-S", "djw", "-f", "-e", "-s", pair.fromFile, pair.toFile, x]);
  const z = join(dir, `${pair.name}.all.zst`);
  peer("zstd", ["-q", "-f", "--ultra", "-22", "--long=27", `--patch-from=${pair.fromFile}`, pair.toFile, "-o", z]);
  const sizes = [lz, lzr, r, d, readFileSync(b).length, readFileSync(x).length, readFileSync(z).length];
  const min = Math.min(...sizes);
  const peerMin = Math.min(...sizes.slice(4));
  const cells = sizes.map((v) => (v === min ? `**${v}**` : `${v}`));
  cells[0] += ` (${(1 << lzBytes[6]) / 1024} KiB blocks)`;
  cells[1] += ` (${(1 << lzrBytes[6]) / 1024} KiB blocks)`;
  const vs = (v: number) => `${v <= peerMin ? "yes" : "no"} (${(((v - peerMin) / peerMin) * 100).toFixed(1)} %)`;
  sizeRows.push(`| ${pair.name}${pair.minor ? " (minor)" : ""} | ${pair.new.length} | ${cells.join(" | ")} | ${vs(lz)} | ${vs(lzr)} | ${lzr <= r ? "yes" : "no"} (${(((lzr - r) / r) * 100).toFixed(1)} %) |`);
  if (real.includes(pair)) continue;
  const patch = makePatch(pair.old, pair.new).bytes;
  const deflatePatch = makePatch(pair.old, pair.new, { codec: Codec.DEFLATE }).bytes;
  const rangePatch = makePatch(pair.old, pair.new, { codec: Codec.RANGE }).bytes;
  const lzPatch = makePatch(pair.old, pair.new, { codec: Codec.LZ }).bytes;
  ours.push(patch);
  const bsd = join(dir, `${pair.name}.bsdiff`);
  peer("bsdiff", [pair.fromFile, pair.toFile, bsd]);
  const xd = join(dir, `${pair.name}.xd3`);
  peer("xdelta3", ["-9", "-S", "djw", "-f", "-e", "-s", pair.fromFile, pair.toFile, xd]);
  const bsdiffSize = readFileSync(bsd).length;
  const xdSize = readFileSync(xd).length;
  const vsBsdiff = patch.length <= bsdiffSize ? "yes" : `NO (+${(((patch.length - bsdiffSize) / bsdiffSize) * 100).toFixed(0)} %)`;
  const tenth = patch.length * 10 <= pair.new.length ? "yes" : "NO";
  rows.push(
    `| ${pair.name}${pair.minor ? " (minor)" : ""} | ${pair.new.length} | **${patch.length}** (${codecName(patch)}) | ${rangePatch.length} | ${deflatePatch.length} | ${bsdiffSize} | ${xdSize} | ${vsBsdiff} | ${tenth} |`,
  );
  if (pair.minor && patch.length > bsdiffSize) notes.push(`${pair.name}: our patch is larger than bsdiff's (see README, "Delta updates")`);
  if (pair.minor && patch.length * 10 > pair.new.length) notes.push(`${pair.name}: our patch is over 1/10 of the full image`);

  // Throughput: ours in Node (whole install incl. old-image and read-back SHA-256) vs the stock bspatch process.
  const runs = 7;
  const ourMs = median(Array.from({ length: runs }, () => applyOnce(pair.old, rangePatch, pair.new.length).ms));
  const deflateMs = median(Array.from({ length: runs }, () => applyOnce(pair.old, deflatePatch, pair.new.length).ms));
  const lzMs = median(Array.from({ length: runs }, () => applyOnce(pair.old, lzPatch, pair.new.length).ms));
  const out = join(dir, `${pair.name}.out`);
  const bspatchMs = median(Array.from({ length: runs }, () => peer("bspatch", [pair.fromFile, out, bsd])));
  const mibs = (ms: number) => (pair.new.length / MiB / (ms / 1000)).toFixed(1);
  speed.push(`| ${pair.name} | ${lzMs.toFixed(1)} | ${mibs(lzMs)} | ${ourMs.toFixed(1)} | ${mibs(ourMs)} | ${deflateMs.toFixed(1)} | ${mibs(deflateMs)} | ${bspatchMs.toFixed(1)} | ${mibs(bspatchMs)} |`);
  const { createHash } = await import("node:crypto");
  xsPairs.push({
    name: pair.name,
    old: Buffer.from(pair.old).toString("base64"),
    patch: Buffer.from(rangePatch).toString("base64"),
    newSha256: createHash("sha256").update(pair.new).digest("hex"),
  });
  xsPairs.push({
    name: `${pair.name} (lz)`,
    old: Buffer.from(pair.old).toString("base64"),
    patch: Buffer.from(lzPatch).toString("base64"),
    newSha256: createHash("sha256").update(pair.new).digest("hex"),
  });
  xsPairs.push({
    name: `${pair.name} (deflate)`,
    old: Buffer.from(pair.old).toString("base64"),
    patch: Buffer.from(deflatePatch).toString("base64"),
    newSha256: createHash("sha256").update(pair.new).digest("hex"),
  });
}

console.log("\nPatch sizes in bytes, every codec and peer in this run (smallest in bold; the header alone is 88 bytes, two SHA-256s included). The fixture pairs are built here; the pybricks pairs are @pybricks/firmware releases from npm (test/fixtures/firmware/real.ts):\n");
console.log("| pair | full image | ours, lz (codec 3) | ours, lzr (codec 4) | ours, range | ours, deflate | bsdiff | xdelta3 -9 -S djw | zstd --ultra -22 --long=27 --patch-from | lz <= best peer | lzr <= best peer | lzr <= range |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|:--:|:--:|:--:|");
for (const r of sizeRows) console.log(r);

console.log(`\nThe default patch (makePatch: codec 3, its block size the best of ${LZ_BLOCK_SIZES.map((b) => b / 1024).join(", ")} KiB) against bsdiff and the 1/10 budget for minor releases:\n`);
console.log("| pair | full image | ours | ours, range | ours, deflate | bsdiff (BSDIFF40, bzip2) | xdelta3 -9 -S djw | ours <= bsdiff | ours <= 1/10 image |");
console.log("|---|---:|---:|---:|---:|---:|---:|:--:|:--:|");
for (const r of rows) console.log(r);
for (const n of notes) console.log(`NOTE: ${n}`);

console.log("\nApply in Node (median of 7; ours = the device's patcher over mock NOR flash, including the old-image SHA-256 check and the read-back SHA-256 of the new image; bspatch = the stock process, including process start):\n");
console.log("| pair | lz ms | lz MiB/s | range ms | range MiB/s | deflate ms | deflate MiB/s | bspatch ms | bspatch MiB/s |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const s of speed) console.log(s);

// XS: computrons of the install minus the task's setup (base64 decode, loading the old image into the mock slot).
const synth = synthPair();
const synthPatch = makePatch(synth.old, synth.new, { codec: Codec.RANGE }).bytes;
const synthDeflate = makePatch(synth.old, synth.new, { codec: Codec.DEFLATE }).bytes;
const xs = await startXs(
  deltaEntry({
    pairs: xsPairs,
    synthPatch: Buffer.from(synthPatch).toString("base64"),
    synthDeflatePatch: Buffer.from(synthDeflate).toString("base64"),
    synthLzPatch: Buffer.from(makePatch(synth.old, synth.new, { codec: Codec.LZ }).bytes).toString("base64"),
  }),
);
console.log("\nXS (real XS engine via xsnap): computrons per MiB of output (install minus setup; includes the mock flash and both SHA-256 passes):\n");
console.log("| pair | output bytes | install computrons | per MiB of output | working memory (B) |");
console.log("|---|---:|---:|---:|---:|");
for (let i = 0; i < xsPairs.length; i++) {
  const setup = await xs.run<number>(`pair-setup-${i}`);
  const run = await xs.run<{ name: string; length: number; ok: boolean; workingMemory: number }>(`pair-${i}`);
  if (!run.value.ok) throw new Error(`XS produced a wrong image for ${run.value.name}`);
  const net = run.computrons - setup.computrons;
  console.log(`| ${run.value.name} | ${run.value.length} | ${net} | ${Math.round(net / (run.value.length / MiB))} | ${run.value.workingMemory} |`);
}
for (const [task, name] of [["apply-1mib", "range"], ["apply-1mib-deflate", "deflate"], ["apply-1mib-lz", "lz"]]) {
  const big = await xs.run<{ length: number; identical: boolean; workingMemory: number }>(task);
  if (!big.value.identical) throw new Error(`XS produced a wrong image for ${task}`);
  console.log(`| synthetic 1 MiB, ${name} (task incl. generating the pair in XS) | ${big.value.length} | ${big.computrons} | ${Math.round(big.computrons / (big.value.length / MiB))} | ${big.value.workingMemory} |`);
}
const sha = await xs.run<string>("sha256-1mib");
console.log(`| (baseline) SHA-256 of 1 MiB read from mock flash | - | ${sha.computrons} | ${sha.computrons} | - |`);
console.log("An install hashes old and new once each: about 2 x the baseline per MiB is hashing, the rest is decoding and flash writes.");
await xs.close();

// The measured choice: block size and codec.
console.log("\nCodec and block size (total patch bytes over the four pairs; decoder working memory as counted by PatchApplier.workingMemory):\n");
console.log("| block size | stored | deflate | range | lz | decoder working memory, deflate (B) | decoder working memory, range (B) | decoder working memory, lz (B) |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
const segments = pairs.map((p) => diffSegments(p.old, p.new));
for (const bs of [8192, 16384, 32768, 65536]) {
  let stored = 0;
  let deflate = 0;
  let range = 0;
  let memory = 0;
  let rangeMemory = 0;
  let lzTotal = 0;
  let lzMemory = 0;
  pairs.forEach((p, i) => {
    stored += makePatch(p.old, p.new, { blockSize: bs, codec: Codec.STORED, segments: segments[i] }).bytes.length;
    const d = makePatch(p.old, p.new, { blockSize: bs, codec: Codec.DEFLATE, segments: segments[i] }).bytes;
    const r = makePatch(p.old, p.new, { blockSize: bs, codec: Codec.RANGE, segments: segments[i] }).bytes;
    deflate += d.length;
    range += r.length;
    memory = Math.max(memory, applyOnce(p.old, d, p.new.length).memory);
    rangeMemory = Math.max(rangeMemory, applyOnce(p.old, r, p.new.length).memory);
    const l = makePatch(p.old, p.new, { blockSize: bs, codec: Codec.LZ }).bytes;
    lzTotal += l.length;
    lzMemory = Math.max(lzMemory, applyOnce(p.old, l, p.new.length).memory);
  });
  console.log(`| ${bs / 1024} KiB | ${stored} | ${deflate} | ${range} | ${lzTotal} | ${memory} | ${rangeMemory} | ${lzMemory} |`);
}
let bsdTotal = 0;
let xdTotal = 0;
for (const p of pairs) {
  bsdTotal += readFileSync(join(dir, `${p.name}.bsdiff`)).length;
  xdTotal += readFileSync(join(dir, `${p.name}.xd3`)).length;
}
{
  let lzTotal = 0;
  for (const p of pairs) lzTotal += makePatch(p.old, p.new, { codec: Codec.LZ }).bytes.length;
  console.log(`| per patch (codec 3's default: the best of ${LZ_BLOCK_SIZES.map((b) => b / 1024).join(", ")} KiB) | - | - | - | ${lzTotal} | - | - | - |`);
}
console.log(`| (peers) | bsdiff ${bsdTotal} | xdelta3 ${xdTotal} | - | - | bzip2 -9 decoder alone: 3,700,000 (fast) / 2,300,000 (small mode) | - | - |`);
console.log(
  "\nWorking memory method: PatchApplier.workingMemory sums the byte lengths of every buffer the decoder allocates " +
    "(raw block buffer, inflater tables and staging buffer or the range coder's model tables and extra-byte buffer, CRC table, slot-writer program buffer, header buffers) " +
    "plus one old-image flash read in flight; the SHA-256 state (~200 B, the platform's Digest) and JS object headers are not counted.",
);
writeFileSync(join(dir, "done"), "");
