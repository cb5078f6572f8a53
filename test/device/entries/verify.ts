/**
 * Device-lane entry for signed-update verification. The XS lane's entry
 * (test/xs/entries/verify.ts) signs its images inside XS at load, which on
 * the emulated M7 costs ~9 × 10⁹ instructions before the first task; here
 * the signed image, key and signature are made on Node and arrive through
 * the data module of test/fixtures/firmware/xs-data.ts (`__xsOtaDelta`), so
 * the device only verifies, as a device does.
 */
import { NorFlash } from "../../../hal/mock/flash";
import { createKeyring } from "../../../src/crypto/keyring";
import { verifyP256 } from "../../../src/crypto/ecdsa";
import { softwareDigest } from "../../../src/crypto/sha256";
import { Reason, reasonName } from "../../../src/errors";
import { imageSignatureChecker } from "../../../src/image/signature";
import { verifyImage } from "../../../src/image/verify";
import { fromHex, toHex } from "../../../src/util/bytes";
import { serve, task } from "../../xs/runtime";
import { hashInput, type VerifyInput } from "./verify-data";
import { nativeDigest } from "../../../hal/moddable/digest";
import { blockCrcUpdate } from "../../../src/delta/crc";
import { crc32 } from "../../../src/util/crc32";
import { deviceInstructions } from "../crypt";

function input(): VerifyInput {
  const d = (globalThis as { __xsOtaDelta?: VerifyInput }).__xsOtaDelta;
  if (!d) throw new Error("no input: bundle a data module that sets globalThis.__xsOtaDelta");
  return d;
}

/** Hex input, decoded in slices: XS's charCodeAt/substr scan the string from its start (quadratic on long strings). */
function hex(s: string): Uint8Array {
  const out = new Uint8Array(s.length >> 1);
  for (let at = 0; at < s.length; at += 512) {
    const b = fromHex(s.slice(at, at + 512));
    if (!b) throw new RangeError("bad hex in the input");
    out.set(b, at >> 1);
  }
  return out;
}

let slot: NorFlash | undefined;
function imageSlot(): NorFlash {
  if (slot) return slot;
  const image = hex(input().image);
  const size = Math.ceil((image.length + 4096) / 4096) * 4096;
  const f = new NorFlash({ size, blockLength: 4096, writeAlign: 32 });
  for (let b = 0; b < size / 4096; b++) f.eraseBlock(b);
  const padded = new Uint8Array(Math.ceil(image.length / 32) * 32).fill(0xff);
  padded.set(image);
  f.write(padded, 0);
  slot = f;
  return f;
}

/** One ECDSA P-256 verification (run it twice: the first call pays noble's lazy set-up). */
task("ecdsa-verify", () => {
  const d = input();
  return reasonName(verifyP256(hex(d.digest), hex(d.signature), hex(d.publicKey)));
});

task("ecdsa-verify-wrong-digest", () => {
  const d = input();
  const digest = hex(d.digest);
  digest[0] ^= 1;
  return reasonName(verifyP256(digest, hex(d.signature), hex(d.publicKey)));
});

task("sha256", () => {
  const bytes = hashInput(input().hashLength);
  const h = softwareDigest.sha256();
  for (let at = 0; at < bytes.length; at += 1024) h.update(bytes.subarray(at, at + 1024));
  return toHex(h.finish());
});

/**
 * SHA-256 through the device adapter over the native digest (hal/moddable/digest.ts
 * on the lane's C Digest): the 64 KiB input in 1 KiB updates, timed alone; the
 * same bytes in uneven updates (1, 63, 64, 65, ... bytes: every partial-block path);
 * the empty input; and the adapter's misuse errors.
 */
task("sha256-native", () => {
  const bytes = hashInput(input().hashLength);
  const t0 = deviceInstructions() as number;
  const h = nativeDigest.sha256();
  for (let at = 0; at < bytes.length; at += 1024) h.update(bytes.subarray(at, at + 1024));
  const whole = toHex(h.finish());
  const instructions = (deviceInstructions() as number) - t0;
  const uneven = nativeDigest.sha256();
  for (let at = 0, n = 1; at < bytes.length; at += n, n = (n * 7 + 57) % 300) uneven.update(bytes.subarray(at, Math.min(at + n, bytes.length)));
  const misuse: string[] = [];
  try {
    h.update(bytes.subarray(0, 1));
  } catch (e) {
    misuse.push(String(e));
  }
  try {
    h.finish();
  } catch (e) {
    misuse.push(String(e));
  }
  return { whole, uneven: toHex(uneven.finish()), empty: toHex(nativeDigest.sha256().finish()), instructions, misuse };
});

/**
 * The native CRC-32 (hal/moddable/native/crc32.c through hal/moddable/digest.ts,
 * unchanged; `native` as xsc would bind it): the 64 KiB input in 1 KiB steps, timed
 * beside the decoder's JS CRC on the same bytes; uneven continuations over a view
 * that does not start its buffer; the empty range; and its refusals.
 */
task("crc32-native", () => {
  const bytes = hashInput(input().hashLength);
  const native = nativeDigest.crc32 as (crc: number, data: Uint8Array, start: number, end: number) => number;
  let t0 = deviceInstructions() as number;
  let whole = 0;
  for (let at = 0; at < bytes.length; at += 1024) whole = native(whole, bytes, at, at + 1024);
  const instructions = (deviceInstructions() as number) - t0;
  t0 = deviceInstructions() as number;
  let js = 0;
  for (let at = 0; at < bytes.length; at += 1024) js = blockCrcUpdate(js, bytes, at, at + 1024);
  const jsInstructions = (deviceInstructions() as number) - t0;
  const view = bytes.subarray(3);
  let uneven = 0;
  for (let at = 0, n = 1; at < view.length; at += n, n = (n * 7 + 57) % 300) uneven = native(uneven, view, at, Math.min(at + n, view.length));
  const refusals: string[] = [];
  for (const [start, end] of [[5, 4], [-1, 4], [0, view.length + 1]]) {
    try {
      native(0, view, start, end);
      refusals.push("accepted");
    } catch (e) {
      refusals.push(e instanceof RangeError ? "RangeError" : String(e));
    }
  }
  try {
    native(0, [1, 2, 3] as unknown as Uint8Array, 0, 3);
    refusals.push("accepted");
  } catch (e) {
    refusals.push(e instanceof TypeError ? "TypeError" : String(e));
  }
  return { whole, js, reference: crc32(bytes), uneven, viewReference: crc32(view), empty: native(0x1234, bytes, 7, 7), instructions, jsInstructions, refusals };
});

/**
 * Copies between typed arrays as the SDK's XS makes them (test/device/build.ts, SET_AS_SDK): `set`
 * from another Uint8Array is one memcpy (64 KiB, and 1,024 copies of 64 bytes), with the same bytes.
 */
task("typed-array-set", () => {
  const bytes = hashInput(input().hashLength);
  const into = new Uint8Array(bytes.length);
  let t0 = deviceInstructions() as number;
  into.set(bytes);
  const whole = (deviceInstructions() as number) - t0;
  const small = bytes.subarray(0, 64);
  t0 = deviceInstructions() as number;
  for (let at = 0; at < into.length; at += 64) into.set(small, at);
  const pieces = (deviceInstructions() as number) - t0;
  const same = into.subarray(0, 64).every((b, i) => b === bytes[i]) && into.subarray(into.length - 64).every((b, i) => b === bytes[i]);
  return { length: bytes.length, whole, pieces, same };
});

/** Data set-up of the image tasks, run first so the verification is counted alone. */
task("image-setup", () => imageSlot().cells.length);

task("verify-image", () => {
  const keyring = createKeyring([hex(input().publicKey)], softwareDigest);
  const r = verifyImage(imageSlot(), { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
  return { ok: r.ok, reason: reasonName(r.ok ? Reason.OK : r.reason), totalLength: r.ok ? r.info.totalLength : 0 };
});

task("verify-image-tampered", () => {
  const f = imageSlot();
  const at = 0x200 + 1000;
  f.cells[at] ^= 0x01;
  try {
    const keyring = createKeyring([hex(input().publicKey)], softwareDigest);
    const r = verifyImage(f, { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
    return { ok: r.ok, reason: reasonName(r.ok ? Reason.OK : r.reason) };
  } finally {
    f.cells[at] ^= 0x01;
  }
});

serve();
