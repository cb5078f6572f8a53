/**
 * Encrypted releases for the simulator tests (issue 19): the device key
 * provisioned into the identity space of a device's storage, and full and
 * delta releases encrypted for it. Portable (the XS lane uses it too).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { Random } from "../../hal/types";
import { softwareCipher } from "../../src/crypto/cipher";
import { parseVersion } from "../../src/image/format";
import { openStorage } from "../../src/store/layout";
import { DeviceIdentity } from "../../src/store/identity";
import type { Flash } from "../../hal/types";
import type { SimRelease } from "../../targets/sim/cloud";
import { slotLoadAddress, type FlashMapSpec } from "../../targets/sim/flashmap";
import { firmwareBody, release, type BuiltImage } from "../../tools/demo/firmware";
import { encryptPayload } from "../../tools/image/encrypt";
import { signImageParts } from "../../tools/image/sign";
import type { SigningKey } from "../../tools/keys/signer";
import { encryptedManifest } from "../../tools/release/encrypt";
import { signManifest } from "../../tools/release/encode";

/** Make the device key in a device's storage partition (what AT+CSR does); its public point. */
export function provisionDeviceKey(storage: Flash, random: Random): Uint8Array {
  const s = openStorage(storage);
  const id = new DeviceIdentity(s.identity, random);
  id.ensureKey();
  return id.publicKey();
}

/** A deterministic random source that records what it gave (the image key is the first draw). */
export function recordingRandom(seed: number): { random: (n: number) => Uint8Array; draws: Uint8Array[] } {
  let x = seed >>> 0 || 1;
  const draws: Uint8Array[] = [];
  return {
    draws,
    random: (n) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
      }
      draws.push(b.slice());
      return b;
    },
  };
}

export interface EncryptedBuild {
  /** The slot image as a BuiltImage (what the device ends up running). */
  readonly target: BuiltImage;
  /** The encrypted image (the full payload). */
  readonly encrypted: Uint8Array;
  readonly enc: Uint8Array;
}

/** `sign --encrypt` of the simulator's firmware for `slot`. */
export function buildEncryptedImage(map: FlashMapSpec, key: SigningKey, version: string, slot: 0 | 1, recipient: Uint8Array, random: (n: number) => Uint8Array, o: { securityCounter?: number; keyLength?: 16 | 32; size?: number } = {}): EncryptedBuild {
  const securityCounter = o.securityCounter ?? 1;
  const parts = signImageParts({
    input: firmwareBody(version, "healthy", o.size),
    version: parseVersion(version),
    securityCounter,
    headerSize: 0x200,
    padHeader: true,
    signer: key,
    romFixed: slotLoadAddress(map, slot),
    align: map.geometry.writeAlign,
    encrypt: { recipient, keyLength: o.keyLength ?? 32, random, cipher: softwareCipher },
  });
  return { target: { bytes: parts.slotImage!, version, slot, securityCounter }, encrypted: parts.image, enc: parts.enc! };
}

function signed(key: SigningKey, plain: SimRelease, payload: Uint8Array, enc: Uint8Array): SimRelease {
  const manifest = encryptedManifest(plain.manifest, payload, enc);
  const envelope = signManifest(manifest, key);
  const bytes = envelope.subarray(8, 8 + (envelope[6] | (envelope[7] << 8)));
  return { envelope, manifest, releaseId: sha256(bytes), payload };
}

/** A full encrypted release: the encrypted image is the payload, the slot image the manifest's image. */
export function encryptedFullRelease(key: SigningKey, b: EncryptedBuild, stream?: string): SimRelease {
  return signed(key, release(key, b.target, { stream: stream ?? `enc-${b.target.version.replace(/[^0-9A-Za-z]/g, "_")}` }), b.encrypted, b.enc);
}

/** A delta encrypted release: the patch between the slot images, encrypted whole for `recipient`. */
export function encryptedDeltaRelease(
  key: SigningKey,
  target: BuiltImage,
  base: BuiltImage,
  diff: (a: Uint8Array, b: Uint8Array) => Uint8Array,
  recipient: Uint8Array,
  random: (n: number) => Uint8Array,
  keyLength: 16 | 32 = 32,
): SimRelease {
  const plain = release(key, target, { base, diff, stream: `enc-delta-${target.version.replace(/[^0-9A-Za-z]/g, "_")}` });
  const { payload, enc } = encryptPayload(plain.payload, { recipient, keyLength, random, cipher: softwareCipher });
  return signed(key, plain, payload, enc);
}

/** The XS lane's images (deterministic keys, signatures and random draws: the Node side builds the same bytes). */
export function encImages(w: { map: FlashMapSpec; key: SigningKey }, pub: Uint8Array) {
  const rnd = recordingRandom(9);
  const full = buildEncryptedImage(w.map, w.key, "1.1.0+2", 1, pub, rnd.random, { securityCounter: 2, keyLength: 32 });
  const target = buildEncryptedImage(w.map, w.key, "1.2.0+3", 0, pub, rnd.random, { securityCounter: 2 }).target;
  return { full, target, rnd };
}
