/**
 * Interop with OpenSSL for key roles (issue 16B): a root key made by openssl
 * signs a key set with `xs-ota keyset make`, and the key set's signature
 * verifies with `openssl dgst -sha256 -verify` over exactly the record bytes;
 * a batch key made by openssl is certified in it, signs a release with
 * `xs-ota release --keyset`, and the manifest's signature verifies with
 * openssl too; the key ids in the key set are SHA-256 of openssl's DER
 * public keys.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";
import { softwareDigest } from "../../src/crypto/sha256";
import { decodeKeySet, decodeKeySetEnvelope } from "../../src/update/keyset";
import { decodeEnvelope } from "../../src/update/manifest";
import { toHex } from "../../src/util/bytes";

let dir: string;
const p = (name: string) => join(dir, name);

function ok(args: string[]): Buffer {
  const r = spawnSync("openssl", args, { cwd: dir, timeout: 60_000 });
  if (r.error) throw new Error(`openssl is missing (${r.error.message}): install it (.ci/run)`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** `openssl dgst -sha256 -verify PUB -signature SIG DATA` over `data`: true when "Verified OK". */
function opensslVerifies(pub: string, data: Uint8Array, sig: Uint8Array): boolean {
  writeFileSync(p("data.bin"), data);
  writeFileSync(p("sig.der"), sig);
  const r = spawnSync("openssl", ["dgst", "-sha256", "-verify", pub, "-signature", p("sig.der"), p("data.bin")], { cwd: dir, timeout: 60_000 });
  return r.status === 0 && /Verified OK/.test(r.stdout.toString());
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-keyset-openssl-"));
  for (const k of ["root", "batch", "image"]) {
    ok(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p(`${k}.pem`)]);
    ok(["pkey", "-in", p(`${k}.pem`), "-pubout", "-out", p(`${k}.pub.pem`)]);
  }
  writeFileSync(p("app.bin"), Uint8Array.from({ length: 3000 }, (_, i) => (i * 31) & 0xff));
  const s = xsOta(["sign", "--key", p("image.pem"), "--version", "2.0.0", "--pad-header", "--slot-size", "0x10000", "--align", "8", p("app.bin"), p("app.img")]);
  expect(s.stderr).toBe("");
});

describe("key sets and OpenSSL", () => {
  it("a key set signed by an openssl root key verifies with openssl; its key ids are SHA-256 of openssl's DER keys; a release signed by the certified batch key verifies too", () => {
    const made = xsOta(["keyset", "make", "--root", p("root.pem"), "--sequence", "1", "--issued-at", "1800000000", "--key", `${p("batch.pub.pem")},roles=manifest+revocation,hw=usr-n520`, "-o", p("fleet.keyset")]);
    expect(made.stderr).toBe("");
    const env = new Uint8Array(readFileSync(p("fleet.keyset")));
    const parts = decodeKeySetEnvelope(env);
    expect(opensslVerifies(p("root.pub.pem"), parts.manifest, parts.signature)).toBe(true);
    const tampered = Uint8Array.from(parts.manifest);
    tampered[tampered.length - 1] ^= 1;
    expect(opensslVerifies(p("root.pub.pem"), tampered, parts.signature)).toBe(false);
    const der = (name: string) => ok(["pkey", "-pubin", "-in", p(name), "-outform", "DER"]);
    expect(toHex(parts.keyId)).toBe(createHash("sha256").update(der("root.pub.pem")).digest("hex"));
    expect(toHex(decodeKeySet(parts.manifest, softwareDigest).keys[0].keyId)).toBe(createHash("sha256").update(der("batch.pub.pem")).digest("hex"));

    const rel = xsOta(["release", "-k", p("batch.pem"), "--keyset", p("fleet.keyset"), "--hardware-id", "usr-n520", "--image", p("app.img"), "--slot", "1", "--issued-at", "1800000000", "-o", p("rel/app.manifest")]);
    expect(rel.stderr).toBe("");
    const m = decodeEnvelope(new Uint8Array(readFileSync(p("rel/app.manifest"))));
    expect(opensslVerifies(p("batch.pub.pem"), m.manifest, m.signature)).toBe(true);
  });
});
