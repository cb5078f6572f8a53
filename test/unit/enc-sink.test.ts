/**
 * The sink with an encrypted full image, cut and resumed at every durable
 * point: the decoder restarts from the journaled offset with the held header
 * (no key in the progress record), and the slot ends exactly as without a cut.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { softwareCipher } from "../../src/crypto/cipher";
import { p256 } from "../../src/crypto/p256";
import { softwareDigest } from "../../src/crypto/sha256";
import { openSink } from "../../src/agent/sink";
import { parseVersion } from "../../src/image/format";
import { HeaderHold } from "../../src/update/slot-writer";
import type { ReleaseManifest } from "../../src/update/types";
import { toHex } from "../../src/util/bytes";
import { signImageParts } from "../../tools/image/sign";
import { signerFromSecret } from "../../tools/keys/signer";
import { recordingRandom } from "../lib/enc-fixtures";

const secret = Uint8Array.from({ length: 32 }, (_, i) => (i * 3 + 1) & 0xff);
const signer = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));

function setup() {
  const rnd = recordingRandom(1);
  const parts = signImageParts({
    input: Uint8Array.from({ length: 40_000 }, (_, i) => (i * 13 + (i >> 9)) & 0xff),
    version: parseVersion("1.1.0+2"),
    securityCounter: 2,
    padHeader: true,
    signer,
    align: 32,
    encrypt: { recipient: p256.getPublicKey(secret, false), keyLength: 32, random: rnd.random, cipher: softwareCipher },
  });
  const manifest: ReleaseManifest = {
    hardwareId: "usr-n520",
    version: parseVersion("1.1.0+2"),
    securityCounter: 2,
    slot: 1,
    image: { length: parts.slotImage!.length, sha256: sha256(parts.slotImage!) },
    payload: { kind: "full", length: parts.image.length, sha256: sha256(parts.image), compression: "none", encryption: parts.enc },
    fetch: { stream: "x" },
    issuedAt: 1,
    expiresAt: 2,
    maxDownload: 1 << 20,
  };
  // the image key is the encryptor's first draw
  return { parts, manifest, imageKey: rnd.draws[0] };
}

function slotBytes(hold: HeaderHold, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 4096) out.set(hold.read(Math.min(4096, n - o), o), o);
  return out;
}

describe("encrypted full image through the sink, cut and resumed", () => {
  it("resumed from every durable point (4 KiB deliveries), the slot holds exactly the slot image; the progress record holds no key", () => {
    const { parts, manifest, imageKey } = setup();
    expect(imageKey.length).toBe(32);
    const payload = parts.image;
    let resumes = 0;
    for (let cutAfter = 4096; cutAfter < payload.length; cutAfter += 4096) {
      const flash = new NorFlash({ size: 128 * 1024, blockLength: 4096, writeAlign: 32 });
      const decryption = { cipher: softwareCipher, privateKey: () => secret.slice() };
      const o = (hold: HeaderHold) => ({ manifest, activeSlot: flash, inactiveSlot: hold, digest: softwareDigest, decryption });
      let hold = new HeaderHold(flash);
      let sink = openSink(o(hold), { payloadOffset: 0, checkpoint: new Uint8Array(0) });
      for (let at = 0; at < cutAfter; at += 4096) {
        sink.write(payload.subarray(at, Math.min(cutAfter, at + 4096)));
        while (sink.pump());
      }
      const progress = sink.durable();
      // nothing secret in what the journal would keep
      const kept = toHex(new Uint8Array([...progress.checkpoint, ...progress.header]));
      expect(kept.includes(toHex(secret))).toBe(false);
      expect(kept.includes(toHex(imageKey))).toBe(false);
      // power cut: a new sink from the journaled progress and the held header
      hold = new HeaderHold(flash, progress.header.length ? progress.header : undefined);
      sink = openSink(o(hold), { payloadOffset: progress.payloadOffset, checkpoint: progress.checkpoint });
      if (sink.nextOffset > 0) resumes++;
      for (let at = sink.nextOffset; at < payload.length; at += 4096) {
        sink.write(payload.subarray(at, Math.min(payload.length, at + 4096)));
        while (sink.pump());
      }
      expect(sink.finish()).toBe(parts.slotImage!.length);
      // the header unit is still held in RAM (programmed at install): compare through the hold
      expect(toHex(sha256(slotBytes(hold, parts.slotImage!.length))), `cut after ${cutAfter}`).toBe(toHex(sha256(parts.slotImage!)));
    }
    expect(resumes).toBeGreaterThan(5);
  });
});
