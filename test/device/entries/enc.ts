/**
 * Device-lane entry for encrypted images: the XS lane's entry
 * (test/xs/entries/enc.ts: the Cipher conformance suite, 64 KiB of AES-CTR,
 * encrypted installs through the agent), plus tasks timed by the M7's
 * instruction counter around the device's part only (release building, which
 * a host does, is outside the count): one key unwrap, and the same full
 * update through the agent plain and encrypted.
 */
import { TestOnlySeededRandom } from "../../../hal/mock/random";
import { softwareCipher } from "../../../src/crypto/cipher";
import { p256 } from "../../../src/crypto/p256";
import { unwrapImageKey } from "../../../src/image/enc";
import { formatVersion } from "../../../src/image/format";
import { wrapImageKey } from "../../../tools/image/encrypt";
import { buildImage, release } from "../../lib/sim-fixtures";
import { encImages, encryptedFullRelease, provisionDeviceKey, recordingRandom } from "../../lib/enc-fixtures";
import { makeWorld } from "../../lib/sim-world";
import "../../xs/entries/enc";
import { task } from "../../xs/runtime";
import { deviceInstructions } from "../crypt";

const now = () => deviceInstructions() as number;

/** ECDH P-256 + HKDF + HMAC check + AES unwrap, as a download opens. */
task("unwrap-timed", () => {
  const secret = Uint8Array.from({ length: 32 }, (_, i) => i * 5 + 2);
  const enc = wrapImageKey(softwareCipher, p256.getPublicKey(secret, false), new Uint8Array(32).fill(7), recordingRandom(3).random);
  const t0 = now();
  const key = unwrapImageKey(softwareCipher, secret, enc);
  const t1 = now();
  return { ok: key.every((b) => b === 7), instructions: t1 - t0 };
});

/** The same 24 KiB firmware, version and slot through the agent: plain, then encrypted (AES-256); the device's run alone is counted. */
task("install-plain-vs-enc", () => {
  const w1 = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0+2", 1, { securityCounter: 2 }))] });
  const d1 = w1.addDevice("xs-plain");
  const t0 = now();
  d1.run(5 * 60_000);
  const t1 = now();
  const w2 = makeWorld();
  const d2 = w2.addDevice("xs-enc");
  const { full } = encImages(w2, provisionDeviceKey(d2.storage, new TestOnlySeededRandom(21)));
  w2.cloud.releases = [encryptedFullRelease(w2.key, full)];
  const t2 = now();
  d2.run(5 * 60_000);
  const t3 = now();
  return {
    plain: { events: w1.cloud.reportsOf("xs-plain").map((r) => r.event), version: d1.lastBoot?.info ? formatVersion(d1.lastBoot.info.header.version) : "", instructions: t1 - t0, bytes: w1.cloud.releases[0].payload.length },
    enc: { events: w2.cloud.reportsOf("xs-enc").map((r) => r.event), version: d2.lastBoot?.info ? formatVersion(d2.lastBoot.info.header.version) : "", instructions: t3 - t2, bytes: full.encrypted.length },
  };
});
