/**
 * Interop: a fleet of 200 virtual devices (the real agent and console on the
 * MCUboot model, one virtual clock) updated through ONE real mosquitto over
 * TLS by `xs-ota serve --broker` with at most 25 in flight, 20 % of the
 * devices (seeded) hit by a power cut at a random mutating flash operation
 * of their update and 20 % by link drops at random bytes. It must end with
 * every device on the new release or cleanly reported (a final failure
 * reported to the cloud), none bricked, the bound kept. The release carries
 * a URL on serve's HTTPS Range server and the devices prefer it (`--https`,
 * a 48 KiB image): the fleet's payload goes through Range requests. Run through the CLI
 * (`xs-ota sim --broker … --until-done --report`), as an operator would;
 * prints the report table. The CLI runs asynchronously: this process must
 * keep reading mosquitto's log pipe meanwhile (a blocked pipe stalls the broker).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetReport } from "../../tools/sim/fleet";
import { repoRoot } from "../lib/cli";
import { HOST, Mosquitto } from "../lib/mosquitto";

const DEVICES = 200;
const IN_FLIGHT = 25;
const broker = new Mosquitto(["max_connections -1"]);
let work: string;

beforeAll(async () => {
  await broker.start();
  work = mkdtempSync(join(tmpdir(), "xs-ota-fleet-interop-"));
}, 60_000);

/** Run the built CLI without blocking this process's event loop. */
function xsOtaAsync(args: string[], timeoutMs: number): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [repoRoot + "bin/xs-ota.mjs", ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    c.on("exit", (code) => {
      clearTimeout(t);
      resolve({ status: code ?? -1, stdout, stderr });
    });
  });
}

afterAll(async () => {
  await broker.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("interop: 200 devices through mosquitto (TLS) by xs-ota serve --broker", () => {
  it("every device ends on the new release or cleanly reported; none bricked; at most 25 in flight", async () => {
    const out = join(work, "fleet.json");
    const run = await xsOtaAsync(
      [
        "sim",
        "--devices", String(DEVICES),
        "--broker", `mqtts://${HOST}:${broker.port}`,
        "--ca", broker.tls.ca,
        "--demo-releases",
        "--https",
        "--image-kib", "48",
        "--max-in-flight", String(IN_FLIGHT),
        "--faults", "powercut=0.2,linkdrop=0.2",
        "--seed", "8",
        "--heartbeat-interval", "30",
        "--until-done",
        "--timeout", "400",
        "--report", out,
      ],
      440_000,
    );
    console.log(run.stdout);
    if (run.stderr) console.log(run.stderr);
    expect(run.status, run.stderr).toBe(0);
    const r = JSON.parse(readFileSync(out, "utf8")) as FleetReport;
    expect(r.cloud).toBe(`serve --broker mqtts://${HOST}:${broker.port}`);
    expect(r.devices).toBe(DEVICES);
    expect(r.completion.allDone).toBe(true);
    expect(r.bricked).toBe(0);
    expect(r.simulatorErrors).toEqual([]);
    expect(r.outcomes.running).toBe(0);
    for (const d of r.perDevice) {
      if (d.outcome === "committed") expect(d.version, d.id).toBe("1.1.0+2");
      else {
        // cleanly reported: a final, non-retryable failure serve received, on the old release
        expect(["rolled-back", "failed", "refused"], `${d.id}: ${JSON.stringify(d)}`).toContain(d.outcome);
        expect(d.reason, d.id).not.toBe(0);
        expect(d.version, d.id).toBe("1.0.0+1");
      }
    }
    expect(r.inFlight.peakServe).toBeLessThanOrEqual(IN_FLIGHT);
    expect(r.inFlight.peakDevices).toBeLessThanOrEqual(IN_FLIGHT);
    expect(r.serve!.withheld).toBeGreaterThan(0);
    // the faults were real: 40 devices armed with a cut, cuts happened, links were dropped
    expect(r.perDevice.filter((d) => d.faults.includes("cut@")).length).toBe(40);
    expect(r.retries.powerCuts).toBeGreaterThan(20);
    expect(r.retries.linkDrops).toBeGreaterThan(20);
    expect(r.outcomes.committed).toBeGreaterThan(DEVICES * 0.9);
    // through HTTPS Range, not MQTT chunks; and the run repeats (no owed message given up)
    expect(r.bytes.serveRangeBytes!).toBeGreaterThanOrEqual(r.outcomes.committed * r.target!.payloadBytes);
    expect(r.bytes.serveChunkBytes).toBe(0);
    expect(r.scheduler.stalls).toBe(0);
  }, 460_000);
});
