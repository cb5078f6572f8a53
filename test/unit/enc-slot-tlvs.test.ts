/**
 * `xs-ota sign --add-slot-tlvs`: an image encrypted in imgtool's layout (built
 * here by node:crypto, test/lib/imgtool-enc.ts, not by xs-ota's encoder) is
 * refused by the agent as it is (ENC_NO_SLOT_TLVS), and installs and commits
 * once the command added the slot TLVs; the command refuses an image signed
 * by another key, a tampered one, one for another device, one that has them.
 */
import { createPrivateKey } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TestOnlySeededRandom } from "../../hal/mock/random";
import { p256 } from "../../src/crypto/p256";
import { Reason } from "../../src/errors";
import { formatVersion, parseVersion } from "../../src/image/format";
import { encryptedLayout } from "../../src/image/enc-stream";
import { openStorage } from "../../src/store/layout";
import { slotLoadAddress } from "../../targets/sim/flashmap";
import { firmwareBody } from "../../tools/demo/firmware";
import { generateKeyPem, publicPemOf } from "../../tools/keys/pem";
import { xsOta } from "../lib/cli";
import { encryptedFullRelease, provisionDeviceKey } from "../lib/enc-fixtures";
import { imgtoolEncrypt } from "../lib/imgtool-enc";
import { makeWorld } from "../lib/sim-world";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-slot-tlvs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const p = (n: string) => join(dir, n);
const b64u = (b: Uint8Array) => Buffer.from(b).toString("base64url");

/** A PKCS#8 PEM of a P-256 scalar. */
function pemOf(secret: Uint8Array): string {
  const pub = p256.getPublicKey(secret, false);
  const jwk = { kty: "EC", crv: "P-256", d: b64u(secret), x: b64u(pub.subarray(1, 33)), y: b64u(pub.subarray(33)) };
  return createPrivateKey({ key: jwk, format: "jwk" }).export({ format: "pem", type: "pkcs8" }) as string;
}

/** The simulator world's signing key (tools/demo/firmware.ts testKey(7)) as a PEM; checked against the world's public key. */
function worldSignPem(worldPub: Uint8Array): string {
  const secret = Uint8Array.from({ length: 32 }, (_, i) => (7 * 31 + i * 7 + 1) & 0xff);
  secret[0] = 0x11;
  expect(Buffer.from(p256.getPublicKey(secret, false)).equals(Buffer.from(worldPub))).toBe(true);
  return pemOf(secret);
}

/** The TLV area of an image file: where it starts and its bytes. */
function tlvArea(image: Uint8Array): { at: number; bytes: Buffer } {
  const at = encryptedLayout(image.subarray(0, 32)).tlvStart;
  const total = image[at + 2] | (image[at + 3] << 8);
  return { at, bytes: Buffer.from(image.subarray(at, at + total)) };
}

describe("xs-ota sign --add-slot-tlvs: an imgtool-encrypted image through the agent", () => {
  it("refused as imgtool writes it (ENC_NO_SLOT_TLVS); with the slot TLVs added it installs and commits (AES-256), its own TLVs kept byte for byte", () => {
    const w = makeWorld();
    const d = w.addDevice("imgtool-1");
    const devicePub = provisionDeviceKey(d.storage, new TestOnlySeededRandom(21));
    const deviceKey = openStorage(d.storage).identity!.get(0)!.subarray(1, 33);
    expect(Buffer.from(p256.getPublicKey(deviceKey, false)).equals(Buffer.from(devicePub))).toBe(true);
    writeFileSync(p("device.pem"), pemOf(deviceKey));
    writeFileSync(p("sign.pem"), worldSignPem(w.key.publicKey));
    writeFileSync(p("sign.pub.pem"), publicPemOf(w.key.publicKey));
    const body = firmwareBody("1.1.0+2", "healthy");
    const { image } = imgtoolEncrypt({
      body,
      version: parseVersion("1.1.0+2"),
      securityCounter: 2,
      signPem: readFileSync(p("sign.pem"), "utf8"),
      recipient: devicePub,
      keyBits: 256,
      romFixed: slotLoadAddress(w.map, 1),
    });
    writeFileSync(p("imgtool.img"), image);
    // our verifier agrees the independent image is MCUboot's encrypted format, without slot TLVs
    const v = xsOta(["verify", "-k", p("sign.pub.pem"), "--decrypt-key", p("device.pem"), p("imgtool.img")]);
    expect(v.status).toBe(1);
    expect(v.stdout).toMatch(/ENC_NO_SLOT_TLVS \(reason 605\).*--add-slot-tlvs/);

    const r = xsOta(["sign", "--add-slot-tlvs", "-k", p("sign.pem"), "--decrypt-key", p("device.pem"), "--slot-image", p("slot.img"), "--json", p("imgtool.img"), p("out.img")]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const out = new Uint8Array(readFileSync(p("out.img")));
    const slot = new Uint8Array(readFileSync(p("slot.img")));
    expect(JSON.parse(r.stdout).version).toBe("1.1.0+2");
    // IN's bytes before the TLV area and its TLVs unchanged; one 0xb0 TLV after them
    const before = tlvArea(image);
    const after = tlvArea(out);
    expect(after.at).toBe(before.at);
    expect(Buffer.from(out.subarray(0, before.at)).equals(image.subarray(0, before.at))).toBe(true);
    expect(after.bytes.subarray(0, 2).equals(before.bytes.subarray(0, 2))).toBe(true);
    expect(after.bytes.subarray(4, before.bytes.length).equals(before.bytes.subarray(4))).toBe(true);
    expect(after.bytes.readUInt16LE(before.bytes.length)).toBe(0xb0);
    expect(out.length).toBe(after.at + after.bytes.length);
    // the slot image: flag cleared, the plaintext body, an ordinary signed image
    expect(slot[16] & 0x0c).toBe(0);
    expect(Buffer.from(slot.subarray(0x200, 0x200 + body.length)).equals(Buffer.from(body))).toBe(true);
    expect(xsOta(["verify", "-k", p("sign.pub.pem"), p("slot.img")]).status).toBe(0);
    const ok = xsOta(["verify", "-k", p("sign.pub.pem"), "--decrypt-key", p("device.pem"), p("out.img")]);
    expect(ok.status, ok.stdout).toBe(0);
    // xs-ota release: imgtool's file refused with the hint, the converted one released and verified against its manifest
    const raw = xsOta(["release", "-k", p("sign.pem"), "--hardware-id", "usr-n520", "--image", p("slot.img"), "--payload", p("imgtool.img"), "--slot", "1", "-o", p("raw/app.manifest")]);
    expect(raw.status).toBe(1);
    expect(raw.stderr).toMatch(/no slot TLVs.*--add-slot-tlvs/);
    const rel = xsOta(["release", "-k", p("sign.pem"), "--hardware-id", "usr-n520", "--image", p("slot.img"), "--payload", p("out.img"), "--slot", "1", "-o", p("rel/app.manifest")]);
    expect(rel.status, rel.stdout + rel.stderr).toBe(0);
    expect(xsOta(["verify", "-k", p("sign.pub.pem"), p("slot.img"), "--manifest", p("rel/app.manifest")]).status).toBe(0);

    const target = { bytes: slot, version: "1.1.0+2", slot: 1 as const, securityCounter: 2 };
    const encValue = findTlv(after.bytes, 0x32);
    // first imgtool's own file: the device refuses it at its end, and keeps running slot 0
    w.cloud.releases = [encryptedFullRelease(w.key, { target, encrypted: image, enc: encValue }, "imgtool-raw")];
    d.run(3 * 60_000);
    const failed = w.cloud.reportsOf("imgtool-1", "failed");
    expect(failed[0]?.reason, w.logs.slice(-20).join("\n")).toBe(Reason.ENC_NO_SLOT_TLVS);
    expect(d.runningSlot).toBe(0);
    // then the same image with the slot TLVs
    w.cloud.releases = [encryptedFullRelease(w.key, { target, encrypted: out, enc: encValue }, "imgtool-slot-tlvs")];
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("imgtool-1", "committed"), w.logs.slice(-30).join("\n")).toHaveLength(1);
    expect(d.runningSlot).toBe(1);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.1.0+2");
    for (let o = 0; o < slot.length; o += 4096) {
      const n = Math.min(4096, slot.length - o);
      expect(Buffer.from(d.slots[1].read(n, o)).equals(Buffer.from(slot.subarray(o, o + n))), `slot 1 at ${o}`).toBe(true);
    }
  });

  it("refuses (exit 1, no OUT) an image signed by another key, a tampered ciphertext byte, one for another device, one that has slot TLVs; usage errors exit 2", () => {
    const device = generateKeyPem();
    const other = generateKeyPem();
    const signer = generateKeyPem();
    writeFileSync(p("dev2.pem"), device.privatePem);
    writeFileSync(p("other.pem"), other.privatePem);
    writeFileSync(p("sign2.pem"), signer.privatePem);
    const devicePub = pointOf(device.privatePem);
    const { image } = imgtoolEncrypt({ body: firmwareBody("2.0.0+1", "healthy", 5000), version: parseVersion("2.0.0+1"), securityCounter: 3, signPem: signer.privatePem, recipient: devicePub, keyBits: 128 });
    writeFileSync(p("in128.img"), image);
    const run = (key: string, dec: string, input: string, out: string) => xsOta(["sign", "--add-slot-tlvs", "-k", p(key), "--decrypt-key", p(dec), p(input), p(out)]);
    // the right keys: accepted (so each refusal below is for its one difference)
    expect(run("sign2.pem", "dev2.pem", "in128.img", "ok128.img").status).toBe(0);

    const wrongSigner = run("other.pem", "dev2.pem", "in128.img", "x1.img");
    expect(wrongSigner.status).toBe(1);
    expect(wrongSigner.stderr).toMatch(/IMAGE_UNKNOWN_KEY/);
    expect(existsSync(p("x1.img"))).toBe(false);

    const bad = Buffer.from(image);
    bad[0x200 + 777] ^= 0x01;
    writeFileSync(p("bad.img"), bad);
    const tampered = run("sign2.pem", "dev2.pem", "bad.img", "x2.img");
    expect(tampered.status).toBe(1);
    expect(tampered.stderr).toMatch(/IMAGE_HASH_MISMATCH/);
    expect(existsSync(p("x2.img"))).toBe(false);

    const otherDevice = run("sign2.pem", "other.pem", "in128.img", "x3.img");
    expect(otherDevice.status).toBe(1);
    expect(otherDevice.stderr).toMatch(/ENC_KEY_UNWRAP/);
    expect(existsSync(p("x3.img"))).toBe(false);

    const twice = run("sign2.pem", "dev2.pem", "ok128.img", "x4.img");
    expect(twice.status).toBe(1);
    expect(twice.stderr).toMatch(/slot TLVs already/);
    expect(existsSync(p("x4.img"))).toBe(false);

    expect(xsOta(["sign", "--add-slot-tlvs", "-k", p("sign2.pem"), p("in128.img"), p("x5.img")]).status).toBe(2);
    expect(xsOta(["sign", "--add-slot-tlvs", "-k", p("sign2.pem"), "--decrypt-key", p("dev2.pem"), "-v", "1.0.0", p("in128.img"), p("x5.img")]).status).toBe(2);
  });
});

function pointOf(privatePem: string): Uint8Array {
  const jwk = createPrivateKey(privatePem).export({ format: "jwk" });
  return new Uint8Array(Buffer.concat([Buffer.of(4), Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url")]));
}

function findTlv(area: Buffer, type: number): Uint8Array {
  for (let at = 4; at < area.length; ) {
    const t = area.readUInt16LE(at);
    const len = area.readUInt16LE(at + 2);
    if (t === type) return new Uint8Array(area.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  throw new Error(`no TLV 0x${type.toString(16)}`);
}
