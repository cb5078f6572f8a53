/**
 * Encrypted image → the image that lands in the slot, streaming, in bounded
 * memory, resumable at any offset below the TLV area.
 *
 * The payload is an MCUboot encrypted image as imgtool writes it (header with
 * IMAGE_F_ENCRYPTED_AES*, AES-CTR body, protected TLVs, TLVs with ENC_EC256)
 * plus xs-ota's slot-TLVs TLV. What goes to the slot at the same offsets:
 *
 * - the header with the encrypted flags cleared (direct-xip MCUboot without
 *   MCUBOOT_ENC_IMAGES refuses a header carrying them, and with it would
 *   decrypt slot 1 again while hashing; docs/formats.md "Encrypted images");
 * - the body decrypted (the keystream depends on the body offset only);
 * - the protected TLVs as they are;
 * - instead of the payload's TLV area (held in RAM, ≤ MAX_TLV_AREA), the
 *   slot-TLVs value: a complete TLV area signed over the flag-cleared header
 *   and the plaintext, which MCUboot and the agent's verifier check.
 */
import type { Cipher } from "../../hal/types";
import { OtaError, Reason } from "../errors";
import { IMAGE_HEADER_SIZE, TLV_INFO_MAGIC, TLV_HEADER_SIZE, TLV_INFO_SIZE, parseImageHeader, type ImageHeader } from "./format";
import { IMAGE_F_ENCRYPTED, TLV_ENC, TLV_XSOTA_SLOT_TLVS, aesCtrAt, keyLengthOfFlags } from "./enc";
import { MAX_TLV_AREA } from "./verify";

/**
 * A copy that never shares memory: `slice` on a Node Buffer (a Uint8Array
 * subclass the host tools pass in) returns a view, and writing the plaintext
 * into it would decrypt the caller's buffer in place.
 */
function copyOf(b: Uint8Array, start = 0, end = b.length): Uint8Array {
  const out = new Uint8Array(Math.max(0, end - start));
  out.set(b.subarray(start, end));
  return out;
}

/** The header bytes with the encrypted flags cleared (a copy). */
export function clearEncryptedFlags(header: Uint8Array): Uint8Array {
  const out = copyOf(header);
  out[16] &= ~IMAGE_F_ENCRYPTED & 0xff;
  return out;
}

export interface EncryptedLayout {
  readonly header: ImageHeader;
  /** AES key length from the flags. */
  readonly keyLength: 16 | 32;
  /** Where the body starts and ends, and the unprotected TLV area starts. */
  readonly bodyStart: number;
  readonly bodyEnd: number;
  readonly tlvStart: number;
}

/**
 * The layout of an encrypted image from its first 32 bytes (as sent, or as
 * held with the flags cleared: then `keyLength` must be given).
 * @throws OtaError IMAGE_* for a bad header; ENC_MALFORMED when the header is
 *   not encrypted (and no key length given) or the body is not a multiple of 16.
 */
export function encryptedLayout(header32: Uint8Array, keyLength?: 16 | 32): EncryptedLayout {
  const header = parseImageHeader(header32);
  const fromFlags = keyLengthOfFlags(header.flags);
  const n = fromFlags || keyLength;
  if (!n) throw new OtaError(Reason.ENC_MALFORMED, "the image header carries no encrypted flag");
  if (keyLength !== undefined && fromFlags !== 0 && fromFlags !== keyLength) throw new OtaError(Reason.ENC_UNSUPPORTED, `header flags say AES-${fromFlags * 8}, the key is AES-${keyLength * 8}`);
  // imgtool pads the payload to 16 bytes before it encrypts (image.py `create`)
  if ((header.hdrSize + header.imgSize) % 16 !== 0) throw new OtaError(Reason.ENC_MALFORMED, "encrypted body does not end on a 16-byte boundary");
  const bodyStart = header.hdrSize;
  const bodyEnd = header.hdrSize + header.imgSize;
  return Object.freeze({ header, keyLength: n, bodyStart, bodyEnd, tlvStart: bodyEnd + header.protectTlvSize });
}

/** The values of the ENC_EC256 and slot-TLVs TLVs of an unprotected TLV area held in RAM. */
export function readEncryptedTlvArea(area: Uint8Array): { enc: Uint8Array; slotTlvs: Uint8Array | undefined } {
  if (area.length < TLV_INFO_SIZE) throw new OtaError(Reason.IMAGE_TRUNCATED, "TLV area shorter than its info");
  const magic = area[0] | (area[1] << 8);
  const total = area[2] | (area[3] << 8);
  if (magic !== TLV_INFO_MAGIC) throw new OtaError(Reason.IMAGE_BAD_TLV, `TLV area magic 0x${magic.toString(16)}`);
  if (total !== area.length) throw new OtaError(Reason.IMAGE_BAD_TLV, `TLV area of ${total} bytes, ${area.length} received`);
  let enc: Uint8Array | undefined;
  let slotTlvs: Uint8Array | undefined;
  for (let off = TLV_INFO_SIZE, n = 0; off < total; n++) {
    if (n >= 64 || off + TLV_HEADER_SIZE > total) throw new OtaError(Reason.IMAGE_BAD_TLV, "TLV area malformed", off);
    const type = area[off] | (area[off + 1] << 8);
    const length = area[off + 2] | (area[off + 3] << 8);
    const value = area.subarray(off + TLV_HEADER_SIZE, off + TLV_HEADER_SIZE + length);
    if (value.length !== length) throw new OtaError(Reason.IMAGE_BAD_TLV, `TLV 0x${type.toString(16)} runs past its area`, off);
    if (type === TLV_ENC.EC256) {
      if (enc) throw new OtaError(Reason.ENC_MALFORMED, "two ENC_EC256 TLVs");
      enc = value;
    } else if (type === TLV_ENC.RSA2048 || type === TLV_ENC.KW || type === TLV_ENC.X25519 || type === TLV_ENC.X25519_SHA512) {
      throw new OtaError(Reason.ENC_UNSUPPORTED, `encryption TLV 0x${type.toString(16)}: only ENC_EC256 (ECIES-P256)`);
    } else if (type === TLV_XSOTA_SLOT_TLVS) {
      if (slotTlvs) throw new OtaError(Reason.ENC_MALFORMED, "two slot-TLVs TLVs");
      slotTlvs = value;
    }
    off += TLV_HEADER_SIZE + length;
  }
  if (!enc) throw new OtaError(Reason.ENC_MALFORMED, "an encrypted image without an ENC_EC256 TLV");
  return { enc, slotTlvs };
}

/**
 * The streaming transform. Feed payload bytes in order from `startOffset`
 * (0, or a resume point below the TLV area with the held header); write what
 * `push` returns at the same offsets, and what `finish` returns at
 * `layout.tlvStart`. RAM: the TLV area (≤ 4 KiB) and one output chunk.
 */
export class EncryptedImageDecoder {
  private at: number;
  private head: Uint8Array | undefined;
  private layoutValue: EncryptedLayout | undefined;
  private tail: Uint8Array | undefined;
  private tailFill = 0;

  /**
   * @param key the image's AES key (from `unwrapImageKey`); the decoder keeps a
   *   reference for its life and zeroes nothing (the owner does).
   * @param resume the held header unit (flags cleared) when starting past 0.
   * @param expectedEnc the ENC_EC256 value the key was unwrapped from (the
   *   manifest's): the image's own must be the same bytes.
   */
  constructor(
    private readonly cipher: Cipher,
    private readonly key: Uint8Array,
    startOffset: number,
    resume?: Uint8Array,
    private readonly expectedEnc?: Uint8Array,
  ) {
    this.at = startOffset;
    if (startOffset > 0) {
      if (startOffset < IMAGE_HEADER_SIZE) throw new RangeError("decoder: resume inside the header");
      if (!resume || resume.length < IMAGE_HEADER_SIZE) throw new RangeError("decoder: a resume needs the held header");
      this.layoutValue = encryptedLayout(resume.subarray(0, IMAGE_HEADER_SIZE), key.length as 16 | 32);
      if (startOffset > this.layoutValue.tlvStart) throw new RangeError("decoder: resume point past the TLV area's start");
    } else this.head = new Uint8Array(0);
  }

  /** The payload offset of the next byte. */
  get offset(): number {
    return this.at;
  }

  /** Known once the first 32 bytes went through. */
  get layout(): EncryptedLayout | undefined {
    return this.layoutValue;
  }

  /** RAM held: the TLV area buffer and a partial header. */
  get workingMemory(): number {
    return (this.tail?.length ?? 0) + (this.head?.length ?? 0);
  }

  /**
   * Take the payload bytes at `offset` (`piece.length` ≤ 4096); return the slot
   * bytes for the same offsets that can be written now (fewer while the header
   * is incomplete, none for the TLV area).
   * @throws OtaError ENC_* / IMAGE_* for a malformed image.
   */
  push(piece: Uint8Array): Uint8Array {
    if (this.head) {
      // gather the first 32 bytes to learn the layout
      const need = IMAGE_HEADER_SIZE - this.head.length;
      const take = piece.subarray(0, need);
      const h = new Uint8Array(this.head.length + take.length);
      h.set(this.head);
      h.set(take, this.head.length);
      if (h.length < IMAGE_HEADER_SIZE) {
        this.head = h;
        return new Uint8Array(0);
      }
      this.layoutValue = encryptedLayout(h);
      if (this.layoutValue.keyLength !== this.key.length) throw new OtaError(Reason.ENC_UNSUPPORTED, "header flags and key length disagree");
      this.head = undefined;
      this.at = IMAGE_HEADER_SIZE;
      const rest = this.push(piece.subarray(need));
      const out = new Uint8Array(IMAGE_HEADER_SIZE + rest.length);
      out.set(clearEncryptedFlags(h));
      out.set(rest, IMAGE_HEADER_SIZE);
      return out;
    }
    const L = this.layoutValue!;
    const start = this.at;
    const end = start + piece.length;
    this.at = end;
    // TLV area: held in RAM until complete
    const cut = Math.max(0, Math.min(piece.length, L.tlvStart - start));
    if (cut < piece.length) this.holdTail(piece.subarray(cut));
    const out = copyOf(piece, 0, cut);
    const b0 = Math.max(start, L.bodyStart);
    const b1 = Math.min(start + cut, L.bodyEnd);
    if (b0 < b1) out.set(aesCtrAt(this.cipher, this.key, b0 - L.bodyStart, piece.subarray(b0 - start, b1 - start)), b0 - start);
    return out;
  }

  private holdTail(bytes: Uint8Array): void {
    if (!this.tail) {
      // the info's length arrives with the first 4 bytes; until then keep them
      this.tail = new Uint8Array(MAX_TLV_AREA);
    }
    if (this.tailFill + bytes.length > MAX_TLV_AREA) throw new OtaError(Reason.IMAGE_BAD_TLV, `TLV area over ${MAX_TLV_AREA} bytes`);
    this.tail.set(bytes, this.tailFill);
    this.tailFill += bytes.length;
  }

  /**
   * All payload bytes arrived: check the TLV area and return the slot's TLV
   * area (to be written at `layout.tlvStart`).
   * @throws OtaError ENC_NO_SLOT_TLVS without the slot-TLVs TLV, ENC_MISMATCH
   *   when the ENC TLV is not the expected one, IMAGE_* for a malformed area.
   */
  finish(): Uint8Array {
    if (!this.layoutValue) throw new OtaError(Reason.IMAGE_TRUNCATED, "encrypted image shorter than its header");
    const area = (this.tail ?? new Uint8Array(0)).subarray(0, this.tailFill);
    const { enc, slotTlvs } = readEncryptedTlvArea(area);
    if (this.expectedEnc) {
      let d = enc.length ^ this.expectedEnc.length;
      for (let i = 0; i < enc.length && i < this.expectedEnc.length; i++) d |= enc[i] ^ this.expectedEnc[i];
      if (d !== 0) throw new OtaError(Reason.ENC_MISMATCH, "the image's ENC_EC256 is not the one the key was unwrapped from");
    }
    if (!slotTlvs) throw new OtaError(Reason.ENC_NO_SLOT_TLVS, "no slot TLVs: direct-xip MCUboot cannot boot this image (xs-ota sign --add-slot-tlvs adds them)");
    if (slotTlvs.length < TLV_INFO_SIZE || (slotTlvs[0] | (slotTlvs[1] << 8)) !== TLV_INFO_MAGIC || (slotTlvs[2] | (slotTlvs[3] << 8)) !== slotTlvs.length) {
      throw new OtaError(Reason.ENC_MALFORMED, "the slot TLVs are not one TLV area");
    }
    const out = copyOf(slotTlvs);
    this.tail?.fill(0);
    return out;
  }
}

/**
 * Whole-buffer convenience for host tools and tests: the slot image of an
 * encrypted image, and (for imgtool comparisons) the image as imgtool's
 * `--clear` writes it (flags kept, body plaintext, TLVs as sent).
 */
export function decryptImageBytes(cipher: Cipher, key: Uint8Array, image: Uint8Array): { slotImage: Uint8Array | undefined; clearImage: Uint8Array; layout: EncryptedLayout } {
  const layout = encryptedLayout(image.subarray(0, IMAGE_HEADER_SIZE));
  const clearImage = copyOf(image);
  clearImage.set(aesCtrAt(cipher, key, 0, image.subarray(layout.bodyStart, layout.bodyEnd)), layout.bodyStart);
  const area = image.subarray(layout.tlvStart);
  const total = area.length >= 4 ? area[2] | (area[3] << 8) : 0;
  const { slotTlvs } = readEncryptedTlvArea(area.subarray(0, total));
  let slotImage: Uint8Array | undefined;
  if (slotTlvs) {
    slotImage = new Uint8Array(layout.tlvStart + slotTlvs.length);
    slotImage.set(clearEncryptedFlags(clearImage.subarray(0, layout.tlvStart)));
    slotImage.set(slotTlvs, layout.tlvStart);
  }
  return { slotImage, clearImage, layout };
}
