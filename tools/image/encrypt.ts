/**
 * The host side of encrypted images: wrap a fresh image key for a recipient's
 * P-256 public key as imgtool's `ecies_hkdf` does (ephemeral key, ECDH,
 * HKDF-SHA-256 "MCUBoot_ECIES_v1", AES-CTR wrap, HMAC-SHA-256 tag), and build
 * the encrypted image as imgtool's `create` does: body padded to 16 bytes,
 * IMAGE_F_ENCRYPTED_AES128/256 in the header, SHA256/KEYHASH/ECDSASIG over the
 * header and the plaintext, then ENC_EC256; the body AES-CTR encrypted (zero
 * nonce). xs-ota adds one vendor TLV after ENC_EC256: the slot TLVs (the TLV
 * area of the same image with the flag cleared, signed by the same key),
 * which is what direct-xip MCUboot boots (docs/formats.md).
 *
 * Portable (noble only; randomness passed in) so XS test entries can encrypt.
 */
import type { Cipher } from "../../hal/types";
import { hkdfSha256 } from "../../src/crypto/hkdf";
import { p256 } from "../../src/crypto/p256";
import {
  ECIES_INFO,
  IMAGE_F_ENCRYPTED_AES128,
  IMAGE_F_ENCRYPTED_AES256,
  TLV_ENC,
  TLV_XSOTA_SLOT_TLVS,
  ZERO_IV,
  aesCtrAt,
} from "../../src/image/enc";
import { encodeImage, type EncodeOptions } from "./encode";

export interface EncryptParams {
  /** The recipient's (device's or fleet's) public key, SEC1 uncompressed (65 bytes). */
  readonly recipient: Uint8Array;
  /** AES key length: 16 (imgtool's default, AES-128) or 32 (`--encrypt-keylen 256`). */
  readonly keyLength: 16 | 32;
  /** Cryptographic randomness (the host's CSPRNG; seeded only in tests). */
  readonly random: (n: number) => Uint8Array;
  readonly cipher: Cipher;
  /** Add the slot-TLVs TLV (default true); false writes only what imgtool writes. */
  readonly slotTlvs?: boolean;
}

/**
 * ENC_EC256 value for `imageKey`: ephemeral public key (65) ‖ HMAC tag (32) ‖ wrapped key.
 * @throws RangeError for a recipient that is not a P-256 point.
 */
export function wrapImageKey(cipher: Cipher, recipient: Uint8Array, imageKey: Uint8Array, random: (n: number) => Uint8Array): Uint8Array {
  if (!p256.utils.isValidPublicKey(recipient, false)) throw new RangeError("recipient is not an uncompressed P-256 public key");
  let ephemeral: Uint8Array | undefined;
  for (let i = 0; i < 8 && !ephemeral; i++) {
    const k = random(32);
    if (p256.utils.isValidSecretKey(k)) ephemeral = k;
  }
  if (!ephemeral) throw new Error("random source gave no valid P-256 scalar in 8 tries");
  const n = imageKey.length;
  const shared = p256.getSharedSecret(ephemeral, recipient, true).subarray(1);
  const derived = hkdfSha256(cipher, shared, undefined, Uint8Array.from(ECIES_INFO), n + 32);
  const wrapped = cipher.aesCtr(derived.subarray(0, n), ZERO_IV, 0, imageKey);
  const tag = cipher.hmacSha256(derived.subarray(n), wrapped);
  const out = new Uint8Array(65 + 32 + n);
  out.set(p256.getPublicKey(ephemeral, false));
  out.set(tag, 65);
  out.set(wrapped, 97);
  ephemeral.fill(0);
  derived.fill(0);
  return out;
}

/** The body padded with zeros so that header + body is a multiple of 16 (imgtool pads the payload so). */
export function padForEncryption(body: Uint8Array, headerSize: number): Uint8Array {
  const r = (headerSize + body.length) % 16;
  if (r === 0) return body;
  const out = new Uint8Array(body.length + 16 - r);
  out.set(body);
  return out;
}

export interface EncryptedImage {
  /** What is shipped: imgtool's encrypted layout plus the slot-TLVs TLV. */
  readonly image: Uint8Array;
  /** What lands in the slot: flag cleared, plaintext body, slot TLVs. */
  readonly slotImage: Uint8Array;
  /** The ENC_EC256 value (the manifest binds the same bytes). */
  readonly enc: Uint8Array;
}

/**
 * Encrypt an image described by `o` (unpadded; `o.body` is padded here).
 * The image key is random and never leaves this function.
 */
export function encryptImage(o: EncodeOptions, p: EncryptParams): EncryptedImage {
  const headerSize = o.headerSize ?? 0x200;
  const body = padForEncryption(o.body, headerSize);
  const base: EncodeOptions = { ...o, body, pad: undefined };
  const slotImage = encodeImage(base);
  const hashed = headerSize + body.length + protectedLength(slotImage);
  const key = p.random(p.keyLength);
  const enc = wrapImageKey(p.cipher, p.recipient, key, p.random);
  const extra: { type: number; value: Uint8Array }[] = [{ type: TLV_ENC.EC256, value: enc }];
  if (p.slotTlvs !== false) extra.push({ type: TLV_XSOTA_SLOT_TLVS, value: slotImage.subarray(hashed) });
  const flag = p.keyLength === 16 ? IMAGE_F_ENCRYPTED_AES128 : IMAGE_F_ENCRYPTED_AES256;
  const image = encodeImage({ ...base, flags: (o.flags ?? 0) | flag, extraTlvs: [...(o.extraTlvs ?? []), ...extra] });
  image.set(aesCtrAt(p.cipher, key, 0, image.subarray(headerSize, headerSize + body.length)), headerSize);
  key.fill(0);
  return { image, slotImage, enc };
}

function protectedLength(image: Uint8Array): number {
  return image[10] | (image[11] << 8);
}

/**
 * Encrypt a patch (or any payload) whole with a fresh key, the same scheme:
 * AES-CTR from offset 0 under a key wrapped in an ENC_EC256 value.
 */
export function encryptPayload(payload: Uint8Array, p: Omit<EncryptParams, "slotTlvs">): { payload: Uint8Array; enc: Uint8Array } {
  const key = p.random(p.keyLength);
  const enc = wrapImageKey(p.cipher, p.recipient, key, p.random);
  const out = aesCtrAt(p.cipher, key, 0, payload);
  key.fill(0);
  return { payload: out, enc };
}
