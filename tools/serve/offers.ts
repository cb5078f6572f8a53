/**
 * Which release to offer a device, from its heartbeat alone (serve keeps no
 * per-device state): the newest release for its hardware, built for its
 * inactive slot (direct-xip A/B), not expired, deliverable, and not revoked by
 * the newest revocation record for its hardware; at that version a delta
 * whose base is exactly the running image when there is one, else the full
 * image. A device whose running image is revoked (heartbeat state "revoked")
 * gets a replacement: the newest allowed release — still a higher version
 * than the revoked one (MCUboot direct-xip boots the highest valid version,
 * so an older release could never win the boot: re-release the last good
 * code with a bumped version) — never with a lower security counter than the
 * running release's.
 *
 * Among the deltas for the device's base at the chosen version, the one that
 * installs quickest on it: estimated seconds = payload.length / linkRate +
 * image.length × instructionsPerByte / (mhz × 10^6), from the decode cost the
 * device announces in its heartbeat (`decode`, `mhz`); only codecs it
 * announces are offered. A device that announces nothing predates codec 3: it
 * gets version-1 codecs only (stored, deflate, range), the smallest payload
 * first. A delta's codec is its manifest's payload.compression (bound to the
 * patch header by xs-ota release and checked by the device); a delta with any
 * other name is offered to no device. Without a delta it can take, the full image.
 */
import { compareVersions } from "../../src/image/format";
import type { Heartbeat } from "../../src/protocol/messages";
import { DEFAULT_LINK_RATE, installSeconds } from "../../src/update/codec";
import { whyRevoked, type RevocationRecord } from "../../src/update/revocation";
import type { ReleaseManifest } from "../../src/update/types";

export interface OfferCandidate {
  readonly manifest: ReleaseManifest;
  /** The signed envelope, offered as-is. */
  readonly envelope: Uint8Array;
  /** The payload file serve answers chunk and Range requests from; undefined when only `fetch.url` can deliver it. */
  readonly payloadPath: string | undefined;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

type DeviceView = Pick<Heartbeat, "hardwareId" | "version" | "slot" | "imageSha256"> & Pick<Heartbeat, "decode">;

export { DEFAULT_LINK_RATE, deviceCodecs, installSeconds } from "../../src/update/codec";


/** What besides the heartbeat decides an offer. */
export interface OfferContext {
  /** The newest revocation record for the device's hardware id: no release it revokes is offered. */
  readonly revocation?: RevocationRecord;
  /**
   * Replacement mode: the device's running image is revoked and it asks for
   * another. Versions not newer than the running one are allowed; the running
   * image itself is not.
   */
  readonly replace?: boolean;
  /** SEC_CNT of the running image, when serve knows its release: a replacement never has a lower one. */
  readonly runningCounter?: number;
  /** Bytes per second the device is assumed to download at (default DEFAULT_LINK_RATE). */
  readonly linkRate?: number;
}

/** Does `record` revoke the release `m`? (Another hardware's record revokes nothing.) */
export function isRevokedRelease(m: ReleaseManifest, record: RevocationRecord | undefined): boolean {
  if (record === undefined || record.hardwareId !== m.hardwareId) return false;
  return whyRevoked(record, { version: m.version, securityCounter: m.securityCounter, imageSha256: m.image.sha256 }) !== undefined;
}

/**
 * The context for the device that sent `hb`: the record, replacement mode
 * when it says its running image is revoked (state "revoked") and holds the
 * record serve has, and the running release's counter when serve has it.
 */
export function offerContext(
  candidates: readonly OfferCandidate[],
  hb: DeviceView & Pick<Heartbeat, "state" | "revocation">,
  revocation: RevocationRecord | undefined,
): OfferContext {
  const running = candidates.find((c) => c.manifest.hardwareId === hb.hardwareId && sameBytes(c.manifest.image.sha256, hb.imageSha256));
  const replace = hb.state === "revoked" && revocation !== undefined && hb.revocation === revocation.sequence;
  return {
    ...(revocation ? { revocation } : {}),
    replace,
    ...(running ? { runningCounter: running.manifest.securityCounter } : {}),
  };
}

/** Can `c` be delivered to and applied by the device that sent `hb`? */
export function isEligible(c: OfferCandidate, hb: DeviceView, nowSec: number, ctx: OfferContext = {}): boolean {
  const m = c.manifest;
  if (m.hardwareId !== hb.hardwareId) return false;
  if (m.slot !== 1 - hb.slot) return false;
  if (compareVersions(m.version, hb.version) <= 0) return false;
  if (ctx.replace && ctx.runningCounter !== undefined && m.securityCounter < ctx.runningCounter) return false;
  if (isRevokedRelease(m, ctx.revocation)) return false;
  if (nowSec >= m.expiresAt) return false;
  if (c.payloadPath === undefined && m.fetch.url === undefined) return false;
  if (m.payload.kind === "delta" && !sameBytes(m.payload.baseSha256, hb.imageSha256)) return false;
  if (installSeconds(m, hb.decode, 1) === undefined) return false;
  return true;
}

/**
 * The offer for a device, or undefined when it is up to date (or, replacing, when nothing allowed is left).
 * Order: highest version; then a delta the device decodes before the full image; then the shorter
 * estimated install (installSeconds: download at `ctx.linkRate`, decode at the device's announced
 * cost); then the smaller payload; then path order of `candidates`.
 */
export function chooseOffer<C extends OfferCandidate>(candidates: readonly C[], hb: DeviceView, nowSec: number, ctx: OfferContext = {}): C | undefined {
  const linkRate = ctx.linkRate ?? DEFAULT_LINK_RATE;
  if (!(linkRate > 0) || !Number.isFinite(linkRate)) throw new RangeError(`linkRate must be a positive number of bytes per second, got ${linkRate}`);
  let best: C | undefined;
  let bestSeconds = 0;
  for (const c of candidates) {
    if (!isEligible(c, hb, nowSec, ctx)) continue;
    const seconds = installSeconds(c.manifest, hb.decode, linkRate)!;
    if (!best) {
      best = c;
      bestSeconds = seconds;
      continue;
    }
    const v = compareVersions(c.manifest.version, best.manifest.version);
    let better = v > 0;
    if (v === 0) {
      const cd = c.manifest.payload.kind === "delta" ? 1 : 0;
      const bd = best.manifest.payload.kind === "delta" ? 1 : 0;
      better = cd > bd || (cd === bd && (seconds < bestSeconds || (seconds === bestSeconds && c.manifest.payload.length < best.manifest.payload.length)));
    }
    if (better) {
      best = c;
      bestSeconds = seconds;
    }
  }
  return best;
}
