/** `xs-ota sign --encrypt`, `verify --decrypt-key`, `inspect` on encrypted images, as a user runs them. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-enc-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const p = (n: string) => join(dir, n);

describe("xs-ota sign --encrypt / verify --decrypt-key / inspect", () => {
  it("signs encrypted (AES-256), verifies only with the right decryption key, writes the slot image, inspects", () => {
    for (const k of ["sign", "enc", "other"]) expect(xsOta(["keygen", "-o", p(`${k}.pem`), "--public", p(`${k}.pub.pem`)]).status).toBe(0);
    writeFileSync(p("app.bin"), Buffer.from(Array.from({ length: 3001 }, (_, i) => (i * 31) & 0xff)));
    const s = xsOta(["sign", "-k", p("sign.pem"), "-v", "1.2.3+4", "-s", "5", "--pad-header", "--encrypt", p("enc.pub.pem"), "--encrypt-keylen", "256", "--json", p("app.bin"), p("enc.img")]);
    expect(s.status, s.stderr).toBe(0);
    const out = JSON.parse(s.stdout);
    expect(out.encrypted.keyLength).toBe(256);
    const enc = readFileSync(p("enc.img"));
    expect(enc.readUInt32LE(16)).toBe(0x08);
    // the plaintext is not in the file
    expect(enc.includes(readFileSync(p("app.bin")).subarray(100, 164))).toBe(false);

    const noKey = xsOta(["verify", "-k", p("sign.pub.pem"), p("enc.img")]);
    expect(noKey.status).toBe(1);
    expect(noKey.stdout).toMatch(/ENC_NO_KEY \(reason 604\)/);
    const wrong = xsOta(["verify", "-k", p("sign.pub.pem"), "--decrypt-key", p("other.pem"), p("enc.img")]);
    expect(wrong.status).toBe(1);
    expect(wrong.stdout).toMatch(/ENC_KEY_UNWRAP \(reason 602\)/);
    const ok = xsOta(["verify", "-k", p("sign.pub.pem"), "--decrypt-key", p("enc.pem"), "--decrypted", p("slot.img"), "--json", p("enc.img")]);
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    const v = JSON.parse(ok.stdout);
    expect(v.valid).toBe(true);
    expect(v.wholeImageSha256).toBe(out.encrypted.slotImageSha256);
    const slot = readFileSync(p("slot.img"));
    expect(slot.readUInt32LE(16)).toBe(0);
    expect(slot.includes(readFileSync(p("app.bin")).subarray(100, 164))).toBe(true);
    // the slot image is an ordinary signed image
    expect(xsOta(["verify", "-k", p("sign.pub.pem"), p("slot.img")]).status).toBe(0);

    const i = xsOta(["inspect", p("enc.img")]);
    expect(i.status, i.stdout).toBe(0);
    expect(i.stdout).toMatch(/ENCRYPTED_AES256/);
    expect(i.stdout).toMatch(/ENC_EC256 \(0x32\) 129 bytes: ECIES-P256, AES-256/);
    expect(i.stdout).toMatch(/XSOTA_SLOT_TLVS \(0xb0\) \d+ bytes/);
    expect(i.stdout).not.toMatch(/MISMATCH/);

    // one flipped ciphertext byte: the decrypted image fails MCUboot's hash
    const bad = Buffer.from(enc);
    bad[0x200 + 1000] ^= 1;
    writeFileSync(p("bad.img"), bad);
    const b = xsOta(["verify", "-k", p("sign.pub.pem"), "--decrypt-key", p("enc.pem"), p("bad.img")]);
    expect(b.status).toBe(1);
    expect(b.stdout).toMatch(/IMAGE_HASH_MISMATCH/);
  });

  it("refuses --pad/--confirm with --encrypt, a key length other than 128/256, and --encrypt-keylen alone (usage, exit 2)", () => {
    expect(xsOta(["sign", "-k", p("sign.pem"), "-v", "1.0.0", "--pad-header", "-S", "0x10000", "--pad", "--encrypt", p("enc.pub.pem"), p("app.bin"), p("x.img")]).status).toBe(2);
    expect(xsOta(["sign", "-k", p("sign.pem"), "-v", "1.0.0", "--pad-header", "--encrypt", p("enc.pub.pem"), "--encrypt-keylen", "192", p("app.bin"), p("x.img")]).status).toBe(2);
    expect(xsOta(["sign", "-k", p("sign.pem"), "-v", "1.0.0", "--pad-header", "--encrypt-keylen", "256", p("app.bin"), p("x.img")]).status).toBe(2);
  });

  it("release: a full encrypted release (payload: the encrypted image, image: its --slot-image) and a delta encrypted with --encrypt", () => {
    const s1 = xsOta(["sign", "-k", p("sign.pem"), "-v", "1.0.0+1", "-s", "1", "--pad-header", p("app.bin"), p("base.img")]);
    expect(s1.status, s1.stderr).toBe(0);
    const bin2 = Buffer.from(readFileSync(p("app.bin")));
    bin2[100] ^= 0xff;
    writeFileSync(p("app2.bin"), bin2);
    const s2 = xsOta(["sign", "-k", p("sign.pem"), "-v", "1.1.0+2", "-s", "2", "--pad-header", "--encrypt", p("enc.pub.pem"), "--slot-image", p("new-slot.img"), p("app2.bin"), p("new-enc.img")]);
    expect(s2.status, s2.stderr).toBe(0);
    const full = xsOta(["release", "-k", p("sign.pem"), "--hardware-id", "usr-n520", "--image", p("new-slot.img"), "--payload", p("new-enc.img"), "--slot", "1", "-o", p("rel/full.manifest"), "--json"]);
    expect(full.status, full.stdout + full.stderr).toBe(0);
    const insp = xsOta(["inspect", p("rel/full.manifest")]);
    expect(insp.stdout).toMatch(/0x91|encryption/i);
    // the encrypted image with another image: refused before signing
    const wrong = xsOta(["release", "-k", p("sign.pem"), "--hardware-id", "usr-n520", "--image", p("base.img"), "--payload", p("new-enc.img"), "--slot", "1", "-o", p("rel/wrong.manifest")]);
    expect(wrong.status).not.toBe(0);
    expect(wrong.stdout + wrong.stderr).toMatch(/not the encrypted form of the image/);
    // a delta: the patch between the slot images, encrypted for the device key
    expect(xsOta(["diff", p("base.img"), p("new-slot.img"), "-o", p("d.xsdp")]).status).toBe(0);
    const delta = xsOta(["release", "-k", p("sign.pem"), "--hardware-id", "usr-n520", "--image", p("new-slot.img"), "--slot", "1", "--kind", "delta", "--payload", p("d.xsdp"), "--base", p("base.img"), "--encrypt", p("enc.pub.pem"), "-o", p("rel/delta.manifest")]);
    expect(delta.status, delta.stdout + delta.stderr).toBe(0);
    const patch = readFileSync(p("d.xsdp"));
    const shipped = readFileSync(p("rel/d.xsdp.enc"));
    expect(shipped.length).toBe(patch.length);
    expect(shipped.subarray(0, 4).toString()).not.toBe("XSDP");
    const v = xsOta(["verify", "-k", p("sign.pub.pem"), p("rel/delta.manifest")]);
    expect(v.status, v.stdout + v.stderr).toBe(0);
  });
});
