/**
 * Intel HEX, read and written as imgtool does (by the file's extension, .hex):
 * records 00 data, 01 end of file, 02 extended segment address, 03 start
 * segment address, 04 extended linear address, 05 start linear address.
 * Reading yields the bytes from the lowest to the highest address written,
 * gaps filled with the erased value 0xff (what intelhex's tobinarray() gives
 * imgtool), and that lowest address. Writing emits 16 data bytes a record
 * and an 04 record whenever the upper 16 address bits change (intelhex's
 * layout), then the 01 record.
 */
import { readFileSync } from "node:fs";

export class HexError extends Error {
  constructor(message: string) {
    super(message);
  }
}
Object.defineProperty(HexError.prototype, "name", { value: "HexError", writable: true, configurable: true });

/** Largest span read from a .hex file (the biggest slot we handle is 16 MiB). */
export const MAX_HEX_SPAN = 16 * 1024 * 1024;

export interface HexImage {
  /** Lowest address written. */
  readonly baseAddress: number;
  /** The bytes from baseAddress to the highest address written, gaps 0xff. */
  readonly bytes: Uint8Array;
}

/** True when imgtool would treat `path` as Intel HEX (extension .hex, any case). */
export function isHexPath(path: string): boolean {
  return /\.hex$/i.test(path);
}

/**
 * Parse Intel HEX text.
 * @throws HexError naming the line for a bad record, checksum, overlap or a missing end record.
 */
export function decodeIntelHex(text: string, where = "hex"): HexImage {
  const chunks: { address: number; data: Uint8Array }[] = [];
  let upper = 0;
  let segment = 0;
  let ended = false;
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (line === "") continue;
    const at = `${where}:${n + 1}`;
    if (ended) throw new HexError(`${at}: a record after the end-of-file record`);
    if (!/^:([0-9A-Fa-f]{2})+$/.test(line) || line.length < 11) throw new HexError(`${at}: not an Intel HEX record`);
    const rec = Uint8Array.from(line.slice(1).match(/../g)!.map((h) => parseInt(h, 16)));
    const count = rec[0];
    if (rec.length !== count + 5) throw new HexError(`${at}: record length ${rec.length - 5}, its count says ${count}`);
    let sum = 0;
    for (const b of rec) sum = (sum + b) & 0xff;
    if (sum !== 0) throw new HexError(`${at}: checksum mismatch`);
    const offset = (rec[1] << 8) | rec[2];
    const type = rec[3];
    const data = rec.subarray(4, 4 + count);
    switch (type) {
      case 0x00:
        chunks.push({ address: upper + segment + offset, data: Uint8Array.from(data) });
        break;
      case 0x01:
        ended = true;
        break;
      case 0x02:
        if (count !== 2) throw new HexError(`${at}: extended segment address record of ${count} bytes`);
        segment = ((data[0] << 8) | data[1]) * 16;
        upper = 0;
        break;
      case 0x04:
        if (count !== 2) throw new HexError(`${at}: extended linear address record of ${count} bytes`);
        upper = ((data[0] << 8) | data[1]) * 0x10000;
        segment = 0;
        break;
      case 0x03:
      case 0x05:
        break; // start addresses: nothing to load
      default:
        throw new HexError(`${at}: unknown record type 0x${type.toString(16)}`);
    }
  }
  if (!ended) throw new HexError(`${where}: no end-of-file record (:00000001FF)`);
  if (chunks.length === 0) throw new HexError(`${where}: no data records`);
  let lo = Infinity;
  let hi = 0;
  for (const c of chunks) {
    lo = Math.min(lo, c.address);
    hi = Math.max(hi, c.address + c.data.length);
  }
  if (hi - lo > MAX_HEX_SPAN) throw new HexError(`${where}: data spans ${hi - lo} bytes (0x${lo.toString(16)}..0x${hi.toString(16)}), more than ${MAX_HEX_SPAN}`);
  const bytes = new Uint8Array(hi - lo).fill(0xff);
  const written = new Uint8Array(hi - lo);
  for (const c of chunks) {
    const o = c.address - lo;
    for (let i = 0; i < c.data.length; i++) {
      if (written[o + i] && bytes[o + i] !== c.data[i]) throw new HexError(`${where}: address 0x${(c.address + i).toString(16)} written twice with different data`);
      written[o + i] = 1;
    }
    bytes.set(c.data, o);
  }
  return { baseAddress: lo, bytes };
}

function record(type: number, offset: number, data: Uint8Array): string {
  const rec = new Uint8Array(5 + data.length);
  rec[0] = data.length;
  rec[1] = (offset >> 8) & 0xff;
  rec[2] = offset & 0xff;
  rec[3] = type;
  rec.set(data, 4);
  let sum = 0;
  for (let i = 0; i < rec.length - 1; i++) sum = (sum + rec[i]) & 0xff;
  rec[rec.length - 1] = (0x100 - sum) & 0xff;
  return ":" + Array.from(rec, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join("") + "\n";
}

/**
 * Intel HEX text for segments of bytes at their addresses (32-bit linear).
 * @throws RangeError when a segment runs past 4 GiB.
 */
export function encodeIntelHex(segments: readonly { address: number; bytes: Uint8Array }[]): string {
  let out = "";
  let upper = -1;
  for (const seg of segments) {
    if (!Number.isInteger(seg.address) || seg.address < 0 || seg.address + seg.bytes.length > 0x1_0000_0000) throw new RangeError("segment outside 32-bit address space");
    let at = 0;
    while (at < seg.bytes.length) {
      const address = seg.address + at;
      const hi = Math.floor(address / 0x10000);
      if (hi !== upper) {
        out += record(0x04, 0, Uint8Array.of(hi >> 8, hi & 0xff));
        upper = hi;
      }
      const lo = address & 0xffff;
      // 16 bytes a record, never across a 64 KiB boundary
      const n = Math.min(16, seg.bytes.length - at, 0x10000 - lo);
      out += record(0x00, lo, seg.bytes.subarray(at, at + n));
      at += n;
    }
  }
  return out + ":00000001FF\n";
}

/** Read a .hex file's bytes (from its lowest address). @throws HexError, or a file error. */
export function fromHexFile(path: string): Uint8Array {
  return readHexFile(path).bytes;
}

export function readHexFile(path: string): HexImage {
  return decodeIntelHex(readFileSync(path, "latin1"), path);
}
