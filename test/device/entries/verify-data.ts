/**
 * The verify entry's input (made on Node by test/device/lane.ts) and the bytes
 * its hash tasks hash: shared by the entry and the Node side, which must not
 * import the entry itself (it imports the device's "crypt" module).
 */
export interface VerifyInput {
  /** SEC1 uncompressed public key, hex. */
  publicKey: string;
  /** A SHA-256 digest and its DER signature by the key, hex. */
  digest: string;
  signature: string;
  /** A signed image (MCUboot format), hex. */
  image: string;
  /** Bytes hashed by the sha256 task. */
  hashLength: number;
}

/** The deterministic bytes the sha256 task hashes (Node computes the same). */
export function hashInput(n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

