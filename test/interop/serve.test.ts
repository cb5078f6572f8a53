/**
 * Interop: the built `xs-ota serve` as a user runs it (free ports, loopback),
 * with mosquitto_sub connecting to its embedded broker with DIR/tls/ca.pem,
 * the portable device client exchanging a heartbeat with it, and the summary
 * printed on SIGINT. The process is stopped in afterAll; waits are bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { MqttClient, type MqttMessage } from "../../src/protocol/mqtt";
import { ChunkStatus, decodeChunkReply, decodeHeartbeatAck, deviceSubscriptions, encodeChunkRequest, encodeHeartbeat, topicFor } from "../../src/protocol/messages";
import { signerFromSecret } from "../../tools/keys/signer";
import { signManifest } from "../../tools/release/encode";
import { ensureTlsFiles } from "../../tools/serve/certs";
import { repoRoot } from "../lib/cli";

const HOST = "127.0.0.1";
let dir: string;
let serve: ChildProcess | undefined;
let out = "";
let mqttPort = 0;
let httpsPort = 0;

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; serve said:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function runClient(cmd: string, args: string[], ms = 20_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    c.stdout.on("data", (d) => (text += d));
    c.stderr.on("data", (d) => (text += d));
    const t = setTimeout(() => c.kill("SIGKILL"), ms);
    c.on("error", (e) => {
      clearTimeout(t);
      resolve({ code: -1, out: String(e) });
    });
    c.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, out: text });
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-serve-interop-"));
  serve = spawn(process.execPath, [join(repoRoot, "bin/xs-ota.mjs"), "serve", "--releases", dir, "--host", HOST, "--mqtt-port", "0", "--https-port", "0", "--heartbeat-interval", "30"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  serve.stdout!.on("data", (d) => (out += d));
  serve.stderr!.on("data", (d) => (out += d));
  await until("serve to be ready", () => /^ready$/m.test(out) || serve!.exitCode !== null, 30_000);
  expect(serve.exitCode, out).toBeNull();
  mqttPort = Number(/mqtts broker listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
  httpsPort = Number(/https range server listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
});

afterAll(async () => {
  if (serve && serve.exitCode === null) {
    const s = serve;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => s.kill("SIGKILL"), 5000);
      s.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
      s.kill("SIGTERM");
    });
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("interop: xs-ota serve's embedded broker", () => {
  it("writes a throwaway CA and a server certificate for 127.0.0.1 and localhost to DIR/tls/", async () => {
    for (const f of ["ca.pem", "server.pem", "server-key.pem"]) expect(existsSync(join(dir, "tls", f)), f).toBe(true);
    expect(existsSync(join(dir, "tls", "ca-key.pem"))).toBe(false);
    const text = await runClient("openssl", ["x509", "-in", join(dir, "tls", "server.pem"), "-noout", "-ext", "subjectAltName"]);
    expect(text.out).toMatch(/IP Address:127\.0\.0\.1/);
    expect(text.out).toMatch(/DNS:localhost/);
    expect(mqttPort).toBeGreaterThan(0);
    expect(httpsPort).toBeGreaterThan(0);
  });

  it("mosquitto_sub --cafile DIR/tls/ca.pem connects and subscribes to its own device topic", async () => {
    const r = await runClient("mosquitto_sub", ["--cafile", join(dir, "tls", "ca.pem"), "-h", HOST, "-p", String(mqttPort), "-i", "probe-1", "-t", topicFor("probe-1", "cmd"), "-W", "2", "-d"]);
    expect(r.out).toMatch(/received CONNACK \(0\)/);
    expect(r.out).toMatch(/Subscribed \(mid: 1\): 0/);
  });

  it("mosquitto_sub is refused another device's topics, and cannot connect without the CA", async () => {
    const wild = await runClient("mosquitto_sub", ["--cafile", join(dir, "tls", "ca.pem"), "-h", HOST, "-p", String(mqttPort), "-i", "probe-2", "-t", "xs-ota/v1/+/hb", "-W", "2", "-d"]);
    expect(wild.out).toMatch(/received CONNACK \(0\)/);
    expect(wild.out).toMatch(/Subscribed \(mid: 1\): 128/);
    const other = ensureTlsFiles(join(dir, "other-ca"));
    const untrusted = await runClient("mosquitto_sub", ["--cafile", other.ca, "-h", HOST, "-p", String(mqttPort), "-t", topicFor("probe-3", "cmd"), "-W", "2", "-d"]);
    expect(untrusted.out).not.toMatch(/received CONNACK/);
  });

  it("answers a device's heartbeat over TLS, and prints a summary on SIGINT", async () => {
    const clock = new NodeClock();
    const network = new NodeNetwork();
    const got: MqttMessage[] = [];
    let connected = false;
    const c = new MqttClient(
      { net: network, clock, server: { host: HOST, port: mqttPort, tls: true, ca: readFileSync(join(dir, "tls", "ca.pem"), "utf8") }, clientId: "dev-s1", keepAliveSec: 10 },
      { onConnect: () => (connected = true), onMessage: (m) => got.push(m) },
    );
    c.connect();
    try {
      await until("CONNACK", () => connected);
      let subscribed = false;
      c.subscribe([{ topic: topicFor("dev-s1", "hb/ack"), qos: 1 }], () => (subscribed = true));
      await until("SUBACK", () => subscribed);
      c.publish(
        topicFor("dev-s1", "hb"),
        encodeHeartbeat({ seq: 3, hardwareId: "usr-n520", version: { major: 1, minor: 0, revision: 0, build: 0 }, slot: 0, imageSha256: new Uint8Array(32), state: "idle", progress: 0, reason: 0, uptime: 1, supplyMv: 3300 }),
        0,
      );
      await until("the heartbeat ack", () => got.length > 0);
      const ack = decodeHeartbeatAck(got[0].payload);
      expect(ack.seq).toBe(3);
      expect(ack.interval).toBe(30);
      expect(Math.abs(ack.time - Date.now() / 1000)).toBeLessThan(60);
    } finally {
      c.disconnect();
      clock.clearAll();
    }
    const s = serve!;
    const exited = new Promise<number | null>((resolve) => s.once("exit", (code) => resolve(code)));
    s.kill("SIGINT");
    const t = setTimeout(() => s.kill("SIGKILL"), 10_000);
    const code = await exited;
    clearTimeout(t);
    expect(code, out).toBe(0);
    expect(out).toMatch(/devices seen: 1/);
    expect(out).toMatch(/dev-s1: 1\.0\.0\+0 idle/);
  });
});

// ---------------------------------------------------------------- --broker: two instances behind mosquitto

describe("interop: two xs-ota serve instances behind mosquitto (--broker, shared subscription)", () => {
  let work: string;
  let ca2 = "";
  let brokerPort = 0;
  const procs: { p: ChildProcess; out: string }[] = [];

  async function freePort(): Promise<number> {
    const s = net.createServer();
    const port = await new Promise<number>((resolve) => s.listen(0, HOST, () => resolve((s.address() as net.AddressInfo).port)));
    await new Promise((r) => s.close(r));
    return port;
  }

  function start(cmd: string, args: string[]): { p: ChildProcess; out: string } {
    const entry = { p: spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }), out: "" };
    entry.p.stdout!.on("data", (d) => (entry.out += d));
    entry.p.stderr!.on("data", (d) => (entry.out += d));
    procs.push(entry);
    return entry;
  }

  async function waitFor(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${procs.map((x) => x.out).join("\n---\n")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  function stopProc(p: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
    return new Promise((resolve) => {
      const t = setTimeout(() => p.kill("SIGKILL"), 8000);
      p.once("exit", (code) => {
        clearTimeout(t);
        resolve(code);
      });
      p.kill(signal);
    });
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "xs-ota-serve-broker-"));
    const tlsFiles = ensureTlsFiles(join(work, "broker-tls"));
    chmodSync(work, 0o755);
    chmodSync(join(work, "broker-tls"), 0o755);
    chmodSync(tlsFiles.key, 0o644);
    ca2 = readFileSync(tlsFiles.ca, "utf8");
    brokerPort = await freePort();
    const conf = join(work, "mosquitto.conf");
    writeFileSync(conf, ["persistence false", "allow_anonymous true", `listener ${brokerPort} ${HOST}`, `cafile ${tlsFiles.ca}`, `certfile ${tlsFiles.cert}`, `keyfile ${tlsFiles.key}`, ""].join("\n"));
    const mosq = start("mosquitto", ["-c", conf]);
    await waitFor("mosquitto", () => /mosquitto version .* running/.test(mosq.out) || mosq.p.exitCode !== null);
    expect(mosq.p.exitCode, mosq.out).toBeNull();
    // A release directory with one payload.
    const rel = join(work, "rel");
    const payload = new Uint8Array(40 * 1024).map((_, i) => (i * 13) & 0xff);
    mkdirSync(rel);
    writeFileSync(join(rel, "app.bin"), payload);
    writeFileSync(
      join(rel, "app.manifest"),
      signManifest(
        {
          hardwareId: "usr-n520",
          version: { major: 2, minor: 0, revision: 0, build: 0 },
          securityCounter: 1,
          slot: 1,
          image: { length: payload.length, sha256: new Uint8Array(32).fill(1) },
          payload: { kind: "full", length: payload.length, sha256: new Uint8Array(32).fill(1), compression: "none" },
          fetch: { stream: "app.bin" },
          issuedAt: Math.floor(Date.now() / 1000) - 10,
          expiresAt: Math.floor(Date.now() / 1000) + 86400,
          maxDownload: 2 * payload.length,
        },
        signerFromSecret(new Uint8Array(32).fill(9)),
      ),
    );
    for (let i = 0; i < 2; i++) {
      const s = start(process.execPath, [join(repoRoot, "bin/xs-ota.mjs"), "serve", "--releases", rel, "--host", HOST, "--https-port", "0", "--broker", `mqtts://${HOST}:${brokerPort}`, "--ca", tlsFiles.ca, "--reports", join(work, `reports-${i}.jsonl`)]);
      await waitFor(`serve ${i} connected`, () => /connected to mqtts/.test(s.out) || s.p.exitCode !== null);
      expect(s.p.exitCode, s.out).toBeNull();
    }
  });

  afterAll(async () => {
    for (const x of procs.reverse()) await stopProc(x.p);
    rmSync(work, { recursive: true, force: true });
  });

  it("each chunk request is answered once, and the two instances split them", async () => {
    const clock = new NodeClock();
    const network = new NodeNetwork();
    const replies: number[] = [];
    let up = false;
    const c = new MqttClient(
      { net: network, clock, server: { host: HOST, port: brokerPort, tls: true, ca: ca2 }, clientId: "dev-b1", keepAliveSec: 10 },
      {
        onConnect: () => c.subscribe(deviceSubscriptions("dev-b1"), () => (up = true)),
        onMessage: (m) => {
          if (!m.topic.endsWith("/chunk/res")) return;
          const r = decodeChunkReply(m.payload);
          expect(r.status).toBe(ChunkStatus.OK);
          replies.push(r.offset);
        },
      },
    );
    c.connect();
    try {
      await waitFor("device up", () => up);
      const N = 10;
      for (let i = 0; i < N; i++) c.publish(topicFor("dev-b1", "chunk/req"), encodeChunkRequest({ stream: "app.bin", offset: i * 4096, length: 4096 }), 0);
      await waitFor("all replies", () => replies.length >= N);
      await new Promise((r) => setTimeout(r, 500)); // any duplicate would arrive by now
      expect(replies.sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i * 4096));
    } finally {
      c.disconnect();
      clock.clearAll();
    }
    const serves = procs.filter((x) => x.p.spawnfile === process.execPath);
    const counts: number[] = [];
    for (const s of serves) {
      expect(await stopProc(s.p, "SIGINT")).toBe(0);
      counts.push(Number(/chunks served: (\d+)/.exec(s.out)?.[1]));
    }
    expect(counts[0] + counts[1]).toBe(10);
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts[1]).toBeGreaterThan(0);
  });
});
