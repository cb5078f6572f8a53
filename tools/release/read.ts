/**
 * Reading a release directory on the host (the update server's view): every
 * signed manifest envelope in a directory, decoded, with the path of the
 * payload it names. The signature is checked only when a keyring is given;
 * the server needs the fields, the device does the authenticating.
 *
 * Layout written by `xs-ota release -o DIR/NAME.manifest`:
 *   DIR/NAME.manifest   the signed envelope
 *   DIR/<fetch.stream>  the payload (full image or patch), next to it
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { OtaError } from "../../src/errors";
import type { Keyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { decodeEnvelope, decodeManifest, ENVELOPE_MAGIC, MAX_ENVELOPE_BYTES, parseSignedManifest } from "../../src/update/manifest";
import type { AcceptedManifest, ReleaseManifest } from "../../src/update/types";

export interface ReleaseEntry {
  /** Path of the envelope file. */
  readonly path: string;
  /** The envelope's bytes (what is offered to devices as-is). */
  readonly bytes: Uint8Array;
  /** Decoded; `keyId` is the envelope's claim, verified only when a keyring was given. */
  readonly accepted: AcceptedManifest;
  readonly manifest: ReleaseManifest;
  /** DIR/<fetch.stream> when the manifest names a stream and that file exists. */
  readonly payloadPath: string | undefined;
}

/**
 * Decode one envelope without a keyring (fields only, signature unchecked).
 * @throws OtaError for a malformed envelope or manifest.
 */
export function decodeReleaseEnvelope(bytes: Uint8Array): AcceptedManifest {
  const env = decodeEnvelope(bytes);
  const manifest = decodeManifest(env.manifest);
  return Object.freeze({ manifest, releaseId: sha256(env.manifest), keyId: Uint8Array.from(env.keyId) });
}

function hasEnvelopeMagic(path: string): boolean {
  const st = statSync(path);
  if (!st.isFile() || st.size > MAX_ENVELOPE_BYTES || st.size < 4) return false;
  const head = readFileSync(path).subarray(0, 4);
  return ENVELOPE_MAGIC.every((b, i) => head[i] === b);
}

/**
 * Every release in `dir` (files that start with the envelope magic), sorted by path.
 * A file that has the magic but does not decode (or, with a keyring, does not
 * verify) is left out and reported to `onError` (default: ignored).
 */
export function readReleaseDir(
  dir: string,
  options: { keyring?: Keyring; onError?: (path: string, error: Error) => void } = {},
): ReleaseEntry[] {
  const out: ReleaseEntry[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (!hasEnvelopeMagic(path)) continue;
    const bytes = new Uint8Array(readFileSync(path));
    let accepted: AcceptedManifest;
    try {
      if (options.keyring) {
        const r = parseSignedManifest(bytes, options.keyring, softwareDigest);
        if (!r.ok) throw new OtaError(r.reason, r.message);
        accepted = r.accepted;
      } else accepted = decodeReleaseEnvelope(bytes);
    } catch (e) {
      options.onError?.(path, e as Error);
      continue;
    }
    const stream = accepted.manifest.fetch.stream;
    let payloadPath: string | undefined;
    if (stream !== undefined) {
      const p = join(dir, stream);
      try {
        if (statSync(p).isFile()) payloadPath = p;
      } catch {
        payloadPath = undefined;
      }
    }
    out.push(Object.freeze({ path, bytes, accepted, manifest: accepted.manifest, payloadPath }));
  }
  return out;
}
