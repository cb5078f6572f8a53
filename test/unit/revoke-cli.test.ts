/**
 * `xs-ota revoke` and `xs-ota inspect` on a revocation record, as a user runs
 * them (the built bundle): a record blocking an image file and a hex hash,
 * authenticated by the device's own parser; the hash of an image file is the
 * complete image's (what `xs-ota release` binds); one-line errors with the
 * usage exit code for bad arguments.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { Reason } from "../../src/errors";
import { readReleaseDir } from "../../tools/release/read";
import { parseSignedRevocation, checkRevoked } from "../../src/update/revocation";
import { toHex } from "../../src/util/bytes";
import { readPublicKey } from "../../tools/keys/pem";

let dir: string;
const p = (name: string) => join(dir, name);
const HEX = "ab".repeat(32);

function oneLineError(r: { stderr: string }): void {
  expect(r.stderr.trim().split("\n").length).toBe(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-revoke-cli-"));
  writeFileSync(p("app.bin"), Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + (i >> 4)) & 0xff));
  expect(xsOta(["keygen", "-o", p("key.pem"), "--public", p("pub.pem")]).status).toBe(0);
  expect(xsOta(["keygen", "-o", p("other.pem"), "--public", p("other.pub.pem")]).status).toBe(0);
  const s = xsOta(["sign", "--key", p("key.pem"), "--version", "1.3.0+2", "--security-counter", "4", "--header-size", "0x200", "--pad-header", "--slot-size", "0x10000", "--align", "8", p("app.bin"), p("app.img")]);
  expect(s.stderr).toBe("");
  // The same image padded to the slot (as for factory programming): --block must hash only the image.
  const padded = xsOta(["sign", "--key", p("key.pem"), "--version", "1.3.0+2", "--security-counter", "4", "--header-size", "0x200", "--pad-header", "--slot-size", "0x10000", "--align", "8", "--pad", p("app.bin"), p("app-padded.img")]);
  expect(padded.status).toBe(0);
  const r = xsOta(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("app.img"), "--slot", "1", "--issued-at", "1800000000", "-o", p("app.manifest")]);
  expect(r.stderr).toBe("");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("xs-ota revoke", () => {
  it("writes a signed record that the device authenticates; --block IMAGE hashes the complete image as the manifest binds it", () => {
    const r = xsOta([
      "revoke", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--sequence", "7", "--min-version", "1.2.0", "--min-security-counter", "3",
      "--block", p("app-padded.img"), "--block", HEX, "--issued-at", "1800000100", "--note", "RS-485 dead after 1.3.0", "-o", p("usr-n520-7.revocation"),
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/usr-n520 sequence 7, min version 1\.2\.0\+0, min security counter 3, 2 blocked image\(s\)/);
    const keyring = createKeyring([readPublicKey(p("pub.pem"))], softwareDigest);
    const parsed = parseSignedRevocation(new Uint8Array(readFileSync(p("usr-n520-7.revocation"))), keyring, softwareDigest);
    if (!parsed.ok) throw new Error(parsed.message);
    const rec = parsed.record;
    expect(rec).toMatchObject({ hardwareId: "usr-n520", sequence: 7, issuedAt: 1_800_000_100, minVersion: { major: 1, minor: 2, revision: 0, build: 0 }, minSecurityCounter: 3 });
    const release = readReleaseDir(dir)[0].manifest;
    expect(rec.blocked.map(toHex)).toEqual([toHex(release.image.sha256), HEX]);
    expect(toHex(rec.blocked[0])).toBe(toHex(sha256(readFileSync(p("app.img")))));
    // The release it names is now revoked; the device refuses its offer.
    expect(checkRevoked(rec, { version: release.version, securityCounter: release.securityCounter, imageSha256: release.image.sha256 })).toBe(Reason.REVOKED);
    // Another device's keyring does not trust it.
    const other = createKeyring([readPublicKey(p("other.pub.pem"))], softwareDigest);
    const refused = parseSignedRevocation(new Uint8Array(readFileSync(p("usr-n520-7.revocation"))), other, softwareDigest);
    expect(refused.ok ? 0 : refused.reason).toBe(Reason.REVOCATION_UNKNOWN_KEY);
  });

  it("defaults: no minimums, no blocked images (a record that lifts earlier ones)", () => {
    const r = xsOta(["revoke", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--sequence", "8", "-o", p("clear.revocation")]);
    expect(r.status).toBe(0);
    const parsed = parseSignedRevocation(new Uint8Array(readFileSync(p("clear.revocation"))), createKeyring([readPublicKey(p("pub.pem"))], softwareDigest), softwareDigest);
    expect(parsed.ok && parsed.record).toMatchObject({ sequence: 8, minSecurityCounter: 0, minVersion: { major: 0, minor: 0, revision: 0, build: 0 }, blocked: [] });
  });

  it("xs-ota inspect dumps every field, the note and the blocked hashes", () => {
    const r = xsOta(["inspect", p("usr-n520-7.revocation")]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^signed revocation record \(envelope v1, \d+ bytes\)/);
    expect(r.stdout).toMatch(/hardware id: +usr-n520/);
    expect(r.stdout).toMatch(/sequence: +7/);
    expect(r.stdout).toMatch(/min version: +1\.2\.0\+0/);
    expect(r.stdout).toMatch(/min sec count: +3/);
    expect(r.stdout).toMatch(/blocked images: 2/);
    expect(r.stdout).toContain(`whole-image SHA-256 ${HEX}`);
    expect(r.stdout).toMatch(/note: +RS-485 dead after 1\.3\.0/);
    // A damaged record is named and refused, not dumped as if it were fine.
    const bad = new Uint8Array(readFileSync(p("usr-n520-7.revocation")));
    writeFileSync(p("bad.revocation"), bad.subarray(0, bad.length - 3));
    const b = xsOta(["inspect", p("bad.revocation")]);
    expect(b.status).toBe(1);
    expect(b.stdout).toMatch(/REFUSED: MANIFEST_TRUNCATED/);
  });

  const bad: [string, string[], number, RegExp][] = [
    ["no --sequence", ["--hardware-id", "usr-n520"], 2, /--sequence is required/],
    ["sequence 0", ["--hardware-id", "usr-n520", "--sequence", "0"], 2, /--sequence must be 1\.\.4294967295/],
    ["sequence over 32 bits", ["--hardware-id", "usr-n520", "--sequence", "4294967296"], 2, /--sequence must be/],
    ["bad --min-version", ["--hardware-id", "usr-n520", "--sequence", "1", "--min-version", "1.x"], 2, /--min-version/],
    ["17 --block", ["--hardware-id", "usr-n520", "--sequence", "1", ...Array.from({ length: 17 }, (_, i) => ["--block", i.toString(16).padStart(64, "0")]).flat()], 2, /at most 16 --block/],
    ["--block neither hex nor a file", ["--hardware-id", "usr-n520", "--sequence", "1", "--block", "abc"], 1, /neither 64 hex digits nor an image file/],
    ["--block a file that is no image", ["--hardware-id", "usr-n520", "--sequence", "1", "--block", "APP_BIN"], 1, /not a valid MCUboot image/],
    ["hardware id with a space", ["--hardware-id", "usr n520", "--sequence", "1"], 1, /a device would refuse/],
  ];
  for (const [name, args, code, message] of bad) {
    it(`${name} → exit ${code}, one line`, () => {
      const r = xsOta(["revoke", "-k", p("key.pem"), ...args.map((a) => (a === "APP_BIN" ? p("app.bin") : a)), "-o", p("x.revocation")]);
      expect(r.status).toBe(code);
      expect(r.stderr).toMatch(message);
      oneLineError(r);
    });
  }
});
