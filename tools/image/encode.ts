/**
 * The MCUboot image encoder (host side): body → header + body + protected TLVs
 * (SEC_CNT) + TLVs (SHA256, and the signature TLVs when a signer is given).
 * The decoder it must agree with is src/image/format.ts and verify.ts.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import {
  IMAGE_HEADER_SIZE,
  IMAGE_MAGIC,
  TLV,
  TLV_INFO_MAGIC,
  TLV_PROT_INFO_MAGIC,
  type ImageVersion,
} from "../../src/image/format";
import { bootMagic, BOOT_FLAG_SET } from "../../src/image/trailer";

export interface ImageSigner {
  /** SHA-256 of the public key (KEYHASH TLV). */
  keyHash: Uint8Array;
  /** DER ECDSA signature over the image hash (ECDSASIG TLV). */
  sign(hash: Uint8Array): Uint8Array;
}

export interface EncodeOptions {
  body: Uint8Array;
  version: ImageVersion;
  /** SEC_CNT protected TLV; omitted when undefined. */
  securityCounter?: number;
  headerSize?: number;
  /** Byte value of the header space after the 32 defined bytes (imgtool --pad-header uses the erase value). */
  headerFill?: number;
  loadAddr?: number;
  flags?: number;
  signer?: ImageSigner;
  /** Unprotected TLVs after the signature (imgtool puts ENC_EC256 there), in this order. */
  extraTlvs?: readonly { type: number; value: Uint8Array }[];
  /** Pad to this slot size and write a trailer (imgtool --pad). */
  pad?: { slotSize: number; writeAlign: number; confirm: boolean; eraseValue?: number };
}

/** One TLV: type (u16), length (u16), value. */
export function tlv(type: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + value.length);
  out[0] = type & 0xff;
  out[1] = type >> 8;
  out[2] = value.length & 0xff;
  out[3] = value.length >> 8;
  out.set(value, 4);
  return out;
}

/** A TLV area: info (magic, total length) and the encoded TLVs. */
export function area(magic: number, entries: Uint8Array[]): Uint8Array {
  const total = 4 + entries.reduce((n, e) => n + e.length, 0);
  const out = new Uint8Array(total);
  out[0] = magic & 0xff;
  out[1] = magic >> 8;
  out[2] = total & 0xff;
  out[3] = total >> 8;
  let o = 4;
  for (const e of entries) {
    out.set(e, o);
    o += e.length;
  }
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Build a complete image. */
export function encodeImage(o: EncodeOptions): Uint8Array {
  const headerSize = o.headerSize ?? 0x200;
  if (headerSize < IMAGE_HEADER_SIZE || headerSize > 0xffff) throw new RangeError(`header size ${headerSize} out of range`);
  const prot =
    o.securityCounter === undefined
      ? new Uint8Array(0)
      : area(TLV_PROT_INFO_MAGIC, [tlv(TLV.SEC_CNT, u32(o.securityCounter))]);
  const header = new Uint8Array(headerSize).fill(o.headerFill ?? 0);
  header.fill(0, 0, IMAGE_HEADER_SIZE);
  const v = new DataView(header.buffer);
  v.setUint32(0, IMAGE_MAGIC, true);
  v.setUint32(4, o.loadAddr ?? 0, true);
  v.setUint16(8, headerSize, true);
  v.setUint16(10, prot.length, true);
  v.setUint32(12, o.body.length, true);
  v.setUint32(16, o.flags ?? 0, true);
  v.setUint8(20, o.version.major);
  v.setUint8(21, o.version.minor);
  v.setUint16(22, o.version.revision, true);
  v.setUint32(24, o.version.build, true);
  const hashed = concatBytes(header, o.body, prot);
  const image = concatBytes(hashed, signedTlvArea(hashed, o.signer, o.extraTlvs));
  return o.pad ? padImage(image, o.pad) : image;
}

/**
 * The TLV area for the hashed bytes of an image (header, body, protected TLVs):
 * SHA256, then KEYHASH and ECDSASIG with a signer, then `extraTlvs`.
 */
export function signedTlvArea(hashed: Uint8Array, signer?: ImageSigner, extraTlvs?: EncodeOptions["extraTlvs"]): Uint8Array {
  const hash = sha256(hashed);
  const tlvs = [tlv(TLV.SHA256, hash)];
  if (signer) {
    tlvs.push(tlv(TLV.KEYHASH, signer.keyHash));
    tlvs.push(tlv(TLV.ECDSASIG, signer.sign(hash)));
  }
  for (const t of extraTlvs ?? []) tlvs.push(tlv(t.type, t.value));
  return area(TLV_INFO_MAGIC, tlvs);
}

/** Pad to the slot size with the erase value and write the trailer magic (and image_ok with confirm). */
export function padImage(image: Uint8Array, p: NonNullable<EncodeOptions["pad"]>): Uint8Array {
  const erase = p.eraseValue ?? 0xff;
  const maxAlign = Math.max(8, p.writeAlign);
  const magicArea = Math.max(16, maxAlign);
  const trailerStart = p.slotSize - magicArea - 4 * maxAlign;
  if (image.length > trailerStart) throw new RangeError(`image of ${image.length} bytes leaves no room for the trailer in a ${p.slotSize}-byte slot`);
  const out = new Uint8Array(p.slotSize).fill(erase);
  out.set(image, 0);
  out.set(bootMagic(maxAlign), p.slotSize - 16);
  if (p.confirm) out[p.slotSize - magicArea - maxAlign] = BOOT_FLAG_SET;
  return out;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}
