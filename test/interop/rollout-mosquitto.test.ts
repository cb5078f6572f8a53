/**
 * Interop: rollouts by plan through one real mosquitto (TLS) and two `xs-ota
 * serve --broker` instances started at once on one release folder (they
 * share the `$share` group for device messages and the retained state
 * records), with `xs-ota sim --no-serve` devices and `xs-ota rollout` as
 * the operator runs them.
 *
 *  1. The must-show: 1,000 devices (ROLLOUT_DEVICES=N for another size), a
 *     release that crash-loops in its trial, with faults (power cuts, link
 *     drops): the 1 % canary wave rolls back, the rollout halts itself with the
 *     reason, devices of later waves never receive the release, none bricked.
 *  2. A good release: one serve instance is killed (SIGKILL, by PID) mid-rollout
 *     and the devices finish through the other; a new instance started after
 *     it reads the plan and its progress back from the broker (a restart resumes).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import type { FleetReport } from "../../tools/sim/fleet";
import { parsePlan, waveOf } from "../../tools/serve/plan";
import { HOST, Mosquitto } from "../lib/mosquitto";
import { fleetView, planText, releaseFolder, reportsOf, startCli, startServeBroker, stopProc, waitFor, type Proc } from "../lib/rollout-rig";

/** The must-show: 1,000 devices (ROLLOUT_DEVICES=N for another size). */
const HALT_DEVICES = Number(process.env.ROLLOUT_DEVICES ?? 1000);
/** The instance-kill run: 40 devices. */
const KILL_DEVICES = 40;
let broker: Mosquitto;
let work: string;
const procs: Proc[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "xs-ota-rollout-interop-"));
});

// A broker per test: its retained records are that fleet's state, not the previous test's.
beforeEach(async () => {
  broker = new Mosquitto(["max_connections -1"]);
  await broker.start();
}, 60_000);

afterEach(async () => {
  for (const p of procs.splice(0)) await stopProc(p);
  await broker.close();
}, 60_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const brokerUrl = () => `mqtts://${HOST}:${broker.port}`;

function sim(rf: ReturnType<typeof releaseFolder>, report: string, seconds: number, faults: string, devices: number): Proc {
  const p = startCli([
    "sim", "--devices", String(devices), "--broker", brokerUrl(), "--ca", broker.tls.ca, "--no-serve",
    "--releases", rf.dir, "--trust", rf.pubPath, "--factory", rf.factoryPath,
    "--speed", "50", "--seed", "11", "--faults", faults, "--duration", String(seconds), "--report", report, "--progress", "0",
  ]);
  procs.push(p);
  return p;
}

describe("interop: rollouts by plan, two serve instances on mosquitto", () => {
  it("a release that rolls back: the canary halts the rollout, later waves never receive it, 0 bricked", async () => {
    const sub = join(work, "bad");
    const rf = releaseFolder((mkdtempSync(sub), sub), { behaviour: "crash-loop" });
    // Started together on a folder without DIR/tls: one makes the certificate, both serve with it.
    const [a, b] = await Promise.all([startServeBroker(rf, brokerUrl(), broker.tls.ca, "a"), startServeBroker(rf, brokerUrl(), broker.tls.ca, "b")]);
    procs.push(a, b);
    const planPath = join(sub, "plan.json");
    // 1 % canary at 1,000 devices (about 10), 10 % at 40.
    const canaryPercent = Math.max(1, Math.round(400 / HALT_DEVICES));
    writeFileSync(planPath, planText([
      { name: "canary", upToPercent: canaryPercent, soakSec: 5, failureBudget: 0 },
      { name: "half", upToPercent: 50, soakSec: 5, failureBudget: 2 },
      { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 5 },
    ], 10));
    const start = startCli(["rollout", "start", "--plan", planPath, "--key", rf.keyPath, "--releases", rf.dir, "--server", `https://127.0.0.1:${a.httpsPort}`, "--json"]);
    expect(await start.exited, start.out).toBe(0);
    const rollout = JSON.parse(start.out.slice(start.out.indexOf("{")));
    expect(rollout).toMatchObject({ status: "running", signed: true, currentWave: 0 });

    const report = join(sub, "fleet.json");
    const started = Date.now();
    const devices = sim(rf, report, 900, "powercut=0.1,linkdrop=0.1", HALT_DEVICES);
    // The other instance sees the halt too (shared state), with the reason.
    await waitFor("the rollout to halt", async () => (await fleetView(rf, b.httpsPort)).rollouts[0]?.status === "halted", 300_000, () => a.out + b.out);
    const halted = (await fleetView(rf, b.httpsPort)).rollouts[0];
    expect(halted.reason).toBe(Reason.ROLLOUT_HALTED);
    expect(halted.why).toMatch(/^wave canary: \d+ rolled back \+ \d+ failed \+ \d+ bricked-suspect > failure budget 0$/);
    expect(halted.currentWave).toBe(0);
    // The devices run on for 15 s (a minute and more of virtual time: every device heartbeats again) after the halt, then stop.
    await new Promise((r) => setTimeout(r, 15_000));
    expect(devices.child.exitCode).toBeNull();
    devices.child.kill("SIGINT");
    // The simulator exits 1 because devices did not end on the release: here, by design.
    expect(await devices.exited, devices.out).toBe(1);
    expect(devices.out).toMatch(/did not end on the target 1\.1\.0\+2/);

    const plan = parsePlan(readFileSync(planPath, "utf8"));
    const fleet: FleetReport = JSON.parse(readFileSync(report, "utf8"));
    expect(fleet.bricked).toBe(0);
    const canary = fleet.perDevice.filter((d) => waveOf(plan, rollout.id, d.id) === 0);
    const later = fleet.perDevice.filter((d) => waveOf(plan, rollout.id, d.id) > 0);
    expect(canary.length).toBeGreaterThan(0);
    // Serve's reports (the simulator without a serve of its own judges from the devices only).
    const reports = reportsOf(rf, ["a", "b"]);
    const rolledBack = canary.filter((d) => reports.some((r) => r.deviceId === d.id && r.event === "rolled-back"));
    expect(rolledBack.length).toBeGreaterThan(0);
    for (const d of canary) expect(d.version, d.id).toBe("1.0.0+1"); // rolled back (or never let past the halt)
    // Later waves: never offered (no report about the release from any of them), still on the factory image.
    for (const d of later) {
      expect(d.version, d.id).toBe("1.0.0+1");
      expect(reports.filter((r) => r.deviceId === d.id && r.target === "1.1.0+2"), d.id).toEqual([]);
    }
    expect(a.out + b.out).not.toMatch(new RegExp(`offer 1\\.1\\.0\\+2 \\(full, slot 1\\) to (${later.map((d) => d.id).join("|")})\\b`));
    // Both instances answered devices; the rollout status says why on the CLI too.
    expect(a.out).toMatch(/offer 1\.1\.0\+2|report sim-/);
    expect(b.out).toMatch(/offer 1\.1\.0\+2|report sim-/);
    const status = startCli(["rollout", "status", "--releases", rf.dir, "--server", `https://127.0.0.1:${b.httpsPort}`]);
    expect(await status.exited).toBe(0);
    expect(status.out).toMatch(/HALTED: ROLLOUT_HALTED \(730\) wave canary/);
    const view = await fleetView(rf, a.httpsPort);
    expect(Object.values(view.failures).some((f) => f.count > 0)).toBe(true);
    const haltedAfter = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`${HALT_DEVICES} devices; halted ${haltedAfter} s after the devices started: ${halted.why}; canary ${canary.length} devices, ${rolledBack.length} rolled back; later waves ${later.length} devices on 1.0.0+1; duplicates ignored ${view.duplicateReports}`);
    console.log(devices.out.split("\n").slice(0, 12).join("\n"));
    await Promise.all([stopProc(a), stopProc(b)]);
  });

  it("one instance killed mid-rollout: devices finish through the other; a restarted instance resumes the plan from the broker", async () => {
    const sub = join(work, "good");
    const rf = releaseFolder((mkdtempSync(sub), sub));
    const a = await startServeBroker(rf, brokerUrl(), broker.tls.ca, "a");
    const b = await startServeBroker(rf, brokerUrl(), broker.tls.ca, "b");
    procs.push(a, b);
    const planPath = join(sub, "plan.json");
    writeFileSync(planPath, planText([
      { name: "canary", upToPercent: 10, soakSec: 2, failureBudget: 2 },
      { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 10 },
    ], 8));
    // serve --trust: an unsigned plan is refused.
    const unsigned = startCli(["rollout", "start", "--plan", planPath, "--releases", rf.dir, "--server", `https://127.0.0.1:${b.httpsPort}`]);
    expect(await unsigned.exited).toBe(1);
    expect(unsigned.out).toMatch(/PLAN_SIGNATURE: serve trusts release keys/);
    const start = startCli(["rollout", "start", "--plan", planPath, "--key", rf.keyPath, "--releases", rf.dir, "--server", `https://127.0.0.1:${b.httpsPort}`, "--json"]);
    expect(await start.exited, start.out).toBe(0);
    const id: string = JSON.parse(start.out.slice(start.out.indexOf("{"))).id;
    const report = join(sub, "fleet.json");
    const devices = sim(rf, report, 75, "powercut=0.1,linkdrop=0.1", KILL_DEVICES);
    // The plan's bound over both instances, sampled as the live instance sees it.
    let peak = 0;
    const sampler = setInterval(() => void fleetView(rf, b.httpsPort).then((f) => (peak = Math.max(peak, f.rollouts[0]?.inFlight ?? 0)), () => {}), 250);
    // Mid-rollout: the second wave is open and some of it is in flight.
    await waitFor("the second wave to be under way", async () => {
      const r = (await fleetView(rf, a.httpsPort)).rollouts[0];
      return r.currentWave === 1 && (r.waves[1].stages.updating ?? 0) + (r.waves[1].stages.committed ?? 0) > 0;
    }, 120_000, () => a.out + b.out);
    a.child.kill("SIGKILL"); // by PID: the instance dies without a word, holding whatever it held
    expect(await a.exited).toBeNull();
    const mid = (await fleetView(rf, b.httpsPort)).rollouts[0];
    // A new instance (a restart of the killed one) reads the plan and progress back from the broker's retained records.
    const c = await startServeBroker(rf, brokerUrl(), broker.tls.ca, "c");
    procs.push(c);
    await waitFor("the restarted instance to hold the rollout", async () => (await fleetView(rf, c.httpsPort)).rollouts[0]?.id === id, 30_000, () => c.out);
    const resumed = (await fleetView(rf, c.httpsPort)).rollouts[0];
    expect(resumed.status).toBe("running");
    expect(resumed.currentWave).toBe(1);
    expect(resumed.waves[0].opened).toBe(mid.waves[0].opened);
    expect(resumed.waves[0].stages.committed ?? 0).toBeGreaterThanOrEqual(mid.waves[0].stages.committed ?? 0);
    await waitFor("the rollout to complete", async () => (await fleetView(rf, b.httpsPort)).rollouts[0].status === "complete", 120_000, () => b.out + c.out);
    expect(await devices.exited, devices.out).toBe(0);
    clearInterval(sampler);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(8);
    const fleet: FleetReport = JSON.parse(readFileSync(report, "utf8"));
    expect(fleet.bricked).toBe(0);
    const notCommitted = fleet.perDevice.filter((d) => d.version !== "1.1.0+2");
    expect(notCommitted.map((d) => `${d.id} ${d.outcome} ${d.reasonName ?? ""}`)).toEqual([]);
    const done = (await fleetView(rf, c.httpsPort)).rollouts[0];
    expect(done.inFlight).toBe(0);
    expect(done.waves.reduce((n, w) => n + (w.stages.committed ?? 0) + (w.stages["up-to-date"] ?? 0), 0)).toBe(KILL_DEVICES);
    console.log(`killed instance a mid-rollout (wave 2: ${JSON.stringify(mid.waves[1].stages)}); peak in flight ${peak} of 8; all ${KILL_DEVICES} committed through b and c; duplicates ignored ${done.waves.length && (await fleetView(rf, b.httpsPort)).duplicateReports}`);
  });
});
