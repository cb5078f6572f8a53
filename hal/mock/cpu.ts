/**
 * A CPU cost model for the simulator: hashing charges virtual time on the
 * clock (`VirtualClock.consume`) at a configured rate, so that a test can
 * show that long computations yield in bounded slices and the watchdog is
 * fed. The default rate is set from the XS lane's measurement (see README:
 * SHA-256 in XS on a ~400 MHz Cortex-M7 at roughly 1 µs per byte); it is a
 * model, not a measurement of a device.
 */
import type { Digest, HashStream } from "../types";

export interface CpuModel {
  /** Virtual ns charged per byte hashed. */
  readonly sha256NsPerByte: number;
}

export const M7_XS_MODEL: CpuModel = Object.freeze({ sha256NsPerByte: 1000 });

/** A Digest whose streams charge `model` time through `consume`. */
export function meteredDigest(inner: Digest, consume: (ms: number) => void, model: CpuModel): Digest {
  return {
    sha256(): HashStream {
      const h = inner.sha256();
      return {
        update(data: Uint8Array): void {
          consume((data.length * model.sha256NsPerByte) / 1e6);
          h.update(data);
        },
        finish: () => h.finish(),
      };
    },
  };
}
