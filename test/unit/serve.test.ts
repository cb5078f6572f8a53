/**
 * `xs-ota serve`: offer selection (hand-built entries), the Range header and
 * topic rules, and the whole exchange in-process: a device (the portable
 * MQTT client over the Node TLS socket) heartbeats, gets the ack and the
 * right offer, downloads the payload by MQTT chunks and by HTTPS Range, and
 * reports; the embedded broker keeps devices on their own topics.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Reason } from "../../src/errors";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { HttpClient } from "../../src/protocol/http";
import { MqttLink } from "../../src/protocol/link";
import type { MqttMessage } from "../../src/protocol/mqtt";
import {
  ChunkStatus,
  decodeChunkReply,
  decodeCommand,
  decodeHeartbeatAck,
  deviceSubscriptions,
  encodeChunkRequest,
  encodeHeartbeat,
  encodeStatusReport,
  topicFor,
  type Heartbeat,
} from "../../src/protocol/messages";
import type { ReleaseManifest } from "../../src/update/types";
import { signerFromSecret } from "../../tools/keys/signer";
import { signManifest } from "../../tools/release/encode";
import { chooseOffer, installSeconds, type OfferCandidate } from "../../tools/serve/offers";
import { mayPublish, maySubscribe, parseRangeHeader, startServe, type ServeHandle } from "../../tools/serve/server";

const NOW = 1_760_000_000;
const RUNNING = new Uint8Array(32).fill(0x11);
const OTHER = new Uint8Array(32).fill(0x22);

function manifest(over: { version?: [number, number, number]; slot?: 0 | 1; kind?: "full" | "delta"; base?: Uint8Array; hw?: string; length?: number; stream?: string; expiresAt?: number; url?: string; compression?: string; imageLength?: number }): ReleaseManifest {
  const [major, minor, revision] = over.version ?? [1, 1, 0];
  const length = over.length ?? 1000;
  return {
    hardwareId: over.hw ?? "usr-n520",
    version: { major, minor, revision, build: 0 },
    securityCounter: 1,
    slot: over.slot ?? 1,
    // A full payload is the image itself (the manifest decoder insists).
    image: over.kind === "delta" ? { length: over.imageLength ?? 5000, sha256: new Uint8Array(32).fill(0x33) } : { length, sha256: new Uint8Array(32).fill(0x44) },
    // A delta names its codec (a version-1 one unless asked: every device decodes it).
    payload: { kind: over.kind ?? "full", length, sha256: new Uint8Array(32).fill(0x44), ...(over.kind === "delta" ? { baseSha256: over.base ?? RUNNING } : {}), compression: over.compression ?? (over.kind === "delta" ? "deflate" : "none") },
    fetch: { ...(over.stream !== undefined ? { stream: over.stream } : {}), ...(over.url ? { url: over.url } : {}) },
    issuedAt: NOW - 100,
    expiresAt: over.expiresAt ?? NOW + 86400,
    maxDownload: 2 * length,
  };
}

const cand = (m: ReleaseManifest, payloadPath: string | undefined = "/x"): OfferCandidate => ({ manifest: m, envelope: new Uint8Array(1), payloadPath });

const device = { hardwareId: "usr-n520", version: { major: 1, minor: 0, revision: 0, build: 0 }, slot: 0 as const, imageSha256: RUNNING };

describe("offer selection", () => {
  it("offers the newest release built for the inactive slot", () => {
    const a = cand(manifest({ version: [1, 1, 0] }));
    const b = cand(manifest({ version: [1, 2, 0] }));
    const wrongSlot = cand(manifest({ version: [1, 3, 0], slot: 0 }));
    expect(chooseOffer([a, b, wrongSlot], device, NOW)).toBe(b);
    expect(chooseOffer([a, b, wrongSlot], { ...device, slot: 1 }, NOW)).toBe(wrongSlot); // running from slot 1: the slot-0 build
  });
  it("prefers a delta whose base is the running image, else the full image", () => {
    const full = cand(manifest({ version: [1, 2, 0], length: 5000 }));
    const delta = cand(manifest({ version: [1, 2, 0], kind: "delta", base: RUNNING, length: 300 }));
    const otherDelta = cand(manifest({ version: [1, 2, 0], kind: "delta", base: OTHER, length: 200 }));
    expect(chooseOffer([full, otherDelta, delta], device, NOW)).toBe(delta);
    expect(chooseOffer([full, otherDelta], device, NOW)).toBe(full);
    expect(chooseOffer([otherDelta], device, NOW)).toBeUndefined();
  });
  describe("a delta's codec, from the decode cost the device announces", () => {
    const IMAGE = 100_000;
    const lz = cand(manifest({ version: [1, 2, 0], kind: "delta", length: 3000, compression: "lz", imageLength: IMAGE }));
    const range = cand(manifest({ version: [1, 2, 0], kind: "delta", length: 2500, compression: "range", imageLength: IMAGE }));
    const deflate = cand(manifest({ version: [1, 2, 0], kind: "delta", length: 4000, compression: "deflate", imageLength: IMAGE }));
    const full = cand(manifest({ version: [1, 2, 0], length: IMAGE }));
    const m7 = { mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 4211 }, { codec: 1, instructionsPerByte: 3698 }, { codec: 2, instructionsPerByte: 81120 }] };
    it("estimated install = payload / link rate + image × instructions per byte / (MHz × 10^6)", () => {
      expect(installSeconds(lz.manifest, m7, 1000)).toBeCloseTo(3 + (IMAGE * 4211) / 400e6, 9);
      expect(installSeconds(range.manifest, m7, 1000)).toBeCloseTo(2.5 + (IMAGE * 81120) / 400e6, 9);
      expect(installSeconds(full.manifest, m7, 1000)).toBe(100);
      expect(installSeconds(lz.manifest, undefined, 1000)).toBeUndefined(); // an older agent: no codec 3
      expect(installSeconds(range.manifest, undefined, 1000)).toBe(2.5); // no cost announced: download only
      expect(installSeconds(cand(manifest({ kind: "delta", compression: "none" })).manifest, m7, 1000)).toBeUndefined();
    });
    it("a fast link: the codec cheap to decode, though its patch is larger", () => {
      expect(chooseOffer([range, full, lz], { ...device, decode: m7 }, NOW, { linkRate: 1_000_000 })).toBe(lz);
      // the default link rate (20,000 B/s): 2.5 KB saved is 0.025 s, against 19 s more decoding
      expect(chooseOffer([range, full, lz], { ...device, decode: m7 }, NOW)).toBe(lz);
    });
    it("a slow link and a fast CPU: the smaller range patch", () => {
      const fastCpu = { ...m7, mhz: 4000 };
      // lz: 30 s + 0.14 s; range: 25 s + 2.05 s
      expect(chooseOffer([lz, full, range], { ...device, decode: fastCpu }, NOW, { linkRate: 100 })).toBe(range);
      // the same CPU on a fast link: lz again
      expect(chooseOffer([lz, full, range], { ...device, decode: fastCpu }, NOW, { linkRate: 100_000 })).toBe(lz);
    });
    it("a heartbeat without the announcement (an older agent) never gets codec 3: version-1 codecs, the smallest, else the full image", () => {
      expect(chooseOffer([lz, full], device, NOW, { linkRate: 100 })).toBe(full);
      expect(chooseOffer([lz, deflate, full], device, NOW)).toBe(deflate);
      expect(chooseOffer([lz, deflate, range, full], device, NOW)).toBe(range);
      expect(chooseOffer([lz], device, NOW)).toBeUndefined();
    });
    it("a codec the device does not announce is never offered, however small", () => {
      const noRange = { mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 4211 }, { codec: 1, instructionsPerByte: 3698 }] };
      expect(chooseOffer([range, deflate, full], { ...device, decode: noRange }, NOW, { linkRate: 10 })).toBe(deflate);
      const onlyRange = { mhz: 400, codecs: [{ codec: 2, instructionsPerByte: 81120 }] };
      expect(chooseOffer([lz, deflate, full], { ...device, decode: onlyRange }, NOW)).toBe(full);
    });
    it("a newer version still wins over a quicker install of an older one; a bad link rate is misuse", () => {
      const newer = cand(manifest({ version: [1, 3, 0], kind: "delta", length: 90_000, compression: "range", imageLength: IMAGE }));
      expect(chooseOffer([lz, newer], { ...device, decode: m7 }, NOW)).toBe(newer);
      for (const linkRate of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => chooseOffer([lz], { ...device, decode: m7 }, NOW, { linkRate })).toThrow(RangeError);
    });
  });
  it("never offers another hardware's, an older, the same, an expired or an undeliverable release", () => {
    expect(chooseOffer([cand(manifest({ hw: "usr-g771", version: [2, 0, 0] }))], device, NOW)).toBeUndefined();
    expect(chooseOffer([cand(manifest({ version: [1, 0, 0] }))], device, NOW)).toBeUndefined();
    expect(chooseOffer([cand(manifest({ version: [0, 9, 0] }))], device, NOW)).toBeUndefined();
    expect(chooseOffer([cand(manifest({ version: [1, 1, 0], expiresAt: NOW }))], device, NOW)).toBeUndefined();
    const noPayload: OfferCandidate = { manifest: manifest({ version: [1, 1, 0] }), envelope: new Uint8Array(1), payloadPath: undefined };
    expect(chooseOffer([noPayload], device, NOW)).toBeUndefined();
    const byUrl: OfferCandidate = { manifest: manifest({ version: [1, 1, 0], url: "https://cdn.example/x" }), envelope: new Uint8Array(1), payloadPath: undefined };
    expect(chooseOffer([byUrl], device, NOW)).toBe(byUrl);
  });
});

describe("serve helpers", () => {
  it("parses Range headers against a file size", () => {
    expect(parseRangeHeader(undefined, 10)).toBeNull();
    expect(parseRangeHeader("bytes=0-3", 10)).toEqual({ start: 0, end: 3 });
    expect(parseRangeHeader("bytes=5-", 10)).toEqual({ start: 5, end: 9 });
    expect(parseRangeHeader("bytes=-4", 10)).toEqual({ start: 6, end: 9 });
    expect(parseRangeHeader("bytes=8-100", 10)).toEqual({ start: 8, end: 9 });
    expect(parseRangeHeader("bytes=10-12", 10)).toBeUndefined();
    expect(parseRangeHeader("bytes=0-1,4-5", 10)).toBeNull();
  });
  it("keeps each client on its own device topics", () => {
    expect(mayPublish("dev-1", "xs-ota/v1/dev-1/hb")).toBe(true);
    expect(mayPublish("dev-1", "xs-ota/v1/dev-1/chunk/req")).toBe(true);
    expect(mayPublish("dev-1", "xs-ota/v1/dev-2/hb")).toBe(false);
    expect(mayPublish("dev-1", "xs-ota/v1/dev-1/offer")).toBe(false);
    expect(mayPublish("dev-1", "other/topic")).toBe(false);
    expect(maySubscribe("dev-1", "xs-ota/v1/dev-1/offer")).toBe(true);
    expect(maySubscribe("dev-1", "xs-ota/v1/dev-1/#")).toBe(true);
    expect(maySubscribe("dev-1", "xs-ota/v1/+/offer")).toBe(false);
    expect(maySubscribe("dev-1", "xs-ota/v1/dev-2/offer")).toBe(false);
    expect(maySubscribe("dev-1", "#")).toBe(false);
  });
});

// ---------------------------------------------------------------- in-process exchange

let dir: string;
let serve: ServeHandle;
let ca: string;
const logs: string[] = [];
const PAYLOAD = new Uint8Array(10_000).map((_, i) => (i * 31 + 7) & 0xff);
let deltaEnvelope: Uint8Array;
const key = signerFromSecret(new Uint8Array(32).fill(7));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-"));
  writeFileSync(join(dir, "full-1.2.0.bin"), PAYLOAD);
  writeFileSync(join(dir, "delta-1.2.0.patch"), PAYLOAD.subarray(0, 3000));
  writeFileSync(join(dir, "full-1.2.0.manifest"), signManifest(manifest({ version: [1, 2, 0], length: PAYLOAD.length, stream: "full-1.2.0.bin" }), key));
  deltaEnvelope = signManifest(manifest({ version: [1, 2, 0], kind: "delta", base: RUNNING, length: 3000, stream: "delta-1.2.0.patch" }), key);
  writeFileSync(join(dir, "delta-1.2.0.manifest"), deltaEnvelope);
  serve = await startServe({
    releasesDir: dir,
    host: "127.0.0.1",
    mqttPort: 0,
    httpsPort: 0,
    insecurePlaintext: false,
    heartbeatIntervalSec: 120,
    reportsPath: join(dir, "reports.jsonl"),
    log: (l) => logs.push(l),
    now: () => NOW,
  });
  ca = readFileSync(serve.caPath!, "utf8");
});

afterAll(async () => {
  if (logs.some((l) => l.startsWith("skipping"))) console.log(logs.join("\n"));
  await serve?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A device on the real TLS socket with a message queue and bounded waits. */
function connectDevice(id: string, subscriptions = deviceSubscriptions(id)) {
  const clock = new NodeClock();
  const network = new NodeNetwork({ connectTimeoutMs: 5000 });
  const queue: MqttMessage[] = [];
  const waiters: (() => void)[] = [];
  let refused: readonly string[] = [];
  const downs: number[] = [];
  let upResolve: () => void;
  const up = new Promise<void>((r) => (upResolve = r));
  const link = new MqttLink(
    { net: network, clock, server: { host: "127.0.0.1", port: serve.mqttPort!, tls: true, ca }, clientId: id, keepAliveSec: 30, backoff: new Backoff({ initialMs: 100, maxMs: 1000, random: seededRandom(1) }), subscriptions },
    {
      onUp: (r) => {
        refused = r;
        upResolve();
      },
      onDown: (reason) => downs.push(reason),
      onMessage: (m) => {
        queue.push(m);
        for (const w of waiters.splice(0)) w();
      },
    },
  );
  link.start();
  const next = async (leaf: string, ms = 5000): Promise<MqttMessage> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = queue.findIndex((m) => m.topic === topicFor(id, leaf as never));
      if (i >= 0) return queue.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${leaf} for ${id} within ${ms} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
  return {
    link,
    up,
    next,
    queue,
    downs,
    refused: () => refused,
    stop: () => {
      link.stop();
      clock.clearAll();
      network.destroyAll();
    },
  };
}

const hb = (over: Partial<Heartbeat> = {}): Uint8Array =>
  encodeHeartbeat({ seq: 1, ...device, state: "idle", progress: 0, reason: 0, uptime: 5, supplyMv: 3300, ...over });

describe("serve: the exchange with a device over TLS", () => {
  it("acks a heartbeat with the interval and trusted time, and offers the delta for the running image", async () => {
    const d = connectDevice("dev-1");
    try {
      await d.up;
      expect(d.refused()).toEqual([]);
      d.link.publish(topicFor("dev-1", "hb"), hb({ seq: 9 }), 0);
      const ack = decodeHeartbeatAck((await d.next("hb/ack")).payload);
      expect(ack).toEqual({ seq: 9, interval: 120, time: NOW });
      const offer = await d.next("offer");
      expect(Buffer.from(offer.payload).equals(Buffer.from(deltaEnvelope))).toBe(true);
      expect(offer.qos).toBe(1);
      // A device that is busy gets no offer.
      d.link.publish(topicFor("dev-1", "hb"), hb({ seq: 10, state: "downloading", progress: 40 }), 0);
      await d.next("hb/ack");
      await new Promise((r) => setTimeout(r, 200));
      expect(d.queue.filter((m) => m.topic.endsWith("/offer")).length).toBe(0);
    } finally {
      d.stop();
    }
  });

  it("serves a payload by MQTT chunk requests, resumably, and refuses unknown streams", async () => {
    const d = connectDevice("dev-2");
    try {
      await d.up;
      const got = new Uint8Array(PAYLOAD.length);
      for (let offset = 0; offset < PAYLOAD.length; offset += 4096) {
        d.link.publish(topicFor("dev-2", "chunk/req"), encodeChunkRequest({ stream: "full-1.2.0.bin", offset, length: 4096 }), 0);
        const r = decodeChunkReply((await d.next("chunk/res")).payload);
        expect(r).toMatchObject({ status: ChunkStatus.OK, stream: "full-1.2.0.bin", offset, total: PAYLOAD.length });
        got.set(r.data, r.offset);
      }
      expect(Buffer.from(got).equals(Buffer.from(PAYLOAD))).toBe(true);
      d.link.publish(topicFor("dev-2", "chunk/req"), encodeChunkRequest({ stream: "nope.bin", offset: 0, length: 10 }), 0);
      expect(decodeChunkReply((await d.next("chunk/res")).payload).status).toBe(ChunkStatus.UNKNOWN_STREAM);
      d.link.publish(topicFor("dev-2", "chunk/req"), encodeChunkRequest({ stream: "full-1.2.0.bin", offset: 20_000, length: 10 }), 0);
      expect(decodeChunkReply((await d.next("chunk/res")).payload).status).toBe(ChunkStatus.OUT_OF_RANGE);
    } finally {
      d.stop();
    }
  });

  it("serves Range requests over HTTPS (verified against the throwaway CA)", async () => {
    const http = new HttpClient({ net: new NodeNetwork(), clock: new NodeClock(), ca, timeoutMs: 3000 });
    const r = await new Promise<{ code: number; data: Buffer }>((resolve) => {
      const parts: Uint8Array[] = [];
      http.get({ url: `https://127.0.0.1:${serve.httpsPort}/streams/full-1.2.0.bin`, offset: 4000, length: 3000, onData: (x) => parts.push(x), onDone: (code) => resolve({ code, data: Buffer.concat(parts) }) });
    });
    http.close();
    expect(r.code).toBe(Reason.OK);
    expect(r.data.equals(Buffer.from(PAYLOAD.subarray(4000, 7000)))).toBe(true);
  });

  it("logs status reports as JSON lines, and relays commands", async () => {
    const d = connectDevice("dev-3");
    try {
      await d.up;
      d.link.publish(topicFor("dev-3", "status"), encodeStatusReport({ seq: 1, event: "failed", version: device.version, target: { major: 1, minor: 2, revision: 0, build: 0 }, reason: Reason.VERIFY_FAILED }), 1);
      const deadline = Date.now() + 5000;
      let lines: string[] = [];
      while (Date.now() < deadline) {
        try {
          lines = readFileSync(join(dir, "reports.jsonl"), "utf8").trim().split("\n");
          if (lines.some((l) => l.includes("dev-3"))) break;
        } catch {
          /* not written yet */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      const line = JSON.parse(lines.find((l) => l.includes("dev-3"))!);
      expect(line).toMatchObject({ deviceId: "dev-3", event: "failed", version: "1.0.0+0", target: "1.2.0+0", reason: Reason.VERIFY_FAILED, reasonName: "VERIFY_FAILED" });
      serve.command("dev-3", { id: 5, cmd: "check" });
      expect(decodeCommand((await d.next("cmd")).payload)).toEqual({ id: 5, cmd: "check" });
      expect(serve.summary()).toMatch(/failures: VERIFY_FAILED 1/);
    } finally {
      d.stop();
    }
  });

  it("refuses subscriptions to another device's topics and drops a device publishing as another", async () => {
    const d = connectDevice("dev-4", [
      { topic: topicFor("dev-4", "offer"), qos: 1 },
      { topic: topicFor("dev-5", "offer"), qos: 1 },
      { topic: "xs-ota/v1/+/offer", qos: 1 },
    ]);
    try {
      await d.up;
      expect(d.refused()).toEqual([topicFor("dev-5", "offer"), "xs-ota/v1/+/offer"]);
      d.link.publish(topicFor("dev-5", "status"), encodeStatusReport({ seq: 1, event: "committed", version: device.version, reason: 0 }), 1);
      const deadline = Date.now() + 5000;
      while (d.downs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(d.downs.length).toBeGreaterThan(0);
      expect(readFileSync(join(dir, "reports.jsonl"), "utf8")).not.toMatch(/dev-5/);
    } finally {
      d.stop();
    }
  });
});

describe("serve: --insecure-plaintext", () => {
  it("listens without TLS only when asked, and writes no TLS files", async () => {
    const plainDir = mkdtempSync(join(tmpdir(), "xs-ota-serve-plain-"));
    const lines: string[] = [];
    const s = await startServe({ releasesDir: plainDir, host: "127.0.0.1", mqttPort: 0, httpsPort: 0, insecurePlaintext: true, heartbeatIntervalSec: 60, reportsPath: join(plainDir, "r.jsonl"), log: (l) => lines.push(l) });
    try {
      expect(lines.join("\n")).toMatch(/WITHOUT TLS/);
      expect(s.caPath).toBeUndefined();
      expect(existsSync(join(plainDir, "tls"))).toBe(false);
      const attempt = (tls: boolean) =>
        new Promise<boolean>((resolve) => {
          const clock = new NodeClock();
          const t = setTimeout(() => resolve(false), 5000);
          const c = new MqttLink(
            { net: new NodeNetwork({ connectTimeoutMs: 3000 }), clock, server: { host: "127.0.0.1", port: s.mqttPort!, tls, ca }, clientId: `p-${tls}`, keepAliveSec: 10, backoff: new Backoff({ initialMs: 10_000, maxMs: 10_000, random: () => 0 }), subscriptions: [] },
            {
              onUp: () => {
                clearTimeout(t);
                c.stop();
                clock.clearAll();
                resolve(true);
              },
              onDown: () => {
                clearTimeout(t);
                c.stop();
                clock.clearAll();
                resolve(false);
              },
            },
          );
          c.start();
        });
      expect(await attempt(false)).toBe(true);
      expect(await attempt(true)).toBe(false);
    } finally {
      await s.close();
      rmSync(plainDir, { recursive: true, force: true });
    }
  });
});
