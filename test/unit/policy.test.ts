/**
 * Update policy: every refusal has its own reason code, checks run in the
 * documented order, and trusted time never goes backwards.
 */
import { describe, expect, it } from "vitest";
import { Reason, reasonName, type ReasonCode } from "../../src/errors";
import { parseVersion } from "../../src/image/format";
import {
  checkPolicy,
  MAX_CLOCK_SKEW_S,
  MAX_HANDLED_RELEASES,
  nextNewestIssuedAt,
  rememberRelease,
  trustedNow,
  type DeviceState,
} from "../../src/update/policy";
import type { AcceptedManifest, ReleaseManifest } from "../../src/update/types";

const H = (b: number) => new Uint8Array(32).fill(b);
const T0 = 1_800_000_000;

const manifest: ReleaseManifest = {
  hardwareId: "usr-n520",
  version: parseVersion("1.3.0+1"),
  securityCounter: 3,
  slot: 1,
  image: { length: 500_000, sha256: H(0xaa) },
  payload: { kind: "full", length: 500_000, sha256: H(0xaa), compression: "none" },
  fetch: { stream: "app.bin" },
  issuedAt: T0,
  expiresAt: T0 + 86400,
  maxDownload: 1_000_000,
};
const delta: ReleaseManifest = { ...manifest, payload: { kind: "delta", length: 20_000, sha256: H(0xbb), baseSha256: H(0xcc), compression: "lz" } };

const state: DeviceState = {
  hardwareId: "usr-n520",
  runningVersion: parseVersion("1.2.0+9"),
  protectedCounter: 3,
  trustedTime: T0 + 100,
  newestIssuedAt: T0 - 1000,
  handledReleaseIds: [H(1), H(2)],
  runningImageSha256: H(0xcc),
  slotSize: 700_000,
  inactiveSlot: 1,
};

function accepted(m: ReleaseManifest, releaseId: Uint8Array = H(0x77)): AcceptedManifest {
  return { manifest: m, releaseId, keyId: H(0x55) };
}
function reason(m: ReleaseManifest, s: Partial<DeviceState> = {}, releaseId?: Uint8Array): ReasonCode {
  const r = checkPolicy(accepted(m, releaseId), { ...state, ...s });
  return r.ok ? Reason.OK : r.reason;
}

describe("checkPolicy", () => {
  it("accepts a full and a delta release that fit", () => {
    expect(reason(manifest)).toBe(Reason.OK);
    expect(reason(delta)).toBe(Reason.OK);
  });

  const refusals: [string, ReleaseManifest, Partial<DeviceState>, ReasonCode, Uint8Array?][] = [
    ["wrong hardware id", { ...manifest, hardwareId: "usr-g771" }, {}, Reason.MANIFEST_WRONG_HARDWARE],
    ["replayed release id", manifest, {}, Reason.MANIFEST_REPLAYED, H(2)],
    ["built for the running slot", { ...manifest, slot: 0 }, {}, Reason.MANIFEST_WRONG_SLOT],
    ["older version", { ...manifest, version: parseVersion("1.1.9+99") }, {}, Reason.MANIFEST_DOWNGRADE],
    ["older build of the same version", { ...manifest, version: parseVersion("1.2.0+8") }, {}, Reason.MANIFEST_DOWNGRADE],
    ["equal version", { ...manifest, version: parseVersion("1.2.0+9") }, {}, Reason.MANIFEST_SAME_VERSION],
    ["lower security counter", { ...manifest, securityCounter: 2 }, {}, Reason.MANIFEST_SECURITY_COUNTER],
    ["expired by the clock", manifest, { trustedTime: T0 + 86400 }, Reason.MANIFEST_EXPIRED],
    ["expired by a newer issued-at though the clock was wound back", manifest, { trustedTime: T0 - 5000, newestIssuedAt: T0 + 86400 }, Reason.MANIFEST_EXPIRED],
    ["expired with no clock at all", manifest, { trustedTime: 0, newestIssuedAt: T0 + 90000 }, Reason.MANIFEST_EXPIRED],
    ["issued in the future against a known clock", { ...manifest, issuedAt: T0 + 100 + MAX_CLOCK_SKEW_S + 1, expiresAt: T0 + 90000 }, {}, Reason.MANIFEST_NOT_YET_VALID],
    ["delta against another base", delta, { runningImageSha256: H(0xcd) }, Reason.MANIFEST_BASE_MISMATCH],
    ["image bigger than the slot", { ...manifest, image: { length: 700_001, sha256: H(0xaa) }, payload: { ...manifest.payload, length: 700_001 } }, {}, Reason.MANIFEST_TOO_BIG_FOR_SLOT],
    ["payload over the manifest's own budget", { ...manifest, maxDownload: 499_999 }, {}, Reason.MANIFEST_OVER_BUDGET],
  ];
  for (const [name, m, s, want, id] of refusals) {
    it(`${name} → ${reasonName(want)}`, () => expect(reasonName(reason(m, s, id))).toBe(reasonName(want)));
  }

  it("each kind of refusal has its own reason code", () => {
    const kinds = new Set(refusals.map((r) => r[3]));
    expect(kinds.size).toBe(11);
  });

  it("boundaries: counter equal is fine; expiry is exclusive; issued-at within the skew is fine; no clock skips not-yet-valid", () => {
    expect(reason({ ...manifest, securityCounter: 3 })).toBe(Reason.OK);
    expect(reason(manifest, { trustedTime: T0 + 86399 })).toBe(Reason.OK);
    expect(reason({ ...manifest, issuedAt: T0 + 100 + MAX_CLOCK_SKEW_S }, {})).toBe(Reason.OK);
    expect(reason({ ...manifest, issuedAt: T0 + 5000, expiresAt: T0 + 90000 }, { trustedTime: 0 })).toBe(Reason.OK);
    expect(reason(manifest, { inactiveSlot: undefined })).toBe(Reason.OK);
    expect(reason({ ...manifest, slot: 0 }, { inactiveSlot: undefined })).toBe(Reason.OK);
  });

  it("checks in the documented order (hardware before replay before version before counter before time)", () => {
    const everythingWrong: ReleaseManifest = { ...manifest, hardwareId: "x", version: parseVersion("0.1.0"), securityCounter: 0 };
    expect(reason(everythingWrong, { trustedTime: T0 + 999999 }, H(1))).toBe(Reason.MANIFEST_WRONG_HARDWARE);
    expect(reason({ ...everythingWrong, hardwareId: "usr-n520" }, { trustedTime: T0 + 999999 }, H(1))).toBe(Reason.MANIFEST_REPLAYED);
    expect(reason({ ...everythingWrong, hardwareId: "usr-n520" }, { trustedTime: T0 + 999999 })).toBe(Reason.MANIFEST_DOWNGRADE);
    expect(reason({ ...manifest, securityCounter: 0 }, { trustedTime: T0 + 999999 })).toBe(Reason.MANIFEST_SECURITY_COUNTER);
  });

  it("payload.compression must be one the device decodes: PATCH_CODEC_UNSUPPORTED, checked last", () => {
    const coded = (compression: string, kind: "full" | "delta" = "delta") => (kind === "delta" ? { ...delta, payload: { ...delta.payload, compression } } : { ...manifest, payload: { ...manifest.payload, compression } });
    for (const name of ["stored", "deflate", "range", "lz"]) expect(reason(coded(name)), name).toBe(Reason.OK);
    // a name no codec has, "none" for a delta, a codec the device does not announce
    expect(reason(coded("zstd"))).toBe(Reason.PATCH_CODEC_UNSUPPORTED);
    expect(reason(coded("none"))).toBe(Reason.PATCH_CODEC_UNSUPPORTED);
    expect(reason(coded("LZ"))).toBe(Reason.PATCH_CODEC_UNSUPPORTED);
    expect(reason(coded("lz"), { codecs: [0, 1, 2] })).toBe(Reason.PATCH_CODEC_UNSUPPORTED);
    expect(reason(coded("range"), { codecs: [3, 1] })).toBe(Reason.PATCH_CODEC_UNSUPPORTED);
    expect(reason(coded("deflate"), { codecs: [3, 1] })).toBe(Reason.OK);
    // a full image is "none" and nothing else
    expect(reason(coded("deflate", "full"))).toBe(Reason.PATCH_CODEC_UNSUPPORTED);
    // after every other check: a release that is also too old says so first
    expect(reason(coded("zstd"), { runningVersion: parseVersion("9.0.0+0") })).toBe(Reason.MANIFEST_DOWNGRADE);
  });
  it("refuses a handled-release list over its bound as misuse", () => {
    const long = Array.from({ length: MAX_HANDLED_RELEASES + 1 }, (_, i) => H(i));
    expect(() => checkPolicy(accepted(manifest), { ...state, handledReleaseIds: long })).toThrow(RangeError);
  });
});

describe("replay list and trusted time", () => {
  it("rememberRelease appends, keeps at most MAX_HANDLED_RELEASES (dropping the oldest), ignores repeats", () => {
    let list: Uint8Array[] = [];
    for (let i = 0; i < MAX_HANDLED_RELEASES + 5; i++) list = rememberRelease(list, H(i));
    expect(list.length).toBe(MAX_HANDLED_RELEASES);
    expect(list[0]).toEqual(H(5));
    expect(list[list.length - 1]).toEqual(H(MAX_HANDLED_RELEASES + 4));
    expect(rememberRelease(list, H(10)).length).toBe(MAX_HANDLED_RELEASES);
  });

  it("trusted time is max(clock, newest issued-at), and the newest issued-at never decreases", () => {
    expect(trustedNow({ trustedTime: 10, newestIssuedAt: 20 })).toBe(20);
    expect(trustedNow({ trustedTime: 30, newestIssuedAt: 20 })).toBe(30);
    expect(nextNewestIssuedAt(T0 + 5, accepted(manifest))).toBe(T0 + 5);
    expect(nextNewestIssuedAt(T0 - 5, accepted(manifest))).toBe(T0);
  });
});
