/**
 * The pure-JS `Cipher` (hal/types.ts): AES-CTR from ./aes (FIPS 197; why not
 * @noble/ciphers: see there), HMAC-SHA-256 from @noble/hashes. The default
 * where a device has no crypto engine; the conformance suite
 * (test/conformance/cipher.ts) holds every implementation to the NIST and RFC
 * vectors, and the unit lane checks this one against @noble/ciphers and OpenSSL.
 */
import { ctrXor, expandKey } from "./aes";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Cipher } from "../../hal/types";

/** Largest input of one `aesCtr` or `hmacSha256` call (the HAL's bound). */
export const CIPHER_MAX_INPUT = 4096;

function acheckCtr(key: Uint8Array, iv: Uint8Array, offset: number, data: Uint8Array): void {
  if (!(key instanceof Uint8Array) || !(iv instanceof Uint8Array) || !(data instanceof Uint8Array)) throw new TypeError("aesCtr: key, iv and data must be Uint8Array");
  if (key.length !== 16 && key.length !== 32) throw new RangeError(`aesCtr: key must be 16 or 32 bytes, got ${key.length}`);
  if (iv.length !== 16) throw new RangeError(`aesCtr: iv must be 16 bytes, got ${iv.length}`);
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xffffffff) throw new RangeError(`aesCtr: offset must be 0..2^32-1, got ${offset}`);
  if (data.length > CIPHER_MAX_INPUT) throw new RangeError(`aesCtr: data must be at most ${CIPHER_MAX_INPUT} bytes, got ${data.length}`);
}

/**
 * The counter block for byte `offset` of a CTR stream: `iv + floor(offset / 16)`
 * as 128-bit big-endian integers (wrapping). MCUboot's `bootutil_aes_ctr_*`
 * with its all-zero nonce is the case iv = 0.
 */
export function counterBlockAt(iv: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(16);
  out.set(iv);
  let add = Math.floor(offset / 16);
  for (let i = 15; i >= 0 && add > 0; i--) {
    const s = out[i] + (add % 256);
    out[i] = s & 0xff;
    add = Math.floor(add / 256) + (s >> 8);
  }
  return out;
}

export const softwareCipher: Cipher = Object.freeze({
  aesCtr(key: Uint8Array, iv: Uint8Array, offset: number, data: Uint8Array): Uint8Array {
    acheckCtr(key, iv, offset, data);
    if (data.length === 0) return new Uint8Array(0);
    const k = expandKey(key);
    const out = ctrXor(k, counterBlockAt(iv, offset), offset % 16, data);
    k.words.fill(0);
    return out;
  },
  hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
    if (!(key instanceof Uint8Array)) throw new TypeError("hmacSha256: key must be a Uint8Array");
    if (key.length > 64) throw new RangeError(`hmacSha256: key must be at most 64 bytes, got ${key.length}`);
    let total = 0;
    for (const p of parts) {
      if (!(p instanceof Uint8Array)) throw new TypeError("hmacSha256: parts must be Uint8Array");
      total += p.length;
    }
    if (total > CIPHER_MAX_INPUT) throw new RangeError(`hmacSha256: at most ${CIPHER_MAX_INPUT} bytes of input, got ${total}`);
    const h = hmac.create(sha256, key);
    for (const p of parts) h.update(p);
    return h.digest();
  },
});
