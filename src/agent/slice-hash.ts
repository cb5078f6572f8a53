/**
 * Hash a flash range in bounded slices, yielding to the event loop between
 * them, so that hashing a whole image never holds the loop (and the watchdog
 * feeding) for longer than one slice. One pass can feed several hashes over
 * nested prefixes of the range (MCUboot's hash over header+body+protected
 * TLVs and the manifest's hash over the complete image, in one read).
 *
 * Bounds: one flash read of at most 1 KiB in RAM; `sliceBytes` per slice.
 */
import type { Clock, Digest, Flash, HashStream } from "../../hal/types";
import { isOtaError } from "../errors";

/** Bytes read from flash per read. */
export const READ_BYTES = 1024;

export interface SliceHashOptions {
  readonly clock: Clock;
  readonly digest: Digest;
  readonly flash: Flash;
  /** Prefix lengths to hash, each from offset 0 (one digest per entry). */
  readonly lengths: readonly number[];
  /** Hashing work per slice before yielding, in bytes fed to digests (two prefixes hashed together count twice). */
  readonly sliceBytes: number;
  /** After each slice (the supervisor's check-in). */
  readonly onSlice?: (done: number, total: number) => void;
  readonly done: (digests: Uint8Array[]) => void;
  /** An OtaError from the flash; anything else propagates from the timer. */
  readonly fail: (e: import("../errors").OtaError) => void;
}

/** Start hashing; returns a cancel function. */
export function hashInSlices(o: SliceHashOptions): () => void {
  if (!(o.sliceBytes >= READ_BYTES)) throw new RangeError(`sliceBytes must be >= ${READ_BYTES}`);
  const total = Math.max(0, ...o.lengths);
  const streams: HashStream[] = o.lengths.map(() => o.digest.sha256());
  let at = 0;
  let cancelled = false;
  // Bytes of the range per slice: the work budget shared by the digests fed in one pass.
  const span = Math.max(READ_BYTES, Math.floor(o.sliceBytes / Math.max(1, o.lengths.length) / READ_BYTES) * READ_BYTES);
  const step = () => {
    if (cancelled) return;
    try {
      const stop = Math.min(total, at + span);
      while (at < stop) {
        const n = Math.min(READ_BYTES, stop - at);
        const data = o.flash.read(n, at);
        for (let i = 0; i < streams.length; i++) {
          const len = o.lengths[i];
          if (at < len) streams[i].update(at + n <= len ? data : data.subarray(0, len - at));
        }
        at += n;
      }
    } catch (e) {
      if (!isOtaError(e)) throw e; // a power cut or reset unwinds as it must
      cancelled = true;
      return o.fail(e);
    }
    o.onSlice?.(at, total);
    if (at < total) o.clock.setTimer(step, 0);
    else o.done(streams.map((s) => s.finish()));
  };
  o.clock.setTimer(step, 0);
  return () => {
    cancelled = true;
  };
}
