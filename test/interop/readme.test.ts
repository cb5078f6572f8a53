/**
 * The README's shell examples run as pasted (issue 17): every ```sh block of
 * README.md, top to bottom, in one bash session (`set -euo pipefail`) with
 * `xs-ota` on the PATH (as `npm link` puts it), so a later block may use the
 * files an earlier one made. A block is left out only when the line before it
 * says why: `<!-- readme-test: not run (REASON) -->`. In the interop lane
 * because the examples call Debian peers (bsdiff, bzip2, cmp).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../lib/cli";

interface Block {
  readonly line: number;
  readonly text: string;
  readonly skip?: string;
}

/** The ```sh blocks of a markdown text, with their skip reasons. */
export function shellBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== "```sh") continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i].trim() !== "```"; i++) body.push(lines[i]);
    const marker = /^<!-- readme-test: not run \((.+)\) -->$/.exec((lines[start - 1] ?? "").trim());
    out.push({ line: start + 1, text: body.join("\n"), ...(marker ? { skip: marker[1] } : {}) });
  }
  return out;
}

describe("README.md shell examples", () => {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const blocks = shellBlocks(readme);

  it("every block is run, or says why not", () => {
    expect(blocks.filter((b) => !b.skip).length).toBeGreaterThanOrEqual(2);
    for (const b of blocks) if (b.skip !== undefined) expect(b.skip.length, `README.md:${b.line}`).toBeGreaterThan(5);
  });

  it("the runnable blocks run top to bottom, each command exiting 0", () => {
    const work = mkdtempSync(join(tmpdir(), "xs-ota-readme-"));
    const bin = join(work, "bin");
    spawnSync("mkdir", ["-p", bin]);
    writeFileSync(join(bin, "xs-ota"), `#!/bin/sh\nexec "${process.execPath}" "${repoRoot}bin/xs-ota.mjs" "$@"\n`);
    chmodSync(join(bin, "xs-ota"), 0o755);
    const script = ["set -euo pipefail"];
    for (const b of blocks) {
      if (b.skip) continue;
      script.push(`echo "::README.md:${b.line}" >&2`, b.text);
    }
    const r = spawnSync("bash", ["-c", script.join("\n")], {
      cwd: work,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      encoding: "utf8",
      timeout: 240_000,
    });
    const where = [...r.stderr.matchAll(/::(README\.md:\d+)/g)].pop()?.[1] ?? "?";
    expect(r.status, `failed in the block at ${where}:\n${r.stderr.slice(-3000)}`).toBe(0);
  }, 300_000);
});
