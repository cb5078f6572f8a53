/**
 * Encrypted MCUboot images: imgtool's ENC_EC256 scheme checked against an
 * independent implementation on node:crypto (OpenSSL), the slot image that
 * direct-xip boots, the streaming decoder split at every point and resumed,
 * and the tamper matrix of the ENC TLV.
 */
import { createCipheriv, createECDH, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { softwareCipher } from "../../src/crypto/cipher";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { OtaError, Reason, reasonName } from "../../src/errors";
import { IMAGE_F_ENCRYPTED_AES128, IMAGE_F_ENCRYPTED_AES256, TLV_ENC, unwrapImageKey, parseEncEc256 } from "../../src/image/enc";
import { EncryptedImageDecoder, decryptImageBytes, encryptedLayout } from "../../src/image/enc-stream";
import { parseImageHeader, parseVersion } from "../../src/image/format";
import { imageSignatureChecker } from "../../src/image/signature";
import { scanImage, verifyImage } from "../../src/image/verify";
import { BytesFlash } from "../../tools/image/bytes-flash";
import { signImageParts } from "../../tools/image/sign";
import { signerFromSecret } from "../../tools/keys/signer";
import { p256 } from "../../src/crypto/p256";

const signer = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));
const deviceSecret = Uint8Array.from({ length: 32 }, (_, i) => (i * 11 + 5) & 0xff);
const devicePublic = p256.getPublicKey(deviceSecret, false);
const otherSecret = Uint8Array.from({ length: 32 }, (_, i) => (i * 13 + 9) & 0xff);
const keyring = createKeyring([signer.publicKey], softwareDigest);
const random = (n: number) => new Uint8Array(randomBytes(n));

function firmware(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function makeEncrypted(keyLength: 16 | 32, size = 5000, securityCounter: number | undefined = 3) {
  return signImageParts({
    input: firmware(size),
    version: parseVersion("1.2.3+4"),
    securityCounter,
    padHeader: true,
    signer,
    encrypt: { recipient: devicePublic, keyLength, random, cipher: softwareCipher },
  });
}

/** An independent ECIES-P256 unwrap on node:crypto, following MCUboot docs/encrypted_images.md. */
function nodeUnwrap(secret: Uint8Array, enc: Uint8Array): Buffer {
  const n = enc.length - 97;
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(Buffer.from(secret));
  const shared = ecdh.computeSecret(Buffer.from(enc.subarray(0, 65)));
  const derived = Buffer.from(hkdfSync("sha256", shared, Buffer.alloc(0), Buffer.from("MCUBoot_ECIES_v1"), n + 32));
  const tag = createHmac("sha256", derived.subarray(n)).update(enc.subarray(97)).digest();
  expect(tag.equals(Buffer.from(enc.subarray(65, 97)))).toBe(true);
  const d = createCipheriv(n === 16 ? "aes-128-ctr" : "aes-256-ctr", derived.subarray(0, n), Buffer.alloc(16));
  return Buffer.concat([d.update(enc.subarray(97)), d.final()]);
}

describe("encrypted images: imgtool's layout", () => {
  for (const keyLength of [16, 32] as const) {
    it(`AES-${keyLength * 8}: flag, padded body, ENC_EC256 of ${65 + 32 + keyLength} bytes; an independent unwrap (node:crypto) decrypts the body to the firmware`, () => {
      const { image, slotImage, enc } = makeEncrypted(keyLength);
      const h = parseImageHeader(image);
      expect(h.flags).toBe(keyLength === 16 ? IMAGE_F_ENCRYPTED_AES128 : IMAGE_F_ENCRYPTED_AES256);
      expect(h.imgSize % 16).toBe(0);
      expect(h.imgSize).toBe(5008);
      expect(enc!.length).toBe(97 + keyLength);
      const key = nodeUnwrap(deviceSecret, enc!);
      const d = createCipheriv(keyLength === 16 ? "aes-128-ctr" : "aes-256-ctr", key, Buffer.alloc(16));
      const body = Buffer.concat([d.update(image.subarray(h.hdrSize, h.hdrSize + h.imgSize)), d.final()]);
      expect(body.subarray(0, 5000).equals(Buffer.from(firmware(5000)))).toBe(true);
      expect(body.subarray(5000).equals(Buffer.alloc(8))).toBe(true);
      // the ciphertext is not the plaintext
      expect(Buffer.from(image.subarray(h.hdrSize, h.hdrSize + 64)).equals(Buffer.from(firmware(64)))).toBe(false);
      // our unwrap gives the same key
      expect(Buffer.from(unwrapImageKey(softwareCipher, deviceSecret, enc!, keyLength)).equals(key)).toBe(true);
      // the slot image: the flag cleared, the plaintext, its own signature
      const slot = verifyImage(new BytesFlash(slotImage!), { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
      expect(slot.ok).toBe(true);
      expect(parseImageHeader(slotImage!).flags).toBe(0);
      expect(slot.ok && slot.info.securityCounter).toBe(3);
    });
  }

  it("the decrypted image as imgtool --clear writes it (flag kept) passes MCUboot's hash and signature check; the ciphertext does not", () => {
    const { image, enc } = makeEncrypted(32);
    const key = unwrapImageKey(softwareCipher, deviceSecret, enc!);
    const { clearImage, slotImage } = decryptImageBytes(softwareCipher, key, image);
    const check = { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) };
    expect(verifyImage(new BytesFlash(clearImage), check).ok).toBe(true);
    const raw = verifyImage(new BytesFlash(image), check);
    expect(raw.ok ? "OK" : reasonName(raw.reason)).toBe("IMAGE_HASH_MISMATCH");
    expect(verifyImage(new BytesFlash(slotImage!), check).ok).toBe(true);
  });

  it("the streaming decoder, fed in pieces split at every 7th point of the first 700 bytes and in 1..97-byte pieces, writes exactly the slot image", () => {
    const { image, slotImage, enc } = makeEncrypted(16, 1200);
    const key = unwrapImageKey(softwareCipher, deviceSecret, enc!);
    // the decoder returns the slot bytes in order (the header once its 32 bytes are in), then the TLV area
    const run = (sizes: (i: number) => number) => {
      const dec = new EncryptedImageDecoder(softwareCipher, key, 0, undefined, enc!);
      const out = new Uint8Array(slotImage!.length);
      let written = 0;
      for (let i = 0, at = 0; at < image.length; i++) {
        const piece = image.subarray(at, Math.min(image.length, at + sizes(i)));
        const w = dec.push(piece);
        out.set(w, written);
        written += w.length;
        at += piece.length;
      }
      expect(written).toBe(dec.layout!.tlvStart);
      out.set(dec.finish(), written);
      return out;
    };
    for (let cut = 1; cut < 700; cut += 7) {
      expect(Buffer.from(run((i) => (i === 0 ? cut : 4096))).equals(Buffer.from(slotImage!))).toBe(true);
    }
    expect(Buffer.from(run((i) => 1 + ((i * 31) % 97))).equals(Buffer.from(slotImage!))).toBe(true);
  });

  it("resumed at any 16-byte-aligned and unaligned offset below the TLV area with the held header, the decoder goes on exactly", () => {
    const { image, slotImage, enc } = makeEncrypted(32, 3000);
    const key = unwrapImageKey(softwareCipher, deviceSecret, enc!);
    const layout = encryptedLayout(image.subarray(0, 32));
    const held = slotImage!.subarray(0, 32);
    for (const from of [32, 100, layout.bodyStart, layout.bodyStart + 1, layout.bodyStart + 17, 2049, layout.bodyEnd - 3, layout.tlvStart]) {
      const dec = new EncryptedImageDecoder(softwareCipher, key, from, held, enc!);
      const w = dec.push(image.subarray(from));
      expect(Buffer.from(w).equals(Buffer.from(slotImage!.subarray(from, layout.tlvStart))), `from ${from}`).toBe(true);
      expect(Buffer.from(dec.finish()).equals(Buffer.from(slotImage!.subarray(layout.tlvStart)))).toBe(true);
    }
  });
});

describe("encrypted images: the caller's buffers", () => {
  it("the decoder and decryptImageBytes never write into the input, a Node Buffer included (its slice is a view)", () => {
    const { image, enc } = makeEncrypted(32, 9000);
    const key = unwrapImageKey(softwareCipher, deviceSecret, enc!);
    const input = Buffer.from(image);
    const before = Buffer.from(input);
    const dec = new EncryptedImageDecoder(softwareCipher, key, 0, undefined, enc!);
    for (let at = 0; at < input.length; at += 1000) dec.push(input.subarray(at, at + 1000));
    dec.finish();
    decryptImageBytes(softwareCipher, key, input);
    expect(input.equals(before)).toBe(true);
  });
});

describe("encrypted images: refusals", () => {
  it("a release encrypted for another device's key is refused at the unwrap (ENC_KEY_UNWRAP), before any byte is decrypted", () => {
    const { enc } = makeEncrypted(32);
    expect(() => unwrapImageKey(softwareCipher, otherSecret, enc!)).toThrow(expect.objectContaining({ code: Reason.ENC_KEY_UNWRAP }));
  });

  it("every byte of the ENC_EC256 TLV changed is refused with a reason code (ephemeral key, tag, wrapped key)", () => {
    for (const keyLength of [16, 32] as const) {
      const { enc } = makeEncrypted(keyLength, 100);
      const seen: { [r: string]: number } = {};
      for (let i = 0; i < enc!.length; i++) {
        for (const x of [0x01, 0x80]) {
          const bad = enc!.slice();
          bad[i] ^= x;
          let code = "accepted";
          try {
            unwrapImageKey(softwareCipher, deviceSecret, bad, keyLength);
          } catch (e) {
            expect(e).toBeInstanceOf(OtaError);
            code = reasonName((e as OtaError).code);
          }
          seen[code] = (seen[code] ?? 0) + 1;
          if (i >= 65) expect(code, `byte ${i}`).toBe("ENC_KEY_UNWRAP");
          else expect(["ENC_BAD_EPHEMERAL", "ENC_KEY_UNWRAP"], `byte ${i}`).toContain(code);
        }
      }
      expect(seen.accepted).toBeUndefined();
      expect(seen.ENC_BAD_EPHEMERAL).toBeGreaterThan(0);
    }
  });

  it("wrong lengths and schemes: ENC_MALFORMED, ENC_UNSUPPORTED, ENC_BAD_KEY", () => {
    const { enc, image } = makeEncrypted(16, 100);
    const code = (f: () => unknown) => {
      try {
        f();
        return "accepted";
      } catch (e) {
        return reasonName((e as OtaError).code);
      }
    };
    expect(code(() => parseEncEc256(enc!.subarray(0, 112)))).toBe("ENC_MALFORMED");
    expect(code(() => unwrapImageKey(softwareCipher, deviceSecret, enc!, 32))).toBe("ENC_UNSUPPORTED");
    expect(code(() => unwrapImageKey(softwareCipher, new Uint8Array(32), enc!))).toBe("ENC_BAD_KEY");
    expect(code(() => unwrapImageKey(softwareCipher, new Uint8Array(31), enc!))).toBe("ENC_BAD_KEY");
    // both flags set
    const both = image.slice(0, 32);
    both[16] |= 0x0c;
    expect(code(() => encryptedLayout(both))).toBe("ENC_MALFORMED");
    // not encrypted at all
    const plain = image.slice(0, 32);
    plain[16] &= ~0x0c;
    expect(code(() => encryptedLayout(plain))).toBe("ENC_MALFORMED");
    expect(TLV_ENC.EC256).toBe(0x32);
  });

  it("an image without the slot TLVs (imgtool's own output) is refused at the end: ENC_NO_SLOT_TLVS; a swapped ENC TLV: ENC_MISMATCH", () => {
    const imgtoolLike = signImageParts({
      input: firmware(300),
      version: parseVersion("1.0.0"),
      padHeader: true,
      signer,
      encrypt: { recipient: devicePublic, keyLength: 16, random, cipher: softwareCipher, slotTlvs: false },
    });
    const key = unwrapImageKey(softwareCipher, deviceSecret, imgtoolLike.enc!);
    const dec = new EncryptedImageDecoder(softwareCipher, key, 0, undefined, imgtoolLike.enc!);
    dec.push(imgtoolLike.image);
    expect(() => dec.finish()).toThrow(expect.objectContaining({ code: Reason.ENC_NO_SLOT_TLVS }));
    const other = makeEncrypted(16, 300);
    const dec2 = new EncryptedImageDecoder(softwareCipher, key, 0, undefined, imgtoolLike.enc!);
    for (let o = 0; o < other.image.length; o += 4096) dec2.push(other.image.subarray(o, o + 4096));
    expect(() => dec2.finish()).toThrow(expect.objectContaining({ code: Reason.ENC_MISMATCH }));
  });
});
