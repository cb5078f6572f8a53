// Bundles the host CLI (tools/cli.ts and everything it imports, src/ included)
// into dist/xs-ota.mjs with esbuild. Run by `npm ci` through `prepare`.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
await build({
  absWorkingDir: root,
  entryPoints: ["tools/cli.ts"],
  outfile: "dist/xs-ota.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "linked",
  logLevel: "warning",
  banner: { js: "// Built by tools/build.mjs from tools/cli.ts — do not edit." },
});
