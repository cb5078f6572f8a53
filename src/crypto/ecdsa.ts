/**
 * ECDSA P-256 verification over a SHA-256 digest (./p256: @noble/curves'
 * generic Weierstrass code with our own P-256 table), returning a reason code
 * for every outcome: a device never sees an untyped throw for a bad signature
 * or key.
 *
 * High-S policy: both low-S and high-S signatures are accepted. MCUboot's
 * imgtool (Python `cryptography`, i.e. OpenSSL) and `openssl dgst -sign` do not
 * normalise s, so about half of their signatures are high-S, and MCUboot's own
 * verifier (mbedTLS / tinycrypt) accepts them. Malleability does not matter
 * here: what is signed is a hash, and the identity of an image (its SHA256 TLV)
 * or of a release (the SHA-256 of the exact manifest bytes) never includes the
 * signature, so a second valid encoding of one signature names the same thing.
 */
import { Reason, type ReasonCode } from "../errors";
import { decodeDerSignature, decodePublicKey, decodeRawSignature, rawSignature } from "./der";
import { p256 } from "./p256";

export type SignatureEncoding = "der" | "raw";

/** The outcomes of `verifyP256`. */
export type SignatureCheck =
  | typeof Reason.OK
  | typeof Reason.SIGNATURE_MALFORMED
  | typeof Reason.KEY_INVALID
  | typeof Reason.SIGNATURE_INVALID;

/**
 * Verify an ECDSA P-256 signature over a 32-byte SHA-256 digest.
 *
 * @param digest the message's SHA-256 (what MCUboot's SHA256 TLV holds)
 * @param signature DER (`SEQUENCE{r,s}`, ≤ 72 bytes) or raw `r || s` (64 bytes)
 * @param publicKey SEC1 uncompressed point (65 bytes) or P-256 SPKI DER (91 bytes)
 * @returns Reason.OK; SIGNATURE_MALFORMED (bad encoding, wrong length, r or s
 *   zero or ≥ n); KEY_INVALID (bad encoding, not on the curve); SIGNATURE_INVALID
 *   (well-formed but does not verify).
 * @throws TypeError when an argument is not a Uint8Array; RangeError when
 *   `digest` is not 32 bytes (misuse, not bad input).
 * @example verifyP256(hash, derSig, spki) === Reason.OK
 */
export function verifyP256(
  digest: Uint8Array,
  signature: Uint8Array,
  publicKey: Uint8Array,
  encoding: SignatureEncoding = "der",
): SignatureCheck {
  if (!(digest instanceof Uint8Array)) throw new TypeError("digest must be a Uint8Array");
  if (!(signature instanceof Uint8Array)) throw new TypeError("signature must be a Uint8Array");
  if (!(publicKey instanceof Uint8Array)) throw new TypeError("publicKey must be a Uint8Array");
  if (digest.length !== 32) throw new RangeError(`digest must be 32 bytes, got ${digest.length}`);
  const point = decodePublicKey(publicKey);
  if (!point) return Reason.KEY_INVALID;
  const scalars = encoding === "raw" ? decodeRawSignature(signature) : decodeDerSignature(signature);
  if (!scalars) return Reason.SIGNATURE_MALFORMED;
  // Inputs are validated above, so noble cannot reject them for form: a false is a wrong signature.
  const ok = p256.verify(rawSignature(scalars), digest, point, { prehash: false, lowS: false, format: "compact" });
  return ok ? Reason.OK : Reason.SIGNATURE_INVALID;
}
