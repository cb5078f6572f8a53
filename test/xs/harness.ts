/**
 * The Node side of the XS lane: bundle a portable entry with esbuild (IIFE,
 * es2020: the es2022 class-field output does not load in XS), load it into a
 * real XS worker built from source by @agoric/xsnap, and run its tasks one
 * command each. Each result carries the task's computrons (XS's
 * deterministic compute meter), the figure benches report as XS cost.
 *
 * The worker is made as strict as a Moddable device first: the prelude of
 * test/lib/moddable-realm deletes the globals Moddable lacks (TextEncoder,
 * setImmediate, print, …) and freezes the built-ins, before the bundle loads.
 */
import "@endo/init";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import { build } from "esbuild";
import { xsnap } from "@agoric/xsnap";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { moddableRealmPrelude } from "../lib/moddable-realm";

export interface TaskResult<T = unknown> {
  value: T;
  computrons: number;
}

export interface XsWorker {
  run<T = unknown>(task: string): Promise<TaskResult<T>>;
  close(): Promise<void>;
}

/** The `tmp` package's tmpName, which xsnap uses only for snapshot files. */
function tmpName(_options: unknown, callback: (err: Error | null, name: string) => void): void {
  callback(null, join(os.tmpdir(), `xs-ota-${process.pid}-${randomBytes(6).toString("hex")}`));
}

/**
 * Bundle an entry to one es2020 script, as a device would run its modules:
 * - strict, as ES modules are: in a sloppy script an assignment to a frozen
 *   built-in's property fails silently where the module would throw;
 * - without tree shaking: Moddable's xsc compiles each imported module whole
 *   and runs every module body, including top-level code esbuild would drop
 *   as unused (`@__PURE__`). That is how nist.js's TextEncoder call hid: its
 *   hash-to-curve tables are unused by us, so a tree-shaken bundle never ran them.
 */
export async function bundle(entry: string): Promise<string> {
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
  });
  return out.outputFiles[0].text;
}

/**
 * Start an XS worker in the Moddable realm (see above) with the bundled entry
 * loaded. `{ moddableRealm: false }` keeps xsnap's own realm: only for the
 * tests that show the realm is what makes a bad module fail.
 */
export async function startXs(entry: string, options: { moddableRealm?: boolean } = {}): Promise<XsWorker> {
  const code = await bundle(entry);
  const worker = await xsnap({
    name: "xs-ota-lane",
    os: os.type(),
    spawn,
    fs: { ...fs, ...fsp, tmpName },
    meteringLimit: 0,
    stdout: "inherit",
    stderr: "inherit",
    handleCommand: async () => new Uint8Array(0),
  } as never);
  try {
    if (options.moddableRealm !== false) await worker.evaluate(moddableRealmPrelude);
    await worker.evaluate(code);
  } catch (e) {
    await worker.close().catch(() => undefined);
    throw e;
  }
  return {
    async run<T>(task: string): Promise<TaskResult<T>> {
      const { reply, meterUsage } = await worker.issueCommand(new TextEncoder().encode(task));
      const msg = JSON.parse(new TextDecoder().decode(reply)) as { ok: boolean; value: T; error?: string; stack?: string };
      if (!msg.ok) throw new Error(`inside XS, task ${task}: ${msg.error}${msg.stack ? "\n" + msg.stack : ""}`);
      return { value: msg.value, computrons: Number(meterUsage.compute) };
    },
    close: () => worker.close(),
  };
}
