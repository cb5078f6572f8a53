/**
 * XS entry for encrypted images (test/xs/enc.test.ts): the Cipher conformance
 * suite, the cost of AES-CTR, and (below) decrypting MCUboot-encrypted images
 * inside the real XS engine.
 */
import { softwareCipher } from "../../../src/crypto/cipher";
import { formatVersion } from "../../../src/image/format";
import { TestOnlySeededRandom } from "../../../hal/mock/random";
import { fromHex } from "../../../src/util/bytes";

import { encImages, encryptedDeltaRelease, encryptedFullRelease, provisionDeviceKey } from "../../lib/enc-fixtures";
import { makeWorld } from "../../lib/sim-world";
import { cipherConformance } from "../../conformance/cipher";
import { runSuites } from "../../lib/spec";
import { serve, task } from "../runtime";

task("cipher-conformance", () => runSuites([cipherConformance({ name: "softwareCipher in XS", make: () => softwareCipher })]));

/** 64 KiB of AES-256-CTR in 1 KiB calls at running offsets (the agent's decrypt step). */
task("aes-ctr-64k", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 3 + 1);
  const iv = new Uint8Array(16);
  const data = new Uint8Array(1024).fill(0x5a);
  let x = 0;
  for (let off = 0; off < 65536; off += 1024) {
    const out = softwareCipher.aesCtr(key, iv, off, data);
    x ^= out[off & 1023];
  }
  return x;
});

/**
 * An encrypted full release alone (AES-256), the same firmware size and version as
 * test/xs/entries/agent.ts's plain "full-update": the device lane compares the two.
 */
task("enc-full-update", () => {
  const w = makeWorld();
  const d = w.addDevice("xs-enc");
  const { full } = encImages(w, provisionDeviceKey(d.storage, new TestOnlySeededRandom(21)));
  w.cloud.releases = [encryptedFullRelease(w.key, full)];
  d.run(5 * 60_000);
  return {
    events: w.cloud.reportsOf("xs-enc").map((r) => r.event),
    slot: d.runningSlot,
    version: d.lastBoot?.info ? formatVersion(d.lastBoot.info.header.version) : "",
    bytes: full.encrypted.length,
    log: w.logs.slice(-12),
  };
});

/**
 * An encrypted full release (AES-256) then an encrypted delta (AES-128) through the agent, inside XS.
 * The patch (codec 3; its encoder needs node:zlib for the other codecs) comes from the Node side.
 */
task("enc-updates", () => {
  const w = makeWorld();
  const d = w.addDevice("xs-enc");
  const pub = provisionDeviceKey(d.storage, new TestOnlySeededRandom(21));
  const { full, target, rnd } = encImages(w, pub);
  const patch = fromHex(((globalThis as { __xsOtaDelta?: { encPatch?: string } }).__xsOtaDelta?.encPatch) ?? "");
  if (!patch || patch.length === 0) throw new Error("no patch passed in");
  w.cloud.releases = [encryptedFullRelease(w.key, full)];
  d.run(5 * 60_000);
  const afterFull = { slot: d.runningSlot, version: d.lastBoot?.info ? formatVersion(d.lastBoot.info.header.version) : "" };
  w.cloud.releases = [encryptedDeltaRelease(w.key, target, full.target, () => patch, pub, rnd.random, 16)];
  d.run(5 * 60_000);
  return {
    events: w.cloud.reportsOf("xs-enc").map((r) => r.event),
    afterFull,
    slot: d.runningSlot,
    version: d.lastBoot?.info ? formatVersion(d.lastBoot.info.header.version) : "",
    log: w.logs.slice(-12),
  };
});

serve();
