/**
 * A real mosquitto for interop tests: TLS listener on a free loopback port
 * with a throwaway CA (tools/serve/certs), started and stopped by the test.
 * A missing mosquitto fails the test (spawn error), never skips it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTlsFiles, type TlsFiles } from "../../tools/serve/certs";

export const HOST = "127.0.0.1";

export async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await new Promise<number>((resolve) => s.listen(0, HOST, () => resolve((s.address() as net.AddressInfo).port)));
  await new Promise((r) => s.close(r));
  return port;
}

export async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, HOST);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export function stopChild(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill("SIGKILL"), 5000);
    c.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    c.kill("SIGTERM");
  });
}

export class Mosquitto {
  readonly dir: string;
  readonly tls: TlsFiles;
  readonly ca: string;
  port = 0;
  log = "";
  private child: ChildProcess | undefined;
  private readonly clients = new Set<ChildProcess>();

  /**
   * @param extraConf lines appended to the listener's configuration
   * @param clientCa the listener's `cafile` (the CA client certificates must chain to, with
   *   `require_certificate true` in extraConf); default: the throwaway server CA
   */
  constructor(extraConf: string[] = [], clientCa?: string) {
    this.dir = mkdtempSync(join(tmpdir(), "xs-ota-mosq-"));
    this.tls = ensureTlsFiles(join(this.dir, "tls"));
    // mosquitto may drop to its own user: let it read the throwaway key.
    chmodSync(this.dir, 0o755);
    chmodSync(join(this.dir, "tls"), 0o755);
    chmodSync(this.tls.key, 0o644);
    this.ca = readFileSync(this.tls.ca, "utf8");
    this.extra = extraConf;
    this.clientCa = clientCa;
  }
  private readonly clientCa: string | undefined;
  private readonly extra: string[];

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const conf = join(this.dir, "mosquitto.conf");
    writeFileSync(
      conf,
      [
        "persistence false",
        "allow_anonymous true",
        "log_dest stderr",
        "max_inflight_messages 64",
        `listener ${this.port} ${HOST}`,
        `cafile ${this.clientCa ?? this.tls.ca}`,
        `certfile ${this.tls.cert}`,
        `keyfile ${this.tls.key}`,
        "tls_version tlsv1.2",
        ...this.extra,
        "",
      ].join("\n"),
    );
    const c = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = c;
    let spawnError: Error | undefined;
    c.on("error", (e) => (spawnError = e));
    c.stderr!.on("data", (d) => (this.log = (this.log + d).slice(-20000)));
    await until(`mosquitto on ${this.port}`, async () => {
      if (spawnError) throw new Error(`mosquitto cannot start (is it installed? .ci/run installs it): ${spawnError.message}`);
      if (c.exitCode !== null) throw new Error(`mosquitto exited ${c.exitCode}: ${this.log}`);
      return portOpen(this.port);
    });
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    this.child = undefined;
  }

  /** Start a mosquitto_sub on `topic` collecting its output lines (stopped by `close`). */
  subscribe(topic: string, args: string[] = []): { lines: () => string[] } {
    const c = spawn("mosquitto_sub", ["-h", HOST, "-p", String(this.port), "--cafile", this.tls.ca, "-t", topic, "-v", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.clients.add(c);
    let out = "";
    c.stdout!.on("data", (d) => (out += d));
    return { lines: () => out.split("\n").filter((l) => l.trim()) };
  }

  async close(): Promise<void> {
    for (const c of this.clients) await stopChild(c);
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
