/**
 * Signed time statements (device side): "it is now T", signed by a key of the
 * time role of the device's key set, attached by `xs-ota serve` to heartbeat
 * acks. Only signed time advances the device's trusted time
 * (src/agent/trusted-time.ts); the ack's plain `time` never decides expiry.
 * Byte layouts in docs/formats.md ("Time statement"); the encoder is
 * tools/release/keyset.ts.
 *
 * Record: "XSTS" | format u8 = 1 | records (TIME 0x81 u32, required).
 * Envelope: the manifest's envelope layout behind the magic "XSTV".
 *
 * A statement is not bound to a device or a heartbeat: replaying an old one
 * gives an older time, which a device whose time only moves forward ignores
 * (TIME_BEHIND). The time must lie in the signing key's validity window, so
 * a stolen time key can push a device's time no later than its notAfter.
 */
import { OtaError, Reason, type ReasonCode } from "../errors";
import type { Digest } from "../../hal/types";
import { verifyP256 } from "../crypto/ecdsa";
import { checkScope, KeyRole, type SignerLookup } from "../crypto/keyring";
import { sha256Of } from "../crypto/hash";
import { MAX_DER_SIGNATURE } from "../crypto/der";
import { decodeEnvelopeOf, decodeRecords, ENVELOPE_HEADER_BYTES, KEY_ID_BYTES, requireField, type EnvelopeLayout, type FieldSpec, type RecordLayout } from "./manifest";

/** Magic of the signed statement bytes: "XSTS". */
export const TIME_MAGIC = Object.freeze([0x58, 0x53, 0x54, 0x53]);
export const TIME_FORMAT = 1;
/** Magic of the statement envelope: "XSTV". */
export const TIME_ENVELOPE_MAGIC = Object.freeze([0x58, 0x53, 0x54, 0x56]);
/** Largest statement record accepted (one is 12 bytes). */
export const MAX_TIME_BYTES = 64;
/** Largest statement envelope (177 bytes; a typical one is about 120). */
export const MAX_TIME_ENVELOPE_BYTES = ENVELOPE_HEADER_BYTES + MAX_TIME_BYTES + KEY_ID_BYTES + 1 + MAX_DER_SIGNATURE;

export const TimeField = Object.freeze({ TIME: 0x81 });

const LAYOUT: RecordLayout = Object.freeze({
  noun: "time statement",
  magic: TIME_MAGIC,
  format: TIME_FORMAT,
  maxBytes: MAX_TIME_BYTES,
  maxRecords: 4,
  specs: Object.freeze<{ [type: number]: FieldSpec }>({ [TimeField.TIME]: { kind: "u32" } }),
  fields: TimeField,
});

const ENVELOPE: EnvelopeLayout = Object.freeze({ noun: "time statement", magic: TIME_ENVELOPE_MAGIC, maxBody: MAX_TIME_BYTES });

/**
 * The time (unix seconds) a statement's exact bytes state.
 * @throws OtaError the record reader's MANIFEST_* codes.
 */
export function decodeTimeStatement(bytes: Uint8Array): number {
  return requireField(decodeRecords(bytes, LAYOUT), TimeField.TIME, LAYOUT) as number;
}

/**
 * The time a statement claims, read without checking its signature (undefined
 * when it does not decode): only to decide whether it is worth verifying.
 */
export function claimedTime(bytes: Uint8Array): number | undefined {
  try {
    return decodeTimeStatement(decodeEnvelopeOf(bytes, ENVELOPE).manifest);
  } catch (e) {
    if (e instanceof OtaError) return undefined;
    throw e;
  }
}

export type TimeResult = { readonly ok: true; readonly time: number } | { readonly ok: false; readonly reason: ReasonCode; readonly message: string };

/**
 * Authenticate and decode a signed time statement: the envelope layout
 * (TIME_MALFORMED for any defect), a signer of the time role
 * (TIME_UNKNOWN_KEY, or the trust's KEY_* reason), the signature
 * (TIME_BAD_SIGNATURE), the record, then the time inside the key's validity
 * window (KEY_NOT_VALID). Never throws for bad input.
 * @throws TypeError when `bytes` is not a Uint8Array (misuse).
 * @example const t = parseSignedTime(ack.statement, trust, digest); if (t.ok) trusted.advance(t.time)
 */
export function parseSignedTime(bytes: Uint8Array, signers: SignerLookup, digest: Digest): TimeResult {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("time statement must be a Uint8Array");
  try {
    const env = decodeEnvelopeOf(bytes, ENVELOPE);
    const signer = signers.signer(env.keyId, KeyRole.TIME);
    if (!signer.ok) return { ok: false, reason: signer.reason ?? Reason.TIME_UNKNOWN_KEY, message: signer.message };
    const check = verifyP256(sha256Of(digest, env.manifest), env.signature, signer.key.publicKey, "der");
    if (check !== Reason.OK) return { ok: false, reason: Reason.TIME_BAD_SIGNATURE, message: "signature does not verify" };
    const time = decodeTimeStatement(env.manifest);
    const scope = checkScope(signer.scope, undefined, time);
    if (scope !== Reason.OK) return { ok: false, reason: scope, message: `time ${time} outside the time key's validity` };
    return { ok: true, time };
  } catch (e) {
    if (e instanceof OtaError) return { ok: false, reason: Reason.TIME_MALFORMED, message: e.message };
    throw e;
  }
}
