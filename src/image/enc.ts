/**
 * Encrypted MCUboot images: the ENC_EC256 TLV (ECIES-P256, HKDF-SHA-256,
 * AES-CTR key wrap, HMAC-SHA-256 tag) as imgtool's `--encrypt` writes it
 * (scripts/imgtool/image.py `ecies_hkdf`, `create`) and bootutil unwraps it
 * (boot/bootutil/src/encrypted.c `boot_decrypt_key`), and the body's AES-CTR
 * with MCUboot's all-zero nonce, the counter at (body offset / 16)
 * (encrypted.c `boot_enc_decrypt`, bootutil_img_hash.c). Layout and the
 * direct-xip decision: docs/formats.md, "Encrypted images".
 */
import type { Cipher } from "../../hal/types";
import { p256 } from "../crypto/p256";
import { hkdfSha256 } from "../crypto/hkdf";
import { OtaError, Reason } from "../errors";

/** Header flags (bootutil/image.h). */
export const IMAGE_F_ENCRYPTED_AES128 = 0x04;
export const IMAGE_F_ENCRYPTED_AES256 = 0x08;
export const IMAGE_F_ENCRYPTED = IMAGE_F_ENCRYPTED_AES128 | IMAGE_F_ENCRYPTED_AES256;

/** TLV types (bootutil/image.h). Only ENC_EC256 is supported here. */
export const TLV_ENC = Object.freeze({ RSA2048: 0x30, KW: 0x31, EC256: 0x32, X25519: 0x33, X25519_SHA512: 0x34 });
/**
 * xs-ota's vendor TLV (MCUboot reserves 0x00a0-0x00ff for vendors): the TLV
 * area of the image as it must land in the slot for direct-xip (flag cleared,
 * plaintext body; its own SHA256, KEYHASH, ECDSASIG). Unprotected, like the
 * ENC TLV: it carries its own signature.
 */
export const TLV_XSOTA_SLOT_TLVS = 0xb0;

export const EC_PUBKEY_LENGTH = 65;
export const EC_TAG_LENGTH = 32;
/** The HKDF info string, "MCUBoot_ECIES_v1" (encrypted.c `boot_decrypt_key`, image.py). */
export const ECIES_INFO = Object.freeze([0x4d, 0x43, 0x55, 0x42, 0x6f, 0x6f, 0x74, 0x5f, 0x45, 0x43, 0x49, 0x45, 0x53, 0x5f, 0x76, 0x31]);
/** The counter block before the first body byte (imgtool `modes.CTR(bytes([0] * 16))`). */
export const ZERO_IV: Uint8Array = new Uint8Array(16);

export interface EncEc256 {
  /** The sender's ephemeral public key, uncompressed (04 X Y). */
  readonly ephemeral: Uint8Array;
  /** HMAC-SHA-256 over the wrapped key. */
  readonly tag: Uint8Array;
  /** The image key, AES-CTR encrypted under the derived key. */
  readonly wrappedKey: Uint8Array;
}

/** The AES key length an encrypted header's flags announce: 16, 32, or 0 (not encrypted). */
export function keyLengthOfFlags(flags: number): 0 | 16 | 32 {
  const f = flags & IMAGE_F_ENCRYPTED;
  if (f === 0) return 0;
  if (f === IMAGE_F_ENCRYPTED) throw new OtaError(Reason.ENC_MALFORMED, "both AES-128 and AES-256 flags set");
  return f === IMAGE_F_ENCRYPTED_AES128 ? 16 : 32;
}

/**
 * Split an ENC_EC256 value: ephemeral key (65) ‖ tag (32) ‖ wrapped key (16 or 32).
 * @throws OtaError ENC_MALFORMED for another length or a compressed/odd key prefix.
 */
export function parseEncEc256(value: Uint8Array): EncEc256 {
  const keyLength = value.length - EC_PUBKEY_LENGTH - EC_TAG_LENGTH;
  if (keyLength !== 16 && keyLength !== 32) throw new OtaError(Reason.ENC_MALFORMED, `ENC_EC256 of ${value.length} bytes (113 or 129 expected)`);
  return Object.freeze({
    ephemeral: value.subarray(0, EC_PUBKEY_LENGTH),
    tag: value.subarray(EC_PUBKEY_LENGTH, EC_PUBKEY_LENGTH + EC_TAG_LENGTH),
    wrappedKey: value.subarray(EC_PUBKEY_LENGTH + EC_TAG_LENGTH),
  });
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** The x-coordinate of d·E: ECDH on P-256 (checks E is on the curve). */
function sharedSecret(privateKey: Uint8Array, ephemeral: Uint8Array): Uint8Array {
  if (ephemeral[0] !== 0x04) throw new OtaError(Reason.ENC_BAD_EPHEMERAL, "ephemeral key is not an uncompressed point");
  let point: Uint8Array;
  try {
    point = p256.getSharedSecret(privateKey, ephemeral, true);
  } catch (e) {
    // noble throws for a point off the curve (checked first) or a bad scalar
    if (!p256.utils.isValidSecretKey(privateKey)) throw new OtaError(Reason.ENC_BAD_KEY, "decryption key is not a P-256 private scalar");
    throw new OtaError(Reason.ENC_BAD_EPHEMERAL, "ephemeral key is not on P-256");
  }
  return point.subarray(1);
}

/**
 * Recover the image key from an ENC_EC256 value with the device's private key,
 * as bootutil does: ECDH, HKDF-SHA-256 (no salt, info "MCUBoot_ECIES_v1",
 * keyLength + 32 bytes), HMAC-SHA-256 of the wrapped key checked in constant
 * time, then AES-CTR (zero iv) unwraps it. Nothing is decrypted unless the tag
 * verifies. The caller owns (and should zero) the returned key.
 * @param keyLength the header flags' key length, when known: a mismatch is refused.
 * @throws OtaError ENC_MALFORMED, ENC_UNSUPPORTED (length disagrees with the
 *   flags), ENC_BAD_EPHEMERAL, ENC_BAD_KEY, ENC_KEY_UNWRAP (tampered, or for another key).
 */
export function unwrapImageKey(cipher: Cipher, privateKey: Uint8Array, encValue: Uint8Array, keyLength?: 16 | 32): Uint8Array {
  const enc = parseEncEc256(encValue);
  const n = enc.wrappedKey.length;
  if (keyLength !== undefined && n !== keyLength) throw new OtaError(Reason.ENC_UNSUPPORTED, `wrapped key of ${n} bytes, header flags say ${keyLength}`);
  if (privateKey.length !== 32) throw new OtaError(Reason.ENC_BAD_KEY, "decryption key must be a 32-byte P-256 scalar");
  const shared = sharedSecret(privateKey, enc.ephemeral);
  const derived = hkdfSha256(cipher, shared, undefined, Uint8Array.from(ECIES_INFO), n + 32);
  shared.fill(0);
  const ok = constantTimeEqual(cipher.hmacSha256(derived.subarray(n), enc.wrappedKey), enc.tag);
  if (!ok) {
    derived.fill(0);
    throw new OtaError(Reason.ENC_KEY_UNWRAP, "the wrapped key's HMAC does not verify (tampered, or encrypted for another key)");
  }
  const key = cipher.aesCtr(derived.subarray(0, n), ZERO_IV, 0, enc.wrappedKey);
  derived.fill(0);
  return key;
}

/**
 * Decrypt (or encrypt) `data`, the bytes at `bodyOffset` of an image body (or
 * of an encrypted patch), in calls of at most 4 KiB: the keystream is a
 * function of the offset alone, so a resumed download picks up anywhere.
 */
export function aesCtrAt(cipher: Cipher, key: Uint8Array, bodyOffset: number, data: Uint8Array): Uint8Array {
  if (data.length <= 4096) return cipher.aesCtr(key, ZERO_IV, bodyOffset, data);
  const out = new Uint8Array(data.length);
  for (let o = 0; o < data.length; o += 4096) out.set(cipher.aesCtr(key, ZERO_IV, bodyOffset + o, data.subarray(o, Math.min(data.length, o + 4096))), o);
  return out;
}
