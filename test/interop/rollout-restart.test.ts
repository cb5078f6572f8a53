/**
 * Interop: `xs-ota serve` with its embedded broker killed (SIGKILL) in the
 * middle of a rollout and started again on the same folder and ports: the
 * plan, its open waves and the devices' progress come back from
 * DIR/rollout-state.json, the devices reconnect, and the rollout completes
 * with every device on the release.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetReport } from "../../tools/sim/fleet";
import { freePort } from "../lib/mosquitto";
import { fleetView, planText, releaseFolder, startCli, stopProc, waitFor, type Proc, type ReleaseFolder } from "../lib/rollout-rig";

const DEVICES = 24;
let work: string;
let rf: ReleaseFolder;
const procs: Proc[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "xs-ota-rollout-restart-"));
  rf = releaseFolder(work);
});

afterAll(async () => {
  for (const p of procs) await stopProc(p);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("interop: serve restarted mid-rollout resumes the plan", () => {
  it("killed while the second wave runs, started again: same rollout, same waves, and it completes", async () => {
    const [mqttPort, httpsPort] = [await freePort(), await freePort()];
    const serveArgs = ["serve", "--releases", rf.dir, "--host", "127.0.0.1", "--mqtt-port", String(mqttPort), "--https-port", String(httpsPort), "--trust", rf.pubPath];
    const first = startCli(serveArgs);
    procs.push(first);
    await waitFor("serve ready", () => /^ready$/m.test(first.out), 60_000, () => first.out);
    const planPath = join(work, "plan.json");
    writeFileSync(planPath, planText([
      { name: "canary", upToPercent: 20, soakSec: 2, failureBudget: 1 },
      { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 3 },
    ], 6));
    const start = startCli(["rollout", "start", "--plan", planPath, "--key", rf.keyPath, "--releases", rf.dir, "--server", `https://127.0.0.1:${httpsPort}`, "--json"]);
    expect(await start.exited, start.out).toBe(0);
    const id: string = JSON.parse(start.out.slice(start.out.indexOf("{"))).id;
    const report = join(work, "fleet.json");
    const devices = startCli([
      "sim", "--devices", String(DEVICES), "--broker", `mqtts://127.0.0.1:${mqttPort}`, "--ca", join(rf.dir, "tls", "ca.pem"), "--no-serve",
      "--releases", rf.dir, "--trust", rf.pubPath, "--factory", rf.factoryPath, "--speed", "50", "--seed", "2", "--duration", "70", "--report", report, "--progress", "0",
    ]);
    procs.push(devices);
    await waitFor("the second wave under way", async () => {
      const r = (await fleetView(rf, httpsPort)).rollouts[0];
      return r.currentWave === 1 && (r.waves[1].stages.committed ?? 0) + (r.waves[1].stages.updating ?? 0) > 0;
    }, 120_000, () => first.out);
    await new Promise((r) => setTimeout(r, 700)); // the snapshot is written within 500 ms of a change
    const before = (await fleetView(rf, httpsPort)).rollouts[0];
    first.child.kill("SIGKILL");
    await first.exited;
    const second = startCli(serveArgs);
    procs.push(second);
    await waitFor("serve ready again", () => /^ready$/m.test(second.out) || second.child.exitCode !== null, 60_000, () => second.out);
    expect(second.out).toMatch(/rollouts in 1 plan\(s\)/);
    const after = (await fleetView(rf, httpsPort)).rollouts[0];
    expect(after).toMatchObject({ id, status: "running", currentWave: 1 });
    expect(after.waves.map((w) => w.opened)).toEqual(before.waves.map((w) => w.opened));
    expect(after.waves[0].stages.committed).toBe(before.waves[0].stages.committed);
    await waitFor("the rollout to complete", async () => (await fleetView(rf, httpsPort)).rollouts[0].status === "complete", 120_000, () => second.out);
    expect(await devices.exited, devices.out).toBe(0);
    const fleet: FleetReport = JSON.parse(readFileSync(report, "utf8"));
    expect(fleet.bricked).toBe(0);
    expect(fleet.perDevice.filter((d) => d.version !== "1.1.0+2").map((d) => `${d.id} ${d.outcome}`)).toEqual([]);
    console.log(`restart: before ${JSON.stringify(before.waves.map((w) => w.stages))}, after ${JSON.stringify(after.waves.map((w) => w.stages))}; all ${DEVICES} on 1.1.0+2`);
  });
});
