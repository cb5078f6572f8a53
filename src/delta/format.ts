/**
 * The xs-ota patch format (byte layout in docs/formats.md, "Patch"): one
 * header, then `blockCount` blocks. Block `i` produces exactly the span
 * `[i * blockSize, min((i + 1) * blockSize, newLength))` of the new image and
 * is compressed on its own, so a decoder needs one block of buffer, a power
 * cut resumes at a block boundary, and every block's output is checked (CRC-32)
 * before the block counts as done.
 *
 * Decoders live here (src/); the encoder is tools/delta/encode.ts.
 */
import { OtaError, Reason } from "../errors";
import { crc32 } from "../util/crc32";

/** "XSDP": xs-ota delta patch. */
export const PATCH_MAGIC = Object.freeze([0x58, 0x53, 0x44, 0x50]);
/** Version 1: codecs STORED, DEFLATE and RANGE over the bsdiff raw block. */
export const PATCH_VERSION = 1;
/** Version 2: codec LZ (./lz.ts), streamed, with copies from the new image; its own block header. */
export const PATCH_VERSION_LZ = 2;
export const PATCH_HEADER_SIZE = 88;
/** Largest block header: varint stored length, varint raw length (5 bytes each), CRC-32. */
export const BLOCK_HEADER_MAX = 14;
/** Smallest block header (an identity block: two one-byte zeros and the CRC). */
export const BLOCK_HEADER_MIN = 6;

/**
 * Block payload compression. A block whose stored length equals its raw length
 * is stored as is. DEFLATE: raw DEFLATE of the raw block. RANGE: the block's
 * controls, diff and extra bytes coded by the context-modelled range coder
 * (./cm.ts), whose diff contexts are the old image's bytes. LZ (version 2
 * patches only): operations over the old image, literals and the new image
 * written so far, Huffman-coded per block (./lz.ts).
 */
export const Codec = Object.freeze({ STORED: 0, DEFLATE: 1, RANGE: 2, LZ: 3, LZR: 4 });
export type CodecId = (typeof Codec)[keyof typeof Codec];

/** Block sizes the format allows: 2^10 .. 2^16 bytes of new image per block. */
export const MIN_BLOCK_LOG2 = 10;
export const MAX_BLOCK_LOG2 = 16;
/** Largest image either side of a patch: 16 MiB (the parts this targets have 2 MiB of flash). */
export const MAX_IMAGE_LENGTH = 16 * 1024 * 1024;

/**
 * Largest raw (decompressed) block payload for a block size: the span's diff
 * and extra bytes plus an allowance for control records and the diff
 * run-length framing. The encoder falls back to a plain "extra" block when a
 * block would exceed it, so the bound costs compression nothing in practice.
 */
export function maxRawLength(blockSize: number): number {
  return blockSize + (blockSize >>> 2) + 64;
}

/**
 * A block header: stored (payload) length, raw length, CRC-32 of the block's
 * output. Stored = raw: the payload is the raw block itself; stored < raw: it
 * is compressed with the patch's codec (DEFLATE, or RANGE, where raw is the
 * length of the equivalent raw block and only bounds the payload); both 0: an identity block (the span is the old
 * image's bytes at the same offset, unchanged).
 */
export interface BlockHeader {
  readonly storedLength: number;
  readonly rawLength: number;
  readonly crc: number;
  /** Bytes the header took. */
  readonly size: number;
}

/** Largest version-2 block header: varint stored length (5 bytes), CRC-32. */
export const BLOCK_HEADER_V2_MAX = 9;
/** Smallest version-2 block header (identity: one zero byte and the CRC). */
export const BLOCK_HEADER_V2_MIN = 5;

/**
 * Parse a version-2 block header (varint payload length, CRC-32 of the span)
 * from `b[0, length)`; undefined while incomplete. Payload length 0 is an
 * identity block.
 * @throws OtaError PATCH_MALFORMED for a varint over 32 bits or 5 bytes.
 */
export function parseBlockHeaderV2(b: Uint8Array, length: number): BlockHeader | undefined {
  const stored = readVarint32(b, 0, length);
  if (!stored) return undefined;
  const at = stored[1];
  if (at + 4 > length) return undefined;
  return { storedLength: stored[0], rawLength: 0, crc: readU32(b, at), size: at + 4 };
}

/**
 * Parse a block header from `b[0, length)`; undefined while incomplete.
 * @throws OtaError PATCH_MALFORMED for a varint over 32 bits or 5 bytes.
 */
export function parseBlockHeader(b: Uint8Array, length: number): BlockHeader | undefined {
  const stored = readVarint32(b, 0, length);
  if (!stored) return undefined;
  const raw = readVarint32(b, stored[1], length);
  if (!raw) return undefined;
  const at = raw[1];
  if (at + 4 > length) return undefined;
  return { storedLength: stored[0], rawLength: raw[0], crc: readU32(b, at), size: at + 4 };
}

/**
 * The block headers' varint (7 bits a byte, low first, at most 5 bytes and 32
 * bits) at `b[at, length)`: [value, offset after it], or undefined while incomplete.
 * @throws OtaError PATCH_MALFORMED for a varint over 32 bits or 5 bytes.
 */
function readVarint32(b: Uint8Array, at: number, length: number): [number, number] | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; ; i++) {
    if (i === 5) throw new OtaError(Reason.PATCH_MALFORMED, "block header varint longer than 5 bytes");
    if (at >= length) return undefined;
    const byte = b[at++];
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) break;
    scale *= 128;
  }
  if (value > 0xffffffff) throw new OtaError(Reason.PATCH_MALFORMED, "block header varint over 32 bits");
  return [value, at];
}

export interface PatchHeader {
  readonly version: number;
  readonly codec: CodecId;
  readonly blockSize: number;
  readonly oldLength: number;
  readonly oldSha256: Uint8Array;
  readonly newLength: number;
  readonly newSha256: Uint8Array;
  readonly blockCount: number;
}

export function readU32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

/** True when `bytes` starts with the patch magic (no other check). */
export function hasPatchMagic(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  for (let i = 0; i < 4; i++) if (bytes[i] !== PATCH_MAGIC[i]) return false;
  return true;
}

/**
 * Parse and check a patch header (the first PATCH_HEADER_SIZE bytes).
 * @throws OtaError PATCH_TRUNCATED short input; PATCH_BAD_MAGIC; PATCH_UNSUPPORTED
 *   version, codec or block size; PATCH_HEADER_CRC; PATCH_MALFORMED inconsistent
 *   lengths or block count; PATCH_TOO_LARGE an image past MAX_IMAGE_LENGTH.
 */
export function parsePatchHeader(bytes: Uint8Array): PatchHeader {
  if (bytes.length < PATCH_HEADER_SIZE) throw new OtaError(Reason.PATCH_TRUNCATED, `header needs ${PATCH_HEADER_SIZE} bytes, got ${bytes.length}`);
  if (!hasPatchMagic(bytes)) throw new OtaError(Reason.PATCH_BAD_MAGIC, "not an xs-ota patch");
  const version = bytes[4];
  if (version !== PATCH_VERSION && version !== PATCH_VERSION_LZ) throw new OtaError(Reason.PATCH_UNSUPPORTED, `patch version ${version}`, version);
  const crc = readU32(bytes, 84);
  if (crc32(bytes.subarray(0, 84)) !== crc) throw new OtaError(Reason.PATCH_HEADER_CRC, "header CRC mismatch");
  const codec = bytes[5];
  const known = version === PATCH_VERSION ? codec === Codec.STORED || codec === Codec.DEFLATE || codec === Codec.RANGE : codec === Codec.LZ || codec === Codec.LZR;
  if (!known) throw new OtaError(Reason.PATCH_UNSUPPORTED, `codec ${codec} in a version ${version} patch`, codec);
  const log2 = bytes[6];
  if (log2 < MIN_BLOCK_LOG2 || log2 > MAX_BLOCK_LOG2) throw new OtaError(Reason.PATCH_UNSUPPORTED, `block size 2^${log2}`, log2);
  if (bytes[7] !== 0) throw new OtaError(Reason.PATCH_UNSUPPORTED, `flags 0x${bytes[7].toString(16)}`, bytes[7]);
  const oldLength = readU32(bytes, 8);
  const newLength = readU32(bytes, 12);
  if (oldLength > MAX_IMAGE_LENGTH) throw new OtaError(Reason.PATCH_TOO_LARGE, `old length ${oldLength}`, oldLength);
  if (newLength > MAX_IMAGE_LENGTH) throw new OtaError(Reason.PATCH_TOO_LARGE, `new length ${newLength}`, newLength);
  const blockSize = 1 << log2;
  const blockCount = readU32(bytes, 80);
  const expected = Math.ceil(newLength / blockSize);
  if (blockCount !== expected) throw new OtaError(Reason.PATCH_MALFORMED, `block count ${blockCount}, new length needs ${expected}`, blockCount);
  return Object.freeze({
    version,
    codec: codec as CodecId,
    blockSize,
    oldLength,
    oldSha256: bytes.slice(16, 48),
    newLength,
    newSha256: bytes.slice(48, 80),
    blockCount,
  });
}

/**
 * Where an interrupted patch install can go on. The patcher hands one out
 * after every finished block; the agent journals it (encodeCheckpoint) and
 * after a reset passes it to `PatchApplier.resume`.
 *
 * `next*` is the first unfinished block. `anchor*` is the block that starts
 * the flash erase block holding `nextNewOffset`: when the inactive slot's
 * flash past `nextNewOffset` is no longer erased (the cut hit a write into
 * that erase block), the erase block must be erased again and the install
 * goes on from the anchor instead. Where blocks are at least one erase block
 * long, the anchor is the next block itself.
 */
export interface PatchCheckpoint {
  /** The patch header bytes (PATCH_HEADER_SIZE), so a resume needs no byte before `patchOffset`. */
  readonly header: Uint8Array;
  readonly nextBlock: number;
  readonly nextNewOffset: number;
  readonly nextPatchOffset: number;
  readonly anchorBlock: number;
  readonly anchorNewOffset: number;
  readonly anchorPatchOffset: number;
}

export const CHECKPOINT_SIZE = PATCH_HEADER_SIZE + 6 * 4 + 4;

/** A checkpoint as a fixed-size record (header, six u32, CRC-32) for a journal. */
export function encodeCheckpoint(cp: PatchCheckpoint): Uint8Array {
  const out = new Uint8Array(CHECKPOINT_SIZE);
  out.set(cp.header.subarray(0, PATCH_HEADER_SIZE), 0);
  let o = PATCH_HEADER_SIZE;
  for (const v of [cp.nextBlock, cp.nextNewOffset, cp.nextPatchOffset, cp.anchorBlock, cp.anchorNewOffset, cp.anchorPatchOffset]) {
    writeU32(out, o, v);
    o += 4;
  }
  writeU32(out, o, crc32(out.subarray(0, o)));
  return out;
}

/**
 * Decode a journaled checkpoint record. Field consistency against the flash
 * is checked by `PatchApplier.resume`.
 * @throws OtaError PATCH_BAD_CHECKPOINT wrong length or CRC.
 */
export function decodeCheckpoint(bytes: Uint8Array): PatchCheckpoint {
  if (bytes.length !== CHECKPOINT_SIZE) throw new OtaError(Reason.PATCH_BAD_CHECKPOINT, `checkpoint record of ${bytes.length} bytes`);
  const o = PATCH_HEADER_SIZE;
  if (crc32(bytes.subarray(0, CHECKPOINT_SIZE - 4)) !== readU32(bytes, CHECKPOINT_SIZE - 4)) {
    throw new OtaError(Reason.PATCH_BAD_CHECKPOINT, "checkpoint CRC mismatch");
  }
  return Object.freeze({
    header: bytes.slice(0, PATCH_HEADER_SIZE),
    nextBlock: readU32(bytes, o),
    nextNewOffset: readU32(bytes, o + 4),
    nextPatchOffset: readU32(bytes, o + 8),
    anchorBlock: readU32(bytes, o + 12),
    anchorNewOffset: readU32(bytes, o + 16),
    anchorPatchOffset: readU32(bytes, o + 20),
  });
}
