/**
 * `xs-ota serve` with revocation records: the offer selection never offers a
 * revoked release (blocked hash, below the minimum version or counter) and
 * offers a replacement to a device whose running image is revoked; the
 * release directory's newest record per hardware id wins; and, in process
 * over the embedded broker, a device holding an older record (or none) gets
 * the newest one on its revocation topic, authenticated by the device's
 * parser, then the right offer or replacement.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import type { MqttMessage } from "../../src/protocol/mqtt";
import { decodeRevocationPayload, type Heartbeat } from "../../src/protocol/messages";
import { connectServeDevice } from "../lib/serve-device";
import { decodeManifest } from "../../src/update/manifest";
import { parseSignedRevocation, type RevocationRecord } from "../../src/update/revocation";
import type { ReleaseManifest } from "../../src/update/types";
import { signerFromSecret } from "../../tools/keys/signer";
import { signManifest } from "../../tools/release/encode";
import { newestRevocations, signRevocation } from "../../tools/release/revoke";
import { readRevocations } from "../../tools/serve/revocations";
import { chooseOffer, isRevokedRelease, offerContext, type OfferCandidate } from "../../tools/serve/offers";
import { maySubscribe, startServe, type ServeHandle } from "../../tools/serve/server";
import { decodeEnvelope } from "../../src/update/manifest";

const NOW = 1_760_000_000;
const RUNNING = new Uint8Array(32).fill(0x11);
const H = (b: number) => new Uint8Array(32).fill(b);
const V = (major: number, minor: number, revision = 0) => ({ major, minor, revision, build: 0 });

/** A full release for slot 1 whose image hash is H(tag). */
function release(version: [number, number], tag: number, securityCounter = 1, over: Partial<ReleaseManifest> = {}): ReleaseManifest {
  return {
    hardwareId: "usr-n520",
    version: V(...version),
    securityCounter,
    slot: 1,
    image: { length: 1000, sha256: H(tag) },
    payload: { kind: "full", length: 1000, sha256: H(tag), compression: "none" },
    fetch: { stream: `app-${version.join(".")}-${tag}.bin` },
    issuedAt: NOW - 100,
    expiresAt: NOW + 86400,
    maxDownload: 2000,
    ...over,
  };
}
const cand = (m: ReleaseManifest): OfferCandidate => ({ manifest: m, envelope: new Uint8Array(1), payloadPath: "/x" });
const record = (over: Partial<RevocationRecord> = {}): RevocationRecord => ({
  hardwareId: "usr-n520",
  sequence: 2,
  issuedAt: NOW - 10,
  minVersion: V(0, 0),
  minSecurityCounter: 0,
  blocked: [],
  ...over,
});
const device = { hardwareId: "usr-n520", version: V(1, 1), slot: 0 as const, imageSha256: RUNNING, state: "idle" };

describe("offer selection with a revocation record", () => {
  const r10 = cand(release([1, 0], 0x10, 1));
  const r20 = cand(release([1, 2], 0x20, 1));
  const r30 = cand(release([1, 3], 0x30, 2));
  const all = [r10, r20, r30];

  it("without a record: the newest release, as before", () => {
    expect(chooseOffer(all, device, NOW)).toBe(r30);
  });
  it("a blocked image hash is never offered; the next newest allowed release is", () => {
    const rec = record({ blocked: [H(0x30)] });
    expect(isRevokedRelease(r30.manifest, rec)).toBe(true);
    expect(chooseOffer(all, device, NOW, { revocation: rec })).toBe(r20);
    expect(chooseOffer(all, device, NOW, { revocation: record({ blocked: [H(0x30), H(0x20)] }) })).toBeUndefined();
  });
  it("a release below the minimum version or security counter is never offered (the minimum itself is)", () => {
    expect(chooseOffer([r20], device, NOW, { revocation: record({ minVersion: V(1, 2, 1) }) })).toBeUndefined();
    expect(chooseOffer([r20], device, NOW, { revocation: record({ minVersion: V(1, 2) }) })).toBe(r20);
    expect(chooseOffer(all, device, NOW, { revocation: record({ minSecurityCounter: 3 }) })).toBeUndefined();
    expect(chooseOffer(all, device, NOW, { revocation: record({ minSecurityCounter: 2 }) })).toBe(r30);
  });
  it("another hardware's record revokes nothing here", () => {
    const g = record({ hardwareId: "usr-g771", blocked: [H(0x30)] });
    expect(isRevokedRelease(r30.manifest, g)).toBe(false);
    expect(chooseOffer(all, device, NOW, { revocation: g })).toBe(r30);
  });

  describe("replacement of a revoked running image", () => {
    // The device runs 1.3.0 (image H(0x30), counter 2) from slot 0; 1.3.0 is blocked.
    const running = { ...device, version: V(1, 3), imageSha256: H(0x30) };
    const s0 = (m: ReleaseManifest) => cand({ ...m, slot: 1 });
    const runningRelease = s0(release([1, 3], 0x30, 2));
    const older = s0(release([1, 2], 0x22, 2));
    const olderLowCounter = s0(release([1, 2, ], 0x21, 1, { version: V(1, 2, 5) }));
    const oldest = s0(release([1, 0], 0x10, 2));
    const rec = record({ blocked: [H(0x30)], minVersion: V(1, 1) });

    it("replacement mode only when the device says so (state revoked) and holds serve's record", () => {
      const c = [runningRelease, older];
      expect(offerContext(c, { ...running, state: "revoked", revocation: 2 }, rec)).toMatchObject({ replace: true, runningCounter: 2, revocation: rec });
      expect(offerContext(c, { ...running, state: "revoked", revocation: 1 }, rec).replace).toBe(false);
      expect(offerContext(c, { ...running, state: "revoked" }, rec).replace).toBe(false);
      expect(offerContext(c, { ...running, state: "idle", revocation: 2 }, rec).replace).toBe(false);
      expect(offerContext(c, { ...running, state: "revoked", revocation: 2 }, undefined).replace).toBe(false);
      expect(offerContext([older], { ...running, state: "revoked", revocation: 2 }, rec).runningCounter).toBeUndefined();
    });
    it("offers a newer allowed release only (direct-xip boots the highest version); never a lower counter, never an older release", () => {
      const candidates = [runningRelease, older, olderLowCounter, oldest];
      const ctx = offerContext(candidates, { ...running, state: "revoked", revocation: 2 }, rec);
      // An older release could never win MCUboot's direct-xip boot over the confirmed revoked 1.3.0: not offered.
      expect(chooseOffer(candidates, running, NOW, ctx)).toBeUndefined();
      // The fix is re-released with a higher version: offered.
      const fixed = s0(release([1, 4], 0x40, 2));
      expect(chooseOffer([...candidates, fixed], running, NOW, ctx)).toBe(fixed);
      // A newer one with a counter below the running release's is not (the device's protected counter would refuse it).
      const lowCounter = s0(release([1, 5], 0x41, 1));
      expect(chooseOffer([lowCounter], running, NOW, ctx)).toBeUndefined();
      // A newer release that is itself revoked is not.
      const blocked = s0(release([1, 6], 0x30, 2));
      expect(chooseOffer([blocked], running, NOW, ctx)).toBeUndefined();
    });
  });
});

// ---------------------------------------------------------------- the release directory and the exchange

const key = signerFromSecret(new Uint8Array(32).fill(9));
const keyring = createKeyring([key.publicKey], softwareDigest);
let dir: string;
let serve: ServeHandle;
const logs: string[] = [];
let rec2: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-revocation-"));
  for (const [m, name] of [
    [release([1, 2], 0x20, 2), "a-1.2.0"],
    [release([1, 3], 0x30, 2), "a-1.3.0"],
    [{ ...release([1, 0], 0x10, 2), slot: 0 as const }, "a-1.0.0-s0"],
  ] as const) {
    writeFileSync(join(dir, m.fetch.stream!), new Uint8Array(1000));
    writeFileSync(join(dir, `${name}.manifest`), signManifest(m, key));
  }
  writeFileSync(join(dir, "n520-1.revocation"), signRevocation(record({ sequence: 1, blocked: [H(0x20)] }), key));
  rec2 = signRevocation(record({ sequence: 2, blocked: [H(0x30)], minVersion: V(1, 1) }), key);
  writeFileSync(join(dir, "n520-2.revocation"), rec2);
  writeFileSync(join(dir, "g771-5.revocation"), signRevocation(record({ hardwareId: "usr-g771", sequence: 5 }), key));
  writeFileSync(join(dir, "broken.revocation"), rec2.subarray(0, 40));
  serve = await startServe({
    releasesDir: dir,
    host: "127.0.0.1",
    mqttPort: 0,
    httpsPort: 0,
    insecurePlaintext: true,
    heartbeatIntervalSec: 60,
    reportsPath: join(dir, "reports.jsonl"),
    log: (l) => logs.push(l),
    now: () => NOW,
  });
});

afterAll(async () => {
  await serve?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("revocation records in the release directory", () => {
  it("reads every *.revocation that decodes, reports the others, and the greatest sequence per hardware id wins", () => {
    const errors: string[] = [];
    const entries = readRevocations(dir, { onError: (p) => errors.push(p) });
    expect(entries.map((e) => e.record.sequence)).toEqual([5, 1, 2]);
    expect(errors).toEqual([join(dir, "broken.revocation")]);
    const newest = newestRevocations(entries);
    expect(newest.get("usr-n520")?.record.sequence).toBe(2);
    expect(newest.get("usr-g771")?.record.sequence).toBe(5);
    expect(logs.some((l) => l.startsWith(`skipping ${join(dir, "broken.revocation")}`))).toBe(false); // read lazily, on the first heartbeat
  });
  it("two different records with one sequence: the first by path is kept and the conflict is reported", () => {
    const a = { path: "a", bytes: Uint8Array.of(1), record: record() };
    const b = { path: "b", bytes: Uint8Array.of(2), record: record() };
    const conflicts: string[] = [];
    expect(newestRevocations([a, b], (k, d) => conflicts.push(`${k.path}<${d.path}`)).get("usr-n520")).toBe(a);
    expect(conflicts).toEqual(["a<b"]);
  });
  it("the embedded broker lets a device subscribe to its own revocation topic only", () => {
    expect(maySubscribe("dev-1", "xs-ota/v1/dev-1/revocation")).toBe(true);
    expect(maySubscribe("dev-1", "xs-ota/v1/dev-2/revocation")).toBe(false);
  });
});

function connectDevice(id: string) {
  return connectServeDevice(id, serve.mqttPort!);
}

const hb = (over: Partial<Heartbeat>): Heartbeat => ({
  seq: 1,
  hardwareId: "usr-n520",
  version: V(1, 1),
  slot: 0,
  imageSha256: RUNNING,
  state: "idle",
  progress: 0,
  reason: 0,
  uptime: 5,
  supplyMv: 3300,
  ...over,
});
const leaf = (msgs: MqttMessage[], l: string) => msgs.filter((m) => m.topic.endsWith(`/${l}`));
const offeredVersion = (msgs: MqttMessage[]) => leaf(msgs, "offer").map((m) => {
  const v = decodeManifest(decodeEnvelope(m.payload).manifest).version;
  return `${v.major}.${v.minor}.${v.revision}`;
});

describe("serve: publishing revocation records to devices", () => {
  it("a device holding none (or an older one) gets the newest record, which it authenticates; the offer skips revoked releases", async () => {
    const d = connectDevice("rev-1");
    try {
      await d.up;
      for (const held of [undefined, 1]) {
        const got = await d.exchange(hb(held === undefined ? {} : { revocation: held }));
        const revs = leaf(got, "revocation");
        expect(revs.length).toBe(1);
        expect(revs[0].qos).toBe(1);
        expect(Buffer.from(decodeRevocationPayload(revs[0].payload)).equals(Buffer.from(rec2))).toBe(true);
        const parsed = parseSignedRevocation(revs[0].payload, keyring, softwareDigest);
        expect(parsed.ok && parsed.record.sequence).toBe(2);
        // 1.3.0 is blocked by record 2 (1.2.0 only by record 1, which record 2 replaced).
        expect(offeredVersion(got)).toEqual(["1.2.0"]);
      }
    } finally {
      d.stop();
    }
  });

  it("a device that holds the newest record gets no record; a busy device gets the record but no offer", async () => {
    const d = connectDevice("rev-2");
    try {
      await d.up;
      const current = await d.exchange(hb({ revocation: 2 }));
      expect(leaf(current, "revocation").length).toBe(0);
      expect(offeredVersion(current)).toEqual(["1.2.0"]);
      const busy = await d.exchange(hb({ state: "downloading", progress: 30, revocation: 1 }));
      expect(leaf(busy, "revocation").length).toBe(1);
      expect(leaf(busy, "offer").length).toBe(0);
      // Another hardware id gets its own record.
      const g = await d.exchange(hb({ hardwareId: "usr-g771" }));
      const gr = parseSignedRevocation(leaf(g, "revocation")[0].payload, keyring, softwareDigest);
      expect(gr.ok && gr.record.hardwareId).toBe("usr-g771");
    } finally {
      d.stop();
    }
  });

  it("a device whose running 1.3.0 is revoked asks (state revoked); no older release is offered (direct-xip would never boot it)", async () => {
    const d = connectDevice("rev-3");
    try {
      await d.up;
      const running = { version: V(1, 3), slot: 0 as const, imageSha256: H(0x30) };
      const idle = await d.exchange(hb({ ...running, revocation: 2 }));
      expect(leaf(idle, "offer").length).toBe(0); // nothing newer than 1.3.0
      const asks = await d.exchange(hb({ ...running, state: "revoked", revocation: 2 }));
      // 1.2.0 is allowed but older: MCUboot direct-xip boots the highest valid version, so it could never replace 1.3.0.
      expect(offeredVersion(asks)).toEqual([]);
      expect(leaf(asks, "hb/ack").length).toBe(1);
    } finally {
      d.stop();
    }
  });
});
