/**
 * HKDF-SHA-256 (RFC 5869) over the `Cipher` HAL's HMAC, so a device's HMAC
 * engine serves it too. Used to derive the key-wrapping key and the MAC key
 * of MCUboot's ECIES-P256 scheme (info "MCUBoot_ECIES_v1", no salt).
 */
import type { Cipher } from "../../hal/types";

/** Largest output: 255 blocks is RFC 5869's limit; the device never needs more than 64 bytes. */
export const HKDF_MAX_LENGTH = 255 * 32;

/**
 * HKDF-Extract then HKDF-Expand: `length` bytes of output keying material.
 * An absent or empty salt is HashLen zero bytes (RFC 5869 section 2.2).
 * @throws RangeError for a length outside 1..8160 or an info over 1024 bytes.
 * @example hkdfSha256(softwareCipher, shared, undefined, utf8Encode("MCUBoot_ECIES_v1"), 64)
 */
export function hkdfSha256(cipher: Cipher, ikm: Uint8Array, salt: Uint8Array | undefined, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_MAX_LENGTH) throw new RangeError(`hkdf: length must be 1..${HKDF_MAX_LENGTH}, got ${length}`);
  if (info.length > 1024) throw new RangeError(`hkdf: info must be at most 1024 bytes, got ${info.length}`);
  // HMAC keys longer than the block are hashed first (RFC 2104); the HAL takes ≤ 64 bytes, so
  // a longer salt is refused rather than hashed here (no caller passes one).
  const prk = cipher.hmacSha256(salt && salt.length > 0 ? salt : new Uint8Array(32), ikm);
  const out = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  for (let i = 0, done = 0; done < length; i++) {
    previous = cipher.hmacSha256(prk, previous, info, Uint8Array.of(i + 1));
    const n = Math.min(32, length - done);
    out.set(previous.subarray(0, n), done);
    done += n;
  }
  prk.fill(0);
  return out;
}
