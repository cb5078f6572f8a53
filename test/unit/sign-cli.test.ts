/**
 * The host CLI as a user runs it (the built bundle): keygen → sign → verify,
 * inspect, release (+ the release directory reader), and one-line errors.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";
import { readReleaseDir } from "../../tools/release/read";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { readPublicKey } from "../../tools/keys/pem";
import { toHex } from "../../src/util/bytes";

let dir: string;
const p = (name: string) => join(dir, name);
function firmware(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + (i >> 5)) & 0xff);
}
function oneLineError(r: { stderr: string }): void {
  expect(r.stderr.trim().split("\n").length).toBe(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-sign-cli-"));
  writeFileSync(p("app.bin"), firmware(6000, 1));
  writeFileSync(p("app2.bin"), firmware(6100, 2));
  expect(xsOta(["keygen", "-o", p("key.pem"), "--public", p("pub.pem")]).status).toBe(0);
  expect(xsOta(["keygen", "-o", p("other.pem"), "--public", p("other.pub.pem")]).status).toBe(0);
});

describe("xs-ota keygen", () => {
  it("writes a PKCS#8 private key (0600) and an SPKI public key, and prints the key id", () => {
    const r = xsOta(["keygen", "-o", p("k2.pem"), "--public", p("k2.pub.pem")]);
    expect(r.status).toBe(0);
    expect(readFileSync(p("k2.pem"), "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(readFileSync(p("k2.pub.pem"), "utf8")).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(statSync(p("k2.pem")).mode & 0o777).toBe(0o600);
    const spki = Buffer.from(readFileSync(p("k2.pub.pem"), "utf8").replace(/-----[^-]+-----|\s/g, ""), "base64");
    expect(r.stdout).toContain(`key id ${createHash("sha256").update(spki).digest("hex")}`);
  });
  it("refuses to overwrite without --force", () => {
    const r = xsOta(["keygen", "-o", p("key.pem")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/exists; use --force/);
    oneLineError(r);
  });
});

describe("xs-ota sign / verify", () => {
  beforeAll(() => {
    const r = xsOta(["sign", "--key", p("key.pem"), "--version", "1.2.3+4", "--security-counter", "5", "--header-size", "0x200", "--pad-header", "--slot-size", "0x10000", "--align", "32", p("app.bin"), p("app.img")]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("a signed image verifies with the public key and with the private key file (exit 0)", () => {
    for (const k of ["pub.pem", "key.pem"]) {
      const r = xsOta(["verify", "--key", p(k), p("app.img")]);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^valid: image 1\.2\.3\+4, security counter 5/);
    }
  });

  it("another key → exit 1 with IMAGE_UNKNOWN_KEY; a keyring of both keys → exit 0", () => {
    const r = xsOta(["verify", "--key", p("other.pub.pem"), p("app.img")]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^invalid: IMAGE_UNKNOWN_KEY \(reason 108\)/);
    expect(xsOta(["verify", "--key", p("other.pub.pem"), "--key", p("pub.pem"), p("app.img")]).status).toBe(0);
  });

  it("a tampered image → exit 1 with the reason", () => {
    const img = readFileSync(p("app.img"));
    img[0x300] ^= 1;
    writeFileSync(p("bad.img"), img);
    const r = xsOta(["verify", "--key", p("pub.pem"), p("bad.img")]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/invalid: IMAGE_HASH_MISMATCH/);
  });

  it("--pad --confirm writes a whole slot with the trailer; it still verifies", () => {
    const r = xsOta(["sign", "-k", p("key.pem"), "-v", "1.2.3", "-s", "auto", "--pad-header", "-S", "0x10000", "--confirm", "--align", "32", p("app.bin"), p("padded.img")]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`security counter ${0x01020003}`);
    expect(statSync(p("padded.img")).size).toBe(0x10000);
    expect(xsOta(["verify", "-k", p("pub.pem"), p("padded.img")]).status).toBe(0);
    expect(xsOta(["inspect", p("padded.img")]).stdout).toMatch(/image_ok set \(confirmed\)/);
  });

  it("accepts SEC1 'EC PRIVATE KEY' PEMs with an EC PARAMETERS block (as openssl ecparam -genkey writes)", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const sec1 = privateKey.export({ format: "pem", type: "sec1" }) as string;
    writeFileSync(p("sec1.pem"), "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + sec1);
    writeFileSync(p("sec1.pub.pem"), publicKey.export({ format: "pem", type: "spki" }) as string);
    expect(xsOta(["sign", "-k", p("sec1.pem"), "-v", "1.0.0", "--pad-header", p("app.bin"), p("sec1.img")]).status).toBe(0);
    expect(xsOta(["verify", "-k", p("sec1.pub.pem"), p("sec1.img")]).status).toBe(0);
  });

  it("errors are one line and a non-zero exit, never a stack trace", () => {
    const cases: [string[], number, RegExp][] = [
      [["sign", "-k", p("key.pem"), p("app.bin"), p("x.img")], 2, /--version is required/],
      [["sign", "-k", p("key.pem"), "-v", "1.2.x", "--pad-header", p("app.bin"), p("x.img")], 2, /not major\.minor\.revision\+build/],
      [["sign", "-k", p("key.pem"), "-v", "1.2.3", p("app.bin"), p("x.img")], 2, /zero bytes of header space; use --pad-header/],
      [["sign", "-k", p("nope.pem"), "-v", "1.2.3", "--pad-header", p("app.bin"), p("x.img")], 1, /no such file/],
      [["sign", "-k", p("pub.pem"), "-v", "1.2.3", "--pad-header", p("app.bin"), p("x.img")], 1, /no PEM private key/],
      [["sign", "-k", p("key.pem"), "-v", "1.2.3", "--pad-header", "-S", "0x1000", "--pad", p("app.bin"), p("x.img")], 2, /exceeds the slot size/],
      [["sign", "-k", p("key.pem"), "-v", "1.2.3", "--pad-header", "--align", "3", p("app.bin"), p("x.img")], 2, /--align must be one of/],
      [["verify", p("app.img")], 2, /--key is required/],
      [["verify", "-k", p("pub.pem"), p("app.bin")], 1, /./],
    ];
    for (const [args, code, msg] of cases) {
      const r = xsOta(args);
      expect(r.status, args.join(" ")).toBe(code);
      expect(r.stderr + r.stdout).toMatch(msg);
      if (r.stderr) oneLineError(r);
    }
  });

  it("an encrypted private key is refused with a clear message", () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    writeFileSync(p("enc.pem"), privateKey.export({ format: "pem", type: "pkcs8", cipher: "aes-256-cbc", passphrase: "pw" }) as string);
    const r = xsOta(["sign", "-k", p("enc.pem"), "-v", "1.0.0", "--pad-header", p("app.bin"), p("x.img")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/encrypted private keys are not supported/);
  });
});

describe("xs-ota release / inspect, and readReleaseDir", () => {
  let rel: string;
  beforeAll(() => {
    rel = p("releases");
    expect(xsOta(["sign", "-k", p("key.pem"), "-v", "1.0.0+1", "-s", "1", "--pad-header", p("app.bin"), p("base.img")]).status).toBe(0);
    expect(xsOta(["sign", "-k", p("key.pem"), "-v", "1.1.0+1", "-s", "1", "--pad-header", p("app2.bin"), p("new.img")]).status).toBe(0);
    expect(xsOta(["diff", p("base.img"), p("new.img"), "-o", p("new.patch")]).status).toBe(0);
  });

  it("a full release: the envelope, the payload copied next to it, and fields the server can read", () => {
    const r = xsOta(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("new.img"), "--slot", "1", "--url", "https://cdn.example.com/new.img", "--issued-at", "1800000000", "--expires", "+7d", "--note", "first", "-o", join(rel, "new.manifest")]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(readFileSync(join(rel, "new.img"))).toEqual(readFileSync(p("new.img")));
    const entries = readReleaseDir(rel);
    expect(entries.length).toBe(1);
    const e = entries[0];
    expect(e.path).toBe(join(rel, "new.manifest"));
    expect(e.payloadPath).toBe(join(rel, "new.img"));
    expect(e.manifest).toMatchObject({ hardwareId: "usr-n520", slot: 1, securityCounter: 1, issuedAt: 1800000000, expiresAt: 1800000000 + 7 * 86400, fetch: { stream: "new.img", url: "https://cdn.example.com/new.img" } });
    expect(e.manifest.payload).toMatchObject({ kind: "full", compression: "none" });
    expect(e.manifest.maxDownload).toBe(2 * e.manifest.payload.length);
    expect(toHex(e.manifest.image.sha256)).toBe(createHash("sha256").update(readFileSync(p("new.img"))).digest("hex"));
    const ring = createKeyring([readPublicKey(p("pub.pem"))], softwareDigest);
    expect(readReleaseDir(rel, { keyring: ring }).length).toBe(1);
    const errors: string[] = [];
    const strangers = createKeyring([readPublicKey(p("other.pub.pem"))], softwareDigest);
    expect(readReleaseDir(rel, { keyring: strangers, onError: (path) => errors.push(path) }).length).toBe(0);
    expect(errors).toEqual([join(rel, "new.manifest")]);

    expect(xsOta(["verify", "-k", p("pub.pem"), join(rel, "new.manifest")]).status).toBe(0);
    expect(xsOta(["verify", "-k", p("pub.pem"), p("new.img"), "--manifest", join(rel, "new.manifest")]).status).toBe(0);
    const wrong = xsOta(["verify", "-k", p("pub.pem"), p("base.img"), "--manifest", join(rel, "new.manifest")]);
    expect(wrong.status).toBe(1);
    expect(wrong.stdout).toMatch(/MANIFEST_IMAGE_MISMATCH/);
    expect(xsOta(["verify", "-k", p("other.pub.pem"), join(rel, "new.manifest")]).stdout).toMatch(/MANIFEST_UNKNOWN_KEY/);

    const ins = xsOta(["inspect", join(rel, "new.manifest")]);
    expect(ins.status).toBe(0);
    for (const s of ["hardware id:    usr-n520", "version:        1.1.0+1", "stream:         new.img", "note:           first", "payload:        full"]) expect(ins.stdout).toContain(s);
  });

  it("a delta release binds the base image hash; the payload is the patch", () => {
    const r = xsOta(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("new.img"), "--slot", "0", "--kind", "delta", "--payload", p("new.patch"), "--base", p("base.img"), "-o", join(rel, "delta.manifest")]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const e = readReleaseDir(rel).find((x) => x.path.endsWith("delta.manifest"))!;
    expect(e.payloadPath).toBe(join(rel, "new.patch"));
    expect(e.manifest.payload.kind).toBe("delta");
    expect(e.manifest.payload.length).toBe(statSync(p("new.patch")).size);
    expect(toHex(e.manifest.payload.baseSha256!)).toBe(createHash("sha256").update(readFileSync(p("base.img"))).digest("hex"));
    expect(xsOta(["inspect", join(rel, "delta.manifest")]).stdout).toMatch(/base image:     whole-image SHA-256 [0-9a-f]{64}/);
  });

  it("a payload already in the release directory is used in place", () => {
    mkdirSync(p("inplace"), { recursive: true });
    writeFileSync(p("inplace/app.img"), readFileSync(p("new.img")));
    const r = xsOta(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("inplace/app.img"), "--slot", "1", "-o", p("inplace/app.manifest")]);
    expect(r.status).toBe(0);
    expect(readReleaseDir(p("inplace"))[0].payloadPath).toBe(p("inplace/app.img"));
  });

  it("refuses a padded image as a full payload, a delta without its base, an unknown --kind", () => {
    const cases: [string[], RegExp][] = [
      [["--image", p("padded.img"), "--slot", "1"], /needs the unpadded image/],
      [["--image", p("new.img"), "--slot", "1", "--kind", "delta", "--payload", p("new.patch")], /needs --base/],
      [["--image", p("new.img"), "--slot", "1", "--kind", "partial"], /--kind must be full or delta/],
      [["--image", p("new.img"), "--slot", "2"], /--slot must be 0 or 1/],
      [["--image", p("app.bin"), "--slot", "1"], /not a valid MCUboot image/],
      [["--image", p("new.img"), "--slot", "1", "--hardware-id", "has space"], /a device would refuse/],
    ];
    for (const [extra, msg] of cases) {
      const args = ["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "-o", p("bad/x.manifest"), ...extra];
      const r = xsOta(args);
      expect(r.status, extra.join(" ")).not.toBe(0);
      expect(r.stderr).toMatch(msg);
      oneLineError(r);
    }
    expect(existsSync(p("bad/x.manifest"))).toBe(false);
  });

  it("inspect dumps a patch made by xs-ota diff (through tools/delta/inspect.ts)", () => {
    const d = xsOta(["diff", p("base.img"), p("new.img"), "-o", p("real.xsdp")]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    const r = xsOta(["inspect", p("real.xsdp")]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^xs-ota patch, \d+ bytes/);
    expect(r.stdout).toContain(createHash("sha256").update(readFileSync(p("base.img"))).digest("hex"));
  });

  it("inspect dumps an image's header and TLVs, and refuses an unknown file", () => {
    const r = xsOta(["inspect", p("new.img")]);
    expect(r.status).toBe(0);
    for (const s of ["version:        1.1.0+1", "SEC_CNT (0x50) 4 bytes: 1", "SHA256 (0x10) 32 bytes", "KEYHASH (0x1) 32 bytes", "ECDSASIG (0x22)", "SHA256 TLV:     ok"]) expect(r.stdout).toContain(s);
    const bad = xsOta(["inspect", p("app.bin")]);
    expect(bad.status).toBe(1);
    oneLineError(bad);
  });
});
