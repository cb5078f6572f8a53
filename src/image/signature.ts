/**
 * The signature check of an MCUboot image, as bootutil's image_validate.c
 * does it for ECDSA P-256: walk the TLVs in order; a KEYHASH TLV selects the
 * trusted key with that id (or none, when the id is unknown); an ECDSASIG TLV
 * that follows a known key is verified over the image hash (the SHA256 TLV's
 * value, which `scanImage` has already checked). The outcome of the last
 * verified signature decides. A signature after an unknown key is skipped, so
 * an image signed only by unknown keys has no valid signature.
 *
 * `imageSignatureChecker(keyring)` plugs into `verifyImage`'s and the
 * simulator bootloader's `checkSignature` option.
 */
import { Reason, type ReasonCode } from "../errors";
import type { Flash } from "../../hal/types";
import { verifyP256 } from "../crypto/ecdsa";
import type { Keyring, TrustedKey } from "../crypto/keyring";
import { TLV } from "./format";
import type { ImageInfo } from "./verify";

/** Largest signature TLV read (MCUboot's SIG_BUF_SIZE is 128; a DER P-256 signature is ≤ 72). */
export const MAX_SIGNATURE_TLV = 128;

export type SignatureChecker = (slot: Flash, info: ImageInfo) => ReasonCode;

/**
 * The signature outcome of an already scanned image.
 * @returns OK; IMAGE_NO_SIGNATURE (no ECDSASIG TLV); IMAGE_UNKNOWN_KEY (no
 *   signature follows a trusted KEYHASH); SIGNATURE_MALFORMED or
 *   IMAGE_BAD_SIGNATURE (the deciding signature); IMAGE_BAD_TLV (a KEYHASH or
 *   signature TLV of an impossible length).
 * @throws OtaError from the flash; never for a bad image.
 */
export function checkImageSignature(slot: Flash, info: ImageInfo, keyring: Keyring): ReasonCode {
  let key: TrustedKey | undefined;
  let sawSignature = false;
  let outcome: ReasonCode | undefined;
  for (const t of info.tlvs) {
    if (t.type === TLV.KEYHASH) {
      // MCUboot: an id of the wrong length simply matches no key.
      key = t.length === 32 ? keyring.find(slot.read(32, t.offset)) : undefined;
    } else if (t.type === TLV.ECDSASIG) {
      sawSignature = true;
      if (!key) continue;
      if (t.length === 0 || t.length > MAX_SIGNATURE_TLV) return Reason.IMAGE_BAD_TLV;
      const check = verifyP256(info.hash, slot.read(t.length, t.offset), key.publicKey, "der");
      outcome = check === Reason.SIGNATURE_INVALID ? Reason.IMAGE_BAD_SIGNATURE : check;
      key = undefined;
    }
  }
  if (!sawSignature) return Reason.IMAGE_NO_SIGNATURE;
  if (outcome === undefined) return Reason.IMAGE_UNKNOWN_KEY;
  return outcome;
}

/**
 * A `checkSignature` function for `verifyImage` / the simulator's BootOptions.
 * @example verifyImage(slot, { digest, checkSignature: imageSignatureChecker(keyring) })
 */
export function imageSignatureChecker(keyring: Keyring): SignatureChecker {
  return (slot, info) => checkImageSignature(slot, info, keyring);
}
