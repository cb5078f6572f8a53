/**
 * Reason codes: the one table of failure causes. Every refusal or failure on the
 * device side carries one of these; the same numbers reach the cloud (status
 * reports, heartbeats), the audit log and the AT console (`AT+STATE?`, `AT+LOG`).
 *
 * Numbers are stable wire values: never renumber, only append. Each area owns a
 * range so the table can grow without collisions:
 *   0        ok
 *   1..49    HAL and platform (flash, power, watchdog, counter, system)
 *   50..99   storage records (settings, journal, audit log)
 *   100..149 images and signatures (MCUboot format, ECDSA, keyring)
 *   150..199 release manifest and update policy
 *   200..249 delta patches
 *   250..299 cloud link (MQTT, HTTP, protocol messages)
 *   300..349 agent (download, install, trial, commit)
 *   350..399 AT console
 *   400..449 supervision and revocation
 *   600..649 encrypted images (ENC TLVs, key unwrap, decryption)
 *   650..679 device identity (device key, CSR, client certificate, mutual TLS)
 *   680..709 key roles, key sets and trusted time
 *   710..749 fleet operations (rollouts, retries)
 *   750..769 delta codecs (beyond 200..249)
 */
export const Reason = Object.freeze({
  OK: 0,

  // HAL and platform
  FLASH_RANGE: 1,
  FLASH_ALIGN: 2,
  FLASH_NOT_ERASED: 3,
  FLASH_IO: 4,
  POWER_CUT: 5,
  COUNTER_DECREASE: 6,
  COUNTER_IO: 7,
  LOW_SUPPLY: 8,
  WATCHDOG_RESET: 9,
  BAD_ARGUMENT: 10,
  SOCKET_CLOSED: 11,
  SOCKET_REFUSED: 12,
  SOCKET_TIMEOUT: 13,
  SOCKET_TLS: 14,
  SERIAL_OVERRUN: 15,
  /** The TLS server's presented chain does not contain the pinned CA (AT+OTATLS fingerprint). */
  TLS_PIN_MISMATCH: 16,

  // storage records
  STORE_CORRUPT: 50,
  STORE_FULL: 51,
  STORE_TOO_LARGE: 52,
  STORE_GEOMETRY: 53,

  // images and signatures
  IMAGE_TRUNCATED: 100,
  IMAGE_BAD_MAGIC: 101,
  IMAGE_BAD_HEADER: 102,
  IMAGE_BAD_TLV: 103,
  IMAGE_HASH_MISMATCH: 104,
  IMAGE_NO_HASH: 105,
  IMAGE_NO_SIGNATURE: 106,
  IMAGE_BAD_SIGNATURE: 107,
  IMAGE_UNKNOWN_KEY: 108,
  IMAGE_TOO_LARGE: 109,
  IMAGE_BAD_SECURITY_COUNTER: 110,
  KEY_INVALID: 111,
  SIGNATURE_MALFORMED: 112,
  /** A well-formed signature that does not verify (mapped to IMAGE_/MANIFEST_BAD_SIGNATURE by callers). */
  SIGNATURE_INVALID: 113,

  // release manifest and policy
  MANIFEST_MALFORMED: 150,
  MANIFEST_TOO_LARGE: 151,
  MANIFEST_BAD_SIGNATURE: 152,
  MANIFEST_UNKNOWN_KEY: 153,
  MANIFEST_WRONG_HARDWARE: 154,
  MANIFEST_DOWNGRADE: 155,
  MANIFEST_SAME_VERSION: 156,
  MANIFEST_SECURITY_COUNTER: 157,
  MANIFEST_EXPIRED: 158,
  MANIFEST_NOT_YET_VALID: 159,
  MANIFEST_REPLAYED: 160,
  MANIFEST_BASE_MISMATCH: 161,
  MANIFEST_TOO_BIG_FOR_SLOT: 162,
  MANIFEST_UNKNOWN_CRITICAL: 163,
  MANIFEST_TRUNCATED: 164,
  MANIFEST_TRAILING_BYTES: 165,
  MANIFEST_DUPLICATE_FIELD: 166,
  MANIFEST_WRONG_TYPE: 167,
  MANIFEST_FIELD_TOO_LONG: 168,
  MANIFEST_MISSING_FIELD: 169,
  MANIFEST_BAD_MAGIC: 170,
  MANIFEST_UNSUPPORTED_VERSION: 171,
  MANIFEST_BAD_VALUE: 172,
  MANIFEST_INCONSISTENT: 173,
  MANIFEST_OVER_BUDGET: 174,
  MANIFEST_WRONG_SLOT: 175,
  MANIFEST_IMAGE_MISMATCH: 176,

  // delta patches
  PATCH_MALFORMED: 200,
  PATCH_BAD_MAGIC: 201,
  PATCH_OLD_MISMATCH: 202,
  PATCH_OUT_OF_RANGE: 203,
  PATCH_DECOMPRESS: 204,
  PATCH_BLOCK_HASH: 205,
  PATCH_NEW_MISMATCH: 206,
  PATCH_TRUNCATED: 207,
  PATCH_TOO_LARGE: 208,
  PATCH_UNSUPPORTED: 209,
  PATCH_HEADER_CRC: 210,
  PATCH_BAD_CHECKPOINT: 211,

  // cloud link
  MQTT_MALFORMED: 250,
  MQTT_TOO_LARGE: 251,
  MQTT_REFUSED: 252,
  MQTT_PROTOCOL: 253,
  MQTT_TIMEOUT: 254,
  MQTT_SUBSCRIBE_REFUSED: 255,
  MQTT_NOT_CONNECTED: 256,
  MQTT_INFLIGHT_FULL: 257,
  HTTP_MALFORMED: 260,
  HTTP_STATUS: 261,
  HTTP_TOO_LARGE: 262,
  HTTP_RANGE_MISMATCH: 263,
  HTTP_REDIRECTS: 264,
  HTTP_TIMEOUT: 265,
  HTTP_TRUNCATED: 266,
  HTTP_BUSY: 267,
  MESSAGE_MALFORMED: 270,
  MESSAGE_TOPIC: 271,
  MESSAGE_TOO_LARGE: 272,

  // agent
  DOWNLOAD_STALLED: 300,
  DOWNLOAD_DEADLINE: 301,
  DOWNLOAD_BUDGET: 302,
  DOWNLOAD_NOT_FOUND: 303,
  DOWNLOAD_SIZE: 304,
  VERIFY_FAILED: 305,
  NOT_IN_WINDOW: 306,
  BUSY: 307,
  TRIAL_FAILED: 308,
  TRIAL_NO_CLOUD: 309,
  ROLLED_BACK: 310,
  ABORTED: 311,
  TRIAL_LIMIT: 312,
  JOURNAL_CORRUPT: 313,

  // AT console
  AT_BAD_FORMAT: 350,
  AT_UNKNOWN: 351,
  AT_BAD_OPERATOR: 352,
  AT_BAD_PARAMETER: 353,
  AT_NOT_PERMITTED: 354,
  AT_BAD_PASSWORD: 355,
  AT_RATE_LIMITED: 356,
  /** The console is locked: the command changes connection, trust, updates or storage (AT+UNLOCK first). */
  AT_LOCKED: 357,

  // supervision and revocation
  ACTIVITY_STUCK: 400,
  REVOKED: 401,
  REVOCATION_OLDER: 402,
  REVOCATION_BAD_SIGNATURE: 403,
  REVOCATION_MALFORMED: 404,
  REVOCATION_UNKNOWN_KEY: 405,
  REVOCATION_WRONG_HARDWARE: 406,

  // key roles, key sets and trusted time (issue 16 part B)
  /** A key set whose records or entries break the format (docs/formats.md "Key set"). */
  KEYSET_MALFORMED: 680,
  /** A key set whose root signature does not verify. */
  KEYSET_BAD_SIGNATURE: 681,
  /** A key set signed by a key that is not one of the device's root keys. */
  KEYSET_UNKNOWN_ROOT: 682,
  /** A key set (epoch, sequence) not newer than the held one (or the same sequence with other content). */
  KEYSET_OLDER: 683,
  /** A key set or revocation record whose sequence (or epoch) moves further than the bounded step. */
  SEQUENCE_JUMP: 684,
  /** The signer is in the key set but without the role needed (manifest, revocation, time). */
  KEY_WRONG_ROLE: 685,
  /** The signer is in the key set but not for this hardware id. */
  KEY_WRONG_HARDWARE: 686,
  /** The signed time (issued-at, time statement) is outside the signer's validity window. */
  KEY_NOT_VALID: 687,
  /** The signer was retired by the held key set. */
  KEY_RETIRED: 688,
  /** Signed by a device-keyring key while a key set is held that does not name it (an old single-keyring release). */
  KEY_LEGACY_SIGNER: 689,
  /** A time statement that does not decode. */
  TIME_MALFORMED: 690,
  /** A time statement whose signature does not verify. */
  TIME_BAD_SIGNATURE: 691,
  /** A time statement signed by no key of the time role. */
  TIME_UNKNOWN_KEY: 692,
  /** A signed time older than the device's time floor (ignored: time only moves forward). */
  TIME_BEHIND: 693,

  // encrypted images (600..649)
  /** An ENC TLV or encrypted-image layout that does not parse (length, flags, body not a multiple of 16, two ENC TLVs). */
  ENC_MALFORMED: 600,
  /** An encryption scheme the device does not do (RSA-OAEP, AES-KW, X25519), or key length and flag disagree. */
  ENC_UNSUPPORTED: 601,
  /** The wrapped key's HMAC does not verify: tampered, or encrypted for another device's key. */
  ENC_KEY_UNWRAP: 602,
  /** The ephemeral public key is not an uncompressed P-256 point on the curve. */
  ENC_BAD_EPHEMERAL: 603,
  /** No decryption key provisioned (AT+ENCKEY). */
  ENC_NO_KEY: 604,
  /** The encrypted image carries no slot TLVs: direct-xip cannot boot it (docs/formats.md, "Encrypted images"). */
  ENC_NO_SLOT_TLVS: 605,
  /** The payload's encryption does not match the manifest's (ENC TLV, flag, or the decrypted image). */
  ENC_MISMATCH: 606,
  /** A decryption key that is not a valid P-256 private scalar. */
  ENC_BAD_KEY: 607,

  // device identity (650..679)
  /** No device key yet (AT+CSR makes one). */
  IDENTITY_NO_KEY: 650,
  /** The platform has no random source: a key cannot be generated. */
  IDENTITY_NO_RANDOM: 651,
  /** A certificate could not be parsed (DER, X.509 v3, P-256 key, ECDSA-SHA256). */
  IDENTITY_CERT_MALFORMED: 652,
  /** The certificate's public key is not the device key's. */
  IDENTITY_CERT_WRONG_KEY: 653,
  /** The certificate's subject CN is not the device id. */
  IDENTITY_CERT_WRONG_NAME: 654,
  /** The certificate is larger than the store keeps. */
  IDENTITY_CERT_TOO_LARGE: 655,
  /** A chunked certificate upload out of order (END without data, data after the bound). */
  IDENTITY_UPLOAD_STATE: 656,
  /** The TLS stack cannot present a client certificate with this key (Moddable: RSA-only CertificateVerify). */
  TLS_CLIENT_AUTH_UNSUPPORTED: 657,

  // fleet operations: the agent's bounded retry of a trial that found no cloud (issue 18A: 710..729)
  /**
   * A trial rolled back because it could not reach the cloud in time, and the release will be taken
   * again after a pause (at most MAX_NO_CLOUD_TRIALS trials; the last one is reported TRIAL_NO_CLOUD, final).
   */
  TRIAL_NO_CLOUD_RETRY: 710,

  // fleet operations: rollout plans in xs-ota serve (server-side decisions, shown by serve and xs-ota rollout)
  /** A wave's failure budget (rolled-back + failed + bricked-suspect) was exceeded: the rollout halted itself. */
  ROLLOUT_HALTED: 730,
  /** The operator paused the rollout (xs-ota rollout pause). */
  ROLLOUT_PAUSED: 731,
  /** The operator aborted the rollout (xs-ota rollout abort): final. */
  ROLLOUT_ABORTED: 732,
  /** Outside the plan's start window. */
  ROLLOUT_OUTSIDE_WINDOW: 733,
  /** The device's wave is not open yet (an earlier wave is still running or soaking). */
  ROLLOUT_WAVE_CLOSED: 734,
  /** The plan does not target this device (hardware id or group). */
  ROLLOUT_NOT_TARGETED: 735,
  /** A rollout plan file is malformed. */
  PLAN_INVALID: 736,
  /** A rollout plan is unsigned where serve requires a signature, or no trusted key verifies it. */
  PLAN_SIGNATURE: 737,
  /** Every in-flight place of the rollout is taken (over all serve instances). */
  ROLLOUT_IN_FLIGHT_FULL: 738,
  /** A device went silent mid-update past the in-flight timeout: counted as bricked-suspect. */
  DEVICE_SILENT: 739,

  // delta codecs (750 upward; issue 15)
  /** The manifest names a payload compression this agent does not decode (a delta codec it lacks, or a full image not "none"): refused before any download. */
  PATCH_CODEC_UNSUPPORTED: 750,
  /** The patch header's version/codec is not the one the manifest's payload.compression names: refused before anything is erased. */
  PATCH_CODEC_MISMATCH: 751,
});

export type ReasonName = keyof typeof Reason;
export type ReasonCode = (typeof Reason)[ReasonName];

const reasonNames: { [code: number]: ReasonName } = {};
for (const name of Object.keys(Reason) as ReasonName[]) reasonNames[Reason[name]] = name;
Object.freeze(reasonNames);

/** The symbolic name of a reason code, e.g. `reasonName(104) === "IMAGE_HASH_MISMATCH"`. */
export function reasonName(code: number): string {
  return reasonNames[code] ?? `UNKNOWN_${code}`;
}

/**
 * The one error class of the device side. `code` is a Reason; `detail` is an
 * optional platform or position detail (an errno, an offset) for the log.
 *
 * @example throw new OtaError(Reason.FLASH_ALIGN, "write at 0x13 not 32-aligned", 0x13)
 */
export class OtaError extends Error {
  readonly code: ReasonCode;
  readonly detail: number | string | undefined;
  constructor(code: ReasonCode, message?: string, detail?: number | string) {
    super(message ? `${reasonName(code)}: ${message}` : reasonName(code));
    this.code = code;
    this.detail = detail;
  }
}
// Moddable freezes preloaded built-ins, so Error.prototype.name is read-only and
// `this.name = …` throws "set name: not writable". Name the class on its own prototype.
Object.defineProperty(OtaError.prototype, "name", { value: "OtaError", writable: true, configurable: true });

/** True if `e` is an OtaError, optionally with the given code. */
export function isOtaError(e: unknown, code?: ReasonCode): e is OtaError {
  return e instanceof OtaError && (code === undefined || e.code === code);
}
