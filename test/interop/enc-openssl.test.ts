/**
 * Interop for encrypted images with an independent peer, the openssl CLI
 * (imgtool is not in CI; the by-hand imgtool checks are in the README):
 *
 * - openssl decrypts an image `xs-ota sign --encrypt` made: ECDH with
 *   `pkeyutl -derive`, HKDF with `openssl kdf`, the tag with `openssl mac`, the
 *   key and the body with `openssl enc -aes-*-ctr`; the plaintext is the
 *   firmware, and `openssl dgst -sha256` over header + plaintext + protected
 *   TLVs is the image's SHA256 TLV;
 * - openssl encrypts (a fresh openssl ephemeral key and image key wrapping the
 *   same plaintext), and the device's decoder unwraps it and writes a slot
 *   image that passes MCUboot's checks.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";
import { softwareCipher } from "../../src/crypto/cipher";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { TLV_ENC, unwrapImageKey } from "../../src/image/enc";
import { EncryptedImageDecoder, encryptedLayout } from "../../src/image/enc-stream";
import { imageSignatureChecker } from "../../src/image/signature";
import { verifyImage } from "../../src/image/verify";
import { BytesFlash } from "../../tools/image/bytes-flash";
import { readDecryptionKey } from "../../tools/image/enc-keys";
import { readPublicKey } from "../../tools/keys/pem";

let dir: string;
const p = (name: string) => join(dir, name);
const SPKI_P256_PREFIX = Buffer.from("3059301306072a8648ce3d020106082a8648ce3d030107034200", "hex");

function ok(args: string[]): Buffer {
  const r = spawnSync("openssl", args, { cwd: dir, timeout: 60_000 });
  if (r.error) throw new Error(`openssl is missing (${r.error.message}): install it (.ci/run)`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr.toString()}`);
  return r.stdout;
}

function tlvs(image: Buffer, from: number): Map<number, { at: number; value: Buffer }> {
  const out = new Map<number, { at: number; value: Buffer }>();
  const end = from + image.readUInt16LE(from + 2);
  for (let at = from + 4; at < end; ) {
    const type = image.readUInt16LE(at);
    const len = image.readUInt16LE(at + 2);
    out.set(type, { at: at + 4, value: image.subarray(at + 4, at + 4 + len) });
    at += 4 + len;
  }
  return out;
}

/** ECIES-P256 as MCUboot specifies it, every step an openssl command: derive, HKDF, HMAC check, unwrap. */
function opensslUnwrap(privPem: string, enc: Buffer): Buffer {
  const n = enc.length - 97;
  writeFileSync(p("eph.der"), Buffer.concat([SPKI_P256_PREFIX, enc.subarray(0, 65)]));
  const shared = ok(["pkeyutl", "-derive", "-inkey", privPem, "-peerkey", "eph.der", "-peerform", "DER"]);
  const derived = ok(["kdf", "-binary", "-keylen", String(n + 32), "-kdfopt", "digest:SHA256", "-kdfopt", `hexkey:${shared.toString("hex")}`, "-kdfopt", "info:MCUBoot_ECIES_v1", "HKDF"]);
  writeFileSync(p("wrapped.bin"), enc.subarray(97));
  const tag = ok(["mac", "-binary", "-digest", "SHA256", "-macopt", `hexkey:${derived.subarray(n).toString("hex")}`, "-in", "wrapped.bin", "HMAC"]);
  expect(tag.toString("hex")).toBe(enc.subarray(65, 97).toString("hex"));
  return ok(["enc", "-d", `-aes-${n * 8}-ctr`, "-K", derived.subarray(0, n).toString("hex"), "-iv", "00".repeat(16), "-in", "wrapped.bin"]);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-enc-openssl-"));
  ok(["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", p("device.pem")]);
  ok(["ec", "-in", p("device.pem"), "-pubout", "-out", p("device.pub.pem")]);
  ok(["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", p("sign.pem")]);
  ok(["ec", "-in", p("sign.pem"), "-pubout", "-out", p("sign.pub.pem")]);
  writeFileSync(p("app.bin"), Buffer.from(Array.from({ length: 20_011 }, (_, i) => (i * 131 + (i >> 7)) & 0xff)));
});

describe("encrypted images against the openssl CLI", () => {
  for (const bits of [128, 256]) {
    it(`AES-${bits}: openssl decrypts an image xs-ota sign --encrypt made; then openssl re-encrypts it and the device's decoder installs that`, () => {
      const signed = xsOta(["sign", "-k", p("sign.pem"), "-v", "2.0.1+7", "-s", "9", "--pad-header", "--encrypt", p("device.pub.pem"), "--encrypt-keylen", String(bits), p("app.bin"), p(`enc${bits}.img`)]);
      expect(signed.status, signed.stderr).toBe(0);
      const image = readFileSync(p(`enc${bits}.img`));
      const L = encryptedLayout(image.subarray(0, 32));
      const area = tlvs(image, L.tlvStart);
      const enc = area.get(TLV_ENC.EC256)!.value;

      // 1. openssl decrypts ours
      const key = opensslUnwrap(p("device.pem"), enc);
      expect(key.length).toBe(bits / 8);
      writeFileSync(p("body.bin"), image.subarray(L.bodyStart, L.bodyEnd));
      const plain = ok(["enc", "-d", `-aes-${bits}-ctr`, "-K", key.toString("hex"), "-iv", "00".repeat(16), "-in", "body.bin"]);
      expect(plain.subarray(0, 20_011).equals(readFileSync(p("app.bin")))).toBe(true);
      expect(plain.subarray(20_011).equals(Buffer.alloc(plain.length - 20_011))).toBe(true);
      const clear = Buffer.from(image);
      plain.copy(clear, L.bodyStart);
      writeFileSync(p("hashed.bin"), clear.subarray(0, L.tlvStart));
      const digest = ok(["dgst", "-sha256", "-binary", "hashed.bin"]);
      expect(digest.toString("hex")).toBe(area.get(0x10)!.value.toString("hex"));

      // 2. openssl encrypts: its own ephemeral key and image key, the same plaintext and TLVs
      ok(["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", p("eph.pem")]);
      const ephPoint = ok(["ec", "-in", p("eph.pem"), "-pubout", "-outform", "DER"]).subarray(-65);
      const shared = ok(["pkeyutl", "-derive", "-inkey", p("eph.pem"), "-peerkey", p("device.pub.pem")]);
      const n = bits / 8;
      const derived = ok(["kdf", "-binary", "-keylen", String(n + 32), "-kdfopt", "digest:SHA256", "-kdfopt", `hexkey:${shared.toString("hex")}`, "-kdfopt", "info:MCUBoot_ECIES_v1", "HKDF"]);
      const imageKey = ok(["rand", String(n)]);
      writeFileSync(p("key.bin"), imageKey);
      const wrapped = ok(["enc", `-aes-${bits}-ctr`, "-K", derived.subarray(0, n).toString("hex"), "-iv", "00".repeat(16), "-in", "key.bin"]);
      writeFileSync(p("wrapped2.bin"), wrapped);
      const tag = ok(["mac", "-binary", "-digest", "SHA256", "-macopt", `hexkey:${derived.subarray(n).toString("hex")}`, "-in", "wrapped2.bin", "HMAC"]);
      writeFileSync(p("plain.bin"), plain);
      const body = ok(["enc", `-aes-${bits}-ctr`, "-K", imageKey.toString("hex"), "-iv", "00".repeat(16), "-in", "plain.bin"]);
      const theirs = Buffer.from(image);
      body.copy(theirs, L.bodyStart);
      const newEnc = Buffer.concat([ephPoint, tag, wrapped]);
      newEnc.copy(theirs, area.get(TLV_ENC.EC256)!.at);

      // the device: unwrap with its key, decode in 1 KiB pieces, check the slot image as MCUboot will
      const secret = readDecryptionKey(p("device.pem"));
      const k = unwrapImageKey(softwareCipher, secret, newEnc, n as 16 | 32);
      expect(Buffer.from(k).equals(imageKey)).toBe(true);
      const dec = new EncryptedImageDecoder(softwareCipher, k, 0, undefined, newEnc);
      const parts: Uint8Array[] = [];
      for (let at = 0; at < theirs.length; at += 1024) parts.push(dec.push(theirs.subarray(at, at + 1024)));
      parts.push(dec.finish());
      const slot = Buffer.concat(parts);
      const keyring = createKeyring([readPublicKey(p("sign.pem"))], softwareDigest);
      const r = verifyImage(new BytesFlash(slot), { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
      expect(r.ok).toBe(true);
      expect(slot.readUInt32LE(16)).toBe(0);
      expect(slot.subarray(L.bodyStart, L.bodyStart + 20_011).equals(readFileSync(p("app.bin")))).toBe(true);
      // and the CLI agrees
      writeFileSync(p(`theirs${bits}.img`), theirs);
      const v = xsOta(["verify", "-k", p("sign.pub.pem"), "--decrypt-key", p("device.pem"), p(`theirs${bits}.img`)]);
      expect(v.status, v.stdout + v.stderr).toBe(0);
    });
  }
});
