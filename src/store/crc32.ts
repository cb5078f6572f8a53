/**
 * CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320, init and final xor
 * 0xFFFFFFFF: the zlib / PNG CRC). Guards every stored record against torn
 * writes and torn erases. The 1 KiB table is built once at module load.
 */

const TABLE = /* @__PURE__ */ (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * Continue a CRC-32 over `data[start, end)`. Start a new CRC with `crc = 0`.
 * @example crc32Update(0, utf8Encode("123456789")) === 0xcbf43926
 */
export function crc32Update(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = ~crc >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 of a whole array. */
export function crc32(data: Uint8Array): number {
  return crc32Update(0, data);
}
