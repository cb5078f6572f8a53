/**
 * Rollout rigs for the interop tests: a release folder (a factory image and
 * one release, healthy or bad, signed with a key written as PEM), `xs-ota
 * serve` processes on it, the operator API over HTTPS, and `xs-ota sim`
 * devices, all through the built CLI as an operator runs them. Processes
 * run asynchronously so the test keeps reading their pipes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import { join } from "node:path";
import { generateKeyPem, parsePrivateKeyPem } from "../../tools/keys/pem";
import { publishRelease } from "../../tools/demo/rig";
import { buildImage, release } from "../../tools/demo/firmware";
import { flashMapOf } from "../../tools/sim/fleet";
import type { Behaviour } from "../../targets/sim/behaviour";
import type { FleetView } from "../../tools/serve/plans";
import { repoRoot } from "./cli";
import { stopChild } from "./mosquitto";

export interface ReleaseFolder {
  readonly dir: string;
  readonly keyPath: string;
  readonly pubPath: string;
  readonly factoryPath: string;
}

/** DIR/releases with factory 1.0.0+1 and release `version` for slot 1 that behaves as `behaviour` once booted. */
export function releaseFolder(work: string, o: { behaviour?: Behaviour; version?: string; imageBytes?: number } = {}): ReleaseFolder {
  const dir = join(work, "releases");
  mkdirSync(dir, { recursive: true });
  const { privatePem, publicPem } = generateKeyPem();
  const keyPath = join(work, "key.pem");
  const pubPath = join(work, "key.pub.pem");
  writeFileSync(keyPath, privatePem, { mode: 0o600 });
  writeFileSync(pubPath, publicPem);
  const key = parsePrivateKeyPem(privatePem);
  const map = flashMapOf("small");
  const size = o.imageBytes ?? 8 * 1024;
  const factory = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size });
  const factoryPath = join(work, "factory.img");
  writeFileSync(factoryPath, factory.bytes);
  const next = buildImage(map, key, o.version ?? "1.1.0+2", 1, { size, securityCounter: 2, behaviour: o.behaviour ?? "healthy" });
  const now = Math.floor(Date.now() / 1000);
  publishRelease(dir, release(key, next, { issuedAt: now - 60, expiresAt: now + 7 * 86400 }));
  return { dir, keyPath, pubPath, factoryPath };
}

export interface Proc {
  readonly child: ChildProcess;
  out: string;
  readonly exited: Promise<number | null>;
}

/** Start the built CLI; its output is collected in `out`. */
export function startCli(args: string[]): Proc {
  const child = spawn(process.execPath, [repoRoot + "bin/xs-ota.mjs", ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  const p: Proc = {
    child,
    out: "",
    exited: new Promise((r) => child.on("exit", (code) => r(code))),
  };
  child.stdout!.on("data", (d) => (p.out += d));
  child.stderr!.on("data", (d) => (p.out += d));
  return p;
}

export async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms: number, context: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface ServeProc extends Proc {
  httpsPort: number;
}

/** `xs-ota serve --broker` on the folder; resolves when it is connected and its HTTPS port is known. */
export async function startServeBroker(rf: ReleaseFolder, brokerUrl: string, brokerCa: string, name: string, extra: string[] = []): Promise<ServeProc> {
  const p = startCli(["serve", "--releases", rf.dir, "--host", "127.0.0.1", "--https-port", "0", "--broker", brokerUrl, "--ca", brokerCa, "--trust", rf.pubPath, "--reports", join(rf.dir, `reports-${name}.jsonl`), ...extra]) as ServeProc;
  await waitFor(`serve ${name} connected`, () => /connected to mqtts/.test(p.out) || p.child.exitCode !== null, 60_000, () => p.out);
  if (p.child.exitCode !== null) throw new Error(`serve ${name} exited: ${p.out}`);
  p.httpsPort = Number(/range server listening on 127\.0\.0\.1:(\d+)/.exec(p.out)?.[1]);
  return p;
}

export function stopProc(p: Proc | undefined): Promise<void> {
  return stopChild(p?.child);
}

/** GET/POST the operator API of a serve instance (the folder's CA and operator token). */
export function operatorApi(rf: ReleaseFolder, port: number, path: string, o: { method?: string; body?: unknown; token?: string } = {}): Promise<{ status: number; body: any }> {
  const token = o.token ?? readFileSync(join(rf.dir, "operator.token"), "utf8").trim();
  const data = o.body === undefined ? undefined : JSON.stringify(o.body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: "127.0.0.1", port, path, method: o.method ?? "GET", ca: readFileSync(join(rf.dir, "tls", "ca.pem")), headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(data ? { "Content-Type": "application/json" } : {}) } },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // plain text
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

export async function fleetView(rf: ReleaseFolder, port: number): Promise<FleetView> {
  const r = await operatorApi(rf, port, "/api/v1/fleet");
  if (r.status !== 200) throw new Error(`GET /api/v1/fleet: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as FleetView;
}

/** Every status report serve instances logged in the folder (reports-*.jsonl). */
export function reportsOf(rf: ReleaseFolder, names: readonly string[]): { deviceId: string; event: string; reason: number; target?: string }[] {
  const out: { deviceId: string; event: string; reason: number; target?: string }[] = [];
  for (const n of names) {
    let text = "";
    try {
      text = readFileSync(join(rf.dir, `reports-${n}.jsonl`), "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n")) if (line.trim()) out.push(JSON.parse(line));
  }
  return out;
}

/** A plan file's text. */
export function planText(waves: { name: string; upToPercent: number; soakSec: number; failureBudget: number }[], maxInFlight = 0, version = "1.1.0+2"): string {
  return JSON.stringify({ release: { hardwareId: "usr-n520", version }, waves, maxInFlight }, null, 2) + "\n";
}
