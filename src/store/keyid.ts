/**
 * The key id of a trusted P-256 public key: SHA-256 of the key's DER
 * SubjectPublicKeyInfo, i.e. exactly MCUboot's KEYHASH TLV as imgtool
 * computes it (`sha256(get_public_bytes())`), and the keyring's id
 * (src/crypto). Settings store the 65-byte uncompressed point; the id is
 * derived, never stored. The encodings are src/crypto/der's.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { decodePublicKey, spkiOf } from "../crypto/der";

/** Length of an uncompressed SEC1 P-256 point (0x04 ‖ X ‖ Y). */
export const P256_POINT_LENGTH = 65;

/** True when `point` is a 65-byte uncompressed point on P-256. */
export function isP256Point(point: Uint8Array): boolean {
  return point instanceof Uint8Array && point.length === P256_POINT_LENGTH && decodePublicKey(point) !== undefined;
}

/** The DER SubjectPublicKeyInfo of an uncompressed P-256 point. @throws RangeError for a wrong length. */
export function p256Spki(point: Uint8Array): Uint8Array {
  if (!(point instanceof Uint8Array) || point.length !== P256_POINT_LENGTH) throw new RangeError(`point must be ${P256_POINT_LENGTH} bytes`);
  return spkiOf(point);
}

/**
 * Key id = SHA-256(DER SPKI) of an uncompressed P-256 point (32 bytes).
 * @throws RangeError for a point of the wrong length.
 * @example toHex(keyId(point)) // same as `openssl pkey -pubin -outform DER | sha256sum`
 */
export function keyId(point: Uint8Array): Uint8Array {
  return sha256(p256Spki(point));
}
