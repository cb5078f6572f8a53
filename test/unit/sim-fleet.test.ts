/**
 * The fleet simulator's machinery in the unit lane: small fleets on one
 * virtual clock over real TLS sockets to an embedded `xs-ota serve` — with a
 * bounded number in flight and seeded power cuts and link drops (every
 * device ends on the new release, none bricked); a release the devices must
 * refuse (reported once each, never re-offered); a release directory of the
 * user's own; the CLI with its JSON report; the fault plan.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { smallFlashMap } from "../../targets/sim/flashmap";
import { buildImage, release, testKey } from "../../tools/demo/firmware";
import { publishRelease } from "../../tools/demo/rig";
import { chooseVictims, parseFaultPlan } from "../../tools/sim/faults";
import { SimFleet, type FleetReport } from "../../tools/sim/fleet";
import { startServe } from "../../tools/serve/server";
import { formatReport } from "../../tools/sim/report";
import { xsOta } from "../lib/cli";
import { MAX_NO_CLOUD_TRIALS } from "../../src/agent/retry";
import { publicPemOf } from "../../tools/keys/pem";

describe("fault plan", () => {
  it("parses shares and refuses anything else", () => {
    expect(parseFaultPlan("powercut=0.2,linkdrop=0.1")).toEqual({ powercut: 0.2, linkdrop: 0.1 });
    expect(parseFaultPlan("linkdrop=1")).toEqual({ powercut: 0, linkdrop: 1 });
    expect(parseFaultPlan("")).toEqual({ powercut: 0, linkdrop: 0 });
    expect(parseFaultPlan("none")).toEqual({ powercut: 0, linkdrop: 0 });
    for (const bad of ["powercut=1.5", "powercut", "brownout=0.1", "powercut=-1", "powercut=0.1;linkdrop=0.1"]) expect(() => parseFaultPlan(bad), bad).toThrow(RangeError);
  });
  it("hits round(share × N) devices, the same ones for the same seed", () => {
    const a = chooseVictims({ powercut: 0.2, linkdrop: 0.5 }, 200, 7);
    expect(a.powercut.size).toBe(40);
    expect(a.linkdrop.size).toBe(100);
    expect([...chooseVictims({ powercut: 0.2, linkdrop: 0.5 }, 200, 7).powercut]).toEqual([...a.powercut]);
    expect([...chooseVictims({ powercut: 0.2, linkdrop: 0.5 }, 200, 8).powercut]).not.toEqual([...a.powercut]);
    expect(chooseVictims({ powercut: 0, linkdrop: 0 }, 10, 1).powercut.size).toBe(0);
  });
});

async function runFleet(o: Parameters<typeof SimFleet.create>[0], timeoutS = 90, untilDone = true): Promise<{ why: string; r: FleetReport }> {
  const fleet = await SimFleet.create(o);
  try {
    const why = await fleet.run({ untilDone, timeoutS });
    const r = fleet.report();
    console.log(formatReport(r, { allRows: true }));
    return { why, r };
  } finally {
    await fleet.close();
  }
}

describe("fleet simulator (embedded serve)", () => {
  it("updates 12 devices, at most 3 in flight, with power cuts and link drops; none bricked", async () => {
    const { why, r } = await runFleet({
      devices: 12,
      seed: 3,
      speed: 50,
      releases: { kind: "demo", delta: false, imageBytes: 12 * 1024 },
      maxInFlight: 3,
      heartbeatIntervalSec: 10,
      faults: { powercut: 0.25, linkdrop: 0.25 },
    });
    expect(why).toBe("done");
    expect(r.simulatorErrors).toEqual([]);
    expect(r.bricked).toBe(0);
    expect(r.outcomes.committed + r.outcomes["rolled-back"] + r.outcomes.failed + r.outcomes.refused).toBe(12);
    expect(r.outcomes.running).toBe(0);
    // The bound held on both sides: serve's places and the devices seen updating at once.
    expect(r.inFlight.peakServe).toBeLessThanOrEqual(3);
    expect(r.inFlight.peakDevices).toBeLessThanOrEqual(3);
    expect(r.serve!.withheld).toBeGreaterThan(0);
    // The faults happened: 3 devices with a cut armed inside their update, 3 with drops.
    expect(r.perDevice.filter((d) => d.faults.includes("cut@")).length).toBe(3);
    expect(r.retries.powerCuts).toBeGreaterThan(0);
    expect(r.retries.linkDrops).toBeGreaterThan(0);
    for (const d of r.perDevice) if (d.outcome === "committed") expect(d.version).toBe("1.1.0+2");
    expect(r.bytes.serveChunkBytes).toBeGreaterThanOrEqual(12 * r.target!.payloadBytes);
  }, 120_000);

  it("a release the devices cannot accept is refused once each, reported, and not offered again", async () => {
    // The devices trust one key; the release directory's manifests are signed with another.
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-sim-dir-"));
    try {
      const map = smallFlashMap();
      const trusted = testKey(1);
      const other = testKey(2);
      const factory = buildImage(map, trusted, "1.0.0+1", 0, { confirm: true, size: 8192 });
      const next = buildImage(map, other, "1.1.0+2", 1, { size: 8192 });
      const now = Math.floor(Date.now() / 1000);
      publishRelease(dir, release(other, next, { issuedAt: now - 60, expiresAt: now + 86400 }));
      const { why, r } = await runFleet({
        devices: 4,
        seed: 1,
        speed: 50,
        releases: { kind: "dir", dir, trust: [trusted.publicKey], factory: factory.bytes },
        heartbeatIntervalSec: 10,
      }, 4, false); // 4 s real = 200 s virtual: some 20 heartbeats per device after the refusal
      expect(why).toBe("timeout");
      expect(r.completion.allDone).toBe(true);
      expect(r.completion.virtualSeconds).toBeLessThan(30);
      expect(r.outcomes.refused).toBe(4);
      for (const d of r.perDevice) {
        expect(d.reason).toBe(Reason.MANIFEST_UNKNOWN_KEY);
        expect(d.version).toBe("1.0.0+1");
      }
      expect(r.serve!.heartbeats).toBeGreaterThan(40);
      expect(r.serve!.offers).toBe(4);
      expect(r.serve!.finishedSkips).toBeGreaterThan(30);
      expect(r.bricked).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("a release whose trial never reaches the cloud: each device tries it MAX_NO_CLOUD_TRIALS times, every rollback counted, then rolled back for good (not refused)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-sim-rollback-"));
    try {
      const map = smallFlashMap();
      const key = testKey(1);
      const factory = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size: 8192 });
      const bad = buildImage(map, key, "1.1.0+2", 1, { size: 8192, behaviour: "no-cloud" });
      const now = Math.floor(Date.now() / 1000);
      publishRelease(dir, release(key, bad, { issuedAt: now - 60, expiresAt: now + 86400 }));
      const { why, r } = await runFleet({ devices: 2, seed: 1, releases: { kind: "dir", dir, trust: [key.publicKey], factory: factory.bytes }, heartbeatIntervalSec: 10, agent: { trialDeadlineMs: 60_000 } }, 120);
      expect(why).toBe("done");
      expect(r.outcomes["rolled-back"]).toBe(2);
      expect(r.outcomes.refused).toBe(0);
      for (const d of r.perDevice) {
        expect(d.outcome).toBe("rolled-back");
        expect(d.reasonName).toBe("TRIAL_NO_CLOUD");
        expect(d.version).toBe("1.0.0+1");
        expect(d.onTarget).toBe(false);
        expect(d.rollbacks).toBe(MAX_NO_CLOUD_TRIALS);
        expect(d.rollbackReasons).toEqual(["TRIAL_NO_CLOUD_RETRY", "TRIAL_NO_CLOUD_RETRY", "TRIAL_NO_CLOUD"]);
      }
      expect(r.rollbacks).toEqual({ total: 2 * MAX_NO_CLOUD_TRIALS, byReason: { TRIAL_NO_CLOUD_RETRY: 4, TRIAL_NO_CLOUD: 2 } });
      expect(r.notOnTarget.map((d) => d.id)).toEqual(["sim-0000", "sim-0001"]);
      expect(formatReport(r)).toMatch(/\| 0 \| 2 \| 0 \| 0 \| 0 \| 0 \| 0 \|/);
      expect(formatReport(r)).toMatch(/rollbacks: 6 \(TRIAL_NO_CLOUD_RETRY 4, TRIAL_NO_CLOUD 2\)/);
      expect(formatReport(r)).toMatch(/NOT on the target 1\.1\.0\+2: 2 device\(s\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);

  it("the CLI exits 1 when devices did not end on the target, and says how many and why", () => {
    const work = mkdtempSync(join(tmpdir(), "xs-ota-sim-offtarget-"));
    try {
      const map = smallFlashMap();
      const trusted = testKey(1);
      const stranger = testKey(2);
      const factory = buildImage(map, trusted, "1.0.0+1", 0, { confirm: true, size: 8192 });
      const dir = join(work, "releases");
      mkdirSync(dir);
      const now = Math.floor(Date.now() / 1000);
      // signed by a key the devices do not trust: every device refuses it, so none ends on it
      publishRelease(dir, release(stranger, buildImage(map, stranger, "1.1.0+2", 1, { size: 8192 }), { issuedAt: now - 60, expiresAt: now + 86400 }));
      writeFileSync(join(work, "factory.bin"), factory.bytes);
      writeFileSync(join(work, "key.pub.pem"), publicPemOf(trusted.publicKey));
      const run = xsOta(["sim", "--devices", "2", "--releases", dir, "--trust", join(work, "key.pub.pem"), "--factory", join(work, "factory.bin"), "--heartbeat-interval", "10", "--until-done", "--timeout", "60", "--progress", "0"], { timeoutMs: 90_000 });
      expect(run.status, run.stdout + run.stderr).toBe(1);
      expect(run.stdout).toMatch(/\| all done \| 2\/2 \| 0\/2 \|/);
      expect(run.stderr).toMatch(/2 device\(s\) did not end on the target 1\.1\.0\+2/);
      expect(run.stdout).toMatch(/offers refused: MANIFEST_/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 90_000);

  it("--no-serve against another serve's broker: the devices' commits are counted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-sim-noserve-"));
    const serve = await startServe({ releasesDir: dir, host: "127.0.0.1", mqttPort: 0, httpsPort: 0, insecurePlaintext: false, heartbeatIntervalSec: 10, reportsPath: join(dir, "reports.jsonl"), log: () => {} });
    try {
      const map = smallFlashMap();
      const key = testKey(1);
      const factory = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size: 8192 });
      const next = buildImage(map, key, "1.1.0+2", 1, { size: 8192 });
      const now = Math.floor(Date.now() / 1000);
      publishRelease(dir, release(key, next, { issuedAt: now - 60, expiresAt: now + 86400 }));
      const { r } = await runFleet(
        { devices: 2, seed: 1, speed: 100, releases: { kind: "dir", dir, trust: [key.publicKey], factory: factory.bytes }, heartbeatIntervalSec: 10, cloud: { mode: "none", url: `mqtts://127.0.0.1:${serve.mqttPort}`, caPath: serve.caPath! } },
        8,
        false,
      );
      expect(r.cloud).toMatch(/no serve/);
      for (const d of r.perDevice) expect(d.version).toBe("1.1.0+2");
      expect(r.outcomes.committed).toBe(2);
      expect(r.outcomes.running).toBe(0);
    } finally {
      await serve.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("the CLI: a delta fleet until done, the JSON report, exit 0", () => {
    const work = mkdtempSync(join(tmpdir(), "xs-ota-sim-cli-"));
    try {
      const out = join(work, "report.json");
      const run = xsOta(["sim", "--devices", "4", "--demo-releases", "--delta", "--image-kib", "12", "--speed", "50", "--heartbeat-interval", "10", "--max-in-flight", "2", "--faults", "linkdrop=0.5", "--seed", "5", "--until-done", "--timeout", "90", "--report", out], { timeoutMs: 120_000 });
      expect(run.status, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toMatch(/\| all done \| 4\/4 \|/);
      const r = JSON.parse(readFileSync(out, "utf8")) as FleetReport;
      expect(r.target).toMatchObject({ version: "1.1.0+2", kind: "delta" });
      expect(r.target!.payloadBytes).toBeLessThan(r.target!.imageBytes / 10);
      expect(r.outcomes.committed).toBe(4);
      expect(r.perDevice).toHaveLength(4);
      expect(r.perDevice.map((d) => d.id)).toEqual(["sim-0000", "sim-0001", "sim-0002", "sim-0003"]);
      expect(r.retries.linkDrops).toBeGreaterThan(0);
      expect(r.inFlight.peakServe).toBeLessThanOrEqual(2);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 150_000);

  it("the CLI refuses contradictory options (exit 2)", () => {
    for (const args of [["--until-done"], ["--delta"], ["--no-serve"], ["--broker", "mqtts://127.0.0.1:1"], ["--faults", "powercut=2"], ["--releases", "x"], ["--devices", "0"]]) {
      const run = xsOta(["sim", ...args]);
      expect(run.status, args.join(" ") + run.stderr).toBe(2);
    }
  });
});
