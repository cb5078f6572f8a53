/**
 * The patch blocks' CRC-32 (the same CRC as src/util/crc32.ts: IEEE 802.3,
 * reflected 0xEDB88320, zlib's), computed four bytes a step ("slicing by
 * four") for the patcher's hot path. On XS every typed-array access and
 * every loop pass is interpreted, and a Uint32Array element above 2^31 is a
 * double: here the tables are Int32Array and the running value stays an
 * int32, and aligned input is read a word at a time. On the device lane
 * this costs about a third of the byte-at-a-time loop.
 *
 * RAM: four 1 KiB tables (BLOCK_CRC_TABLE_BYTES), built on first use and shared.
 *
 * A platform whose Digest has a native `crc32` (hal/moddable/digest.ts, C in
 * hal/moddable/native/crc32.c) is used instead (`blockCrcOf`): on the M7 the
 * JS loop costs about 750 instructions a byte, the C one a few.
 */
import type { Digest } from "../../hal/types";

let tables: Int32Array[] | undefined;

/** True where typed arrays are little-endian (every target here; checked, not assumed). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function crcTables(): Int32Array[] {
  if (tables) return tables;
  const t0 = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t0[n] = c;
  }
  const out = [t0];
  for (let s = 1; s < 4; s++) {
    const prev = out[s - 1];
    const t = new Int32Array(256);
    for (let n = 0; n < 256; n++) t[n] = t0[prev[n] & 0xff] ^ (prev[n] >>> 8);
    out.push(t);
  }
  tables = out;
  return out;
}

/** Bytes of RAM the tables take (for the decoder's memory account). */
export const BLOCK_CRC_TABLE_BYTES = 4 * 1024;

/**
 * Continue a CRC-32 over `data[start, end)`: start with `crc = 0`; the result
 * is the finished CRC of everything fed so far (as crc32Update).
 */
export function blockCrcUpdate(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  const [t0, t1, t2, t3] = crcTables();
  let c = ~crc | 0;
  let i = start;
  // Bytes up to a word boundary of the underlying buffer, then words, then the tail.
  const base = data.byteOffset;
  if (LITTLE_ENDIAN && end - i >= 32) {
    // Bounded: at most 3 bytes.
    while ((base + i) & 3) c = t0[(c ^ data[i++]) & 0xff] ^ (c >>> 8);
    const words = (end - i) >> 2;
    const w = new Int32Array(data.buffer, base + i, words);
    // Bounded: `words` passes.
    for (let k = 0; k < words; k++) {
      c ^= w[k];
      c = t3[c & 0xff] ^ t2[(c >>> 8) & 0xff] ^ t1[(c >>> 16) & 0xff] ^ t0[c >>> 24];
    }
    i += words << 2;
  }
  // Bounded: end - i passes.
  for (; i < end; i++) c = t0[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** A CRC-32 continuation: `crc` (0 to begin) over `data[start, end)`, the finished CRC as a uint32. */
export type BlockCrc = (crc: number, data: Uint8Array, start: number, end: number) => number;

/** The digest's native CRC-32 when it has one, else blockCrcUpdate. */
export function blockCrcOf(digest: Digest): BlockCrc {
  const native = digest.crc32;
  if (typeof native !== "function") return blockCrcUpdate;
  return (crc, data, start, end) => native.call(digest, crc, data, start, end);
}

/** RAM the CRC of `digest` needs in the decoder's account: the JS tables, or none for a native one (its table is C's). */
export function blockCrcTableBytes(digest: Digest): number {
  return typeof digest.crc32 === "function" ? 0 : BLOCK_CRC_TABLE_BYTES;
}
