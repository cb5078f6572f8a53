/**
 * The key sets in a release directory (what `xs-ota serve` publishes): every
 * `*.keyset` file that decodes. The root signature is not checked here: the
 * device authenticates, the server only needs (epoch, sequence).
 */
import { softwareDigest } from "../../src/crypto/sha256";
import { decodeKeySet, decodeKeySetEnvelope, MAX_KEYSET_ENVELOPE_BYTES } from "../../src/update/keyset";
import type { KeySetEntryFile } from "../release/keyset";
import { readSignedFiles } from "./revocations";

/**
 * Every `*.keyset` file in `dir` that decodes, sorted by path. A file over the
 * envelope cap or that does not decode is left out and reported to `onError`.
 */
export function readKeySets(dir: string, options: { onError?: (path: string, error: Error) => void } = {}): KeySetEntryFile[] {
  return readSignedFiles(dir, ".keyset", MAX_KEYSET_ENVELOPE_BYTES, (path, bytes) => Object.freeze({ path, bytes, keySet: decodeKeySet(decodeKeySetEnvelope(bytes).manifest, softwareDigest) }), options);
}
