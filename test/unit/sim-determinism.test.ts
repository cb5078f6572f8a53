/**
 * The fleet simulator's outcome does not depend on the machine's speed
 * (tools/sim/fleet.ts, the discrete-event scheduler; tools/sim/ledger.ts):
 * one seed, run twice over real TLS sockets to an embedded serve — once on
 * the machine as it is, once with two busy processes beside it (started and
 * killed here by their PIDs) — gives the same record for every device (its
 * outcome, the version it runs, every counter, the virtual time it finished,
 * its last log lines) and the same virtual completion time. Another seed
 * gives other records (the comparison can fail).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SimFleet, type FleetReport } from "../../tools/sim/fleet";

async function once(seed: number): Promise<FleetReport> {
  const fleet = await SimFleet.create({
    devices: 24,
    seed,
    releases: { kind: "demo", delta: false, imageBytes: 12 * 1024 },
    maxInFlight: 4,
    heartbeatIntervalSec: 30,
    faults: { powercut: 0.25, linkdrop: 0.25 },
  });
  try {
    const why = await fleet.run({ untilDone: true, timeoutS: 240 });
    expect(why).toBe("done");
    return fleet.report();
  } finally {
    await fleet.close();
  }
}

/** CPU seconds a process has used (utime + stime from /proc, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

describe("fleet simulator: the same seed gives the same run on a quiet and a busy machine", () => {
  it("24 devices with power cuts and link drops, with and without a CPU hog beside them", async () => {
    const quiet = await once(11);
    const hogs: ChildProcess[] = [0, 1].map(() => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
    let busy: FleetReport;
    let hogCpu = 0;
    try {
      busy = await once(11);
      for (const h of hogs) hogCpu += cpuSeconds(h.pid!);
    } finally {
      for (const h of hogs) process.kill(h.pid!, "SIGKILL");
    }
    console.log(`quiet: ${quiet.completion.realSeconds} s real; busy: ${busy.completion.realSeconds} s real beside ${hogCpu.toFixed(1)} CPU-s of hogs; both ${quiet.completion.virtualSeconds} s virtual`);
    expect(hogCpu).toBeGreaterThan(1);
    expect(quiet.scheduler.stalls).toBe(0);
    expect(busy.scheduler.stalls).toBe(0);
    expect(quiet.outcomes.committed).toBe(24);
    expect(quiet.retries.powerCuts).toBeGreaterThan(0);
    expect(quiet.retries.linkDrops).toBeGreaterThan(0);
    expect(busy.perDevice).toEqual(quiet.perDevice);
    expect(busy.completion.virtualSeconds).toBe(quiet.completion.virtualSeconds);
    expect(busy.scheduler.timerEvents).toBe(quiet.scheduler.timerEvents);
    expect(busy.scheduler.ioEntries).toBe(quiet.scheduler.ioEntries);
    expect(busy.bytes).toEqual(quiet.bytes);
    expect(busy.serve?.chunks).toBe(quiet.serve?.chunks);

    // Another seed: other devices faulted, other records.
    const other = await once(12);
    expect(other.perDevice).not.toEqual(quiet.perDevice);
  }, 600_000);
});
