/**
 * Which release to offer a device, from its heartbeat alone (serve keeps no
 * per-device state): the newest release for its hardware, built for its
 * inactive slot (direct-xip A/B), not expired, and deliverable; at that
 * version a delta whose base is exactly the running image when there is one,
 * else the full image.
 */
import { compareVersions } from "../../src/image/format";
import type { Heartbeat } from "../../src/protocol/messages";
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

/** Can `c` be delivered to and applied by the device that sent `hb`? */
export function isEligible(c: OfferCandidate, hb: Pick<Heartbeat, "hardwareId" | "version" | "slot" | "imageSha256">, nowSec: number): boolean {
  const m = c.manifest;
  if (m.hardwareId !== hb.hardwareId) return false;
  if (m.slot !== 1 - hb.slot) return false;
  if (compareVersions(m.version, hb.version) <= 0) return false;
  if (nowSec >= m.expiresAt) return false;
  if (c.payloadPath === undefined && m.fetch.url === undefined) return false;
  if (m.payload.kind === "delta" && !sameBytes(m.payload.baseSha256, hb.imageSha256)) return false;
  return true;
}

/**
 * The offer for a device, or undefined when it is up to date.
 * Order: highest version; then delta before full; then the smaller payload; then path order of `candidates`.
 */
export function chooseOffer(
  candidates: readonly OfferCandidate[],
  hb: Pick<Heartbeat, "hardwareId" | "version" | "slot" | "imageSha256">,
  nowSec: number,
): OfferCandidate | undefined {
  let best: OfferCandidate | undefined;
  for (const c of candidates) {
    if (!isEligible(c, hb, nowSec)) continue;
    if (!best) {
      best = c;
      continue;
    }
    const v = compareVersions(c.manifest.version, best.manifest.version);
    if (v > 0) best = c;
    else if (v === 0) {
      const cd = c.manifest.payload.kind === "delta" ? 1 : 0;
      const bd = best.manifest.payload.kind === "delta" ? 1 : 0;
      if (cd > bd || (cd === bd && c.manifest.payload.length < best.manifest.payload.length)) best = c;
    }
  }
  return best;
}
