/**
 * The revocation records in a release directory (what `xs-ota serve`
 * publishes): every `*.revocation` file that decodes. The signature is not
 * checked here: the device authenticates, the server only needs the fields.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { OtaError } from "../../src/errors";
import { decodeRevocation, decodeRevocationEnvelope, MAX_REVOCATION_ENVELOPE_BYTES } from "../../src/update/revocation";
import type { RevocationEntry } from "../release/revoke";

/**
 * Every file of `dir` ending in `suffix` whose bytes `decode` takes, sorted by
 * path. A file over `maxBytes` or that does not decode (an OtaError) is left out
 * and reported to `onError` (default: ignored).
 */
export function readSignedFiles<T>(dir: string, suffix: string, maxBytes: number, decode: (path: string, bytes: Uint8Array) => T, options: { onError?: (path: string, error: Error) => void } = {}): T[] {
  const out: T[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith(suffix)) continue;
    const path = join(dir, name);
    const st = statSync(path);
    if (!st.isFile()) continue;
    if (st.size > maxBytes) {
      options.onError?.(path, new Error(`${st.size} bytes (max ${maxBytes})`));
      continue;
    }
    try {
      out.push(decode(path, new Uint8Array(readFileSync(path))));
    } catch (e) {
      if (!(e instanceof OtaError)) throw e;
      options.onError?.(path, e);
    }
  }
  return out;
}

/**
 * Every `*.revocation` file in `dir` that decodes, sorted by path. A file over
 * the envelope cap or that does not decode is left out and reported to
 * `onError` (default: ignored).
 */
export function readRevocations(dir: string, options: { onError?: (path: string, error: Error) => void } = {}): RevocationEntry[] {
  return readSignedFiles(dir, ".revocation", MAX_REVOCATION_ENVELOPE_BYTES, (path, bytes) => Object.freeze({ path, bytes, record: decodeRevocation(decodeRevocationEnvelope(bytes).manifest) }), options);
}
