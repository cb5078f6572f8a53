/**
 * The CLI's command contract and its error type. A command returns its exit
 * code; a CliError becomes one line on stderr and that code, never a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { OtaError, reasonName } from "../../src/errors";

export interface Command {
  /** One line for `xs-ota --help`. */
  summary: string;
  /** Full usage for `xs-ota CMD --help`. */
  usage: string;
  run(argv: string[]): Promise<number>;
}

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

/** node:util parseArgs with strict checking, turning its errors into usage errors. */
export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(argv: string[], options: T, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw usageError((e as Error).message);
  }
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
  if (e instanceof OtaError) return `${e.message} (reason ${e.code} ${reasonName(e.code)})`;
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return `no such file: ${(e as NodeJS.ErrnoException).path ?? e.message}`;
    return e.message;
  }
  return String(e);
}
