/**
 * A P-256 signing key as the host tools use it (portable: noble only, so XS
 * test entries can sign too). Signs 32-byte SHA-256 digests; DER output, as
 * imgtool writes ECDSASIG TLVs.
 */
import { p256 } from "../../src/crypto/p256";
import { sha256 } from "@noble/hashes/sha2.js";
import { spkiOf } from "../../src/crypto/der";
import type { ImageSigner } from "../image/encode";

export interface SigningKey extends ImageSigner {
  /** SEC1 uncompressed public point, 65 bytes. */
  readonly publicKey: Uint8Array;
  /** DER SubjectPublicKeyInfo of the public key. */
  readonly spki: Uint8Array;
  /** SHA-256 of `spki`: the key id (MCUboot KEYHASH). Same bytes as `keyHash`. */
  readonly keyId: Uint8Array;
}

/**
 * A signing key from a 32-byte P-256 secret scalar.
 * @throws RangeError when the scalar is not a valid P-256 secret key.
 */
export function signerFromSecret(secretKey: Uint8Array): SigningKey {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32 || !p256.utils.isValidSecretKey(secretKey)) {
    throw new RangeError("not a valid P-256 secret key");
  }
  const secret = Uint8Array.from(secretKey);
  const publicKey = p256.getPublicKey(secret, false);
  const spki = spkiOf(publicKey);
  const keyId = sha256(spki);
  return Object.freeze({
    publicKey,
    spki,
    keyId,
    keyHash: keyId,
    /** DER ECDSA signature of a 32-byte digest (RFC 6979 deterministic k, low-S). */
    sign(digest: Uint8Array): Uint8Array {
      if (digest.length !== 32) throw new RangeError("sign: digest must be 32 bytes");
      return p256.sign(digest, secret, { prehash: false, format: "der" });
    },
  });
}
