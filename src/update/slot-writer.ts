/**
 * The slot writer: streams an image (a full download or a patch's output)
 * into the inactive slot from offset 0 upwards, in bounded RAM.
 *
 * - Erases ahead, block by block: the erase block the next byte lands in is
 *   erased just before its first byte is programmed, once per session.
 * - Buffers to the flash write unit (`writeAlign`) and never programs a byte
 *   twice; `flush()` pushes out every whole write unit held.
 * - Resumable: after a power cut, `SlotWriter.resume(flash, offset)` goes on
 *   from a stated offset that was durable (flushed) before the cut. If the
 *   flash after that offset, in the same erase block, is no longer erased
 *   (the cut hit a write after the offset), the writer cannot go on there
 *   without programming bytes twice; `safeResumeOffset` then answers the
 *   start of that erase block, which the caller must resume from instead.
 *
 * After any exception the writer is spent: make a new one (resume) from the
 * durable offset.
 *
 * Write order (MCUboot direct-xip, see docs/formats.md): a slot whose header
 * is valid is a boot candidate, and the bootloader erases a chosen candidate
 * whose trailer magic is not good. So a partial or staged image must not
 * carry its header in flash: the writer is handed a `HeaderHold` view of the
 * inactive slot, which keeps the image's first write unit(s) (its 32-byte
 * header, rounded up to the write unit) in RAM — the caller journals them —
 * and programs them last (`HeaderHold.commit`), when the trial is requested.
 *
 * RAM: one program buffer of `bufferSize` bytes (default 512) plus, during
 * `resume`, one flash read of at most RESUME_SCAN_CHUNK bytes.
 */
import { OtaError, Reason } from "../errors";
import type { Flash, FlashStatus } from "../../hal/types";

/** Default program buffer (a multiple of every common write unit: 8, 16, 32, 256 bytes). */
export const DEFAULT_WRITE_BUFFER = 512;
/** Largest single program call when a chunk is written without copying. */
export const MAX_PROGRAM = 4096;
/** Bytes read per step when checking that a resumed erase block's tail is still erased. */
export const RESUME_SCAN_CHUNK = 1024;

export interface SlotWriterOptions {
  /** Most bytes the writer accepts (the image area of the slot). Default: the slot size. */
  limit?: number;
  /** Program buffer size: a positive multiple of writeAlign. Default DEFAULT_WRITE_BUFFER (or writeAlign if larger). */
  bufferSize?: number;
}

function checkOffset(value: number, title: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${title} must be a non-negative integer, got ${value}`);
}

export class SlotWriter {
  private readonly geometry: FlashStatus;
  private readonly buffer: Uint8Array;
  private readonly limit: number;
  /** Bytes held in `buffer`, destined for [programmed, programmed + held). */
  private held = 0;
  /** Bytes programmed so far (a multiple of writeAlign). */
  private programmed: number;
  /** [programmed, erasedEnd) is erased in this session and not yet programmed. */
  private erasedEnd: number;
  private finished = false;

  private constructor(private readonly flash: Flash, start: number, erasedEnd: number, options: SlotWriterOptions) {
    const g = flash.status();
    this.geometry = g;
    const limit = options.limit ?? g.size;
    checkOffset(limit, "limit");
    if (limit > g.size) throw new RangeError(`limit ${limit} exceeds the slot size ${g.size}`);
    const size = options.bufferSize ?? Math.max(DEFAULT_WRITE_BUFFER, g.writeAlign);
    if (!Number.isInteger(size) || size <= 0 || size % g.writeAlign !== 0) {
      throw new RangeError(`bufferSize must be a positive multiple of writeAlign ${g.writeAlign}, got ${size}`);
    }
    this.limit = limit;
    this.buffer = new Uint8Array(size);
    this.programmed = start;
    this.erasedEnd = erasedEnd;
  }

  /** A writer starting at offset 0 of `flash`. Erases nothing until the first byte arrives. */
  static open(flash: Flash, options: SlotWriterOptions = {}): SlotWriter {
    return new SlotWriter(flash, 0, 0, options);
  }

  /**
   * The offset a writer can resume from, given that `[0, offset)` was durable
   * before the cut: `offset` itself when it starts an erase block or the rest
   * of its erase block is still erased, else the start of that erase block.
   * Reads at most one erase block, RESUME_SCAN_CHUNK bytes at a time.
   * @throws RangeError when `offset` is not a write-unit multiple within the slot.
   */
  static safeResumeOffset(flash: Flash, offset: number): number {
    const { blockLength, writeAlign, eraseValue, size } = flash.status();
    checkOffset(offset, "offset");
    if (offset % writeAlign !== 0 || offset > size) throw new RangeError(`resume offset ${offset} not a write-unit multiple within the slot`);
    const blockStart = offset - (offset % blockLength);
    if (blockStart === offset) return offset;
    const blockEnd = blockStart + blockLength;
    for (let at = offset; at < blockEnd; ) {
      const n = Math.min(RESUME_SCAN_CHUNK, blockEnd - at);
      const data = flash.read(n, at);
      for (let i = 0; i < n; i++) if (data[i] !== eraseValue) return blockStart;
      at += n;
    }
    return offset;
  }

  /**
   * A writer that goes on at `offset` (everything before it is already in
   * flash). `offset` must be what `safeResumeOffset` answers for it.
   * @throws OtaError FLASH_NOT_ERASED when the flash after `offset` in its erase
   *   block is programmed (resume from `safeResumeOffset` instead).
   */
  static resume(flash: Flash, offset: number, options: SlotWriterOptions = {}): SlotWriter {
    const safe = SlotWriter.safeResumeOffset(flash, offset);
    if (safe !== offset) {
      throw new OtaError(Reason.FLASH_NOT_ERASED, `flash after ${offset} is programmed; resume from ${safe}`, safe);
    }
    const { blockLength } = flash.status();
    const erasedEnd = offset % blockLength === 0 ? offset : offset - (offset % blockLength) + blockLength;
    const w = new SlotWriter(flash, offset, erasedEnd, options);
    if (offset > w.limit) throw new RangeError(`resume offset ${offset} past the limit ${w.limit}`);
    return w;
  }

  /** Bytes accepted so far (programmed or held). */
  get offset(): number {
    return this.programmed + this.held;
  }

  /** Bytes already programmed: what survives a power cut now. */
  get durableOffset(): number {
    return this.programmed;
  }

  /**
   * Bytes of the new image written so far, `[offset, offset + length)` below
   * `this.offset`: programmed bytes read back through the writer's flash (a
   * HeaderHold serves the held header from RAM), the rest from the program
   * buffer. For a decoder that copies from the new image.
   * @throws RangeError past what is written (or a bad range).
   */
  readWritten(offset: number, length: number): Uint8Array {
    checkOffset(offset, "offset");
    checkOffset(length, "length");
    if (offset + length > this.offset) throw new RangeError(`readWritten: ${offset}+${length} is past the ${this.offset} bytes written`);
    const out = new Uint8Array(length);
    let at = 0;
    // Bounded: flash reads of at most RESUME_SCAN_CHUNK bytes, then one copy from the buffer.
    while (at < length && offset + at < this.programmed) {
      const n = Math.min(length - at, this.programmed - (offset + at), RESUME_SCAN_CHUNK);
      out.set(this.flash.read(n, offset + at), at);
      at += n;
    }
    if (at < length) {
      const from = offset + at - this.programmed;
      out.set(this.buffer.subarray(from, from + (length - at)), at);
    }
    return out;
  }

  /** RAM the writer holds (its program buffer). */
  get bytes(): number {
    return this.buffer.byteLength;
  }

  /**
   * Append `chunk` (any length). Whole program buffers go to flash as they fill.
   * @throws OtaError FLASH_RANGE past the limit (nothing of the chunk is taken);
   *   HAL errors from erase and write. Error (misuse) after `finish`.
   */
  write(chunk: Uint8Array): void {
    if (this.finished) throw new Error("slot writer: write after finish");
    if (!(chunk instanceof Uint8Array)) throw new TypeError("slot writer: chunk must be a Uint8Array");
    if (this.offset + chunk.length > this.limit) {
      throw new OtaError(Reason.FLASH_RANGE, `image would run past ${this.limit} bytes`, this.offset + chunk.length);
    }
    const buffer = this.buffer;
    let at = 0;
    // Bounded: each pass takes at least min(buffer free, remaining) bytes.
    while (at < chunk.length) {
      if (this.held === 0 && chunk.length - at >= buffer.length) {
        // Program whole buffer-sized runs straight from the chunk, no copy.
        const cap = Math.max(buffer.length, MAX_PROGRAM - (MAX_PROGRAM % buffer.length));
        let n = Math.min(chunk.length - at, cap);
        n -= n % buffer.length;
        this.program(chunk.subarray(at, at + n));
        at += n;
        continue;
      }
      const n = Math.min(buffer.length - this.held, chunk.length - at);
      buffer.set(chunk.subarray(at, at + n), this.held);
      this.held += n;
      at += n;
      if (this.held === buffer.length) {
        this.held = 0;
        this.program(buffer);
      }
    }
  }

  /**
   * Program every whole write unit held, so `durableOffset` reaches `offset`
   * when `offset` is a write-unit multiple. Bytes of a partial unit stay held.
   */
  flush(): void {
    if (this.finished) throw new Error("slot writer: flush after finish");
    const align = this.geometry.writeAlign;
    const whole = this.held - (this.held % align);
    if (whole === 0) return;
    const rest = this.held - whole;
    this.held = 0;
    this.program(this.buffer.subarray(0, whole));
    this.buffer.copyWithin(0, whole, whole + rest);
    this.held = rest;
  }

  /**
   * Program what is held, the last partial write unit padded with the erase
   * value. Returns the image length (bytes accepted, padding excluded).
   */
  finish(): number {
    if (this.finished) throw new Error("slot writer: finish called twice");
    const length = this.offset;
    const align = this.geometry.writeAlign;
    const padded = this.held + ((align - (this.held % align)) % align);
    if (padded > 0) {
      if (this.programmed + padded > this.geometry.size) throw new OtaError(Reason.FLASH_RANGE, "padding runs past the slot", this.programmed);
      this.buffer.fill(this.geometry.eraseValue, this.held, padded);
      this.held = 0;
      this.program(this.buffer.subarray(0, padded));
    }
    this.finished = true;
    return length;
  }

  /** Program `data` (write-unit multiple) at `programmed`, erasing each erase block on entry. */
  private program(data: Uint8Array): void {
    const { blockLength } = this.geometry;
    let at = 0;
    // Bounded: each pass programs up to the end of one erase block.
    while (at < data.length) {
      if (this.programmed >= this.erasedEnd) {
        const block = Math.floor(this.programmed / blockLength);
        this.flash.eraseBlock(block);
        this.erasedEnd = (block + 1) * blockLength;
      }
      const n = Math.min(data.length - at, this.erasedEnd - this.programmed);
      this.flash.write(at === 0 && n === data.length ? data : data.subarray(at, at + n), this.programmed);
      this.programmed += n;
      at += n;
    }
  }
}

/** Bytes of the image's start held back: its 32-byte MCUboot header, rounded up to the write unit. */
export function headerUnitLength(flash: Flash): number {
  const { writeAlign } = flash.status();
  return Math.ceil(32 / writeAlign) * writeAlign;
}

/**
 * A view of the inactive slot whose first `headerUnitLength` bytes live in
 * RAM until `commit()` programs them: writes there fill the RAM copy, reads
 * there answer it, an erase of block 0 clears it. Everything else passes
 * through to the slot. While held, the slot carries no image header, so
 * MCUboot (boot_get_slot_usage) never counts it as a candidate: a reset
 * mid-download or while staged leaves it alone.
 *
 * RAM: one header unit (32 bytes on a 32-byte write unit).
 */
export class HeaderHold implements Flash {
  readonly unit: number;
  private readonly held: Uint8Array;
  /** Bytes of the unit filled so far (writes arrive in order from offset 0). */
  private have = 0;
  private readonly geometry: FlashStatus;

  /**
   * @param slot the inactive slot (raw flash)
   * @param header the unit's bytes from the journal after a reset, or undefined to start empty
   * @throws RangeError when `header` is not exactly one header unit long
   */
  constructor(readonly slot: Flash, header?: Uint8Array) {
    this.geometry = slot.status();
    this.unit = headerUnitLength(slot);
    if (this.unit > this.geometry.blockLength) throw new RangeError("HeaderHold: header unit larger than an erase block");
    this.held = new Uint8Array(this.unit).fill(this.geometry.eraseValue);
    if (header !== undefined) {
      if (!(header instanceof Uint8Array) || header.length !== this.unit) throw new RangeError(`HeaderHold: header must be ${this.unit} bytes`);
      this.held.set(header);
      this.have = this.unit;
    }
  }

  status(): FlashStatus {
    return this.geometry;
  }

  /** The whole unit is in RAM (what the journal must keep), or undefined while incomplete. */
  bytes(): Uint8Array | undefined {
    return this.have === this.unit ? this.held.slice() : undefined;
  }

  read(byteLength: number, byteOffset: number): Uint8Array {
    if (byteOffset >= this.unit) return this.slot.read(byteLength, byteOffset);
    const out = this.slot.read(byteLength, byteOffset);
    const n = Math.min(byteLength, this.unit - byteOffset);
    out.set(this.held.subarray(byteOffset, byteOffset + n), 0);
    return out;
  }

  write(data: Uint8Array, byteOffset: number): void {
    if (byteOffset >= this.unit) return this.slot.write(data, byteOffset);
    const { writeAlign } = this.geometry;
    if (byteOffset % writeAlign !== 0 || data.length % writeAlign !== 0) throw new OtaError(Reason.FLASH_ALIGN, "misaligned write", byteOffset);
    if (byteOffset !== this.have) throw new OtaError(Reason.FLASH_NOT_ERASED, `header unit written out of order at ${byteOffset}`, byteOffset);
    const n = Math.min(data.length, this.unit - byteOffset);
    this.held.set(data.subarray(0, n), byteOffset);
    this.have = byteOffset + n;
    if (n < data.length) this.slot.write(data.subarray(n), this.unit);
  }

  eraseBlock(block: number): void {
    this.slot.eraseBlock(block);
    if (block === 0) {
      this.held.fill(this.geometry.eraseValue);
      this.have = 0;
    }
  }

  /**
   * Program the held unit at offset 0 of the slot: the image gets its header
   * (done last, after the trailer asks for the trial).
   * @throws Error when the unit is incomplete; OtaError from the flash
   *   (FLASH_NOT_ERASED when something is already there).
   */
  commit(): void {
    if (this.have !== this.unit) throw new Error("HeaderHold.commit: the header unit is not complete");
    programHeaderUnit(this.slot, this.held);
  }
}

/**
 * Program a held header unit at offset 0 of `slot` (the install's last write).
 * A unit that is already there, byte for byte, is left alone (a repeat after a reset).
 * @throws OtaError FLASH_NOT_ERASED when the unit holds other bytes.
 */
export function programHeaderUnit(slot: Flash, unit: Uint8Array): void {
  const now = slot.read(unit.length, 0);
  let same = true;
  for (let i = 0; i < unit.length; i++) if (now[i] !== unit[i]) same = false;
  if (same) return;
  slot.write(unit, 0);
}

/** The slot's header unit is all erased (nothing of a header was programmed). */
export function headerUnitErased(slot: Flash): boolean {
  const { eraseValue } = slot.status();
  const b = slot.read(headerUnitLength(slot), 0);
  for (let i = 0; i < b.length; i++) if (b[i] !== eraseValue) return false;
  return true;
}
