/**
 * The device lane: the portable bundle on the real XS engine, cross-compiled
 * for a Cortex-M7 and run bare metal on QEMU's mps2-an500.
 *
 * Memory map (test/device/platform/device.ld; shaped like an STM32H743):
 *   FLASH 0x00000000, 2 MiB: vectors, code, read-only data, and the embedded
 *     prelude + bundle (JavaScript source, parsed at boot: xsc is not
 *     available, so there is no preloaded bytecode);
 *   RAM 0x20000000, 1 MiB: .data, .bss and the 128 KiB C stack;
 *   PSRAM 0x60000000, 16 MiB: the fixed XS arena (8 MiB, chunks grow up and
 *     slots down; no growth beyond it: "memory full" aborts the run) and
 *     8 MiB of C heap (newlib malloc: XS's parser, key array, name tables).
 *     The C heap also takes the board RAM the map leaves unused (2 MiB above
 *     "flash", 3 MiB above "RAM"): parsing the agent's 570 KB bundle takes
 *     11.4 MB of the 13 MiB, a cost a device never pays (xsc compiles ahead of time).
 *
 * Instructions. QEMU runs with `-icount shift=0`: each guest instruction
 * advances virtual time by 1 ns. SysTick counts the 25 MHz SYSCLK of QEMU's
 * mps2 boards, so one tick is 40 instructions; every boot checks this
 * against a loop of known length (the `@@calibration` line) and the test
 * asserts it. Times at 400 MHz assume one instruction per cycle (an M7 is
 * dual-issue but waits on flash and memory; the figure is an estimate).
 *
 * Peaks. XS collects garbage when a chunk or slot request finds no room in
 * what it has reserved, and grows its heap (inside the arena) only when a
 * collection did not free enough; so a task's peak includes garbage not yet
 * collected, and is an upper bound on its working set.
 *
 * What differs from a device: the parsed code lives in the arena here,
 * where Moddable preloads it into flash (so "after load" includes the
 * code; the per-task difference is the work's own working set); no Zephyr,
 * no TLS, no drivers; the mock flash of a task (hal/mock) lives in the
 * arena, where a device's is real flash.
 *
 * Protocol (test/device/platform/device.c): the semihosting command line
 * names the tasks of test/xs/runtime.ts; the device prints one `@@task`
 * JSON line per task, `@@load` after boot, `@@done` at the end, `@@error`
 * for an exception that escaped, `@@abort` when XS aborts, `@@fault` on a
 * CPU fault, and exits 0 only if every task replied ok.
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { moddableRealmPrelude } from "../lib/moddable-realm";
import { join } from "node:path";
import { build } from "esbuild";
import { buildElf, checkPeers, root, type Elf } from "./build";

export { checkPeers, type Elf };

/** XS memory in bytes: chunks (strings, buffers, code) and slots (16 bytes each), now and at the peak. */
export interface DeviceMemory {
  /** After a collection, before the task (for `@@load`: after the load). */
  chunksBefore: number;
  slotsBefore: number;
  chunks: number;
  slots: number;
  chunksPeak: number;
  slotsPeak: number;
  /** Arena bytes XS has taken (chunk blocks + slot heaps + the JS stack), of `arenaSize`. */
  arenaReserved: number;
  arenaSize: number;
  /** C heap in use (XS's parser, keys, names). */
  cHeap: number;
  /** C stack high-water mark since reset. */
  cStack: number;
}

export interface DeviceTask<T = unknown> {
  name: string;
  ok: boolean;
  value: T;
  error?: string;
  stack?: string;
  instructions: number;
  memory: DeviceMemory;
}

export interface DeviceRun {
  exitCode: number | null;
  timedOut: boolean;
  calibration: { instructionsPerTick: number; runs: { loops: number; expected: number; measured: number }[] }[];
  /** The prelude's completion value: the globals it deleted (none expected: XS core has only Moddable's), objects frozen. */
  prelude?: { deleted: string[]; frozen: number };
  load?: { ok: boolean; createInstructions: number; loadInstructions: number; preludeBytes: number; bundleBytes: number; memory: DeviceMemory; cHeapAfterParse: number };
  tasks: DeviceTask[];
  errors: { phase: string; name?: string; message: string }[];
  abort?: { status: number; why: string };
  fault?: { what: string };
  done?: { failed: boolean; escaped: boolean };
  output: string;
}

/**
 * Bundle an entry (the XS lane's bundle: es2020, strict IIFE) and link it into
 * `dist/device/<name>.elf` behind the Moddable realm prelude that the XS lane
 * evaluates too (test/lib/moddable-realm: only Moddable's globals, built-ins frozen).
 */
export async function buildDevice(name: string, entry: string, defsym?: { [symbol: string]: number }): Promise<Elf> {
  return buildElf(name, moddableRealmPrelude, await bundleForDevice(entry), defsym);
}

/**
 * The XS lane's bundle (test/xs/harness.ts `bundle`: es2020, strict IIFE, no tree
 * shaking), with one difference: the module "crypt" is Moddable's native Digest as
 * the lane's platform provides it (test/device/crypt.ts over host.c), so device
 * adapters such as hal/moddable/digest.ts run unchanged.
 */
export async function bundleForDevice(entry: string): Promise<string> {
  const crypt = join(root, "test/device/crypt.ts");
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: "iife",
    target: "es2020",
    platform: "neutral",
    mainFields: ["module", "main"],
    conditions: ["import", "default"],
    banner: { js: '"use strict";' },
    treeShaking: false,
    write: false,
    logLevel: "silent",
    plugins: [{ name: "moddable-crypt", setup: (b) => b.onResolve({ filter: /^crypt$/ }, () => ({ path: crypt })) }],
  });
  return out.outputFiles[0].text;
}

/** Boot the ELF on QEMU and run the tasks in order, in one boot. The host timeout kills QEMU by its PID. */
export function runDevice(elf: string, tasks: string[], timeoutMs = 300_000, logFile?: string): Promise<DeviceRun> {
  const args = [
    "-M", "mps2-an500", "-cpu", "cortex-m7", "-nographic", "-monitor", "none", "-serial", "none",
    "-icount", "shift=0",
    "-semihosting-config", ["enable=on", "target=native", "arg=device", ...tasks.map((t) => `arg=${t.replace(/,/g, ",,")}`)].join(","),
    "-kernel", elf,
  ];
  return new Promise((resolvePromise, reject) => {
    const qemu = spawn("qemu-system-arm", args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let timedOut = false;
    const log = logFile ? createWriteStream(logFile) : undefined;
    const take = (s: string) => {
      output += s;
      log?.write(s);
    };
    qemu.stdout.setEncoding("utf8").on("data", take);
    qemu.stderr.setEncoding("utf8").on("data", take);
    const timer = setTimeout(() => {
      timedOut = true;
      if (qemu.pid) process.kill(qemu.pid, "SIGKILL");
    }, timeoutMs);
    qemu.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    qemu.on("close", (code) => {
      clearTimeout(timer);
      log?.end(timedOut ? `\n(killed after ${timeoutMs} ms)\n` : "");
      resolvePromise(parse(output, code, timedOut));
    });
  });
}

function parse(output: string, exitCode: number | null, timedOut: boolean): DeviceRun {
  const run: DeviceRun = { exitCode, timedOut, calibration: [], tasks: [], errors: [], output };
  for (const line of output.split("\n")) {
    const m = /^@@(\w+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const data = JSON.parse(m[2]);
    switch (m[1]) {
      case "calibration": run.calibration.push(data); break;
      case "prelude": run.prelude = data; break;
      case "load": run.load = data; break;
      case "task": {
        const reply = data.reply as { ok: boolean; value?: unknown; error?: string; stack?: string };
        run.tasks.push({ name: data.name, ok: reply.ok, value: reply.value, error: reply.error, stack: reply.stack, instructions: data.instructions, memory: data.memory });
        break;
      }
      case "error": run.errors.push(data); break;
      case "abort": run.abort = data; break;
      case "fault": run.fault = data; break;
      case "done": run.done = data; break;
    }
  }
  return run;
}

/** A run's task by name (the first), or an error that carries the run's output. */
export function taskOf<T>(run: DeviceRun, name: string): DeviceTask<T> {
  const t = run.tasks.find((x) => x.name === name);
  if (!t) throw new Error(`device: no result for task ${name}; exit ${run.exitCode}${run.timedOut ? " (timed out)" : ""}\n${run.output.slice(-4000)}`);
  return t as DeviceTask<T>;
}

/** Throw with the device's message unless the task replied ok. */
export function okTask<T>(run: DeviceRun, name: string): DeviceTask<T> {
  const t = taskOf<T>(run, name);
  if (!t.ok) throw new Error(`inside the emulated M7, task ${name}: ${t.error}\n${t.stack ?? ""}`);
  return t;
}
