/**
 * Update policy: is an authenticated release manifest for this device, now?
 * Checked against the device's state, in a fixed, documented order; the first
 * failing check gives the refusal's reason code.
 *
 *  1. hardware id equals the device's             MANIFEST_WRONG_HARDWARE
 *  2. release id not already handled (replay)     MANIFEST_REPLAYED
 *  3. built for the inactive slot (when known)    MANIFEST_WRONG_SLOT
 *  4. version strictly newer than the running one MANIFEST_DOWNGRADE / MANIFEST_SAME_VERSION
 *  5. security counter >= the protected counter   MANIFEST_SECURITY_COUNTER
 *  6. not expired at the trusted time             MANIFEST_EXPIRED
 *  7. not issued in the future (clock known)      MANIFEST_NOT_YET_VALID
 *  8. delta: base hash = running image's hash     MANIFEST_BASE_MISMATCH
 *  9. image and payload fit the slot              MANIFEST_TOO_BIG_FOR_SLOT
 * 10. payload within the manifest's own budget    MANIFEST_OVER_BUDGET
 * 11. payload.compression one this device decodes PATCH_CODEC_UNSUPPORTED
 *     (a full image "none"; a delta a codec name of src/update/codec.ts
 *     among the device's codecs)
 *
 * Trusted time is max(clock time, the newest issued-at the device has ever
 * accepted), so neither a wound-back clock nor a device without a clock can
 * be fed an expired manifest once it has seen a newer one (freeze defence).
 * Replay: a release that was handled (installed, refused after download, or
 * rolled back) is never taken again, even when its version is still newer than
 * the running one (a rolled-back release). The list is bounded; a release
 * that fell off it is still refused by the version rule if it was installed.
 */
import { Reason, type ReasonCode } from "../errors";
import { compareVersions, formatVersion, type ImageVersion } from "../image/format";
import { equalBytes } from "../util/bytes";
import { codecOfName, DECODABLE_CODECS, FULL_COMPRESSION } from "./codec";
import type { AcceptedManifest } from "./types";

/** Most release ids the device remembers for replay defence. */
export const MAX_HANDLED_RELEASES = 16;
/** How far in the future (seconds) an issued-at may be against a known clock. */
export const MAX_CLOCK_SKEW_S = 300;

export interface DeviceState {
  /** This device's hardware id / class, e.g. "usr-n520". */
  readonly hardwareId: string;
  /** Version of the running image (MCUboot header). */
  readonly runningVersion: ImageVersion;
  /** The protected anti-rollback counter. */
  readonly protectedCounter: number;
  /** Clock-derived unix seconds from a trusted source; 0 when unknown. */
  readonly trustedTime: number;
  /** The newest issued-at of any manifest this device has accepted (unix s; 0 for none). */
  readonly newestIssuedAt: number;
  /** Release ids already handled, newest last; at most MAX_HANDLED_RELEASES. */
  readonly handledReleaseIds: readonly Uint8Array[];
  /** SHA-256 of the running image, header through TLV area (a delta's base). */
  readonly runningImageSha256: Uint8Array;
  /** Bytes an image may occupy in the inactive slot (the slot size less its trailer). */
  readonly slotSize: number;
  /** The slot a new image must be built for (direct-xip); unchecked when undefined. */
  readonly inactiveSlot?: 0 | 1;
  /** Patch codecs the device decodes (the ones it announces); default every codec this build's patcher decodes. */
  readonly codecs?: readonly number[];
}

export type PolicyResult = { readonly ok: true } | { readonly ok: false; readonly reason: ReasonCode; readonly message: string };

/** The trusted time: max(clock time, newest accepted issued-at). */
export function trustedNow(state: Pick<DeviceState, "trustedTime" | "newestIssuedAt">): number {
  return Math.max(state.trustedTime, state.newestIssuedAt);
}

function refuse(reason: ReasonCode, message: string): PolicyResult {
  return { ok: false, reason, message };
}

/**
 * Check an authenticated manifest against the device's state (order above).
 * Pure: reads nothing but its arguments; never throws for a refusal.
 * @throws RangeError when `handledReleaseIds` exceeds its bound (misuse).
 * @example const r = checkPolicy(accepted, state); if (!r.ok) report(r.reason)
 */
export function checkPolicy(accepted: AcceptedManifest, state: DeviceState): PolicyResult {
  if (state.handledReleaseIds.length > MAX_HANDLED_RELEASES) throw new RangeError(`handledReleaseIds holds more than ${MAX_HANDLED_RELEASES}`);
  const m = accepted.manifest;
  if (m.hardwareId !== state.hardwareId) return refuse(Reason.MANIFEST_WRONG_HARDWARE, `for "${m.hardwareId}", this is "${state.hardwareId}"`);
  for (const id of state.handledReleaseIds) {
    if (equalBytes(id, accepted.releaseId)) return refuse(Reason.MANIFEST_REPLAYED, "release already handled");
  }
  if (state.inactiveSlot !== undefined && m.slot !== state.inactiveSlot) return refuse(Reason.MANIFEST_WRONG_SLOT, `built for slot ${m.slot}, inactive slot is ${state.inactiveSlot}`);
  const order = compareVersions(m.version, state.runningVersion, true);
  if (order < 0) return refuse(Reason.MANIFEST_DOWNGRADE, `${formatVersion(m.version)} is older than ${formatVersion(state.runningVersion)}`);
  if (order === 0) return refuse(Reason.MANIFEST_SAME_VERSION, `${formatVersion(m.version)} is already running`);
  if (m.securityCounter < state.protectedCounter) return refuse(Reason.MANIFEST_SECURITY_COUNTER, `security counter ${m.securityCounter} < ${state.protectedCounter}`);
  const now = trustedNow(state);
  if (now >= m.expiresAt) return refuse(Reason.MANIFEST_EXPIRED, `expired at ${m.expiresAt}, trusted time ${now}`);
  if (state.trustedTime > 0 && m.issuedAt > state.trustedTime + MAX_CLOCK_SKEW_S) return refuse(Reason.MANIFEST_NOT_YET_VALID, `issued at ${m.issuedAt}, clock says ${state.trustedTime}`);
  if (m.payload.kind === "delta" && !(m.payload.baseSha256 && equalBytes(m.payload.baseSha256, state.runningImageSha256))) {
    return refuse(Reason.MANIFEST_BASE_MISMATCH, "delta is not against the running image");
  }
  if (m.image.length > state.slotSize) return refuse(Reason.MANIFEST_TOO_BIG_FOR_SLOT, `image of ${m.image.length} bytes, slot holds ${state.slotSize}`);
  if (m.payload.kind === "full" && m.payload.length > state.slotSize) return refuse(Reason.MANIFEST_TOO_BIG_FOR_SLOT, `payload of ${m.payload.length} bytes, slot holds ${state.slotSize}`);
  if (m.payload.length > m.maxDownload) return refuse(Reason.MANIFEST_OVER_BUDGET, `payload of ${m.payload.length} bytes exceeds the budget of ${m.maxDownload}`);
  const compression = m.payload.compression;
  if (m.payload.kind === "full") {
    if (compression !== FULL_COMPRESSION) return refuse(Reason.PATCH_CODEC_UNSUPPORTED, `a full image with compression "${compression}" (this device takes "${FULL_COMPRESSION}" only)`);
  } else {
    const codec = codecOfName(compression);
    if (codec === undefined || (state.codecs ?? DECODABLE_CODECS).indexOf(codec) < 0) return refuse(Reason.PATCH_CODEC_UNSUPPORTED, `a delta coded "${compression}", which this device does not decode`);
  }
  return { ok: true };
}

/**
 * The handled-release list after handling `releaseId`: appended, oldest
 * dropped beyond MAX_HANDLED_RELEASES; unchanged when already present.
 */
export function rememberRelease(handled: readonly Uint8Array[], releaseId: Uint8Array): Uint8Array[] {
  for (const id of handled) if (equalBytes(id, releaseId)) return handled.slice();
  const out = handled.slice(Math.max(0, handled.length + 1 - MAX_HANDLED_RELEASES));
  out.push(Uint8Array.from(releaseId));
  return out;
}

/** The newest accepted issued-at after accepting `accepted` (never decreases). */
export function nextNewestIssuedAt(newestIssuedAt: number, accepted: AcceptedManifest): number {
  return Math.max(newestIssuedAt, accepted.manifest.issuedAt);
}
