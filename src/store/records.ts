/**
 * The power-safe record store: small keyed records in a log over two or more
 * erase blocks of a Flash, every record with a sequence number and a CRC-32.
 *
 * Guarantee: a power cut at any mutating flash operation (clean, or torn: a
 * write leaves a prefix, an erase a mix of old and erased bytes) leaves every
 * key reading either its old or its new value after the next `open`, never a
 * mix and never bytes that fail their CRC. Atomicity is per record: put
 * fields that must change together into one record.
 *
 * Scheme (append, then compact):
 * - Each block starts with a block header (magic, store id, epoch: a counter
 *   raised each time a block is taken into use). The block with the highest
 *   epoch is the head; records are appended there, each in one `write`.
 * - A record is `magic, format, key, seq, length, crc32` then the value,
 *   padded to the write unit. The newest valid record of a key (highest seq)
 *   is its value; with `copies: 2` the previous one is kept too and read when
 *   the newest is unreadable. Sequence numbers are global to the store.
 * - When the head is full, an erased spare block gets a header with the next
 *   epoch and becomes the head. If no spare is left, the oldest block is
 *   reclaimed: its live records are copied (same key, same seq) into the new
 *   head, then it is erased and becomes the spare. At every instant each live
 *   value has at least one complete copy.
 * - `open` rebuilds the index by scanning every block; stops a block's scan at
 *   the first invalid record; seals the head (no more appends there) when
 *   anything after its last valid record is not erased (a torn write); erases
 *   blocks whose header is invalid (a torn erase or header write); and
 *   finishes a reclaim that a cut interrupted.
 *
 * Bounds: value length <= `maxValue` of its space (<= MAX_VALUE); keys per
 * space <= 256; the live set (keys x copies x record span) plus one record
 * must fit one block (checked at open: STORE_GEOMETRY); a put performs at most
 * one rotation, which copies at most the live set and erases one block; `open`
 * reads every block once (reads of <= 4096 bytes).
 *
 * Wear: a put programs `span = roundUp(16 + length, writeAlign)` bytes. A
 * block is erased once per `(blockCapacity - live) / span` puts, so write
 * amplification is about `1 + live / (blockCapacity - live)`: for a 32-byte
 * journal record in a 128 KiB block, one erase per ~4000 saves instead of
 * one per save.
 *
 * Geometry comes from `flash.status()` only: any block length, any write unit
 * up to the block length, erase value 0xFF or 0x00.
 */
import { OtaError, Reason } from "../errors";
import type { Flash } from "../../hal/types";
import { crc32Update } from "../util/crc32";

/** One namespace of keys inside a store, with its own bounds. */
export interface SpaceSpec {
  /** For messages and the layout table. */
  readonly name: string;
  /** 0..255, unique within a store: the high byte of the stored 16-bit key. */
  readonly tag: number;
  /** Keys are 0..keys-1; 1..256. */
  readonly keys: number;
  /** Largest value in bytes, 0..MAX_VALUE. */
  readonly maxValue: number;
  /** Versions kept per key: 1, or 2 (the previous value is a fallback for an unreadable newest one). */
  readonly copies: 1 | 2;
}

/** A keyed view of one space of a store: what the settings, journal and audit log use. */
export interface RecordSpace {
  readonly spec: SpaceSpec;
  /**
   * The newest readable value of `key`, or undefined if none was ever put.
   * Every read checks the record's CRC; an unreadable newest copy falls back to the previous one.
   * @throws RangeError for a key outside the space.
   */
  get(key: number): Uint8Array | undefined;
  /**
   * Store `value` as the new value of `key`, power-safely.
   * @throws RangeError for a key outside the space; OtaError STORE_TOO_LARGE for an over-long value;
   *   STORE_FULL when the sequence numbers are exhausted; flash errors. PowerCut propagates.
   */
  put(key: number, value: Uint8Array): void;
}

/** Bytes of a record header. */
export const RECORD_HEADER = 16;
/** Bytes of a block header before padding to the write unit. */
export const BLOCK_HEADER = 16;
/** The largest value of any space (a record then fits one 4 KiB read). */
export const MAX_VALUE = 2048;
/** Sequence numbers are u32; the store refuses puts after this one. */
export const MAX_SEQ = 0xffffffff;
/** Largest single flash read. */
const READ_CHUNK = 4096;

const RECORD_MAGIC = 0xa5; // neither 0x00 nor 0xFF: a programmed record never reads as erased
const FORMAT = 1;
const BLOCK_MAGIC = 0x42525358; // "XSRB" little-endian

/** Where a record lives. */
interface Loc {
  seq: number;
  block: number;
  offset: number;
  length: number;
  /** Another complete copy with the same key and seq exists in an older block (mount only). */
  duplicated: boolean;
}

/** Counters for tests and benches. */
export interface StoreStats {
  puts: number;
  bytesAppended: number;
  rotations: number;
  recordsCopied: number;
  bytesCopied: number;
  erases: number;
  /** Reads that found the newest copy unreadable and fell back. */
  fallbacks: number;
}

/** Round `n` up to a multiple of `align`. */
export function roundUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** Bytes a record with a value of `length` occupies in flash. */
export function recordSpan(length: number, writeAlign: number): number {
  return roundUp(RECORD_HEADER + length, writeAlign);
}

/** Bytes the live set of `spaces` can occupy (every key at its largest, every copy). */
export function liveBytes(spaces: readonly SpaceSpec[], writeAlign: number): number {
  let n = 0;
  for (const s of spaces) n += s.keys * s.copies * recordSpan(s.maxValue, writeAlign);
  return n;
}

function checkSpace(s: SpaceSpec): void {
  if (typeof s !== "object" || s === null) throw new TypeError("space must be an object");
  if (!Number.isInteger(s.tag) || s.tag < 0 || s.tag > 255) throw new RangeError(`space ${s.name}: tag must be 0..255, got ${s.tag}`);
  if (!Number.isInteger(s.keys) || s.keys < 1 || s.keys > 256) throw new RangeError(`space ${s.name}: keys must be 1..256, got ${s.keys}`);
  if (!Number.isInteger(s.maxValue) || s.maxValue < 0 || s.maxValue > MAX_VALUE) {
    throw new RangeError(`space ${s.name}: maxValue must be 0..${MAX_VALUE}, got ${s.maxValue}`);
  }
  if (s.copies !== 1 && s.copies !== 2) throw new RangeError(`space ${s.name}: copies must be 1 or 2`);
}

export interface RecordStoreOptions {
  /** 1..255, written in every block header: blocks of another store id are foreign and get erased. */
  readonly storeId: number;
  readonly spaces: readonly SpaceSpec[];
}

/**
 * A record store over a whole Flash (give it a FlashWindow for a region).
 *
 * @example
 * const store = RecordStore.open(platform.flash.storage, { storeId: 1, spaces: [{ name: "cfg", tag: 1, keys: 1, maxValue: 512, copies: 2 }] });
 * const cfg = store.space(1);
 * cfg.put(0, bytes); cfg.get(0);
 */
export class RecordStore {
  readonly stats: StoreStats = { puts: 0, bytesAppended: 0, rotations: 0, recordsCopied: 0, bytesCopied: 0, erases: 0, fallbacks: 0 };
  private readonly blocks: number;
  private readonly blockLength: number;
  private readonly writeAlign: number;
  private readonly eraseValue: number;
  private readonly headerSize: number;
  private readonly spacesByTag: (SpaceSpec | undefined)[] = [];
  /** Epoch per block; -1 when the block holds no valid header. */
  private epochs: number[] = [];
  /** True when a block without a valid header was verified (or made) erased. */
  private spare: boolean[] = [];
  private head = -1;
  private headOffset = 0;
  private sealed = false;
  private nextSeq = 1;
  /** key → locations, newest first, at most `copies` long. Bounded by the spaces' key counts. */
  private readonly index = new Map<number, Loc[]>();

  private constructor(readonly flash: Flash, readonly storeId: number, readonly spaces: readonly SpaceSpec[]) {
    const g = flash.status();
    this.blockLength = g.blockLength;
    this.writeAlign = g.writeAlign;
    this.eraseValue = g.eraseValue;
    this.blocks = g.size / g.blockLength;
    this.headerSize = roundUp(BLOCK_HEADER, g.writeAlign);
    for (const s of spaces) {
      checkSpace(s);
      if (this.spacesByTag[s.tag]) throw new RangeError(`space tag ${s.tag} used twice`);
      this.spacesByTag[s.tag] = s;
    }
    if (!Number.isInteger(this.blocks) || this.blocks < 2) {
      throw new OtaError(Reason.STORE_GEOMETRY, `a record store needs >= 2 erase blocks, got ${this.blocks}`);
    }
    const capacity = this.blockLength - this.headerSize;
    const live = liveBytes(spaces, g.writeAlign);
    const largest = Math.max(...spaces.map((s) => recordSpan(s.maxValue, g.writeAlign)));
    if (live + largest > capacity) {
      throw new OtaError(Reason.STORE_GEOMETRY, `live set ${live} + one record ${largest} exceeds a block's capacity ${capacity}`);
    }
  }

  /**
   * Mount the store on `flash`: scan, repair what a power cut left, format
   * an empty or foreign region. Mutates flash only to repair or format.
   * @throws RangeError / TypeError for bad options; OtaError STORE_GEOMETRY when the spaces do not
   *   fit the geometry; STORE_CORRUPT for a state no sequence of cuts can produce; flash errors.
   */
  static open(flash: Flash, options: RecordStoreOptions): RecordStore {
    if (!Number.isInteger(options.storeId) || options.storeId < 1 || options.storeId > 255) {
      throw new RangeError(`storeId must be 1..255, got ${options.storeId}`);
    }
    if (!Array.isArray(options.spaces) || options.spaces.length === 0) throw new TypeError("spaces must be a non-empty array");
    const store = new RecordStore(flash, options.storeId, options.spaces.slice());
    store.mount();
    return store;
  }

  /** The view of the space with `tag`. @throws RangeError for an unknown tag. */
  space(tag: number): RecordSpace {
    const spec = this.spacesByTag[tag];
    if (!spec) throw new RangeError(`no space with tag ${tag}`);
    const store = this;
    return Object.freeze({
      spec,
      get: (key: number) => store.get(store.keyOf(spec, key)),
      put: (key: number, value: Uint8Array) => store.put(spec, store.keyOf(spec, key), value),
    });
  }

  /** Bytes free in the head block before the next rotation. */
  get headFree(): number {
    return this.sealed ? 0 : this.blockLength - this.headOffset;
  }

  private keyOf(spec: SpaceSpec, key: number): number {
    if (!Number.isInteger(key) || key < 0 || key >= spec.keys) throw new RangeError(`space ${spec.name}: key must be 0..${spec.keys - 1}, got ${key}`);
    return (spec.tag << 8) | key;
  }

  // ---- reading ------------------------------------------------------------

  private get(key: number): Uint8Array | undefined {
    const locs = this.index.get(key);
    if (!locs) return undefined;
    for (let i = 0; i < locs.length; i++) {
      const rec = this.readRecord(locs[i].block, locs[i].offset, true);
      if (rec && rec.key === key && rec.seq === locs[i].seq) {
        if (i > 0) this.stats.fallbacks++;
        return rec.value!;
      }
    }
    this.stats.fallbacks++;
    return undefined;
  }

  /**
   * Parse the record at `offset` of `block`; undefined when it is not a
   * complete valid record (erased, torn, foreign, bad CRC).
   */
  private readRecord(
    block: number,
    offset: number,
    withValue: boolean,
  ): { key: number; seq: number; length: number; span: number; value?: Uint8Array } | undefined {
    if (offset + RECORD_HEADER > this.blockLength) return undefined;
    const base = block * this.blockLength + offset;
    const h = this.flash.read(RECORD_HEADER, base);
    if (h[0] !== RECORD_MAGIC || h[1] !== FORMAT) return undefined;
    const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
    const key = v.getUint16(2, true);
    const seq = v.getUint32(4, true);
    const length = v.getUint16(8, true);
    if (length > MAX_VALUE || v.getUint16(10, true) !== 0 || seq === 0) return undefined;
    const span = recordSpan(length, this.writeAlign);
    if (offset + span > this.blockLength) return undefined;
    const value = length > 0 ? this.flash.read(length, base + RECORD_HEADER) : new Uint8Array(0);
    const crc = crc32Update(crc32Update(0, h, 0, 12), value);
    if (crc !== v.getUint32(12, true)) return undefined;
    return withValue ? { key, seq, length, span, value } : { key, seq, length, span };
  }

  private readBlockEpoch(block: number): number {
    const h = this.flash.read(BLOCK_HEADER, block * this.blockLength);
    const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
    if (v.getUint32(0, true) !== BLOCK_MAGIC || h[4] !== FORMAT || h[5] !== this.storeId || v.getUint16(6, true) !== 0) return -1;
    if (crc32Update(0, h, 0, 12) !== v.getUint32(12, true)) return -1;
    const epoch = v.getUint32(8, true);
    return epoch === 0 ? -1 : epoch;
  }

  /** True when `[from, blockLength)` of `block` reads as erased. Reads in <= 4 KiB chunks. */
  private isErased(block: number, from: number): boolean {
    const base = block * this.blockLength;
    for (let o = from; o < this.blockLength; o += READ_CHUNK) {
      const chunk = this.flash.read(Math.min(READ_CHUNK, this.blockLength - o), base + o);
      for (let i = 0; i < chunk.length; i++) if (chunk[i] !== this.eraseValue) return false;
    }
    return true;
  }

  // ---- mounting -----------------------------------------------------------

  private mount(): void {
    // A mount repairs at most: one sealed head (erased, then one more pass) — so two passes.
    for (let pass = 0; pass < 2; pass++) {
      if (this.mountPass()) return;
    }
    throw new OtaError(Reason.STORE_CORRUPT, "record store did not settle after repair");
  }

  /** One scan and repair. Returns false when it erased the head and must scan again. */
  private mountPass(): boolean {
    this.index.clear();
    this.nextSeq = 1;
    this.head = -1;
    this.sealed = false;
    this.epochs = [];
    this.spare = [];
    for (let b = 0; b < this.blocks; b++) {
      this.epochs.push(this.readBlockEpoch(b));
      this.spare.push(false);
    }
    const order: number[] = [];
    for (let b = 0; b < this.blocks; b++) if (this.epochs[b] >= 0) order.push(b);
    order.sort((a, b) => this.epochs[a] - this.epochs[b]);
    let headEnd = 0;
    for (const b of order) headEnd = this.scanBlock(b);
    for (let b = 0; b < this.blocks; b++) {
      if (this.epochs[b] >= 0) continue;
      if (!this.isErased(b, 0)) this.erase(b);
      this.spare[b] = true;
    }
    if (order.length === 0) {
      // Empty or foreign region: format.
      this.takeIntoUse(0, 1);
      return true;
    }
    this.head = order[order.length - 1];
    this.headOffset = headEnd;
    this.sealed = !this.isErased(this.head, headEnd);
    if (this.spare.indexOf(true) >= 0) return true;
    // No spare: a reclaim was interrupted (the head was taken into use, the oldest not yet erased).
    if (this.sealed) {
      // The cut tore a copy into the head: everything valid there is a copy of a record in the oldest block.
      for (const locs of this.index.values()) {
        for (const loc of locs) {
          if (loc.block === this.head && !loc.duplicated) {
            throw new OtaError(Reason.STORE_CORRUPT, "sealed head holds the only copy of a record and no block is spare");
          }
        }
      }
      this.erase(this.head);
      return false;
    }
    this.reclaim(order[0]);
    return true;
  }

  /** Index the valid records of `block`; returns the offset after the last one. */
  private scanBlock(block: number): number {
    let offset = this.headerSize;
    // Bounded: each step advances by at least one write unit.
    while (offset + RECORD_HEADER <= this.blockLength) {
      const rec = this.readRecord(block, offset, false);
      if (!rec) break;
      if (rec.seq >= this.nextSeq) this.nextSeq = rec.seq + 1;
      this.indexRecord(rec.key, rec.seq, block, offset, rec.length);
      offset += rec.span;
    }
    return offset;
  }

  private indexRecord(key: number, seq: number, block: number, offset: number, length: number): void {
    const spec = this.spacesByTag[key >> 8];
    // Keys of no space, or longer than the space allows: a format change left them; they are not live.
    if (!spec || (key & 0xff) >= spec.keys || length > spec.maxValue) return;
    let locs = this.index.get(key);
    if (!locs) {
      locs = [];
      this.index.set(key, locs);
    }
    for (const loc of locs) {
      if (loc.seq === seq) {
        // A copy made by a reclaim: same content; prefer the newer block.
        loc.block = block;
        loc.offset = offset;
        loc.duplicated = true;
        return;
      }
    }
    let i = 0;
    while (i < locs.length && locs[i].seq > seq) i++;
    locs.splice(i, 0, { seq, block, offset, length, duplicated: false });
    if (locs.length > spec.copies) locs.length = spec.copies;
  }

  // ---- writing ------------------------------------------------------------

  private put(spec: SpaceSpec, key: number, value: Uint8Array): void {
    if (!(value instanceof Uint8Array)) throw new TypeError(`space ${spec.name}: value must be a Uint8Array`);
    if (value.length > spec.maxValue) {
      throw new OtaError(Reason.STORE_TOO_LARGE, `space ${spec.name}: value of ${value.length} bytes exceeds ${spec.maxValue}`);
    }
    if (this.nextSeq > MAX_SEQ) throw new OtaError(Reason.STORE_FULL, "sequence numbers exhausted");
    const span = recordSpan(value.length, this.writeAlign);
    if (this.sealed || this.headOffset + span > this.blockLength) this.rotate();
    const seq = this.nextSeq++;
    const record = new Uint8Array(span).fill(this.eraseValue);
    const v = new DataView(record.buffer);
    record[0] = RECORD_MAGIC;
    record[1] = FORMAT;
    v.setUint16(2, key, true);
    v.setUint32(4, seq, true);
    v.setUint16(8, value.length, true);
    v.setUint16(10, 0, true);
    record.set(value, RECORD_HEADER);
    v.setUint32(12, crc32Update(crc32Update(0, record, 0, 12), value), true);
    const offset = this.headOffset;
    this.appendRaw(record);
    this.stats.puts++;
    this.stats.bytesAppended += span;
    this.indexRecord(key, seq, this.head, offset, value.length);
  }

  /** Program `bytes` at the head's append offset. On a flash error the head is sealed. */
  private appendRaw(bytes: Uint8Array): void {
    if (this.headOffset + bytes.length > this.blockLength) {
      throw new OtaError(Reason.STORE_CORRUPT, `append of ${bytes.length} past the head block`);
    }
    try {
      this.flash.write(bytes, this.head * this.blockLength + this.headOffset);
    } catch (e) {
      // Whatever was programmed is unknown: never append here again.
      this.sealed = true;
      throw e;
    }
    this.headOffset += bytes.length;
  }

  /** Take a spare into use as the new head; reclaim the oldest block if no spare is left. */
  private rotate(): void {
    const spare = this.spare.indexOf(true);
    if (spare < 0) throw new OtaError(Reason.STORE_CORRUPT, "no spare block to rotate into");
    let maxEpoch = 0;
    for (const e of this.epochs) if (e > maxEpoch) maxEpoch = e;
    if (maxEpoch >= MAX_SEQ) throw new OtaError(Reason.STORE_FULL, "block epochs exhausted");
    this.stats.rotations++;
    this.takeIntoUse(spare, maxEpoch + 1);
    if (this.spare.indexOf(true) >= 0) return;
    let oldest = -1;
    for (let b = 0; b < this.blocks; b++) {
      if (b !== this.head && this.epochs[b] >= 0 && (oldest < 0 || this.epochs[b] < this.epochs[oldest])) oldest = b;
    }
    this.reclaim(oldest);
  }

  /** Write a block header on an erased block: it becomes the head. */
  private takeIntoUse(block: number, epoch: number): void {
    const header = new Uint8Array(this.headerSize).fill(this.eraseValue);
    const v = new DataView(header.buffer);
    v.setUint32(0, BLOCK_MAGIC, true);
    header[4] = FORMAT;
    header[5] = this.storeId;
    v.setUint16(6, 0, true);
    v.setUint32(8, epoch, true);
    v.setUint32(12, crc32Update(0, header, 0, 12), true);
    this.spare[block] = false;
    this.head = block;
    this.headOffset = 0;
    this.sealed = false;
    this.appendRaw(header);
    this.epochs[block] = epoch;
  }

  /** Copy the live records of `block` into the head (same key and seq), then erase it. */
  private reclaim(block: number): void {
    for (const [key, locs] of this.index) {
      for (let i = 0; i < locs.length; i++) {
        const loc = locs[i];
        if (loc.block !== block) continue;
        const rec = this.readRecord(block, loc.offset, false);
        if (!rec || rec.key !== key || rec.seq !== loc.seq) {
          // Unreadable since the mount: do not carry it forward.
          locs.splice(i--, 1);
          continue;
        }
        const raw = this.flash.read(rec.span, block * this.blockLength + loc.offset);
        const offset = this.headOffset;
        this.appendRaw(raw);
        loc.block = this.head;
        loc.offset = offset;
        this.stats.recordsCopied++;
        this.stats.bytesCopied += rec.span;
      }
      if (locs.length === 0) this.index.delete(key);
    }
    this.erase(block);
    this.epochs[block] = -1;
    this.spare[block] = true;
  }

  private erase(block: number): void {
    this.flash.eraseBlock(block);
    this.stats.erases++;
  }
}
