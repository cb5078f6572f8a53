/**
 * The root Moddable manifest against the code it builds: compiler settings
 * equal to tsconfig.moddable.json, every module path present, every src/
 * directory and every @noble file the portable code reaches mapped, native
 * modules listed, creation sizes inside the device's RAM, and the config keys
 * the platform reads defined. Also runs the device type-check and proves it
 * fails on a real error.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { describe, expect, it } from "vitest";

const manifest = JSON.parse(readFileSync("manifest.json", "utf8"));
const tsconfig = JSON.parse(readFileSync("tsconfig.moddable.json", "utf8"));

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith(".ts") && !p.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** A manifest module path ("./x/*" or "./x/y") resolves to something on disk. */
function pathExists(path: string): boolean {
  const p = path.replace(/^\.\//, "");
  if (p.endsWith("/*")) return existsSync(p.slice(0, -2));
  return [".ts", ".js", ".c"].some((ext) => existsSync(p + ext));
}

describe("root manifest", () => {
  it("gives mcconfig's TypeScript step exactly the compiler options CI checks with", () => {
    expect(manifest.typescript.tsconfig.compilerOptions).toEqual(tsconfig.compilerOptions);
  });

  it("maps every src/ directory and hal/types, and every mapped path exists", () => {
    const dirs = readdirSync("src").filter((d) => statSync(join("src", d)).isDirectory());
    for (const d of dirs) expect(manifest.modules[`src/${d}/*`], `src/${d}`).toBe(`./src/${d}/*`);
    expect(manifest.modules["src/*"]).toBe("./src/*");
    expect(manifest.modules["hal/types"]).toBe("./hal/types");
    const all: string[] = [];
    const collect = (mods: Record<string, string | string[]>) => {
      for (const v of Object.values(mods)) all.push(...(Array.isArray(v) ? v : [v]));
    };
    collect(manifest.modules);
    for (const p of Object.values(manifest.platforms) as { modules?: Record<string, string | string[]> }[]) if (p.modules) collect(p.modules);
    for (const p of all) expect(pathExists(p), p).toBe(true);
  });

  it("maps exactly the @noble files the portable code reaches, by their import specifiers", async () => {
    // The noble specifiers src/ imports (read from the sources, so that another
    // engineer's half-written file cannot break this check), then their graph.
    const specifiers = new Set<string>();
    for (const f of sourceFiles("src")) for (const m of readFileSync(f, "utf8").matchAll(/from\s+"(@noble\/[^"]+)"/g)) specifiers.add(m[1]);
    expect(specifiers.size).toBeGreaterThan(0);
    const contents = [...specifiers].map((s) => `import ${JSON.stringify(s)};`).join("\n");
    const result = await esbuild.build({ stdin: { contents, resolveDir: process.cwd() }, bundle: true, write: false, metafile: true, format: "esm", logLevel: "silent" });
    const reached = Object.keys(result.metafile.inputs)
      .filter((f) => f.startsWith("node_modules/@noble/"))
      .map((f) => f.slice("node_modules/".length))
      .sort();
    const mapped = Object.keys(manifest.modules).filter((k) => k.startsWith("@noble/")).sort();
    expect(mapped).toEqual(reached);
    for (const k of mapped) expect(manifest.modules[k]).toBe(`./node_modules/${k.slice(0, -3)}`);
  });

  it("lists the native C modules for zephyr builds only", () => {
    const natives = manifest.platforms["zephyr/*"].modules["*"] as string[];
    const onDisk = readdirSync("hal/moddable/native").filter((f) => f.endsWith(".c")).map((f) => `./hal/moddable/native/${f.slice(0, -2)}`).sort();
    expect([...natives].sort()).toEqual(onDisk);
    expect(manifest.platforms["zephyr/*"].modules["hal/moddable/*"]).toBe("./hal/moddable/*");
    for (const host of ["mac", "lin", "win"]) {
      expect(manifest.platforms[host].modules["hal/moddable/*"], host).toBeUndefined();
      expect(manifest.platforms[host].modules["hal/mock/*"], host).toBe("./hal/mock/*");
    }
  });

  it("sizes the XS machine for the device: one static block inside the 512 KiB AXI SRAM, fixed pools", () => {
    const c = manifest.creation;
    expect(c.static).toBe(384 * 1024);
    expect(c.static).toBeLessThanOrEqual(512 * 1024 - 64 * 1024); // leaves AXI SRAM for Zephyr's heap and stacks
    expect(c.chunk.incremental).toBe(0);
    expect(c.heap.incremental).toBe(0);
    expect(c.keys.incremental).toBe(0);
    // Budget inside static: install working set 64 KiB + TLS ~40-64 KiB + stack 16 KiB + chunk/slot pools.
    expect(c.stack * 16).toBe(16 * 1024);
    expect(c.chunk.initial + c.heap.initial * 16 + c.stack * 16).toBeLessThan(c.static);
    expect(manifest.strip).toBe("*");
  });

  it("defines every config key the device platform reads", () => {
    const platformSrc = readFileSync("hal/moddable/platform.ts", "utf8");
    const keys = [...platformSrc.matchAll(/need\("(\w+)"/g)].map((m) => m[1]);
    expect(keys.length).toBeGreaterThan(5);
    for (const k of keys) expect(manifest.config[k], k).toBeDefined();
    expect(manifest.config).toMatchObject({ partitionSlot0: "image-0", partitionSlot1: "image-1", partitionStorage: "storage" });
    expect(manifest.config.watchdogTimeoutMs).toBeLessThanOrEqual(32000);
  });
});

describe("device type-check (tsconfig.moddable.json against @moddable/typings)", () => {
  const tsc = (project: string) => spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", project, "--noEmit"], { encoding: "utf8", timeout: 120_000 });

  it("passes on the adapters and targets", () => {
    const r = tsc("tsconfig.moddable.json");
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("fails on a real error: a Moddable API the typings do not have", () => {
    const dir = mkdtempSync(join(tmpdir(), "xsota-moddable-"));
    try {
      const broken = join(dir, "broken.ts");
      writeFileSync(broken, 'import Timer from "timer";\nTimer.sett(() => {}, 10);\n');
      const cfg = join(dir, "tsconfig.json");
      writeFileSync(cfg, JSON.stringify({ extends: join(process.cwd(), "tsconfig.moddable.json"), include: [broken], files: tsconfig.files.map((f: string) => join(process.cwd(), f)) }));
      const r = tsc(cfg);
      expect(r.status).not.toBe(0);
      expect(r.stdout).toMatch(/Property 'sett' does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
