/**
 * Issue 17, items 5–8, as a user meets them (the built CLI): each hash named
 * for what it is and revoke refusing a hash that names no known image;
 * messages that say what is wrong, in one line, naming the argument or file;
 * bad input refused instead of exit 0; one overwrite rule for every writer.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";

let dir: string;
const p = (name: string) => join(dir, name);
const sha = (path: string, n?: number) => createHash("sha256").update(readFileSync(path).subarray(0, n)).digest("hex");
function ok(args: string[]) {
  const r = xsOta(args);
  expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r;
}
/** A failure: the exit code, one line on stderr matching `msg`, no stack trace. */
function fails(args: string[], code: number, msg: RegExp) {
  const r = xsOta(args);
  expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(code);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(msg);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  if (code === 2) expect(lines[0]).toMatch(/\(see xs-ota \w+ --help\)$/);
  return r;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-cli-errors-"));
  writeFileSync(p("app.bin"), Uint8Array.from({ length: 6000 }, (_, i) => (i * 7 + (i >> 4)) & 0xff));
  writeFileSync(p("app2.bin"), Uint8Array.from({ length: 6100 }, (_, i) => (i * 5 + (i >> 3)) & 0xff));
  writeFileSync(p("empty.bin"), new Uint8Array(0));
  ok(["keygen", "-o", p("key.pem"), "--public", p("pub.pem")]);
  ok(["sign", "-k", p("key.pem"), "-v", "1.0.0", "-s", "1", "--pad-header", p("app.bin"), p("app.img")]);
  ok(["sign", "-k", p("key.pem"), "-v", "1.1.0", "-s", "1", "--pad-header", p("app2.bin"), p("app2.img")]);
  mkdirSync(p("rel"));
  ok(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("app2.img"), "--slot", "1", "-o", p("rel/app2.manifest")]);
});

describe("5. two hashes, each named for what it is", () => {
  it("verify, sign and inspect print the SHA256 TLV and the whole-image SHA-256 under their names", () => {
    const v = ok(["verify", "-k", p("pub.pem"), p("app.img")]);
    expect(v.stdout).toContain(`whole-image SHA-256 ${sha(p("app.img"))}`);
    expect(v.stdout).toMatch(/SHA256 TLV [0-9a-f]{64}/);
    expect(v.stdout).not.toMatch(/, hash [0-9a-f]/);
    const j = JSON.parse(ok(["verify", "-k", p("pub.pem"), p("app.img"), "--json"]).stdout);
    expect(j.wholeImageSha256).toBe(sha(p("app.img")));
    expect(j.sha256Tlv).not.toBe(j.wholeImageSha256);
    const i = ok(["inspect", p("app.img")]);
    expect(i.stdout).toContain(`whole-image SHA-256: ${sha(p("app.img"))}`);
    expect(i.stdout).toMatch(/SHA256 TLV: +ok/);
  });
  it("inspect names a patch's old and new hashes as whole-image SHA-256s", () => {
    writeFileSync(p("v1.bin"), Buffer.alloc(4096, 7));
    writeFileSync(p("v2.bin"), Buffer.concat([Buffer.alloc(4000, 7), Buffer.alloc(96, 9)]));
    ok(["diff", p("v1.bin"), p("v2.bin"), "-o", p("v1-v2.xsdp")]);
    const i = ok(["inspect", p("v1-v2.xsdp")]);
    expect(i.stdout).toContain(`old image:      4096 bytes, whole-image SHA-256 ${sha(p("v1.bin"))}`);
    expect(i.stdout).toContain(`new image:      4096 bytes, whole-image SHA-256 ${sha(p("v2.bin"))}`);
  });
  it("revoke --images refuses the SHA256 TLV (and says which hash to use) and a hash of no known image", () => {
    const tlv = JSON.parse(ok(["verify", "-k", p("pub.pem"), p("rel/app2.img"), "--json"]).stdout).sha256Tlv;
    const base = ["revoke", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--sequence", "1", "--images", p("rel")];
    fails([...base, "--block", tlv, "-o", p("r1.revocation")], 1, new RegExp(`SHA256 TLV .*whole-image SHA-256, which revoke takes, is ${sha(p("app2.img"))}`));
    fails([...base, "--block", "ab".repeat(32), "-o", p("r1.revocation")], 1, /no image in .* has this whole-image SHA-256.*revoke nothing/);
    expect(existsSync(p("r1.revocation"))).toBe(false);
    ok([...base, "--block", sha(p("app2.img")), "-o", p("r1.revocation")]);
  });
});

describe("6. messages that say what is wrong", () => {
  it("a truncated image is IMAGE_TRUNCATED, not IMAGE_TOO_LARGE", () => {
    writeFileSync(p("short.img"), readFileSync(p("app.img")).subarray(0, 3000));
    const r = xsOta(["verify", "-k", p("pub.pem"), p("short.img")]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/IMAGE_TRUNCATED.*truncated/);
    expect(r.stdout).not.toMatch(/TOO_LARGE/);
    fails(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("short.img"), "--slot", "1", "-o", p("x/x.manifest")], 1, /truncated/);
  });
  it("writing into a missing directory names the directory", () => {
    fails(["keygen", "-o", p("nodir/k.pem")], 1, /directory .*nodir does not exist/);
    fails(["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", p("app.bin"), p("nodir/x.img")], 1, /directory .*nodir does not exist/);
    fails(["diff", p("app.img"), p("app2.img"), "-o", p("nodir/x.xsdp")], 1, /directory .*nodir does not exist/);
  });
  it("a directory given as a file, parseArgs errors and a missing option value are one line with a hint", () => {
    fails(["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", dir, p("x.img")], 1, /IN .* is a directory, not a file/);
    fails(["inspect", dir], 1, /is a directory, not a file/);
    fails(["sign", "--bogus"], 2, /unknown option --bogus/);
    fails(["verify", "-k"], 2, /--key needs a value/);
    fails(["sign", "-k", "-v", "1.0.0", p("app.bin"), p("x.img")], 2, /--key needs a value \(a value starting with "-" is written --key=-VALUE\)/);
  });
  it("--write-align 7 is answered about --write-align", () => {
    fails(["apply", p("app.img"), p("x.xsdp"), "-o", p("x.out"), "--write-align", "7"], 2, /--write-align must be a power of two/);
  });
  it("verify --key of a file without a key says no PEM key (not 'no PEM private key')", () => {
    writeFileSync(p("garbage.pem"), "garbage\n");
    const r = fails(["verify", "-k", p("garbage.pem"), p("app.img")], 1, /--key .*garbage\.pem: no PEM key \(PUBLIC KEY, PRIVATE KEY or EC PRIVATE KEY\)/);
    expect(r.stderr).not.toMatch(/no PEM private key/);
    fails(["verify", "-k", p("missing.pem"), p("app.img")], 1, /--key .*missing\.pem: no such file/);
  });
  it("a reason name is printed once", () => {
    const other = p("other.pub.pem");
    ok(["keygen", "-o", p("other.pem"), "--public", other]);
    const v = xsOta(["verify", "-k", other, p("app.img")]);
    expect(v.status).toBe(1);
    expect(v.stdout.match(/IMAGE_UNKNOWN_KEY/g)).toHaveLength(1);
    ok(["diff", p("app.img"), p("app2.img"), "-o", p("a12.xsdp")]);
    const a = xsOta(["apply", p("app2.img"), p("a12.xsdp"), "-o", p("never.out")]);
    expect(a.status).toBe(1);
    expect(a.stderr.match(/PATCH_OLD_MISMATCH/g)).toHaveLength(1);
  });
  it("`xs-ota help sign` prints sign's usage", () => {
    const r = ok(["help", "sign"]);
    expect(r.stdout).toMatch(/^usage: xs-ota sign/);
    expect(r.stdout).toBe(ok(["sign", "--help"]).stdout);
  });
});

describe("7. bad input is refused, not accepted with exit 0", () => {
  it("sign of an empty file, and sign --pad-header of an already signed image", () => {
    fails(["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", p("empty.bin"), p("e.img")], 1, /empty.*nothing to sign/);
    fails(["sign", "-k", p("key.pem"), "-v", "1.2.0", "--pad-header", p("app.img"), p("twice.img")], 1, /already an MCUboot image/);
    expect(existsSync(p("e.img")) || existsSync(p("twice.img"))).toBe(false);
  });
  it("diff to an empty NEW", () => {
    fails(["diff", p("app.img"), p("empty.bin"), "-o", p("e.xsdp")], 1, /NEW .* is empty/);
  });
  it("demo --speed 0", () => {
    fails(["demo", "--speed", "0"], 2, /--speed must be 1\.\.1000/);
  });
  it("inspect exits 1 on a hash MISMATCH and on a MALFORMED or truncated patch", () => {
    const img = readFileSync(p("app.img"));
    img[0x300] ^= 1;
    writeFileSync(p("tampered.img"), img);
    const i = xsOta(["inspect", p("tampered.img")]);
    expect(i.status).toBe(1);
    expect(i.stdout).toMatch(/SHA256 TLV: +MISMATCH/);
    ok(["diff", p("app.img"), p("app2.img"), "-o", p("good.xsdp")]);
    ok(["inspect", p("good.xsdp")]);
    const patch = readFileSync(p("good.xsdp"));
    writeFileSync(p("cut.xsdp"), patch.subarray(0, patch.length - 20));
    expect(xsOta(["inspect", p("cut.xsdp")]).status).toBe(1);
    const bad = Buffer.from(patch);
    bad[20] ^= 1; // a header byte: the header CRC no longer matches
    writeFileSync(p("badhdr.xsdp"), bad);
    const b = xsOta(["inspect", p("badhdr.xsdp")]);
    expect(b.status).toBe(1);
    expect(b.stdout).toMatch(/INVALID/);
    const j = JSON.parse(xsOta(["inspect", p("badhdr.xsdp"), "--json"]).stdout);
    expect(j).toMatchObject({ kind: "patch", ok: false });
  });
});

describe("8. one overwrite rule: an existing output is refused without --force", () => {
  it("sign, diff, apply, release, revoke and keygen", () => {
    writeFileSync(p("exists.out"), "keep me");
    const cases: string[][] = [
      ["sign", "-k", p("key.pem"), "-v", "1.0.0", "--pad-header", p("app.bin"), p("exists.out")],
      ["diff", p("app.img"), p("app2.img"), "-o", p("exists.out")],
      ["apply", p("app.img"), p("good.xsdp"), "-o", p("exists.out")],
      ["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("app2.img"), "--slot", "1", "-o", p("exists.out")],
      ["revoke", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--sequence", "2", "-o", p("exists.out")],
      ["keygen", "-o", p("exists.out")],
    ];
    for (const args of cases) {
      fails(args, 1, /exists\.out exists; use --force to overwrite/);
      expect(readFileSync(p("exists.out"), "utf8")).toBe("keep me");
    }
    for (const args of cases) {
      writeFileSync(p("exists.out"), "keep me");
      ok([...args, "--force"]);
      expect(readFileSync(p("exists.out"), "utf8")).not.toBe("keep me");
    }
  });
});
