/**
 * The patch encoder: bsdiff segments → the xs-ota patch format (docs/formats.md,
 * "Patch"; decoder src/delta/patcher.ts). Portable: the block compressor is
 * passed in (tools/delta/index.ts hands it node:zlib's raw DEFLATE).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { crc32 } from "../../src/util/crc32";
import {
  Codec,
  MAX_BLOCK_LOG2,
  MAX_IMAGE_LENGTH,
  MIN_BLOCK_LOG2,
  PATCH_HEADER_SIZE,
  PATCH_MAGIC,
  PATCH_VERSION,
  maxRawLength,
  writeU32,
  type CodecId,
} from "../../src/delta/format";
import { checkSegments, type Segment } from "./bsdiff";

/** Zero runs shorter than this stay inside a literal run of the diff section (a run costs 2+ bytes of framing). */
export const MIN_ZERO_RUN = 4;

export interface EncodeOptions {
  /** New-image bytes per block, a power of two in 1 KiB .. 64 KiB. */
  blockSize: number;
  codec: CodecId;
  /** Compress one raw block (for Codec.DEFLATE): raw DEFLATE, no zlib header. */
  compress?: (raw: Uint8Array) => Uint8Array;
}

export interface EncodedPatch {
  readonly bytes: Uint8Array;
  /** Per block: raw and stored payload lengths, for the bench and `inspect`. */
  readonly blocks: readonly { raw: number; stored: number }[];
}

class ByteSink {
  private buf = new Uint8Array(256);
  length = 0;
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }
  byte(v: number): void {
    this.grow(1);
    this.buf[this.length++] = v;
  }
  bytes(v: Uint8Array): void {
    this.grow(v.length);
    this.buf.set(v, this.length);
    this.length += v.length;
  }
  varint(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`varint ${v}`);
    while (v >= 0x80) {
      this.byte((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    this.byte(v);
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    writeU32(b, 0, v);
    this.bytes(b);
  }
  signedVarint(v: number): void {
    this.varint(v >= 0 ? v * 2 : -v * 2 - 1);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

interface Control {
  oldPos: number;
  diff: number;
  extra: number;
}

/** The controls of one block: the segments clipped to [start, end), diff parts first within each. */
function blockControls(segments: readonly Segment[], first: number, start: number, end: number): { controls: Control[]; next: number } {
  const controls: Control[] = [];
  let i = first;
  for (; i < segments.length; i++) {
    const s = segments[i];
    if (s.newPos >= end) break;
    const diffFrom = Math.max(start, s.newPos);
    const diffTo = Math.min(end, s.newPos + s.diff);
    if (diffTo > diffFrom) controls.push({ oldPos: s.oldPos + (diffFrom - s.newPos), diff: diffTo - diffFrom, extra: 0 });
    const extraFrom = Math.max(start, s.newPos + s.diff);
    const extraTo = Math.min(end, s.newPos + s.diff + s.extra);
    if (extraTo > extraFrom) {
      const last = controls[controls.length - 1];
      if (last) last.extra += extraTo - extraFrom;
      else controls.push({ oldPos: 0, diff: 0, extra: extraTo - extraFrom });
    }
    if (s.newPos + s.diff + s.extra > end) break; // continues into the next block
  }
  return { controls, next: i };
}

/** The raw payload of one block (before compression). */
function rawBlock(old: Uint8Array, nw: Uint8Array, start: number, controls: Control[]): Uint8Array {
  const out = new ByteSink();
  // The old cursor starts relative to the block's own offset (0 when code has not moved).
  let cursor = controls[0].diff > 0 ? controls[0].oldPos : Math.min(start, old.length);
  out.signedVarint(cursor - start);
  out.varint(controls.length);
  let diffLength = 0;
  for (let i = 0; i < controls.length; i++) {
    const c = controls[i];
    cursor += c.diff;
    const next = controls[i + 1];
    const target = next && next.diff > 0 ? next.oldPos : cursor;
    out.varint(c.diff);
    out.varint(c.extra);
    out.signedVarint(target - cursor);
    cursor = target;
    diffLength += c.diff;
  }
  // The diff bytes (new − old), then run-length framed: (zero run, literal run, literals)*.
  const diff = new Uint8Array(diffLength);
  let d = 0;
  let at = start;
  for (const c of controls) {
    for (let i = 0; i < c.diff; i++) diff[d++] = (nw[at + i] - old[c.oldPos + i]) & 0xff;
    at += c.diff + c.extra;
  }
  for (let i = 0; i < diff.length; ) {
    let zeros = 0;
    while (i + zeros < diff.length && diff[i + zeros] === 0) zeros++;
    i += zeros;
    if (i === diff.length) break; // trailing zeros are implicit
    let j = i;
    while (j < diff.length) {
      if (diff[j] !== 0) {
        j++;
        continue;
      }
      let run = 0;
      while (j + run < diff.length && diff[j + run] === 0) run++;
      if (run >= MIN_ZERO_RUN || j + run === diff.length) break;
      j += run;
    }
    out.varint(zeros);
    out.varint(j - i);
    out.bytes(diff.subarray(i, j));
    i = j;
  }
  at = start;
  for (const c of controls) {
    at += c.diff;
    out.bytes(nw.subarray(at, at + c.extra));
    at += c.extra;
  }
  return out.result();
}

function sameSpan(old: Uint8Array, nw: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (old[i] !== nw[i]) return false;
  return true;
}

/** The fallback raw payload: the whole span as extra bytes (always within maxRawLength). */
function literalBlock(nw: Uint8Array, start: number, end: number): Uint8Array {
  const out = new ByteSink();
  out.signedVarint(0);
  out.varint(1);
  out.varint(0);
  out.varint(end - start);
  out.signedVarint(0);
  out.bytes(nw.subarray(start, end));
  return out.result();
}

/**
 * Encode a patch from `old` to `nw` with the given segments.
 * @throws RangeError for bad options or images past MAX_IMAGE_LENGTH; Error
 *   when the segments do not describe `nw`.
 */
export function encodePatch(old: Uint8Array, nw: Uint8Array, segments: readonly Segment[], options: EncodeOptions): EncodedPatch {
  const { blockSize, codec } = options;
  const log2 = Math.log2(blockSize);
  if (!Number.isInteger(log2) || log2 < MIN_BLOCK_LOG2 || log2 > MAX_BLOCK_LOG2) throw new RangeError(`blockSize must be a power of two in 1 KiB..64 KiB, got ${blockSize}`);
  if (codec !== Codec.STORED && codec !== Codec.DEFLATE) throw new RangeError(`unknown codec ${codec}`);
  if (codec === Codec.DEFLATE && !options.compress) throw new RangeError("the DEFLATE codec needs a compress function");
  if (old.length > MAX_IMAGE_LENGTH || nw.length > MAX_IMAGE_LENGTH) throw new RangeError(`images are limited to ${MAX_IMAGE_LENGTH} bytes`);
  checkSegments(segments, old.length, nw.length);

  const blockCount = Math.ceil(nw.length / blockSize);
  const header = new Uint8Array(PATCH_HEADER_SIZE);
  header.set(PATCH_MAGIC, 0);
  header[4] = PATCH_VERSION;
  header[5] = codec;
  header[6] = log2;
  header[7] = 0;
  writeU32(header, 8, old.length);
  writeU32(header, 12, nw.length);
  header.set(sha256(old), 16);
  header.set(sha256(nw), 48);
  writeU32(header, 80, blockCount);
  writeU32(header, 84, crc32(header.subarray(0, 84)));

  const out = new ByteSink();
  out.bytes(header);
  const blocks: { raw: number; stored: number }[] = [];
  let first = 0;
  for (let b = 0; b < blockCount; b++) {
    const start = b * blockSize;
    const end = Math.min(start + blockSize, nw.length);
    const { controls, next } = blockControls(segments, first, start, end);
    first = next;
    const crc = crc32(nw.subarray(start, end));
    if (end <= old.length && sameSpan(old, nw, start, end)) {
      // Identity block: the span is unchanged; the header alone says so.
      out.varint(0);
      out.varint(0);
      out.u32(crc);
      blocks.push({ raw: 0, stored: 0 });
      continue;
    }
    let raw = rawBlock(old, nw, start, controls);
    if (raw.length > maxRawLength(blockSize)) raw = literalBlock(nw, start, end);
    let stored = raw;
    if (codec === Codec.DEFLATE) {
      const packed = (options.compress as (raw: Uint8Array) => Uint8Array)(raw);
      if (packed.length < raw.length) stored = packed;
    }
    out.varint(stored.length);
    out.varint(raw.length);
    out.u32(crc);
    out.bytes(stored);
    blocks.push({ raw: raw.length, stored: stored.length });
  }
  return { bytes: out.result(), blocks };
}
