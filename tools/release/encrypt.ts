/**
 * Encrypted releases (issue 19): a manifest whose payload is encrypted for a
 * device key. Full: the payload is the encrypted image (`sign --encrypt`),
 * `image` the slot image it decrypts to. Delta: the patch (made between the
 * slot images) AES-CTR encrypted whole under a fresh key wrapped the same
 * way; the payload hash is over the ciphertext. The manifest binds both
 * hashes and the ENC_EC256 value (PAYLOAD_ENCRYPTION, critical: a device that
 * does not know it refuses the release). Portable (tests run it in XS).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { ReleaseManifest } from "../../src/update/types";

/** The manifest of an encrypted payload: `plain` describes the slot image (and, for a delta, the base). */
export function encryptedManifest(plain: ReleaseManifest, payload: Uint8Array, enc: Uint8Array): ReleaseManifest {
  return {
    ...plain,
    payload: { ...plain.payload, length: payload.length, sha256: sha256(payload), encryption: enc },
    maxDownload: Math.max(plain.maxDownload, 2 * payload.length),
  };
}
