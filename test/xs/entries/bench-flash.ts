/** XS entry for bench/flash.bench.ts. */
import { NorFlash } from "../../../hal/mock/flash";
import { serve, task } from "../runtime";

task("flash-256k", () => {
  const SIZE = 256 * 1024;
  const f = new NorFlash({ size: SIZE, blockLength: 4096, writeAlign: 32 });
  const chunk = new Uint8Array(1024).fill(0x5a);
  for (let b = 0; b < SIZE / 4096; b++) f.eraseBlock(b);
  for (let o = 0; o < SIZE; o += 1024) f.write(chunk, o);
  let sum = 0;
  for (let o = 0; o < SIZE; o += 1024) sum += f.read(1024, o)[7];
  return sum;
});
serve();
