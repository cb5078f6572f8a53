// `npm run bench`: bundle each bench/*.bench.ts with esbuild and run it with node,
// in order. A bench prints its own table (ours beside the peer's, same run).
// `npm run bench -- delta` runs only the benches whose file name contains "delta".
import { build } from "esbuild";
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const filter = process.argv[2] ?? "";
const benches = readdirSync(root + "bench").filter((f) => f.endsWith(".bench.ts") && f.includes(filter)).sort();
if (benches.length === 0) {
  console.error(`no benches match "${filter}"`);
  process.exit(1);
}
let failed = 0;
for (const file of benches) {
  const outfile = `${root}dist/bench/${file.replace(/\.ts$/, ".mjs")}`;
  await build({
    absWorkingDir: root,
    entryPoints: [`bench/${file}`],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
  console.log(`\n== ${file}`);
  const r = spawnSync(process.execPath, ["--expose-gc", outfile], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
