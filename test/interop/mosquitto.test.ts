/**
 * Interop: the portable MQTT client over the Node TLS socket against a real
 * mosquitto started here (TLS listener with certificates made by openssl, and
 * a plaintext listener), with mosquitto_sub / mosquitto_pub as the far side.
 * Loopback only; every process is stopped in afterAll; every wait is bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Reason } from "../../src/errors";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import { MqttClient, type MqttMessage } from "../../src/protocol/mqtt";
import { decodeCommand, decodeHeartbeat, deviceSubscriptions, encodeCommand, encodeHeartbeat, encodeStatusReport, topicFor } from "../../src/protocol/messages";
import { ensureTlsFiles, type TlsFiles } from "../../tools/serve/certs";
import { freePort, portOpen, stopChild, until } from "../lib/mosquitto";

const HOST = "127.0.0.1";
let dir: string;
let files: TlsFiles;
let ca: string;
let tlsPort = 0;
let plainPort = 0;
let conf = "";
let broker: ChildProcess | undefined;
const children = new Set<ChildProcess>();

function run(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(c);
  c.on("exit", () => children.delete(c));
  return c;
}

const stop = stopChild;

async function startBroker(): Promise<void> {
  broker = run("mosquitto", ["-c", conf]);
  let log = "";
  broker.stderr!.on("data", (d) => (log += d));
  broker.stdout!.on("data", (d) => (log += d));
  const b = broker;
  await until(`mosquitto on ${tlsPort}/${plainPort} (log: ${log})`, async () => {
    if (b.exitCode !== null) throw new Error(`mosquitto exited ${b.exitCode}: ${log}`);
    return (await portOpen(tlsPort)) && (await portOpen(plainPort));
  });
}

/** Run a mosquitto client to completion (bounded), returning its exit code and output. */
function runClient(cmd: string, args: string[], ms = 20_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = run(cmd, args);
    let out = "";
    c.stdout!.on("data", (d) => (out += d));
    c.stderr!.on("data", (d) => (out += d));
    const t = setTimeout(() => c.kill("SIGKILL"), ms);
    c.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-mosquitto-"));
  files = ensureTlsFiles(join(dir, "tls"));
  // mosquitto may drop to its own user: let it read the throwaway key.
  chmodSync(dir, 0o755);
  chmodSync(join(dir, "tls"), 0o755);
  chmodSync(files.key, 0o644);
  ca = readFileSync(files.ca, "utf8");
  tlsPort = await freePort();
  plainPort = await freePort();
  conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      "persistence false",
      "allow_anonymous true",
      "log_dest stderr",
      `listener ${tlsPort} ${HOST}`,
      `cafile ${files.ca}`,
      `certfile ${files.cert}`,
      `keyfile ${files.key}`,
      "tls_version tlsv1.2",
      `listener ${plainPort} ${HOST}`,
      "",
    ].join("\n"),
  );
  await startBroker();
});

afterAll(async () => {
  for (const c of [...children]) await stop(c);
  rmSync(dir, { recursive: true, force: true });
});

function device(id: string, options: { tls?: boolean; port?: number } = {}) {
  const clock = new NodeClock();
  const network = new NodeNetwork({ connectTimeoutMs: 5000 });
  const messages: MqttMessage[] = [];
  const downs: { reason: number; retry: number }[] = [];
  let ups = 0;
  const backoff = new Backoff({ initialMs: 200, maxMs: 2000, random: seededRandom(0xd1ce) });
  const link = new MqttLink(
    {
      net: network,
      clock,
      server: { host: HOST, port: options.port ?? tlsPort, tls: options.tls ?? true, ca },
      clientId: id,
      keepAliveSec: 10,
      retryMs: 2000,
      will: { topic: topicFor(id, "status"), payload: encodeStatusReport({ seq: 0, event: "offline", version: { major: 1, minor: 0, revision: 0, build: 0 }, reason: 0 }), qos: 1, retain: false },
      backoff,
      subscriptions: deviceSubscriptions(id),
    },
    { onUp: () => ups++, onDown: (reason, retry) => downs.push({ reason, retry }), onMessage: (m) => messages.push(m) },
  );
  return {
    link,
    backoff,
    messages,
    downs,
    ups: () => ups,
    start: () => link.start(),
    stop: () => {
      link.stop();
      clock.clearAll();
      network.destroyAll();
    },
  };
}

const heartbeat = (seq: number) =>
  encodeHeartbeat({
    seq,
    hardwareId: "usr-n520",
    version: { major: 1, minor: 0, revision: 0, build: 7 },
    slot: 0,
    imageSha256: new Uint8Array(32).fill(0x5a),
    state: "idle",
    progress: 0,
    reason: 0,
    uptime: seq,
    supplyMv: 3300,
  });

describe("interop: the portable MQTT client against mosquitto over TLS", () => {
  it("connects over TLS, subscribes, publishes QoS 1, and its heartbeat is seen by mosquitto_sub", async () => {
    const d = device("dev-i1");
    d.start();
    try {
      await until("CONNACK + SUBACK", () => d.ups() === 1);
      const acks: number[] = [];
      d.link.publish(topicFor("dev-i1", "status"), encodeStatusReport({ seq: 1, event: "committed", version: { major: 1, minor: 0, revision: 0, build: 7 }, reason: 0 }), 1, false, (c) => acks.push(c));
      await until("PUBACK", () => acks.length === 1);
      expect(acks).toEqual([Reason.OK]);

      // A command from mosquitto_pub reaches the device on its own topic.
      const pub = await runClient("mosquitto_pub", ["--cafile", files.ca, "-h", HOST, "-p", String(tlsPort), "-q", "1", "-t", topicFor("dev-i1", "cmd"), "-m", new TextDecoder().decode(encodeCommand({ id: 1, cmd: "check" }))]);
      expect(pub.code, pub.out).toBe(0);
      await until("the command", () => d.messages.some((m) => m.topic.endsWith("/cmd")));
      expect(decodeCommand(d.messages.find((m) => m.topic.endsWith("/cmd"))!.payload)).toEqual({ id: 1, cmd: "check" });

      // mosquitto_sub sees a heartbeat (the device repeats it until the subscriber has one).
      const sub = runClient("mosquitto_sub", ["--cafile", files.ca, "-h", HOST, "-p", String(tlsPort), "-t", topicFor("dev-i1", "hb"), "-C", "1", "-W", "20"]);
      let seq = 0;
      let done = false;
      void sub.then(() => (done = true));
      await until("mosquitto_sub to exit with a heartbeat", () => {
        d.link.publish(topicFor("dev-i1", "hb"), heartbeat(++seq), 0);
        return done;
      }, 25_000);
      const { code, out } = await sub;
      expect(code, out).toBe(0);
      const seen = decodeHeartbeat(new TextEncoder().encode(out.trim()));
      expect(seen.hardwareId).toBe("usr-n520");
      expect(seen.version).toEqual({ major: 1, minor: 0, revision: 0, build: 7 });
    } finally {
      d.stop();
    }
  });

  it("survives a broker restart: reconnects with backoff, resubscribes, and delivers its queued QoS 1 message", async () => {
    const d = device("dev-i2");
    d.start();
    try {
      await until("first connection", () => d.ups() === 1);
      await stop(broker);
      await until("the link to notice", () => d.downs.length > 0);
      // Let a few attempts fail against the stopped broker: the delays grow.
      await until("three failed attempts", () => d.downs.length >= 3, 20_000);
      expect(d.downs[0].reason).toBe(Reason.SOCKET_CLOSED);
      expect(d.downs.slice(1, 3).every((x) => x.reason === Reason.SOCKET_REFUSED)).toBe(true);
      expect(d.downs.every((x) => x.retry > 0 && x.retry <= 2000)).toBe(true);
      const queuedAck: number[] = [];
      d.link.publish(topicFor("dev-i2", "status"), encodeStatusReport({ seq: 2, event: "trial", version: { major: 1, minor: 0, revision: 0, build: 7 }, reason: 0 }), 1, false, (c) => queuedAck.push(c));
      await startBroker();
      await until("reconnected", () => d.ups() === 2, 20_000);
      expect(d.backoff.attempts).toBe(0);
      await until("the queued message's PUBACK", () => queuedAck.length === 1);
      expect(queuedAck).toEqual([Reason.OK]);
      const pub = await runClient("mosquitto_pub", ["--cafile", files.ca, "-h", HOST, "-p", String(tlsPort), "-q", "1", "-t", topicFor("dev-i2", "cmd"), "-m", '{"id":2,"cmd":"abort"}']);
      expect(pub.code, pub.out).toBe(0);
      await until("the command after the restart", () => d.messages.some((m) => m.topic.endsWith("/cmd")));
    } finally {
      d.stop();
    }
  });

  it("a plain-TCP connection is refused unless explicitly allowed", async () => {
    const clock = new NodeClock();
    const attempt = (port: number, tls: boolean) =>
      new Promise<{ connected: boolean; reason?: number }>((resolve) => {
        const network = new NodeNetwork({ connectTimeoutMs: 5000 });
        const t = setTimeout(() => resolve({ connected: false, reason: -1 }), 10_000);
        const c: MqttClient = new MqttClient(
          { net: network, clock, server: { host: HOST, port, tls, ca }, clientId: `plain-${port}-${tls}`, keepAliveSec: 10, connectTimeoutMs: 5000 },
          {
            onConnect: () => {
              clearTimeout(t);
              c.disconnect();
              resolve({ connected: true });
            },
            onClose: (reason) => {
              clearTimeout(t);
              resolve({ connected: false, reason });
            },
          },
        );
        c.connect();
      });
    // TLS required by the client, the server speaks plaintext: refused in the handshake.
    expect(await attempt(plainPort, true)).toEqual({ connected: false, reason: Reason.SOCKET_TLS });
    // Plaintext towards the TLS listener: mosquitto drops it, no CONNACK.
    expect((await attempt(tlsPort, false)).connected).toBe(false);
    // The adapter refuses a connection whose TLS choice is not stated.
    expect(() => new NodeNetwork().connect({ host: HOST, port: plainPort } as never, {})).toThrow(/BAD_ARGUMENT/);
    // Only when `tls: false` is given explicitly does plaintext work.
    expect(await attempt(plainPort, false)).toEqual({ connected: true });
    clock.clearAll();
  });
});
