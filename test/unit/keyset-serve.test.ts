/**
 * `xs-ota serve` with key sets and a time key (issue 16B), in process over
 * the embedded broker: the newest *.keyset of the release directory goes to a
 * device whose heartbeat holds an older one (or none), before the ack; every
 * ack carries serve's time signed with the time key, which the device's
 * parser verifies against the key set; revocation records are ordered by
 * (epoch, sequence).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { decodeHeartbeatAck, decodeKeySetPayload, type Heartbeat } from "../../src/protocol/messages";
import type { MqttMessage } from "../../src/protocol/mqtt";
import { DeviceTrust, parseSignedKeySet } from "../../src/update/keyset";
import { parseSignedTime } from "../../src/update/time-statement";
import { parseVersion } from "../../src/image/format";
import { signRevocation } from "../../tools/release/revoke";
import { readKeySets } from "../../tools/serve/keysets";
import { maySubscribe, startServe, type ServeHandle } from "../../tools/serve/server";
import { connectServeDevice } from "../lib/serve-device";
import { BATCH_1, BATCH_2, fleetKeySet, ROOT, TIME_KEY } from "../lib/trust";
import { signManifest } from "../../tools/release/encode";
import { decodeEnvelope, decodeManifest } from "../../src/update/manifest";
import type { ReleaseManifest } from "../../src/update/types";

const NOW = 1_790_000_500;
let dir: string;
let serve: ServeHandle;
const logs: string[] = [];
const ks2 = fleetKeySet({ sequence: 2 });
const rec = (sequence: number, epoch = 0) => signRevocation({ hardwareId: "usr-n520", sequence, ...(epoch ? { epoch } : {}), issuedAt: NOW, minVersion: parseVersion("0.0.0")!, minSecurityCounter: 0, blocked: [] }, BATCH_1);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-keyset-"));
  writeFileSync(join(dir, "fleet-1.keyset"), fleetKeySet({ sequence: 1 }));
  writeFileSync(join(dir, "fleet-2.keyset"), ks2);
  writeFileSync(join(dir, "broken.keyset"), ks2.subarray(0, 50));
  writeFileSync(join(dir, "old.revocation"), rec(0xffff));
  writeFileSync(join(dir, "new.revocation"), rec(1, 1));
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
    timeKey: TIME_KEY,
  });
});

afterAll(async () => {
  await serve?.close();
  rmSync(dir, { recursive: true, force: true });
});

const hb = (over: Partial<Heartbeat> = {}): Heartbeat => ({
  seq: 1,
  hardwareId: "usr-n520",
  version: parseVersion("1.0.0")!,
  slot: 0,
  imageSha256: new Uint8Array(32).fill(1),
  state: "idle",
  progress: 0,
  reason: 0,
  uptime: 5,
  supplyMv: 3300,
  ...over,
});
const leaves = (msgs: MqttMessage[]) => msgs.map((m) => m.topic.split("/").slice(3).join("/"));

describe("serve: key sets and signed time", () => {
  it("reads every *.keyset that decodes and reports the others; devices may subscribe to their own keyset topic only", () => {
    const errors: string[] = [];
    expect(readKeySets(dir, { onError: (p) => errors.push(p) }).map((e) => e.keySet.sequence)).toEqual([1, 2]);
    expect(errors).toEqual([join(dir, "broken.keyset")]);
    expect(maySubscribe("dev-1", "xs-ota/v1/dev-1/keyset")).toBe(true);
    expect(maySubscribe("dev-1", "xs-ota/v1/dev-2/keyset")).toBe(false);
  });

  it("a device without the newest key set gets it before the ack; the ack's time statement verifies against it; the epoch-1 revocation record wins", async () => {
    const d = connectServeDevice("ks-1", serve.mqttPort!);
    try {
      await d.up;
      for (const held of [undefined, { epoch: 0, sequence: 1 }]) {
        const got = await d.exchange(hb(held ? { keySet: held } : {}));
        expect(leaves(got).slice(0, 2)).toEqual(["keyset", "hb/ack"]);
        const roots = createKeyring([ROOT.publicKey], softwareDigest);
        const ks = parseSignedKeySet(decodeKeySetPayload(got[0].payload), roots, softwareDigest);
        if (!ks.ok) throw new Error(ks.message);
        expect(ks.keySet.sequence).toBe(2);
        const ack = decodeHeartbeatAck(got[1].payload);
        expect(ack.time).toBe(NOW);
        const trust = new DeviceTrust(createKeyring([BATCH_1.publicKey], softwareDigest), roots, ks.keySet);
        const t = parseSignedTime(ack.statement!, trust, softwareDigest);
        expect(t.ok && t.time).toBe(NOW);
        const revs = got.filter((m) => m.topic.endsWith("/revocation"));
        expect(revs).toHaveLength(1);
        expect(Buffer.from(revs[0].payload).equals(Buffer.from(rec(1, 1)))).toBe(true);
      }
    } finally {
      d.stop();
    }
  });

  it("a device that holds the newest key set and record gets neither, only the signed ack", async () => {
    const d = connectServeDevice("ks-2", serve.mqttPort!);
    try {
      await d.up;
      const got = await d.exchange(hb({ keySet: { epoch: 0, sequence: 2 }, revocation: 1, revocationEpoch: 1 }));
      expect(leaves(got)).toEqual(["hb/ack"]);
      expect(decodeHeartbeatAck(got[0].payload).statement).toBeDefined();
      // a device still at 0xffff in epoch 0 is behind epoch 1
      const behind = await d.exchange(hb({ keySet: { epoch: 0, sequence: 2 }, revocation: 0xffff }));
      expect(leaves(behind)).toEqual(["hb/ack", "revocation"]);
    } finally {
      d.stop();
    }
  });
});

describe("serve: a release signed by a retired key is never offered", () => {
  it("skips it (logged) and offers the one signed by the new batch key", async () => {
    const dir2 = mkdtempSync(join(tmpdir(), "xs-ota-serve-retired-"));
    const seen: string[] = [];
    const full = (minor: number, tag: number): ReleaseManifest => ({
      hardwareId: "usr-n520",
      version: { major: 1, minor, revision: 0, build: 0 },
      securityCounter: 1,
      slot: 1,
      image: { length: 1000, sha256: new Uint8Array(32).fill(tag) },
      payload: { kind: "full", length: 1000, sha256: new Uint8Array(32).fill(tag), compression: "none" },
      fetch: { stream: `app-${minor}.bin` },
      issuedAt: NOW - 100,
      expiresAt: NOW + 86400,
      maxDownload: 2000,
    });
    writeFileSync(join(dir2, "fleet-2.keyset"), fleetKeySet({ sequence: 2, batch: [BATCH_2], retired: [BATCH_1] }));
    for (const [m, key, name] of [[full(2, 2), BATCH_1, "by-old"], [full(1, 1), BATCH_2, "by-new"]] as const) {
      writeFileSync(join(dir2, m.fetch.stream!), new Uint8Array(1000));
      writeFileSync(join(dir2, `${name}.manifest`), signManifest(m, key));
    }
    const s2 = await startServe({ releasesDir: dir2, host: "127.0.0.1", mqttPort: 0, httpsPort: 0, insecurePlaintext: true, heartbeatIntervalSec: 60, reportsPath: join(dir2, "reports.jsonl"), log: (l) => seen.push(l), now: () => NOW });
    const d = connectServeDevice("ks-3", s2.mqttPort!);
    try {
      await d.up;
      const got = await d.exchange(hb({ keySet: { epoch: 0, sequence: 2 } }));
      const offers = got.filter((m) => m.topic.endsWith("/offer")).map((m) => decodeManifest(decodeEnvelope(m.payload).manifest).version.minor);
      expect(offers).toEqual([1]);
      expect(seen.some((l) => l.startsWith(`skipping ${join(dir2, "by-old.manifest")}: signed by a key that key set 0.2 retired`))).toBe(true);
    } finally {
      d.stop();
      await s2.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});
