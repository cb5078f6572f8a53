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
 */
import { Reason, type ReasonCode } from "../errors";

export const RETRY_PAUSE_MIN_MS = 60_000;
export const RETRY_PAUSE_MAX_MS = 3600_000;

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
  Reason.FLASH_NOT_ERASED,
  Reason.JOURNAL_CORRUPT,
]);

/** Retryable failures: the release may be offered and installed again. */
export const RETRYABLE_REASONS: readonly number[] = Object.freeze([
  Reason.ROLLED_BACK,
  Reason.DOWNLOAD_STALLED,
  Reason.ABORTED,
  Reason.SOCKET_CLOSED,
  ...AFRESH,
]);

export function isRetryable(reason: ReasonCode | number): boolean {
  return RETRYABLE_REASONS.indexOf(reason) >= 0;
}

/** After this failure the next attempt of the release starts from byte 0 (the journaled progress is dropped). */
export function restartsAfresh(reason: ReasonCode | number): boolean {
  return AFRESH.indexOf(reason) >= 0;
}
