/**
 * Streaming verification of an MCUboot image stored in a flash slot, as the
 * bootloader will check it: header, hash over header + body + protected TLVs,
 * then the TLV area. Reads in bounded chunks; never holds the image in RAM.
 *
 * This is the hash-level check; signature and key checks are layered on top
 * (see `VerifyOptions.checkSignature`).
 */
import { OtaError, Reason, reasonName, type ReasonCode } from "../errors";
import type { Digest, Flash } from "../../hal/types";
import {
  IMAGE_HEADER_SIZE,
  TLV,
  TLV_HEADER_SIZE,
  TLV_INFO_MAGIC,
  TLV_INFO_SIZE,
  TLV_PROT_INFO_MAGIC,
  hashedLength,
  parseImageHeader,
  type ImageHeader,
} from "./format";

/** Bytes read from flash per step while hashing (bounded RAM). */
export const VERIFY_CHUNK = 1024;
/** Largest TLV area accepted (MCUboot images carry a few hundred bytes). */
export const MAX_TLV_AREA = 4096;

export interface Tlv {
  readonly type: number;
  /** Offset of the value within the slot. */
  readonly offset: number;
  readonly length: number;
  readonly protected: boolean;
}

export interface ImageInfo {
  readonly header: ImageHeader;
  readonly tlvs: readonly Tlv[];
  /** SHA-256 computed over header + body + protected TLVs. */
  readonly hash: Uint8Array;
  /** Total image length including both TLV areas. */
  readonly totalLength: number;
  /** The SEC_CNT protected TLV, or undefined if absent. */
  readonly securityCounter: number | undefined;
}

export type VerifyResult = { ok: true; info: ImageInfo } | { ok: false; reason: ReasonCode; message: string };

export interface VerifyOptions {
  digest: Digest;
  /**
   * Check the signature TLVs over the computed hash; return Reason.OK or a
   * reason code. Absent: only the hash is checked.
   */
  checkSignature?: (slot: Flash, info: ImageInfo) => ReasonCode;
  /** Called between chunks with the bytes hashed so far (lets the supervisor yield). */
  onProgress?: (done: number, total: number) => void;
  /**
   * The SHA-256 over header + body + protected TLVs, already computed by the
   * caller (who hashed the slot in slices between other work): not hashed again.
   */
  hash?: Uint8Array;
}

export interface ImageExtent {
  readonly header: ImageHeader;
  /** Bytes covered by the SHA256 TLV: header + body + protected TLVs. */
  readonly hashedLength: number;
  /** Header through the end of the TLV area. */
  readonly totalLength: number;
  /** The protected SEC_CNT TLV (unverified until the image is), or undefined. */
  readonly securityCounter: number | undefined;
}

/**
 * Where the image in `slot` ends, from its header and TLV area lengths, without
 * hashing (a caller that hashes in slices needs the ranges first).
 * @throws OtaError IMAGE_* for a malformed header or TLV area; flash errors.
 */
export function imageExtent(slot: Flash): ImageExtent {
  const slotSize = slot.status().size;
  const header = parseImageHeader(slot.read(IMAGE_HEADER_SIZE, 0));
  const hashed = hashedLength(header);
  if (hashed + TLV_INFO_SIZE > slotSize) throw new OtaError(Reason.IMAGE_TOO_LARGE, `image of ${hashed} bytes does not fit the slot`);
  const tlvs: Tlv[] = [];
  let end = header.hdrSize + header.imgSize;
  if (header.protectTlvSize > 0) end = readTlvArea(slot, end, TLV_PROT_INFO_MAGIC, end + header.protectTlvSize, true, tlvs);
  end = readTlvArea(slot, end, TLV_INFO_MAGIC, slotSize, false, tlvs);
  let securityCounter: number | undefined;
  const sec = tlvs.find((t) => t.type === TLV.SEC_CNT && t.protected && t.length === 4);
  if (sec) {
    const b = slot.read(4, sec.offset);
    securityCounter = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  }
  return Object.freeze({ header, hashedLength: hashed, totalLength: end, securityCounter });
}

function readTlvArea(slot: Flash, start: number, magic: number, limit: number, isProtected: boolean, out: Tlv[]): number {
  if (start + TLV_INFO_SIZE > limit) throw new OtaError(Reason.IMAGE_TRUNCATED, "TLV info past the slot");
  const info = slot.read(TLV_INFO_SIZE, start);
  const gotMagic = info[0] | (info[1] << 8);
  const total = info[2] | (info[3] << 8);
  if (gotMagic !== magic) throw new OtaError(Reason.IMAGE_BAD_TLV, `TLV area magic 0x${gotMagic.toString(16)}`, start);
  if (total < TLV_INFO_SIZE || total > MAX_TLV_AREA) throw new OtaError(Reason.IMAGE_BAD_TLV, `TLV area size ${total}`, start);
  if (start + total > limit) throw new OtaError(Reason.IMAGE_TRUNCATED, "TLV area past the slot");
  let off = start + TLV_INFO_SIZE;
  const end = start + total;
  for (let n = 0; off < end; n++) {
    if (n >= 64) throw new OtaError(Reason.IMAGE_BAD_TLV, "more than 64 TLVs");
    if (off + TLV_HEADER_SIZE > end) throw new OtaError(Reason.IMAGE_BAD_TLV, "TLV header runs past its area", off);
    const h = slot.read(TLV_HEADER_SIZE, off);
    const type = h[0] | (h[1] << 8);
    const length = h[2] | (h[3] << 8);
    if (off + TLV_HEADER_SIZE + length > end) throw new OtaError(Reason.IMAGE_BAD_TLV, `TLV 0x${type.toString(16)} runs past its area`, off);
    out.push(Object.freeze({ type, offset: off + TLV_HEADER_SIZE, length, protected: isProtected }));
    off += TLV_HEADER_SIZE + length;
  }
  return end;
}

/**
 * Parse and hash the image in `slot`, compare the SHA256 TLV, then run the
 * signature check if one is given. Never throws for a bad image: every
 * defect is a `{ ok: false, reason }`. Flash errors other than range errors,
 * and non-OtaError exceptions (a power cut), propagate.
 */
export function verifyImage(slot: Flash, options: VerifyOptions): VerifyResult {
  try {
    const info = scanImage(slot, options);
    if (options.checkSignature) {
      const reason = options.checkSignature(slot, info);
      if (reason !== Reason.OK) return { ok: false, reason, message: `signature check failed (${reasonName(reason)})` };
    }
    return { ok: true, info };
  } catch (e) {
    if (e instanceof OtaError && e.code !== Reason.FLASH_IO) return { ok: false, reason: e.code === Reason.FLASH_RANGE ? Reason.IMAGE_TRUNCATED : e.code, message: e.message };
    throw e;
  }
}

/** The parse-and-hash part of `verifyImage`; throws OtaError for a bad image. */
export function scanImage(slot: Flash, options: VerifyOptions): ImageInfo {
  const slotSize = slot.status().size;
  const header = parseImageHeader(slot.read(IMAGE_HEADER_SIZE, 0));
  const hashed = hashedLength(header);
  if (hashed + TLV_INFO_SIZE > slotSize) throw new OtaError(Reason.IMAGE_TOO_LARGE, `image of ${hashed} bytes does not fit the slot`);
  let hash = options.hash;
  if (hash === undefined) {
    const h = options.digest.sha256();
    for (let off = 0; off < hashed; off += VERIFY_CHUNK) {
      const n = Math.min(VERIFY_CHUNK, hashed - off);
      h.update(slot.read(n, off));
      options.onProgress?.(off + n, hashed);
    }
    hash = h.finish();
  } else if (hash.length !== 32) throw new RangeError("VerifyOptions.hash must be 32 bytes");
  const tlvs: Tlv[] = [];
  let end = header.hdrSize + header.imgSize;
  if (header.protectTlvSize > 0) {
    const protEnd = readTlvArea(slot, end, TLV_PROT_INFO_MAGIC, end + header.protectTlvSize, true, tlvs);
    if (protEnd !== end + header.protectTlvSize) throw new OtaError(Reason.IMAGE_BAD_TLV, "protected TLV size disagrees with header");
    end = protEnd;
  }
  end = readTlvArea(slot, end, TLV_INFO_MAGIC, slotSize, false, tlvs);

  let securityCounter: number | undefined;
  let hashTlv: Tlv | undefined;
  for (const t of tlvs) {
    if (t.type === TLV.SHA256 && !t.protected) {
      if (hashTlv) throw new OtaError(Reason.IMAGE_BAD_TLV, "two SHA256 TLVs");
      hashTlv = t;
    } else if (t.type === TLV.SEC_CNT) {
      if (!t.protected || t.length !== 4 || securityCounter !== undefined) throw new OtaError(Reason.IMAGE_BAD_SECURITY_COUNTER, "SEC_CNT must be one protected 4-byte TLV");
      const b = slot.read(4, t.offset);
      securityCounter = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
    }
  }
  if (!hashTlv) throw new OtaError(Reason.IMAGE_NO_HASH, "no SHA256 TLV");
  if (hashTlv.length !== 32) throw new OtaError(Reason.IMAGE_BAD_TLV, "SHA256 TLV is not 32 bytes");
  const expected = slot.read(32, hashTlv.offset);
  let diff = 0;
  for (let i = 0; i < 32; i++) diff |= expected[i] ^ hash[i];
  if (diff !== 0) throw new OtaError(Reason.IMAGE_HASH_MISMATCH, "image hash does not match its SHA256 TLV");
  return Object.freeze({ header, tlvs: Object.freeze(tlvs), hash, totalLength: end, securityCounter });
}
