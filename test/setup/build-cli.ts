// vitest globalSetup: build dist/xs-ota.mjs once so CLI tests run the real bundle.
import { execFileSync } from "node:child_process";

export default function setup(): void {
  execFileSync(process.execPath, ["tools/build.mjs"], { cwd: new URL("../..", import.meta.url).pathname, stdio: "inherit" });
}
