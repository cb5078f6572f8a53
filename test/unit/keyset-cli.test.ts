/**
 * `xs-ota keyset make|inspect`, `xs-ota release --keyset`, `xs-ota revoke
 * --epoch` and `xs-ota inspect` on a key set, as a user runs them (the built
 * bundle): the files are authenticated by the device's own parsers, a batch
 * key the key set does not certify is not signed for, a rotation that a
 * device would refuse is not written, errors are one line.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";
import { createKeyring, KeyRole } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { DeviceTrust, parseSignedKeySet } from "../../src/update/keyset";
import { parseSignedManifest } from "../../src/update/manifest";
import { parseSignedRevocation } from "../../src/update/revocation";
import { toHex } from "../../src/util/bytes";
import { readPublicKey } from "../../tools/keys/pem";
import { reasonName } from "../../src/errors";

let dir: string;
const p = (name: string) => join(dir, name);
const T = "1800000000";

function oneLineError(r: { stderr: string }): void {
  expect(r.stderr.trim().split("\n").length).toBe(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-keyset-cli-"));
  for (const k of ["root", "batch1", "batch2", "time", "image"]) expect(xsOta(["keygen", "-o", p(`${k}.pem`), "--public", p(`${k}.pub.pem`)]).status).toBe(0);
  writeFileSync(p("app.bin"), Uint8Array.from({ length: 4000 }, (_, i) => (i * 13) & 0xff));
  const s = xsOta(["sign", "--key", p("image.pem"), "--version", "1.4.0", "--security-counter", "1", "--pad-header", "--slot-size", "0x10000", "--align", "8", p("app.bin"), p("app.img")]);
  expect(s.stderr).toBe("");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const roots = () => createKeyring([readPublicKey(p("root.pub.pem"))], softwareDigest);

describe("xs-ota keyset", () => {
  it("make writes a root-signed key set the device takes; inspect shows it and checks the root", () => {
    const r = xsOta([
      "keyset", "make", "--root", p("root.pem"), "--sequence", "1", "--issued-at", T,
      "--key", `${p("batch1.pub.pem")},roles=manifest+revocation,hw=usr-n520`, "--key", `${p("time.pub.pem")},roles=time,until=+3650d`,
      "--note", "first fleet key set", "-o", p("fleet-1.keyset"),
    ]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/key set 0\.1, 2 key\(s\), 0 retired/);
    const parsed = parseSignedKeySet(new Uint8Array(readFileSync(p("fleet-1.keyset"))), roots(), softwareDigest);
    if (!parsed.ok) throw new Error(parsed.message);
    expect(parsed.keySet.keys.map((k) => k.roles)).toEqual([KeyRole.MANIFEST | KeyRole.REVOCATION, KeyRole.TIME]);
    expect(parsed.keySet.keys[0].scope).toEqual({ hardwareId: "usr-n520", notBefore: 1_800_000_000, notAfter: 1_800_000_000 + 730 * 86400 });
    expect(parsed.keySet.keys[1].scope.notAfter).toBe(1_800_000_000 + 3650 * 86400);
    const i = xsOta(["keyset", "inspect", p("fleet-1.keyset"), "--root", p("root.pub.pem")]);
    expect(i.status).toBe(0);
    expect(i.stdout).toMatch(/sequence:\s+1 \(epoch 0\)/);
    expect(i.stdout).toMatch(/roles manifest,revocation; hardware usr-n520/);
    expect(i.stdout).toMatch(/note:\s+first fleet key set/);
    expect(i.stdout).toMatch(/root signature: verified/);
    const wrongRoot = xsOta(["keyset", "inspect", p("fleet-1.keyset"), "--root", p("batch1.pub.pem")]);
    expect(wrongRoot.status).toBe(1);
    expect(wrongRoot.stderr).toMatch(/KEYSET_UNKNOWN_ROOT/);
    const generic = xsOta(["inspect", p("fleet-1.keyset")]);
    expect(generic.status).toBe(0);
    expect(generic.stdout).toMatch(/signed key set/);
  });

  it("a rotation retires the old batch key; a step or epoch a device would refuse is not written", () => {
    const base = ["keyset", "make", "--root", p("root.pem"), "--issued-at", T, "--previous", p("fleet-1.keyset"), "--key", `${p("batch2.pub.pem")},roles=manifest+revocation,hw=usr-n520`, "--key", `${p("time.pub.pem")},roles=time`];
    const r = xsOta([...base, "--sequence", "2", "--retire", p("batch1.pub.pem"), "-o", p("fleet-2.keyset")]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/key set 0\.2, 2 key\(s\), 1 retired/);
    for (const [extra, msg] of [
      [["--sequence", "1"], /not above/],
      [["--sequence", "70000"], /SEQUENCE_JUMP/],
      [["--sequence", "1", "--epoch", "2"], /epoch 2 after 0/],
    ] as const) {
      const bad = xsOta([...base, ...extra, "-o", p("bad.keyset")]);
      expect(bad.status, bad.stderr).toBe(1);
      expect(bad.stderr).toMatch(msg);
      oneLineError(bad);
      expect(existsSync(p("bad.keyset"))).toBe(false);
    }
    const usage = xsOta(["keyset", "make", "--root", p("root.pem"), "--sequence", "3", "--key", `${p("batch2.pub.pem")}`, "-o", p("bad.keyset")]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/roles=/);
  });

  it("release --keyset signs only with a certified batch key and places the key set beside the manifest; the device takes it", () => {
    const rel = join(dir, "rel");
    const ok = xsOta(["release", "-k", p("batch2.pem"), "--keyset", p("fleet-2.keyset"), "--hardware-id", "usr-n520", "--image", p("app.img"), "--slot", "1", "--issued-at", T, "-o", join(rel, "app.manifest")]);
    expect(ok.stderr).toBe("");
    expect(existsSync(join(rel, "fleet-2.keyset"))).toBe(true);
    const ks = parseSignedKeySet(new Uint8Array(readFileSync(join(rel, "fleet-2.keyset"))), roots(), softwareDigest);
    if (!ks.ok) throw new Error(ks.message);
    const trust = new DeviceTrust(createKeyring([readPublicKey(p("image.pub.pem"))], softwareDigest), roots(), ks.keySet);
    const m = parseSignedManifest(new Uint8Array(readFileSync(join(rel, "app.manifest"))), trust, softwareDigest);
    expect(m.ok).toBe(true);
    for (const [key, hw, why] of [
      ["batch1.pem", "usr-n520", "KEY_RETIRED"],
      ["batch2.pem", "usr-g771", "KEY_WRONG_HARDWARE"],
      ["time.pem", "usr-n520", "KEY_WRONG_ROLE"],
      ["root.pem", "usr-n520", "MANIFEST_UNKNOWN_KEY"],
    ]) {
      const bad = xsOta(["release", "-k", p(key), "--keyset", p("fleet-2.keyset"), "--hardware-id", hw, "--image", p("app.img"), "--slot", "1", "--issued-at", T, "-o", join(rel, "bad.manifest")]);
      expect(bad.status, `${key} ${hw}`).toBe(1);
      expect(bad.stderr).toMatch(new RegExp(why));
      oneLineError(bad);
      expect(existsSync(join(rel, "bad.manifest"))).toBe(false);
    }
  });

  it("revoke --epoch writes a record of that epoch, signed by a key of the revocation role", () => {
    const r = xsOta(["revoke", "-k", p("batch2.pem"), "--hardware-id", "usr-n520", "--sequence", "1", "--epoch", "1", "--issued-at", T, "-o", p("e1.revocation")]);
    expect(r.stderr).toBe("");
    const ks = parseSignedKeySet(new Uint8Array(readFileSync(p("fleet-2.keyset"))), roots(), softwareDigest);
    if (!ks.ok) throw new Error(ks.message);
    const trust = new DeviceTrust(createKeyring([readPublicKey(p("image.pub.pem"))], softwareDigest), roots(), ks.keySet);
    const parsed = parseSignedRevocation(new Uint8Array(readFileSync(p("e1.revocation"))), trust, softwareDigest);
    expect(parsed.ok && parsed.record.epoch).toBe(1);
    const byImageKey = parseSignedRevocation(
      new Uint8Array(readFileSync(p("e1.revocation"))),
      new DeviceTrust(createKeyring([readPublicKey(p("image.pub.pem"))], softwareDigest), roots(), { ...ks.keySet, keys: ks.keySet.keys.filter((k) => toHex(k.keyId) !== toHex(ks.keySet.keys[0].keyId)) }),
      softwareDigest,
    );
    expect(!byImageKey.ok && reasonName(byImageKey.reason)).toBe("REVOCATION_UNKNOWN_KEY");
    expect(xsOta(["inspect", p("e1.revocation")]).stdout).toMatch(/sequence:\s+1 \(epoch 1\)/);
  });
});
