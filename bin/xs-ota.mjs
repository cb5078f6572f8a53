#!/usr/bin/env node
// The xs-ota host CLI. The TypeScript sources are bundled to dist/ by `npm run build`
// (run automatically by `npm ci` / `npm install` through `prepare`).
import { existsSync } from "node:fs";

const bundle = new URL("../dist/xs-ota.mjs", import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write("xs-ota: error: dist/xs-ota.mjs is missing; run `npm run build` (npm ci does it for you)\n");
  process.exit(2);
}
const { main } = await import(bundle.href);
const code = await main(process.argv.slice(2));
process.exitCode = code;
// A failed run exits now: a handle left open by a failed start (a socket, a timer) must not keep it alive.
if (code !== 0) process.exit(code);
