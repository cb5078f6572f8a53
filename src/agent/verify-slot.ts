/**
 * Check the image written to the inactive slot as MCUboot will (SHA-256,
 * key hash, ECDSA signature) and against the release manifest (length,
 * version, security counter, SHA-256 of the whole image), hashing in slices
 * under the software watchdog's "verify" activity. One read pass feeds both
 * hashes.
 */
import type { Flash, Platform } from "../../hal/types";
import { isOtaError, Reason, type ReasonCode } from "../errors";
import type { Keyring } from "../crypto/keyring";
import { formatVersion } from "../image/format";
import { imageSignatureChecker } from "../image/signature";
import { imageExtent, verifyImage } from "../image/verify";
import type { ReleaseManifest } from "../update/types";
import { equalBytes } from "../util/bytes";
import { hashInSlices } from "./slice-hash";
import type { Supervisor } from "./supervisor";

export interface VerifySlotOptions {
  readonly platform: Platform;
  readonly slot: Flash;
  readonly manifest: ReleaseManifest;
  readonly keyring: Keyring;
  readonly supervisor: Supervisor;
  readonly sliceBytes: number;
  readonly stallMs: number;
  /** Called once: Reason.OK, or why the image is refused. */
  readonly done: (reason: ReasonCode, message: string) => void;
}

/** Start the check; the verdict arrives through `done` (possibly after many event-loop turns). */
export function verifySlot(o: VerifySlotOptions): void {
  let extent;
  const m = o.manifest;
  try {
    extent = imageExtent(o.slot);
  } catch (e) {
    if (!isOtaError(e)) throw e;
    // The image does not parse: were its bytes damaged on the way (retryable) or signed so (final)?
    const activity = o.supervisor.register("verify", o.stallMs);
    const error = e;
    hashInSlices({
      clock: o.platform.clock,
      digest: o.platform.digest,
      flash: o.slot,
      lengths: [Math.min(m.image.length, o.slot.status().size)],
      sliceBytes: o.sliceBytes,
      onSlice: () => activity.checkIn(),
      fail: (f) => {
        activity.end();
        o.done(f.code, f.message);
      },
      done: ([sha]) => {
        activity.end();
        if (!equalBytes(sha, m.image.sha256)) return o.done(Reason.VERIFY_FAILED, `image differs from the manifest's SHA-256 (damaged in transit): ${error.message}`);
        o.done(error.code, error.message);
      },
    });
    return;
  }
  const ext = extent;
  const activity = o.supervisor.register("verify", o.stallMs);
  hashInSlices({
    clock: o.platform.clock,
    digest: o.platform.digest,
    flash: o.slot,
    lengths: [ext.hashedLength, ext.totalLength],
    sliceBytes: o.sliceBytes,
    onSlice: () => activity.checkIn(),
    fail: (e) => {
      activity.end();
      o.done(e.code, e.message);
    },
    done: ([mcubootHash, imageHash]) => {
      activity.end();
      // Bytes that differ from what the signed manifest binds were damaged on the way (retryable);
      // only bytes that match it and still fail MCUboot's checks condemn the release.
      if (ext.totalLength !== m.image.length || !equalBytes(imageHash, m.image.sha256)) {
        return o.done(Reason.VERIFY_FAILED, "image in the slot differs from the manifest's SHA-256 (damaged in transit)");
      }
      const result = verifyImage(o.slot, { digest: o.platform.digest, hash: mcubootHash, checkSignature: imageSignatureChecker(o.keyring) });
      if (!result.ok) return o.done(result.reason, `image check: ${result.message}`);
      const same = formatVersion(result.info.header.version) === formatVersion(m.version) && (result.info.securityCounter ?? 0) === m.securityCounter;
      if (!same) return o.done(Reason.MANIFEST_IMAGE_MISMATCH, "image differs from the manifest");
      o.done(Reason.OK, "");
    },
  });
}
