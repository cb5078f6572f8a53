/**
 * `npm run bench -- fleet`: the fleet simulator (tools/sim/fleet.ts) against
 * the brief's figure ("200 PLCs in 1 hour instead of 8, zero failures").
 *
 *  1. A 200-device rollout with faults (20 % power cuts, 20 % link drops,
 *     seed 8), heartbeat 60 s, at most 25 in flight, embedded serve over TLS:
 *     its duration in the simulated world (virtual time: what the fleet
 *     would take) against the brief's hour, and the real time the
 *     simulation took. The same run with the image fetched by HTTPS Range
 *     (the release carries a URL the devices prefer; 48 KiB image) beside it.
 *  2. Server cost per device at 200, 500 and 1,000 devices (FLEET_SIZES to
 *     choose others), power cuts on: mosquitto (TLS)
 *     and `xs-ota serve --broker` each in their own process — CPU seconds
 *     and peak RSS read from /proc — and the devices in this one, paced at
 *     most ×50 (serve is not in this process, so its replies are not
 *     accounted: the pacing keeps the devices' timeouts meaningful). Devices
 *     per second through one serve; at 1,000 also through two serve
 *     instances on one mosquitto (`$share`). The peer figure is the brief's:
 *     200 devices in 3,600 s (0.056 devices/s).
 *
 * Node time on this machine, not device cost (conventions rule 10).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SimFleet, type FleetReport, type SimFleetOptions } from "../tools/sim/fleet";
import { Mosquitto, stopChild } from "../test/lib/mosquitto";

const n = (x: number, d = 0) => x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const BRIEF_S = 3600;
const FAULTS = { powercut: 0.2, linkdrop: 0.2 };

function procStat(pid: number): { cpuS: number; peakRssMiB: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  return { cpuS: (Number(fields[11]) + Number(fields[12])) / 100, peakRssMiB: hwm ? Number(hwm[1]) / 1024 : 0 };
}

async function runFleet(o: SimFleetOptions, timeoutS: number, before?: (fleet: SimFleet) => Promise<void>, mustFinish = true): Promise<{ r: FleetReport; cpuS: number; rssMiB: number }> {
  const fleet = await SimFleet.create(o);
  const cpu0 = process.cpuUsage();
  try {
    await before?.(fleet);
    const why = await fleet.run({ untilDone: true, timeoutS });
    const r = fleet.report();
    if (r.bricked > 0 || (mustFinish && why !== "done")) throw new Error(`${o.devices} devices: ${why}, ${JSON.stringify(r.outcomes)}, stalls ${r.scheduler.stalls}`);
    const c = process.cpuUsage(cpu0);
    return { r, cpuS: (c.user + c.system) / 1e6, rssMiB: process.resourceUsage().maxRSS / 1024 };
  } finally {
    await fleet.close();
  }
}

// ── 1. the 200-device rollout against the brief's hour ──────────────────────
const rollout = { devices: 200, seed: 8, heartbeatIntervalSec: 60, maxInFlight: 25, faults: FAULTS } as const;
const full = await runFleet({ ...rollout, releases: { kind: "demo", delta: false, imageBytes: 16 * 1024 } }, 1200);
const range = await runFleet({ ...rollout, releases: { kind: "demo", delta: false, imageBytes: 48 * 1024, https: true } }, 1200);
console.log("200-device rollout with faults (powercut=0.2, linkdrop=0.2, seed 8), heartbeat 60 s, at most 25 in flight, embedded serve over TLS");
console.log("");
console.log("| run | image | committed | rollbacks | power cuts | link drops | rollout (virtual) | brief | real time | sim CPU | serve: MQTT chunk B | serve: HTTPS Range B |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const [name, x] of [["MQTT chunks", full], ["HTTPS Range (URL preferred)", range]] as const) {
  const r = x.r;
  console.log(
    `| ${name} | ${n(r.target!.imageBytes)} B | ${r.outcomes.committed}/${r.devices} | ${r.rollbacks.total} | ${r.retries.powerCuts} | ${r.retries.linkDrops} | ${n(r.completion.virtualSeconds, 1)} s (${n((100 * r.completion.virtualSeconds) / BRIEF_S, 1)} % of 1 h) | ${BRIEF_S} s | ${n(r.completion.realSeconds, 1)} s | ${n(x.cpuS, 1)} s | ${n(r.serve!.chunkBytes)} | ${n(r.serve!.rangeBytes)} |`,
  );
}
if (range.r.serve!.rangeBytes < range.r.outcomes.committed * range.r.target!.payloadBytes) throw new Error("the HTTPS release was not fetched through Range");
if (full.r.completion.virtualSeconds > BRIEF_S) console.error(`the 200-device rollout took ${full.r.completion.virtualSeconds} s of virtual time, over the brief's hour`);

// ── 2. server cost per device, serve and mosquitto in their own processes ──
const broker = new Mosquitto(["max_connections -1", "set_tcp_nodelay true"]);
await broker.start();
// npm run bench runs from the repository's root (this file is bundled into dist/bench/).
const root = process.cwd();

function startServe(releases: string, port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [join(root, "bin/xs-ota.mjs"), "serve", "--releases", releases, "--broker", `mqtts://127.0.0.1:${port}`, "--ca", broker.tls.ca, "--heartbeat-interval", "30", "--max-in-flight", "100", "--https-port", "0", "--reports", join(releases, `reports-${Math.random().toString(36).slice(2)}.jsonl`)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let said = "";
    const t = setTimeout(() => reject(new Error(`serve did not connect: ${said}`)), 30_000);
    const on = (d: Buffer) => {
      said += d;
      if (/connected to/.test(said)) {
        clearTimeout(t);
        resolve(c);
      }
    };
    c.stdout!.on("data", on);
    c.stderr!.on("data", on);
  });
}

interface Row {
  devices: number;
  committed: number;
  serves: number;
  wallS: number;
  virtualS: number;
  serveCpuS: number;
  serveRssMiB: number;
  brokerCpuS: number;
  brokerRssMiB: number;
  simCpuS: number;
  simRssMiB: number;
}
const rows: Row[] = [];
const sizes = (process.env.FLEET_SIZES ?? "200,500,1000").split(",").map(Number);
const plan: [number, number][] = [...sizes.map((d) => [d, 1] as [number, number]), [sizes[sizes.length - 1], 2]];
const brokerPid = (broker as unknown as { child: ChildProcess }).child.pid!;
try {
  for (const [devices, serves] of plan) {
    const b0 = procStat(brokerPid);
    let children: ChildProcess[] = [];
    try {
      const x = await runFleet(
        // Power cuts only: without serve's replies accounted (it is not in this process) link drops make re-asks that
        // can spend a device's download budget (DOWNLOAD_BUDGET, final), and such a device is never done here.
        { devices, seed: 8, speed: 50, faults: { powercut: 0.2, linkdrop: 0 }, releases: { kind: "demo", delta: false, imageBytes: 16 * 1024 }, cloud: { mode: "none", url: `mqtts://127.0.0.1:${broker.port}`, caPath: broker.tls.ca } },
        // the same bound for one and two instances (the in-flight bound is shared: two no longer stall at 2x the limit)
        900,
        async (fleet) => {
          children = await Promise.all(Array.from({ length: serves }, () => startServe(join(fleet.work, "releases"), broker.port)));
        },
        false,
      );
      const s = children.map((c) => procStat(c.pid!));
      const b1 = procStat(brokerPid);
      rows.push({
        devices,
        committed: x.r.outcomes.committed,
        serves,
        wallS: x.r.completion.realSeconds,
        virtualS: x.r.completion.virtualSeconds,
        serveCpuS: s.reduce((a, v) => a + v.cpuS, 0),
        serveRssMiB: Math.max(...s.map((v) => v.peakRssMiB)),
        brokerCpuS: b1.cpuS - b0.cpuS,
        brokerRssMiB: b1.peakRssMiB,
        simCpuS: x.cpuS,
        simRssMiB: x.rssMiB,
      });
    } finally {
      await Promise.all(children.map((c) => stopChild(c)));
    }
  }
} finally {
  await broker.close();
}
console.log("");
console.log("server cost per device: mosquitto (TLS) and xs-ota serve --broker (at most 100 in flight, heartbeat 30 s) in their own processes (/proc), the devices in this one (at most ×50), 20 % power cuts, 16 KiB image");
console.log("");
console.log("| devices | committed | serve instances | wall time | devices/s (brief: 0.056) | serve CPU | serve CPU / device | serve peak RSS | serve RSS / device | mosquitto CPU / device | mosquitto peak RSS | simulator CPU / device | simulator peak RSS |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const x of rows) {
  console.log(
    `| ${n(x.devices)} | ${n(x.committed)} | ${x.serves} | ${n(x.wallS, 1)} s | ${n(x.committed / x.wallS, 2)} | ${n(x.serveCpuS, 1)} s (${n((100 * x.serveCpuS) / x.wallS, 0)} % of a core) | ${n((1000 * x.serveCpuS) / x.devices, 1)} ms | ${n(x.serveRssMiB, 0)} MiB | ${n((1024 * x.serveRssMiB) / x.devices, 0)} KiB | ${n((1000 * x.brokerCpuS) / x.devices, 1)} ms | ${n(x.brokerRssMiB, 0)} MiB | ${n((1000 * x.simCpuS) / x.devices, 0)} ms | ${n(x.simRssMiB, 0)} MiB |`,
  );
}
console.log("");
console.log("devices/s is the rollout's pace in this run (the simulator, one Node thread, is the bottleneck: serve's CPU share shows its headroom); RSS / device is the peak over the run divided by the devices");
