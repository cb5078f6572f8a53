/**
 * The portable code (src/, hal/types.ts, hal/mock/, targets/sim/) must run
 * unchanged on XS: no Node globals or modules, no DOM, no Moddable imports,
 * and src/ must not import tools/, hal/node, hal/moddable or targets/.
 * (tsconfig.portable.json type-checks the same code with no Node types; this
 * test catches what types cannot: imports of untyped modules, `require`.)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { build } from "esbuild";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { MODDABLE_GLOBALS, XSNAP_ONLY_GLOBALS } from "../lib/moddable-realm";

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

/**
 * What a Moddable device lacks or refuses (test/lib/moddable-realm), checked
 * in the source of everything that runs in the XS lanes (src/, the mocks, the
 * sim, and the test and tools files the XS entries bundle). The lanes catch
 * these at run time too, but only on the paths a test takes.
 *
 * Missing globals: the TypeScript checker with tsconfig.portable.json's
 * options (ES2020 library, no Node or DOM types) over those files, so scope
 * is exact (a local named `console` is fine, a read of the global is not).
 * tsconfig.portable.json itself covers only src/, hal/mock, targets/sim and
 * the entries; this covers every file the bundles pull in.
 */
const UNKNOWN_NAME = new Set([2304, 2552, 2580, 2581, 2582, 2583, 2584, 2591, 2662, 2663]);

function missingGlobals(paths: string[]): string[] {
  const configPath = join(root, "tsconfig.portable.json");
  const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
  if (!config) throw new Error("cannot read tsconfig.portable.json");
  const program = ts.createProgram(
    paths.map((p) => join(root, p)),
    { ...config.options, noEmit: true },
  );
  const wanted = new Set(paths.map((p) => join(root, p)));
  const bad: string[] = [];
  for (const d of program.getSemanticDiagnostics()) {
    if (!d.file || !wanted.has(d.file.fileName) || !UNKNOWN_NAME.has(d.code)) continue;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    bad.push(`${relative(root, d.file.fileName)}:${line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`);
  }
  return bad;
}

/** Constructors and namespaces whose properties are read-only on a device (everything built in is frozen). */
const BUILTINS = MODDABLE_GLOBALS.filter((g) => /^[A-Z]/.test(g) && g !== "Infinity" && g !== "NaN");
const ASSIGN = String.raw`\s*(?:[-+*/%&|^]|\*\*|<<|>>>?|&&|\|\||\?\?)?=(?![=>])`;
const FROZEN_ASSIGNMENTS: [RegExp, string][] = [
  [new RegExp(String.raw`\bthis\.name` + ASSIGN), "`this.name =` throws where Error.prototype is frozen: define name on the prototype"],
  [new RegExp(String.raw`\.prototype(\.[\w$]+|\[[^\]]+\])` + ASSIGN), "assignment to a prototype's property: built-in prototypes are frozen"],
  [new RegExp(String.raw`(?<![.\w$])(${BUILTINS.join("|")})(\.[\w$]+|\[[^\]]+\])+` + ASSIGN), "assignment to a built-in's property: built-ins are frozen"],
  [
    new RegExp(String.raw`\((${BUILTINS.join("|")})(\.prototype)?\s+as\s[^)]*\)(\.[\w$]+|\[[^\]]+\])` + ASSIGN),
    "assignment to a built-in's property through a cast: built-ins are frozen",
  ],
];

/** Strings and template literals blanked out, so a message that quotes code is not code. */
function stripStrings(s: string): string {
  return s.replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, '""');
}

function frozenAssignments(paths: string[]): string[] {
  const bad: string[] = [];
  for (const p of paths) {
    const text = stripStrings(stripComments(readFileSync(join(root, p), "utf8")));
    text.split("\n").forEach((line, i) => {
      for (const [re, why] of FROZEN_ASSIGNMENTS) if (re.test(line)) bad.push(`${p}:${i + 1}: ${line.trim()} (${why})`);
    });
  }
  return bad;
}

/** The negative fixtures of test/xs/strict.test.ts: they break the rules on purpose. */
const NEGATIVE_ENTRIES = /^test\/xs\/entries\/strict-/;

/** Every file bundled into each XS-lane entry (the same bundles the device lane runs). */
async function xsLaneInputs(): Promise<Map<string, string[]>> {
  const byEntry = new Map<string, string[]>();
  for (const name of readdirSync(join(root, "test/xs/entries")).filter((n) => n.endsWith(".ts"))) {
    const entry = `test/xs/entries/${name}`;
    const out = await build({
      absWorkingDir: root,
      entryPoints: [entry],
      bundle: true,
      format: "iife",
      target: "es2020",
      platform: "neutral",
      mainFields: ["module", "main"],
      conditions: ["import", "default"],
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    byEntry.set(entry, Object.keys(out.metafile!.inputs));
  }
  return byEntry;
}

async function portableFiles(): Promise<string[]> {
  const project = new Set<string>(files("src"));
  for (const list of (await xsLaneInputs()).values()) for (const f of list) if (!f.includes("node_modules/") && !NEGATIVE_ENTRIES.test(f)) project.add(f);
  return [...project].sort();
}

describe("portable code stays within what Moddable's XS provides", () => {
  it("src/ and every project file the XS lanes bundle read no global Moddable lacks (TextEncoder, setTimeout, console, …)", async () => {
    const paths = await portableFiles();
    expect(paths.length).toBeGreaterThan(50);
    expect(paths).toContain("tools/keys/signer.ts");
    expect(missingGlobals(paths)).toEqual([]);
  }, 120_000);

  it("… and assign to no built-in's property, nor `this.name` in an Error subclass", async () => {
    expect(frozenAssignments(await portableFiles())).toEqual([]);
  });

  it("no XS-lane bundle but the negative fixture pulls in @noble/curves/nist.js (it calls TextEncoder while loading)", async () => {
    const inputs = await xsLaneInputs();
    const withNist = [...inputs].filter(([, list]) => list.some((f) => f.endsWith("@noble/curves/nist.js"))).map(([e]) => e);
    expect(withNist).toEqual(["test/xs/entries/strict-noble-nist.ts"]);
  });

  it("the checks catch what a device refuses, and let the right forms pass", () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-portable-"));
    try {
      const probe = join(dir, "probe.ts");
      writeFileSync(
        probe,
        [
          "export const a = new TextEncoder();",
          "setTimeout(() => 0, 1);",
          "export function log(x: string): void { console.log(x); }",
          "export function ok(console: { log(x: string): void }, setTimeout: number): number { console.log(''); return setTimeout; }",
          "export const fine = [Uint8Array.of(1), trace, Compartment, globalThis];",
          "declare const trace: unknown, Compartment: unknown;",
        ].join("\n"),
      );
      expect(missingGlobals([relative(root, probe)]).map((m) => m.replace(/^.*probe\.ts:/, ""))).toEqual([
        expect.stringMatching(/^1: .*'TextEncoder'/),
        expect.stringMatching(/^2: .*'setTimeout'/),
        expect.stringMatching(/^3: .*'console'/),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The negative fixture's three deliberate assignments (this.name, a prototype, a constructor) are flagged.
    expect(frozenAssignments(["test/xs/entries/strict-frozen.ts"]).length).toBe(3);
    const flags = (line: string) => FROZEN_ASSIGNMENTS.some(([re]) => re.test(line));
    for (const bad of [
      "this.name = 'X';",
      "Uint8Array.prototype.toHex = f;",
      "Error.captureStackTrace = f;",
      "Symbol.asyncIterator ??= Symbol('a');",
      "Foo.prototype[Symbol.iterator] = f;",
    ]) expect(flags(bad), bad).toBe(true);
    for (const good of [
      'Object.defineProperty(OtaError.prototype, "name", { value: "OtaError" });',
      "if (this.name === x) return;",
      "globalThis.handleCommand = f;",
      "const n = Array.prototype.length;",
      "x.name = 'y';",
    ]) expect(flags(good), good).toBe(false);
  });
});

export const portableRoot = relative(process.cwd(), root);
