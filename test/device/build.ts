/**
 * Builds the device lane's ELF files: XS cross-compiled for the Cortex-M7
 * from the sources the @agoric/xsnap package ships, our bare-metal platform
 * (test/device/platform), and a prelude + bundle embedded in flash.
 *
 * Everything is built at test time into dist/device/ (never committed).
 * Object files are cached under a hash of the compiler, the flags and the
 * source (with every header it may include), so a second run only links.
 * Two compilers run at a time (the CI machine has two cores).
 */
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

// The repository: two levels above this file; or, when bundled elsewhere (benches run from dist/), the working directory.
const above = resolve(new URL("../..", import.meta.url).pathname);
export const root = existsSync(join(above, "test/device/platform")) ? above : process.cwd();
const xsDir = join(root, "node_modules/@agoric/xsnap/moddable/xs");
export const platformDir = join(root, "test/device/platform");
export const outDir = join(root, "dist/device");

const CC = "arm-none-eabi-gcc";
const QEMU = "qemu-system-arm";

/** The ABI and optimisation of the issue: Cortex-M7, Thumb-2, double-precision FPU, hard float, -Os. */
export const cpuFlags = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"];
const cFlags = [...cpuFlags, "-Os", "-ffunction-sections", "-fdata-sections", "-fno-common", "-g0"];

/**
 * XS's sources: the list of xsnap's makefile (xsnap-native/xsnap/makefiles/lin/xsnap-worker.mk)
 * without its host files (xsnapPlatform, xsnap-worker) and the modules Moddable's core lacks
 * (textdecoder, textencoder, modBase64): what Moddable's Zephyr build compiles
 * (build/devices/zephyr/config/CMakeLists.txt.prefix).
 */
export const xsSources = [
  "xsAll", "xsAPI", "xsArguments", "xsArray", "xsAtomics", "xsBigInt", "xsBoolean", "xsCode", "xsCommon",
  "xsDataView", "xsDate", "xsDebug", "xsDefaults", "xsError", "xsFunction", "xsGenerator", "xsGlobal", "xsJSON",
  "xsLexical", "xsLockdown", "xsMapSet", "xsMarshall", "xsMath", "xsMemory", "xsModule", "xsNumber", "xsObject",
  "xsPlatforms", "xsProfile", "xsPromise", "xsProperty", "xsProxy", "xsRegExp", "xsRun", "xsScope", "xsScript",
  "xsSourceMap", "xsString", "xsSymbol", "xsSyntaxical", "xsTree", "xsType", "xsdtoa", "xsre", "xsmc",
].map((name) => join(xsDir, "sources", `${name}.c`));

/**
 * The one place where the lane's XS (xsnap 0.15) is not the XS a device runs (the SDK's, 48ee02d8):
 * TypedArray.prototype.set between two arrays of one element type. The SDK's
 * xs/sources/xsDataView.c fx_TypedArray_prototype_set compares the two element types and copies
 * with memcpy; xsnap's compares the two arrays' own dispatch slots, which always differ, and so
 * copies element by element through the getter and setter (about 60 M7 instructions a byte where
 * a memcpy takes well under one). Every copy into a buffer (flash reads, the slot writer, the
 * patcher's window) would cost the lane ~60× what it costs a device. The lane compiles
 * xsDataView.c with the SDK's comparison in that one line; every other line as shipped. (`slice`
 * has the same gap and is not changed: the lane's own code does not use it on a hot path.)
 */
export const SET_AS_SHIPPED = "if (dispatch == sourceDispatch) {";
export const SET_AS_SDK = "if (dispatch->value.typedArray.dispatch == sourceDispatch->value.typedArray.dispatch) {";

function xsSourceFile(source: string, objDir: string): string {
  if (!source.endsWith("/xsDataView.c")) return source;
  const text = readFileSync(source, "utf8");
  if (text.split(SET_AS_SHIPPED).length !== 2) throw new Error(`device lane: ${source} no longer has the line it adjusts ("${SET_AS_SHIPPED}" once): check it against the SDK's`);
  mkdirSync(join(objDir, "sdk-set"), { recursive: true });
  const out = join(objDir, "sdk-set", "xsDataView.c"); // same name: its object counts as XS's
  const adjusted = `#line 1 "${source}"\n${text.replace(SET_AS_SHIPPED, SET_AS_SDK)}`;
  if (!existsSync(out) || readFileSync(out, "utf8") !== adjusted) writeFileSync(out, adjusted);
  return out;
}

/**
 * XS configuration: parse and run (xsc is not available, so the bundle is parsed at boot), no
 * debugger, no metering, no snapshots, no lockdown (Moddable freezes built-ins by its preload,
 * which the prelude stands in for); our platform header.
 */
const xsDefines = ["-DINCLUDE_XSPLATFORM", '-DXSPLATFORM="xsPlatformDevice.h"', "-DmxRun=1", "-DmxParse=1"];
const includes = [`-I${join(xsDir, "includes")}`, `-I${join(xsDir, "platforms")}`, `-I${join(xsDir, "sources")}`, `-I${platformDir}`];
const quiet = ["-Wno-misleading-indentation", "-Wno-implicit-fallthrough"];

/** The lane's platform, and the Moddable adapters' own C that the bundle calls through `native` (host.c). */
const platformSources = [...["startup.c", "semihost.c", "device.c", "host.c", "sha256.c"].map((f) => join(platformDir, f)), join(root, "hal/moddable/native/crc32.c")];

/** A missing peer fails the lane with a message, never skips it. */
export function checkPeers(): void {
  for (const [tool, pkg] of [[CC, "gcc-arm-none-eabi and libnewlib-arm-none-eabi"], [QEMU, "qemu-system-arm"]]) {
    try {
      execFileSync(tool, ["--version"], { stdio: "ignore" });
    } catch {
      throw new Error(`device lane: ${tool} not found; install the Debian package(s) ${pkg} (.ci/run does)`);
    }
  }
}

let headerHash: string | undefined;
/** Every header a source may include: XS's, ours, and the compiler's identity. */
function headersDigest(): string {
  if (headerHash) return headerHash;
  const h = createHash("sha256");
  h.update(execFileSync(CC, ["--version"]));
  for (const dir of [join(xsDir, "includes"), join(xsDir, "platforms"), join(xsDir, "sources")]) {
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".h")).sort()) h.update(f).update(readFileSync(join(dir, f)));
  }
  h.update(readFileSync(join(platformDir, "xsPlatformDevice.h")));
  headerHash = h.digest("hex");
  return headerHash;
}

async function compile(source: string, flags: string[], objDir: string, extraHeaders: string[] = []): Promise<string> {
  const h = createHash("sha256").update(headersDigest()).update(flags.join("\0")).update(readFileSync(source));
  for (const f of extraHeaders) h.update(readFileSync(f));
  const key = h.digest("hex").slice(0, 16);
  const base = source.split("/").pop()!.replace(/\.[cS]$/, "");
  const out = join(objDir, `${base}-${key}.o`);
  if (existsSync(out)) return out;
  const tmp = `${out}.${process.pid}.tmp`;
  await run(CC, [...flags, "-c", source, "-o", tmp], { maxBuffer: 16 << 20 });
  renameSync(tmp, out);
  return out;
}

/** Run `jobs` with at most `width` at a time. */
async function pool<T>(jobs: (() => Promise<T>)[], width = 2): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]();
      }
    }),
  );
  return results;
}

/** XS and the platform, compiled (cached). */
export async function buildObjects(): Promise<{ xs: string[]; platform: string[] }> {
  const objDir = join(outDir, "obj");
  mkdirSync(objDir, { recursive: true });
  const flags = [...cFlags, ...xsDefines, ...includes, ...quiet];
  const xs = await pool(xsSources.map((s) => () => compile(xsSourceFile(s, objDir), flags, objDir)));
  const platform = await pool(platformSources.map((s) => () => compile(s, [...flags, "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"], objDir, [join(platformDir, "device.h"), join(platformDir, "sha256.h")])));
  return { xs, platform };
}

export interface Elf {
  path: string;
  /** arm-none-eabi-size of the whole image (text = code + rodata + embedded scripts). */
  size: { text: number; data: number; bss: number };
  /** Bytes of .text contributed by XS's objects alone (the engine's code and tables). */
  xsText: number;
  preludeBytes: number;
  bundleBytes: number;
}

function sizeOf(paths: string[]): { text: number; data: number; bss: number } {
  const out = execFileSync("arm-none-eabi-size", ["-t", ...paths], { encoding: "utf8" }).trim().split("\n");
  const [text, data, bss] = out[out.length - 1].trim().split(/\s+/).map(Number);
  return { text, data, bss };
}

/**
 * Link one ELF: XS + platform + the prelude and the bundle as flash data.
 * The XS engine's own .text is measured from its sections that survive --gc-sections.
 */
export async function buildElf(name: string, prelude: string, bundleText: string, defsym: { [symbol: string]: number } = {}): Promise<Elf> {
  checkPeers();
  const { xs, platform } = await buildObjects();
  const dir = join(outDir, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "prelude.js"), prelude);
  writeFileSync(join(dir, "bundle.js"), bundleText);
  // The scripts go into flash as read-only data, each NUL-terminated (XS's string streams stop at their size).
  writeFileSync(
    join(dir, "embed.S"),
    [".section .rodata.scripts, \"a\"", ".balign 4", ".global preludeStart, preludeEnd, bundleStart, bundleEnd",
      `preludeStart: .incbin "${join(dir, "prelude.js")}"`, "preludeEnd: .byte 0", ".balign 4",
      `bundleStart: .incbin "${join(dir, "bundle.js")}"`, "bundleEnd: .byte 0", ""].join("\n"),
  );
  const embed = join(dir, "embed.o");
  await run(CC, [...cpuFlags, "-c", join(dir, "embed.S"), "-o", embed]);
  const elf = join(outDir, `${name}.elf`);
  const map = join(dir, `${name}.map`);
  await run(CC, [
    ...cpuFlags, "-nostartfiles", "-Wl,--gc-sections", `-Wl,-Map=${map}`, `-T${join(platformDir, "device.ld")}`,
    ...Object.entries(defsym).map(([k, v]) => `-Wl,--defsym=${k}=${v}`),
    ...platform, ...xs, embed, "-lm", "-lc", "-lgcc", "-o", elf,
  ]);
  return { path: elf, size: sizeOf([elf]), xsText: xsTextFromMap(readFileSync(map, "utf8")), preludeBytes: Buffer.byteLength(prelude), bundleBytes: Buffer.byteLength(bundleText) };
}

/** Sum of the kept .text/.rodata input sections from XS's objects in the linker map. */
function xsTextFromMap(map: string): number {
  const start = map.indexOf("Linker script and memory map");
  let total = 0;
  const re = /^ \.(?:text|rodata)[^\s]*\s*(?:\n\s+)?0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$/gm;
  re.lastIndex = start;
  for (let m = re.exec(map); m; m = re.exec(map)) {
    if (/\/xs[A-Za-z]*-[0-9a-f]{16}\.o$/.test(m[3])) total += parseInt(m[2], 16);
  }
  return total;
}
