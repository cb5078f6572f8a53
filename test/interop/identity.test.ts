/**
 * Interop (issue 16A): device identity against real peers.
 * - OpenSSL accepts what `xs-ota ca init` / `xs-ota ca sign` make (`openssl verify
 *   -purpose sslclient`), and the CSR a device makes (`openssl req -verify`);
 *   a certificate from another CA is rejected by the same command.
 * - Stock mosquitto with `require_certificate true`, `use_identity_as_username
 *   true`, `use_username_as_clientid true` and a `%u` ACL (the configuration
 *   docs/protocol.md gives) enforces what serve's broker does: a client
 *   without the device's certificate cannot connect, and a client with a valid
 *   certificate for another device cannot take over this device's session or
 *   read its topics.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
import { topicFor } from "../../src/protocol/messages";
import { toPem } from "../../tools/ca/ca";
import { decodeHeartbeatAck, encodeHeartbeat } from "../../src/protocol/messages";
import { startServe } from "../../tools/serve/server";
import { xsOta } from "../lib/cli";
import { HOST, Mosquitto, until } from "../lib/mosquitto";

let dir: string;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function openssl(args: string[]): { status: number; out: string } {
  const r = spawnSync("openssl", args, { encoding: "utf8", timeout: 60_000 });
  if (r.error) throw new Error(`openssl is missing (.ci/run installs it): ${r.error.message}`);
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

interface Enrolled {
  readonly certificate: Uint8Array;
  readonly privateKey: Uint8Array;
  readonly certPath: string;
}

/** The device side (key + CSR, as AT+CSR makes them) and the CA side (`xs-ota ca sign`, the CLI). */
function enrol(caDir: string, id: string): Enrolled {
  const privateKey = generateDeviceKey(nodeRandom);
  const csrPath = join(caDir, `${id}.csr`);
  const certPath = join(caDir, `${id}.pem`);
  writeFileSync(csrPath, toPem("CERTIFICATE REQUEST", buildCsr(privateKey, id)));
  const r = xsOta(["ca", "sign", "--dir", caDir, csrPath, "-o", certPath, "--force"]);
  if (r.status !== 0) throw new Error(`xs-ota ca sign: ${r.stderr}`);
  const pem = readFileSync(certPath, "utf8");
  const certificate = new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64"));
  return { certificate, privateKey, certPath };
}

function initCaCli(caDir: string, name: string): string {
  const r = xsOta(["ca", "init", "--dir", caDir, "--name", name, "--days", "30"]);
  if (r.status !== 0) throw new Error(`xs-ota ca init: ${r.stderr}`);
  return r.stdout;
}

let fleet: string;
let rogue: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-id-"));
  dirs.push(dir);
  chmodSync(dir, 0o755); // mosquitto may drop to its own user: it reads the fleet CA and the ACL here
  fleet = join(dir, "fleet");
  rogue = join(dir, "rogue");
  initCaCli(fleet, "xs-ota fleet CA");
  initCaCli(rogue, "xs-ota fleet CA");
  chmodSync(fleet, 0o755);
});

describe("OpenSSL accepts the fleet CA's certificates and the device's CSR", () => {
  it("ca init prints the CA certificate's SHA-256 as openssl computes it (the pin a device takes)", () => {
    const again = join(dir, "again");
    const printed = /CA SHA-256 ([0-9a-f]{64})/.exec(initCaCli(again, "x"))![1];
    const fp = openssl(["x509", "-in", join(again, "ca.pem"), "-noout", "-fingerprint", "-sha256"]).out.trim().split("=")[1].replace(/:/g, "").toLowerCase();
    expect(printed).toBe(fp);
    expect(readFileSync(join(again, "ca-key.pem"), "utf8")).toContain("BEGIN PRIVATE KEY");
  });
  it("the CA certificate verifies as a self-signed CA, the device certificate as an SSL client under it", () => {
    expect(openssl(["verify", "-CAfile", join(fleet, "ca.pem"), join(fleet, "ca.pem")]).status).toBe(0);
    const d = enrol(fleet, "dev-ossl");
    const v = openssl(["verify", "-CAfile", join(fleet, "ca.pem"), "-purpose", "sslclient", "-x509_strict", d.certPath]);
    expect(v.out).toContain(": OK");
    expect(v.status).toBe(0);
    const text = openssl(["x509", "-in", d.certPath, "-noout", "-text"]).out;
    expect(text).toContain("Subject: CN = dev-ossl");
    expect(text).toContain("TLS Web Client Authentication");
    expect(text).toMatch(/CA:FALSE/);
    // The same certificate is not an SSL server's, and not valid under another CA.
    expect(openssl(["verify", "-CAfile", join(fleet, "ca.pem"), "-purpose", "sslserver", d.certPath]).status).not.toBe(0);
    expect(openssl(["verify", "-CAfile", join(rogue, "ca.pem"), "-purpose", "sslclient", d.certPath]).status).not.toBe(0);
  });
  it("the device's CSR verifies with openssl req", () => {
    const p = join(dir, "dev.csr");
    writeFileSync(p, toPem("CERTIFICATE REQUEST", buildCsr(generateDeviceKey(nodeRandom), "dev-csr")));
    const r = openssl(["req", "-in", p, "-verify", "-noout", "-subject"]);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/verify OK/i);
    expect(r.out).toContain("CN = dev-csr");
  });
});

describe("mosquitto with require_certificate, use_identity_as_username and a %u ACL", () => {
  let broker: Mosquitto;
  const ids: { [k: string]: Enrolled } = {};
  beforeAll(async () => {
    ids.dev1 = enrol(fleet, "dev-1");
    ids.dev2 = enrol(fleet, "dev-2");
    ids.cloud = enrol(fleet, "xs-ota-serve");
    ids.forged = enrol(rogue, "dev-1");
    const acl = join(dir, "acl");
    writeFileSync(acl, ["# serve (certificate CN xs-ota-serve) reads and writes every device's topics", "user xs-ota-serve", "topic readwrite xs-ota/v1/#", "", "# each device only its own: %u is its certificate's CN", "pattern readwrite xs-ota/v1/%u/#", ""].join("\n"));
    chmodSync(acl, 0o644);
    broker = new Mosquitto(["require_certificate true", "use_identity_as_username true", "use_username_as_clientid true", "allow_anonymous false", `acl_file ${acl}`], join(fleet, "ca.pem"));
    await broker.start();
  });
  afterAll(async () => broker?.close());

  function connect(clientId: string, identity: Enrolled | undefined, topics: string[]) {
    const clock = new NodeClock();
    const network = new NodeNetwork({ connectTimeoutMs: 5000 });
    const messages: MqttMessage[] = [];
    const downs: number[] = [];
    let ups = 0;
    const link = new MqttLink(
      {
        net: network,
        clock,
        server: { host: HOST, port: broker.port, tls: true, ca: broker.ca, ...(identity ? { clientIdentity: { certificate: identity.certificate, privateKey: identity.privateKey } } : {}) },
        clientId,
        keepAliveSec: 30,
        backoff: new Backoff({ initialMs: 100, maxMs: 400, random: seededRandom(2) }),
        subscriptions: topics.map((topic) => ({ topic, qos: 1 as const })),
      },
      { onUp: () => ups++, onDown: (r) => downs.push(r), onMessage: (m) => messages.push(m) },
    );
    link.start();
    return {
      link,
      messages,
      downs,
      ups: () => ups,
      stop() {
        link.stop();
        clock.clearAll();
        network.destroyAll();
      },
    };
  }

  it("the device with its certificate connects; without it, or with one from another CA, the handshake fails", async () => {
    const real = connect("dev-1", ids.dev1, [topicFor("dev-1", "offer")]);
    const none = connect("dev-1", undefined, []);
    const forged = connect("dev-1", ids.forged, []);
    try {
      await until("dev-1 up", () => real.ups() > 0);
      await until("rogues refused twice each", () => none.downs.length >= 2 && forged.downs.length >= 2);
      expect(none.ups() + forged.ups()).toBe(0);
      for (const r of [...none.downs, ...forged.downs]) expect([Reason.SOCKET_TLS, Reason.SOCKET_CLOSED, Reason.MQTT_REFUSED]).toContain(r);
      expect(real.downs).toEqual([]);
    } finally {
      real.stop();
      none.stop();
      forged.stop();
    }
  });

  it("a valid certificate for dev-2 cannot take over dev-1's session or read dev-1's topics", async () => {
    const dev1Topics = [topicFor("dev-1", "offer"), topicFor("dev-1", "hb/ack")];
    const real = connect("dev-1", ids.dev1, dev1Topics);
    const cloud = connect("xs-ota-serve", ids.cloud, [topicFor("dev-1", "hb")]);
    await until("dev-1 and the cloud up", () => real.ups() > 0 && cloud.ups() > 0);
    const rogue = connect("dev-1", ids.dev2, dev1Topics);
    try {
      await until("rogue up (as dev-2: mosquitto takes the client id from the certificate)", () => rogue.ups() > 0);
      await new Promise((r) => setTimeout(r, 300));
      expect(real.downs).toEqual([]); // not taken over
      cloud.link.publish(topicFor("dev-1", "offer"), Uint8Array.of(1, 2, 3), 1);
      await until("dev-1 gets its offer", () => real.messages.some((m) => m.topic === topicFor("dev-1", "offer")));
      await new Promise((r) => setTimeout(r, 300));
      expect(rogue.messages).toEqual([]);
      // Nor can it publish as dev-1: the cloud sees dev-1's heartbeat topic only from dev-1.
      rogue.link.publish(topicFor("dev-1", "hb"), Uint8Array.of(9), 0);
      real.link.publish(topicFor("dev-1", "hb"), Uint8Array.of(7), 0);
      await until("the cloud gets dev-1's heartbeat", () => cloud.messages.length > 0);
      await new Promise((r) => setTimeout(r, 300));
      expect(cloud.messages.map((m) => Array.from(m.payload))).toEqual([[7]]);
      expect(broker.log).toMatch(/dev-2/);
    } finally {
      real.stop();
      cloud.stop();
      rogue.stop();
    }
  });

  it("serve --broker with its own certificate (openssl key and CSR, signed by xs-ota ca sign) answers a device through this mosquitto", async () => {
    const s = join(dir, "serve-id");
    mkdirSync(s);
    const key = join(s, "serve-key.pem");
    expect(openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]).status).toBe(0);
    expect(openssl(["req", "-new", "-key", key, "-subj", "/CN=xs-ota-serve", "-out", join(s, "serve.csr")]).status).toBe(0);
    const cert = join(s, "serve.pem");
    const signed = xsOta(["ca", "sign", "--dir", fleet, join(s, "serve.csr"), "-o", cert]);
    expect(signed.status, signed.stderr).toBe(0);
    const releases = join(s, "releases");
    mkdirSync(releases);
    const logs: string[] = [];
    const serve = await startServe({
      releasesDir: releases,
      host: HOST,
      mqttPort: 0,
      httpsPort: 0,
      insecurePlaintext: false,
      broker: `mqtts://${HOST}:${broker.port}`,
      ca: broker.tls.ca,
      brokerCert: cert,
      brokerKey: key,
      heartbeatIntervalSec: 30,
      reportsPath: join(s, "reports.jsonl"),
      log: (l) => logs.push(l),
    });
    const d = connect("dev-1", ids.dev1, [topicFor("dev-1", "hb/ack")]);
    try {
      await until("serve connected to mosquitto", () => logs.some((l) => l.startsWith("connected to")));
      await until("dev-1 up", () => d.ups() > 0);
      const hb = encodeHeartbeat({ seq: 5, hardwareId: "usr-n520", version: { major: 1, minor: 0, revision: 0, build: 0 }, slot: 0, imageSha256: new Uint8Array(32), state: "idle", progress: 0, reason: 0, uptime: 5, supplyMv: 3300 });
      d.link.publish(topicFor("dev-1", "hb"), hb, 0);
      await until("hb/ack from serve through mosquitto", () => d.messages.some((m) => m.topic === topicFor("dev-1", "hb/ack")));
      expect(decodeHeartbeatAck(d.messages.find((m) => m.topic.endsWith("/hb/ack"))!.payload).seq).toBe(5);
    } finally {
      d.stop();
      await serve.close();
    }
  });
});
