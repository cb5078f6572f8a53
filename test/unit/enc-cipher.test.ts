/**
 * The Cipher HAL's pure-JS implementation: the conformance suite (NIST/RFC
 * vectors, every offset, every split), then random inputs against OpenSSL
 * through node:crypto.
 */
import { createCipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { softwareCipher, counterBlockAt } from "../../src/crypto/cipher";
import { hkdfSha256 } from "../../src/crypto/hkdf";
import { cipherConformance } from "../conformance/cipher";
import { ctr as nobleCtr } from "@noble/ciphers/aes.js";
import type { Cipher } from "../../hal/types";
import { registerSuite } from "../lib/vitest-suite";

registerSuite(cipherConformance({ name: "softwareCipher (src/crypto/aes.ts, @noble/hashes HMAC)", make: () => softwareCipher }));

/**
 * The reference the issue names: @noble/ciphers' AES-CTR behind the same HAL (a dev dependency: the device
 * carries src/crypto/aes.ts instead, see there). The same suite holds both; a device's engine is a third `make`.
 */
const nobleCipher: Cipher = {
  aesCtr(key, iv, offset, data) {
    if (key.length !== 16 && key.length !== 32) throw new RangeError("key");
    if (iv.length !== 16) throw new RangeError("iv");
    if (!Number.isInteger(offset) || offset < 0 || offset > 0xffffffff) throw new RangeError("offset");
    if (data.length > 4096) throw new RangeError("data");
    const skip = offset % 16;
    const padded = new Uint8Array(skip + data.length);
    padded.set(data, skip);
    return nobleCtr(key, counterBlockAt(iv, offset)).encrypt(padded).slice(skip);
  },
  hmacSha256: softwareCipher.hmacSha256,
};
registerSuite(cipherConformance({ name: "@noble/ciphers AES-CTR (the reference)", make: () => nobleCipher }));

describe("softwareCipher against @noble/ciphers, random inputs", () => {
  it("AES-128/256-CTR at random offsets and ivs give noble's bytes", () => {
    for (let i = 0; i < 300; i++) {
      const key = randomBytes(i % 2 ? 32 : 16);
      const iv = randomBytes(16);
      if (i % 7 === 0) iv.fill(0xff, 4);
      const offset = randomBytes(3).readUIntLE(0, 3);
      const data = randomBytes((i * 97) % 600);
      expect(Buffer.from(softwareCipher.aesCtr(key, iv, offset, data)).toString("hex")).toBe(Buffer.from(nobleCipher.aesCtr(key, iv, offset, data)).toString("hex"));
    }
  });
});

describe("softwareCipher against OpenSSL (node:crypto), random inputs", () => {
  it("AES-128/256-CTR at random offsets, random ivs (carries included)", () => {
    for (let i = 0; i < 200; i++) {
      const key = randomBytes(i % 2 ? 32 : 16);
      const iv = randomBytes(16);
      if (i % 10 === 0) iv.fill(0xff, 8);
      const offset = randomBytes(2).readUInt16LE(0) * (i % 3 === 0 ? 16 : 1);
      const data = randomBytes(1 + (i * 37) % 300);
      const e = createCipheriv(key.length === 16 ? "aes-128-ctr" : "aes-256-ctr", key, iv);
      const stream = Buffer.concat([e.update(Buffer.alloc(offset + data.length)), e.final()]);
      const expected = Buffer.from(data.map((b, k) => b ^ stream[offset + k]));
      expect(Buffer.from(softwareCipher.aesCtr(key, iv, offset, data)).toString("hex")).toBe(expected.toString("hex"));
    }
  });
  it("HMAC-SHA-256 and HKDF-SHA-256 with random keys and lengths", () => {
    for (let i = 0; i < 100; i++) {
      const key = randomBytes(i % 65);
      const data = randomBytes((i * 53) % 1000);
      expect(Buffer.from(softwareCipher.hmacSha256(key, data)).toString("hex")).toBe(createHmac("sha256", key).update(data).digest("hex"));
      const ikm = randomBytes(32);
      const salt = i % 2 ? randomBytes(i % 60) : Buffer.alloc(0);
      const info = randomBytes(i % 40);
      const n = 1 + ((i * 13) % 96);
      expect(Buffer.from(hkdfSha256(softwareCipher, ikm, salt, info, n)).toString("hex")).toBe(Buffer.from(hkdfSync("sha256", ikm, salt, info, n)).toString("hex"));
    }
  });
  it("counterBlockAt adds floor(offset/16) to the 128-bit big-endian iv", () => {
    expect(Buffer.from(counterBlockAt(new Uint8Array(16), 16 * 0x01020304 + 7)).toString("hex")).toBe("00000000000000000000000001020304");
    expect(Buffer.from(counterBlockAt(new Uint8Array(16).fill(0xff), 16)).toString("hex")).toBe("00".repeat(16));
    expect(Buffer.from(counterBlockAt(Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? 0xf0 : 0)), 16 * 0x20)).toString("hex")).toBe("00".repeat(14) + "0110");
  });
});
