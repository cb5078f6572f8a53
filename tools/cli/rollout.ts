/**
 * `xs-ota rollout start|pause|resume|abort|status`: the operator's commands
 * for rollout plans (tools/serve/plan.ts), sent to any `xs-ota serve`
 * instance's operator API over HTTPS with the operator token. The state
 * they change is shared by every instance (retained messages on the broker,
 * or DIR/rollout-state.json with the embedded one).
 */
import * as https from "node:https";
import * as http from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex, utf8Encode } from "../../src/util/bytes";
import { readSigningKey } from "../keys/pem";
import { parsePlan } from "../serve/plan";
import type { FleetView, RolloutView } from "../serve/plans";
import { CliError, io, parse, readInput, usageError, type Command } from "./command";

const usage = `usage: xs-ota rollout start --plan PLAN.json [--key KEY.pem] [server options]
       xs-ota rollout pause|resume|abort ID [--note TEXT] [server options]
       xs-ota rollout status [ID] [server options]

Stage a release in waves. A plan (JSON) names the release (hardware id and
version: every manifest of that version, full or delta, follows the plan),
the target (groups of device id patterns; default every device of the
hardware id), the waves (cumulative share of the targeted fleet, a soak time
and a failure budget each), the rollout's in-flight bound and a start
window:

  {"release":{"hardwareId":"usr-n520","version":"1.1.0+2"},
   "groups":{"line-a":["sim-00*"]},"target":{"groups":["line-a"]},
   "waves":[{"name":"canary","upToPercent":1,"soakSec":600,"failureBudget":0,"minDevices":5},
            {"name":"early","upToPercent":10,"soakSec":1800,"failureBudget":2},
            {"name":"rest","upToPercent":100,"soakSec":0,"failureBudget":20}],
   "maxInFlight":25,"window":{"notBefore":"2026-12-01T02:00:00Z"}}

The rollout id is the SHA-256 of the plan file's bytes; with --key the plan
is also signed (ECDSA P-256 over that hash), and a serve started with --trust
accepts only plans signed by one of its keys. A device's wave is fixed by
SHA-256(rollout id, device id). The next wave opens when the current one has
nothing in flight or pending, at least minDevices (default 1) of its devices
finished, and it has soaked; a wave whose rolled-back +
failed + bricked-suspect devices exceed its budget halts the rollout: nothing
more of the release is offered, and status says why. pause and resume are
the operator's; abort is final; a halted rollout stays halted.

server options (default: serve on this machine with --releases DIR):
  --releases DIR      serve's folder: CA DIR/tls/ca.pem, token DIR/operator.token
  --server URL        https://host:port of any serve instance (default https://127.0.0.1:8443)
  --ca FILE           the CA its certificate chains to
  --token-file FILE   the operator token
  --json              the answer as JSON on stdout

example: xs-ota rollout start --plan canary.json --releases rel --server https://127.0.0.1:8443`;

interface Target {
  readonly url: URL;
  readonly ca?: string;
  readonly token: string;
}

function request(t: Target, method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const lib = t.url.protocol === "https:" ? https : http;
  return new Promise((resolveP, reject) => {
    const req = lib.request(
      {
        host: t.url.hostname,
        port: t.url.port,
        method,
        path,
        ...(t.ca ? { ca: t.ca } : {}),
        headers: { Authorization: `Bearer ${t.token}`, ...(data ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } : {}) },
        timeout: 15_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // a plain-text answer (401)
          }
          resolveP({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer in 15 s")));
    req.on("error", (e) => reject(new CliError(`cannot reach serve at ${t.url.origin}: ${e.message}`)));
    if (data) req.write(data);
    req.end();
  });
}

function fail(r: { status: number; body: unknown }): never {
  const msg = typeof r.body === "object" && r.body !== null && "error" in r.body ? String((r.body as { error: unknown }).error) : String(r.body).trim();
  throw new CliError(`serve refused (HTTP ${r.status}): ${msg}`);
}

function ago(ms: number): string {
  const s = Math.round((Date.now() - ms) / 1000);
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

/** A rollout as lines of text. */
export function formatRollout(v: RolloutView): string[] {
  const lines = [`rollout ${v.id.slice(0, 12)}  ${v.label}  ${v.status.toUpperCase()}${v.why ? `: ${v.reasonName ? `${v.reasonName} (${v.reason}) ` : ""}${v.why}` : ""}`];
  lines.push(`  plan ${v.signed ? "signed" : "hashed (unsigned)"}, started ${ago(v.startedAt)}, in flight ${v.inFlight}${v.maxInFlight ? ` of at most ${v.maxInFlight}` : ""}`);
  for (const [i, w] of v.waves.entries()) {
    const s = w.stages;
    const parts = Object.entries(s).map(([k, n]) => `${k} ${n}`).join(", ");
    lines.push(`  ${i === v.currentWave ? "▶" : " "} ${w.name.padEnd(10)} ≤${String(w.upToPercent).padStart(3)} %  soak ${w.soakSec} s  budget ${w.failureBudget}  ${w.opened ? `open ${ago(w.opened)}${w.complete ? ", complete" : ""}` : "not open"}  devices ${w.devices}${parts ? ` (${parts})` : ""}  failures ${w.failures}`);
  }
  return lines;
}

export const command: Command = {
  summary: "rollout plans: start (waves, canary, soak, failure budget, window), pause, resume, abort, status",
  usage,
  json: true,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      plan: { type: "string" },
      key: { type: "string" },
      note: { type: "string" },
      releases: { type: "string" },
      server: { type: "string" },
      ca: { type: "string" },
      "token-file": { type: "string" },
    });
    const [action, id, ...rest] = positionals;
    if (!action) throw usageError("give an action: start, pause, resume, abort or status");
    if (!["start", "pause", "resume", "abort", "status"].includes(action)) throw usageError(`unknown action "${action}" (start, pause, resume, abort, status)`);
    if (rest.length) throw usageError(`unexpected argument "${rest[0]}"`);
    const dir = values.releases === undefined ? undefined : resolve(values.releases);
    if (dir !== undefined && !existsSync(dir)) throw new CliError(`--releases ${values.releases}: no such directory`);
    const url = new URL(values.server ?? "https://127.0.0.1:8443");
    if (url.protocol !== "https:" && url.protocol !== "http:") throw usageError(`--server must be https://host:port, got "${values.server}"`);
    const caPath = values.ca ?? (dir && url.protocol === "https:" ? join(dir, "tls", "ca.pem") : undefined);
    const tokenPath = values["token-file"] ?? (dir ? join(dir, "operator.token") : undefined);
    if (!tokenPath) throw usageError("--token-file FILE (or --releases DIR) is required");
    const token = Buffer.from(readInput(tokenPath, "--token-file")).toString("utf8").trim();
    const t: Target = { url, token, ...(caPath ? { ca: Buffer.from(readInput(caPath, "--ca")).toString("utf8") } : {}) };

    if (action === "start") {
      if (id) throw usageError("start takes --plan PLAN.json, not an id");
      if (!values.plan) throw usageError("start needs --plan PLAN.json");
      const text = Buffer.from(readInput(values.plan, "--plan")).toString("utf8");
      try {
        parsePlan(text);
      } catch (e) {
        throw new CliError(`--plan ${values.plan}: ${(e as Error).message}`);
      }
      let signature: string | undefined;
      if (values.key) signature = toHex(readSigningKey(values.key).sign(sha256(utf8Encode(text))));
      const r = await request(t, "POST", "/api/v1/rollouts", { plan: text, ...(signature ? { signature } : {}) });
      if (r.status !== 200) fail(r);
      const v = r.body as RolloutView;
      io.result(v);
      for (const l of formatRollout(v)) io.say(l);
      return 0;
    }
    if (action === "status") {
      const r = await request(t, "GET", "/api/v1/fleet");
      if (r.status !== 200) fail(r);
      const f = r.body as FleetView;
      const shown = id ? f.rollouts.filter((v) => v.id.startsWith(id.toLowerCase())) : f.rollouts;
      if (id && shown.length === 0) throw new CliError(`no rollout ${id}`);
      io.result(id ? shown[0] : f);
      if (!shown.length) io.say("no rollout (start one with xs-ota rollout start --plan PLAN.json)");
      for (const v of shown) for (const l of formatRollout(v)) io.say(l);
      io.say(`devices ${f.devices.length}; versions: ${Object.entries(f.versions).map(([k, n]) => `${k} ${n}`).join(", ") || "none"}`);
      const failures = Object.entries(f.failures);
      if (failures.length) io.say(`failures: ${failures.map(([code, x]) => `${code} ${x.name} ${x.count}`).join(", ")}`);
      return 0;
    }
    if (!id) throw usageError(`${action} needs the rollout id (or 6+ leading hex digits; see xs-ota rollout status)`);
    const r = await request(t, "POST", `/api/v1/rollouts/${encodeURIComponent(id.toLowerCase())}/${action}`, values.note ? { note: values.note } : {});
    if (r.status !== 200) fail(r);
    io.result(r.body);
    for (const l of formatRollout(r.body as RolloutView)) io.say(l);
    return 0;
  },
};

/** For tests: the plan file's rollout id without a server. */
export function planFileId(path: string): string {
  return toHex(sha256(new Uint8Array(readFileSync(path))));
}
