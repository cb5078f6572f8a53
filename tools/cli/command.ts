/**
 * The CLI's command contract, its one error layer and its output channel.
 * A command returns its exit code; any thrown error becomes one line on
 * stderr naming the argument or file, with a hint to `xs-ota CMD --help`,
 * and exit 1 (a refusal) or 2 (misuse), never a stack trace.
 *
 * Output: `io.say` is the human text (stdout; stderr under --json; nothing
 * under --quiet), `io.result` the one JSON object a --json run prints on stdout.
 */
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { OtaError, reasonName } from "../../src/errors";
import { decodeIntelHex, HexError, isHexPath } from "../image/ihex";

export interface Command {
  /** One line for `xs-ota --help`. */
  summary: string;
  /** Full usage for `xs-ota CMD --help`. */
  usage: string;
  /** The command takes --json (one object on stdout, the human text on stderr). */
  json?: boolean;
  run(argv: string[]): Promise<number>;
}

/** The output mode of this run, set by tools/cli.ts from --json / --quiet. */
export const io = {
  json: false,
  quiet: false,
  /** The JSON result to print at exit (--json). */
  value: undefined as unknown,
  /** Human text: a line (or lines) for the operator. */
  say(text: string): void {
    if (this.quiet) return;
    (this.json ? process.stderr : process.stdout).write(text.endsWith("\n") ? text : text + "\n");
  },
  /** A warning: stderr, even under --quiet. */
  warn(text: string): void {
    process.stderr.write(text.endsWith("\n") ? text : text + "\n");
  },
  /** The run's machine-readable result (printed once, on stdout, under --json). */
  result(value: unknown): void {
    this.value = value;
  },
};

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(CliError.prototype, "name", { value: "CliError", writable: true, configurable: true });

/** A usage error: exit code 2. */
export function usageError(message: string): CliError {
  return new CliError(message, 2);
}

/** node:util parseArgs with strict checking, its errors turned into one-line usage errors. */
export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(argv: string[], options: T, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw usageError(parseArgsMessage(e as Error & { code?: string }, options));
  }
}

function optionName(flag: string, options: NonNullable<ParseArgsConfig["options"]>): string {
  if (flag.startsWith("--")) return flag;
  for (const [name, o] of Object.entries(options)) if (o.short && `-${o.short}` === flag) return `--${name}`;
  return flag;
}

/** node:util's multi-line parseArgs messages as one line naming the option. */
function parseArgsMessage(e: Error & { code?: string }, options: NonNullable<ParseArgsConfig["options"]>): string {
  const m = e.message;
  const flag = /Option '(-[^', ]+)(?:, (--[^ ']+))?/.exec(m);
  const name = flag ? (flag[2] ?? optionName(flag[1], options)) : undefined;
  if (/ambiguous/.test(m) && name) return `${name} needs a value (a value starting with "-" is written ${name}=-VALUE)`;
  if (/argument missing/.test(m) && name) return `${name} needs a value`;
  if (/does not take an argument/.test(m) && name) return `${name} takes no value`;
  const unknown = /Unknown option '([^']+)'/.exec(m);
  if (unknown) return `unknown option ${unknown[1]}`;
  const positional = /Unexpected argument '([^']*)'/.exec(m);
  if (positional) return `unexpected argument "${positional[1]}"`;
  return m.split("\n")[0];
}

/** Read an input file; a missing file or a directory is one line naming it. */
export function readInput(path: string, what = "input"): Uint8Array {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new CliError(`${what} ${path}: no such file`);
  }
  if (st.isDirectory()) throw new CliError(`${what} ${path} is a directory, not a file`);
  return new Uint8Array(readFileSync(path));
}

/**
 * Read a firmware or image input: Intel HEX when the name ends in .hex (as
 * imgtool decides), raw bytes otherwise. Returns the bytes and, for HEX, the
 * lowest address.
 */
export function readImageInput(path: string, what = "input"): { bytes: Uint8Array; baseAddress?: number } {
  const raw = readInput(path, what);
  if (!isHexPath(path)) return { bytes: raw };
  try {
    const h = decodeIntelHex(Buffer.from(raw).toString("latin1"), path);
    return { bytes: h.bytes, baseAddress: h.baseAddress };
  } catch (e) {
    if (e instanceof HexError) throw new CliError(`${what} ${e.message}`);
    throw e;
  }
}

/**
 * The one overwrite rule for every writer: an existing OUT is refused unless
 * --force; a missing directory is named as such.
 * @throws CliError (exit 1)
 */
export function checkWritable(path: string, force: boolean | undefined, what = "output"): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new CliError(`${what} ${path}: directory ${dirname(path)} does not exist`);
  if (!statSync(dir).isDirectory()) throw new CliError(`${what} ${path}: ${dirname(path)} is not a directory`);
  if (existsSync(path)) {
    if (statSync(path).isDirectory()) throw new CliError(`${what} ${path} is a directory; name a file`);
    if (!force) throw new CliError(`${what} ${path} exists; use --force to overwrite`);
  }
}

/** checkWritable, then write. */
export function writeOutput(path: string, bytes: Uint8Array | string, force: boolean | undefined, what = "output", mode?: number): void {
  checkWritable(path, force, what);
  writeFileSync(path, bytes, mode === undefined ? undefined : { mode });
  if (mode !== undefined) chmodSync(path, mode);
}

/** Integer option: decimal or 0x-hex. */
export function intOption(value: string | undefined, name: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw usageError(`--${name} is required`);
    return fallback;
  }
  const n = /^0x[0-9a-f]+$/i.test(value) ? parseInt(value, 16) : /^\d+$/.test(value) ? parseInt(value, 10) : NaN;
  if (!Number.isSafeInteger(n)) throw usageError(`--${name} must be an integer (decimal or 0x hex), got "${value}"`);
  return n;
}

/** Describe any thrown value as one line. */
export function describeError(e: unknown): string {
  return oneLine(describe(e));
}

/** An OtaError's message without the reason name its constructor puts in front. */
export function bareMessage(e: OtaError): string {
  const name = `${reasonName(e.code)}: `;
  return e.message.startsWith(name) ? e.message.slice(name.length) : e.message;
}

function describe(e: unknown): string {
  if (e instanceof OtaError) return `${bareMessage(e)} (reason ${e.code} ${reasonName(e.code)})`;
  if (e instanceof Error) {
    const err = e as NodeJS.ErrnoException;
    const path = err.path ?? (err as { address?: string }).address;
    if (err.code === "ENOENT") return `${path ?? e.message}: no such file or directory`;
    if (err.code === "EISDIR") return `${path ?? "a path"} is a directory, not a file`;
    if (err.code === "ENOTDIR") return `${path ?? "a path"}: a part of the path is not a directory`;
    if (err.code === "EACCES" || err.code === "EPERM") return `${path ?? e.message}: permission denied`;
    if (err.code === "EADDRINUSE") return `${e.message.replace(/^listen /, "")}: the address is in use (another server on that port?)`;
    return e.message;
  }
  return String(e);
}

function oneLine(s: string): string {
  return s.split(/\r?\n/).map((x) => x.trim()).filter(Boolean).join("; ");
}
