/**
 * The device's settings: typed values, defaults, a versioned binary encoding,
 * and the three sets an operator deals with, as on USR devices:
 *
 * - pending: what `AT+X=` commands edit and `AT+X?` shows;
 * - saved: what is in flash (`AT+S` writes pending there, power-safely);
 * - active: what the running firmware uses — the saved set as it was at
 *   boot. It changes only on a restart (`AT+Z`, or any reset).
 *
 * Storage: one record of the settings space (two copies kept: the newest and
 * the previous, each with its sequence number and CRC-32), so a power cut
 * during `AT+S` leaves exactly the old or the new set.
 */
import { pbkdf2 } from "@noble/hashes/pbkdf2.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { OtaError, Reason, isOtaError } from "../errors";
import { utf8Encode } from "../util/bytes";
import type { RecordSpace } from "./records";
import { P256_POINT_LENGTH } from "./keyid";

/** When updates may be installed: always, or between two minutes of the day (may cross midnight). */
export interface MaintenanceWindow {
  readonly always: boolean;
  /** 0..1439, minutes after midnight (device time); ignored when `always`. */
  readonly startMin: number;
  /** 0..1439, != startMin; the window is [start, end). */
  readonly endMin: number;
}

/** A password, stored only as PBKDF2-HMAC-SHA256(password, salt). */
export interface PasswordHash {
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
}

export interface Settings {
  /** 1..32 of [A-Za-z0-9_-] (it is the MQTT client id and a topic segment: no dots, slashes or wildcards). */
  readonly deviceId: string;
  /** Update server (MQTT broker) host name or IPv4 address: 1..64 of [A-Za-z0-9.-]. */
  readonly serverHost: string;
  /** 1..65535. */
  readonly serverPort: number;
  readonly tls: boolean;
  /** SHA-256 of the CA certificate (DER) to pin, 32 bytes; undefined: the platform's trust store. */
  readonly caFingerprint: Uint8Array | undefined;
  readonly heartbeatEnabled: boolean;
  /** Seconds, 10..86400. */
  readonly heartbeatIntervalS: number;
  /** Trusted release-signing keys: uncompressed P-256 points, at most MAX_TRUSTED_KEYS. */
  readonly trustedKeys: readonly Uint8Array[];
  /** Provisioning lock: every console command that changes settings, trust, updates or storage is refused while set (src/at/commands.ts). */
  readonly locked: boolean;
  /** Set by the first AT+LOCK; needed by AT+UNLOCK. */
  readonly password: PasswordHash | undefined;
  /** Minimum supply voltage for an install, mV; 0 = no check. */
  readonly minSupplyMv: number;
  readonly window: MaintenanceWindow;
}

/**
 * The record format written. Format 2 is format 1 followed by the unlock gate
 * (2 bytes); format 1 records (no gate) still decode, with a clear gate.
 */
export const SETTINGS_FORMAT = 2;
export const DEVICE_ID_MAX = 32;
export const HOST_MAX = 64;
export const MAX_TRUSTED_KEYS = 4;
export const HEARTBEAT_MIN_S = 10;
export const HEARTBEAT_MAX_S = 86400;
export const CA_FINGERPRINT_LENGTH = 32;
export const SALT_LENGTH = 16;
export const PASSWORD_HASH_LENGTH = 32;
/** Shortest password AT+LOCK sets. */
export const PASSWORD_MIN = 8;
/** Shortest password AT+UNLOCK accepts: devices locked by older firmware (4..7 characters) can still be unlocked. */
export const PASSWORD_UNLOCK_MIN = 4;
export const PASSWORD_MAX = 32;
/** PBKDF2 iterations: ~1024 SHA-256 compressions x2 per attempt; attempts are also rate-limited by the console. */
export const PASSWORD_ITERATIONS = 1024;
export const MINUTES_PER_DAY = 1440;

const FLAG_TLS = 1;
const FLAG_HEARTBEAT = 2;
const FLAG_LOCKED = 4;
const FLAG_ALWAYS = 8;
const FLAG_CA = 16;
const FLAG_PASSWORD = 32;
const FLAGS_KNOWN = 63;

/**
 * The console's unlock attempt counter, kept in the settings record so that a
 * reset gives no fresh guesses. `failures`: wrong passwords since the last
 * success or lock-out (0..255); `lockedOut`: the attempts ran out and the
 * lock-out window applies (it restarts in full at every boot).
 */
export interface UnlockGate {
  readonly failures: number;
  readonly lockedOut: boolean;
}

export const CLEAR_GATE: UnlockGate = Object.freeze({ failures: 0, lockedOut: false });
const GATE_LENGTH = 2;
const GATE_LOCKED_OUT = 1;

function checkGate(g: UnlockGate): UnlockGate {
  if (typeof g !== "object" || g === null || !isInt(g.failures, 0, 255) || typeof g.lockedOut !== "boolean") {
    throw new RangeError("unlock gate: failures 0..255 and a lockedOut flag");
  }
  return Object.freeze({ failures: g.failures, lockedOut: g.lockedOut });
}

const DEVICE_ID_RE = /^[A-Za-z0-9_-]{1,32}$/;
const HOST_RE = /^[A-Za-z0-9.-]{1,64}$/;

/** Factory defaults for a device id. The target may override any field. */
export function defaultSettings(deviceId: string, overrides: Partial<Settings> = {}): Settings {
  return checkSettings({
    deviceId,
    serverHost: "127.0.0.1",
    serverPort: 8883,
    tls: true,
    caFingerprint: undefined,
    heartbeatEnabled: true,
    heartbeatIntervalS: 60,
    trustedKeys: [],
    locked: false,
    password: undefined,
    minSupplyMv: 0,
    window: { always: true, startMin: 0, endMin: 0 },
    ...overrides,
  });
}

function isInt(v: unknown, min: number, max: number): boolean {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

/** True when `s` is a valid device id. */
export function isDeviceId(s: string): boolean {
  return typeof s === "string" && DEVICE_ID_RE.test(s);
}

/** True when `s` is a valid server host. */
export function isHost(s: string): boolean {
  return typeof s === "string" && HOST_RE.test(s) && !s.startsWith(".") && !s.startsWith("-");
}

/**
 * Validate every field; returns a frozen copy.
 * @throws RangeError naming the first bad field.
 */
export function checkSettings(s: Settings): Settings {
  if (!isDeviceId(s.deviceId)) throw new RangeError(`deviceId must be 1..${DEVICE_ID_MAX} of [A-Za-z0-9_-]`);
  if (!isHost(s.serverHost)) throw new RangeError(`serverHost must be 1..${HOST_MAX} of [A-Za-z0-9.-]`);
  if (!isInt(s.serverPort, 1, 65535)) throw new RangeError("serverPort must be 1..65535");
  if (typeof s.tls !== "boolean") throw new TypeError("tls must be a boolean");
  if (s.caFingerprint !== undefined && (!(s.caFingerprint instanceof Uint8Array) || s.caFingerprint.length !== CA_FINGERPRINT_LENGTH)) {
    throw new RangeError(`caFingerprint must be ${CA_FINGERPRINT_LENGTH} bytes`);
  }
  if (typeof s.heartbeatEnabled !== "boolean") throw new TypeError("heartbeatEnabled must be a boolean");
  if (!isInt(s.heartbeatIntervalS, HEARTBEAT_MIN_S, HEARTBEAT_MAX_S)) {
    throw new RangeError(`heartbeatIntervalS must be ${HEARTBEAT_MIN_S}..${HEARTBEAT_MAX_S}`);
  }
  if (!Array.isArray(s.trustedKeys) || s.trustedKeys.length > MAX_TRUSTED_KEYS) throw new RangeError(`at most ${MAX_TRUSTED_KEYS} trusted keys`);
  for (const k of s.trustedKeys) {
    if (!(k instanceof Uint8Array) || k.length !== P256_POINT_LENGTH || k[0] !== 0x04) throw new RangeError("trusted keys must be 65-byte uncompressed points");
  }
  if (typeof s.locked !== "boolean") throw new TypeError("locked must be a boolean");
  if (s.password !== undefined) {
    if (!(s.password.salt instanceof Uint8Array) || s.password.salt.length !== SALT_LENGTH) throw new RangeError(`password salt must be ${SALT_LENGTH} bytes`);
    if (!(s.password.hash instanceof Uint8Array) || s.password.hash.length !== PASSWORD_HASH_LENGTH) {
      throw new RangeError(`password hash must be ${PASSWORD_HASH_LENGTH} bytes`);
    }
  }
  if (s.locked && s.password === undefined) throw new RangeError("locked needs a password");
  if (!isInt(s.minSupplyMv, 0, 65535)) throw new RangeError("minSupplyMv must be 0..65535");
  const w = s.window;
  if (typeof w !== "object" || w === null || typeof w.always !== "boolean") throw new TypeError("window must be an object");
  if (!isInt(w.startMin, 0, MINUTES_PER_DAY - 1) || !isInt(w.endMin, 0, MINUTES_PER_DAY - 1)) throw new RangeError("window minutes must be 0..1439");
  if (!w.always && w.startMin === w.endMin) throw new RangeError("window start and end must differ");
  return Object.freeze({
    ...s,
    trustedKeys: Object.freeze(s.trustedKeys.slice()),
    window: Object.freeze({ always: w.always, startMin: w.always ? 0 : w.startMin, endMin: w.always ? 0 : w.endMin }),
  });
}

/** Largest encoded size (fits SETTINGS_SPACE.maxValue). */
export const SETTINGS_MAX_ENCODED =
  GATE_LENGTH + 14 + 1 + DEVICE_ID_MAX + 1 + HOST_MAX + CA_FINGERPRINT_LENGTH + SALT_LENGTH + PASSWORD_HASH_LENGTH + 1 + MAX_TRUSTED_KEYS * P256_POINT_LENGTH;

function ascii(s: string): Uint8Array {
  return utf8Encode(s); // validated ASCII: one byte per char
}

/**
 * Encode (format 2, little-endian): version u8, flags u8, port u16,
 * heartbeat s u32, min supply mV u16, window start u16, window end u16,
 * device id (u8 length + ASCII), host (u8 length + ASCII), [CA fingerprint 32],
 * [salt 16, hash 32], key count u8, keys (65 bytes each), then the unlock
 * gate: failures u8, gate flags u8 (1: locked out). Format 1 is the same
 * without the gate.
 * @throws RangeError for invalid settings or gate.
 */
export function encodeSettings(input: Settings, gateIn: UnlockGate = CLEAR_GATE): Uint8Array {
  const s = checkSettings(input);
  const gate = checkGate(gateIn);
  const id = ascii(s.deviceId);
  const host = ascii(s.serverHost);
  const size =
    14 + 1 + id.length + 1 + host.length + (s.caFingerprint ? CA_FINGERPRINT_LENGTH : 0) + (s.password ? SALT_LENGTH + PASSWORD_HASH_LENGTH : 0) + 1 +
    s.trustedKeys.length * P256_POINT_LENGTH + GATE_LENGTH;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  let flags = 0;
  if (s.tls) flags |= FLAG_TLS;
  if (s.heartbeatEnabled) flags |= FLAG_HEARTBEAT;
  if (s.locked) flags |= FLAG_LOCKED;
  if (s.window.always) flags |= FLAG_ALWAYS;
  if (s.caFingerprint) flags |= FLAG_CA;
  if (s.password) flags |= FLAG_PASSWORD;
  out[0] = SETTINGS_FORMAT;
  out[1] = flags;
  v.setUint16(2, s.serverPort, true);
  v.setUint32(4, s.heartbeatIntervalS, true);
  v.setUint16(8, s.minSupplyMv, true);
  v.setUint16(10, s.window.startMin, true);
  v.setUint16(12, s.window.endMin, true);
  let o = 14;
  out[o++] = id.length;
  out.set(id, o);
  o += id.length;
  out[o++] = host.length;
  out.set(host, o);
  o += host.length;
  if (s.caFingerprint) {
    out.set(s.caFingerprint, o);
    o += CA_FINGERPRINT_LENGTH;
  }
  if (s.password) {
    out.set(s.password.salt, o);
    o += SALT_LENGTH;
    out.set(s.password.hash, o);
    o += PASSWORD_HASH_LENGTH;
  }
  out[o++] = s.trustedKeys.length;
  for (const k of s.trustedKeys) {
    out.set(k, o);
    o += P256_POINT_LENGTH;
  }
  out[o++] = gate.failures;
  out[o++] = gate.lockedOut ? GATE_LOCKED_OUT : 0;
  return out;
}

function corrupt(why: string): OtaError {
  return new OtaError(Reason.STORE_CORRUPT, `settings: ${why}`);
}

/**
 * Decode strictly: unknown format or flags, bad lengths, values out of range
 * and trailing bytes are errors.
 * @throws OtaError STORE_CORRUPT.
 */
export function decodeSettings(b: Uint8Array): Settings {
  return decodeSettingsRecord(b).settings;
}

/**
 * Decode a settings record with its unlock gate (clear for format 1).
 * @throws OtaError STORE_CORRUPT.
 */
export function decodeSettingsRecord(b: Uint8Array): { readonly settings: Settings; readonly gate: UnlockGate } {
  if (!(b instanceof Uint8Array)) throw new TypeError("settings bytes must be a Uint8Array");
  if (b.length < 17) throw corrupt("truncated");
  if (b[0] !== 1 && b[0] !== SETTINGS_FORMAT) throw corrupt(`unknown format ${b[0]}`);
  const flags = b[1];
  if ((flags & ~FLAGS_KNOWN) !== 0) throw corrupt("unknown flags");
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 14;
  const need = (n: number) => {
    if (o + n > b.length) throw corrupt("truncated");
  };
  const text = (): string => {
    need(1);
    const n = b[o++];
    need(n);
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(b[o + i]);
    o += n;
    return s;
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const out = b.slice(o, o + n);
    o += n;
    return out;
  };
  const deviceId = text();
  const serverHost = text();
  const caFingerprint = flags & FLAG_CA ? bytes(CA_FINGERPRINT_LENGTH) : undefined;
  const password = flags & FLAG_PASSWORD ? { salt: bytes(SALT_LENGTH), hash: bytes(PASSWORD_HASH_LENGTH) } : undefined;
  need(1);
  const count = b[o++];
  if (count > MAX_TRUSTED_KEYS) throw corrupt("too many keys");
  const trustedKeys: Uint8Array[] = [];
  for (let i = 0; i < count; i++) trustedKeys.push(bytes(P256_POINT_LENGTH));
  let gate = CLEAR_GATE;
  if (b[0] === SETTINGS_FORMAT) {
    const g = bytes(GATE_LENGTH);
    if ((g[1] & ~GATE_LOCKED_OUT) !== 0) throw corrupt("unknown gate flags");
    gate = Object.freeze({ failures: g[0], lockedOut: g[1] === GATE_LOCKED_OUT });
  }
  if (o !== b.length) throw corrupt("trailing bytes");
  const always = (flags & FLAG_ALWAYS) !== 0;
  try {
    const settings = checkSettings({
      deviceId,
      serverHost,
      serverPort: v.getUint16(2, true),
      tls: (flags & FLAG_TLS) !== 0,
      caFingerprint,
      heartbeatEnabled: (flags & FLAG_HEARTBEAT) !== 0,
      heartbeatIntervalS: v.getUint32(4, true),
      trustedKeys,
      locked: (flags & FLAG_LOCKED) !== 0,
      password,
      minSupplyMv: v.getUint16(8, true),
      window: { always, startMin: v.getUint16(10, true), endMin: v.getUint16(12, true) },
    });
    return Object.freeze({ settings, gate });
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) throw corrupt(e.message);
    throw e;
  }
}

/** True when two settings encode to the same bytes. */
export function sameSettings(a: Settings, b: Settings): boolean {
  const x = encodeSettings(a);
  const y = encodeSettings(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * PBKDF2-HMAC-SHA256 of a password (UTF-8) with `salt`.
 * @throws RangeError for a salt of the wrong length.
 */
export function hashPassword(password: string, salt: Uint8Array): Uint8Array {
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_LENGTH) throw new RangeError(`salt must be ${SALT_LENGTH} bytes`);
  return pbkdf2(sha256, utf8Encode(password), salt, { c: PASSWORD_ITERATIONS, dkLen: PASSWORD_HASH_LENGTH });
}

/**
 * A device-unique salt. The HAL has no random source: the salt mixes the
 * device id, the uptime and a caller counter, which is what a salt is for
 * (no two devices share a hash for one password); secrecy is not needed.
 */
export function makeSalt(deviceId: string, uptimeMs: number, nonce: number): Uint8Array {
  return sha256(utf8Encode(`xs-ota salt\u0000${deviceId}\u0000${uptimeMs}\u0000${nonce}`)).slice(0, SALT_LENGTH);
}

/** Compare a password with a stored hash in time independent of where they differ. */
export function checkPassword(password: string, stored: PasswordHash): boolean {
  const h = hashPassword(password, stored.salt);
  let diff = 0;
  for (let i = 0; i < PASSWORD_HASH_LENGTH; i++) diff |= h[i] ^ stored.hash[i];
  return diff === 0;
}

/** Where the settings at boot came from. */
export type SettingsSource = "saved" | "defaults";

/**
 * The pending / saved / active sets over the settings record.
 * @example
 * const m = new SettingsManager(storage.settings, defaultSettings("dev-1"));
 * m.edit({ heartbeatIntervalS: 30 }); m.save();   // saved; active after restart
 */
export class SettingsManager {
  /** What the running firmware uses: the saved set at construction (boot). */
  readonly active: Settings;
  readonly source: SettingsSource;
  private savedSet: Settings;
  private pendingSet: Settings;
  private gateState: UnlockGate = CLEAR_GATE;

  /**
   * Load the saved set (defaults when none, or when it does not decode).
   * @throws flash errors; PowerCut propagates.
   */
  constructor(private readonly space: RecordSpace, readonly factory: Settings, private readonly key = 0) {
    checkSettings(factory);
    let loaded: Settings | undefined;
    const bytes = space.get(key);
    if (bytes) {
      try {
        const record = decodeSettingsRecord(bytes);
        loaded = record.settings;
        this.gateState = record.gate;
      } catch (e) {
        if (!isOtaError(e)) throw e;
      }
    }
    this.source = loaded ? "saved" : "defaults";
    this.active = loaded ?? factory;
    this.savedSet = this.active;
    this.pendingSet = this.active;
  }

  get saved(): Settings {
    return this.savedSet;
  }

  get pending(): Settings {
    return this.pendingSet;
  }

  /** The saved unlock attempt counter (AT+UNLOCK). */
  get gate(): UnlockGate {
    return this.gateState;
  }

  /**
   * Save the unlock gate at once, with the saved set unchanged (power-safe:
   * the old or the new counter). @throws flash and store errors.
   */
  saveGate(gate: UnlockGate): void {
    const g = checkGate(gate);
    this.space.put(this.key, encodeSettings(this.savedSet, g));
    this.gateState = g;
  }

  /** True when pending differs from saved (AT+S has something to write). */
  get dirty(): boolean {
    return !sameSettings(this.pendingSet, this.savedSet);
  }

  /** Change the pending set. @throws RangeError / TypeError for invalid values. */
  edit(patch: Partial<Settings>): void {
    this.pendingSet = checkSettings({ ...this.pendingSet, ...patch });
  }

  /** Drop pending edits. */
  revert(): void {
    this.pendingSet = this.savedSet;
  }

  /** Write pending to flash (power-safe: old or new). @throws flash and store errors. */
  save(): void {
    this.space.put(this.key, encodeSettings(this.pendingSet, this.gateState));
    this.savedSet = this.pendingSet;
  }

  /**
   * Apply `patch` to both the saved and the pending set at once (the lock
   * state must not wait for AT+S). Other pending edits stay pending. With
   * `gate`, the unlock gate is written in the same record (one flash update).
   */
  saveNow(patch: Partial<Settings>, gate: UnlockGate = this.gateState): void {
    const saved = checkSettings({ ...this.savedSet, ...patch });
    const pending = checkSettings({ ...this.pendingSet, ...patch });
    const g = checkGate(gate);
    this.space.put(this.key, encodeSettings(saved, g));
    this.savedSet = saved;
    this.pendingSet = pending;
    this.gateState = g;
  }

  /** Save the factory defaults as both saved and pending. */
  factoryReset(): void {
    this.space.put(this.key, encodeSettings(this.factory, this.gateState));
    this.savedSet = this.factory;
    this.pendingSet = this.factory;
  }
}
