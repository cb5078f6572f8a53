/**
 * src/crypto: ECDSA P-256 verification (every malformed encoding is a reason
 * code, never a throw), public key validation, the keyring's key ids, and the
 * streaming hash helpers split at every point.
 */
import { createHash, createPublicKey, generateKeyPairSync, verify as cryptoVerify } from "node:crypto";
import { readFileSync } from "node:fs";
import { p256 as nobleNistP256 } from "@noble/curves/nist.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { decodeDerSignature, P256_N, P256_P, rawSignature, spkiOf } from "../../src/crypto/der";
import { verifyP256 } from "../../src/crypto/ecdsa";
import { P256_DOMAIN, p256 } from "../../src/crypto/p256";
import { HASH_CHUNK, hashFlashRange, sha256Of } from "../../src/crypto/hash";
import { createKeyring, Keyring, keyIdOf, MAX_KEYS } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { isOtaError, Reason } from "../../src/errors";
import { fromHex, toHex } from "../../src/util/bytes";
import { signerFromSecret } from "../../tools/keys/signer";

const vectors = JSON.parse(readFileSync(new URL("../vectors/ecdsa-p256-openssl.json", import.meta.url), "utf8")) as {
  publicKeySpkiDer: string;
  cases: { message: string; sha256: string; der: string; highS: boolean }[];
};
const openSslKey = fromHex(vectors.publicKeySpkiDer)!;

const key = signerFromSecret(fromHex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")!);
const digest = sha256(new TextEncoder().encode("sample"));
const goodDer = key.sign(digest);

function bigBytes(v: bigint, n = 32): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** DER SEQUENCE{INTEGER r, INTEGER s} from raw integer contents (no checks: builds bad ones too). */
function der(rBytes: Uint8Array, sBytes: Uint8Array): Uint8Array {
  const body = [0x02, rBytes.length, ...rBytes, 0x02, sBytes.length, ...sBytes];
  return Uint8Array.from([0x30, body.length, ...body]);
}

function minimal(v: bigint): Uint8Array {
  let b = bigBytes(v);
  let i = 0;
  while (i < 31 && b[i] === 0) i++;
  b = b.subarray(i);
  return b[0] & 0x80 ? Uint8Array.from([0, ...b]) : b;
}

const { r, s } = decodeDerSignature(goodDer)!;

describe("verifyP256", () => {
  it("accepts a good DER signature and its raw form, with SEC1 or SPKI keys", () => {
    expect(verifyP256(digest, goodDer, key.publicKey)).toBe(Reason.OK);
    expect(verifyP256(digest, goodDer, key.spki)).toBe(Reason.OK);
    expect(verifyP256(digest, rawSignature({ r, s }), key.publicKey, "raw")).toBe(Reason.OK);
  });

  it("accepts high-S signatures (OpenSSL and imgtool do not normalise s)", () => {
    const high = der(minimal(r), minimal(P256_N - s));
    expect(verifyP256(digest, high, key.publicKey)).toBe(Reason.OK);
  });

  it("verifies every OpenSSL-made vector (low-S and high-S) and refuses each over a different hash", () => {
    expect(vectors.cases.some((c) => c.highS) && vectors.cases.some((c) => !c.highS)).toBe(true);
    for (const c of vectors.cases) {
      const h = fromHex(c.sha256)!;
      expect(toHex(sha256(fromHex(c.message)!))).toBe(c.sha256);
      expect(verifyP256(h, fromHex(c.der)!, openSslKey)).toBe(Reason.OK);
      const other = Uint8Array.from(h);
      other[0] ^= 1;
      expect(verifyP256(other, fromHex(c.der)!, openSslKey)).toBe(Reason.SIGNATURE_INVALID);
    }
  });

  it("a well-formed signature over another digest, or by another key, is SIGNATURE_INVALID", () => {
    const other = sha256(new TextEncoder().encode("other"));
    expect(verifyP256(other, goodDer, key.publicKey)).toBe(Reason.SIGNATURE_INVALID);
    const k2 = signerFromSecret(bigBytes(12345n));
    expect(verifyP256(digest, goodDer, k2.publicKey)).toBe(Reason.SIGNATURE_INVALID);
  });

  const malformed: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["truncated", goodDer.subarray(0, goodDer.length - 1)],
    ["wrong outer tag", Uint8Array.from([0x31, ...goodDer.subarray(1)])],
    ["long-form length", Uint8Array.from([0x30, 0x81, goodDer[1], ...goodDer.subarray(2)]).subarray(0, 72)],
    ["sequence length too long", Uint8Array.from([0x30, goodDer[1] + 1, ...goodDer.subarray(2)])],
    ["non-zero trailing byte", Uint8Array.from([...goodDer, 0x01])],
    ["r = 0", der(Uint8Array.of(0), minimal(s))],
    ["s = 0", der(minimal(r), Uint8Array.of(0))],
    ["r = n", der(minimal(P256_N), minimal(s))],
    ["s = n", der(minimal(r), minimal(P256_N))],
    ["s = n + 1", der(minimal(r), minimal(P256_N + 1n))],
    ["negative r", der(Uint8Array.from([0x80, ...bigBytes(r).subarray(1)]), minimal(s))],
    ["non-minimal r (extra leading zero)", der(Uint8Array.from([0, 0, ...minimal(r)]), minimal(s))],
    ["r of 34 bytes", der(new Uint8Array(34).fill(1), minimal(s))],
    ["wrong integer tag", (() => { const d = Uint8Array.from(goodDer); d[2] = 0x03; return d; })()],
    ["73 bytes", new Uint8Array(73)],
    ["three integers", (() => { const a = der(minimal(r), minimal(s)); return Uint8Array.from([0x30, a[1] + 3, ...a.subarray(2), 2, 1, 1]); })()],
  ];
  for (const [name, sig] of malformed) {
    it(`DER ${name} → SIGNATURE_MALFORMED`, () => expect(verifyP256(digest, sig, key.publicKey)).toBe(Reason.SIGNATURE_MALFORMED));
  }

  it("accepts legacy zero padding up to 72 bytes (old imgtool pad_sig)", () => {
    const padded = new Uint8Array(72);
    padded.set(goodDer);
    expect(verifyP256(digest, padded, key.publicKey)).toBe(Reason.OK);
  });

  it("raw signatures: wrong length, r or s zero or >= n → SIGNATURE_MALFORMED", () => {
    const raw = rawSignature({ r, s });
    expect(verifyP256(digest, raw.subarray(0, 63), key.publicKey, "raw")).toBe(Reason.SIGNATURE_MALFORMED);
    expect(verifyP256(digest, Uint8Array.from([...raw, 0]), key.publicKey, "raw")).toBe(Reason.SIGNATURE_MALFORMED);
    expect(verifyP256(digest, Uint8Array.from([...bigBytes(0n), ...bigBytes(s)]), key.publicKey, "raw")).toBe(Reason.SIGNATURE_MALFORMED);
    expect(verifyP256(digest, Uint8Array.from([...bigBytes(r), ...bigBytes(P256_N)]), key.publicKey, "raw")).toBe(Reason.SIGNATURE_MALFORMED);
  });

  const badKeys: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["the point at infinity (0x00)", Uint8Array.of(0)],
    ["compressed form", p256.getPublicKey(bigBytes(7n), true)],
    ["wrong prefix", Uint8Array.from([0x05, ...key.publicKey.subarray(1)])],
    ["off the curve", (() => { const k = Uint8Array.from(key.publicKey); k[64] ^= 1; return k; })()],
    ["x = p (out of range)", Uint8Array.from([4, ...bigBytes(P256_P), ...key.publicKey.subarray(33)])],
    ["all zero coordinates", Uint8Array.from([4, ...new Uint8Array(64)])],
    ["SPKI with a wrong algorithm byte", (() => { const k = Uint8Array.from(key.spki); k[10] ^= 1; return k; })()],
    ["64 bytes", key.publicKey.subarray(1)],
  ];
  for (const [name, k] of badKeys) {
    it(`public key ${name} → KEY_INVALID`, () => expect(verifyP256(digest, goodDer, k)).toBe(Reason.KEY_INVALID));
  }

  it("throws only for misuse: a digest that is not 32 bytes, a non-Uint8Array", () => {
    expect(() => verifyP256(digest.subarray(1), goodDer, key.publicKey)).toThrow(RangeError);
    expect(() => verifyP256("x" as never, goodDer, key.publicKey)).toThrow(TypeError);
  });

  it("random garbage signatures and keys never throw", () => {
    let seed = 1;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let i = 0; i < 300; i++) {
      const sig = Uint8Array.from({ length: rnd() % 80 }, rnd);
      if (i % 2) sig[0] = 0x30;
      if (i % 3 === 0 && sig.length > 1) sig[1] = sig.length - 2;
      const k = i % 5 === 0 ? Uint8Array.from({ length: 65 }, rnd) : key.publicKey;
      expect([Reason.SIGNATURE_MALFORMED, Reason.KEY_INVALID, Reason.SIGNATURE_INVALID]).toContain(verifyP256(digest, sig, k));
    }
  });
});

describe("the P-256 table (src/crypto/p256, instead of @noble/curves/nist.js)", () => {
  it("has exactly the domain parameters of noble's nist P-256", () => {
    const theirs = nobleNistP256.Point.CURVE();
    const ours = p256.Point.CURVE();
    for (const k of ["p", "n", "h", "a", "b", "Gx", "Gy"] as const) {
      expect(P256_DOMAIN[k], k).toBe(theirs[k]);
      expect(ours[k], k).toBe(theirs[k]);
    }
    expect(P256_DOMAIN.a).toBe(P256_DOMAIN.p - 3n);
    expect(Object.isFrozen(P256_DOMAIN)).toBe(true);
  });

  it("G is on the curve and has order n", () => {
    const { p, a, b, Gx, Gy, n } = P256_DOMAIN;
    expect((Gy * Gy - (Gx * Gx * Gx + a * Gx + b)) % p).toBe(0n);
    // (n − 1)·G = −G, so n·G is the identity.
    expect(p256.Point.BASE.multiply(n - 1n).equals(p256.Point.BASE.negate())).toBe(true);
    expect(p256.Point.BASE.multiply(n - 1n).add(p256.Point.BASE).is0()).toBe(true);
  });

  it("signs and derives keys exactly as noble's nist P-256, and each verifies the other's signatures", () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let i = 0; i < 12; i++) {
      const secret = Uint8Array.from({ length: 32 }, rnd);
      secret[0] &= 0x7f; // below n
      const h = Uint8Array.from({ length: 32 }, rnd);
      expect(toHex(p256.getPublicKey(secret, false))).toBe(toHex(nobleNistP256.getPublicKey(secret, false)));
      const ours = p256.sign(h, secret, { prehash: false, format: "der" });
      expect(toHex(ours)).toBe(toHex(nobleNistP256.sign(h, secret, { prehash: false, format: "der" }))); // RFC 6979: deterministic
      const point = p256.getPublicKey(secret, false);
      expect(verifyP256(h, ours, point)).toBe(Reason.OK);
      expect(nobleNistP256.verify(ours, h, point, { prehash: false, format: "der" })).toBe(true);
    }
  });

  it("a signature made with it verifies in node:crypto (OpenSSL), over the message", () => {
    const message = new TextEncoder().encode("xs-ota p256 cross-check");
    const sig = key.sign(sha256(message));
    const nodeKey = createPublicKey({ key: Buffer.from(key.spki), format: "der", type: "spki" });
    expect(cryptoVerify("sha256", message, nodeKey, sig)).toBe(true);
  });
});

describe("keyring", () => {
  it("the key id is SHA-256 of the DER SubjectPublicKeyInfo (what imgtool puts in KEYHASH)", () => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const spki = new Uint8Array(publicKey.export({ format: "der", type: "spki" }));
    const jwk = publicKey.export({ format: "jwk" });
    const point = Uint8Array.from([4, ...Buffer.from(jwk.x!, "base64url"), ...Buffer.from(jwk.y!, "base64url")]);
    const want = createHash("sha256").update(spki).digest("hex");
    expect(toHex(keyIdOf(spki, softwareDigest))).toBe(want);
    expect(toHex(keyIdOf(point, softwareDigest))).toBe(want);
    expect(toHex(spkiOf(point))).toBe(toHex(spki));
  });

  it("finds trusted keys by id and nothing else", () => {
    const a = signerFromSecret(bigBytes(1111n));
    const b = signerFromSecret(bigBytes(2222n));
    const ring = createKeyring([a.spki, b.publicKey], softwareDigest);
    expect(ring.size).toBe(2);
    expect(ring.find(a.keyId)?.publicKey).toEqual(a.publicKey);
    expect(ring.find(b.keyId)?.publicKey).toEqual(b.publicKey);
    expect(ring.find(signerFromSecret(bigBytes(3333n)).keyId)).toBeUndefined();
    expect(ring.find(a.keyId.subarray(0, 31))).toBeUndefined();
    ring.add(a.publicKey);
    expect(ring.size).toBe(2);
  });

  it("refuses invalid keys with KEY_INVALID and holds at most MAX_KEYS", () => {
    const ring = new Keyring(softwareDigest);
    expect(() => ring.add(Uint8Array.of(0))).toThrow(expect.objectContaining({ code: Reason.KEY_INVALID }));
    for (let i = 1; i <= MAX_KEYS; i++) ring.add(signerFromSecret(bigBytes(BigInt(i))).publicKey);
    let err: unknown;
    try {
      ring.add(signerFromSecret(bigBytes(999n)).publicKey);
    } catch (e) {
      err = e;
    }
    expect(isOtaError(err, Reason.BAD_ARGUMENT)).toBe(true);
  });

  it("accepts a public key as openssl writes it (SPKI from the vectors)", () => {
    const pem = createPublicKey({ key: Buffer.from(openSslKey), format: "der", type: "spki" });
    expect(pem.asymmetricKeyType).toBe("ec");
    expect(createKeyring([openSslKey], softwareDigest).size).toBe(1);
  });
});

describe("hash helpers, split at every point", () => {
  const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 31 + 7) & 0xff);
  const want = toHex(sha256(data));

  it("softwareDigest: update split at every point (and in three parts) equals one shot", () => {
    for (let i = 0; i <= data.length; i++) {
      const h = softwareDigest.sha256();
      h.update(data.subarray(0, i));
      h.update(data.subarray(i));
      expect(toHex(h.finish())).toBe(want);
    }
    for (let i = 0; i <= data.length; i += 7) {
      for (let j = i; j <= data.length; j += 13) {
        expect(toHex(sha256Of(softwareDigest, data.subarray(0, i), data.subarray(i, j), data.subarray(j)))).toBe(want);
      }
    }
  });

  it("softwareDigest streams refuse misuse", () => {
    const h = softwareDigest.sha256();
    h.finish();
    expect(() => h.update(data)).toThrow();
    expect(() => h.finish()).toThrow();
  });

  it("hashFlashRange: every chunk size and every start offset equals the one-shot hash, reads bounded", () => {
    const flash = new NorFlash({ size: 4096, blockLength: 4096, writeAlign: 4 });
    flash.eraseBlock(0);
    const content = Uint8Array.from({ length: 4096 }, (_, i) => (i * 131 + 3) & 0xff);
    flash.write(content, 0);
    for (let chunk = 1; chunk <= 301; chunk += 1) {
      expect(toHex(hashFlashRange(flash, softwareDigest, 0, 300, chunk))).toBe(toHex(sha256(content.subarray(0, 300))));
    }
    for (let start = 0; start <= 300; start++) {
      expect(toHex(hashFlashRange(flash, softwareDigest, start, 300 - start, 64))).toBe(toHex(sha256(content.subarray(start, 300))));
    }
    const before = flash.stats.reads;
    hashFlashRange(flash, softwareDigest, 0, 4096);
    expect(flash.stats.reads - before).toBe(4096 / HASH_CHUNK);
    expect(() => hashFlashRange(flash, softwareDigest, 0, 10, 0)).toThrow(RangeError);
    expect(() => hashFlashRange(flash, softwareDigest, 0, 10, 4097)).toThrow(RangeError);
  });
});
