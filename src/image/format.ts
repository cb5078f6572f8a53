/**
 * MCUboot image format: the 32-byte header and the TLV areas (mcu-tools/mcuboot
 * docs/design.md, imgtool). All fields little-endian. Layout in docs/formats.md.
 *
 *   [header (ih_hdr_size bytes, the first 32 defined)] [body (ih_img_size)]
 *   [protected TLV area (ih_protect_tlv_size, magic 0x6908), optional]
 *   [TLV area (magic 0x6907)]
 *
 * The SHA256 TLV covers header + body + protected TLV area.
 */
import { OtaError, Reason } from "../errors";

export const IMAGE_MAGIC = 0x96f3b83d;
export const IMAGE_HEADER_SIZE = 32;
export const TLV_INFO_MAGIC = 0x6907;
export const TLV_PROT_INFO_MAGIC = 0x6908;
export const TLV_INFO_SIZE = 4;
export const TLV_HEADER_SIZE = 4;

export const TLV = Object.freeze({
  KEYHASH: 0x01,
  SHA256: 0x10,
  ECDSASIG: 0x22,
  SEC_CNT: 0x50,
});

export const IMAGE_F_RAM_LOAD = 0x20;
export const IMAGE_F_NON_BOOTABLE = 0x10;

export interface ImageVersion {
  readonly major: number;
  readonly minor: number;
  readonly revision: number;
  readonly build: number;
}

export interface ImageHeader {
  readonly loadAddr: number;
  readonly hdrSize: number;
  readonly protectTlvSize: number;
  readonly imgSize: number;
  readonly flags: number;
  readonly version: ImageVersion;
}

/**
 * Parse the 32-byte header.
 * @throws OtaError IMAGE_TRUNCATED (< 32 bytes), IMAGE_BAD_MAGIC, IMAGE_BAD_HEADER
 *   (declared header size below 32).
 */
export function parseImageHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length < IMAGE_HEADER_SIZE) throw new OtaError(Reason.IMAGE_TRUNCATED, "header shorter than 32 bytes");
  const v = new DataView(bytes.buffer, bytes.byteOffset, IMAGE_HEADER_SIZE);
  if (v.getUint32(0, true) !== IMAGE_MAGIC) throw new OtaError(Reason.IMAGE_BAD_MAGIC, "no MCUboot image magic");
  const hdrSize = v.getUint16(8, true);
  if (hdrSize < IMAGE_HEADER_SIZE) throw new OtaError(Reason.IMAGE_BAD_HEADER, `header size ${hdrSize} < 32`);
  return Object.freeze({
    loadAddr: v.getUint32(4, true),
    hdrSize,
    protectTlvSize: v.getUint16(10, true),
    imgSize: v.getUint32(12, true),
    flags: v.getUint32(16, true),
    version: Object.freeze({
      major: v.getUint8(20),
      minor: v.getUint8(21),
      revision: v.getUint16(22, true),
      build: v.getUint32(24, true),
    }),
  });
}

/** Compare versions as MCUboot does (major, minor, revision; build number last). */
export function compareVersions(a: ImageVersion, b: ImageVersion, includeBuild = true): number {
  return (
    a.major - b.major ||
    a.minor - b.minor ||
    a.revision - b.revision ||
    (includeBuild ? a.build - b.build : 0)
  );
}

/** "1.2.3+4" */
export function formatVersion(v: ImageVersion): string {
  return `${v.major}.${v.minor}.${v.revision}+${v.build}`;
}

/**
 * Parse "major.minor.revision+build" (minor, revision and build optional).
 * @throws OtaError BAD_ARGUMENT on a malformed string or a field out of range.
 */
export function parseVersion(s: string): ImageVersion {
  const m = /^(\d{1,3})(?:\.(\d{1,3})(?:\.(\d{1,5})(?:\+(\d{1,10}))?)?)?$/.exec(s);
  if (!m) throw new OtaError(Reason.BAD_ARGUMENT, `version "${s}" is not major.minor.revision+build`);
  const v = { major: +m[1], minor: +(m[2] ?? 0), revision: +(m[3] ?? 0), build: +(m[4] ?? 0) };
  if (v.major > 255 || v.minor > 255 || v.revision > 65535 || v.build > 0xffffffff) {
    throw new OtaError(Reason.BAD_ARGUMENT, `version "${s}" has a field out of range`);
  }
  return Object.freeze(v);
}

/** Offset of the protected TLV area (or the TLV area when there is none). */
export function hashedLength(h: ImageHeader): number {
  return h.hdrSize + h.imgSize + h.protectTlvSize;
}
