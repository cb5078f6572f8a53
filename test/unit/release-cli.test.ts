/**
 * `xs-ota release` refuses to sign a release every device would refuse or fail
 * to install (issue 17, item 1), and `xs-ota verify --manifest` does not call
 * such a release valid: a patch made for other images, a garbage payload, a
 * --base that is not the patch's base, a budget below the payload.
 */
import { mkdtempSync, readFileSync, existsSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { beforeAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";
import { parseVersion } from "../../src/image/format";
import { encodeManifest, signManifestBytes } from "../../tools/release/encode";
import { readSigningKey } from "../../tools/keys/pem";
import type { ReleaseManifest } from "../../src/update/types";

let dir: string;
const p = (name: string) => join(dir, name);
function firmware(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + (i >> 5) + ((i * seed) >> 9)) & 0xff);
}
const ok = (args: string[]) => {
  const r = xsOta(args);
  expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r;
};
function release(extra: string[], out = p("rel/x.manifest")) {
  return xsOta(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("b.img"), "--slot", "1", "--issued-at", "1800000000", "-o", out, ...extra]);
}
function refused(extra: string[], reason: RegExp): void {
  const r = release(extra);
  expect(r.status, extra.join(" ")).toBe(1);
  expect(r.stderr).toMatch(/would refuse this (release|manifest)/);
  expect(r.stderr).toMatch(reason);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(existsSync(p("rel/x.manifest"))).toBe(false);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-release-cli-"));
  const a = firmware(9000, 1);
  const b = Uint8Array.from(a);
  b.set(firmware(200, 5), 3000);
  writeFileSync(p("a.bin"), a);
  writeFileSync(p("b.bin"), b);
  writeFileSync(p("c.bin"), firmware(8000, 3));
  ok(["keygen", "-o", p("key.pem"), "--public", p("pub.pem")]);
  ok(["sign", "-k", p("key.pem"), "-v", "1.0.0+1", "-s", "1", "--pad-header", p("a.bin"), p("a.img")]);
  ok(["sign", "-k", p("key.pem"), "-v", "1.1.0+1", "-s", "1", "--pad-header", p("b.bin"), p("b.img")]);
  ok(["sign", "-k", p("key.pem"), "-v", "1.2.0+1", "-s", "1", "--pad-header", p("c.bin"), p("c.img")]);
  ok(["diff", p("a.img"), p("b.img"), "-o", p("ab.xsdp")]);
  ok(["diff", p("a.img"), p("c.img"), "-o", p("ac.xsdp")]);
  ok(["diff", p("c.img"), p("b.img"), "-o", p("cb.xsdp")]);
  writeFileSync(p("garbage.xsdp"), firmware(700, 9));
});

describe("xs-ota release checks the payload and the device's policy before it signs", () => {
  it("a good delta is signed, and verify --manifest --base applies it", () => {
    ok(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("b.img"), "--slot", "1", "--kind", "delta", "--payload", p("ab.xsdp"), "--base", p("a.img"), "-o", p("good/ab.manifest")]);
    const v = ok(["verify", "-k", p("pub.pem"), p("b.img"), "--manifest", p("good/ab.manifest"), "--base", p("a.img")]);
    expect(v.stdout).toMatch(/applied to --base/);
    expect(v.stdout).toMatch(/valid: matches manifest/);
  });
  it("version-2 patches of any block size are signed (their decoder's memory does not grow with it); a version-1 patch over the devices' limit is refused", () => {
    for (const [codec, size] of [["lz", "65536"], ["lzr", "65536"], ["lz", "1024"]]) {
      ok(["diff", "--codec", codec, "--block-size", size, p("a.img"), p("b.img"), "-o", p(`ab-${codec}-${size}.xsdp`)]);
      ok(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("b.img"), "--slot", "1", "--kind", "delta", "--payload", p(`ab-${codec}-${size}.xsdp`), "--base", p("a.img"), "-o", p(`good/ab-${codec}-${size}.manifest`)]);
      const v = ok(["verify", "-k", p("pub.pem"), p("b.img"), "--manifest", p(`good/ab-${codec}-${size}.manifest`), "--base", p("a.img")]);
      expect(v.stdout).toMatch(/applied to --base/);
    }
    ok(["diff", "--codec", "deflate", "--block-size", "65536", p("a.img"), p("b.img"), "-o", p("ab-deflate-65536.xsdp")]);
    const r = xsOta(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("b.img"), "--slot", "1", "--kind", "delta", "--payload", p("ab-deflate-65536.xsdp"), "--base", p("a.img"), "-o", p("bad/ab-deflate-65536.manifest")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PATCH_UNSUPPORTED.*devices take at most 32768/);
    expect(existsSync(p("bad/ab-deflate-65536.manifest"))).toBe(false);
  });
  it("a patch that makes another image → PATCH_NEW_MISMATCH", () => {
    refused(["--kind", "delta", "--payload", p("ac.xsdp"), "--base", p("a.img")], /PATCH_NEW_MISMATCH/);
  });
  it("a --base that is not the patch's base → PATCH_OLD_MISMATCH", () => {
    refused(["--kind", "delta", "--payload", p("ab.xsdp"), "--base", p("c.img")], /PATCH_OLD_MISMATCH/);
    // c → b would downgrade a device that runs c (1.2.0) to 1.1.0
    refused(["--kind", "delta", "--payload", p("cb.xsdp"), "--base", p("c.img")], /MANIFEST_DOWNGRADE/);
  });
  it("a garbage payload (not a patch) → PATCH_BAD_MAGIC", () => {
    refused(["--kind", "delta", "--payload", p("garbage.xsdp"), "--base", p("a.img")], /PATCH_BAD_MAGIC/);
  });
  it("a patch whose blocks are damaged is applied and refused", () => {
    const bytes = new Uint8Array(readFileSync(p("ab.xsdp")));
    bytes[bytes.length - 5] ^= 0x55;
    writeFileSync(p("damaged.xsdp"), bytes);
    refused(["--kind", "delta", "--payload", p("damaged.xsdp"), "--base", p("a.img")], /could not apply the patch/);
  });
  it("--max-download below the payload → MANIFEST_OVER_BUDGET", () => {
    refused(["--max-download", "10"], /MANIFEST_OVER_BUDGET/);
    refused(["--kind", "delta", "--payload", p("ab.xsdp"), "--base", p("a.img"), "--max-download", "10"], /MANIFEST_OVER_BUDGET/);
  });
  it("an image larger than --slot-size → MANIFEST_TOO_BIG_FOR_SLOT; expiry before issue → MANIFEST_EXPIRED", () => {
    refused(["--slot-size", "4096"], /MANIFEST_TOO_BIG_FOR_SLOT/);
    refused(["--expires", "1700000000"], /MANIFEST_(EXPIRED|INCONSISTENT|BAD_VALUE)/);
  });
  it("payload.compression is read from the payload: the patch header's codec for a delta, none for a full image", () => {
    ok(["diff", "--codec", "range", p("a.img"), p("b.img"), "-o", p("ab-range.xsdp")]);
    const cases: [string[], string][] = [
      [["--kind", "delta", "--payload", p("ab.xsdp"), "--base", p("a.img")], "lz"],
      [["--kind", "delta", "--payload", p("ab-range.xsdp"), "--base", p("a.img")], "range"],
      [["--kind", "delta", "--payload", p("ab-range.xsdp"), "--base", p("a.img"), "--compression", "range"], "range"],
      [[], "none"],
      [["--compression", "none"], "none"],
    ];
    cases.forEach(([extra, name], i) => {
      const out = p(`named/${i}.manifest`);
      const r = release(extra, out);
      expect(r.status, `${extra.join(" ")}: ${r.stderr}`).toBe(0);
      expect(ok(["inspect", out]).stdout).toMatch(new RegExp(`compression ${name}\\b`));
    });
  });
  it("an explicit --compression that contradicts the payload is refused (exit 1), nothing written", () => {
    for (const [extra, why] of [
      [["--kind", "delta", "--payload", p("ab.xsdp"), "--base", p("a.img"), "--compression", "deflate"], /--compression deflate contradicts the payload: the patch header says codec lz/],
      [["--kind", "delta", "--payload", p("ab.xsdp"), "--base", p("a.img"), "--compression", "none"], /--compression none contradicts/],
      [["--compression", "lz"], /--compression lz contradicts the payload: a full image is "none"/],
    ] as [string[], RegExp][]) {
      const r = release(extra, p("contradict/x.manifest"));
      expect(r.status, extra.join(" ")).toBe(1);
      expect(r.stderr).toMatch(why);
      expect(existsSync(p("contradict/x.manifest"))).toBe(false);
    }
  });
  it("--json: one object on stdout", () => {
    const r = ok(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("b.img"), "--slot", "1", "--json", "-o", p("json/b.manifest")]);
    const o = JSON.parse(r.stdout);
    expect(o).toMatchObject({ file: p("json/b.manifest"), kind: "full", version: "1.1.0+1", slot: 1 });
    expect(o.wholeImageSha256).toBe(Buffer.from(sha256(readFileSync(p("b.img")))).toString("hex"));
    expect(r.stderr).toMatch(/^wrote /);
  });
});

describe("xs-ota verify --manifest does not call a bad release valid", () => {
  // A release signed by an older xs-ota (or by hand): the manifest names b.img, the payload is a patch for other images.
  function craft(name: string, payloadFile: string, patch: Partial<ReleaseManifest["payload"]> = {}, maxDownload?: number): string {
    const payload = new Uint8Array(readFileSync(p(payloadFile)));
    const image = new Uint8Array(readFileSync(p("b.img")));
    const m: ReleaseManifest = {
      hardwareId: "usr-n520",
      version: parseVersion("1.1.0+1"),
      securityCounter: 1,
      slot: 1,
      image: { length: image.length, sha256: sha256(image) },
      payload: { kind: "delta", length: payload.length, sha256: sha256(payload), baseSha256: sha256(readFileSync(p("a.img"))), compression: "lz", ...patch },
      fetch: { stream: `${name}.payload` },
      issuedAt: 1800000000,
      expiresAt: 1800000000 + 86400,
      maxDownload: maxDownload ?? payload.length * 2,
    };
    copyFileSync(p(payloadFile), p(`crafted/${name}.payload`));
    writeFileSync(p(`crafted/${name}.manifest`), signManifestBytes(encodeManifest(m), readSigningKey(p("key.pem"))));
    return p(`crafted/${name}.manifest`);
  }
  beforeAll(() => {
    ok(["release", "-k", p("key.pem"), "--hardware-id", "usr-n520", "--image", p("b.img"), "--slot", "1", "-o", p("crafted/seed.manifest")]);
  });
  const cases: [string, string, number | undefined, RegExp][] = [
    ["other-images", "ac.xsdp", undefined, /PATCH_NEW_MISMATCH/],
    ["garbage", "garbage.xsdp", undefined, /PATCH_BAD_MAGIC/],
    ["over-budget", "ab.xsdp", 10, /MANIFEST_OVER_BUDGET/],
  ];
  it("a delta whose manifest names another codec than its patch header → exit 1, PATCH_CODEC_MISMATCH", () => {
    const m = craft("mislabelled", "ab.xsdp", { compression: "deflate" });
    const r = xsOta(["verify", "-k", p("pub.pem"), p("b.img"), "--manifest", m]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/PATCH_CODEC_MISMATCH/);
    expect(r.stdout).not.toMatch(/^valid/m);
  });
  for (const [name, payload, budget, reason] of cases) {
    it(`${name} → exit 1, invalid with the reason`, () => {
      const m = craft(name, payload, {}, budget);
      const r = xsOta(["verify", "-k", p("pub.pem"), p("b.img"), "--manifest", m]);
      expect(r.status).toBe(1);
      expect(r.stdout).toMatch(reason);
      expect(r.stdout).not.toMatch(/^valid/m);
      const alone = xsOta(["verify", "-k", p("pub.pem"), m]);
      expect(alone.status).toBe(1);
      expect(alone.stdout).toMatch(reason);
    });
  }
});
