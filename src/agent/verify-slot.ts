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
  try {
    extent = imageExtent(o.slot);
  } catch (e) {
    if (!isOtaError(e)) throw e;
    return o.done(e.code, e.message);
  }
  const ext = extent;
  const m = o.manifest;
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
      const result = verifyImage(o.slot, { digest: o.platform.digest, hash: mcubootHash, checkSignature: imageSignatureChecker(o.keyring) });
      if (!result.ok) return o.done(result.reason, `image check: ${result.message}`);
      const same =
        ext.totalLength === m.image.length &&
        equalBytes(imageHash, m.image.sha256) &&
        formatVersion(result.info.header.version) === formatVersion(m.version) &&
        (result.info.securityCounter ?? 0) === m.securityCounter;
      if (!same) return o.done(Reason.MANIFEST_IMAGE_MISMATCH, "image differs from the manifest");
      o.done(Reason.OK, "");
    },
  });
}
