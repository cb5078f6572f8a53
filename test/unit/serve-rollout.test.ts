/**
 * `xs-ota serve`'s rollout rules: at most K devices in an update at once
 * (a place from the offer or the accepted report until a final report or
 * silence), and no re-offer of a release a device finished with for good
 * (retryable reasons excepted), rebuilt from the reports log at start.
 * First the bookkeeping alone, then through serve over TLS with devices on
 * the portable MQTT client.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Reason } from "../../src/errors";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import type { MqttMessage } from "../../src/protocol/mqtt";
import { deviceSubscriptions, encodeHeartbeat, encodeStatusReport, topicFor } from "../../src/protocol/messages";
import type { ReleaseManifest } from "../../src/update/types";
import { toHex } from "../../src/util/bytes";
import { signerFromSecret } from "../../tools/keys/signer";
import { decodeReleaseEnvelope } from "../../tools/release/read";
import { signManifest } from "../../tools/release/encode";
import { RETRYABLE, Rollout } from "../../tools/serve/rollout";
import { startServe, type ServeHandle } from "../../tools/serve/server";

const NOW = 1_760_000_000;

describe("rollout bookkeeping", () => {
  it("admits at most K devices; a final report frees the place; a device keeps its own place on re-offers", () => {
    const r = new Rollout({ maxInFlight: 2, timeoutSec: 100 });
    expect(r.admit("a", "R", 0)).toBe(true);
    expect(r.admit("b", "R", 0)).toBe(true);
    expect(r.admit("c", "R", 0)).toBe(false);
    expect(r.withheld).toBe(1);
    expect(r.admit("a", "R", 1)).toBe(true); // re-offer (the first was lost)
    expect(r.inFlight(1)).toBe(2);
    r.report({ deviceId: "a", event: "offer-accepted", reason: 0, release: "R" }, 2);
    r.report({ deviceId: "a", event: "download-started", reason: 0, release: "R" }, 2);
    expect(r.admit("c", "R", 3)).toBe(false);
    r.report({ deviceId: "a", event: "committed", reason: 0, release: "R" }, 4);
    expect(r.holds("a")).toBe(false);
    expect(r.admit("c", "R", 5)).toBe(true);
    expect(r.peakInFlight).toBe(2);
  });

  it("every final event frees the place; progress events do not", () => {
    for (const event of ["committed", "rolled-back", "failed", "aborted", "offer-refused"]) {
      const r = new Rollout({ maxInFlight: 1, timeoutSec: 100 });
      r.admit("a", "R", 0);
      r.report({ deviceId: "a", event: "offer-accepted", reason: 0, release: "R" }, 1);
      r.report({ deviceId: "a", event: "download-done", reason: 0, release: "R" }, 1);
      expect(r.holds("a"), event).toBe(true);
      r.report({ deviceId: "a", event, reason: 0, release: "R" }, 1);
      expect(r.holds("a"), event).toBe(false);
    }
  });

  it("a late final report of an earlier attempt does not free the place a new offer holds", () => {
    const r = new Rollout({ maxInFlight: 1, timeoutSec: 100 });
    r.admit("a", "R", 0);
    r.report({ deviceId: "a", event: "offer-accepted", reason: 0, release: "R" }, 0);
    // The device failed (transient) and heartbeats idle; its report is still on the way: offered again.
    expect(r.admit("a", "R", 1)).toBe(true);
    r.report({ deviceId: "a", event: "failed", reason: Reason.DOWNLOAD_STALLED, release: "R" }, 1);
    expect(r.holds("a")).toBe(true);
    expect(r.admit("b", "R", 2)).toBe(false);
    r.report({ deviceId: "a", event: "offer-accepted", reason: 0, release: "R" }, 3);
    expect(r.inFlight(3)).toBe(1);
    expect(r.peakInFlight).toBe(1);
    r.report({ deviceId: "a", event: "committed", reason: 0, release: "R" }, 4);
    expect(r.holds("a")).toBe(false);
    // An offer's own answer, a refusal, frees the place.
    r.admit("c", "R", 5);
    r.report({ deviceId: "c", event: "offer-refused", reason: Reason.MANIFEST_EXPIRED, release: "R" }, 5);
    expect(r.holds("c")).toBe(false);
  });

  it("a silent device loses its place after the timeout; heartbeats keep an accepted update's place, not a mere offer's", () => {
    const r = new Rollout({ maxInFlight: 1, timeoutSec: 10 });
    r.admit("a", "R", 0);
    r.seen("a", 8); // offered only: the heartbeat does not extend it
    expect(r.inFlight(11)).toBe(0);
    expect(r.timedOut).toBe(1);
    r.admit("b", "R", 20);
    r.report({ deviceId: "b", event: "offer-accepted", reason: 0, release: "R" }, 20);
    r.seen("b", 29);
    expect(r.inFlight(35)).toBe(1);
    expect(r.inFlight(40)).toBe(0);
  });

  it("a device reporting offer-accepted without an offer from this instance takes a place (another instance offered)", () => {
    const r = new Rollout({ maxInFlight: 1, timeoutSec: 100 });
    r.report({ deviceId: "x", event: "offer-accepted", reason: 0, release: "R" }, 0);
    expect(r.admit("y", "R", 1)).toBe(false);
  });

  it("remembers final outcomes except retryable reasons", () => {
    const r = new Rollout({ maxInFlight: 0, timeoutSec: 100 });
    r.report({ deviceId: "a", event: "failed", reason: Reason.IMAGE_BAD_SIGNATURE, release: "R1" }, 0);
    r.report({ deviceId: "a", event: "offer-refused", reason: Reason.MANIFEST_EXPIRED, release: "R2" }, 0);
    r.report({ deviceId: "a", event: "committed", reason: 0, release: "R3" }, 0);
    r.report({ deviceId: "a", event: "rolled-back", reason: Reason.TRIAL_NO_CLOUD, release: "R4" }, 0);
    for (const reason of RETRYABLE) r.report({ deviceId: "b", event: reason === Reason.ROLLED_BACK ? "rolled-back" : "failed", reason, release: "R1" }, 0);
    r.report({ deviceId: "c", event: "download-started", reason: 0, release: "R1" }, 0);
    for (const id of ["R1", "R2", "R3", "R4"]) expect(r.isFinished("a", id), id).toBe(true);
    expect(r.isFinished("b", "R1")).toBe(false);
    expect(r.isFinished("c", "R1")).toBe(false);
    expect(r.isFinished("a", "R5")).toBe(false);
    expect(r.admit("a", "R5", 0)).toBe(true); // no bound
  });

  it("a refusal without a release id (the manifest did not verify) answers the last offer", () => {
    const r = new Rollout({ maxInFlight: 0, timeoutSec: 100 });
    r.admit("a", "R1", 0);
    r.report({ deviceId: "a", event: "offer-refused", reason: Reason.MANIFEST_UNKNOWN_KEY }, 1);
    expect(r.isFinished("a", "R1")).toBe(true);
    r.report({ deviceId: "b", event: "offer-refused", reason: Reason.MANIFEST_UNKNOWN_KEY }, 1); // never offered here
    expect(r.isFinished("b", "R1")).toBe(false);
  });

  it("rebuilds from a reports log, skipping a torn line", () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-rollout-"));
    try {
      const path = join(dir, "reports.jsonl");
      writeFileSync(
        path,
        [
          JSON.stringify({ deviceId: "a", event: "failed", reason: Reason.IMAGE_BAD_SIGNATURE, release: "R1" }),
          JSON.stringify({ deviceId: "a", event: "failed", reason: Reason.DOWNLOAD_STALLED, release: "R2" }),
          '{"deviceId":"b","event":"comm',
        ].join("\n"),
      );
      const r = new Rollout({ maxInFlight: 1, timeoutSec: 10 });
      expect(r.rebuild(path)).toBe(2);
      expect(r.isFinished("a", "R1")).toBe(true);
      expect(r.isFinished("a", "R2")).toBe(false);
      expect(new Rollout({ maxInFlight: 1, timeoutSec: 10 }).rebuild(join(dir, "none"))).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses bad options", () => {
    expect(() => new Rollout({ maxInFlight: -1, timeoutSec: 1 })).toThrow(RangeError);
    expect(() => new Rollout({ maxInFlight: 1.5, timeoutSec: 1 })).toThrow(RangeError);
    expect(() => new Rollout({ maxInFlight: 1, timeoutSec: 0 })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------- through serve, over TLS

const key = signerFromSecret(new Uint8Array(32).fill(9));
const RUNNING = new Uint8Array(32).fill(0x11);

function manifest(): ReleaseManifest {
  return {
    hardwareId: "usr-n520",
    version: { major: 1, minor: 1, revision: 0, build: 0 },
    securityCounter: 1,
    slot: 1,
    image: { length: 1000, sha256: new Uint8Array(32).fill(0x44) },
    payload: { kind: "full", length: 1000, sha256: new Uint8Array(32).fill(0x44), compression: "none" },
    fetch: { stream: "full.bin" },
    issuedAt: NOW - 100,
    expiresAt: NOW + 86400,
    maxDownload: 2000,
  };
}

const hb = (seq: number) =>
  encodeHeartbeat({ seq, hardwareId: "usr-n520", version: { major: 1, minor: 0, revision: 0, build: 0 }, slot: 0, imageSha256: RUNNING, state: "idle", progress: 0, reason: 0, uptime: 5, supplyMv: 3300 });

interface FakeDevice {
  offers(): number;
  heartbeat(seq: number): Promise<void>;
  report(event: "offer-accepted" | "committed" | "failed" | "offer-refused", reason: number): void;
  stop(): void;
}

let dir: string;
let serve: ServeHandle | undefined;
const stops: (() => void)[] = [];

afterEach(async () => {
  for (const s of stops.splice(0)) s();
  await serve?.close();
  serve = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function start(maxInFlight: number): Promise<{ releaseId: string }> {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-rollout-"));
  writeFileSync(join(dir, "full.bin"), new Uint8Array(1000));
  const envelope = signManifest(manifest(), key);
  writeFileSync(join(dir, "r.manifest"), envelope);
  serve = await startServe({
    releasesDir: dir,
    host: "127.0.0.1",
    mqttPort: 0,
    httpsPort: 0,
    insecurePlaintext: false,
    heartbeatIntervalSec: 60,
    reportsPath: join(dir, "reports.jsonl"),
    log: () => {},
    now: () => NOW,
    maxInFlight,
  });
  return { releaseId: toHex(decodeReleaseEnvelope(envelope).releaseId) };
}

async function device(id: string, releaseId: string): Promise<FakeDevice> {
  const ca = readFileSync(serve!.caPath!, "utf8");
  const clock = new NodeClock();
  const network = new NodeNetwork({ connectTimeoutMs: 5000 });
  const inbox: MqttMessage[] = [];
  let up!: () => void;
  const isUp = new Promise<void>((r) => (up = r));
  const link = new MqttLink(
    { net: network, clock, server: { host: "127.0.0.1", port: serve!.mqttPort!, tls: true, ca }, clientId: id, keepAliveSec: 30, backoff: new Backoff({ initialMs: 100, maxMs: 1000, random: seededRandom(1) }), subscriptions: deviceSubscriptions(id) },
    { onUp: () => up(), onDown: () => {}, onMessage: (m) => inbox.push(m) },
  );
  link.start();
  const stop = () => {
    link.stop();
    clock.clearAll();
    network.destroyAll();
  };
  stops.push(stop);
  await isUp;
  let reportSeq = 0;
  return {
    offers: () => inbox.filter((m) => m.topic === topicFor(id, "offer")).length,
    async heartbeat(seq) {
      const acks = () => inbox.filter((m) => m.topic === topicFor(id, "hb/ack")).length;
      const before = acks();
      link.publish(topicFor(id, "hb"), hb(seq), 0);
      const deadline = Date.now() + 5000;
      while (acks() === before) {
        if (Date.now() > deadline) throw new Error(`${id}: no ack`);
        await new Promise((r) => setTimeout(r, 10));
      }
      await new Promise((r) => setTimeout(r, 50)); // the offer follows the ack
    },
    report(event, reason) {
      link.publish(
        topicFor(id, "status"),
        encodeStatusReport({ seq: reportSeq++, event, version: { major: 1, minor: 0, revision: 0, build: 0 }, target: { major: 1, minor: 1, revision: 0, build: 0 }, reason, releaseId: Uint8Array.from(Buffer.from(releaseId, "hex")) }),
        1,
      );
    },
    stop,
  };
}

async function settle(what: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!what()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("serve: --max-in-flight and finished releases, over TLS", () => {
  it("offers to at most K devices until one reports a final outcome", async () => {
    const { releaseId } = await start(1);
    const a = await device("dev-a", releaseId);
    const b = await device("dev-b", releaseId);
    await a.heartbeat(1);
    expect(a.offers()).toBe(1);
    await b.heartbeat(1);
    expect(b.offers()).toBe(0);
    expect(serve!.stats()).toMatchObject({ offers: 1, withheld: 1, inFlight: 1 });
    a.report("offer-accepted", 0);
    a.report("committed", 0);
    await settle(() => serve!.stats().reports === 2);
    await b.heartbeat(2);
    expect(b.offers()).toBe(1);
    expect(serve!.stats()).toMatchObject({ offers: 2, withheld: 1, inFlight: 1, peakInFlight: 1 });
    expect(serve!.summary()).toMatch(/in flight: 1 of at most 1 \(peak 1\); offers withheld for a place: 1/);
  });

  it("does not re-offer a release the device refused or failed for good; does after a retryable failure", async () => {
    const { releaseId } = await start(0);
    const a = await device("dev-a", releaseId);
    const b = await device("dev-b", releaseId);
    await a.heartbeat(1);
    await b.heartbeat(1);
    expect([a.offers(), b.offers()]).toEqual([1, 1]);
    a.report("offer-refused", Reason.MANIFEST_REPLAYED);
    b.report("failed", Reason.DOWNLOAD_STALLED);
    await settle(() => serve!.stats().reports === 2);
    await a.heartbeat(2);
    await b.heartbeat(2);
    expect([a.offers(), b.offers()]).toEqual([1, 2]);
    expect(serve!.stats().finishedSkips).toBe(1);
  });

  it("a restarted serve remembers finished releases from its reports log", async () => {
    const { releaseId } = await start(0);
    const a = await device("dev-a", releaseId);
    a.report("failed", Reason.IMAGE_BAD_SIGNATURE);
    await settle(() => serve!.stats().reports === 1);
    a.stop();
    await serve!.close();
    serve = await startServe({ releasesDir: dir, host: "127.0.0.1", mqttPort: 0, httpsPort: 0, insecurePlaintext: false, heartbeatIntervalSec: 60, reportsPath: join(dir, "reports.jsonl"), log: () => {}, now: () => NOW });
    const again = await device("dev-a", releaseId);
    const other = await device("dev-c", releaseId);
    await again.heartbeat(1);
    await other.heartbeat(1);
    expect([again.offers(), other.offers()]).toEqual([0, 1]);
  });
});
