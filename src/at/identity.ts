/**
 * Console commands of the device identity (mutual TLS):
 *
 * - `AT+CSR` prints the device's PKCS#10 certificate signing request as PEM
 *   lines (making the device key first if there is none); `AT+CSR=NEW` makes
 *   a new key (the old certificate is dropped) and prints its CSR. The subject
 *   is `CN=<saved device id>`. Locked: it may create a key.
 * - `AT+CERT=BEGIN`, then `AT+CERT=<base64 line>` (≤ 64 characters each, as
 *   the PEM body), then `AT+CERT=END` installs the certificate the fleet CA
 *   returned; it must carry the device key and name the saved device id.
 *   Locked. `AT+CERT?` shows `<commonName>,<bytes>` or `NONE` (open).
 *
 * The private key is never printed: no command reads it.
 */
import { Reason } from "../errors";
import { MAX_DEVICE_CERT } from "../crypto/x509";
import { base64Decode, pemLines } from "../util/base64";
import type { CommandContext, CommandSpec } from "./commands";
import { fail, okValue, type Operator, type Reply } from "./syntax";

/** Base64 characters of a whole certificate upload, at most. */
export const CERT_UPLOAD_MAX = Math.ceil(MAX_DEVICE_CERT / 3) * 4;
/** Base64 characters per AT+CERT line, at most (a PEM line is 64). */
export const CERT_LINE_MAX = 76;

/** The upload in progress per console (RAM only; a reset drops it). */
const uploads = new WeakMap<object, { text: string }>();

function idError(e: unknown): Reply {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "number") return fail(-5, code);
  throw e;
}

const csr: CommandSpec = {
  name: "CSR",
  ops: Object.freeze(["exec", "test", "set"]) as readonly Operator[],
  grammar: "[NEW]",
  help: "print the device's certificate signing request (PEM); =NEW makes a new device key",
  lockedOps: Object.freeze(["exec", "set"]) as readonly Operator[],
  run(ctx, op, args) {
    const id = ctx.identity;
    if (!id) return fail(-5, Reason.AT_NOT_PERMITTED);
    if (op === "set" && args.toUpperCase() !== "NEW") return fail(-4);
    try {
      id.ensureKey(op === "set");
      const deviceId = ctx.settings.saved.deviceId;
      return okValue(deviceId, pemLines("CERTIFICATE REQUEST", id.csr(deviceId)));
    } catch (e) {
      return idError(e);
    }
  },
};

const cert: CommandSpec = {
  name: "CERT",
  ops: Object.freeze(["exec", "query", "test", "set"]) as readonly Operator[],
  grammar: "BEGIN|<base64 line>|END",
  help: "install the device certificate from the fleet CA: BEGIN, the PEM body lines, END",
  lockedOps: Object.freeze(["set"]) as readonly Operator[],
  run(ctx, op, args) {
    const id = ctx.identity;
    if (op !== "set") {
      const c = id?.certificate();
      return okValue(c ? `${c.commonName},${c.length}` : "NONE");
    }
    if (!id) return fail(-5, Reason.AT_NOT_PERMITTED);
    const word = args.toUpperCase();
    if (word === "BEGIN") {
      uploads.set(ctx, { text: "" });
      return okValue("0");
    }
    const up = uploads.get(ctx);
    if (!up) return fail(-5, Reason.IDENTITY_UPLOAD_STATE);
    if (word === "END") {
      uploads.delete(ctx);
      const der = base64Decode(up.text);
      if (!der || der.length === 0) return fail(-5, Reason.IDENTITY_CERT_MALFORMED);
      try {
        const r = id.installCertificate(der, ctx.settings.saved.deviceId);
        return r === Reason.OK ? okValue(`${ctx.settings.saved.deviceId},${der.length}`) : fail(-5, r);
      } catch (e) {
        return idError(e);
      }
    }
    if (args.length === 0 || args.length > CERT_LINE_MAX || !/^[A-Za-z0-9+/=]+$/.test(args)) return fail(-4);
    if (up.text.length + args.length > CERT_UPLOAD_MAX) {
      uploads.delete(ctx);
      return fail(-5, Reason.IDENTITY_CERT_TOO_LARGE);
    }
    up.text += args;
    return okValue(String(up.text.length));
  },
};

/** The identity commands, in help order (spliced into the table by ./commands.ts). */
export const IDENTITY_COMMANDS: readonly CommandSpec[] = Object.freeze([Object.freeze(csr), Object.freeze(cert)]);
