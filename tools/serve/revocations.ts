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
 * Every `*.revocation` file in `dir` that decodes, sorted by path. A file over
 * the envelope cap or that does not decode is left out and reported to
 * `onError` (default: ignored).
 */
export function readRevocations(dir: string, options: { onError?: (path: string, error: Error) => void } = {}): RevocationEntry[] {
  const out: RevocationEntry[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith(".revocation")) continue;
    const path = join(dir, name);
    const st = statSync(path);
    if (!st.isFile()) continue;
    if (st.size > MAX_REVOCATION_ENVELOPE_BYTES) {
      options.onError?.(path, new Error(`${st.size} bytes (max ${MAX_REVOCATION_ENVELOPE_BYTES})`));
      continue;
    }
    const bytes = new Uint8Array(readFileSync(path));
    try {
      out.push(Object.freeze({ path, bytes, record: decodeRevocation(decodeRevocationEnvelope(bytes).manifest) }));
    } catch (e) {
      if (!(e instanceof OtaError)) throw e;
      options.onError?.(path, e);
    }
  }
  return out;
}
