/**
 * Interop: `xs-ota serve --max-in-flight K` without a rollout plan, two serve
 * instances (in this process) on one real mosquitto, sharing the `$share`
 * group for device messages and the retained state records. The bound is the
 * fleet's, not each instance's: the devices never hold more than K places
 * together, a device that finished frees its place on both instances
 * whichever one its final report reached, a device that went silent mid-update
 * frees its place after the in-flight timeout on both, and every device ends
 * on the release (no stall at K or 2K places).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import type { MqttMessage } from "../../src/protocol/mqtt";
import { deviceSubscriptions, encodeHeartbeat, encodeStatusReport, topicFor } from "../../src/protocol/messages";
import type { ImageVersion } from "../../src/image/format";
import type { ReleaseManifest } from "../../src/update/types";
import { signerFromSecret } from "../../tools/keys/signer";
import { signManifest } from "../../tools/release/encode";
import { startServe, type ServeHandle } from "../../tools/serve/server";
import { HOST, Mosquitto, until } from "../lib/mosquitto";

const K = 2;
const DEVICES = 7;
const IN_FLIGHT_TIMEOUT_SEC = 3;
const FROM: ImageVersion = { major: 1, minor: 0, revision: 0, build: 0 };
const TO: ImageVersion = { major: 1, minor: 1, revision: 0, build: 0 };
const key = signerFromSecret(new Uint8Array(32).fill(9));

let broker: Mosquitto;
let work: string;
const serves: ServeHandle[] = [];
const stops: (() => void)[] = [];

beforeAll(async () => {
  broker = new Mosquitto();
  await broker.start();
  work = mkdtempSync(join(tmpdir(), "xs-ota-serve-mif-"));
}, 60_000);

afterAll(async () => {
  for (const s of stops.splice(0)) s();
  for (const s of serves.splice(0)) await s.close();
  await broker?.close();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

function manifest(): ReleaseManifest {
  const now = Math.floor(Date.now() / 1000);
  return {
    hardwareId: "usr-n520",
    version: TO,
    securityCounter: 1,
    slot: 1,
    image: { length: 1000, sha256: new Uint8Array(32).fill(0x44) },
    payload: { kind: "full", length: 1000, sha256: new Uint8Array(32).fill(0x44), compression: "none" },
    fetch: { stream: "full.bin" },
    issuedAt: now - 100,
    expiresAt: now + 86400,
    maxDownload: 2000,
  };
}

async function serveInstance(name: string, envelope: Uint8Array): Promise<ServeHandle> {
  // Each instance its own folder (the same release): only the broker is shared.
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "full.bin"), new Uint8Array(1000));
  writeFileSync(join(dir, "r.manifest"), envelope);
  const s = await startServe({
    releasesDir: dir,
    host: HOST,
    mqttPort: 0,
    httpsPort: 0,
    insecurePlaintext: false,
    broker: `mqtts://${HOST}:${broker.port}`,
    ca: broker.tls.ca,
    heartbeatIntervalSec: 60,
    reportsPath: join(dir, "reports.jsonl"),
    log: () => {},
    maxInFlight: K,
    inFlightTimeoutSec: IN_FLIGHT_TIMEOUT_SEC,
  });
  serves.push(s);
  return s;
}

/** Places the devices hold, as they see them: from an offer to their final report (a silent device: until serve may time it out). */
class Places {
  private readonly held = new Map<string, number>(); // device → until (ms; Infinity while updating)
  peak = 0;
  take(id: string): void {
    this.held.set(id, Infinity);
    this.peak = Math.max(this.peak, this.now());
  }
  free(id: string, untilMs = 0): void {
    this.held.set(id, untilMs);
  }
  now(): number {
    const t = Date.now();
    let n = 0;
    for (const u of this.held.values()) if (u > t) n++;
    return n;
  }
}

async function device(id: string, places: Places, silent: boolean): Promise<{ done: () => boolean; offers: () => number }> {
  const clock = new NodeClock();
  const network = new NodeNetwork({ connectTimeoutMs: 5000 });
  const inbox: MqttMessage[] = [];
  let up!: () => void;
  const isUp = new Promise<void>((r) => (up = r));
  const link = new MqttLink(
    { net: network, clock, server: { host: HOST, port: broker.port, tls: true, ca: broker.ca }, clientId: id, keepAliveSec: 30, backoff: new Backoff({ initialMs: 100, maxMs: 1000, random: seededRandom(1) }), subscriptions: deviceSubscriptions(id) },
    { onUp: () => up(), onDown: () => {}, onMessage: (m) => inbox.push(m) },
  );
  link.start();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    link.stop();
    clock.clearAll();
    network.destroyAll();
  };
  stops.push(stop);
  await isUp;
  const offers = () => inbox.filter((m) => m.topic === topicFor(id, "offer")).length;
  let done = false;
  let hbSeq = 0;
  let reportSeq = 0;
  const heartbeat = (version: ImageVersion, state: "idle" | "downloading") =>
    link.publish(topicFor(id, "hb"), encodeHeartbeat({ seq: hbSeq++, hardwareId: "usr-n520", version, slot: 0, imageSha256: new Uint8Array(32).fill(0x11), state, progress: 0, reason: 0, uptime: 5, supplyMv: 3300 }), 0);
  const report = (event: "offer-accepted" | "committed") => link.publish(topicFor(id, "status"), encodeStatusReport({ seq: reportSeq++, event, version: event === "committed" ? TO : FROM, target: TO, reason: 0 }), 1);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  void (async () => {
    while (offers() === 0 && !stopped) {
      heartbeat(FROM, "idle");
      await sleep(150);
    }
    if (stopped) return;
    places.take(id);
    report("offer-accepted");
    if (silent) {
      // Gone mid-update: serve may give its place away once the in-flight timeout passed since this last sign of life.
      places.free(id, Date.now() + IN_FLIGHT_TIMEOUT_SEC * 1000);
      await sleep(100);
      stop();
      return;
    }
    for (let i = 0; i < 3; i++) {
      heartbeat(FROM, "downloading");
      await sleep(150);
    }
    report("committed");
    places.free(id);
    done = true;
    while (!stopped) {
      heartbeat(TO, "idle");
      await sleep(300);
    }
  })();
  return { done: () => done, offers };
}

describe("interop: serve --max-in-flight without a plan, two instances on mosquitto", () => {
  it("the devices never hold more than K places together; finished and silent devices free theirs on both; every device finishes", async () => {
    const envelope = signManifest(manifest(), key);
    const [a, b] = await Promise.all([serveInstance("a", envelope), serveInstance("b", envelope)]);
    await new Promise((r) => setTimeout(r, 1500)); // both subscribed, and each has announced itself (tools/serve/plans.ts instance records)
    const places = new Places();
    // dev-0 goes silent mid-update: its place must come back, or one of the K is lost for good.
    const devs = await Promise.all(Array.from({ length: DEVICES }, (_, i) => device(`mif-${i}`, places, i === 0)));
    const peakSeen: number[] = [];
    await until(
      "every device but the silent one committed",
      () => {
        peakSeen.push(a.stats().inFlight, b.stats().inFlight);
        return devs.slice(1).every((d) => d.done());
      },
      60_000,
    );
    expect(places.peak).toBeLessThanOrEqual(K);
    expect(Math.max(...peakSeen)).toBeLessThanOrEqual(K);
    // Both instances made offers (the $share group split the heartbeats), and no device was offered twice.
    expect(a.stats().offers).toBeGreaterThan(0);
    expect(b.stats().offers).toBeGreaterThan(0);
    expect(a.stats().offers + b.stats().offers).toBe(DEVICES);
    expect(devs.map((d) => d.offers())).toEqual(devs.map(() => 1));
    expect(a.stats().withheld + b.stats().withheld).toBeGreaterThan(0);
    // Finished devices (and, after the timeout, the silent one) hold no place on either instance.
    await until("no place held on either instance", () => a.stats().inFlight === 0 && b.stats().inFlight === 0, 15_000);
  }, 120_000);
});
