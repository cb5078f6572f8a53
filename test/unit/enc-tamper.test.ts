/**
 * Tampering with an encrypted image, byte by byte, as the device meets it
 * when no payload hash protects it (a resumed download hashes only what it
 * fetched after the resume): every byte of the header, of the TLV areas (the
 * ENC TLV and its wrapped key included) and a sample covering every region
 * of the ciphertext (the first and last blocks whole, then every 127th byte).
 * Each changed byte must be refused with a reason code: by the key unwrap,
 * by the decoder, by MCUboot's checks on the slot image, or by the
 * manifest's image hash — except the encrypted form's own SHA256, KEYHASH
 * and ECDSASIG TLVs (type and value; they sign the flag-set header for an
 * MCUboot built with MCUBOOT_ENC_IMAGES and never reach a direct-xip slot),
 * which only the manifest's payload hash covers: they are refused on a fresh
 * download (VERIFY_FAILED) and harmless on a resumed one (the slot is the
 * same bytes).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { softwareCipher } from "../../src/crypto/cipher";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { OtaError, reasonName } from "../../src/errors";
import { unwrapImageKey } from "../../src/image/enc";
import { EncryptedImageDecoder, encryptedLayout, readEncryptedTlvArea } from "../../src/image/enc-stream";
import { parseVersion } from "../../src/image/format";
import { imageSignatureChecker } from "../../src/image/signature";
import { verifyImage } from "../../src/image/verify";
import { p256 } from "../../src/crypto/p256";
import { toHex } from "../../src/util/bytes";
import { BytesFlash } from "../../tools/image/bytes-flash";
import { signImageParts } from "../../tools/image/sign";
import { signerFromSecret } from "../../tools/keys/signer";
import { recordingRandom } from "../lib/enc-fixtures";

const signer = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));
const deviceSecret = Uint8Array.from({ length: 32 }, (_, i) => (i * 11 + 5) & 0xff);
const checkSignature = imageSignatureChecker(createKeyring([signer.publicKey], softwareDigest));

/** The device's path for a full encrypted payload, without the payload hash: its verdict. */
function install(payload: Uint8Array, manifestEnc: Uint8Array, manifestImageSha: Uint8Array): string {
  try {
    // the ENC TLV the device unwraps is the manifest's (signed); the image's own must equal it
    const key = unwrapImageKey(softwareCipher, deviceSecret, manifestEnc);
    const dec = new EncryptedImageDecoder(softwareCipher, key, 0, undefined, manifestEnc);
    const parts: Uint8Array[] = [];
    for (let at = 0; at < payload.length; at += 4096) parts.push(dec.push(payload.subarray(at, at + 4096)));
    parts.push(dec.finish());
    const slot = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) (slot.set(p, o), (o += p.length));
    const r = verifyImage(new BytesFlash(slot), { digest: softwareDigest, checkSignature });
    if (!r.ok) return reasonName(r.reason);
    if (toHex(sha256(slot)) !== toHex(manifestImageSha)) return "MANIFEST_IMAGE_MISMATCH";
    return "accepted";
  } catch (e) {
    if (e instanceof OtaError) return reasonName(e.code);
    throw e;
  }
}

describe("encrypted image tamper matrix (no payload hash: the worst case)", () => {
  for (const keyLength of [16, 32] as const) {
    it(`AES-${keyLength * 8}: every header and TLV byte and a ciphertext sample covering every region, each flipped, is refused with a reason code`, () => {
      const { image, slotImage, enc } = signImageParts({
        input: Uint8Array.from({ length: 6000 }, (_, i) => (i * 29 + 7) & 0xff),
        version: parseVersion("3.1.4+1"),
        securityCounter: 4,
        padHeader: true,
        signer,
        encrypt: { recipient: p256.getPublicKey(deviceSecret, false), keyLength, random: recordingRandom(keyLength).random, cipher: softwareCipher },
      });
      const imageSha = sha256(slotImage!);
      expect(install(image, enc!, imageSha)).toBe("accepted");
      const L = encryptedLayout(image.subarray(0, 32));
      const area = readEncryptedTlvArea(image.subarray(L.tlvStart));
      expect(area.enc.length).toBe(97 + keyLength);
      const positions: number[] = [];
      for (let i = 0; i < 32; i++) positions.push(i); // the defined header
      positions.push(32, 100, L.bodyStart - 1); // header padding (hashed)
      for (let i = L.bodyStart; i < L.bodyStart + 32; i++) positions.push(i); // first two AES blocks
      for (let i = L.bodyStart + 32; i < L.bodyEnd - 32; i += 127) positions.push(i); // every region of the body
      for (let i = L.bodyEnd - 32; i < L.bodyEnd; i++) positions.push(i); // the last blocks (with imgtool's padding)
      for (let i = L.bodyEnd; i < image.length; i++) positions.push(i); // protected TLVs, TLVs, ENC TLV, slot TLVs
      const refused: { [reason: string]: number } = {};
      const accepted: number[] = [];
      for (const at of positions) {
        for (const bit of [0x01, 0x80]) {
          const bad = image.slice();
          bad[at] ^= bit;
          const verdict = install(bad, enc!, imageSha);
          if (verdict === "accepted") accepted.push(at);
          else refused[verdict] = (refused[verdict] ?? 0) + 1;
        }
      }
      // what the device never uses: the encrypted form's own signature TLVs (type bytes and values)
      const unused = new Set<number>();
      for (let at = L.tlvStart + 4, end = L.tlvStart + (image[L.tlvStart + 2] | (image[L.tlvStart + 3] << 8)); at < end; ) {
        const type = image[at] | (image[at + 1] << 8);
        const len = image[at + 2] | (image[at + 3] << 8);
        if (type === 0x10 || type === 0x01 || type === 0x22) {
          for (let i = at; i < at + 2; i++) unused.add(i);
          for (let i = at + 4; i < at + 4 + len; i++) unused.add(i);
        }
        at += 4 + len;
      }
      expect(accepted.filter((at) => !unused.has(at)), "accepted tampered bytes the device uses").toEqual([]);
      // (the payload hash of a fresh download refuses those: test/unit/enc-agent.test.ts)
      expect(Object.keys(refused)).toEqual(expect.arrayContaining(["IMAGE_HASH_MISMATCH", "ENC_MISMATCH"]));
      expect(positions.length).toBeGreaterThan(500);
      // the manifest's own ENC value tampered (the wrapped key in particular): refused at the unwrap
      for (let i = 0; i < enc!.length; i++) {
        const bad = enc!.slice();
        bad[i] ^= 0x04;
        expect(["ENC_KEY_UNWRAP", "ENC_BAD_EPHEMERAL"]).toContain(install(image, bad, imageSha));
      }
    });
  }
});
