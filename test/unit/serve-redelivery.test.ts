/**
 * serve end to end (embedded broker, plaintext, in process): a status report
 * that arrives twice (a QoS 1 redelivery: same device, sequence and event) is
 * logged and counted once; the same event with another sequence is a new
 * report.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import { deviceSubscriptions, encodeStatusReport, topicFor } from "../../src/protocol/messages";
import { startServe, type ReportLine, type ServeHandle } from "../../tools/serve/server";

let dir: string;
let serve: ServeHandle;
const seen: ReportLine[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-redelivery-"));
  serve = await startServe({ releasesDir: dir, host: "127.0.0.1", mqttPort: 0, httpsPort: 0, insecurePlaintext: true, heartbeatIntervalSec: 60, reportsPath: join(dir, "reports.jsonl"), log: () => {}, onReport: (r) => seen.push(r) });
});

afterAll(async () => {
  await serve.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("serve: status reports delivered twice", () => {
  it("logs and counts a redelivered report once, and a new sequence again", async () => {
    const clock = new NodeClock();
    const network = new NodeNetwork({ connectTimeoutMs: 5000 });
    let upResolve: () => void = () => {};
    const up = new Promise<void>((r) => (upResolve = r));
    const link = new MqttLink(
      { net: network, clock, server: { host: "127.0.0.1", port: serve.mqttPort!, tls: false }, clientId: "dev-r", keepAliveSec: 30, backoff: new Backoff({ initialMs: 100, maxMs: 1000, random: seededRandom(3) }), subscriptions: deviceSubscriptions("dev-r") },
      { onUp: () => upResolve() },
    );
    link.start();
    try {
      await up;
      const report = (seq: number) => encodeStatusReport({ seq, event: "committed", version: { major: 1, minor: 1, revision: 0, build: 2 }, target: { major: 1, minor: 1, revision: 0, build: 2 }, reason: 0 });
      const acked = (seq: number) => new Promise<void>((r) => link.publish(topicFor("dev-r", "status"), report(seq), 1, false, () => r()));
      await acked(5);
      await acked(5); // the broker delivering the same PUBLISH again (the device resent it: its PUBACK was lost)
      await acked(6);
      await new Promise((r) => setTimeout(r, 200));
      const lines = readFileSync(join(dir, "reports.jsonl"), "utf8").trim().split("\n");
      expect(lines.length).toBe(2);
      expect(seen.map((r) => r.event)).toEqual(["committed", "committed"]);
      expect(serve.stats().reports).toBe(2);
      expect(serve.summary()).toMatch(/reports: committed 2/);
    } finally {
      link.stop();
      clock.clearAll();
      network.destroyAll();
    }
  });
});
