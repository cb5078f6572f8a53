/**
 * XS entry for the signed-update code (test/xs/verify.test.ts, bench/verify.bench.ts):
 * the device-side verification runs inside the real XS engine. Images and
 * manifests are made here too (portable host encoders), since the lane passes
 * only task names.
 */
import { NorFlash } from "../../../hal/mock/flash";
import type { Flash } from "../../../hal/types";
import { createKeyring } from "../../../src/crypto/keyring";
import { verifyP256 } from "../../../src/crypto/ecdsa";
import { softwareDigest } from "../../../src/crypto/sha256";
import { Reason, reasonName } from "../../../src/errors";
import { parseVersion } from "../../../src/image/format";
import { imageSignatureChecker } from "../../../src/image/signature";
import { verifyImage } from "../../../src/image/verify";
import { checkImageAgainstManifest, parseSignedManifest } from "../../../src/update/manifest";
import { checkPolicy } from "../../../src/update/policy";
import { sha256Of } from "../../../src/crypto/hash";
import { signImage } from "../../../tools/image/sign";
import { signerFromSecret } from "../../../tools/keys/signer";
import { signManifest } from "../../../tools/release/encode";
import { serve, task } from "../runtime";

const key = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));
const stranger = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => (i * 5 + 1) & 0xff));
const keyring = createKeyring([key.publicKey], softwareDigest);
const checkSignature = imageSignatureChecker(keyring);

export const MIB = 1024 * 1024;
/** The slot for the 1 MiB image: 1 MiB + 64 KiB, 4 KiB sectors, 32-byte writes (STM32H7-like). */
export const BIG_SLOT = MIB + 64 * 1024;

function body(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function program(image: Uint8Array, size: number): NorFlash {
  const f = new NorFlash({ size, blockLength: 4096, writeAlign: 32 });
  for (let b = 0; b < size / 4096; b++) f.eraseBlock(b);
  const len = Math.ceil(image.length / 32) * 32;
  for (let off = 0; off < len; off += 1024) {
    const chunk = new Uint8Array(Math.min(1024, len - off)).fill(0xff);
    chunk.set(image.subarray(off, Math.min(off + chunk.length, image.length)));
    f.write(chunk, off);
  }
  return f;
}

function verify(slot: Flash): { ok: boolean; reason: string } {
  const r = verifyImage(slot, { digest: softwareDigest, checkSignature });
  return { ok: r.ok, reason: reasonName(r.ok ? Reason.OK : r.reason) };
}

let big: { flash: NorFlash; image: Uint8Array } | undefined;

task("setup-1m", () => {
  const image = signImage({ input: body(MIB, 42), padHeader: true, headerSize: 0x200, version: parseVersion("2.0.0+1"), securityCounter: 4, signer: key });
  big = { flash: program(image, BIG_SLOT), image };
  return image.length;
});

/** The measured task: streaming verification of a 1 MiB signed image in a mock flash slot. */
task("verify-1m", () => {
  if (!big) throw new Error("run setup-1m first");
  const r = verifyImage(big.flash, { digest: softwareDigest, checkSignature });
  return { ok: r.ok, reason: reasonName(r.ok ? Reason.OK : r.reason), totalLength: r.ok ? r.info.totalLength : 0 };
});

task("verify-1m-tampered", () => {
  if (!big) throw new Error("run setup-1m first");
  const at = 0x200 + 777_777;
  big.flash.cells[at] ^= 0x01; // a bit flip in the body, as flash corruption would do
  try {
    return verify(big.flash);
  } finally {
    big.flash.cells[at] ^= 0x01;
  }
});

const ecdsaDigest = sha256Of(softwareDigest, body(64, 1));
const ecdsaSignature = key.sign(ecdsaDigest);

/** One ECDSA P-256 verification (the signature is made at load time, outside the measure). */
task("ecdsa-verify", () => reasonName(verifyP256(ecdsaDigest, ecdsaSignature, key.publicKey)));

task("sha256-1m", () => {
  const h = softwareDigest.sha256();
  const chunk = body(1024, 5);
  for (let i = 0; i < 1024; i++) h.update(chunk);
  return h.finish().length;
});

/** A small image: round trip, tamper at every position, an unknown key, an unsigned image. */
task("small-matrix", () => {
  const image = signImage({ input: body(64, 9), padHeader: true, headerSize: 32, version: parseVersion("1.2.3+4"), securityCounter: 5, signer: key });
  const refused: { [reason: string]: number } = {};
  let accepted = 0;
  const good = verify(program(image, 4096)).ok;
  for (let i = 0; i < image.length; i++) {
    const t = Uint8Array.from(image);
    t[i] ^= 0xff;
    const r = verify(program(t, 4096));
    if (r.ok) accepted++;
    else refused[r.reason] = (refused[r.reason] ?? 0) + 1;
  }
  const stranger1 = verify(program(signImage({ input: body(64, 9), padHeader: true, headerSize: 32, version: parseVersion("1.0.0"), signer: stranger }), 4096));
  const unsigned = verify(program(signImage({ input: body(64, 9), padHeader: true, headerSize: 32, version: parseVersion("1.0.0") }), 4096));
  return { good, positions: image.length, accepted, refused, stranger: stranger1.reason, unsigned: unsigned.reason };
});

/** Manifest: parse + policy + image binding inside XS. */
task("manifest", () => {
  const image = signImage({ input: body(3000, 3), padHeader: true, version: parseVersion("1.3.0"), securityCounter: 2, signer: key });
  const slot = program(image, 8192);
  const imageSha = sha256Of(softwareDigest, image);
  const m = {
    hardwareId: "usr-n520",
    version: parseVersion("1.3.0"),
    securityCounter: 2,
    slot: 1 as const,
    image: { length: image.length, sha256: imageSha },
    payload: { kind: "full" as const, length: image.length, sha256: imageSha, compression: "none" },
    fetch: { stream: "app.bin" },
    issuedAt: 1_800_000_000,
    expiresAt: 1_800_086_400,
    maxDownload: 2 * image.length,
  };
  const env = signManifest(m, key);
  const parsed = parseSignedManifest(env, keyring, softwareDigest);
  if (!parsed.ok) return { parsed: reasonName(parsed.reason) };
  const state = {
    hardwareId: "usr-n520",
    runningVersion: parseVersion("1.2.0"),
    protectedCounter: 2,
    trustedTime: 1_800_000_100,
    newestIssuedAt: 0,
    handledReleaseIds: [],
    runningImageSha256: new Uint8Array(32),
    slotSize: 8000,
  };
  const policy = checkPolicy(parsed.accepted, state);
  const replay = checkPolicy(parsed.accepted, { ...state, handledReleaseIds: [parsed.accepted.releaseId] });
  const r = verifyImage(slot, { digest: softwareDigest, checkSignature });
  const tampered = Uint8Array.from(env);
  tampered[20] ^= 1;
  const bad = parseSignedManifest(tampered, keyring, softwareDigest);
  return {
    parsed: "OK",
    policy: policy.ok ? "OK" : reasonName(policy.reason),
    replay: replay.ok ? "OK" : reasonName(replay.reason),
    binding: r.ok ? reasonName(checkImageAgainstManifest(slot, r.info, parsed.accepted.manifest, softwareDigest)) : "image invalid",
    tampered: bad.ok ? "OK" : reasonName(bad.reason),
    unknownKey: (() => {
      const x = parseSignedManifest(signManifest(m, stranger), keyring, softwareDigest);
      return x.ok ? "OK" : reasonName(x.reason);
    })(),
  };
});

serve();
