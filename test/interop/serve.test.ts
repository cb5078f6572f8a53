/**
 * Interop: the built `xs-ota serve` as a user runs it (free ports, loopback),
 * with mosquitto_sub connecting to its embedded broker with DIR/tls/ca.pem,
 * the portable device client exchanging a heartbeat with it, and the summary
 * printed on SIGINT. The process is stopped in afterAll; waits are bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { MqttClient, type MqttMessage } from "../../src/protocol/mqtt";
import { decodeHeartbeatAck, encodeHeartbeat, topicFor } from "../../src/protocol/messages";
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
