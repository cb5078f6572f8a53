/**
 * What a device would do with a release, run on the host before it is signed
 * (`xs-ota release`) and again by `xs-ota verify --manifest`: the payload
 * parsed and, for a delta, applied with the device's own patcher to the base;
 * the patch header's old/new SHA-256 against the base and target images; and
 * the device's own policy checks (src/update/policy) for a device running the
 * base (or any older image). A release that fails here is one every device
 * would refuse or fail to install, so it is never signed.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { NorFlash } from "../../hal/mock/flash";
import { softwareDigest } from "../../src/crypto/sha256";
import { PATCH_VERSION, parsePatchHeader } from "../../src/delta/format";
import { DEFAULT_MAX_BLOCK_SIZE, PatchApplier } from "../../src/delta/patcher";
import { isOtaError, Reason, reasonName, type ReasonCode } from "../../src/errors";
import type { ImageVersion } from "../../src/image/format";
import { checkPolicy, type DeviceState } from "../../src/update/policy";
import { checkPatchCodec } from "../../src/agent/sink";
import type { AcceptedManifest, ReleaseManifest } from "../../src/update/types";
import { equalBytes, toHex } from "../../src/util/bytes";

export interface ReleaseProblem {
  readonly reason: ReasonCode;
  readonly message: string;
}

export interface ReleaseCheckInput {
  readonly manifest: ReleaseManifest;
  /** The payload bytes as a device downloads them. */
  readonly payload: Uint8Array;
  /** The target image, header through TLV area (unpadded), when known. */
  readonly image?: Uint8Array;
  /** For a delta: the base image, header through TLV area, when known. */
  readonly base?: Uint8Array;
  /** The base image's version (the running version a delta's device has). */
  readonly baseVersion?: ImageVersion;
  /** The base image's security counter (a device running it has at least this). */
  readonly baseSecurityCounter?: number;
  /** Bytes an image may occupy in a slot, when known. */
  readonly slotSize?: number;
  /** The device's patch block-size limit (default the patcher's). */
  readonly maxBlockSize?: number;
}

const ZERO_VERSION: ImageVersion = Object.freeze({ major: 0, minor: 0, revision: 0, build: 0 });

function describe(e: unknown): ReleaseProblem {
  if (isOtaError(e)) {
    const name = `${reasonName(e.code)}: `;
    return { reason: e.code as ReasonCode, message: e.message.startsWith(name) ? e.message.slice(name.length) : e.message };
  }
  return { reason: Reason.PATCH_MALFORMED, message: e instanceof Error ? e.message : String(e) };
}

/**
 * The first problem a device would have with this release, or undefined.
 * Never throws for a bad release; problems come back as a reason and a message.
 */
export function checkRelease(o: ReleaseCheckInput): ReleaseProblem | undefined {
  const m = o.manifest;
  if (o.payload.length !== m.payload.length || !equalBytes(sha256(o.payload), m.payload.sha256)) {
    return { reason: Reason.MANIFEST_INCONSISTENT, message: "the payload is not the one the manifest names (length or SHA-256)" };
  }
  if (o.image && (o.image.length !== m.image.length || !equalBytes(sha256(o.image), m.image.sha256))) {
    return { reason: Reason.MANIFEST_IMAGE_MISMATCH, message: "the image is not the one the manifest names (length or whole-image SHA-256)" };
  }
  if (m.payload.encryption) {
    // Encrypted: the payload cannot be read without the device's key; the manifest binds both hashes
    // and the device checks the decrypted image against image.sha256 (docs/formats.md, "Encrypted images").
  } else if (m.payload.kind === "full") {
    if (m.payload.length !== m.image.length || !equalBytes(m.payload.sha256, m.image.sha256)) {
      return { reason: Reason.MANIFEST_INCONSISTENT, message: "a full release's payload must be the image itself" };
    }
  } else {
    let h;
    try {
      h = parsePatchHeader(o.payload);
    } catch (e) {
      const p = describe(e);
      return { reason: p.reason, message: `the payload is not a patch a device can parse (${p.message})` };
    }
    try {
      checkPatchCodec(m, o.payload);
    } catch (e) {
      return describe(e);
    }
    // As the patcher: the limit bounds version 1's raw-block buffer; version 2's memory does not grow with the block size.
    const maxBlock = o.maxBlockSize ?? DEFAULT_MAX_BLOCK_SIZE;
    if (h.version === PATCH_VERSION && h.blockSize > maxBlock) return { reason: Reason.PATCH_UNSUPPORTED, message: `patch blocks of ${h.blockSize} bytes; devices take at most ${maxBlock} (xs-ota diff --block-size)` };
    if (!m.payload.baseSha256 || h.oldLength === 0 || !equalBytes(h.oldSha256, m.payload.baseSha256)) {
      return {
        reason: Reason.PATCH_OLD_MISMATCH,
        message: `the patch was made for another base image: its old image is ${h.oldLength} bytes, SHA-256 ${toHex(h.oldSha256)}; the base's whole-image SHA-256 is ${m.payload.baseSha256 ? toHex(m.payload.baseSha256) : "missing"}`,
      };
    }
    if (h.newLength !== m.image.length || !equalBytes(h.newSha256, m.image.sha256)) {
      return {
        reason: Reason.PATCH_NEW_MISMATCH,
        message: `the patch makes another image: ${h.newLength} bytes, SHA-256 ${toHex(h.newSha256)}; the target is ${m.image.length} bytes, whole-image SHA-256 ${toHex(m.image.sha256)}`,
      };
    }
    if (o.base) {
      const p = applyPatch(o.base, o.payload, h.newLength, maxBlock);
      if (p) return p;
    }
  }
  const accepted: AcceptedManifest = { manifest: m, releaseId: new Uint8Array(32), keyId: new Uint8Array(32) };
  // A device that runs the base (delta) or an older image (full), with a clock at the issue time.
  const state: DeviceState = {
    hardwareId: m.hardwareId,
    runningVersion: o.baseVersion ?? ZERO_VERSION,
    protectedCounter: o.baseSecurityCounter ?? 0,
    trustedTime: m.issuedAt,
    newestIssuedAt: 0,
    handledReleaseIds: [],
    runningImageSha256: m.payload.baseSha256 ?? new Uint8Array(32),
    slotSize: o.slotSize ?? 0xffffffff,
    inactiveSlot: m.slot,
  };
  const r = checkPolicy(accepted, state);
  if (!r.ok) return { reason: r.reason, message: r.message };
  return undefined;
}

/** Apply the patch to the base with the device's patcher over strict mock flash; a problem or undefined. */
function applyPatch(base: Uint8Array, patch: Uint8Array, newLength: number, maxBlockSize: number): ReleaseProblem | undefined {
  const eraseBlock = 4096;
  const slotSize = Math.ceil(Math.max(base.length, newLength, 1) / eraseBlock) * eraseBlock;
  const chip = new NorFlash({ size: 2 * slotSize, blockLength: eraseBlock, writeAlign: 8 });
  const active = chip.partition(0, slotSize);
  const inactive = chip.partition(slotSize, slotSize);
  active.cells.set(base);
  try {
    const applier = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest, maxBlockSize });
    for (let at = 0; at < patch.length; at += 4096) applier.update(patch.subarray(at, Math.min(at + 4096, patch.length)));
    applier.finish();
  } catch (e) {
    const p = describe(e);
    return { reason: p.reason, message: `a device could not apply the patch to the base (${p.message})` };
  }
  return undefined;
}
