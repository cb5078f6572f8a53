/**
 * Which failures end a release for good, and which let it be offered and
 * installed again. A failure that says nothing against the release — the
 * network (a stall, a closed socket), the time (the download deadline), the
 * operator (abort), or bytes damaged on the way (a chunk, a patch block or
 * the payload that does not match what the signed manifest or the patch
 * binds) — is retryable. Only a signed-content failure is final: the image's
 * own checks (hash TLV, key, signature) on bytes that match the manifest, a
 * manifest mismatch, a policy or revocation refusal, a patch whose base is
 * not the running image.
 *
 * Retries are bounded in time: after a retryable failure the agent ignores
 * offers of that release for a pause doubling from RETRY_PAUSE_MIN_MS to
 * RETRY_PAUSE_MAX_MS; the data budget (bytes fetched, kept across attempts
 * of the same release) ends it for good.
 *
 * A trial that rolled back because it could not reach the cloud in time
 * (TRIAL_NO_CLOUD) says little against the image when the cloud itself was
 * unreachable (a saturated broker, a dead link): the release may be tried
 * again, at most MAX_NO_CLOUD_TRIALS trials in all (counted in the journal,
 * so resets do not reset the count), each after a pause doubling from
 * RETRY_PAUSE_MIN_MS. Such a rollback is reported TRIAL_NO_CLOUD_RETRY
 * (retryable); the last one TRIAL_NO_CLOUD (final). A rollback that shows the
 * image is bad — a crash or a hang in the trial (TRIAL_FAILED), a second
 * trial boot (TRIAL_LIMIT) — stays final.
 */
import { Reason, type ReasonCode } from "../errors";

export const RETRY_PAUSE_MIN_MS = 60_000;
export const RETRY_PAUSE_MAX_MS = 3600_000;
/** Trials of one release that may end without the cloud before the release is given up (TRIAL_NO_CLOUD, final). */
export const MAX_NO_CLOUD_TRIALS = 3;

/** Transport damage or a spent deadline: the next attempt starts from byte 0. */
const AFRESH: readonly number[] = Object.freeze([
  Reason.DOWNLOAD_DEADLINE,
  Reason.VERIFY_FAILED,
  Reason.PATCH_MALFORMED,
  Reason.PATCH_OUT_OF_RANGE,
  Reason.PATCH_DECOMPRESS,
  Reason.PATCH_BLOCK_HASH,
  Reason.PATCH_NEW_MISMATCH,
  Reason.PATCH_TRUNCATED,
  Reason.PATCH_HEADER_CRC,
  Reason.PATCH_BAD_CHECKPOINT,
  // The header is not the codec the signed manifest names: the bytes are not the signed payload (its hash binds them).
  Reason.PATCH_CODEC_MISMATCH,
  Reason.FLASH_NOT_ERASED,
  Reason.JOURNAL_CORRUPT,
]);

/** Retryable failures: the release may be offered and installed again. */
export const RETRYABLE_REASONS: readonly number[] = Object.freeze([
  Reason.ROLLED_BACK,
  Reason.DOWNLOAD_STALLED,
  Reason.ABORTED,
  Reason.SOCKET_CLOSED,
  Reason.TRIAL_NO_CLOUD_RETRY,
  ...AFRESH,
]);

export function isRetryable(reason: ReasonCode | number): boolean {
  return RETRYABLE_REASONS.indexOf(reason) >= 0;
}

/** After this failure the next attempt of the release starts from byte 0 (the journaled progress is dropped). */
export function restartsAfresh(reason: ReasonCode | number): boolean {
  return AFRESH.indexOf(reason) >= 0;
}

/**
 * The reason a rollback is reported with, and whether it ends the release:
 * `trials` counts the trials of this release that ended without the cloud,
 * this one included.
 */
export function rollbackVerdict(reason: ReasonCode | number, trials: number): { reason: ReasonCode; final: boolean } {
  if (reason === Reason.TRIAL_NO_CLOUD && trials < MAX_NO_CLOUD_TRIALS) return { reason: Reason.TRIAL_NO_CLOUD_RETRY, final: false };
  return { reason: reason as ReasonCode, final: reason !== Reason.ROLLED_BACK };
}

/** The pause before the release is taken again after its n-th trial without the cloud (n >= 1), ms. */
export function noCloudPauseMs(trials: number): number {
  return Math.min(RETRY_PAUSE_MAX_MS, RETRY_PAUSE_MIN_MS * 2 ** Math.max(0, trials - 1));
}
