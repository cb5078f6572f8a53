/**
 * The key id of a trusted P-256 public key: SHA-256 of the key's DER
 * SubjectPublicKeyInfo, i.e. exactly MCUboot's KEYHASH TLV as imgtool
 * computes it (`sha256(get_public_bytes())`). Settings store the 65-byte
 * uncompressed point; the id is derived, never stored.
 *
 * Kept here so the store and the AT console need nothing from src/crypto;
 * src/crypto's keyring may replace it with its own (same definition).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { p256 } from "@noble/curves/nist.js";

/** Length of an uncompressed SEC1 P-256 point (0x04 ‖ X ‖ Y). */
export const P256_POINT_LENGTH = 65;

/** DER SubjectPublicKeyInfo prefix for an uncompressed P-256 point (id-ecPublicKey, prime256v1). */
const SPKI_P256_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
  0x01, 0x07, 0x03, 0x42, 0x00,
]);

/**
 * True when `point` is a 65-byte uncompressed point on P-256 (not the identity).
 */
export function isP256Point(point: Uint8Array): boolean {
  if (!(point instanceof Uint8Array) || point.length !== P256_POINT_LENGTH || point[0] !== 0x04) return false;
  try {
    p256.Point.fromBytes(point).assertValidity();
    return true;
  } catch {
    return false;
  }
}

/** The DER SubjectPublicKeyInfo of an uncompressed P-256 point. @throws RangeError for a wrong length. */
export function p256Spki(point: Uint8Array): Uint8Array {
  if (!(point instanceof Uint8Array) || point.length !== P256_POINT_LENGTH) {
    throw new RangeError(`point must be ${P256_POINT_LENGTH} bytes`);
  }
  const out = new Uint8Array(SPKI_P256_PREFIX.length + P256_POINT_LENGTH);
  out.set(SPKI_P256_PREFIX);
  out.set(point, SPKI_P256_PREFIX.length);
  return out;
}

/**
 * Key id = SHA-256(DER SPKI) of an uncompressed P-256 point (32 bytes).
 * @throws RangeError for a point of the wrong length.
 * @example toHex(keyId(point)) // same as `openssl pkey -pubin -outform DER | sha256sum`
 */
export function keyId(point: Uint8Array): Uint8Array {
  return sha256(p256Spki(point));
}
