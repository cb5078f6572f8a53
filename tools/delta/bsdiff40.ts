/**
 * Classic BSDIFF40 patches (the stock `bsdiff` tool's output) → our format.
 *
 * BSDIFF40 layout: "BSDIFF40", then three 8-byte integers (control block
 * length, diff block length, new size; little-endian magnitude with the sign
 * in the top bit of the last byte), then three bzip2 streams: the controls
 * (triples x = diff length, y = extra length, z = old seek), the diff bytes
 * and the extra bytes. Node has no bzip2, so the streams are decompressed by
 * the `bzip2` program (Debian package `bzip2`).
 *
 * The triples become segments (a diff range partly outside the old image, which
 * bspatch tolerates, is split so that the outside part becomes extra bytes),
 * the new image is rebuilt exactly as bspatch would, and the block encoder
 * writes our patch from old, new and those segments.
 */
import { spawnSync } from "node:child_process";
import type { Segment } from "./bsdiff";

export const BSDIFF40_MAGIC = "BSDIFF40";
const HEADER = 32;

/** bsdiff's `offtin`: 8 bytes, little-endian magnitude, sign in bit 63. */
export function readOfft(b: Uint8Array, o: number): number {
  let v = 0;
  for (let i = 6; i >= 0; i--) v = v * 256 + b[o + i];
  v += (b[o + 7] & 0x7f) * 2 ** 56;
  if (!Number.isSafeInteger(v)) throw new Error("BSDIFF40: integer too large");
  return b[o + 7] & 0x80 ? -v : v;
}

export function isBsdiff40(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== BSDIFF40_MAGIC.charCodeAt(i)) return false;
  return true;
}

/** Decompress one bzip2 stream with the `bzip2` program. */
export function bunzip2(data: Uint8Array, what: string): Uint8Array {
  const r = spawnSync("bzip2", ["-dc"], { input: data, maxBuffer: 256 * 1024 * 1024 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    throw new Error(code === "ENOENT" ? "the bzip2 program is needed to read BSDIFF40 patches (Debian package bzip2)" : `bzip2: ${r.error.message}`);
  }
  if (r.status !== 0) {
    const reason = String(r.stderr).trim().split("\n").filter((l) => l.trim())[0] ?? `exit ${r.status}`;
    throw new Error(`BSDIFF40: the ${what} block is not valid bzip2 (${reason.trim()})`);
  }
  return new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.length);
}

export interface ConvertedBsdiff {
  readonly newImage: Uint8Array;
  readonly segments: Segment[];
}

/**
 * Read a BSDIFF40 patch against `old`: rebuild the new image as bspatch does
 * and derive the segments. Every length is checked (a malformed patch throws,
 * never reads or writes out of bounds).
 * @throws Error with a message naming what is wrong.
 */
export function readBsdiff40(patch: Uint8Array, old: Uint8Array, maxNewSize = 64 * 1024 * 1024): ConvertedBsdiff {
  if (patch.length < HEADER || !isBsdiff40(patch)) throw new Error("not a BSDIFF40 patch");
  const ctrlLength = readOfft(patch, 8);
  const diffLength = readOfft(patch, 16);
  const newSize = readOfft(patch, 24);
  if (ctrlLength < 0 || diffLength < 0 || newSize < 0 || HEADER + ctrlLength + diffLength > patch.length) throw new Error("BSDIFF40: corrupt header");
  if (newSize > maxNewSize) throw new Error(`BSDIFF40: new size ${newSize} over ${maxNewSize}`);
  const ctrl = bunzip2(patch.subarray(HEADER, HEADER + ctrlLength), "control");
  const diff = bunzip2(patch.subarray(HEADER + ctrlLength, HEADER + ctrlLength + diffLength), "diff");
  const extra = bunzip2(patch.subarray(HEADER + ctrlLength + diffLength), "extra");
  if (ctrl.length % 24 !== 0) throw new Error("BSDIFF40: control block is not whole triples");

  const nw = new Uint8Array(newSize);
  const segments: Segment[] = [];
  let newPos = 0;
  let oldPos = 0;
  let diffAt = 0;
  let extraAt = 0;
  const push = (s: Segment) => {
    if (s.diff + s.extra > 0) segments.push(s);
  };
  for (let c = 0; c < ctrl.length && newPos < newSize; c += 24) {
    const x = readOfft(ctrl, c);
    const y = readOfft(ctrl, c + 8);
    const z = readOfft(ctrl, c + 16);
    if (x < 0 || y < 0) throw new Error("BSDIFF40: negative control length");
    if (newPos + x > newSize || diffAt + x > diff.length) throw new Error("BSDIFF40: diff runs past the new image or the diff block");
    for (let i = 0; i < x; i++) {
      const o = oldPos + i;
      nw[newPos + i] = (diff[diffAt + i] + (o >= 0 && o < old.length ? old[o] : 0)) & 0xff;
    }
    // The in-old part of [oldPos, oldPos + x) is a diff; the parts outside become extra bytes.
    const inFrom = Math.min(Math.max(oldPos, 0), oldPos + x);
    const inTo = Math.max(Math.min(oldPos + x, old.length), inFrom);
    const before = inFrom - oldPos;
    const inside = inTo - inFrom;
    const after = x - before - inside;
    if (before > 0) push({ newPos, oldPos: 0, diff: 0, extra: before });
    if (newPos + x + y > newSize || extraAt + y > extra.length) throw new Error("BSDIFF40: extra runs past the new image or the extra block");
    push({ newPos: newPos + before, oldPos: inside > 0 ? inFrom : 0, diff: inside, extra: after + y });
    nw.set(extra.subarray(extraAt, extraAt + y), newPos + x);
    newPos += x + y;
    diffAt += x;
    extraAt += y;
    oldPos += x + z;
  }
  if (newPos !== newSize) throw new Error(`BSDIFF40: controls produce ${newPos} of ${newSize} bytes`);
  // Coalesce: a segment with no diff directly after another only adds extra bytes.
  const merged: Segment[] = [];
  for (const s of segments) {
    const last = merged[merged.length - 1];
    if (last && s.diff === 0) merged[merged.length - 1] = { ...last, extra: last.extra + s.extra };
    else merged.push(s);
  }
  return { newImage: nw, segments: merged };
}
