/**
 * Mock-flash cost inside XS and on Node: the baseline every other XS figure
 * sits on (a full-slot write and read-back of the default small map).
 * The "peer" column is Node's V8 running the same code in the same run.
 */
import { startXs } from "../test/xs/harness";
import { NorFlash } from "../hal/mock/flash";

const SIZE = 256 * 1024;

function workload(): number {
  const f = new NorFlash({ size: SIZE, blockLength: 4096, writeAlign: 32 });
  const chunk = new Uint8Array(1024).fill(0x5a);
  for (let b = 0; b < SIZE / 4096; b++) f.eraseBlock(b);
  for (let o = 0; o < SIZE; o += 1024) f.write(chunk, o);
  let sum = 0;
  for (let o = 0; o < SIZE; o += 1024) sum += f.read(1024, o)[7];
  return sum;
}

const t0 = performance.now();
workload();
const nodeMs = performance.now() - t0;
const xs = await startXs("test/xs/entries/bench-flash.ts"); // repo-relative: benches run from the repo root
const { computrons } = await xs.run("flash-256k");
await xs.close();
console.log("| workload | XS computrons | Node ms |");
console.log("|---|---:|---:|");
console.log(`| erase+write+read 256 KiB, mock NOR | ${computrons} | ${nodeMs.toFixed(1)} |`);
