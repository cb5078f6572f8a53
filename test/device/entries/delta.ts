/**
 * Device-lane entry for the patcher: the XS lane's delta entry
 * (test/xs/entries/delta.ts, same tasks and inputs), with the pair tasks
 * re-registered as a device runs them: SHA-256 by Moddable's native `crypt`
 * Digest through the device adapter (hal/moddable/digest.ts, unchanged; the
 * lane's C implementation stands for the SDK's, test/device/crypt.ts), flash
 * writes checked in C as a flash driver does (test/device/native-flash.ts),
 * and each part of an install timed by the M7's instruction counter.
 */
import { nativeDigest } from "../../../hal/moddable/digest";
import { Reason, reasonName, isOtaError } from "../../../src/errors";
import { registerPairTasks } from "../../xs/entries/delta";
import { task } from "../../xs/runtime";
import { deviceInstructions } from "../crypt";
import { NativeFlash } from "../native-flash";

function nativeSlots(size: number) {
  const blockLength = 4096;
  const slotSize = Math.max(blockLength, Math.ceil(size / blockLength) * blockLength);
  return { active: new NativeFlash(slotSize, blockLength, 32), inactive: new NativeFlash(slotSize, blockLength, 32) };
}

registerPairTasks(nativeDigest, () => deviceInstructions() as number, nativeSlots);

/** The native flash refuses what the mock refuses, with the same reasons. */
task("native-flash-strict", () => {
  const f = new NativeFlash(8192, 4096, 32);
  const reasons: string[] = [];
  const attempt = (fn: () => void) => {
    try {
      fn();
      reasons.push("OK");
    } catch (e) {
      reasons.push(isOtaError(e) ? reasonName(e.code) : String(e));
    }
  };
  const unit = new Uint8Array(32).fill(0x5a);
  attempt(() => f.write(unit, 64));
  attempt(() => f.write(unit, 64)); // over programmed bytes
  attempt(() => f.write(unit, 65)); // misaligned
  attempt(() => f.write(unit, 8192)); // past the end
  attempt(() => f.read(4097, 0)); // over the HAL's bounded read
  attempt(() => f.eraseBlock(0));
  attempt(() => f.write(unit, 64)); // erased again
  return { reasons, readBack: Array.from(f.read(2, 64)), ok: Reason.OK };
});
