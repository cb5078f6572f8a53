/** Human-readable dump of a signed manifest envelope (`xs-ota inspect`). */
import { sha256 } from "@noble/hashes/sha2.js";
import { OtaError, reasonName } from "../../src/errors";
import { formatVersion } from "../../src/image/format";
import { decodeEnvelope, decodeManifest, ENVELOPE_MAGIC, Field, MANIFEST_MAGIC } from "../../src/update/manifest";
import { toHex, utf8Decode } from "../../src/util/bytes";

export function isEnvelope(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ENVELOPE_MAGIC.every((x, i) => bytes[i] === x);
}

export function isBareManifest(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && MANIFEST_MAGIC.every((x, i) => bytes[i] === x);
}

function time(t: number): string {
  return `${t} (${new Date(t * 1000).toISOString()})`;
}

/** The non-critical NOTE record, if any (the device skips it; people like to read it). */
function noteOf(manifest: Uint8Array): string | undefined {
  for (let off = 5; off + 3 <= manifest.length; ) {
    const type = manifest[off];
    const len = manifest[off + 1] | (manifest[off + 2] << 8);
    if (type === Field.NOTE) return utf8Decode(manifest.subarray(off + 3, off + 3 + len));
    off += 3 + len;
  }
  return undefined;
}

/** Describe manifest bytes (decoded with the device's strict decoder). */
export function describeManifestBytes(manifest: Uint8Array, lines: string[]): void {
  let m;
  try {
    m = decodeManifest(manifest);
  } catch (e) {
    lines.push(`  manifest: REFUSED by the device decoder: ${e instanceof OtaError ? `${reasonName(e.code)} (${e.code}) ${e.message}` : String(e)}`);
    return;
  }
  lines.push(`  release id:     ${toHex(sha256(manifest))} (SHA-256 of the ${manifest.length} signed bytes)`);
  lines.push(`  hardware id:    ${m.hardwareId}`);
  lines.push(`  version:        ${formatVersion(m.version)}`);
  lines.push(`  security count: ${m.securityCounter}`);
  lines.push(`  slot:           ${m.slot}`);
  lines.push(`  image:          ${m.image.length} bytes, whole-image SHA-256 ${toHex(m.image.sha256)}`);
  lines.push(`  payload:        ${m.payload.kind}, ${m.payload.length} bytes, payload SHA-256 ${toHex(m.payload.sha256)}, compression ${m.payload.compression}`);
  if (m.payload.baseSha256) lines.push(`  base image:     whole-image SHA-256 ${toHex(m.payload.baseSha256)}`);
  if (m.payload.encryption) {
    const e = m.payload.encryption;
    lines.push(`  encryption:     ENC_EC256 (ECIES-P256, AES-${(e.length - 97) * 8}-CTR), ephemeral key ${toHex(e.subarray(0, 65))}`);
    lines.push(`                  (the payload is encrypted for one device key; the image is what it decrypts to in the slot)`);
  }
  if (m.fetch.stream !== undefined) lines.push(`  stream:         ${m.fetch.stream}`);
  if (m.fetch.url !== undefined) lines.push(`  url:            ${m.fetch.url}`);
  lines.push(`  issued at:      ${time(m.issuedAt)}`);
  lines.push(`  expires at:     ${time(m.expiresAt)}`);
  lines.push(`  max download:   ${m.maxDownload} bytes`);
  const note = noteOf(manifest);
  if (note !== undefined) lines.push(`  note:           ${note}`);
}

/** A multi-line description of an envelope. */
export function describeEnvelope(bytes: Uint8Array): string {
  const lines: string[] = [];
  let env;
  try {
    env = decodeEnvelope(bytes);
  } catch (e) {
    return `signed release manifest: REFUSED: ${e instanceof OtaError ? `${reasonName(e.code)} (${e.code}) ${e.message}` : String(e)}`;
  }
  lines.push(`signed release manifest (envelope v${bytes[4]}, ${bytes.length} bytes)`);
  lines.push(`  key id:         ${toHex(env.keyId)}`);
  lines.push(`  signature:      ${env.signature.length} bytes DER, not checked here (xs-ota verify --key checks it)`);
  describeManifestBytes(env.manifest, lines);
  return lines.join("\n");
}
