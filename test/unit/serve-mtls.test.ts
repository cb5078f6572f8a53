/**
 * Mutual TLS on serve's embedded broker (issue 16): with --client-ca, only a
 * device presenting a certificate from the fleet CA whose CN is its client id
 * gets in. A rogue without the device's key (no certificate, a certificate
 * from another CA, or a valid certificate of another device) cannot connect
 * as the device, take over its session or read its offers; the real device
 * keeps its connection throughout.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { nodeRandom } from "../../hal/node/random";
import { NodeNetwork } from "../../hal/node/socket";
import { buildCsr, generateDeviceKey } from "../../src/crypto/csr";
import { Reason } from "../../src/errors";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import type { MqttMessage } from "../../src/protocol/mqtt";
import { decodeHeartbeatAck, deviceSubscriptions, encodeHeartbeat, topicFor } from "../../src/protocol/messages";
import { initCa, signCsr } from "../../tools/ca/ca";
import { startServe, type ServeHandle } from "../../tools/serve/server";

let dir: string;
let serve: ServeHandle;
let ca: string;
const logs: string[] = [];

interface Identity {
  readonly certificate: Uint8Array;
  readonly privateKey: Uint8Array;
}

function enrol(caDir: string, id: string): Identity {
  const privateKey = generateDeviceKey(nodeRandom);
  return { privateKey, certificate: signCsr(caDir, buildCsr(privateKey, id), 30).der };
}

let fleet: string;
let rogueCa: string;
const ids: { [name: string]: Identity } = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-mtls-"));
  fleet = join(dir, "fleet-ca");
  rogueCa = join(dir, "rogue-ca");
  initCa(fleet, "fleet CA", 30);
  initCa(rogueCa, "fleet CA", 30); // same name, other key
  ids.dev1 = enrol(fleet, "dev-1");
  ids.dev2 = enrol(fleet, "dev-2");
  ids.forged = enrol(rogueCa, "dev-1");
  serve = await startServe({
    releasesDir: dir,
    host: "127.0.0.1",
    mqttPort: 0,
    httpsPort: 0,
    insecurePlaintext: false,
    clientCa: join(fleet, "ca.pem"),
    heartbeatIntervalSec: 120,
    reportsPath: join(dir, "reports.jsonl"),
    log: (l) => logs.push(l),
  });
  ca = readFileSync(serve.caPath!, "utf8");
});

afterAll(async () => {
  await serve?.close();
  rmSync(dir, { recursive: true, force: true });
});

function connect(clientId: string, identity: Identity | undefined, subscriptions = deviceSubscriptions(clientId)) {
  const clock = new NodeClock();
  const network = new NodeNetwork({ connectTimeoutMs: 5000 });
  const messages: MqttMessage[] = [];
  const downs: number[] = [];
  let ups = 0;
  let refused: readonly string[] = [];
  const link = new MqttLink(
    {
      net: network,
      clock,
      server: { host: "127.0.0.1", port: serve.mqttPort!, tls: true, ca, ...(identity ? { clientIdentity: identity } : {}) },
      clientId,
      keepAliveSec: 30,
      backoff: new Backoff({ initialMs: 100, maxMs: 400, random: seededRandom(1) }),
      subscriptions,
    },
    {
      onUp: (r) => {
        refused = r;
        ups++;
      }, onDown: (reason) => downs.push(reason), onMessage: (m) => messages.push(m) },
  );
  link.start();
  return {
    link,
    messages,
    downs,
    ups: () => ups,
    refused: () => refused,
    stop() {
      link.stop();
      clock.clearAll();
      network.destroyAll();
    },
  };
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const hb = (seq: number) =>
  encodeHeartbeat({ seq, hardwareId: "usr-n520", version: { major: 1, minor: 0, revision: 0, build: 0 }, slot: 0, imageSha256: new Uint8Array(32), state: "idle", progress: 0, reason: 0, uptime: 5, supplyMv: 3300 });

describe("serve --client-ca: device identity by mutual TLS", () => {
  it("a device with its fleet certificate connects and is answered", async () => {
    const d = connect("dev-1", ids.dev1);
    try {
      await until("dev-1 up", () => d.ups() > 0);
      d.link.publish(topicFor("dev-1", "hb"), hb(3), 0);
      await until("hb/ack", () => d.messages.some((m) => m.topic === topicFor("dev-1", "hb/ack")));
      expect(decodeHeartbeatAck(d.messages.find((m) => m.topic.endsWith("/hb/ack"))!.payload).seq).toBe(3);
    } finally {
      d.stop();
    }
  });

  it("rogues without dev-1's key cannot connect as dev-1, and the real dev-1 stays connected", async () => {
    const real = connect("dev-1", ids.dev1);
    await until("dev-1 up", () => real.ups() > 0);
    const rogues = [
      { name: "no certificate", r: connect("dev-1", undefined), log: /refused client dev-1: no client certificate/ },
      { name: "dev-1's name from another CA", r: connect("dev-1", ids.forged), log: /refused client dev-1: client certificate not from the fleet CA/ },
      { name: "dev-2's valid certificate", r: connect("dev-1", ids.dev2), log: /refused client dev-1: client id "dev-1" is not the certificate's CN "dev-2"/ },
    ];
    try {
      for (const { name, r, log } of rogues) {
        await until(`${name}: refused`, () => r.downs.length >= 2);
        expect(r.ups(), name).toBe(0);
        expect(r.downs.every((x) => x === Reason.MQTT_REFUSED), `${name}: ${r.downs}`).toBe(true);
        expect(logs.some((l) => log.test(l)), name).toBe(true);
      }
      // The real device was never disconnected and still gets its answers.
      expect(real.downs).toEqual([]);
      real.link.publish(topicFor("dev-1", "hb"), hb(4), 0);
      await until("hb/ack after the rogues", () => real.messages.some((m) => m.topic === topicFor("dev-1", "hb/ack")));
      for (const { r } of rogues) expect(r.messages).toEqual([]);
    } finally {
      real.stop();
      for (const { r } of rogues) r.stop();
    }
  });

  it("dev-2 with its own certificate gets in, but only to its own topics", async () => {
    const d2 = connect("dev-2", ids.dev2, [...deviceSubscriptions("dev-2"), ...deviceSubscriptions("dev-1")]);
    try {
      await until("dev-2 up", () => d2.ups() > 0);
      expect(d2.downs).toEqual([]);
      // Every one of dev-1's topics is refused to dev-2; none of dev-2's own.
      const dev1Topics = deviceSubscriptions("dev-1").map((x) => x.topic).filter((t) => t.startsWith("xs-ota/v1/dev-1/"));
      expect(dev1Topics.length).toBeGreaterThan(3);
      for (const t of dev1Topics) expect(d2.refused()).toContain(t);
      for (const leaf of ["hb/ack", "offer", "chunk/res", "cmd"]) expect(d2.refused()).not.toContain(`xs-ota/v1/dev-2/${leaf}`);
    } finally {
      d2.stop();
    }
  });

  it("a key that is not the certificate's is refused by the adapter before any byte is sent", () => {
    const wrongKey = { certificate: ids.dev1.certificate, privateKey: generateDeviceKey(nodeRandom) };
    const network = new NodeNetwork();
    expect(() => network.connect({ host: "127.0.0.1", port: serve.mqttPort!, tls: true, ca, clientIdentity: wrongKey }, {})).toThrow(/BAD_ARGUMENT/);
  });

  it("--client-ca with --insecure-plaintext is refused at start", async () => {
    await expect(
      startServe({ releasesDir: dir, host: "127.0.0.1", mqttPort: 0, httpsPort: 0, insecurePlaintext: true, clientCa: join(fleet, "ca.pem"), heartbeatIntervalSec: 60, reportsPath: join(dir, "r2.jsonl"), log: () => {} }),
    ).rejects.toThrow(/needs TLS/);
  });
});
