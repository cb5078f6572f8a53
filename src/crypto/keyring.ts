/**
 * The device's trusted signing keys, each named by its key id: the SHA-256 of
 * the key's DER SubjectPublicKeyInfo, exactly what MCUboot's imgtool writes in
 * the KEYHASH TLV (`sha256(key.get_public_bytes())`). Images and manifests
 * name their key by this id; a key id not in the ring is refused.
 */
import { OtaError, Reason, type ReasonCode } from "../errors";
import type { Digest } from "../../hal/types";
import { equalBytes } from "../util/bytes";
import { decodePublicKey, spkiOf } from "./der";

/** Most keys a keyring holds (a current key, its successor, a recovery key, ...). */
export const MAX_KEYS = 8;

export interface TrustedKey {
  /** SHA-256 of the SubjectPublicKeyInfo DER (MCUboot KEYHASH). */
  readonly keyId: Uint8Array;
  /** SEC1 uncompressed point, 65 bytes. */
  readonly publicKey: Uint8Array;
}

/**
 * The key id of a public key (SEC1 uncompressed point or SPKI DER).
 * @throws OtaError KEY_INVALID when the key is malformed or not on P-256.
 * @example toHex(keyIdOf(spkiDer, softwareDigest))
 */
export function keyIdOf(publicKey: Uint8Array, digest: Digest): Uint8Array {
  const point = decodePublicKey(publicKey);
  if (!point) throw new OtaError(Reason.KEY_INVALID, "not a P-256 public key");
  const h = digest.sha256();
  h.update(spkiOf(point));
  return h.finish();
}

/** What a signing key may sign (docs/formats.md "Key set"); bits of a key set entry's roles. */
export const KeyRole = Object.freeze({ MANIFEST: 1, REVOCATION: 2, TIME: 4 });
export type KeyRoleBit = (typeof KeyRole)[keyof typeof KeyRole];
/** Every role bit a key set may grant. */
export const ALL_ROLES = KeyRole.MANIFEST | KeyRole.REVOCATION | KeyRole.TIME;

/** A key set's limits on one signing key: for which hardware id, signing when. */
export interface KeyScope {
  /** The hardware id the key may sign for; undefined: every hardware id. */
  readonly hardwareId?: string;
  /** Unix seconds: the signed time (issued-at, statement time) must be >= notBefore and < notAfter. */
  readonly notBefore: number;
  readonly notAfter: number;
}

/**
 * The answer to "may key `keyId` sign for `role`?": the key (with the scope its
 * key set gives it, none for a plain keyring key), or a reason. `reason`
 * undefined means "no such key": the caller names it (MANIFEST_UNKNOWN_KEY, …).
 */
export type SignerResult =
  | { readonly ok: true; readonly key: TrustedKey; readonly scope?: KeyScope }
  | { readonly ok: false; readonly reason?: ReasonCode; readonly message: string };

/** Who may sign what: a flat keyring (every key, every role) or the device's trust (key set roles). */
export interface SignerLookup {
  signer(keyId: Uint8Array, role: KeyRoleBit): SignerResult;
}

/**
 * Is the signed `hardwareId` and time `at` inside `scope`?
 * @returns Reason.OK, KEY_WRONG_HARDWARE or KEY_NOT_VALID.
 */
export function checkScope(scope: KeyScope | undefined, hardwareId: string | undefined, at: number): ReasonCode {
  if (!scope) return Reason.OK;
  if (scope.hardwareId !== undefined && hardwareId !== undefined && scope.hardwareId !== hardwareId) return Reason.KEY_WRONG_HARDWARE;
  if (at < scope.notBefore || at >= scope.notAfter) return Reason.KEY_NOT_VALID;
  return Reason.OK;
}

/** A bounded set of trusted P-256 public keys, looked up by key id. */
export class Keyring implements SignerLookup {
  private readonly entries: TrustedKey[] = [];
  constructor(private readonly digest: Digest) {}

  /**
   * Trust a key (SEC1 uncompressed point or SPKI DER). Adding a key twice is a no-op.
   * @returns the key id
   * @throws OtaError KEY_INVALID for a malformed key; BAD_ARGUMENT when the ring is full.
   */
  add(publicKey: Uint8Array): Uint8Array {
    const keyId = keyIdOf(publicKey, this.digest);
    if (this.find(keyId)) return keyId;
    if (this.entries.length >= MAX_KEYS) throw new OtaError(Reason.BAD_ARGUMENT, `keyring holds at most ${MAX_KEYS} keys`);
    this.entries.push(Object.freeze({ keyId, publicKey: decodePublicKey(publicKey)! }));
    return keyId;
  }

  /** The trusted key with this id, or undefined. */
  find(keyId: Uint8Array): TrustedKey | undefined {
    if (keyId.length !== 32) return undefined;
    for (const e of this.entries) if (equalBytes(e.keyId, keyId)) return e;
    return undefined;
  }

  /** A flat keyring: every key it holds may sign every role (the single-keyring model). */
  signer(keyId: Uint8Array, _role: KeyRoleBit): SignerResult {
    const key = this.find(keyId);
    return key ? { ok: true, key } : { ok: false, message: "signed by a key this device does not trust" };
  }

  get size(): number {
    return this.entries.length;
  }

  keys(): readonly TrustedKey[] {
    return this.entries.slice();
  }
}

/**
 * A keyring holding `keys`.
 * @throws OtaError KEY_INVALID / BAD_ARGUMENT as `Keyring.add`.
 */
export function createKeyring(keys: readonly Uint8Array[], digest: Digest): Keyring {
  const ring = new Keyring(digest);
  for (const k of keys) ring.add(k);
  return ring;
}
