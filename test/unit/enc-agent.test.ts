/**
 * Encrypted releases through the agent on the simulator: full and delta
 * installs decrypted while the inactive slot is written, a release for
 * another device refused before anything is written, and no key material in
 * the journal, the audit log, the heartbeats or the reports.
 */
import { describe, expect, it } from "vitest";
import { TestOnlySeededRandom } from "../../hal/mock/random";
import { Reason } from "../../src/errors";
import { formatVersion } from "../../src/image/format";
import { p256 } from "../../src/crypto/p256";
import { makePatch } from "../../tools/delta/index";
import { buildEncryptedImage, encryptedDeltaRelease, encryptedFullRelease, provisionDeviceKey, recordingRandom } from "../lib/enc-fixtures";
import { makeWorld } from "../lib/sim-world";
import { toHex } from "../../src/util/bytes";
import { encryptedLayout } from "../../src/image/enc-stream";

const diff = (a: Uint8Array, b: Uint8Array) => makePatch(a, b).bytes;

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function readAll(flash: { status(): { size: number }; read(n: number, o: number): Uint8Array }): Uint8Array {
  const size = flash.status().size;
  const out = new Uint8Array(size);
  for (let o = 0; o < size; o += 4096) out.set(flash.read(Math.min(4096, size - o), o), o);
  return out;
}

describe("encrypted releases through the agent (simulator)", () => {
  it("full (AES-256) then delta (AES-128) encrypted releases install and commit; no key material in journal, audit log, heartbeats or reports", () => {
    const w = makeWorld();
    const d = w.addDevice("enc-1");
    const devicePub = provisionDeviceKey(d.storage, new TestOnlySeededRandom(99));
    const rnd = recordingRandom(7);
    const full = buildEncryptedImage(w.map, w.key, "1.1.0+2", 1, devicePub, rnd.random, { securityCounter: 2, keyLength: 32 });
    const imageKeys = [rnd.draws[0]];
    const fullRelease = encryptedFullRelease(w.key, full);
    w.cloud.releases = [fullRelease];
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("enc-1").map((r) => r.event), w.logs.slice(-30).join("\n")).toEqual(["offer-accepted", "download-started", "download-done", "verified", "committed"]);
    expect(d.runningSlot).toBe(1);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.1.0+2");
    // the slot holds the plaintext image, flag cleared
    const slot1 = d.slots[1].read(32, 0);
    expect(slot1[16] & 0x0c).toBe(0);

    const n0 = rnd.draws.length;
    const target2 = buildEncryptedImage(w.map, w.key, "1.2.0+3", 0, devicePub, rnd.random, { securityCounter: 2 }).target;
    const delta = encryptedDeltaRelease(w.key, target2, full.target, diff, devicePub, rnd.random, 16);
    // draws: the slot-0 build's image key and ephemeral key (n0, n0 + 1), then the patch's key (n0 + 2)
    imageKeys.push(rnd.draws[n0 + 2]);
    expect(imageKeys[1].length).toBe(16);
    w.cloud.releases = [delta];
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("enc-1", "committed"), w.logs.slice(-30).join("\n")).toHaveLength(2);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.2.0+3");
    expect(d.runningSlot).toBe(0);
    expect(w.cloud.bytesSent.get("enc-1")!).toBeLessThan(fullRelease.payload.length + delta.payload.length + 4096);

    // no key material anywhere the device keeps or sends: the device key, the image keys
    const storage = readAll(d.storage);
    const identityKey = findDeviceKey(storage, devicePub);
    expect(identityKey, "the device key is in its identity record (protected storage)").toBeDefined();
    const secrets = imageKeys;
    const sent = JSON.stringify({ hb: w.cloud.heartbeats, reports: w.cloud.reports });
    for (const s of [...secrets, identityKey!]) {
      expect(sent.includes(toHex(s))).toBe(false);
      expect(sent.includes(JSON.stringify(Array.from(s.subarray(0, 8))).slice(1, -1))).toBe(false);
    }
    // the journal and the audit log are in the storage partition: outside the identity record, no secret
    const withoutIdentity = storage.slice();
    for (let i = 0; i + 32 <= withoutIdentity.length; i++) if (contains(withoutIdentity.subarray(i, i + 32), identityKey!)) withoutIdentity.fill(0, i, i + 32);
    for (const s of secrets) expect(contains(withoutIdentity, s), "an image key in storage").toBe(false);
    expect(w.logs.join("\n").includes(toHex(identityKey!))).toBe(false);
  });

  it("a release encrypted for another device's key is refused with ENC_KEY_UNWRAP before anything is written to the inactive slot", () => {
    const w = makeWorld();
    const d = w.addDevice("enc-2");
    provisionDeviceKey(d.storage, new TestOnlySeededRandom(5));
    const other = p256.getPublicKey(Uint8Array.from({ length: 32 }, (_, i) => i + 1), false);
    const b = buildEncryptedImage(w.map, w.key, "1.1.0+2", 1, other, recordingRandom(3).random, { securityCounter: 2 });
    w.cloud.releases = [encryptedFullRelease(w.key, b)];
    const before = readAll(d.slots[1]);
    const erasesBefore = slotErases(d);
    d.run(2 * 60_000);
    const failed = w.cloud.reportsOf("enc-2", "failed");
    expect(failed.length, w.logs.slice(-20).join("\n")).toBeGreaterThanOrEqual(1);
    expect(failed[0].reason).toBe(Reason.ENC_KEY_UNWRAP);
    expect(w.cloud.reportsOf("enc-2", "download-started")).toHaveLength(1);
    // nothing erased, nothing programmed in the inactive slot
    expect(slotErases(d)).toBe(erasesBefore);
    expect(Buffer.from(readAll(d.slots[1])).equals(Buffer.from(before))).toBe(true);
    expect(d.runningSlot).toBe(0);
  });

  it("a device without a decryption key refuses an encrypted release (ENC_NO_KEY), nothing written", () => {
    const w = makeWorld();
    const d = w.addDevice("enc-3");
    const b = buildEncryptedImage(w.map, w.key, "1.1.0+2", 1, p256.getPublicKey(Uint8Array.from({ length: 32 }, (_, i) => i + 9), false), recordingRandom(4).random, { securityCounter: 2 });
    w.cloud.releases = [encryptedFullRelease(w.key, b)];
    const before = readAll(d.slots[1]);
    const erasesBefore = slotErases(d);
    d.run(2 * 60_000);
    expect(w.cloud.reportsOf("enc-3", "failed")[0]?.reason, w.logs.slice(-20).join("\n")).toBe(Reason.ENC_NO_KEY);
    expect(slotErases(d)).toBe(erasesBefore);
    expect(Buffer.from(readAll(d.slots[1])).equals(Buffer.from(before))).toBe(true);
  });
});

describe("encrypted releases: damaged payloads through the agent", () => {
  for (const where of ["ciphertext", "the encrypted form's own SHA256 TLV"] as const) {
    it(`a byte of ${where} changed on the way is refused by the manifest's payload hash (VERIFY_FAILED), and nothing boots`, () => {
      const w = makeWorld();
      const d = w.addDevice("enc-t");
      const pub = provisionDeviceKey(d.storage, new TestOnlySeededRandom(8));
      const b = buildEncryptedImage(w.map, w.key, "1.1.0+2", 1, pub, recordingRandom(2).random, { securityCounter: 2 });
      const r = encryptedFullRelease(w.key, b);
      const bad = r.payload.slice();
      // the encrypted form's TLV area starts with its SHA256 TLV (info 4 bytes, TLV header 4 bytes)
      const at = where === "ciphertext" ? 0x200 + 5000 : encryptedLayout(bad.subarray(0, 32)).tlvStart + 8 + 5;
      bad[at] ^= 0x10;
      w.cloud.releases = [{ ...r, payload: bad }];
      d.run(3 * 60_000);
      const failed = w.cloud.reportsOf("enc-t", "failed");
      expect(failed.length, w.logs.slice(-20).join("\n")).toBeGreaterThanOrEqual(1);
      expect(failed[0].reason).toBe(Reason.VERIFY_FAILED);
      expect(w.cloud.reportsOf("enc-t", "committed")).toHaveLength(0);
      expect(d.runningSlot).toBe(0);
    });
  }
});

/** Erases of the inactive slot's blocks so far (the mock chip's wear counters). */
function slotErases(d: { slots: readonly { chip: { wear: Uint32Array; status(): { blockLength: number } }; offset: number; status(): { size: number } }[] }): number {
  const s = d.slots[1];
  const bl = s.chip.status().blockLength;
  let n = 0;
  for (let b = s.offset / bl; b < (s.offset + s.status().size) / bl; b++) n += s.chip.wear[b];
  return n;
}

/** The 32-byte scalar in storage whose public point is `pub` (the identity record). */
function findDeviceKey(storage: Uint8Array, pub: Uint8Array): Uint8Array | undefined {
  for (let i = 0; i + 33 <= storage.length; i++) {
    if (storage[i] !== 1) continue;
    const k = storage.subarray(i + 1, i + 33);
    if (!p256.utils.isValidSecretKey(k)) continue;
    if (k[0] === 0xff && k[1] === 0xff) continue;
    try {
      if (toHex(p256.getPublicKey(k, false)) === toHex(pub)) return k.slice();
    } catch {
      /* not a key */
    }
  }
  return undefined;
}
