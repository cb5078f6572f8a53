/**
 * `xs-ota watch` against serve's embedded broker (issue 17, item 10): serve
 * publishes fleet events on the operator topic; watch reads them with the
 * operator credential and shows every device's state, progress and last
 * reason; a device's credential cannot read the topic, a wrong token is
 * refused, and the operator credential can publish nothing.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import { smallFlashMap } from "../../targets/sim/flashmap";
import { buildImage, release, testKey } from "../../tools/demo/firmware";
import { publishRelease } from "../../tools/demo/rig";
import { OPERATOR_TOPIC, startServe, type ServeHandle } from "../../tools/serve/server";
import { SimFleet } from "../../tools/sim/fleet";
import { repoRoot, xsOta } from "../lib/cli";

let dir: string;
let serve: ServeHandle;

function watch(args: string[], timeoutMs = 60_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [repoRoot + "bin/xs-ota.mjs", "watch", ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Connect with `clientId` (and a credential) and subscribe to the operator topic; what the broker said. */
function tryOperatorTopic(clientId: string, credential?: { username: string; password: string }): Promise<string> {
  return new Promise((resolve) => {
    const clock = new NodeClock();
    const link = new MqttLink(
      {
        net: new NodeNetwork(),
        clock,
        server: { host: "127.0.0.1", port: serve.mqttPort!, tls: true, ca: readFileSync(serve.caPath!, "utf8") },
        clientId,
        ...(credential ? { username: credential.username, password: new TextEncoder().encode(credential.password) } : {}),
        keepAliveSec: 30,
        backoff: new Backoff({ initialMs: 500, maxMs: 1000, random: seededRandom(1) }),
        subscriptions: [{ topic: OPERATOR_TOPIC, qos: 0 }],
        maxAttempts: 1,
      },
      {
        onUp: (refused) => end(refused.includes(OPERATOR_TOPIC) ? "subscription refused" : "subscribed"),
        onDown: (reason, _retry, detail) => end(`down ${reason} ${detail ?? ""}`),
      },
    );
    const end = (what: string) => {
      link.stop();
      clock.clearAll();
      resolve(what);
    };
    link.start();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-watch-"));
  serve = await startServe({ releasesDir: dir, host: "127.0.0.1", mqttPort: 0, httpsPort: 0, insecurePlaintext: false, heartbeatIntervalSec: 10, reportsPath: join(dir, "reports.jsonl"), log: () => {} });
});
afterAll(async () => {
  await serve.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("xs-ota watch", () => {
  it("shows every device's state, download progress with bytes and last report, from serve's operator topic", async () => {
    const map = smallFlashMap();
    const key = testKey(1);
    const factory = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size: 20_000 });
    const next = buildImage(map, key, "1.1.0+2", 1, { size: 20_000 });
    const now = Math.floor(Date.now() / 1000);
    publishRelease(dir, release(key, next, { issuedAt: now - 60, expiresAt: now + 86400 }));
    const watching = watch(["--server", `mqtts://127.0.0.1:${serve.mqttPort}`, "--ca", serve.caPath!, "--token-file", serve.operatorTokenPath!, "--duration", "12"]);
    await new Promise((r) => setTimeout(r, 1500)); // watch connects first
    const fleet = await SimFleet.create({ devices: 2, seed: 1, speed: 20, releases: { kind: "dir", dir, trust: [key.publicKey], factory: factory.bytes }, heartbeatIntervalSec: 10, cloud: { mode: "none", url: `mqtts://127.0.0.1:${serve.mqttPort}`, caPath: serve.caPath! } });
    try {
      await fleet.run({ untilDone: false, timeoutS: 8 });
    } finally {
      await fleet.close();
    }
    const r = await watching;
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^watching xs-ota\/operator\/v1\/fleet on mqtts:\/\/127\.0\.0\.1:\d+ \(read-only\)/);
    // Event lines with progress bars and bytes, then the table.
    expect(r.stdout).toMatch(/sim-0000 .*downloading \[#+-*\] +\d+% [\d,]+\/[\d,]+ B chunk/);
    expect(r.stdout).toMatch(/report committed/);
    expect(r.stdout).toMatch(/xs-ota watch — 2 device\(s\)/);
    expect(r.stdout).toMatch(/DEVICE +VERSION +STATE +PROGRESS +LAST REASON +LAST REPORT +SEEN/);
    expect(r.stdout).toMatch(/sim-0001 +1\.1\.0\+2 +committed/);
  }, 90_000);

  it("a wrong token is refused: one line, exit 1", async () => {
    writeFileSync(join(dir, "wrong.token"), "not-the-token\n");
    const r = await watch(["--server", `mqtts://127.0.0.1:${serve.mqttPort}`, "--ca", serve.caPath!, "--token-file", join(dir, "wrong.token"), "--duration", "10"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refused the operator credential \(CONNACK [45]\)/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("devices cannot read the operator topic; the operator prefix needs the credential", async () => {
    expect(await tryOperatorTopic("sim-0000")).toBe("subscription refused");
    expect(await tryOperatorTopic("operator")).toBe("subscription refused");
    expect(await tryOperatorTopic("xs-ota-operator-x")).toMatch(/^down /);
    const token = readFileSync(serve.operatorTokenPath!, "utf8").trim();
    expect(await tryOperatorTopic("xs-ota-operator-y", { username: "xs-ota-operator", password: token })).toBe("subscribed");
  });

  it("on a terminal the table redraws in place (run under script(1) for a pseudo-terminal)", async () => {
    const cmd = [process.execPath, repoRoot + "bin/xs-ota.mjs", "watch", "--server", `mqtts://127.0.0.1:${serve.mqttPort}`, "--ca", serve.caPath!, "--token-file", serve.operatorTokenPath!, "--duration", "3"]
      .map((a) => `'${a}'`)
      .join(" ");
    const r = await new Promise<{ status: number | null; out: string }>((resolve) => {
      const child = spawn("script", ["-qfec", cmd, "/dev/null"]);
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.on("exit", (status) => resolve({ status, out }));
    });
    expect(r.status).toBe(0);
    expect(r.out).toContain("\x1b[H\x1b[2J");
    expect(r.out).toMatch(/xs-ota watch — \d+ device\(s\)/);
    expect(r.out).not.toMatch(/^watching /m);
  }, 30_000);

  it("without a serve, watch says so and exits 1", () => {
    const r = xsOta(["watch", "--server", "mqtts://127.0.0.1:1", "--ca", serve.caPath!, "--token-file", serve.operatorTokenPath!]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot connect to mqtts:\/\/127\.0\.0\.1:1: .*is serve running there\?/);
  });
});
