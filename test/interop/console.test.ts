/**
 * Interop: `xs-ota sim` serves each device's AT console on a real
 * pseudo-terminal made by socat and on a TCP port. The devices run the
 * console and the update agent, connected over TLS to a real mosquitto
 * (no serve answers there, so the heartbeat interval is the device's own
 * setting: serve's acks would set theirs). A script drives device 0 through
 * the PTY as a serial terminal program would (the +++ / a / +ok escape, then
 * AT commands) and sees every change where it matters:
 *  - the heartbeats on mosquitto_sub come every 60 s (virtual; their uptime
 *    field), and after AT+HEARTTM=15, AT+S, AT+Z every 15 s;
 *  - after AT+OTASVR=127.0.0.1,<port>, AT+S, AT+Z they go to a second server
 *    (an `xs-ota serve` with its embedded broker, certificate from the same
 *    CA) and no longer to mosquitto;
 *  - the restarted firmware reads the new values back.
 * Device 1 is driven over TCP.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as tty from "node:tty";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServe, type ServeHandle } from "../../tools/serve/server";
import { repoRoot } from "../lib/cli";
import { HOST, Mosquitto } from "../lib/mosquitto";

let sim: ChildProcess;
let out = "";
const ptyDir = fs.mkdtempSync(path.join(os.tmpdir(), "xs-ota-console-"));
const broker = new Mosquitto();
/** The second server device 0 is moved to. */
let second: ServeHandle;
const SPEED = 10;

function waitFor(get: () => string, re: RegExp, ms: number, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const poll = () => {
      const m = re.exec(get());
      if (m) return resolve(m);
      if (Date.now() - start > ms) return reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(get().slice(-400))}`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A terminal on the console: write bytes, wait for a reply. */
interface Terminal {
  write(s: string): void;
  /** Everything received since the last `take`. */
  received(): string;
  take(): string;
  close(): void;
}

function ptyTerminal(link: string): Terminal {
  const fd = fs.openSync(link, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  const stream = new tty.ReadStream(fd);
  let buf = "";
  stream.on("data", (d: Buffer) => (buf += d.toString("latin1")));
  return {
    write: (s) => fs.writeSync(fd, Buffer.from(s, "latin1")),
    received: () => buf,
    take() {
      const b = buf;
      buf = "";
      return b;
    },
    close: () => stream.destroy(),
  };
}

function tcpTerminal(port: number): Promise<Terminal> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let buf = "";
    socket.on("data", (d) => (buf += d.toString("latin1")));
    socket.once("error", reject);
    socket.once("connect", () =>
      resolve({
        write: (s) => socket.write(Buffer.from(s, "latin1")),
        received: () => buf,
        take() {
          const b = buf;
          buf = "";
          return b;
        },
        close: () => socket.destroy(),
      }),
    );
  });
}

/** The USR escape: guard silence, +++, the device's a, our a, +ok. */
async function enterCommandMode(t: Terminal): Promise<void> {
  await sleep(300);
  t.take();
  t.write("+++");
  await waitFor(t.received, /a$/, 3000, "the device's 'a'");
  t.take();
  t.write("a");
  await waitFor(t.received, /\+ok$/, 3000, "+ok");
  t.take();
}

async function command(t: Terminal, line: string): Promise<string> {
  t.take();
  t.write(line + "\r");
  const m = await waitFor(t.received, /\r\n(\+OK(=[^\r]*)?|\+ERR=[^\r]*)\r\n$/, 5000, `the reply to ${line}`);
  t.take();
  return m[0];
}

interface Beat {
  seq: number;
  uptime: number;
  version: string;
}

/** Heartbeats of `deviceId` seen by mosquitto_sub on the first broker. */
function beats(sub: { lines: () => string[] }, deviceId: string): Beat[] {
  return sub
    .lines()
    .filter((l) => l.startsWith(`xs-ota/v1/${deviceId}/hb `))
    .map((l) => JSON.parse(l.slice(l.indexOf(" ") + 1)) as Beat);
}

/** The uptime gaps between consecutive heartbeats of one boot (seq n → n+1). */
function gaps(list: Beat[]): number[] {
  const out: number[] = [];
  for (let i = 1; i < list.length; i++) if (list[i].seq === list[i - 1].seq + 1) out.push(list[i].uptime - list[i - 1].uptime);
  return out;
}

describe("interop: the simulator's AT console through a real PTY (socat), heartbeats on a real broker", () => {
  let ports: number[] = [];
  let links: string[] = [];
  let hb: { lines: () => string[] };

  beforeAll(async () => {
    const socat = spawnSync("socat", ["-V"], { encoding: "utf8" });
    expect(socat.error, "socat is missing: apt-get install socat").toBeUndefined();
    await broker.start();
    const secondDir = fs.mkdtempSync(path.join(os.tmpdir(), "xs-ota-console-serve-"));
    second = await startServe({
      releasesDir: secondDir,
      host: HOST,
      mqttPort: 0,
      httpsPort: 0,
      tlsCert: broker.tls.cert,
      tlsKey: broker.tls.key,
      insecurePlaintext: false,
      heartbeatIntervalSec: 60,
      reportsPath: path.join(secondDir, "reports.jsonl"),
      log: () => {},
    });
    hb = broker.subscribe("xs-ota/v1/+/hb");
    sim = spawn(
      process.execPath,
      [repoRoot + "bin/xs-ota.mjs", "sim", "--devices", "2", "--broker", `mqtts://${HOST}:${broker.port}`, "--ca", broker.tls.ca, "--no-serve", "--speed", String(SPEED), "--console-port", "0", "--console-pty", "--pty-dir", ptyDir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    sim.stdout!.on("data", (d) => (out += d.toString()));
    sim.stderr!.on("data", (d) => (out += d.toString()));
    await waitFor(() => out, new RegExp(`running on one virtual clock \\(at most ×${SPEED}\\)`), 30000, "the simulator");
    ports = [...out.matchAll(/console tcp 127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    links = [...out.matchAll(/\(link ([^)]+)\)/g)].map((m) => m[1]);
  }, 60_000);

  afterAll(async () => {
    if (sim && sim.exitCode === null) {
      sim.kill("SIGTERM");
      await new Promise((r) => sim.once("exit", r));
    }
    await second?.close();
    await broker.close();
    fs.rmSync(ptyDir, { recursive: true, force: true });
  });

  it("prints a TCP port and a PTY per device; the PTY is a real terminal device", () => {
    expect(ports).toHaveLength(2);
    expect(links).toHaveLength(2);
    const target = fs.realpathSync(links[0]);
    expect(target).toMatch(/^\/dev\/pts\/\d+$/);
    const fd = fs.openSync(links[0], fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    try {
      expect(tty.isatty(fd)).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("the factory heartbeat interval (60 s) is what mosquitto_sub sees", async () => {
    await waitFor(() => String(gaps(beats(hb, "sim-0000")).length), /^[1-9]/, 30_000, "two heartbeats of one boot");
    const b = beats(hb, "sim-0000");
    expect(b[0]).toMatchObject({ seq: 0, version: "1.0.0+1" });
    for (const g of gaps(b)) expect(Math.abs(g - 60), `gap ${g}`).toBeLessThanOrEqual(1);
  }, 40_000);

  it("AT+HEARTTM=15, AT+S, AT+Z over the PTY: the restarted device heartbeats every 15 s", async () => {
    const t = ptyTerminal(links[0]);
    try {
      // "+++a" in one burst is data: no handshake.
      await sleep(300);
      t.write("+++a");
      await sleep(400);
      expect(t.take()).toBe("");
      await enterCommandMode(t);
      expect(await command(t, "AT+E=OFF")).toBe("\r\n+OK\r\n");
      expect(await command(t, "AT+VER")).toBe("\r\n+OK=1.0.0+1,sim\r\n");
      expect(await command(t, "AT+DEVID?")).toBe("\r\n+OK=sim-0000\r\n");
      expect(await command(t, "AT+OTASVR?")).toBe(`\r\n+OK=${HOST},${broker.port}\r\n`);
      expect(await command(t, "AT+HEARTTM?")).toBe("\r\n+OK=60\r\n");
      expect(await command(t, "AT+HEARTTM=15")).toBe("\r\n+OK=pending; AT+S saves\r\n");
      expect(await command(t, "AT+S")).toBe("\r\n+OK=saved; AT+Z applies\r\n");
      const before = hb.lines().length;
      expect(await command(t, "AT+Z")).toBe("\r\n+OK=restarting\r\n");
      // The device reboots (through the bootloader model), reconnects, and heartbeats at its new interval.
      // (mosquitto_sub may still print a heartbeat of the old boot: the new boot's start at seq 0)
      const fresh = () => {
        const list = beats({ lines: () => hb.lines().slice(before) }, "sim-0000");
        const start = list.map((x) => x.seq).lastIndexOf(0);
        return start < 0 ? [] : list.slice(start);
      };
      await waitFor(() => String(gaps(fresh()).length), /^[3-9]/, 30_000, "four heartbeats after the restart");
      const b = fresh();
      expect(b[0].seq).toBe(0);
      for (const g of gaps(b)) expect(Math.abs(g - 15), `gap ${g}`).toBeLessThanOrEqual(1);
      await enterCommandMode(t);
      expect(await command(t, "AT+HEARTTM?")).toBe("\r\n+OK=15\r\n");
      expect(await command(t, "AT+ENTM")).toBe("\r\n+OK\r\n"); // back to transparent mode
    } finally {
      t.close();
    }
  }, 60_000);

  it("AT+OTASVR to a second server, AT+S, AT+Z over the PTY: the heartbeats go there, not to mosquitto", async () => {
    const t = ptyTerminal(links[0]);
    try {
      await enterCommandMode(t);
      await command(t, "AT+E=OFF");
      const logBefore = /\+OK=(\d+),/.exec(await command(t, "AT+LOG?"))![1];
      expect(await command(t, `AT+OTASVR=${HOST},${second.mqttPort}`)).toBe("\r\n+OK=pending; AT+S saves\r\n");
      expect(await command(t, "AT+S")).toBe("\r\n+OK=saved; AT+Z applies\r\n");
      expect(second.stats().heartbeats).toBe(0);
      expect(await command(t, "AT+Z")).toBe("\r\n+OK=restarting\r\n");
      const switched = hb.lines().length;
      await waitFor(() => String(second.stats().heartbeats), /^[1-9]/, 20_000, "a heartbeat at the second server");
      expect(second.summary()).toMatch(/sim-0000: 1\.0\.0\+1 idle/);
      // 40 s virtual: more than two of its 15 s intervals, with nothing from sim-0000 at mosquitto
      await sleep((40 / SPEED) * 1000);
      expect(beats({ lines: () => hb.lines().slice(switched) }, "sim-0000")).toEqual([]);
      expect(beats(hb, "sim-0001").length).toBeGreaterThan(0); // the other device stays on mosquitto
      await enterCommandMode(t);
      expect(await command(t, "AT+OTASVR?")).toBe(`\r\n+OK=${HOST},${second.mqttPort}\r\n`);
      // saved, restart, boot at least were logged since
      const logAfter = /\+OK=(\d+),/.exec(await command(t, "AT+LOG?"))![1];
      expect(Number(logAfter)).toBeGreaterThanOrEqual(Number(logBefore) + 3);
    } finally {
      t.close();
    }
  }, 60_000);

  it("device 1 answers on its TCP port with its own settings", async () => {
    const t = await tcpTerminal(ports[1]);
    try {
      await enterCommandMode(t);
      await command(t, "AT+E=OFF");
      expect(await command(t, "AT+DEVID?")).toBe("\r\n+OK=sim-0001\r\n");
      expect(await command(t, "AT+HEARTTM?")).toBe("\r\n+OK=60\r\n");
      expect(await command(t, "AT+NOPE")).toBe("\r\n+ERR=-2\r\n");
    } finally {
      t.close();
    }
  });

  it("stops cleanly on SIGTERM", async () => {
    sim.kill("SIGTERM");
    const code = await new Promise((r) => sim.once("exit", r));
    expect(code).toBe(0);
  });
});
