/**
 * The device's patcher: applies an xs-ota patch (format in ./format.ts and
 * docs/formats.md) as it arrives, in chunks of any size, reading the old image
 * from the active slot through the Flash HAL and writing the new image into
 * the inactive slot through a SlotWriter. It never writes the active slot.
 *
 * Lifecycle: `update(chunk)` any number of times, then `finish()`, which reads
 * the new image back from flash and checks its SHA-256. After a power cut,
 * `PatchApplier.resume(options, checkpoint)` goes on from the last finished
 * block (or, when the cut left the flash after it programmed and blocks are
 * smaller than an erase block, from the block that starts that erase block);
 * the caller feeds the patch again from `patchOffset`.
 *
 * Hardening (the bsdiff CVE class): every length, offset and seek is checked
 * before use — the old cursor stays within the old image, each block produces
 * exactly its span of the new image, the new image fits the declared length
 * and the slot, run-length and varint framing stay inside their block — and
 * a bad patch ends in an OtaError with a PATCH_* reason.
 *
 * Bounded work: a block's span is produced at most PATCH_SLICE_OUTPUT bytes
 * per step (version 1 too: the decoders' state — the inflated raw block, the
 * BlockModel and RangeDecoder, the control being produced — persists between
 * steps; a stop inside a block is not a checkpoint, resume stays at block
 * boundaries). In sliced mode each `pump()` is one step.
 *
 * Working memory (bounded by the block size, stated by `workingMemory`): one
 * raw block buffer (maxRawLength), the streaming inflater (tables and a 1 KiB
 * input staging buffer, ~4.5 KiB; the compressed block is never buffered
 * whole), the CRC tables (4 KiB, src/delta/crc.ts; none when the platform's Digest has a
 * native CRC-32), the slot writer's program buffer (512 B) and one old-image read of
 * OLD_READ_CHUNK bytes at a time (codec 3: its window, LZ_OLD_WINDOW). With 32 KiB
 * blocks: about 48 KiB.
 */
import { OtaError, Reason, isOtaError } from "../errors";
import type { Digest, Flash } from "../../hal/types";
import { SlotWriter } from "../update/slot-writer";
import { blockCrcOf, blockCrcTableBytes, type BlockCrc } from "./crc";
import {
  BLOCK_HEADER_MAX,
  BLOCK_HEADER_MIN,
  BLOCK_HEADER_V2_MAX,
  BLOCK_HEADER_V2_MIN,
  Codec,
  PATCH_HEADER_SIZE,
  PATCH_VERSION,
  maxRawLength,
  parseBlockHeader,
  parseBlockHeaderV2,
  parsePatchHeader,
  type PatchCheckpoint,
  type PatchHeader,
} from "./format";
import { BlockModel, IntKind, unzigzag, type OldContext } from "./cm";
import { Inflater } from "./inflate";
import { RangeDecoder } from "./range";
import { BLOCK_END, BUDGET_SPENT, LZ_OLD_WINDOW, LzBlockDecoder, type LzInput, type LzIo } from "./lz";
import { LzrBlockDecoder } from "./lzr";

/** Bytes of the old image read per flash read (the HAL allows up to 4096). */
export const OLD_READ_CHUNK = 1024;
/** Largest block size a device accepts by default (working memory ≈ 1.25 × this + 7 KiB). */
export const DEFAULT_MAX_BLOCK_SIZE = 32 * 1024;
/** Extra bytes decoded by codec RANGE are gathered in a buffer of this size before they are written. */
export const RANGE_OUT_CHUNK = 256;
/** Old-image bytes a RANGE diff run reads around its chunk for context: one before, three after. */
const OLD_CONTEXT_MARGIN = 4;
/** Bytes per flash read when hashing an image in a slot. */
export const HASH_READ_CHUNK = 1024;
/**
 * Most new-image bytes one `pump()` produces (patches of either version): with
 * erase blocks of at least this size, a slice also erases at most one erase
 * block.
 */
export const PATCH_SLICE_OUTPUT = 4096;
/** The input window: patch bytes taken by `update` and not yet decoded. */
export const PATCH_INPUT_WINDOW = 2048;
/** A version-2 block payload may not exceed this many bytes per byte of span, plus the tables (bounds a hostile length early). */
const LZ_MAX_PAYLOAD = (span: number) => 2 * span + 4096;

export interface PatchApplierOptions {
  /** The running image: the old image sits at [0, oldLength). Only read. */
  readonly activeSlot: Flash;
  /** Where the new image goes, from offset 0. */
  readonly inactiveSlot: Flash;
  readonly digest: Digest;
  /** Bytes of the inactive slot the image may use (the trailer stays free). Default: the slot size. */
  readonly capacity?: number;
  /** Refuse patches with larger blocks (bounds RAM). Default DEFAULT_MAX_BLOCK_SIZE. */
  readonly maxBlockSize?: number;
  /**
   * Called with the checkpoint to journal: after every finished block, and by
   * `resume` before any flash write (a resume may have to go back to the
   * anchor, and the journal must follow before the erase block is erased).
   */
  readonly onBlock?: (checkpoint: PatchCheckpoint) => void;
  /**
   * The old image's SHA-256 over its whole length, already known to the caller
   * (the agent hashed the running image in slices at boot): compared with the
   * header's instead of hashing the active slot in one go. Its length must be
   * the header's old length (`knownOldLength`).
   */
  readonly knownOld?: { readonly length: number; readonly sha256: Uint8Array };
  /**
   * Skip reading the new image back in `finish` (one pass over the slot):
   * the caller checks the whole image itself, in slices, against a hash that
   * equals the header's (`PatchResult.sha256` is then the header's claim).
   */
  readonly deferNewCheck?: boolean;
  /**
   * Bounded work per call: `update(chunk)` only takes input (at most
   * `inputBound` bytes, else RangeError) and `pump()` does one slice of work
   * (at most PATCH_SLICE_OUTPUT bytes of new image, either version).
   * Without it, `update` does all the work its input allows, as before.
   */
  readonly sliced?: boolean;
}

export interface PatchResult {
  readonly length: number;
  readonly sha256: Uint8Array;
}

const HEADER = 0;
const BLOCK_HEADER = 1;
const BLOCK_BODY = 2;
const DONE = 3;
const FINISHED = 4;
/** An identity block, copied from the old image slice by slice. */
const IDENTITY = 5;
/** Version 1: a block's payload is complete and its span is produced slice by slice. */
const PRODUCE = 6;

function malformed(message: string, detail?: number): OtaError {
  return new OtaError(Reason.PATCH_MALFORMED, message, detail);
}

function outOfRange(message: string, detail?: number): OtaError {
  return new OtaError(Reason.PATCH_OUT_OF_RANGE, message, detail);
}

/** SHA-256 of `flash[0, length)`, read in bounded chunks. */
export function hashSlot(flash: Flash, length: number, digest: Digest): Uint8Array {
  const h = digest.sha256();
  for (let at = 0; at < length; ) {
    const n = Math.min(HASH_READ_CHUNK, length - at);
    h.update(flash.read(n, at));
    at += n;
  }
  return h.finish();
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export class PatchApplier {
  private readonly options: PatchApplierOptions;
  /** The block CRC-32: the digest's native one when it has one. */
  private readonly crc: BlockCrc;
  private state = HEADER;
  private failure: unknown = undefined;

  private readonly headerBytes = new Uint8Array(PATCH_HEADER_SIZE);
  private header: PatchHeader | undefined;
  private readonly blockHeader = new Uint8Array(BLOCK_HEADER_MAX);
  /** Bytes gathered for the current section (header, block header or block body). */
  private have = 0;

  private raw: Uint8Array = new Uint8Array(0);
  private inflater: Inflater | undefined;
  /** Codec RANGE: the block model, the decoder and the extra-byte output buffer. */
  private model: BlockModel | undefined;
  private rangeDecoder: RangeDecoder | undefined;
  private out: Uint8Array = new Uint8Array(0);
  private readonly oldContext: OldContext = { before: 0, at: 0, next1: 0, next2: 0, next3: 0, lane: 0 };
  private writer: SlotWriter | undefined;
  /** The input window (`update` appends, decoding consumes). */
  private readonly input: LzInput = { buf: new Uint8Array(PATCH_INPUT_WINDOW), pos: 0, end: 0 };
  /** Version 2: the block decoder, its I/O, and an identity block's remaining bytes and CRC. */
  private lz: LzBlockDecoder | undefined;
  private lzIo: LzIo | undefined;
  private identityLeft = 0;
  private identityCrc = 0;

  /** Patch bytes consumed so far = offset of the next byte expected. */
  private consumed = 0;
  private block = 0;
  private newOffset = 0;
  private storedLength = 0;
  private rawLength = 0;
  private blockCrc = 0;
  /** Patch offset where the current block's header starts. */
  private blockPatchOffset = PATCH_HEADER_SIZE;
  private anchor = { block: 0, newOffset: 0, patchOffset: PATCH_HEADER_SIZE };
  /** Read cursor inside `raw` for varints. */
  private rp = 0;
  /**
   * Version 1, state PRODUCE: where the block's production stands between
   * slices (the decoder's own state stays in the Inflater's output `raw`, the
   * BlockModel and the RangeDecoder). A control is (diff, extra, seek); `pDone`
   * counts its bytes produced so far.
   */
  private pRange = false;
  private pControls = 0;
  private pIndex = 0;
  private pDiff = 0;
  private pExtra = 0;
  private pSeek = 0;
  private pDone = 0;
  private pProduced = 0;
  private pCursor = 0;
  private pCrc = 0;
  private pControlAt = 0;
  private pDiffStart = 0;
  private pDiffAt = 0;
  private pExtraStart = 0;
  private pExtraAt = 0;
  private pZeros = 0;
  private pLiteral = 0;
  private pDiffBudget = 0;

  /** Start a fresh install: the first byte fed is byte 0 of the patch. */
  constructor(options: PatchApplierOptions) {
    if (!options || typeof options !== "object") throw new TypeError("PatchApplier: options required");
    const { activeSlot, inactiveSlot, digest } = options;
    if (!activeSlot || !inactiveSlot || !digest) throw new TypeError("PatchApplier: activeSlot, inactiveSlot and digest are required");
    if (activeSlot === inactiveSlot) throw new RangeError("PatchApplier: the active and inactive slots must differ");
    const max = options.maxBlockSize ?? DEFAULT_MAX_BLOCK_SIZE;
    if (!Number.isInteger(max) || max < 1024) throw new RangeError(`maxBlockSize must be an integer >= 1024, got ${max}`);
    const capacity = options.capacity ?? inactiveSlot.status().size;
    if (!Number.isInteger(capacity) || capacity < 0 || capacity > inactiveSlot.status().size) {
      throw new RangeError(`capacity must be an integer within the inactive slot, got ${capacity}`);
    }
    this.options = options;
    this.crc = blockCrcOf(digest);
  }

  /**
   * Go on with an install interrupted by a reset. Checks the checkpoint, the
   * old image again, and the inactive slot's flash after the checkpoint;
   * afterwards feed the patch from `patchOffset`.
   * @throws OtaError PATCH_BAD_CHECKPOINT inconsistent checkpoint; the header
   *   and old-image errors of a fresh start.
   */
  static resume(options: PatchApplierOptions, checkpoint: PatchCheckpoint): PatchApplier {
    const a = new PatchApplier(options);
    a.guard(() => a.resumeFrom(checkpoint));
    return a;
  }

  /** Offset in the patch of the next byte `update` expects. */
  get patchOffset(): number {
    return this.consumed + (this.input.end - this.input.pos);
  }

  /** Most bytes `update` takes now (in sliced mode, a larger chunk is a RangeError). */
  get inputBound(): number {
    return this.input.buf.length - (this.input.end - this.input.pos);
  }

  /** The parsed header, once its bytes have arrived. */
  get patchHeader(): PatchHeader | undefined {
    return this.header;
  }

  /** Index of the next block to decode, and the new-image bytes finished so far. */
  get progress(): { block: number; blockCount: number; newOffset: number } {
    return { block: this.block, blockCount: this.header?.blockCount ?? 0, newOffset: this.newOffset };
  }

  /**
   * Bytes of RAM the applier holds: the buffers it allocated plus one old-image
   * read in flight. (The Digest's hash state is the platform's and not counted.)
   */
  get workingMemory(): number {
    return (
      this.headerBytes.byteLength +
      this.blockHeader.byteLength +
      this.raw.byteLength +
      this.input.buf.byteLength +
      (this.lz?.bytes ?? 0) +
      (this.inflater?.bytes ?? 0) +
      (this.model?.bytes ?? 0) +
      this.out.byteLength +
      blockCrcTableBytes(this.options.digest) +
      (this.writer?.bytes ?? 0) +
      (this.lz ? LZ_OLD_WINDOW : OLD_READ_CHUNK) + // one old-image read in flight
      (this.model ? OLD_CONTEXT_MARGIN : 0)
    );
  }

  /** Where to resume if the power went now, or undefined before the header has arrived. */
  checkpoint(): PatchCheckpoint | undefined {
    if (!this.header) return undefined;
    return Object.freeze({
      header: this.headerBytes.slice(),
      nextBlock: this.block,
      nextNewOffset: this.newOffset,
      nextPatchOffset: this.state === DONE || this.state === FINISHED ? this.consumed : this.blockPatchOffset,
      anchorBlock: this.anchor.block,
      anchorNewOffset: this.anchor.newOffset,
      anchorPatchOffset: this.anchor.patchOffset,
    });
  }

  /**
   * Feed the next patch bytes (any length, including 0).
   * @throws OtaError PATCH_* for a bad patch (the applier is then spent and
   *   rethrows it); HAL errors. Error (misuse) after `finish`.
   */
  update(chunk: Uint8Array): void {
    if (!(chunk instanceof Uint8Array)) throw new TypeError("PatchApplier.update: chunk must be a Uint8Array");
    if (this.options.sliced && chunk.length > this.inputBound) throw new RangeError(`PatchApplier.update: ${chunk.length} bytes, inputBound is ${this.inputBound}`);
    this.guard(() => {
      if (this.state === FINISHED) throw new Error("PatchApplier: update after finish");
      if (this.options.sliced) {
        this.take(chunk, 0, chunk.length);
        return;
      }
      const input = this.input;
      if (this.header && this.header.version === PATCH_VERSION && input.pos === input.end) {
        // Bounded: each pass takes at least one byte of `chunk` or produces at least one slice.
        for (let at = 0; at < chunk.length || this.pending(); ) {
          if (this.pending()) this.produce(PATCH_SLICE_OUTPUT);
          else at += this.feed(chunk, at, chunk.length);
        }
        return;
      }
      // Bounded: each pass takes at least one byte (decoding to exhaustion frees the window).
      for (let at = 0; at < chunk.length; ) {
        const n = Math.min(this.inputBound, chunk.length - at);
        if (n === 0) throw new Error("PatchApplier: input window full");
        this.take(chunk, at, n);
        at += n;
        while (this.step()) {
          /* one slice at a time */
        }
      }
    });
  }

  /**
   * Sliced mode: do at most one slice of work on the input already taken — at
   * most PATCH_SLICE_OUTPUT bytes of new image (hence at most one erase block
   * where erase blocks are at least that long), for patches of either version.
   * A version-1 block is gathered (and inflated) as its input arrives, at most
   * one input window per slice, then its span is produced slice by slice.
   * Returns true while work remains for the input already given.
   * @throws as `update`.
   */
  pump(): boolean {
    return this.guard(() => this.step());
  }

  private take(chunk: Uint8Array, at: number, n: number): void {
    const input = this.input;
    if (input.end + n > input.buf.length) {
      input.buf.copyWithin(0, input.pos, input.end);
      input.end -= input.pos;
      input.pos = 0;
    }
    input.buf.set(chunk.subarray(at, at + n), input.end);
    input.end += n;
  }

  /** One slice of work from the input window; true while more work is possible without more input. */
  private step(): boolean {
    const input = this.input;
    if (this.state === FINISHED) return false;
    if (this.state === HEADER) {
      if (input.end - input.pos < PATCH_HEADER_SIZE) return false;
      this.headerBytes.set(input.buf.subarray(input.pos, input.pos + PATCH_HEADER_SIZE));
      input.pos += PATCH_HEADER_SIZE;
      this.consumed += PATCH_HEADER_SIZE;
      this.start(parsePatchHeader(this.headerBytes));
      return input.pos < input.end || (this.state as number) === DONE;
    }
    const h = this.header as PatchHeader;
    if (h.version === PATCH_VERSION) {
      // Version 1: one slice of a block's span, or gather (and inflate, a slice at most) the input until a block's payload is complete.
      const inflater = this.inflater;
      if (this.options.sliced && inflater) inflater.setLimit(inflater.outputLength + PATCH_SLICE_OUTPUT);
      if (this.pending()) this.produce(PATCH_SLICE_OUTPUT);
      else if (this.inflating()) input.pos += this.inflateMore(input.buf, input.pos, input.end);
      else if (input.pos < input.end) input.pos += this.feed(input.buf, input.pos, input.end);
      else return false;
      return this.pending() || this.inflateHeld() || input.pos < input.end;
    }
    return this.stepV2(h);
  }

  /** Version 1: a DEFLATE block's payload is being inflated into `raw`. */
  private inflating(): boolean {
    return this.state === BLOCK_BODY && this.inflater !== undefined && this.storedLength !== this.rawLength;
  }

  /** Version 1: inflating has spent this slice's output and waits for the next. */
  private inflateHeld(): boolean {
    return this.inflating() && (this.inflater as Inflater).paused;
  }

  /**
   * Push `chunk[at, end)` (no more than the block's payload) into the inflater;
   * with an empty range, go on decoding what is staged. At the payload's end
   * the block's controls are checked and its span is produced next. Returns
   * the bytes taken.
   */
  private inflateMore(chunk: Uint8Array, at: number, end: number): number {
    const inflater = this.inflater as Inflater;
    const n = inflater.push(chunk, at, Math.min(end, at + this.storedLength - this.have));
    this.have += n;
    this.consumed += n;
    if (this.have === this.storedLength && !inflater.paused) {
      if (!inflater.done) throw new OtaError(Reason.PATCH_DECOMPRESS, `block ${this.block}: stream incomplete`, this.block);
      this.have = 0;
      this.endBlock();
    }
    return n;
  }

  /** Version 1: a block's span is being produced (slice by slice). */
  private pending(): boolean {
    return this.state === PRODUCE || this.state === IDENTITY;
  }

  /** Version 1: produce at most `budget` bytes of the current block's span. */
  private produce(budget: number): void {
    if (this.state === IDENTITY) this.identitySlice(budget);
    else if (this.pRange) this.rangeSlice(budget);
    else this.bsdiffSlice(budget);
  }

  /** An identity block: copy at most `budget` bytes of the old image at the same offset. */
  private identitySlice(budget: number): void {
    const writer = this.writer as SlotWriter;
    const span = this.spanOf(this.block);
    // Bounded: each pass copies at least one byte of the budget.
    while (budget > 0 && this.identityLeft > 0) {
      const n = Math.min(OLD_READ_CHUNK, budget, this.identityLeft);
      const buf = this.options.activeSlot.read(n, this.newOffset + span - this.identityLeft);
      this.identityCrc = this.crc(this.identityCrc, buf, 0, buf.length);
      writer.write(buf);
      this.identityLeft -= n;
      budget -= n;
    }
    if (this.identityLeft === 0) this.blockDone(this.identityCrc);
  }

  private stepV2(h: PatchHeader): boolean {
    const input = this.input;
    if (this.state === DONE) {
      if (input.pos < input.end) throw malformed(`bytes after the last block, at patch offset ${this.consumed}`, this.consumed);
      return false;
    }
    if (this.state === BLOCK_HEADER) {
      const avail = input.end - input.pos;
      const bh = parseBlockHeaderV2(input.buf.subarray(input.pos, input.end), Math.min(avail, BLOCK_HEADER_V2_MAX));
      if (!bh) {
        if (avail >= BLOCK_HEADER_V2_MAX) throw malformed(`block ${this.block}: header does not parse`, this.block);
        return false;
      }
      input.pos += bh.size;
      this.consumed += bh.size;
      this.blockCrc = bh.crc;
      const span = this.spanOf(this.block);
      if (bh.storedLength === 0) {
        if (this.newOffset + span > h.oldLength) throw outOfRange(`block ${this.block}: identity span past the old image`, this.block);
        this.identityLeft = span;
        this.identityCrc = 0;
        this.state = IDENTITY;
      } else {
        if (bh.storedLength > LZ_MAX_PAYLOAD(span)) throw malformed(`block ${this.block}: payload of ${bh.storedLength} bytes`, this.block);
        (this.lz as LzBlockDecoder).begin(this.block, bh.storedLength, span, this.newOffset, h.oldLength);
        this.state = BLOCK_BODY;
      }
      return true;
    }
    if (this.state === IDENTITY) {
      this.identitySlice(PATCH_SLICE_OUTPUT);
      return true;
    }
    // BLOCK_BODY
    const lz = this.lz as LzBlockDecoder;
    const before = input.pos;
    const r = lz.run(input, this.lzIo as LzIo, PATCH_SLICE_OUTPUT);
    this.consumed += input.pos - before;
    if (r === BLOCK_END) {
      this.blockDone(lz.outputCrc);
      return true;
    }
    return r === BUDGET_SPENT;
  }

  /**
   * End of the patch: every block must have arrived. Reads the new image back
   * from the inactive slot and checks its length and SHA-256.
   * @throws OtaError PATCH_TRUNCATED when blocks are missing; PATCH_NEW_MISMATCH.
   */
  finish(): PatchResult {
    return this.guard(() => {
      if (this.state === FINISHED) throw new Error("PatchApplier: finish called twice");
      if (this.state !== DONE || !this.header) {
        throw new OtaError(Reason.PATCH_TRUNCATED, `patch ended at byte ${this.consumed}, in block ${this.block}`, this.consumed);
      }
      const h = this.header;
      const sha256 = this.options.deferNewCheck ? h.newSha256.slice() : hashSlot(this.options.inactiveSlot, h.newLength, this.options.digest);
      if (!sameBytes(sha256, h.newSha256)) throw new OtaError(Reason.PATCH_NEW_MISMATCH, "the new image's SHA-256 differs from the header's");
      this.state = FINISHED;
      return Object.freeze({ length: h.newLength, sha256 });
    });
  }

  private guard<T>(fn: () => T): T {
    if (this.failure !== undefined) {
      if (isOtaError(this.failure)) throw this.failure;
      throw new Error("PatchApplier: used after an exception");
    }
    try {
      return fn();
    } catch (e) {
      this.failure = e;
      throw e;
    }
  }

  /**
   * Version 1: take bytes of `chunk[start, end)` until it ends or a block's
   * payload is complete (its span is then produced by `produce`, slice by
   * slice). Returns the bytes taken.
   */
  private feed(chunk: Uint8Array, start: number, end: number): number {
    let at = start;
    // Bounded: each pass takes at least one byte of `chunk` or completes a section.
    while (at < end && !this.pending() && !this.inflateHeld()) {
      if (this.state === HEADER) {
        const n = Math.min(PATCH_HEADER_SIZE - this.have, end - at);
        this.headerBytes.set(chunk.subarray(at, at + n), this.have);
        this.have += n;
        at += n;
        this.consumed += n;
        if (this.have === PATCH_HEADER_SIZE) {
          this.have = 0;
          this.start(parsePatchHeader(this.headerBytes));
        }
      } else if (this.state === BLOCK_HEADER) {
        // Block headers are short: take one byte at a time until one parses.
        this.blockHeader[this.have++] = chunk[at++];
        this.consumed++;
        const bh = parseBlockHeader(this.blockHeader, this.have);
        if (bh) {
          this.have = 0;
          this.beginBlock(bh.storedLength, bh.rawLength, bh.crc);
        } else if (this.have === BLOCK_HEADER_MAX) throw malformed(`block ${this.block}: header does not parse`, this.block);
      } else if (this.state === BLOCK_BODY) {
        if (this.inflating()) {
          at += this.inflateMore(chunk, at, end);
          continue;
        }
        // Stored, or a RANGE payload: gathered whole (it is at most the raw length) and decoded at its end.
        const n = Math.min(this.storedLength - this.have, end - at);
        this.raw.set(chunk.subarray(at, at + n), this.have);
        this.have += n;
        at += n;
        this.consumed += n;
        if (this.have === this.storedLength) {
          this.have = 0;
          if (this.model && this.storedLength !== this.rawLength) this.rangeBlock();
          else this.endBlock();
        }
      } else {
        throw malformed(`bytes after the last block, at patch offset ${this.consumed}`, this.consumed);
      }
    }
    return at - start;
  }

  /** Check the header against the slots and the old image; allocate the block buffers. */
  private setup(h: PatchHeader): void {
    const { activeSlot, inactiveSlot, digest } = this.options;
    const flash = inactiveSlot.status();
    const capacity = this.options.capacity ?? flash.size;
    const v2 = h.version !== PATCH_VERSION;
    // Version 2's memory does not grow with the block size; version 1 buffers a raw block.
    if (!v2 && h.blockSize > (this.options.maxBlockSize ?? DEFAULT_MAX_BLOCK_SIZE)) {
      throw new OtaError(Reason.PATCH_UNSUPPORTED, `block size ${h.blockSize} over this device's limit`, h.blockSize);
    }
    if (h.blockSize % flash.writeAlign !== 0 || (flash.blockLength % h.blockSize !== 0 && h.blockSize % flash.blockLength !== 0)) {
      throw new OtaError(Reason.PATCH_UNSUPPORTED, `block size ${h.blockSize} does not fit the flash geometry`, h.blockSize);
    }
    if (h.newLength > capacity) throw new OtaError(Reason.PATCH_TOO_LARGE, `new image of ${h.newLength} bytes, slot holds ${capacity}`, h.newLength);
    if (h.oldLength > activeSlot.status().size) throw new OtaError(Reason.PATCH_OLD_MISMATCH, `old image of ${h.oldLength} bytes is larger than the active slot`, h.oldLength);
    const known = this.options.knownOld;
    const oldSha = known && known.length === h.oldLength ? known.sha256 : hashSlot(activeSlot, h.oldLength, digest);
    if (!sameBytes(oldSha, h.oldSha256)) {
      throw new OtaError(Reason.PATCH_OLD_MISMATCH, "the active slot does not hold the patch's base image");
    }
    this.header = h;
    if (v2) {
      this.lz = h.codec === Codec.LZR ? new LzrBlockDecoder(this.crc) : new LzBlockDecoder(this.crc);
      const bad = (e: unknown, what: string) => {
        if (e instanceof RangeError) return new OtaError(Reason.PATCH_OUT_OF_RANGE, `block ${this.block}: ${what}: ${e.message}`, this.block);
        return e;
      };
      this.lzIo = {
        readOld: (length, offset) => activeSlot.read(length, offset),
        readNew: (offset, length) => {
          try {
            return (this.writer as SlotWriter).readWritten(offset, length);
          } catch (e) {
            throw bad(e, "copy from the new image");
          }
        },
        write: (bytes) => (this.writer as SlotWriter).write(bytes),
      };
      return;
    }
    this.raw = new Uint8Array(maxRawLength(h.blockSize));
    if (h.codec === Codec.DEFLATE) this.inflater = new Inflater();
    if (h.codec === Codec.RANGE) {
      this.model = new BlockModel();
      this.rangeDecoder = new RangeDecoder();
      this.out = new Uint8Array(RANGE_OUT_CHUNK);
    }
  }

  private start(h: PatchHeader): void {
    this.setup(h);
    this.writer = SlotWriter.open(this.options.inactiveSlot, { limit: this.options.capacity ?? this.options.inactiveSlot.status().size });
    this.block = 0;
    this.newOffset = 0;
    this.anchor = { block: 0, newOffset: 0, patchOffset: PATCH_HEADER_SIZE };
    this.state = h.blockCount === 0 ? DONE : BLOCK_HEADER;
    if (this.state === DONE) this.writer.finish();
  }

  private resumeFrom(cp: PatchCheckpoint): void {
    if (!cp || !(cp.header instanceof Uint8Array) || cp.header.length !== PATCH_HEADER_SIZE) {
      throw new OtaError(Reason.PATCH_BAD_CHECKPOINT, "checkpoint without a patch header");
    }
    const fields = [cp.nextBlock, cp.nextNewOffset, cp.nextPatchOffset, cp.anchorBlock, cp.anchorNewOffset, cp.anchorPatchOffset];
    for (const v of fields) if (!Number.isSafeInteger(v) || v < 0) throw new OtaError(Reason.PATCH_BAD_CHECKPOINT, `checkpoint field ${v}`);
    this.headerBytes.set(cp.header);
    const h = parsePatchHeader(this.headerBytes);
    const eraseLength = this.options.inactiveSlot.status().blockLength;
    const offsetOf = (block: number) => Math.min(block * h.blockSize, h.newLength);
    const bad = (why: string) => new OtaError(Reason.PATCH_BAD_CHECKPOINT, why);
    if (cp.nextBlock > h.blockCount || cp.nextNewOffset !== offsetOf(cp.nextBlock)) throw bad("next block and offset disagree");
    if (cp.anchorBlock > cp.nextBlock || cp.anchorNewOffset !== offsetOf(cp.anchorBlock)) throw bad("anchor block and offset disagree");
    const wantAnchor = h.blockSize >= eraseLength ? cp.nextNewOffset : cp.nextNewOffset - (cp.nextNewOffset % eraseLength);
    if (cp.nextBlock < h.blockCount && cp.anchorNewOffset !== wantAnchor) throw bad("anchor is not the start of the erase block");
    const minHeader = h.version === PATCH_VERSION ? BLOCK_HEADER_MIN : BLOCK_HEADER_V2_MIN;
    const minPatch = (block: number) => PATCH_HEADER_SIZE + block * minHeader;
    if (cp.nextPatchOffset < minPatch(cp.nextBlock) || cp.anchorPatchOffset < minPatch(cp.anchorBlock) || cp.anchorPatchOffset > cp.nextPatchOffset) {
      throw bad("patch offsets out of order");
    }
    this.setup(h);
    if (cp.nextBlock === h.blockCount) {
      // Every block is in flash (the last one padded and programmed): only the final check is left.
      this.block = cp.nextBlock;
      this.newOffset = cp.nextNewOffset;
      this.consumed = cp.nextPatchOffset;
      this.anchor = { block: cp.anchorBlock, newOffset: cp.anchorNewOffset, patchOffset: cp.anchorPatchOffset };
      this.state = DONE;
      return;
    }
    const limit = this.options.capacity ?? this.options.inactiveSlot.status().size;
    const safe = SlotWriter.safeResumeOffset(this.options.inactiveSlot, cp.nextNewOffset);
    let from: { block: number; newOffset: number; patchOffset: number };
    if (safe === cp.nextNewOffset) from = { block: cp.nextBlock, newOffset: cp.nextNewOffset, patchOffset: cp.nextPatchOffset };
    else if (safe === cp.anchorNewOffset) from = { block: cp.anchorBlock, newOffset: cp.anchorNewOffset, patchOffset: cp.anchorPatchOffset };
    else throw bad(`flash is resumable at ${safe}, the checkpoint offers ${cp.nextNewOffset} or ${cp.anchorNewOffset}`);
    this.writer = SlotWriter.resume(this.options.inactiveSlot, from.newOffset, { limit });
    this.block = from.block;
    this.newOffset = from.newOffset;
    this.consumed = from.patchOffset;
    this.blockPatchOffset = from.patchOffset;
    this.anchor = { block: cp.anchorBlock, newOffset: cp.anchorNewOffset, patchOffset: cp.anchorPatchOffset };
    if (from.newOffset === cp.anchorNewOffset) this.anchor = { ...from };
    this.state = BLOCK_HEADER;
    // When going back to the anchor, the erase block is erased again on the first
    // write, destroying blocks the old checkpoint counted as done: the journal
    // must move back before that happens, so report the resumed position now.
    this.options.onBlock?.(this.checkpoint() as PatchCheckpoint);
  }

  private spanOf(block: number): number {
    const h = this.header as PatchHeader;
    return Math.min(h.blockSize, h.newLength - block * h.blockSize);
  }

  private beginBlock(stored: number, raw: number, crc: number): void {
    const h = this.header as PatchHeader;
    this.blockCrc = crc;
    this.storedLength = stored;
    this.rawLength = raw;
    if (stored === 0 && raw === 0) {
      this.identityBlock();
      return;
    }
    if (raw < 2 || raw > this.raw.length) throw malformed(`block ${this.block}: raw length ${raw}`, this.block);
    if (stored > raw) throw malformed(`block ${this.block}: stored length ${stored} over raw ${raw}`, this.block);
    if (stored < raw) {
      if (h.codec === Codec.STORED) throw malformed(`block ${this.block}: compressed in a stored patch`, this.block);
      if (this.inflater) {
        this.inflater.begin(this.raw, raw, stored);
        if (this.options.sliced) this.inflater.setLimit(PATCH_SLICE_OUTPUT);
      }
    }
    this.state = BLOCK_BODY;
  }

  /** An unchanged span: the old image's bytes at the same offset, copied by `identitySlice`. */
  private identityBlock(): void {
    const h = this.header as PatchHeader;
    const span = this.spanOf(this.block);
    if (this.newOffset + span > h.oldLength) throw outOfRange(`block ${this.block}: identity span past the old image`, this.block);
    this.identityLeft = span;
    this.identityCrc = 0;
    this.state = IDENTITY;
  }

  private varint(end: number): number {
    const raw = this.raw;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      if (this.rp >= end) throw malformed(`block ${this.block}: varint runs past its section`, this.block);
      const byte = raw[this.rp++];
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (value > 0xffffffff) throw malformed(`block ${this.block}: varint over 32 bits`, this.block);
        return value;
      }
      scale *= 128;
    }
    throw malformed(`block ${this.block}: varint longer than 5 bytes`, this.block);
  }

  private signedVarint(end: number): number {
    const v = this.varint(end);
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  }

  /** The raw block is complete: check every control, then produce and write the span. */
  private endBlock(): void {
    const h = this.header as PatchHeader;
    const raw = this.raw;
    const rawLength = this.rawLength;
    const span = this.spanOf(this.block);

    // Pass 1: parse and bound every control before a byte is written.
    this.rp = 0;
    const oldStart = this.newOffset + this.signedVarint(rawLength);
    const controls = this.varint(rawLength);
    if (controls < 1 || controls > span) throw malformed(`block ${this.block}: ${controls} controls`, this.block);
    if (oldStart < 0 || oldStart > h.oldLength) throw outOfRange(`block ${this.block}: old cursor ${oldStart} past the old image`, oldStart);
    const controlStart = this.rp;
    let cursor = oldStart;
    let produced = 0;
    let diffTotal = 0;
    let extraTotal = 0;
    // Bounded by `controls` <= span.
    for (let i = 0; i < controls; i++) {
      const diff = this.varint(rawLength);
      const extra = this.varint(rawLength);
      const seek = this.signedVarint(rawLength);
      if (diff + extra === 0) throw malformed(`block ${this.block}: empty control`, this.block);
      if (diff > span - produced || extra > span - produced - diff) {
        throw outOfRange(`block ${this.block}: control produces past the block's span`, this.block);
      }
      if (cursor + diff > h.oldLength) throw outOfRange(`block ${this.block}: diff reads past the old image`, cursor);
      produced += diff + extra;
      diffTotal += diff;
      extraTotal += extra;
      cursor += diff + seek;
      if (cursor < 0 || cursor > h.oldLength) throw outOfRange(`block ${this.block}: seek to ${cursor} outside the old image`, this.block);
    }
    if (produced !== span) throw outOfRange(`block ${this.block}: produces ${produced} bytes, span is ${span}`, this.block);
    const diffStart = this.rp;
    const extraStart = rawLength - extraTotal;
    if (extraStart < diffStart) throw malformed(`block ${this.block}: extra bytes overlap the controls`, this.block);

    // Pass 2, slice by slice (bsdiffSlice): produce the span.
    this.pRange = false;
    this.startProduce(controls, oldStart);
    this.pControlAt = controlStart;
    this.pDiffStart = diffStart;
    this.pDiffAt = diffStart;
    this.pExtraStart = extraStart;
    this.pExtraAt = extraStart;
    this.pZeros = 0;
    this.pLiteral = 0;
    this.pDiffBudget = diffTotal;
  }

  private startProduce(controls: number, oldStart: number): void {
    this.pControls = controls;
    this.pIndex = 0;
    this.pDiff = 0;
    this.pExtra = 0;
    this.pSeek = 0;
    this.pDone = 0;
    this.pProduced = 0;
    this.pCursor = oldStart;
    this.pCrc = 0;
    this.state = PRODUCE;
  }

  /**
   * Produce at most `budget` bytes of a bsdiff-style block (stored or
   * inflated into `raw`, its controls checked by `endBlock`), resuming where
   * the last slice stopped. Bounded: each pass produces at least one byte of
   * the budget or starts the next of at most `span` controls.
   */
  private bsdiffSlice(budget: number): void {
    const { activeSlot } = this.options;
    const writer = this.writer as SlotWriter;
    const raw = this.raw;
    const extraStart = this.pExtraStart;
    for (;;) {
      if (this.pDone === this.pDiff + this.pExtra) {
        if (this.pIndex === this.pControls) {
          if (this.pDiffAt !== extraStart || this.pZeros !== 0 || this.pLiteral !== 0 || this.pDiffBudget !== 0) {
            throw malformed(`block ${this.block}: diff section does not end where the extra bytes begin`, this.block);
          }
          this.blockDone(this.pCrc);
          return;
        }
        if (budget === 0) return;
        this.rp = this.pControlAt;
        this.pDiff = this.varint(this.pDiffStart);
        this.pExtra = this.varint(this.pDiffStart);
        this.pSeek = this.signedVarint(this.pDiffStart);
        this.pControlAt = this.rp;
        this.pDone = 0;
        this.pIndex++;
      }
      if (budget === 0) return;
      if (this.pDone < this.pDiff) {
        const n = Math.min(OLD_READ_CHUNK, this.pDiff - this.pDone, budget);
        const buf = activeSlot.read(n, this.pCursor + this.pDone);
        // Add the run-length coded diff bytes: (zero run, literal run) pairs.
        for (let k = 0; k < n; ) {
          if (this.pZeros > 0) {
            const m = Math.min(this.pZeros, n - k);
            this.pZeros -= m;
            k += m;
          } else if (this.pLiteral > 0) {
            const m = Math.min(this.pLiteral, n - k);
            const diffAt = this.pDiffAt;
            for (let j = 0; j < m; j++) buf[k + j] = (buf[k + j] + raw[diffAt + j]) & 0xff;
            this.pDiffAt += m;
            this.pLiteral -= m;
            k += m;
          } else if (this.pDiffAt === extraStart) {
            // The run-length stream has ended: the rest of the diff bytes are zero.
            this.pZeros = this.pDiffBudget;
            this.pDiffBudget = 0;
            if (this.pZeros === 0) throw malformed(`block ${this.block}: diff section ends early`, this.block);
          } else {
            this.rp = this.pDiffAt;
            const zeros = this.varint(extraStart);
            const literal = this.varint(extraStart);
            this.pDiffAt = this.rp;
            if (zeros + literal === 0 || zeros + literal > this.pDiffBudget) throw malformed(`block ${this.block}: bad diff run`, this.block);
            if (literal > extraStart - this.pDiffAt) throw malformed(`block ${this.block}: diff literals run past their section`, this.block);
            this.pDiffBudget -= zeros + literal;
            this.pZeros = zeros;
            this.pLiteral = literal;
          }
        }
        this.pCrc = this.crc(this.pCrc, buf, 0, buf.length);
        writer.write(buf);
        this.pDone += n;
        budget -= n;
      } else {
        const m = Math.min(this.pDiff + this.pExtra - this.pDone, budget);
        const bytes = raw.subarray(this.pExtraAt, this.pExtraAt + m);
        this.pCrc = this.crc(this.pCrc, bytes, 0, bytes.length);
        writer.write(bytes);
        this.pExtraAt += m;
        this.pDone += m;
        budget -= m;
      }
      if (this.pDone === this.pDiff + this.pExtra) this.pCursor += this.pDiff + this.pSeek;
    }
  }

  /**
   * A RANGE block (its payload is in `raw[0, storedLength)`): decode the
   * block's start and control count, then `rangeSlice` decodes the controls,
   * diff bytes and extra bytes in one pass, slice by slice, checking each
   * control before it is used (cursor inside the old image, output inside
   * the span). Bounded: at most `span` controls, each producing at least one
   * byte; at most ten decisions per byte and 38 per integer.
   */
  private rangeBlock(): void {
    const h = this.header as PatchHeader;
    const model = this.model as BlockModel;
    const rd = this.rangeDecoder as RangeDecoder;
    const span = this.spanOf(this.block);
    const block = this.block;
    model.reset();
    rd.begin(this.raw, this.storedLength);
    const oldStart = this.newOffset + unzigzag(this.rangeInt(IntKind.START));
    const controls = this.rangeInt(IntKind.COUNT);
    if (controls < 1 || controls > span) throw malformed(`block ${block}: ${controls} controls`, block);
    if (oldStart < 0 || oldStart > h.oldLength) throw outOfRange(`block ${block}: old cursor ${oldStart} past the old image`, oldStart);
    this.pRange = true;
    this.startProduce(controls, oldStart);
  }

  private rangeInt(kind: number): number {
    const v = (this.model as BlockModel).codeInt(this.rangeDecoder as RangeDecoder, kind, 0);
    if (v < 0) throw malformed(`block ${this.block}: integer longer than 32 bits`, this.block);
    return v;
  }

  /** Produce at most `budget` bytes of a RANGE block, resuming where the last slice stopped. */
  private rangeSlice(budget: number): void {
    const h = this.header as PatchHeader;
    const model = this.model as BlockModel;
    const rd = this.rangeDecoder as RangeDecoder;
    const writer = this.writer as SlotWriter;
    const { activeSlot } = this.options;
    const span = this.spanOf(this.block);
    const block = this.block;
    const out = this.out;
    const o = this.oldContext;
    // Bounded: each pass produces at least one byte of the budget or starts the next of at most `span` controls.
    for (;;) {
      if (this.pDone === this.pDiff + this.pExtra) {
        if (this.pIndex === this.pControls) {
          if (this.pProduced !== span) throw outOfRange(`block ${block}: produces ${this.pProduced} bytes, span is ${span}`, block);
          if (rd.position < this.storedLength) throw malformed(`block ${block}: payload continues after its range-coded stream`, block);
          this.blockDone(this.pCrc);
          return;
        }
        if (budget === 0) return;
        const produced = this.pProduced;
        const diff = this.rangeInt(IntKind.DIFF);
        const extra = this.rangeInt(IntKind.EXTRA);
        const seek = unzigzag(this.rangeInt(IntKind.SEEK));
        if (diff + extra === 0) throw malformed(`block ${block}: empty control`, block);
        if (diff > span - produced || extra > span - produced - diff) throw outOfRange(`block ${block}: control produces past the block's span`, block);
        if (this.pCursor + diff > h.oldLength) throw outOfRange(`block ${block}: diff reads past the old image`, this.pCursor);
        this.pDiff = diff;
        this.pExtra = extra;
        this.pSeek = seek;
        this.pDone = 0;
        this.pIndex++;
      }
      if (budget === 0) return;
      if (this.pDone < this.pDiff) {
        const n = Math.min(OLD_READ_CHUNK, this.pDiff - this.pDone, budget);
        const start = this.pCursor + this.pDone;
        // The chunk plus one old byte before and three after (those outside the image count as 0).
        const lo = start > 0 ? start - 1 : 0;
        const hi = Math.min(h.oldLength, start + n + OLD_CONTEXT_MARGIN - 1);
        const buf = activeSlot.read(hi - lo, lo);
        const last = hi - lo;
        let before = start > 0 ? buf[0] : 0;
        for (let j = start - lo; j < start - lo + n; j++) {
          const at = buf[j];
          o.before = before;
          o.at = at;
          o.next1 = j + 1 < last ? buf[j + 1] : 0;
          o.next2 = j + 2 < last ? buf[j + 2] : 0;
          o.next3 = j + 3 < last ? buf[j + 3] : 0;
          o.lane = (lo + j) & 3;
          buf[j] = (at + model.codeDiffByte(rd, o, 0)) & 0xff;
          before = at;
        }
        const bytes = buf.subarray(start - lo, start - lo + n);
        this.pCrc = this.crc(this.pCrc, bytes, 0, bytes.length);
        writer.write(bytes);
        this.pDone += n;
        budget -= n;
      } else {
        // Extra bytes, through the output buffer (written whenever it fills and at the slice's end).
        const m = Math.min(this.pDiff + this.pExtra - this.pDone, budget);
        const base = this.newOffset + this.pProduced;
        let outLength = 0;
        for (let k = 0; k < m; k++) {
          out[outLength++] = model.codeExtraByte(rd, base + this.pDone + k, 0);
          if (outLength === out.length || k === m - 1) {
            const bytes = out.subarray(0, outLength);
            this.pCrc = this.crc(this.pCrc, bytes, 0, bytes.length);
            writer.write(bytes);
            outLength = 0;
          }
        }
        this.pDone += m;
        budget -= m;
      }
      if (this.pDone === this.pDiff + this.pExtra) {
        this.pProduced += this.pDiff + this.pExtra;
        this.pCursor += this.pDiff + this.pSeek;
        if (this.pCursor < 0 || this.pCursor > h.oldLength) throw outOfRange(`block ${block}: seek to ${this.pCursor} outside the old image`, block);
      }
    }
  }

  /** Check the block's output, advance, flush, and hand out the new checkpoint. */
  private blockDone(crc: number): void {
    const h = this.header as PatchHeader;
    const writer = this.writer as SlotWriter;
    if (crc !== this.blockCrc) throw new OtaError(Reason.PATCH_BLOCK_HASH, `block ${this.block}: output CRC mismatch`, this.block);
    this.block++;
    this.newOffset += this.spanOf(this.block - 1);
    this.blockPatchOffset = this.consumed;
    if (this.block === h.blockCount) {
      writer.finish();
      this.state = DONE;
    } else {
      writer.flush();
      this.state = BLOCK_HEADER;
      const eraseLength = this.options.inactiveSlot.status().blockLength;
      if (h.blockSize >= eraseLength || this.newOffset % eraseLength === 0) {
        this.anchor = { block: this.block, newOffset: this.newOffset, patchOffset: this.consumed };
      }
    }
    this.options.onBlock?.(this.checkpoint() as PatchCheckpoint);
  }
}
