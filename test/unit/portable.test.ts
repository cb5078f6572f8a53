/**
 * The portable code (src/, hal/types.ts, hal/mock/, targets/sim/) must run
 * unchanged on XS: no Node globals or modules, no DOM, no Moddable imports,
 * and src/ must not import tools/, hal/node, hal/moddable or targets/.
 * (tsconfig.portable.json type-checks the same code with no Node types; this
 * test catches what types cannot: imports of untyped modules, `require`.)
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const p = join(dir, name);
    if (statSync(join(root, p)).isDirectory()) out.push(...files(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

const NODE_MODULES = /from\s+["'](node:[^"']+|fs|path|os|crypto|child_process|net|tls|http|https|events|stream|util|buffer|url|worker_threads)["']/;
const NODE_GLOBALS = /(?<![.\w])(Buffer\.|process\.|require\(|__dirname|__filename|setTimeout\(|setInterval\(|setImmediate\(|queueMicrotask\(|console\.|globalThis\.crypto|(?<![.\w])document\.|(?<![.\w])window\.)/;
const ALLOWED_PACKAGES = /^(@noble\/curves|@noble\/hashes)(\/|$)/;

function stripComments(s: string): string {
  return s.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
}

export function violations(paths: string[], forbidImports: RegExp | undefined): string[] {
  const bad: string[] = [];
  for (const p of paths) {
    const text = stripComments(readFileSync(join(root, p), "utf8"));
    text.split("\n").forEach((line, i) => {
      const where = `${p}:${i + 1}: ${line.trim()}`;
      if (NODE_MODULES.test(line) || NODE_GLOBALS.test(line)) bad.push(where);
      const m = /from\s+["']([^"']+)["']/.exec(line);
      if (m && !m[1].startsWith(".") && !ALLOWED_PACKAGES.test(m[1])) bad.push(`${where} (package not allowed in portable code)`);
      if (m && forbidImports && forbidImports.test(m[1])) bad.push(`${where} (layering)`);
    });
  }
  return bad;
}

describe("portable code stays portable", () => {
  it("src/ uses no Node API and imports only hal/types, its own modules and noble", () => {
    const bad = violations(files("src"), /(^|\/)(tools|targets|hal\/(node|moddable|mock))(\/|$)/);
    expect(bad).toEqual([]);
  });
  it("hal/types.ts and hal/mock/ use no Node API", () => {
    expect(violations(["hal/types.ts", ...files("hal/mock")], /(^|\/)(tools|hal\/(node|moddable))(\/|$)/)).toEqual([]);
  });
  it("targets/sim/ uses no Node API", () => {
    expect(violations(files("targets/sim"), /(^|\/)(hal\/(node|moddable))(\/|$)/)).toEqual([]);
  });
  it("the check itself catches a Node import and a Node global", () => {
    const text = 'import { readFileSync } from "node:fs";\nconst b = Buffer.from("x");\n';
    expect(NODE_MODULES.test(text.split("\n")[0])).toBe(true);
    expect(NODE_GLOBALS.test(text.split("\n")[1])).toBe(true);
  });
});

export const portableRoot = relative(process.cwd(), root);
