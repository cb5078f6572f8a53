/** Run the built CLI (dist/, built by test/setup/build-cli.ts) as a user would. */
import { spawnSync } from "node:child_process";

export const repoRoot = new URL("../..", import.meta.url).pathname;

export interface CliRun {
  status: number;
  stdout: string;
  stderr: string;
}

export function xsOta(args: string[], options: { cwd?: string; input?: string; timeoutMs?: number } = {}): CliRun {
  const r = spawnSync(process.execPath, [repoRoot + "bin/xs-ota.mjs", ...args], {
    cwd: options.cwd ?? repoRoot,
    input: options.input,
    encoding: "utf8",
    timeout: options.timeoutMs ?? 120_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
