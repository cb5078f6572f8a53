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
  PATCH_VERSION_LZ,
  maxRawLength,
  writeU32,
  type CodecId,
} from "../../src/delta/format";
import { BlockModel, IntKind, zigzag, type OldContext } from "../../src/delta/cm";
import { checkSegments, type Segment } from "./bsdiff";
import { RangeEncoder } from "./range-encoder";
import { encodeLzBlocks } from "./lz-encode";
import { codeBlockLzr } from "./lzr-encode";

/** Zero runs shorter than this stay inside a literal run of the diff section (a run costs 2+ bytes of framing). */
export const MIN_ZERO_RUN = 4;

export interface EncodeOptions {
  /** New-image bytes per block, a power of two in 1 KiB .. 64 KiB. */
  blockSize: number;
  codec: CodecId;
  /** Compress one raw block (for Codec.DEFLATE): raw DEFLATE, no zlib header. Unused by the other codecs. */
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

/** A block's controls as the decoder runs them: the old cursor at the start, then (diff, extra, seek) steps. */
interface Program {
  oldStart: number;
  steps: { diff: number; extra: number; seek: number }[];
}

function blockProgram(old: Uint8Array, start: number, controls: Control[]): Program {
  // The old cursor starts relative to the block's own offset (0 when code has not moved).
  const oldStart = controls[0].diff > 0 ? controls[0].oldPos : Math.min(start, old.length);
  let cursor = oldStart;
  const steps: Program["steps"] = [];
  for (let i = 0; i < controls.length; i++) {
    const c = controls[i];
    cursor += c.diff;
    const next = controls[i + 1];
    const target = next && next.diff > 0 ? next.oldPos : cursor;
    steps.push({ diff: c.diff, extra: c.extra, seek: target - cursor });
    cursor = target;
  }
  return { oldStart, steps };
}

/** The old image's bytes around offset p, as the decoder sees them (0 outside the image). */
export function oldContext(old: Uint8Array, p: number, o: OldContext): OldContext {
  const at = (i: number) => (i >= 0 && i < old.length ? old[i] : 0);
  o.before = at(p - 1);
  o.at = at(p);
  o.next1 = at(p + 1);
  o.next2 = at(p + 2);
  o.next3 = at(p + 3);
  o.lane = p & 3;
  return o;
}

/** One block coded by codec RANGE (decoder: PatchApplier's rangeBlock in src/delta/patcher.ts). */
function rangeBlock(old: Uint8Array, nw: Uint8Array, start: number, program: Program, model: BlockModel): Uint8Array {
  const enc = new RangeEncoder();
  model.reset();
  model.codeInt(enc, IntKind.START, zigzag(program.oldStart - start));
  model.codeInt(enc, IntKind.COUNT, program.steps.length);
  const o: OldContext = { before: 0, at: 0, next1: 0, next2: 0, next3: 0, lane: 0 };
  let cursor = program.oldStart;
  let at = start;
  for (const step of program.steps) {
    model.codeInt(enc, IntKind.DIFF, step.diff);
    model.codeInt(enc, IntKind.EXTRA, step.extra);
    model.codeInt(enc, IntKind.SEEK, zigzag(step.seek));
    for (let k = 0; k < step.diff; k++) model.codeDiffByte(enc, oldContext(old, cursor + k, o), (nw[at + k] - old[cursor + k]) & 0xff);
    at += step.diff;
    for (let k = 0; k < step.extra; k++) model.codeExtraByte(enc, at + k, nw[at + k]);
    at += step.extra;
    cursor += step.diff + step.seek;
  }
  return enc.finish();
}

/** The raw payload of one block (before compression). */
function rawBlock(old: Uint8Array, nw: Uint8Array, start: number, program: Program, controls: Control[]): Uint8Array {
  const out = new ByteSink();
  out.signedVarint(program.oldStart - start);
  out.varint(program.steps.length);
  let diffLength = 0;
  for (const step of program.steps) {
    out.varint(step.diff);
    out.varint(step.extra);
    out.signedVarint(step.seek);
    diffLength += step.diff;
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

/** The fallback: the whole span as extra bytes (its raw form is always within maxRawLength). */
function literalProgram(oldLength: number, start: number, end: number): Program {
  return { oldStart: Math.min(start, oldLength), steps: [{ diff: 0, extra: end - start, seek: 0 }] };
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
  if (codec !== Codec.STORED && codec !== Codec.DEFLATE && codec !== Codec.RANGE && codec !== Codec.LZ && codec !== Codec.LZR) throw new RangeError(`unknown codec ${codec}`);
  if (codec === Codec.DEFLATE && !options.compress) throw new RangeError("the DEFLATE codec needs a compress function");
  if (old.length > MAX_IMAGE_LENGTH || nw.length > MAX_IMAGE_LENGTH) throw new RangeError(`images are limited to ${MAX_IMAGE_LENGTH} bytes`);
  const v2 = codec === Codec.LZ || codec === Codec.LZR;
  if (!v2) checkSegments(segments, old.length, nw.length);

  const blockCount = Math.ceil(nw.length / blockSize);
  const header = new Uint8Array(PATCH_HEADER_SIZE);
  header.set(PATCH_MAGIC, 0);
  header[4] = v2 ? PATCH_VERSION_LZ : PATCH_VERSION;
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
  if (v2) {
    // Version 2 blocks: varint payload length (0 = identity), CRC-32 of the span, payload.
    const { payloads } = encodeLzBlocks(old, nw, blockSize, undefined, undefined, codec === Codec.LZR ? codeBlockLzr : undefined);
    payloads.forEach((payload, b) => {
      const start = b * blockSize;
      const end = Math.min(start + blockSize, nw.length);
      out.varint(payload ? payload.length : 0);
      out.u32(crc32(nw.subarray(start, end)));
      if (payload) out.bytes(payload);
      blocks.push({ raw: end - start, stored: payload ? payload.length : 0 });
    });
    return { bytes: out.result(), blocks };
  }
  let first = 0;
  const model = codec === Codec.RANGE ? new BlockModel() : undefined;
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
    let program = blockProgram(old, start, controls);
    let raw = rawBlock(old, nw, start, program, controls);
    if (raw.length > maxRawLength(blockSize)) {
      program = literalProgram(old.length, start, end);
      raw = rawBlock(old, nw, start, program, [{ oldPos: start, diff: 0, extra: end - start }]);
    }
    let stored = raw;
    if (codec !== Codec.STORED) {
      const packed = codec === Codec.DEFLATE ? (options.compress as (raw: Uint8Array) => Uint8Array)(raw) : rangeBlock(old, nw, start, program, model as BlockModel);
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
