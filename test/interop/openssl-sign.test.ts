/**
 * Interop with OpenSSL (a peer from Debian; missing → the lane fails):
 * openssl-made keys sign images with `xs-ota sign`; the ECDSASIG in our
 * images and the signature in our manifests verify with `openssl dgst
 * -sha256 -verify` over exactly the bytes MCUboot hashes; OpenSSL's own
 * signatures (high-S included) verify on the device side; keygen's keys read
 * back in openssl; KEYHASH is SHA-256 of openssl's DER public key.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";
import { parseImageHeader, TLV } from "../../src/image/format";
import { decodeEnvelope } from "../../src/update/manifest";
import { decodeDerSignature, P256_N } from "../../src/crypto/der";
import { toHex } from "../../src/util/bytes";
import { createHash } from "node:crypto";

let dir: string;
const p = (name: string) => join(dir, name);

function openssl(args: string[], input?: Buffer): { status: number; stdout: Buffer; stderr: string } {
  const r = spawnSync("openssl", args, { cwd: dir, input, timeout: 60_000 });
  if (r.error) throw new Error(`openssl is missing (${r.error.message}): install it (.ci/run)`);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}
function ok(args: string[]): Buffer {
  const r = openssl(args);
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** The hashed region (header + body + protected TLVs) and the TLVs of an image. */
function split(image: Uint8Array): { region: Uint8Array; tlvs: Map<number, { at: number; value: Uint8Array }> } {
  const h = parseImageHeader(image);
  const hashed = h.hdrSize + h.imgSize + h.protectTlvSize;
  const end = hashed + (image[hashed + 2] | (image[hashed + 3] << 8));
  const tlvs = new Map<number, { at: number; value: Uint8Array }>();
  for (let at = hashed + 4; at < end; ) {
    const type = image[at] | (image[at + 1] << 8);
    const len = image[at + 2] | (image[at + 3] << 8);
    tlvs.set(type, { at, value: image.subarray(at + 4, at + 4 + len) });
    at += 4 + len;
  }
  return { region: image.subarray(0, hashed), tlvs };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-openssl-"));
  writeFileSync(p("app.bin"), Uint8Array.from({ length: 20_000 }, (_, i) => (i * 29 + (i >> 8)) & 0xff));
});

describe("openssl interop", () => {
  it("an `openssl ecparam -genkey` key signs with xs-ota sign; openssl verifies the ECDSASIG over the hashed region", () => {
    ok(["ecparam", "-name", "prime256v1", "-genkey", "-out", "ec.pem"]);
    expect(readFileSync(p("ec.pem"), "utf8")).toMatch(/BEGIN EC PARAMETERS[\s\S]*BEGIN EC PRIVATE KEY/);
    ok(["ec", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"]);
    const r = xsOta(["sign", "-k", p("ec.pem"), "-v", "3.1.4+15", "-s", "9", "-H", "0x200", "--pad-header", "-S", "0x20000", "--align", "32", p("app.bin"), p("app.img")]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const image = new Uint8Array(readFileSync(p("app.img")));
    const { region, tlvs } = split(image);
    writeFileSync(p("hashed-region.bin"), region);
    writeFileSync(p("sig.der"), tlvs.get(TLV.ECDSASIG)!.value);
    const v = openssl(["dgst", "-sha256", "-verify", "ec.pub.pem", "-signature", "sig.der", "hashed-region.bin"]);
    expect(v.stdout.toString()).toMatch(/Verified OK/);
    expect(v.status).toBe(0);
    // SHA256 TLV = sha256(region), KEYHASH = sha256(openssl's DER SubjectPublicKeyInfo)
    expect(toHex(tlvs.get(TLV.SHA256)!.value)).toBe(ok(["dgst", "-sha256", "-r", "hashed-region.bin"]).toString().split(" ")[0]);
    const spki = ok(["pkey", "-pubin", "-in", "ec.pub.pem", "-outform", "DER"]);
    expect(toHex(tlvs.get(TLV.KEYHASH)!.value)).toBe(createHash("sha256").update(spki).digest("hex"));
    // and the device-side verifier agrees, with openssl's public key file
    expect(xsOta(["verify", "-k", p("ec.pub.pem"), p("app.img")]).status).toBe(0);
  });

  it("openssl refuses a tampered hashed region (the check has teeth)", () => {
    const region = readFileSync(p("hashed-region.bin"));
    region[0x250] ^= 1;
    writeFileSync(p("tampered.bin"), region);
    const v = openssl(["dgst", "-sha256", "-verify", "ec.pub.pem", "-signature", "sig.der", "tampered.bin"]);
    expect(v.status).not.toBe(0);
    expect(v.stdout.toString()).toMatch(/Verification failure/);
  });

  it("OpenSSL's own signatures spliced into the image (high-S included) verify on the device side", () => {
    const image = new Uint8Array(readFileSync(p("app.img")));
    const { tlvs } = split(image);
    const sigTlv = tlvs.get(TLV.ECDSASIG)!;
    let highS = 0;
    for (let i = 0; i < 12; i++) {
      const sig = new Uint8Array(ok(["dgst", "-sha256", "-sign", "ec.pem", "hashed-region.bin"]));
      if (decodeDerSignature(sig)!.s > P256_N / 2n) highS++;
      // rebuild the TLV area with this signature
      const before = image.subarray(0, sigTlv.at);
      const hashed = split(image).region.length;
      const out = Uint8Array.from([...before, TLV.ECDSASIG, 0, sig.length, 0, ...sig]);
      const total = out.length - hashed;
      out[hashed + 2] = total & 0xff;
      out[hashed + 3] = total >> 8;
      writeFileSync(p(`ossl-${i}.img`), out);
      const r = xsOta(["verify", "-k", p("ec.pub.pem"), p(`ossl-${i}.img`)]);
      expect(r.status, r.stdout).toBe(0);
    }
    // OpenSSL does not normalise s: with 12 signatures, P(no high-S) = 2^-12.
    expect(highS).toBeGreaterThan(0);
  });

  it("an `openssl genpkey` PKCS#8 key works too", () => {
    ok(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "pk8.pem"]);
    ok(["pkey", "-in", "pk8.pem", "-pubout", "-out", "pk8.pub.pem"]);
    expect(xsOta(["sign", "-k", p("pk8.pem"), "-v", "1.0.0", "--pad-header", p("app.bin"), p("pk8.img")]).status).toBe(0);
    expect(xsOta(["verify", "-k", p("pk8.pub.pem"), p("pk8.img")]).status).toBe(0);
  });

  it("xs-ota keygen's keys are read by openssl: PKCS#8 P-256, same public key", () => {
    expect(xsOta(["keygen", "-o", p("k.pem"), "--public", p("k.pub.pem")]).status).toBe(0);
    const text = ok(["pkey", "-in", "k.pem", "-noout", "-text"]).toString();
    expect(text).toMatch(/prime256v1|P-256/);
    const pub = ok(["pkey", "-in", "k.pem", "-pubout"]).toString();
    expect(pub).toBe(readFileSync(p("k.pub.pem"), "utf8"));
    ok(["ec", "-pubin", "-in", "k.pub.pem", "-noout"]);
  });

  it("a signed manifest's signature verifies with openssl over the exact manifest bytes", () => {
    ok(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "rel.pem"]);
    ok(["ec", "-in", "rel.pem", "-pubout", "-out", "rel.pub.pem"]);
    const unpadded = xsOta(["sign", "-k", p("ec.pem"), "-v", "3.1.5", "-s", "9", "--pad-header", p("app.bin"), p("rel.img")]);
    expect(unpadded.status).toBe(0);
    const r = xsOta(["release", "-k", p("rel.pem"), "--hardware-id", "usr-g771", "--image", p("rel.img"), "--slot", "0", "-o", p("out/rel.manifest")]);
    expect(r.stderr).toBe("");
    const env = decodeEnvelope(new Uint8Array(readFileSync(p("out/rel.manifest"))));
    writeFileSync(p("manifest.bin"), env.manifest);
    writeFileSync(p("manifest.sig"), env.signature);
    const v = openssl(["dgst", "-sha256", "-verify", "rel.pub.pem", "-signature", "manifest.sig", "manifest.bin"]);
    expect(v.stdout.toString()).toMatch(/Verified OK/);
    expect(xsOta(["verify", "-k", p("rel.pub.pem"), p("out/rel.manifest")]).status).toBe(0);
    expect(xsOta(["verify", "-k", p("rel.pub.pem"), "-k", p("ec.pub.pem"), p("rel.img"), "--manifest", p("out/rel.manifest")]).status).toBe(0);
  });
});
