/**
 * `xs-ota rollout` (the built CLI) against an in-process serve over HTTPS:
 * start a signed plan, status, pause, resume, abort, misuse and refusals,
 * and the rollout kept across a restart of serve on the same folder.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPem, parsePublicKeyPem } from "../../tools/keys/pem";
import { inventory } from "../../tools/serve/inventory";
import { startServe, type ServeHandle } from "../../tools/serve/server";
import { repoRoot } from "../lib/cli";
import { spawn } from "node:child_process";

/** The built CLI, without blocking this process (serve runs in it). */
function xsOta(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [repoRoot + "bin/xs-ota.mjs", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("exit", (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

let dir: string;
let serve: ServeHandle;
let key: string;
let pub: Uint8Array;
const plan = (version = "1.1.0+2") =>
  JSON.stringify({ release: { hardwareId: "usr-n520", version }, waves: [{ name: "canary", upToPercent: 5, soakSec: 60, failureBudget: 0 }, { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 3 }], maxInFlight: 10 });

async function start(): Promise<ServeHandle> {
  return startServe({ releasesDir: join(dir, "rel"), host: "127.0.0.1", mqttPort: 0, httpsPort: 0, insecurePlaintext: false, heartbeatIntervalSec: 60, reportsPath: join(dir, "reports.jsonl"), log: () => {}, planKeys: [pub] });
}

const server = () => ["--releases", join(dir, "rel"), "--server", `https://127.0.0.1:${serve.httpsPort}`];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-rollout-cli-"));
  const { mkdirSync } = await import("node:fs");
  mkdirSync(join(dir, "rel"));
  const k = generateKeyPem();
  key = join(dir, "key.pem");
  writeFileSync(key, k.privatePem, { mode: 0o600 });
  pub = parsePublicKeyPem(k.publicPem);
  writeFileSync(join(dir, "plan.json"), plan());
  writeFileSync(join(dir, "bad.json"), JSON.stringify({ release: { hardwareId: "usr-n520", version: "1.1.0+2" }, waves: [{ name: "all", upToPercent: 90 }] }));
  serve = await start();
}, 60_000);

afterAll(async () => {
  await serve?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("xs-ota rollout", () => {
  it("misuse is exit 2; a bad plan, an unsigned plan (serve --trust) and an unknown id are refusals (exit 1)", async () => {
    expect((await xsOta(["rollout"])).status).toBe(2);
    expect((await xsOta(["rollout", "launch"])).stderr).toMatch(/unknown action "launch"/);
    expect((await xsOta(["rollout", "start", ...server()])).stderr).toMatch(/--plan/);
    const bad = await xsOta(["rollout", "start", "--plan", join(dir, "bad.json"), "--key", key, ...server()]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/PLAN_INVALID: the last wave's upToPercent must be 100/);
    const unsigned = await xsOta(["rollout", "start", "--plan", join(dir, "plan.json"), ...server()]);
    expect(unsigned.status).toBe(1);
    expect(unsigned.stderr).toMatch(/PLAN_SIGNATURE/);
    expect((await xsOta(["rollout", "pause", "abcdef12", ...server()])).stderr).toMatch(/no rollout abcdef12/);
    expect((await xsOta(["rollout", "status", ...server(), "--token-file", join(dir, "plan.json")])).stderr).toMatch(/HTTP 401/);
  });

  it("starts a signed plan, shows its waves, pauses, resumes; the rollout survives a restart; abort is final", async () => {
    const s = await xsOta(["rollout", "start", "--plan", join(dir, "plan.json"), "--key", key, ...server(), "--json"]);
    expect(s.status, s.stderr).toBe(0);
    const v = JSON.parse(s.stdout);
    expect(v).toMatchObject({ status: "running", signed: true, label: "usr-n520 1.1.0+2", maxInFlight: 10 });
    expect(v.waves.map((w: { name: string }) => w.name)).toEqual(["canary", "rest"]);
    const again = await xsOta(["rollout", "start", "--plan", join(dir, "plan.json"), "--key", key, ...server(), "--json"]);
    expect(JSON.parse(again.stdout).id).toBe(v.id); // the same plan bytes: the same rollout
    const other = join(dir, "plan2.json");
    writeFileSync(other, plan() + "\n");
    expect((await xsOta(["rollout", "start", "--plan", other, "--key", key, ...server()])).stderr).toMatch(/is running: abort it first/);
    const id = v.id.slice(0, 8);
    expect((await xsOta(["rollout", "pause", id, "--note", "line A maintenance", ...server()])).stdout).toMatch(/PAUSED: ROLLOUT_PAUSED \(731\) line A maintenance/);
    await serve.close();
    // the state file is serve's own: not listed among the folder's stray files
    expect(existsSync(join(dir, "rel", "rollout-state.json"))).toBe(true);
    expect(inventory(join(dir, "rel")).ignored).toEqual([]);
    serve = await start();
    const status = await xsOta(["rollout", "status", ...server()]);
    expect(status.stdout).toMatch(new RegExp(`rollout ${v.id.slice(0, 12)}  usr-n520 1\\.1\\.0\\+2  PAUSED`));
    expect(status.stdout).toMatch(/canary .*≤  5 %/);
    expect((await xsOta(["rollout", "resume", id, ...server()])).stdout).toMatch(/RUNNING/);
    expect((await xsOta(["rollout", "abort", id, ...server()])).stdout).toMatch(/ABORTED: ROLLOUT_ABORTED \(732\)/);
    expect((await xsOta(["rollout", "resume", id, ...server()])).stderr).toMatch(/aborted \(final\)/);
  });
});
