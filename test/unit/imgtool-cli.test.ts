/**
 * imgtool's conventions in the CLI (issue 17, build list): Intel HEX in and
 * out by extension (our own encoder/decoder, checked against hand-made
 * records), `getpub` (PEM, C array, AT+KEYADD hex, key id), imgtool's
 * `keygen -k FILE -t ecdsa-p256` spelling, and --json / --quiet.
 * MCUboot's own imgtool was run by hand on these files (README, CLI section).
 */
import { createHash, createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeIntelHex, encodeIntelHex } from "../../tools/image/ihex";
import { xsOta } from "../lib/cli";

let dir: string;
const p = (n: string) => join(dir, n);
const ok = (args: string[]) => {
  const r = xsOta(args);
  expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-imgtool-cli-"));
});

describe("Intel HEX", () => {
  it("encodes records as intelhex does (16 bytes, 04 records at 64 KiB boundaries, checksums; lines as intelhex 2.3 writes them) and decodes them back", () => {
    const text = encodeIntelHex([{ address: 0x0801fff8, bytes: Uint8Array.from({ length: 24 }, (_, i) => i) }]);
    expect(text.split("\n")).toEqual([
      ":020000040801F1",
      ":08FFF8000001020304050607E5",
      ":020000040802F0",
      ":1000000008090A0B0C0D0E0F1011121314151617F8",
      ":00000001FF",
      "",
    ]);
    const back = decodeIntelHex(text);
    expect(back.baseAddress).toBe(0x0801fff8);
    expect(Array.from(back.bytes)).toEqual(Array.from({ length: 24 }, (_, i) => i));
  });
  it("fills gaps with 0xff, reads 02 segment records, refuses bad checksums and a missing end record", () => {
    const gap = decodeIntelHex(":020000021000EC\n:0100000011EE\n:0100020022DB\n:00000001FF\n");
    expect(gap.baseAddress).toBe(0x10000);
    expect(Array.from(gap.bytes)).toEqual([0x11, 0xff, 0x22]);
    expect(() => decodeIntelHex(":0100000011EF\n:00000001FF\n", "x.hex")).toThrow(/x\.hex:1: checksum mismatch/);
    expect(() => decodeIntelHex(":0100000011EE\n", "x.hex")).toThrow(/no end-of-file record/);
  });
  it("sign reads a .hex IN and writes a .hex OUT at the input's address less the header; verify and inspect read it", () => {
    const fw = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13 + 5) & 0xff);
    writeFileSync(p("fw.hex"), encodeIntelHex([{ address: 0x08020400, bytes: fw }]));
    ok(["keygen", "-k", p("key.pem"), "-t", "ecdsa-p256", "--public", p("pub.pem")]);
    ok(["sign", "-k", p("key.pem"), "-v", "1.0.0", "-H", "0x400", "--pad-header", p("fw.hex"), p("app.hex")]);
    ok(["sign", "-k", p("key.pem"), "-v", "1.0.0", "-H", "0x400", "--pad-header", p("fw.hex"), p("app.bin")]);
    const hex = decodeIntelHex(readFileSync(p("app.hex"), "latin1"));
    expect(hex.baseAddress).toBe(0x08020000);
    // The same image as the binary output, header and body (the ECDSA signature differs per run).
    expect(Buffer.compare(Buffer.from(hex.bytes.subarray(0, 0x400 + 5000)), readFileSync(p("app.bin")).subarray(0, 0x400 + 5000))).toBe(0);
    expect(ok(["verify", "-k", p("pub.pem"), p("app.hex")]).stdout).toMatch(/^valid: image 1\.0\.0\+0/);
    expect(ok(["inspect", p("app.hex")]).stdout).toMatch(/SHA256 TLV: +ok/);
  });
  it("a padded .hex holds the image and the trailer's set bytes only; a binary IN needs --hex-addr", () => {
    writeFileSync(p("fw.bin"), Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff));
    const r = xsOta(["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", p("fw.bin"), p("x.hex")]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/needs an address: give --hex-addr/);
    ok(["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", "-S", "0x10000", "--align", "8", "--pad", "--confirm", "-x", "0x08040000", p("fw.bin"), p("pad.hex")]);
    const text = readFileSync(p("pad.hex"), "latin1");
    expect(text.split("\n").length).toBeLessThan(300); // not 64 KiB of 0xff records
    const h = decodeIntelHex(text);
    expect(h.baseAddress).toBe(0x08040000);
    expect(h.bytes.length).toBe(0x10000);
    expect(ok(["inspect", p("pad.hex")]).stdout).toMatch(/image_ok set \(confirmed\)/);
  });
});

describe("xs-ota getpub", () => {
  it("prints the key id, the AT+KEYADD hex, PEM and imgtool's C array, each alone with -e", () => {
    const spki = createPublicKey(readFileSync(p("pub.pem"), "utf8")).export({ format: "der", type: "spki" });
    const id = createHash("sha256").update(spki).digest("hex");
    expect(ok(["getpub", "-k", p("key.pem"), "-e", "id"]).stdout.trim()).toBe(id);
    expect(ok(["getpub", "-k", p("pub.pem"), "-e", "id"]).stdout.trim()).toBe(id);
    const at = ok(["getpub", "-k", p("key.pem"), "-e", "at"]).stdout.trim();
    expect(at).toMatch(/^04[0-9a-f]{128}$/);
    expect(at).toBe(spki.subarray(spki.length - 65).toString("hex"));
    expect(ok(["getpub", "-k", p("key.pem"), "-e", "pem"]).stdout).toBe(readFileSync(p("pub.pem"), "utf8"));
    const c = ok(["getpub", "-k", p("key.pem"), "-e", "lang-c"]).stdout;
    expect(c).toContain("const unsigned char ecdsa_pub_key[] = {\n    0x30, 0x59, 0x30, 0x13,");
    expect(c).toContain("const unsigned int ecdsa_pub_key_len = 91;");
    const all = ok(["getpub", "-k", p("key.pem")]).stdout;
    for (const s of [id, `AT+KEYADD=${at}`, "BEGIN PUBLIC KEY", "ecdsa_pub_key_len"]) expect(all).toContain(s);
    expect(xsOta(["getpub", "-k", p("key.pem"), "-e", "rust"]).status).toBe(2);
  });
});

describe("keygen's imgtool spelling, --json and --quiet", () => {
  it("keygen -k FILE -t ecdsa-p256 writes the key; another -t is refused", () => {
    ok(["keygen", "-k", p("k2.pem"), "-t", "ecdsa-p256"]);
    expect(readFileSync(p("k2.pem"), "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const r = xsOta(["keygen", "-k", p("k3.pem"), "-t", "rsa-2048"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/must be ecdsa-p256/);
  });
  it("--json: one object on stdout, the text on stderr (sign, verify, diff, inspect)", () => {
    const s = ok(["sign", "-k", p("key.pem"), "-v", "2.0.0", "--pad-header", p("fw.bin"), p("j.img"), "--json"]);
    const so = JSON.parse(s.stdout);
    expect(so).toMatchObject({ file: p("j.img"), version: "2.0.0+0" });
    expect(so.wholeImageSha256).toBe(createHash("sha256").update(readFileSync(p("j.img"))).digest("hex"));
    expect(s.stderr).toMatch(/^wrote /);
    const v = xsOta(["verify", "-k", p("pub.pem"), p("j.img"), "--json"]);
    expect(JSON.parse(v.stdout)).toMatchObject({ valid: true, kind: "image", version: "2.0.0+0" });
    const bad = xsOta(["verify", "-k", p("pub.pem"), p("fw.bin"), "--json"]);
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ valid: false, reason: "IMAGE_BAD_MAGIC" });
    const d = ok(["diff", p("app.bin"), p("j.img"), "-o", p("j.xsdp"), "--json"]);
    expect(JSON.parse(d.stdout)).toMatchObject({ file: p("j.xsdp"), new: { length: readFileSync(p("j.img")).length } });
    const i = ok(["inspect", p("j.xsdp"), "--json"]);
    expect(JSON.parse(i.stdout)).toMatchObject({ kind: "patch", ok: true });
    const e = xsOta(["sign", "-v", "1.0.0", "--pad-header", p("nope.bin"), p("x.img"), "--json"]);
    expect(e.status).toBe(1);
    expect(JSON.parse(e.stdout)).toMatchObject({ ok: false, exitCode: 1 });
  });
  it("--quiet prints nothing on success; errors still reach stderr", () => {
    const q = ok(["sign", "-k", p("key.pem"), "-v", "2.0.0", "--pad-header", p("fw.bin"), p("q.img"), "--quiet"]);
    expect(q.stdout + q.stderr).toBe("");
    const v = ok(["verify", "-q", "-k", p("pub.pem"), p("q.img")]);
    expect(v.stdout).toBe("");
    const e = xsOta(["sign", "-k", p("key.pem"), "-v", "2.0.0", "--pad-header", p("fw.bin"), p("q.img"), "--quiet"]);
    expect(e.status).toBe(1);
    expect(e.stderr).toMatch(/exists; use --force/);
  });
});
