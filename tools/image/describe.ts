/**
 * Human-readable dump of an MCUboot image file (`xs-ota inspect`). Lenient:
 * it shows what is there, and says what is wrong, instead of stopping at the
 * first defect (the device-side parser is the strict one).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { formatVersion, IMAGE_HEADER_SIZE, IMAGE_MAGIC, TLV, TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC } from "../../src/image/format";
import { bootMagic, BOOT_FLAG_SET } from "../../src/image/trailer";
import { toHex } from "../../src/util/bytes";
import { IMAGE_F_ENCRYPTED, TLV_ENC, TLV_XSOTA_SLOT_TLVS } from "../../src/image/enc";

const TLV_NAMES: { [type: number]: string } = {
  [TLV.KEYHASH]: "KEYHASH",
  0x02: "PUBKEY",
  [TLV.SHA256]: "SHA256",
  0x20: "RSA2048_PSS",
  0x21: "ECDSA224",
  [TLV.ECDSASIG]: "ECDSASIG",
  0x23: "RSA3072_PSS",
  0x24: "ED25519",
  0x30: "ENC_RSA2048",
  0x31: "ENC_KW",
  0x32: "ENC_EC256",
  0x33: "ENC_X25519",
  0x34: "ENC_X25519_SHA512",
  [TLV_XSOTA_SLOT_TLVS]: "XSOTA_SLOT_TLVS",
  0x40: "DEPENDENCY",
  [TLV.SEC_CNT]: "SEC_CNT",
  0x60: "BOOT_RECORD",
};

const FLAG_NAMES: [number, string][] = [
  [0x01, "PIC"],
  [0x04, "ENCRYPTED_AES128"],
  [0x08, "ENCRYPTED_AES256"],
  [0x10, "NON_BOOTABLE"],
  [0x20, "RAM_LOAD"],
  [0x100, "ROM_FIXED"],
];

/** The words describe*() use for a defect; a description matching this is of a broken file. */
export const DEFECT = /\b(MISMATCH|MISSING|MALFORMED|TRUNCATED|INVALID|REFUSED|TRAILING)\b/;

export function isImage(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === IMAGE_MAGIC;
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

function u16(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8);
}

/** Dump the TLV area at `at`; returns its end, or undefined when it is not there. */
function dumpArea(b: Uint8Array, at: number, magic: number, title: string, lines: string[]): number | undefined {
  if (at + 4 > b.length) {
    lines.push(`  ${title}: TRUNCATED (the file ends at ${hex(b.length)})`);
    return undefined;
  }
  const got = u16(b, at);
  const total = u16(b, at + 2);
  if (got !== magic) {
    lines.push(`  ${title}: MALFORMED: magic ${hex(got)} at ${hex(at)} (expected ${hex(magic)})`);
    return undefined;
  }
  lines.push(`  ${title} at ${hex(at)}, ${total} bytes:`);
  const end = at + total;
  let off = at + 4;
  for (let n = 0; off < end && n < 64; n++) {
    if (off + 4 > Math.min(end, b.length)) {
      lines.push(`    MALFORMED: a TLV header runs past the area at ${hex(off)}`);
      return end;
    }
    const type = u16(b, off);
    const len = u16(b, off + 2);
    const value = b.subarray(off + 4, Math.min(off + 4 + len, b.length));
    const name = TLV_NAMES[type] ?? "unknown";
    let shown = toHex(value);
    if (type === TLV.SEC_CNT && len === 4) shown = String(new DataView(value.buffer, value.byteOffset, 4).getUint32(0, true));
    if (type === TLV_ENC.EC256 && (len === 113 || len === 129)) {
      shown = `ECIES-P256, AES-${(len - 97) * 8} key wrapped\n      ephemeral key ${toHex(value.subarray(0, 65))}\n      HMAC-SHA256 tag ${toHex(value.subarray(65, 97))}\n      wrapped key ${toHex(value.subarray(97))}`;
    }
    if (type === TLV_XSOTA_SLOT_TLVS) {
      lines.push(`    ${name} (${hex(type)}) ${len} bytes: the TLV area of the image as it lands in the slot (flag cleared, plaintext):`);
      const nested: string[] = [];
      dumpArea(value, 0, TLV_INFO_MAGIC, "slot TLV area", nested);
      for (const l of nested) lines.push("    " + l);
      off += 4 + len;
      continue;
    }
    lines.push(`    ${name} (${hex(type)}) ${len} bytes: ${shown}`);
    off += 4 + len;
  }
  if (off !== end) lines.push(`    MALFORMED: the TLVs end at ${hex(off)}, the area says ${hex(end)}`);
  return end;
}

/**
 * A multi-line description of an MCUboot image file. A defect is written in
 * capitals (MISMATCH, MISSING, MALFORMED, TRUNCATED): `xs-ota inspect` exits 1
 * when one is there (see `DEFECT`).
 */
export function describeImage(b: Uint8Array): string {
  const lines: string[] = [];
  if (b.length < IMAGE_HEADER_SIZE || !isImage(b)) return "not an MCUboot image (no header magic)";
  const v = new DataView(b.buffer, b.byteOffset, IMAGE_HEADER_SIZE);
  const loadAddr = v.getUint32(4, true);
  const hdrSize = v.getUint16(8, true);
  const protSize = v.getUint16(10, true);
  const imgSize = v.getUint32(12, true);
  const flags = v.getUint32(16, true);
  const version = { major: v.getUint8(20), minor: v.getUint8(21), revision: v.getUint16(22, true), build: v.getUint32(24, true) };
  const flagNames = FLAG_NAMES.filter(([bit]) => flags & bit).map(([, n]) => n);
  lines.push(`MCUboot image (${b.length} bytes in the file)`);
  lines.push(`  version:        ${formatVersion(version)}`);
  lines.push(`  header size:    ${hex(hdrSize)}`);
  lines.push(`  load address:   ${hex(loadAddr)}`);
  lines.push(`  flags:          ${hex(flags)}${flagNames.length ? " (" + flagNames.join(", ") + ")" : ""}`);
  lines.push(`  body:           ${imgSize} bytes at ${hex(hdrSize)}`);
  lines.push(`  protected TLVs: ${protSize} bytes`);
  const bodyEnd = hdrSize + imgSize;
  let at = bodyEnd;
  if (protSize > 0) {
    const end = dumpArea(b, at, TLV_PROT_INFO_MAGIC, "protected TLV area", lines);
    if (end === undefined) return lines.join("\n");
    at = end;
  }
  const hashedEnd = at;
  const end = dumpArea(b, at, TLV_INFO_MAGIC, "TLV area", lines);
  if (end === undefined) return lines.join("\n");
  lines.push(`  image length:   ${end} bytes (header through TLV area)`);
  if (hashedEnd <= b.length) {
    const hash = sha256(b.subarray(0, hashedEnd));
    let stored: Uint8Array | undefined;
    for (let off = hashedEnd + 4; off + 4 <= Math.min(end, b.length); off += 4 + u16(b, off + 2)) {
      if (u16(b, off) === TLV.SHA256) stored = b.subarray(off + 4, off + 4 + u16(b, off + 2));
    }
    const ok = stored !== undefined && toHex(stored) === toHex(hash);
    if (flags & IMAGE_F_ENCRYPTED && stored !== undefined) {
      lines.push(`  encrypted:      the body is AES-CTR ciphertext; the SHA256 TLV covers the plaintext (xs-ota verify --decrypt-key KEY checks it)`);
      lines.push(`  SHA256 TLV:     ${toHex(stored)} (not checkable without the decryption key)`);
    } else lines.push(`  SHA256 TLV:     ${ok ? "ok" : stored ? "MISMATCH" : "MISSING"}, computed ${toHex(hash)} (MCUboot's hash: header, body, protected TLVs)`);
  }
  if (end <= b.length && flags & IMAGE_F_ENCRYPTED) lines.push(`  file SHA-256:   ${toHex(sha256(b.subarray(0, end)))} (the encrypted payload; a manifest binds the slot image's, which xs-ota verify --decrypt-key prints)`);
  else if (end <= b.length) lines.push(`  whole-image SHA-256: ${toHex(sha256(b.subarray(0, end)))} (header through TLV area: what a manifest binds and revoke --block takes)`);
  else lines.push(`  TRUNCATED: the file ends at ${hex(b.length)}, the image at ${hex(end)}`);
  if (b.length > end) lines.push(describeTrailer(b));
  return lines.join("\n");
}

function describeTrailer(b: Uint8Array): string {
  const tail = b.subarray(b.length - 16);
  for (const maxAlign of [8, 16, 32]) {
    const want = bootMagic(maxAlign);
    if (want.every((x, i) => tail[i] === x)) {
      const magicArea = Math.max(16, maxAlign);
      const ok = b[b.length - magicArea - maxAlign];
      const state = ok === BOOT_FLAG_SET ? "set (confirmed)" : ok === 0xff || ok === 0 ? "unset (test)" : `bad (${hex(ok)})`;
      return `  trailer:        padded to ${b.length} bytes, boot magic for max-align ${maxAlign}, image_ok ${state}`;
    }
  }
  return `  trailer:        padded to ${b.length} bytes, no boot magic`;
}
