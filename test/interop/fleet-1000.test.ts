/**
 * Interop, at the brief's scale: 1,000 virtual devices (the real agent and
 * console on the MCUboot model, one discrete-event virtual clock) updated
 * through ONE real mosquitto over TLS by `xs-ota serve --broker`, at most
 * 100 in flight, 20 % of the devices (seeded) hit by a power cut during their
 * update and 20 % by link drops. Every device must end on the new release,
 * none bricked, the bound kept, no owed message given up (the run repeats);
 * prints the report with the wall time, and the simulator's CPU and peak RSS
 * per device. Run through the CLI, as an operator would.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetReport } from "../../tools/sim/fleet";
import { repoRoot } from "../lib/cli";
import { HOST, Mosquitto } from "../lib/mosquitto";

const DEVICES = 1000;
const IN_FLIGHT = 100;
const broker = new Mosquitto(["max_connections -1", "set_tcp_nodelay true"]);
let work: string;

beforeAll(async () => {
  await broker.start();
  work = mkdtempSync(join(tmpdir(), "xs-ota-fleet1000-"));
}, 60_000);

afterAll(async () => {
  await broker.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Run the built CLI without blocking this process's event loop (mosquitto's log pipe is read here); its CPU seconds and peak RSS sampled from /proc. */
function xsOtaAsync(args: string[], timeoutMs: number): Promise<{ status: number; stdout: string; stderr: string; cpuS: number; maxRssMiB: number }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [repoRoot + "bin/xs-ota.mjs", ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let cpuS = 0;
    let maxRssMiB = 0;
    const sample = setInterval(() => {
      try {
        const stat = readFileSync(`/proc/${c.pid}/stat`, "utf8").split(") ")[1].split(" ");
        cpuS = (Number(stat[11]) + Number(stat[12])) / 100;
        const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${c.pid}/status`, "utf8"));
        if (hwm) maxRssMiB = Number(hwm[1]) / 1024;
      } catch {
        // exited
      }
    }, 500);
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    c.on("exit", (code) => {
      clearTimeout(t);
      clearInterval(sample);
      resolve({ status: code ?? -1, stdout, stderr, cpuS, maxRssMiB });
    });
  });
}

describe("interop: 1,000 devices through mosquitto (TLS) by xs-ota serve --broker", () => {
  it("every device ends on the new release; none bricked; at most 100 in flight; no stall", async () => {
    const out = join(work, "fleet.json");
    const started = performance.now();
    const run = await xsOtaAsync(
      [
        "sim",
        "--devices", String(DEVICES),
        "--broker", `mqtts://${HOST}:${broker.port}`,
        "--ca", broker.tls.ca,
        "--demo-releases",
        "--max-in-flight", String(IN_FLIGHT),
        "--faults", "powercut=0.2,linkdrop=0.2",
        "--seed", "8",
        "--until-done",
        "--timeout", "1000",
        "--progress", "60",
        "--report", out,
      ],
      1_080_000,
    );
    const wallS = (performance.now() - started) / 1000;
    console.log(run.stdout.split("\n").slice(0, 30).join("\n"));
    if (run.stderr) console.log(run.stderr);
    expect(run.status, run.stderr).toBe(0);
    const r = JSON.parse(readFileSync(out, "utf8")) as FleetReport;
    console.log(
      `[fleet-1000] wall ${wallS.toFixed(0)} s (rollout ${r.completion.realSeconds} s real, ${r.completion.virtualSeconds} s virtual); simulator CPU ${run.cpuS.toFixed(1)} s = ${((1000 * run.cpuS) / DEVICES).toFixed(0)} ms per device; peak RSS ${run.maxRssMiB.toFixed(0)} MiB = ${((1024 * run.maxRssMiB) / DEVICES).toFixed(0)} KiB per device`,
    );
    expect(r.devices).toBe(DEVICES);
    expect(r.completion.allDone).toBe(true);
    expect(r.bricked).toBe(0);
    expect(r.simulatorErrors).toEqual([]);
    expect(r.outcomes.committed).toBe(DEVICES);
    expect(r.notOnTarget).toEqual([]);
    expect(r.scheduler.stalls).toBe(0);
    expect(r.inFlight.peakServe).toBeLessThanOrEqual(IN_FLIGHT);
    expect(r.perDevice.filter((d) => d.faults.includes("cut@")).length).toBe(200);
    expect(r.retries.powerCuts).toBeGreaterThan(100);
    expect(r.retries.linkDrops).toBeGreaterThan(100);
  }, 1_100_000);
});
