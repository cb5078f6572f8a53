/**
 * `xs-ota inspect` for patches: a readable dump of an xs-ota patch (header,
 * block table, totals), found by magic. Walks the block headers only; the
 * contents are checked by `xs-ota apply`.
 */
import { isOtaError, reasonName } from "../../src/errors";
import {
  Codec,
  PATCH_HEADER_SIZE,
  PATCH_VERSION_LZ,
  hasPatchMagic,
  maxRawLength,
  parseBlockHeader,
  parseBlockHeaderV2,
  parsePatchHeader,
} from "../../src/delta/format";
import { toHex } from "../../src/util/bytes";

/** True when `bytes` starts with the xs-ota patch magic. */
export function isPatch(bytes: Uint8Array): boolean {
  return hasPatchMagic(bytes);
}

const MAX_LISTED_BLOCKS = 16;

/** A multi-line description of a patch; problems are reported in the text, never thrown. */
export function inspectPatch(bytes: Uint8Array): string {
  const lines = [`xs-ota patch, ${bytes.length} bytes`];
  let h;
  try {
    h = parsePatchHeader(bytes);
  } catch (e) {
    lines.push(`  header: INVALID (${isOtaError(e) ? `${reasonName(e.code)}: ${e.message}` : String(e)})`);
    return lines.join("\n");
  }
  lines.push(
    `  format version: ${h.version}`,
    `  codec:          ${h.codec === Codec.DEFLATE ? "deflate (raw DEFLATE per block)" : h.codec === Codec.RANGE ? "range (context-modelled range coder per block)" : h.codec === Codec.LZ ? "lz (copies from old and new, Huffman-coded per block)" : h.codec === Codec.LZR ? "lzr (copies from old and new, adaptive range coder)" : "stored"}`,
    `  block size:     ${h.blockSize} bytes of new image per block, ${h.blockCount} blocks`,
    `  old image:      ${h.oldLength} bytes, whole-image SHA-256 ${toHex(h.oldSha256)}`,
    `  new image:      ${h.newLength} bytes, whole-image SHA-256 ${toHex(h.newSha256)}`,
  );
  let at = PATCH_HEADER_SIZE;
  let stored = 0;
  let raw = 0;
  let compressedBlocks = 0;
  let sameBlocks = 0;
  const table: string[] = [];
  for (let b = 0; b < h.blockCount; b++) {
    let bh;
    const v2 = h.version === PATCH_VERSION_LZ;
    const span = Math.min(h.blockSize, h.newLength - b * h.blockSize);
    try {
      bh = v2 ? parseBlockHeaderV2(bytes.subarray(at, at + 9), Math.min(9, bytes.length - at)) : parseBlockHeader(bytes.subarray(at, at + 14), Math.min(14, bytes.length - at));
    } catch {
      bh = undefined;
    }
    if (!bh) {
      lines.push(`  TRUNCATED or MALFORMED: block ${b} header at offset ${at}`);
      return lines.concat(table).join("\n");
    }
    const s = bh.storedLength;
    const r = v2 ? (s === 0 ? 0 : span) : bh.rawLength;
    const crc = bh.crc;
    const identity = s === 0 && r === 0;
    const kind = identity ? "same   " : v2 ? "lz     " : s < r ? (h.codec === Codec.RANGE ? "range  " : "deflate") : "stored ";
    const problem = identity ? "" : v2 ? (s > 2 * span + 4096 ? "payload length out of range" : at + bh.size + s > bytes.length ? "payload truncated" : "") : r < 2 || r > maxRawLength(h.blockSize) ? "raw length out of range" : s > r ? "stored length over raw" : at + bh.size + s > bytes.length ? "payload truncated" : "";
    if (b < MAX_LISTED_BLOCKS) {
      table.push(`    block ${String(b).padStart(4)} @${String(at).padStart(8)}  stored ${String(s).padStart(6)}  raw ${String(r).padStart(6)}  ${kind}  crc32 ${crc.toString(16).padStart(8, "0")}${problem ? "  " + problem : ""}`);
    }
    if (problem) {
      lines.push(`  MALFORMED: block ${b}: ${problem}`);
      return lines.concat(table).join("\n");
    }
    stored += s;
    raw += r;
    if (s < r) compressedBlocks++;
    if (identity) sameBlocks++;
    at += bh.size + s;
  }
  lines.push(
    `  payload:        ${stored} bytes stored, ${raw} bytes raw, ${compressedBlocks} of ${h.blockCount} blocks compressed, ${sameBlocks} unchanged`,
    `  size vs new:    ${h.newLength ? ((100 * bytes.length) / h.newLength).toFixed(2) : "-"} %`,
  );
  if (at !== bytes.length) lines.push(`  TRAILING: ${bytes.length - at} bytes after the last block`);
  lines.push("  blocks:");
  if (h.blockCount > MAX_LISTED_BLOCKS) table.push(`    … ${h.blockCount - MAX_LISTED_BLOCKS} more`);
  return lines.concat(table).join("\n");
}
