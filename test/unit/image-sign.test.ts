/**
 * Signed MCUboot images: round trip (sign → mock flash slot → device-side
 * verification), the tamper matrix (every single-byte flip refused), the
 * MCUboot signature rules, the bootloader model wired with the checker, the
 * imgtool layout of `signImage`, and bounded streaming reads.
 */
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { PowerRail } from "../../hal/mock/rail";
import { MockCounter } from "../../hal/mock/counter";
import type { Flash } from "../../hal/types";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { Reason, reasonName } from "../../src/errors";
import { parseImageHeader, parseVersion, TLV } from "../../src/image/format";
import { imageSignatureChecker } from "../../src/image/signature";
import { readTrailer, trailerLayout } from "../../src/image/trailer";
import { verifyImage, VERIFY_CHUNK } from "../../src/image/verify";
import { bootSelect } from "../../targets/sim/bootloader";
import { encodeImage } from "../../tools/image/encode";
import { autoSecurityCounter, IMAGE_F_RAM_LOAD, IMAGE_F_ROM_FIXED, imgtoolTrailerSize, signImage } from "../../tools/image/sign";
import { parsePrivateKeyPem, generateKeyPem } from "../../tools/keys/pem";
import { signerFromSecret } from "../../tools/keys/signer";

const key = parsePrivateKeyPem(generateKeyPem().privatePem);
const otherKey = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => i + 1));
const keyring = createKeyring([key.publicKey], softwareDigest);
const checkSignature = imageSignatureChecker(keyring);

function body(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 17 + seed) & 0xff);
}

/** A slot of `size` bytes holding `image` (erased, then written in write units). */
function slotWith(image: Uint8Array, size = 8192, writeAlign = 32): NorFlash {
  const f = new NorFlash({ size, blockLength: 4096, writeAlign });
  for (let b = 0; b < size / 4096; b++) f.eraseBlock(b);
  const padded = new Uint8Array(Math.ceil(image.length / writeAlign) * writeAlign).fill(0xff);
  padded.set(image);
  f.write(padded, 0);
  return f;
}

function verify(slot: Flash) {
  return verifyImage(slot, { digest: softwareDigest, checkSignature });
}

/** A small signed image (null: unsigned). */
function small(signer: typeof key | null = key): Uint8Array {
  return signImage({ input: body(64), padHeader: true, headerSize: 32, version: parseVersion("1.2.3+4"), securityCounter: 5, signer: signer ?? undefined });
}

/** The value offsets of each unprotected TLV in a built image. */
function tlvsOf(image: Uint8Array): { type: number; at: number; length: number }[] {
  const h = parseImageHeader(image);
  let at = h.hdrSize + h.imgSize + h.protectTlvSize;
  const end = at + (image[at + 2] | (image[at + 3] << 8));
  const out = [];
  for (at += 4; at < end; ) {
    const type = image[at] | (image[at + 1] << 8);
    const length = image[at + 2] | (image[at + 3] << 8);
    out.push({ type, at: at + 4, length });
    at += 4 + length;
  }
  return out;
}

describe("round trip: sign → mock flash slot → device-side verify", () => {
  it("a signed image verifies as MCUboot would, with its header, counter and hash", () => {
    const image = signImage({ input: body(5000), padHeader: true, version: parseVersion("1.2.3+4"), securityCounter: 9, signer: key });
    const r = verify(slotWith(image, 16384));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.info.header.version).toEqual({ major: 1, minor: 2, revision: 3, build: 4 });
    expect(r.info.securityCounter).toBe(9);
    expect(r.info.totalLength).toBe(image.length);
    expect(r.info.tlvs.map((t) => t.type)).toEqual([TLV.SEC_CNT, TLV.SHA256, TLV.KEYHASH, TLV.ECDSASIG]);
  });

  it("a padded, confirmed image in a slot of its own size verifies and has its trailer set", () => {
    const image = signImage({ input: body(3000), padHeader: true, version: parseVersion("2.0.0"), signer: key, slotSize: 65536, confirm: true, align: 32 });
    expect(image.length).toBe(65536);
    const slot = slotWith(image, 65536);
    expect(verify(slot).ok).toBe(true);
    expect(readTrailer(slot)).toEqual({ magic: "good", imageOk: "set", copyDone: "unset" });
  });
});

describe("tamper matrix: every single-byte change of a small signed image is refused", () => {
  const image = small();
  it(`the ${image.length}-byte image itself verifies`, () => expect(verify(slotWith(image)).ok).toBe(true));

  it("flipping any one byte (xor 0x01 and xor 0xff) at every position is refused with a reason", () => {
    const seen = new Map<number, number>();
    for (const mask of [0x01, 0xff]) {
      for (let i = 0; i < image.length; i++) {
        const t = Uint8Array.from(image);
        t[i] ^= mask;
        const r = verify(slotWith(t));
        if (r.ok) throw new Error(`flip 0x${mask.toString(16)} at byte ${i} was accepted`);
        expect(r.reason).not.toBe(Reason.OK);
        seen.set(r.reason, (seen.get(r.reason) ?? 0) + 1);
      }
    }
    // The refusals are specific, not one catch-all.
    const names = [...seen.keys()].map(reasonName);
    for (const want of ["IMAGE_BAD_MAGIC", "IMAGE_HASH_MISMATCH", "IMAGE_BAD_TLV", "IMAGE_UNKNOWN_KEY", "IMAGE_BAD_SIGNATURE", "SIGNATURE_MALFORMED", "IMAGE_NO_HASH", "IMAGE_NO_SIGNATURE"]) {
      expect(names).toContain(want);
    }
  });

  it("a truncated image (cut at every TLV-area position) is refused", () => {
    const h = parseImageHeader(image);
    for (let cut = h.hdrSize + h.imgSize; cut < image.length; cut++) {
      // The erased tail of the slot reads as 0xff: the cut image is followed by erased flash.
      const r = verify(slotWith(image.subarray(0, cut)));
      expect(r.ok, `cut at ${cut}`).toBe(false);
    }
  });
});

describe("signature rules (bootutil image_validate.c)", () => {
  it("an unsigned image → IMAGE_NO_SIGNATURE", () => {
    const r = verify(slotWith(small(null)));
    expect(r.ok ? Reason.OK : r.reason).toBe(Reason.IMAGE_NO_SIGNATURE);
  });

  it("signed by a key not in the keyring → IMAGE_UNKNOWN_KEY", () => {
    const r = verify(slotWith(small(otherKey)));
    expect(r.ok ? Reason.OK : r.reason).toBe(Reason.IMAGE_UNKNOWN_KEY);
  });

  it("a trusted KEYHASH with a signature made by another key → IMAGE_BAD_SIGNATURE", () => {
    const forged = small({ ...otherKey, keyHash: key.keyId, keyId: key.keyId } as typeof key);
    const r = verify(slotWith(forged));
    expect(r.ok ? Reason.OK : r.reason).toBe(Reason.IMAGE_BAD_SIGNATURE);
  });

  it("a signature after an unknown key is skipped; a later trusted pair decides", () => {
    const image = small(otherKey);
    const hashTlv = tlvsOf(image).find((t) => t.type === TLV.SHA256)!;
    const hash = image.subarray(hashTlv.at, hashTlv.at + 32);
    const pair = (k: typeof key) => {
      const sig = k.sign(hash);
      return Uint8Array.from([TLV.KEYHASH, 0, 32, 0, ...k.keyId, TLV.ECDSASIG, 0, sig.length, 0, ...sig]);
    };
    const h = parseImageHeader(image);
    const tlvStart = h.hdrSize + h.imgSize + h.protectTlvSize;
    const tlvs = Uint8Array.from([...image.subarray(tlvStart + 4, hashTlv.at + 32), ...pair(otherKey), ...pair(key)]);
    const total = tlvs.length + 4;
    const rebuilt = Uint8Array.from([...image.subarray(0, tlvStart), 0x07, 0x69, total & 0xff, total >> 8, ...tlvs]);
    expect(verify(slotWith(rebuilt)).ok).toBe(true);
  });

  it("a signature TLV longer than MCUboot's buffer → IMAGE_BAD_TLV", () => {
    const huge = { ...key, sign: () => new Uint8Array(129).fill(0x30) } as typeof key;
    const r = verify(slotWith(small(huge)));
    expect(r.ok ? Reason.OK : r.reason).toBe(Reason.IMAGE_BAD_TLV);
  });
});

describe("the simulator's bootloader model with imageSignatureChecker", () => {
  function twoSlots(a: Uint8Array | undefined, b: Uint8Array | undefined): [NorFlash, NorFlash] {
    const mk = (img?: Uint8Array) => (img ? slotWith(img, 65536) : slotWith(new Uint8Array(0), 65536));
    return [mk(a), mk(b)];
  }
  const confirmed = (signer: typeof key | undefined, v: string) =>
    signImage({ input: body(2000), padHeader: true, version: parseVersion(v), securityCounter: 1, signer, slotSize: 65536, confirm: true, align: 32 });

  it("boots the signed image and rejects an unsigned newer one (the lead wires it in BootOptions.checkSignature)", () => {
    const slots = twoSlots(confirmed(key, "1.0.0"), confirmed(undefined, "2.0.0"));
    const d = bootSelect(slots, { digest: softwareDigest, counter: new MockCounter(new PowerRail()), checkSignature });
    expect(d.slot).toBe(0);
    expect(d.rejected).toEqual([expect.objectContaining({ slot: 1, reason: Reason.IMAGE_NO_SIGNATURE })]);
  });

  it("an image signed by an untrusted key is not bootable", () => {
    const slots = twoSlots(confirmed(otherKey, "1.0.0"), undefined);
    const d = bootSelect(slots, { digest: softwareDigest, counter: new MockCounter(new PowerRail()), checkSignature });
    expect(d.slot).toBeUndefined();
    expect(d.rejected[0].reason).toBe(Reason.IMAGE_UNKNOWN_KEY);
  });
});

describe("signImage lays the image out as imgtool does", () => {
  const v = parseVersion("1.2.3+4");

  it("header: magic, sizes, version; TLV order SEC_CNT | SHA256, KEYHASH, ECDSASIG", () => {
    const image = signImage({ input: body(100), padHeader: true, headerSize: 0x200, version: v, securityCounter: 7, signer: key });
    const h = parseImageHeader(image);
    expect(h).toMatchObject({ hdrSize: 0x200, imgSize: 100, protectTlvSize: 12, flags: 0, loadAddr: 0 });
    expect(Array.from(image.subarray(0x200 + 100, 0x200 + 112))).toEqual([0x08, 0x69, 12, 0, 0x50, 0, 4, 0, 7, 0, 0, 0]);
    expect(tlvsOf(image).map((t) => [t.type, t.length === 32 || t.type === TLV.ECDSASIG])).toEqual([
      [TLV.SHA256, true],
      [TLV.KEYHASH, true],
      [TLV.ECDSASIG, true],
    ]);
    expect(image[28] | image[29] | image[30] | image[31]).toBe(0); // _pad1
  });

  it("--pad-header fills the header space with the erase value; without it the input's zeros are replaced", () => {
    const a = signImage({ input: body(100), padHeader: true, headerSize: 0x100, version: v });
    expect(a.subarray(32, 0x100).every((b) => b === 0xff)).toBe(true);
    const zeroed = new Uint8Array(0x100 + 100);
    zeroed.set(body(100), 0x100);
    const b = signImage({ input: zeroed, headerSize: 0x100, version: v });
    expect(b.subarray(32, 0x100).every((x) => x === 0)).toBe(true);
    expect(b.subarray(0x100, 0x100 + 100)).toEqual(body(100));
    expect(() => signImage({ input: body(0x200), headerSize: 0x100, version: v })).toThrow(/zero bytes of header space/);
  });

  it("no security counter → no protected TLV area", () => {
    const image = signImage({ input: body(10), padHeader: true, version: v });
    expect(parseImageHeader(image).protectTlvSize).toBe(0);
  });

  it("--load-addr sets RAM_LOAD, --rom-fixed sets ROM_FIXED and stores its address", () => {
    expect(parseImageHeader(signImage({ input: body(10), padHeader: true, version: v, loadAddr: 0x20000000 }))).toMatchObject({ loadAddr: 0x20000000, flags: IMAGE_F_RAM_LOAD });
    expect(parseImageHeader(signImage({ input: body(10), padHeader: true, version: v, romFixed: 0x08020000 }))).toMatchObject({ loadAddr: 0x08020000, flags: IMAGE_F_ROM_FIXED });
  });

  it("--pad writes the boot magic at the slot end; --confirm also image_ok; both at imgtool's offsets", () => {
    for (const align of [1, 8, 16, 32]) {
      const maxAlign = Math.max(8, align);
      const padded = signImage({ input: body(100), padHeader: true, version: v, slotSize: 0x10000, pad: true, align });
      const confirmed = signImage({ input: body(100), padHeader: true, version: v, slotSize: 0x10000, confirm: true, align });
      const slot = slotWith(padded, 0x10000, maxAlign);
      expect(readTrailer(slot)).toEqual({ magic: "good", imageOk: "unset", copyDone: "unset" });
      const okAt = 0x10000 - Math.max(16, maxAlign) - maxAlign;
      expect(confirmed[okAt]).toBe(1);
      expect(trailerLayout(slot).imageOkOffset).toBe(okAt);
      const diff = [...confirmed.keys()].filter((i) => confirmed[i] !== padded[i]);
      expect(diff).toEqual([okAt]);
    }
  });

  it("refuses what imgtool refuses: image + trailer over the slot, pad without a slot size, a bad alignment", () => {
    const trailer = imgtoolTrailerSize(32, 32, 128, false);
    expect(trailer).toBe(128 * 3 * 32 + 32 * 4 + 32);
    const image = signImage({ input: body(100), padHeader: true, version: v });
    expect(() => signImage({ input: body(100), padHeader: true, version: v, slotSize: image.length + trailer - 1, align: 32 })).toThrow(/exceeds the slot size/);
    expect(signImage({ input: body(100), padHeader: true, version: v, slotSize: image.length + trailer, align: 32 }).length).toBe(image.length);
    expect(() => signImage({ input: body(100), padHeader: true, version: v, pad: true })).toThrow(/--slot-size/);
    expect(() => signImage({ input: body(100), padHeader: true, version: v, align: 3 })).toThrow(/--align/);
  });

  it("security counter auto = major<<24 | minor<<16 | revision", () => {
    expect(autoSecurityCounter(parseVersion("1.2.3+4"))).toBe(0x01020003);
    expect(autoSecurityCounter(parseVersion("255.0.0"))).toBe(0xff000000);
  });

  it("encodeImage (the existing encoder) and signImage agree byte for byte when signed deterministically", () => {
    const a = signImage({ input: body(300), padHeader: true, headerSize: 0x200, version: v, securityCounter: 2, signer: otherKey });
    const b = encodeImage({ body: body(300), version: v, securityCounter: 2, headerSize: 0x200, headerFill: 0xff, signer: otherKey });
    expect(a).toEqual(b);
  });
});

describe("streaming: verification reads the slot in bounded chunks", () => {
  it("no read exceeds VERIFY_CHUNK and the image is read about once", () => {
    const image = signImage({ input: body(200_000), padHeader: true, version: parseVersion("1.0.0"), signer: key });
    const slot = slotWith(image, 256 * 1024);
    let maxRead = 0;
    let total = 0;
    const spy: Flash = {
      status: () => slot.status(),
      read(n, off) {
        maxRead = Math.max(maxRead, n);
        total += n;
        return slot.read(n, off);
      },
      write: (d, o) => slot.write(d, o),
      eraseBlock: (b) => slot.eraseBlock(b),
    };
    expect(verify(spy).ok).toBe(true);
    expect(maxRead).toBeLessThanOrEqual(VERIFY_CHUNK);
    expect(total).toBeLessThan(image.length + 1024);
  });
});
