/**
 * Encrypted images on the host: open one with the recipient's key and check
 * it as MCUboot would (`xs-ota verify --decrypt-key`), and give an image that
 * imgtool encrypted (`imgtool sign --encrypt`, no slot TLVs) the
 * XSOTA_SLOT_TLVS vendor TLV the agent needs (`xs-ota sign --add-slot-tlvs`):
 * the TLV area of the same image with the encrypted flag cleared, signed by
 * the key that signed the image. docs/formats.md, "Encrypted images".
 *
 * Portable (no Node API).
 */
import type { Cipher } from "../../hal/types";
import { createKeyring, type Keyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { OtaError, Reason } from "../../src/errors";
import { TLV_INFO_MAGIC } from "../../src/image/format";
import { TLV_XSOTA_SLOT_TLVS, unwrapImageKey } from "../../src/image/enc";
import { clearEncryptedFlags, decryptImageBytes, encryptedLayout, readEncryptedTlvArea, type EncryptedLayout } from "../../src/image/enc-stream";
import { imageSignatureChecker } from "../../src/image/signature";
import { MAX_TLV_AREA, verifyImage, type ImageInfo } from "../../src/image/verify";
import { BytesFlash } from "./bytes-flash";
import { area, concatBytes, signedTlvArea, tlv } from "./encode";
import type { SigningKey } from "../keys/signer";
import { SignError } from "./sign";

export interface OpenedImage {
  readonly layout: EncryptedLayout;
  /** The unprotected TLV area as sent (ENC_EC256 and any slot TLVs in it). */
  readonly tlvArea: Uint8Array;
  /** imgtool's `--clear` form: flag kept, body plaintext, TLVs as sent. */
  readonly clearImage: Uint8Array;
  /** The image that lands in the slot (only with slot TLVs). */
  readonly slotImage: Uint8Array | undefined;
  /** MCUboot's view of the decrypted image (hash over the flagged header and the plaintext). */
  readonly info: ImageInfo;
}

/**
 * Unwrap the image key with `secret` and check the decrypted image as MCUboot
 * does (SHA256 TLV over the header as written and the plaintext, KEYHASH of a
 * key in `keyring`, ECDSA signature).
 * @throws OtaError IMAGE_* / ENC_* (ENC_KEY_UNWRAP for another recipient), or
 *   the verifier's reason for a decrypted image that fails the check.
 */
export function openEncryptedImage(cipher: Cipher, secret: Uint8Array, bytes: Uint8Array, keyring: Keyring): OpenedImage {
  const layout = encryptedLayout(bytes.subarray(0, 32));
  const rest = bytes.subarray(layout.tlvStart);
  if (rest.length < 4) throw new OtaError(Reason.IMAGE_TRUNCATED, "the file ends before its TLV area");
  const tlvArea = rest.subarray(0, rest[2] | (rest[3] << 8));
  const { enc } = readEncryptedTlvArea(tlvArea);
  const key = unwrapImageKey(cipher, secret, enc, layout.keyLength);
  const { clearImage, slotImage } = decryptImageBytes(cipher, key, bytes);
  key.fill(0);
  const r = verifyImage(new BytesFlash(clearImage), { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
  if (!r.ok) throw new OtaError(r.reason, `decrypted, the image fails MCUboot's check: ${r.message}`);
  return { layout, tlvArea, clearImage, slotImage, info: r.info };
}

/**
 * An image imgtool encrypted, plus the slot TLVs: its bytes up to the TLV
 * area unchanged, its TLVs byte for byte, then one XSOTA_SLOT_TLVS TLV whose
 * value is the TLV area (SHA256, KEYHASH, ECDSASIG by `signer`) of the image
 * with the flag cleared and the plaintext body. The image must decrypt with
 * `secret` and pass MCUboot's check under `signer`'s public key first.
 * @throws OtaError as openEncryptedImage; SignError("input") for an image that
 *   has slot TLVs already, bytes after its TLV area, or no room for them.
 */
export function addSlotTlvs(cipher: Cipher, secret: Uint8Array, bytes: Uint8Array, signer: SigningKey): { image: Uint8Array; slotImage: Uint8Array; /** MCUboot's view of the image as imgtool wrote it. */ info: ImageInfo } {
  const keyring = createKeyring([signer.publicKey], softwareDigest);
  const opened = openEncryptedImage(cipher, secret, bytes, keyring);
  const { layout, tlvArea } = opened;
  if (opened.slotImage) throw new SignError("the image has slot TLVs already (xs-ota sign --encrypt made it)", "input");
  const end = layout.tlvStart + tlvArea.length;
  if (bytes.length > end) throw new SignError(`${bytes.length - end} bytes after the TLV area (padded with --pad?): give the image as imgtool signs it without --pad`, "input");
  const slotHashed = clearEncryptedFlags(opened.clearImage.subarray(0, layout.tlvStart));
  const slotTlvs = signedTlvArea(slotHashed, signer);
  const grown = area(TLV_INFO_MAGIC, [tlvArea.subarray(4), tlv(TLV_XSOTA_SLOT_TLVS, slotTlvs)]);
  if (grown.length > MAX_TLV_AREA) throw new SignError(`the TLV area with the slot TLVs is ${grown.length} bytes, over the ${MAX_TLV_AREA} a device holds`, "input");
  const image = concatBytes(bytes.subarray(0, layout.tlvStart), grown);
  // what the device will do with it: the slot image passes the same check
  const slotImage = concatBytes(slotHashed, slotTlvs);
  const r = verifyImage(new BytesFlash(slotImage), { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
  if (!r.ok) throw new OtaError(r.reason, `the slot image fails its check: ${r.message}`);
  return { image, slotImage, info: opened.info };
}
