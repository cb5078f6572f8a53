/**
 * Signed-image verification cost: the device-side streaming verification of
 * a 1 MiB signed MCUboot image in a mock flash slot (SHA-256 over the image in
 * 1 KiB reads, TLV walk, KEYHASH lookup, one ECDSA P-256 verify), inside XS
 * (computrons, deterministic) beside Node running the same code in the same
 * run, with the parts broken out. The peer column for the hash is OpenSSL's
 * SHA-256 through node:crypto over the same bytes.
 */
import { createHash, createPublicKey, verify as nodeVerifySig } from "node:crypto";
import { startXs } from "../test/xs/harness";
import { NorFlash } from "../hal/mock/flash";
import { createKeyring } from "../src/crypto/keyring";
import { verifyP256 } from "../src/crypto/ecdsa";
import { sha256Of } from "../src/crypto/hash";
import { softwareDigest } from "../src/crypto/sha256";
import { parseVersion } from "../src/image/format";
import { imageSignatureChecker } from "../src/image/signature";
import { verifyImage } from "../src/image/verify";
import { signImage } from "../tools/image/sign";
import { signerFromSecret } from "../tools/keys/signer";

const MIB = 1024 * 1024;
const BIG_SLOT = MIB + 64 * 1024;
const key = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));
const checkSignature = imageSignatureChecker(createKeyring([key.publicKey], softwareDigest));

function body(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function best(fn: () => void, runs = 5): number {
  let t = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    t = Math.min(t, performance.now() - t0);
  }
  return t;
}

const image = signImage({ input: body(MIB, 42), padHeader: true, headerSize: 0x200, version: parseVersion("2.0.0+1"), securityCounter: 4, signer: key });
const flash = new NorFlash({ size: BIG_SLOT, blockLength: 4096, writeAlign: 32 });
for (let b = 0; b < BIG_SLOT / 4096; b++) flash.eraseBlock(b);
const padded = new Uint8Array(Math.ceil(image.length / 32) * 32).fill(0xff);
padded.set(image);
for (let off = 0; off < padded.length; off += 1024) flash.write(padded.subarray(off, Math.min(off + 1024, padded.length)), off);

const nodeVerify = best(() => {
  if (!verifyImage(flash, { digest: softwareDigest, checkSignature }).ok) throw new Error("verification failed on Node");
});
const digest = sha256Of(softwareDigest, body(64, 1));
const signature = key.sign(digest);
const nodeEcdsa = best(() => {
  verifyP256(digest, signature, key.publicKey);
}, 20);
const chunk = body(1024, 5);
const nodeSha = best(() => {
  const h = softwareDigest.sha256();
  for (let i = 0; i < 1024; i++) h.update(chunk);
  h.finish();
});
const opensslSha = best(() => {
  const h = createHash("sha256");
  for (let i = 0; i < 1024; i++) h.update(chunk);
  h.digest();
});

// Peer: OpenSSL (node:crypto) verifying the same ECDSASIG over the same hashed region, from memory.
const hdr = new DataView(image.buffer, image.byteOffset);
const hashedLength = hdr.getUint16(8, true) + hdr.getUint32(12, true) + hdr.getUint16(10, true);
let imageSignature: Uint8Array | undefined;
for (let at = hashedLength + 4; at < image.length; ) {
  const type = image[at] | (image[at + 1] << 8);
  const len = image[at + 2] | (image[at + 3] << 8);
  if (type === 0x22) imageSignature = image.subarray(at + 4, at + 4 + len);
  at += 4 + len;
}
const pub = createPublicKey({ key: Buffer.from(key.spki), format: "der", type: "spki" });
const opensslVerify = best(() => {
  if (!nodeVerifySig("sha256", image.subarray(0, hashedLength), pub, imageSignature!)) throw new Error("openssl refused");
});

const xs = await startXs("test/xs/entries/verify.ts"); // repo-relative: benches run from the repo root
await xs.run("setup-1m");
const v = await xs.run<{ ok: boolean }>("verify-1m");
if (!v.value.ok) throw new Error("verification failed inside XS");
const e = await xs.run("ecdsa-verify");
const s = await xs.run("sha256-1m");
await xs.close();

console.log("| workload | XS computrons | Node ms (same code) | peer: node:crypto (OpenSSL) ms |");
console.log("|---|---:|---:|---:|");
console.log(`| verify 1 MiB signed image in mock flash (hash + TLVs + ECDSA P-256) | ${v.computrons} | ${nodeVerify.toFixed(1)} | ${opensslVerify.toFixed(2)} (in memory) |`);
console.log(`| SHA-256 of 1 MiB (noble, 1 KiB updates) | ${s.computrons} | ${nodeSha.toFixed(1)} | ${opensslSha.toFixed(2)} |`);
console.log(`| one ECDSA P-256 verify (noble) | ${e.computrons} | ${nodeEcdsa.toFixed(2)} | — |`);
