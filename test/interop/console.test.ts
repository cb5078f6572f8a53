/**
 * Interop: `xs-ota sim` serves each device's AT console on a real
 * pseudo-terminal made by socat and on a TCP port. A script drives device 0
 * through the PTY as a serial terminal program would (the +++ / a / +ok
 * escape, then AT commands), reconfigures the heartbeat interval and the
 * update server, saves, restarts the device with AT+Z, and reads the new
 * values back from the restarted firmware; device 1 is driven over TCP.
 *
 * Not covered here (needs the agent started by the sim firmware): seeing the
 * new interval in the heartbeats on the broker.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as tty from "node:tty";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../lib/cli";

let sim: ChildProcess;
let out = "";
const ptyDir = fs.mkdtempSync(path.join(os.tmpdir(), "xs-ota-console-"));

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

describe("interop: the simulator's AT console through a real PTY (socat)", () => {
  let ports: number[] = [];
  let links: string[] = [];

  beforeAll(async () => {
    const socat = spawnSync("socat", ["-V"], { encoding: "utf8" });
    expect(socat.error, "socat is missing: apt-get install socat").toBeUndefined();
    sim = spawn(process.execPath, [repoRoot + "bin/xs-ota.mjs", "sim", "--devices", "2", "--console-port", "0", "--console-pty", "--pty-dir", ptyDir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    sim.stdout!.on("data", (d) => (out += d.toString()));
    sim.stderr!.on("data", (d) => (out += d.toString()));
    await waitFor(() => out, /running in real time/, 20000, "the simulator");
    ports = [...out.matchAll(/console tcp 127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    links = [...out.matchAll(/\(link ([^)]+)\)/g)].map((m) => m[1]);
  });

  afterAll(async () => {
    if (sim && sim.exitCode === null) {
      sim.kill("SIGTERM");
      await new Promise((r) => sim.once("exit", r));
    }
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

  it("reconfigures heartbeat and server over the PTY; AT+S, AT+Z; the restarted device reads them back", async () => {
    const t = ptyTerminal(links[0]);
    try {
      // "+++a" in one burst is data: no handshake.
      await sleep(300);
      t.write("+++a");
      await sleep(400);
      expect(t.take()).toBe("");
      await enterCommandMode(t);
      expect(await command(t, "AT+E=OFF")).toBe("\r\n+OK\r\n");
      expect(await command(t, "AT+VER")).toBe("\r\n+OK=1.0.0+0,sim\r\n");
      expect(await command(t, "AT+HEARTTM?")).toBe("\r\n+OK=60\r\n");
      expect(await command(t, "AT+HEARTTM=30")).toBe("\r\n+OK=pending; AT+S saves\r\n");
      expect(await command(t, "AT+OTASVR=broker.example.net,1883")).toBe("\r\n+OK=pending; AT+S saves\r\n");
      expect(await command(t, "AT+S")).toBe("\r\n+OK=saved; AT+Z applies\r\n");
      expect(await command(t, "AT+Z")).toBe("\r\n+OK=restarting\r\n");
      // The device reboots (through the bootloader model) and starts in transparent mode again.
      await sleep(500);
      await enterCommandMode(t);
      expect(await command(t, "AT+HEARTTM?")).toBe("\r\n+OK=30\r\n");
      expect(await command(t, "AT+OTASVR?")).toBe("\r\n+OK=broker.example.net,1883\r\n");
      // boot, saved, restart, boot (echo was reset by the restart: AT+E is not saved)
      expect(await command(t, "AT+LOG?")).toMatch(/^\r\n\+OK=4,0,\d+\r\n$/);
    } finally {
      t.close();
    }
  });

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
