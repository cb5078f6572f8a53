/**
 * The key sets in a release directory (what `xs-ota serve` publishes): every
 * `*.keyset` file that decodes. The root signature is not checked here: the
 * device authenticates, the server only needs (epoch, sequence).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { OtaError } from "../../src/errors";
import { softwareDigest } from "../../src/crypto/sha256";
import { decodeKeySet, decodeKeySetEnvelope, MAX_KEYSET_ENVELOPE_BYTES } from "../../src/update/keyset";
import type { KeySetEntryFile } from "../release/keyset";

/**
 * Every `*.keyset` file in `dir` that decodes, sorted by path. A file over the
 * envelope cap or that does not decode is left out and reported to `onError`.
 */
export function readKeySets(dir: string, options: { onError?: (path: string, error: Error) => void } = {}): KeySetEntryFile[] {
  const out: KeySetEntryFile[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith(".keyset")) continue;
    const path = join(dir, name);
    const st = statSync(path);
    if (!st.isFile()) continue;
    if (st.size > MAX_KEYSET_ENVELOPE_BYTES) {
      options.onError?.(path, new Error(`${st.size} bytes (max ${MAX_KEYSET_ENVELOPE_BYTES})`));
      continue;
    }
    const bytes = new Uint8Array(readFileSync(path));
    try {
      out.push(Object.freeze({ path, bytes, keySet: decodeKeySet(decodeKeySetEnvelope(bytes).manifest, softwareDigest) }));
    } catch (e) {
      if (!(e instanceof OtaError)) throw e;
      options.onError?.(path, e);
    }
  }
  return out;
}
