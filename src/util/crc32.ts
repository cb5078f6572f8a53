/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib and PNG), the
 * per-block output check of the patch format and the guard of every stored
 * record (src/store). One 1 KiB table, built on
 * first use and shared.
 */
let table: Uint32Array | undefined;

function crcTable(): Uint32Array {
  if (table) return table;
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  table = t;
  return t;
}

/** Bytes of RAM the CRC table takes (for the decoder's memory account). */
export const CRC_TABLE_BYTES = 1024;

/**
 * Continue a CRC over `data[start, end)`. Start with `crc = 0`; the result is
 * the finished CRC of everything fed so far (no separate finalisation).
 */
export function crc32Update(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  const t = crcTable();
  let c = ~crc >>> 0;
  for (let i = start; i < end; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 of `data`. */
export function crc32(data: Uint8Array): number {
  return crc32Update(0, data);
}
