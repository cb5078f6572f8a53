/**
 * The fleet simulator (tools/sim/fleet.ts): 50 devices updated by an
 * embedded `xs-ota serve` over real TLS sockets, at most 10 in flight, the
 * same seed, once with the full image and once with the delta from the
 * factory image (48 KiB body, small flash map). Printed: completion time
 * (real and virtual), serve's own counters (chunk payload bytes, chunks,
 * offers) beside the bytes the devices' sockets received and sent. The peer
 * figure is the full-image transfer of the same run: the delta must need
 * far fewer bytes.
 */
import { SimFleet, type FleetReport } from "../tools/sim/fleet";

const DEVICES = 50;

async function run(delta: boolean): Promise<FleetReport> {
  const fleet = await SimFleet.create({
    devices: DEVICES,
    seed: 1,
    speed: 50,
    releases: { kind: "demo", delta, imageBytes: 48 * 1024 },
    maxInFlight: 10,
    heartbeatIntervalSec: 30,
  });
  try {
    const why = await fleet.run({ untilDone: true, timeoutS: 300 });
    const r = fleet.report();
    if (why !== "done" || r.outcomes.committed !== DEVICES || r.bricked !== 0) throw new Error(`${delta ? "delta" : "full"} fleet did not finish: ${why}, ${JSON.stringify(r.outcomes)}`);
    return r;
  } finally {
    await fleet.close();
  }
}

const full = await run(false);
const delta = await run(true);
const n = (x: number | null) => (x === null ? "—" : x.toLocaleString("en-US"));
console.log(`fleet of ${DEVICES} devices, embedded serve over TLS, at most 10 in flight, speed ×50, no faults; release 1.0.0+1 → 1.1.0+2 (image ${n(full.target!.imageBytes)} B)`);
console.log("");
console.log("| payload | payload B | completion (real) | completion (virtual) | serve: chunk payload B | serve: chunks | serve: offers | devices received B | devices sent B | per device received B |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const [name, r] of [["delta (ours)", delta], ["full image (peer)", full]] as const) {
  const s = r.serve!;
  console.log(
    `| ${name} | ${n(r.target!.payloadBytes)} | ${r.completion.realSeconds.toFixed(1)} s | ${r.completion.virtualSeconds.toFixed(1)} s | ${n(s.chunkBytes)} | ${n(s.chunks)} | ${n(s.offers)} | ${n(r.bytes.devicesReceived)} | ${n(r.bytes.devicesSent)} | ${n(Math.round(r.bytes.devicesReceived / DEVICES))} |`,
  );
}
console.log("");
console.log(`delta / full: serve's chunk payload bytes ${((100 * delta.serve!.chunkBytes) / full.serve!.chunkBytes).toFixed(1)} %, bytes the devices received ${((100 * delta.bytes.devicesReceived) / full.bytes.devicesReceived).toFixed(1)} %`);
if (delta.serve!.chunkBytes * 5 > full.serve!.chunkBytes) {
  console.error("the delta fleet did not need far fewer bytes than the full one");
  process.exit(1);
}
