/**
 * The audit log: a bounded, power-safe ring of what happened to the device
 * (boots, settings saved, lock changes, key changes, update outcomes), each
 * with its reason code. Entry `i` (0, 1, 2, … for the device's life) is
 * stored under key `i mod capacity` of the audit space, so appending entry
 * `i` overwrites entry `i - capacity`: the ring needs no head pointer, and a
 * power cut during an append leaves the log with or without that entry.
 */
import { OtaError, Reason, isOtaError, type ReasonCode } from "../errors";
import type { ImageVersion } from "../image/format";
import type { RecordSpace } from "./records";

/**
 * Event codes. 1..99: console and storage; 100..199: the update agent
 * (its owner adds them here); never renumber.
 */
export const AuditEvent = Object.freeze({
  BOOT: 1,
  SETTINGS_SAVED: 2,
  FACTORY_RESET: 3,
  LOCKED: 4,
  UNLOCKED: 5,
  UNLOCK_REFUSED: 6,
  KEY_ADDED: 7,
  KEY_REMOVED: 8,
  RESTART: 9,
  /** The update server's TLS chain did not contain the pinned CA (reason TLS_PIN_MISMATCH); logged once until a connection succeeds. */
  TLS_PIN_REFUSED: 10,
});

/** One audit entry. */
export interface AuditEntry {
  /** Index in the device's life: 0, 1, 2, … */
  readonly seq: number;
  /** Uptime when it happened, ms (< 2^48). */
  readonly uptimeMs: number;
  /** Unix seconds when known (the cloud's time), else 0. */
  readonly unixS: number;
  /** An AuditEvent code. */
  readonly event: number;
  /** Version before / after (zero version when not applicable). */
  readonly from: ImageVersion;
  readonly to: ImageVersion;
  /** A Reason code (0 = ok). */
  readonly reason: ReasonCode | number;
}

export type NewAuditEntry = Omit<AuditEntry, "seq" | "from" | "to"> & { from?: ImageVersion; to?: ImageVersion };

export const AUDIT_FORMAT = 1;
/** Encoded entry size. */
export const AUDIT_ENTRY_SIZE = 36;
/** Most entries one `read` returns. */
export const AUDIT_READ_MAX = 16;

const ZERO_VERSION: ImageVersion = Object.freeze({ major: 0, minor: 0, revision: 0, build: 0 });

function putVersion(v: DataView, o: number, ver: ImageVersion): void {
  v.setUint8(o, ver.major);
  v.setUint8(o + 1, ver.minor);
  v.setUint16(o + 2, ver.revision, true);
  v.setUint32(o + 4, ver.build, true);
}

function getVersion(v: DataView, o: number): ImageVersion {
  return Object.freeze({ major: v.getUint8(o), minor: v.getUint8(o + 1), revision: v.getUint16(o + 2, true), build: v.getUint32(o + 4, true) });
}

function checkVersion(ver: ImageVersion, title: string): void {
  if (
    !Number.isInteger(ver.major) || ver.major < 0 || ver.major > 255 ||
    !Number.isInteger(ver.minor) || ver.minor < 0 || ver.minor > 255 ||
    !Number.isInteger(ver.revision) || ver.revision < 0 || ver.revision > 0xffff ||
    !Number.isInteger(ver.build) || ver.build < 0 || ver.build > 0xffffffff
  ) {
    throw new RangeError(`${title} is not an MCUboot version`);
  }
}

/**
 * Encode (format 1, little-endian, 36 bytes): format u8, 0 u8, event u16,
 * seq u32, uptime ms u48 (u32 low, u16 high), reason u16, unix s u32,
 * from version (u8 u8 u16 u32), to version.
 * @throws RangeError for out-of-range fields.
 */
export function encodeAuditEntry(e: AuditEntry): Uint8Array {
  if (!Number.isInteger(e.seq) || e.seq < 0 || e.seq > 0xffffffff) throw new RangeError("seq must be a u32");
  if (!Number.isInteger(e.uptimeMs) || e.uptimeMs < 0 || e.uptimeMs >= 2 ** 48) throw new RangeError("uptimeMs must be a u48");
  if (!Number.isInteger(e.unixS) || e.unixS < 0 || e.unixS > 0xffffffff) throw new RangeError("unixS must be a u32");
  if (!Number.isInteger(e.event) || e.event < 0 || e.event > 0xffff) throw new RangeError("event must be a u16");
  if (!Number.isInteger(e.reason) || e.reason < 0 || e.reason > 0xffff) throw new RangeError("reason must be a u16");
  checkVersion(e.from, "from");
  checkVersion(e.to, "to");
  const out = new Uint8Array(AUDIT_ENTRY_SIZE);
  const v = new DataView(out.buffer);
  out[0] = AUDIT_FORMAT;
  v.setUint16(2, e.event, true);
  v.setUint32(4, e.seq, true);
  v.setUint32(8, e.uptimeMs % 2 ** 32, true);
  v.setUint16(12, Math.floor(e.uptimeMs / 2 ** 32), true);
  v.setUint16(14, e.reason, true);
  v.setUint32(16, e.unixS, true);
  putVersion(v, 20, e.from);
  putVersion(v, 28, e.to);
  return out;
}

/** Decode an entry. @throws OtaError STORE_CORRUPT. */
export function decodeAuditEntry(b: Uint8Array): AuditEntry {
  if (b.length !== AUDIT_ENTRY_SIZE || b[0] !== AUDIT_FORMAT || b[1] !== 0) throw new OtaError(Reason.STORE_CORRUPT, "audit entry malformed");
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Object.freeze({
    seq: v.getUint32(4, true),
    uptimeMs: v.getUint32(8, true) + v.getUint16(12, true) * 2 ** 32,
    unixS: v.getUint32(16, true),
    event: v.getUint16(2, true),
    reason: v.getUint16(14, true),
    from: getVersion(v, 20),
    to: getVersion(v, 28),
  });
}

/**
 * The ring over an audit RecordSpace (its key count is the capacity).
 * @example
 * const log = new AuditLog(storage.audit);
 * log.append({ uptimeMs: clock.now(), unixS: 0, event: AuditEvent.BOOT, reason: Reason.OK });
 * log.read(Math.max(0, log.count - 4), 4);
 */
export class AuditLog {
  private next = 0;

  /**
   * Find the newest entry (reads every slot once: `capacity` record reads).
   * @throws flash errors; PowerCut propagates.
   */
  constructor(private readonly space: RecordSpace) {
    if (space.spec.maxValue < AUDIT_ENTRY_SIZE) throw new RangeError(`audit space values must hold ${AUDIT_ENTRY_SIZE} bytes`);
    for (let k = 0; k < space.spec.keys; k++) {
      const e = this.slot(k);
      if (e && e.seq + 1 > this.next) this.next = e.seq + 1;
    }
  }

  /** Entries ever appended (the next entry's seq). */
  get count(): number {
    return this.next;
  }

  /** Entries kept. */
  get capacity(): number {
    return this.space.spec.keys;
  }

  /** Index of the oldest entry still kept. */
  get first(): number {
    return Math.max(0, this.next - this.capacity);
  }

  /**
   * Append an entry; returns it with its seq.
   * @throws RangeError for bad fields; OtaError STORE_FULL after 2^32 entries; flash errors.
   */
  append(entry: NewAuditEntry): AuditEntry {
    if (this.next > 0xffffffff) throw new OtaError(Reason.STORE_FULL, "audit sequence exhausted");
    const full: AuditEntry = Object.freeze({
      seq: this.next,
      uptimeMs: entry.uptimeMs,
      unixS: entry.unixS,
      event: entry.event,
      reason: entry.reason,
      from: entry.from ?? ZERO_VERSION,
      to: entry.to ?? ZERO_VERSION,
    });
    this.space.put(full.seq % this.capacity, encodeAuditEntry(full));
    this.next++;
    return full;
  }

  /**
   * Entries with index in `[fromIndex, fromIndex + count)` that are still
   * kept, oldest first; at most AUDIT_READ_MAX.
   * @throws RangeError for a negative or non-integer argument.
   */
  read(fromIndex: number, count: number): AuditEntry[] {
    if (!Number.isInteger(fromIndex) || fromIndex < 0) throw new RangeError("fromIndex must be a non-negative integer");
    if (!Number.isInteger(count) || count < 0) throw new RangeError("count must be a non-negative integer");
    const out: AuditEntry[] = [];
    const end = Math.min(this.next, fromIndex + Math.min(count, AUDIT_READ_MAX));
    for (let i = Math.max(fromIndex, this.first); i < end; i++) {
      const e = this.slot(i % this.capacity);
      if (e && e.seq === i) out.push(e);
    }
    return out;
  }

  private slot(key: number): AuditEntry | undefined {
    const bytes = this.space.get(key);
    if (!bytes) return undefined;
    try {
      return decodeAuditEntry(bytes);
    } catch (e) {
      if (isOtaError(e)) return undefined;
      throw e;
    }
  }
}
