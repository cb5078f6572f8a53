/**
 * The HAL contract: one narrow interface per peripheral, bundled as a Platform
 * that a target builds and hands to `new Agent(platform, config)`.
 *
 * Rules for every implementation (mock, Node adapter, Moddable adapter):
 * - Offsets are relative to the partition the object stands for.
 * - Errors are `OtaError` with a HAL reason code (src/errors.ts, range 1..49).
 *   Anything else thrown out of a HAL call (the mock's `PowerCut`, a device
 *   reset) is not an error the core may handle: core code catches only
 *   `OtaError` and lets every other exception propagate.
 * - Calls are synchronous unless they take a callback; callbacks are never
 *   invoked re-entrantly from inside the call that registered them.
 *
 * This file must compile with no Node or DOM types: it runs on XS.
 */

/** Geometry of a flash partition, as ECMA-419 `embedded:storage/flash` reports it. */
export interface FlashStatus {
  /** Partition size in bytes; a whole number of blocks. */
  readonly size: number;
  /** Erase block (sector) length in bytes. */
  readonly blockLength: number;
  /** Write unit: offsets and lengths of writes are multiples of it. */
  readonly writeAlign: number;
  /** The byte value read back from erased flash (0xFF on NOR, sometimes 0x00). */
  readonly eraseValue: number;
}

/**
 * A flash partition (shaped like ECMA-419 `embedded:storage/flash`).
 * Never assume 0xFF or a sector size: read them from `status()`.
 */
export interface Flash {
  /** Geometry. Never throws; constant for the object's life. */
  status(): FlashStatus;
  /**
   * Read `byteLength` bytes at `byteOffset` into a new array.
   * Preconditions (the core guarantees): integers, `0 <= byteOffset`,
   * `byteOffset + byteLength <= size`, `byteLength <= 4096` (bounded RAM).
   * @throws OtaError FLASH_RANGE out of range; FLASH_IO device error.
   */
  read(byteLength: number, byteOffset: number): Uint8Array;
  /**
   * Program `data` at `byteOffset`. The target bytes must be erased.
   * Preconditions: offset and length multiples of `writeAlign`; in range;
   * every target byte erased since its last write.
   * @throws OtaError FLASH_ALIGN misaligned; FLASH_RANGE out of range;
   *   FLASH_NOT_ERASED target not erased (strict implementations); FLASH_IO.
   */
  write(data: Uint8Array, byteOffset: number): void;
  /**
   * Erase block number `block` (byte offset `block * blockLength`), setting
   * every byte to `eraseValue`.
   * @throws OtaError FLASH_RANGE block out of range; FLASH_IO.
   */
  eraseBlock(block: number): void;
}

/** Why the device last came out of reset. */
export type ResetCause = "power-on" | "watchdog" | "software" | "pin" | "brownout" | "unknown";

/**
 * The hardware watchdog. Once started it cannot be stopped (as on the
 * STM32H7 IWDG): a missed feed resets the device with cause "watchdog".
 */
export interface Watchdog {
  /**
   * Arm with a timeout. Calling again changes the timeout and feeds.
   * Preconditions: `1 <= timeoutMs <= 32000` (the IWDG's range at its slowest prescaler).
   * @throws OtaError BAD_ARGUMENT outside that range.
   */
  start(timeoutMs: number): void;
  /** Restart the countdown. A no-op before `start`. Never throws. */
  feed(): void;
  /** The armed timeout in ms, or 0 when not started. */
  readonly timeoutMs: number;
}

/**
 * A protected counter that can only go up (the anti-rollback security counter).
 * Power-safe: after a cut during `advance` it reads either the old or the new value.
 */
export interface MonotonicCounter {
  /** The current value. @throws OtaError COUNTER_IO. */
  read(): number;
  /**
   * Raise the counter to `value`. Equal to the current value is a no-op.
   * Preconditions: integer `0 <= value <= 0xFFFFFFFF`.
   * @throws OtaError COUNTER_DECREASE if `value` is below the current value;
   *   COUNTER_IO when the backing store is exhausted or fails.
   */
  advance(value: number): void;
}

/** A timer handle; opaque to the core. */
export type TimerId = number;

/** Monotonic time and one-shot or repeating timers (Moddable's Timer, the virtual clock). */
export interface Clock {
  /** Milliseconds since an arbitrary origin; never decreases. Never throws. */
  now(): number;
  /**
   * Call `callback` once after `delayMs` (>= 0), or every `repeatMs` after
   * that when given. Callbacks run from the event loop, never inside this call.
   */
  setTimer(callback: () => void, delayMs: number, repeatMs?: number): TimerId;
  /** Cancel a timer; unknown or fired ids are ignored. */
  clearTimer(id: TimerId): void;
}

/** Callbacks of a byte-stream socket. Each is optional; none is called re-entrantly. */
export interface SocketHandlers {
  /** The connection is open (after the TLS handshake when TLS is on). */
  onConnect?(): void;
  /** Bytes arrived; the array is the callee's to keep. */
  onData?(data: Uint8Array): void;
  /** The peer closed or the link failed; `reason` is a Reason code (SOCKET_*). Called once. */
  onClose?(reason: number): void;
}

/** Where to connect. TLS verification against `ca` (PEM or DER) is the adapter's job. */
export interface SocketOptions {
  readonly host: string;
  readonly port: number;
  /** Use TLS. Adapters refuse plaintext unless `tls === false` is given explicitly. */
  readonly tls: boolean;
  /** Trusted CA certificate(s) for TLS; adapters without one use the platform store. */
  readonly ca?: string | Uint8Array;
  /**
   * CA pin (TLS only; AT+OTATLS): SHA-256 of the DER certificate of a CA that
   * must be in the server's verified chain (an issuer above the server's own
   * certificate: intermediate or root), 32 bytes. A chain without it fails the
   * connection with TLS_PIN_MISMATCH, on top of the usual chain and name checks.
   */
  readonly caPin?: Uint8Array;
  /** Server name for SNI and certificate checks (defaults to host). */
  readonly serverName?: string;
  /**
   * The device's own TLS identity (mutual TLS), presented when the server
   * asks for a client certificate: the certificate's DER (issued by the fleet
   * CA for the device key) and the P-256 private key as its 32-byte scalar.
   * The adapter must not log or keep the key beyond the connection.
   * An adapter whose TLS stack cannot sign with a P-256 key fails the
   * connection with TLS_CLIENT_AUTH_UNSUPPORTED rather than connect without it.
   */
  readonly clientIdentity?: { readonly certificate: Uint8Array; readonly privateKey: Uint8Array };
}

/** A connected (or connecting) byte stream. */
export interface Socket {
  /**
   * Queue bytes for sending. Preconditions: the socket is not closed;
   * `data.length <= 16384`. Returns once queued; never blocks.
   * @throws OtaError SOCKET_CLOSED after close.
   */
  write(data: Uint8Array): void;
  /** Close; `onClose` is not called for a close the core asked for. Idempotent. */
  close(): void;
}

/** Opens sockets. */
export interface Network {
  /**
   * Start connecting; the outcome arrives through the handlers
   * (`onConnect`, or `onClose` with SOCKET_REFUSED / SOCKET_TLS / SOCKET_TIMEOUT).
   * @throws OtaError BAD_ARGUMENT for malformed options.
   */
  connect(options: SocketOptions, handlers: SocketHandlers): Socket;
}

/** The operator's serial port (the AT console). */
export interface Serial {
  /** Send bytes. Preconditions: `data.length <= 1024`. Never throws. */
  write(data: Uint8Array): void;
  /** Install the receive callback (replaces the previous one). */
  onReceive(handler: (data: Uint8Array) => void): void;
}

/** The supply rail, for the install precondition. */
export interface Power {
  /** Supply voltage in millivolts, measured now. Never throws (a failed ADC read reports 0). */
  supplyMillivolts(): number;
}

/** A streaming SHA-256 (`update`, `finish`); a device may supply a native one. */
export interface HashStream {
  /** Absorb bytes. @throws Error if called after `finish`. */
  update(data: Uint8Array): void;
  /** The 32-byte digest; the stream is then finished. @throws Error on a second call. */
  finish(): Uint8Array;
}

/** Hash engines. */
export interface Digest {
  /** A new SHA-256 stream. */
  sha256(): HashStream;
  /**
   * Optional native CRC-32 (IEEE 802.3, reflected; the patch blocks' check):
   * continue `crc` (0 to begin) over `data[start, end)` and return the
   * finished CRC as a uint32. Preconditions: 0 <= start <= end <= data.length.
   * Absent: the decoder uses its JS CRC (src/delta/crc.ts), which costs about
   * 750 Cortex-M7 instructions a byte on XS. @throws RangeError on a
   * precondition broken.
   */
  crc32?(crc: number, data: Uint8Array, start: number, end: number): number;
}

/**
 * Symmetric primitives for encrypted images (MCUboot's ECIES scheme): pure JS
 * by default (`src/crypto/cipher.ts`), a crypto engine where the device has one
 * (STM32H7 CRYP, Moddable's native crypt). Stateless: the key is passed per
 * call and the implementation keeps no copy after it returns.
 */
export interface Cipher {
  /**
   * AES-CTR (NIST SP 800-38A): `data` XOR the keystream of `key` from byte
   * `offset` of the stream whose first counter block is `iv` (the counter is
   * the whole block, incremented as a 128-bit big-endian integer), into a new
   * array. Encrypts and decrypts. Preconditions: `key.length` 16 or 32,
   * `iv.length` 16, `offset` a non-negative integer below 2^32,
   * `data.length <= 4096`.
   * @throws RangeError on a precondition broken.
   */
  aesCtr(key: Uint8Array, iv: Uint8Array, offset: number, data: Uint8Array): Uint8Array;
  /**
   * HMAC-SHA-256 (RFC 2104) of the concatenation of `parts` under `key`.
   * Preconditions: `key.length <= 64`, the parts together ≤ 4096 bytes.
   * @throws RangeError on a precondition broken.
   */
  hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
}

/**
 * Random bytes for keys (the device key, salts): the hardware RNG on a device,
 * the OS CSPRNG on a host. Only the mocks have a seeded generator, and it is
 * named test-only.
 */
export interface Random {
  /**
   * Fill `out` with random bytes and return it. Preconditions:
   * `out.length <= 1024`.
   * @throws OtaError IDENTITY_NO_RANDOM when the source failed (a health test
   *   of the hardware RNG, no entropy yet); never returns weak bytes.
   */
  fill(out: Uint8Array): Uint8Array;
}

/** System control. */
export interface System {
  /** Why the device last reset. Never throws. */
  resetCause(): ResetCause;
  /**
   * Reset the device now. On hardware this does not return; on the simulator
   * it throws the device's reset signal, which the core must not catch.
   */
  reboot(): never;
  /** The slot this firmware runs from (direct-xip: 0 or 1). */
  runningSlot(): 0 | 1;
}

/** The flash partitions the agent uses. */
export interface FlashMap {
  /** The two image slots, indexed by slot number. */
  readonly slots: readonly [Flash, Flash];
  /** Power-safe records: settings, journal, audit log. */
  readonly storage: Flash;
}

/** Everything the agent gets from its target. */
export interface Platform {
  readonly flash: FlashMap;
  readonly watchdog: Watchdog;
  readonly counter: MonotonicCounter;
  readonly clock: Clock;
  readonly net: Network;
  readonly serial: Serial;
  readonly power: Power;
  readonly digest: Digest;
  /** AES-CTR and HMAC for encrypted images; absent: the pure-JS `softwareCipher`. */
  readonly cipher?: Cipher;
  readonly system: System;
  /** Random bytes (the device key is generated from it). */
  readonly random: Random;
}
