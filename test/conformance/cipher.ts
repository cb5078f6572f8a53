/**
 * Conformance suite for the `Cipher` HAL (AES-CTR, HMAC-SHA-256) and HKDF
 * over it: NIST SP 800-38A, RFC 4231 and RFC 5869 vectors, the keystream at
 * every offset (what a resumed decryption needs), every split of a stream,
 * and the precondition checks. Portable: runs under vitest and inside XS, and
 * against any implementation (`make`), a device's crypto engine included.
 */
import type { Cipher } from "../../hal/types";
import { hkdfSha256 } from "../../src/crypto/hkdf";
import { fromHex, toHex } from "../../src/util/bytes";
import { assert, suite, type Suite } from "../lib/spec";
import vectors from "../vectors/cipher.json";

const hex = (s: string): Uint8Array => {
  const b = fromHex(s);
  if (!b) throw new Error(`bad hex in vectors: ${s}`);
  return b;
};

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 16;
  }
  return b;
}

export function cipherConformance(o: { name: string; make: () => Cipher }): Suite {
  return suite(`Cipher conformance: ${o.name}`, (it) => {
    for (const v of vectors.aesCtr) {
      it(`AES-CTR ${v.name}: encrypts and decrypts`, () => {
        const c = o.make();
        assert.equal(toHex(c.aesCtr(hex(v.key), hex(v.iv), 0, hex(v.plaintext))), v.ciphertext);
        assert.equal(toHex(c.aesCtr(hex(v.key), hex(v.iv), 0, hex(v.ciphertext))), v.plaintext);
      });
      it(`AES-CTR ${v.name}: from every byte offset, as if resumed there`, () => {
        const c = o.make();
        const pt = hex(v.plaintext);
        const ct = hex(v.ciphertext);
        for (let off = 0; off < pt.length; off++) {
          for (const n of [1, 3, 16, 17]) {
            const end = Math.min(pt.length, off + n);
            assert.bytes(c.aesCtr(hex(v.key), hex(v.iv), off, pt.subarray(off, end)), ct.subarray(off, end), `offset ${off} length ${end - off}`);
          }
        }
      });
    }
    it("AES-CTR: a 4 KiB stream split at every point equals the one-shot result", () => {
      const c = o.make();
      const key = pattern(32, 1);
      const iv = new Uint8Array(16);
      const data = pattern(4096, 2);
      const whole = c.aesCtr(key, iv, 0, data);
      for (let cut = 0; cut <= 200; cut++) {
        const a = c.aesCtr(key, iv, 0, data.subarray(0, cut));
        const b = c.aesCtr(key, iv, cut, data.subarray(cut, 400));
        assert.bytes(a, whole.subarray(0, cut), `first part, cut ${cut}`);
        assert.bytes(b, whole.subarray(cut, 400), `second part, cut ${cut}`);
      }
    });
    it("AES-CTR: the counter carries across bytes (iv ff..ff wraps to 00..00)", () => {
      const c = o.make();
      const key = pattern(16, 3);
      const ivMax = new Uint8Array(16).fill(0xff);
      const zero = new Uint8Array(16);
      const data = pattern(48, 4);
      // block 1 of the ff..ff stream is block 0 of the 00..00 stream
      assert.bytes(c.aesCtr(key, ivMax, 16, data.subarray(0, 32)), c.aesCtr(key, zero, 0, data.subarray(0, 32)));
      // a counter that carries through the low 32 bits (MCUboot's nonce bytes 12..15)
      const iv = fromHex("000000000000000000000000ffffffff")!;
      const next = fromHex("00000000000000000000000100000000")!;
      assert.bytes(c.aesCtr(key, iv, 16, data.subarray(0, 16)), c.aesCtr(key, next, 0, data.subarray(0, 16)));
    });
    it("AES-CTR: a high offset (1 GiB) equals the counter block it names", () => {
      const c = o.make();
      const key = pattern(32, 5);
      const iv = new Uint8Array(16);
      const at = fromHex("00000000000000000000000004000000")!; // 2^30 / 16
      const data = pattern(40, 6);
      assert.bytes(c.aesCtr(key, iv, 2 ** 30 + 5, data), c.aesCtr(key, at, 5, data));
    });
    it("AES-CTR: the same input under AES-128 and AES-256 differs, and empty input gives empty output", () => {
      const c = o.make();
      const data = pattern(32, 7);
      const iv = new Uint8Array(16);
      assert.ok(toHex(c.aesCtr(pattern(16, 8), iv, 0, data)) !== toHex(c.aesCtr(pattern(32, 8), iv, 0, data)));
      assert.equal(c.aesCtr(pattern(16, 8), iv, 0, new Uint8Array(0)).length, 0);
    });
    it("AES-CTR: refuses a wrong key or iv length, a bad offset, more than 4 KiB; does not alter its input", () => {
      const c = o.make();
      const iv = new Uint8Array(16);
      const data = pattern(64, 9);
      const copy = data.slice();
      c.aesCtr(pattern(16, 1), iv, 0, data);
      assert.bytes(data, copy, "input untouched");
      for (const k of [0, 15, 24, 33]) assert.throws(() => c.aesCtr(new Uint8Array(k), iv, 0, data), (e) => e instanceof RangeError, `key of ${k} bytes`);
      assert.throws(() => c.aesCtr(pattern(16, 1), new Uint8Array(12), 0, data), (e) => e instanceof RangeError, "12-byte iv");
      for (const off of [-1, 0.5, 2 ** 32]) assert.throws(() => c.aesCtr(pattern(16, 1), iv, off, data), (e) => e instanceof RangeError, `offset ${off}`);
      assert.throws(() => c.aesCtr(pattern(16, 1), iv, 0, new Uint8Array(4097)), (e) => e instanceof RangeError, "4097 bytes");
    });
    for (const v of vectors.hmacSha256) {
      it(`HMAC-SHA-256 ${v.name}, whole and in parts`, () => {
        const c = o.make();
        const data = hex(v.data);
        assert.equal(toHex(c.hmacSha256(hex(v.key), data)), v.mac);
        for (let cut = 0; cut <= data.length; cut++) {
          assert.equal(toHex(c.hmacSha256(hex(v.key), data.subarray(0, cut), data.subarray(cut))), v.mac, `split at ${cut}`);
        }
      });
    }
    it("HMAC-SHA-256: refuses a key over 64 bytes and more than 4 KiB of input", () => {
      const c = o.make();
      assert.throws(() => c.hmacSha256(new Uint8Array(65), new Uint8Array(1)), (e) => e instanceof RangeError, "65-byte key");
      assert.throws(() => c.hmacSha256(new Uint8Array(32), new Uint8Array(4000), new Uint8Array(97)), (e) => e instanceof RangeError, "4097 bytes");
    });
    for (const v of vectors.hkdfSha256) {
      it(`HKDF-SHA-256 over this HMAC: ${v.name}`, () => {
        const c = o.make();
        const okm = hkdfSha256(c, hex(v.ikm), v.salt ? hex(v.salt) : undefined, v.info ? hex(v.info) : new Uint8Array(0), v.length);
        assert.equal(toHex(okm), v.okm);
        // a prefix of the output is the output of the shorter length
        assert.equal(toHex(hkdfSha256(c, hex(v.ikm), v.salt ? hex(v.salt) : undefined, v.info ? hex(v.info) : new Uint8Array(0), 20)), v.okm.slice(0, 40));
      });
    }
  });
}
