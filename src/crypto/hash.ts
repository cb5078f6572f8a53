/**
 * Streaming SHA-256 helpers over the HAL Digest: one-shot hashing of small
 * buffers, and hashing a range of a flash partition in bounded chunks.
 */
import type { Digest, Flash } from "../../hal/types";

/** Bytes read from flash per step (bounded RAM; the HAL caps reads at 4 KiB). */
export const HASH_CHUNK = 1024;

/** SHA-256 of the concatenation of `parts`. */
export function sha256Of(digest: Digest, ...parts: Uint8Array[]): Uint8Array {
  const h = digest.sha256();
  for (const p of parts) h.update(p);
  return h.finish();
}

/**
 * SHA-256 of `length` bytes of `flash` from `offset`, read `chunk` bytes at a time.
 * Preconditions: the range is inside the partition; `1 <= chunk <= 4096`.
 * @throws RangeError on a bad chunk size; OtaError from the flash.
 */
export function hashFlashRange(
  flash: Flash,
  digest: Digest,
  offset: number,
  length: number,
  chunk = HASH_CHUNK,
  onProgress?: (done: number, total: number) => void,
): Uint8Array {
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > 4096) throw new RangeError(`chunk must be 1..4096, got ${chunk}`);
  const h = digest.sha256();
  for (let done = 0; done < length; ) {
    const n = Math.min(chunk, length - done);
    h.update(flash.read(n, offset + done));
    done += n;
    if (onProgress) onProgress(done, length);
  }
  return h.finish();
}
