/**
 * AT command-line syntax (ITU-T V.250 extended commands, USR flavour) and
 * reply framing.
 *
 *   AT               test: `+OK`
 *   AT+CMD           execute (for a parameter: the same as a query, as on USR devices)
 *   AT+CMD?          query
 *   AT+CMD=?         test: the argument grammar and a help line
 *   AT+CMD=a,b       set
 *
 * Names are case-insensitive ([A-Za-z0-9], 1..16). Arguments are split at
 * commas and are not quoted (a password takes the whole rest of the line).
 *
 * Replies (USR N-series framing, `<CR><LF>+<RSP>[=para]<CR><LF>`):
 *   `\r\n+OK\r\n`, `\r\n+OK=<value>\r\n`, `\r\n+ERR=<n>\r\n`; multi-line
 *   replies put their lines first: `\r\n<line>\r\n…\r\n+OK=<value>\r\n`.
 *   `+ERR=-5` carries the reason code from src/errors.ts: `\r\n+ERR=-5,<reason>\r\n`.
 */
import { Reason, type ReasonCode } from "../errors";

export type Operator = "exec" | "query" | "test" | "set";

/** USR error numbers. */
export const UsrError = Object.freeze({
  BAD_FORMAT: -1,
  UNKNOWN: -2,
  BAD_OPERATOR: -3,
  BAD_PARAMETER: -4,
  NOT_PERMITTED: -5,
});
export type UsrErrorCode = -1 | -2 | -3 | -4 | -5;

/** The reason code of each USR error number (for logs and the cloud). */
export const usrReason: { readonly [n: number]: ReasonCode } = Object.freeze({
  [-1]: Reason.AT_BAD_FORMAT,
  [-2]: Reason.AT_UNKNOWN,
  [-3]: Reason.AT_BAD_OPERATOR,
  [-4]: Reason.AT_BAD_PARAMETER,
  [-5]: Reason.AT_NOT_PERMITTED,
});

/** The USR error number for a reason code: AT_* map 1:1, every other refusal is -5. */
export function usrErrorOf(reason: number): UsrErrorCode {
  switch (reason) {
    case Reason.AT_BAD_FORMAT:
      return -1;
    case Reason.AT_UNKNOWN:
      return -2;
    case Reason.AT_BAD_OPERATOR:
      return -3;
    case Reason.AT_BAD_PARAMETER:
      return -4;
    default:
      return -5;
  }
}

export interface CommandLine {
  /** Upper-case name; "" for a bare `AT`. */
  readonly name: string;
  readonly op: Operator;
  /** Everything after `=` for a set, else "". */
  readonly args: string;
}

export const MAX_NAME = 16;

/** Parse a command line; undefined when it is not AT syntax (`+ERR=-1`). */
export function parseCommandLine(text: string): CommandLine | undefined {
  if (text.length < 2) return undefined;
  const a = text.charCodeAt(0) | 0x20;
  const t = text.charCodeAt(1) | 0x20;
  if (a !== 0x61 || t !== 0x74) return undefined;
  if (text.length === 2) return { name: "", op: "exec", args: "" };
  if (text.charCodeAt(2) !== 0x2b) return undefined;
  let i = 3;
  while (i < text.length && i - 3 < MAX_NAME + 1) {
    const c = text.charCodeAt(i);
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (!alnum) break;
    i++;
  }
  const name = text.slice(3, i).toUpperCase();
  if (name.length === 0 || name.length > MAX_NAME) return undefined;
  const rest = text.slice(i);
  if (rest === "") return { name, op: "exec", args: "" };
  if (rest === "?") return { name, op: "query", args: "" };
  if (rest === "=?") return { name, op: "test", args: "" };
  if (rest.charCodeAt(0) === 0x3d) return { name, op: "set", args: rest.slice(1) };
  return undefined;
}

/** A handler's answer. */
export type Reply =
  | { readonly ok: true; readonly value?: string; readonly lines?: readonly string[] }
  | { readonly ok: false; readonly error: UsrErrorCode; readonly reason?: number };

export const OK: Reply = Object.freeze({ ok: true });

export function okValue(value: string, lines?: readonly string[]): Reply {
  return lines ? { ok: true, value, lines } : { ok: true, value };
}

export function fail(error: UsrErrorCode, reason?: number): Reply {
  return error === -5 ? { ok: false, error, reason: reason ?? Reason.AT_NOT_PERMITTED } : { ok: false, error };
}

/** The reply's text, framed. */
export function renderReply(r: Reply): string {
  if (!r.ok) return r.error === -5 ? `\r\n+ERR=-5,${r.reason}\r\n` : `\r\n+ERR=${r.error}\r\n`;
  const final = r.value === undefined ? "+OK" : `+OK=${r.value}`;
  if (!r.lines || r.lines.length === 0) return `\r\n${final}\r\n`;
  return `\r\n${r.lines.join("\r\n")}\r\n${final}\r\n`;
}

/** Split set arguments at commas. */
export function splitArgs(args: string): string[] {
  return args.split(",");
}
