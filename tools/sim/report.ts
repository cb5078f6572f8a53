/** The fleet report as a human summary (markdown tables) for stdout. */
import type { FleetReport } from "./fleet";

const n = (x: number | null) => (x === null ? "—" : x.toLocaleString("en-US"));

/**
 * The summary: totals, outcomes, bytes, retries, in-flight bound, then one
 * row per device that did not simply commit (faulted, failed, running,
 * bricked); `allRows` lists every device.
 */
export function formatReport(r: FleetReport, o: { allRows?: boolean } = {}): string {
  const out: string[] = [];
  const t = r.target;
  out.push(`fleet: ${r.devices} devices, seed ${r.seed}, ${r.speed === null ? "no pacing cap" : `at most ×${r.speed}`}, ${r.cloud}, max in flight ${r.maxInFlight || "unbounded"}, faults powercut=${r.faults.powercut} linkdrop=${r.faults.linkdrop}`);
  out.push(t ? `release: ${t.version} (${t.kind}, payload ${n(t.payloadBytes)} B, image ${n(t.imageBytes)} B)` : "release: none");
  out.push("");
  out.push("| completion | done | on the target | real time | virtual time |");
  out.push("|---|---:|---:|---:|---:|");
  out.push(`| ${r.completion.allDone ? "all done" : "NOT all done"} | ${r.completion.done}/${r.devices} | ${t ? `${r.completion.onTarget}/${r.devices}` : "—"} | ${r.completion.realSeconds.toFixed(1)} s | ${r.completion.virtualSeconds.toFixed(1)} s |`);
  out.push("");
  out.push("| committed | rolled back | failed | aborted | refused | still running | bricked |");
  out.push("|---:|---:|---:|---:|---:|---:|---:|");
  const c = r.outcomes;
  out.push(`| ${c.committed} | ${c["rolled-back"]} | ${c.failed} | ${c.aborted} | ${c.refused} | ${c.running} | ${c.bricked} |`);
  out.push("");
  out.push("| bytes received by devices | bytes sent by devices | serve: chunk payload bytes | serve: HTTPS range bytes |");
  out.push("|---:|---:|---:|---:|");
  out.push(`| ${n(r.bytes.devicesReceived)} | ${n(r.bytes.devicesSent)} | ${n(r.bytes.serveChunkBytes)} | ${n(r.bytes.serveRangeBytes)} |`);
  out.push("");
  out.push("| update attempts | MQTT sessions | reconnects | link drops | power cuts | resets | peak updating (devices) | peak in flight (serve) | offers withheld |");
  out.push("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  const q = r.retries;
  out.push(`| ${q.attempts} | ${q.mqttConnects} | ${q.reconnects} | ${q.linkDrops} | ${q.powerCuts} | ${q.resets} | ${r.inFlight.peakDevices} | ${n(r.inFlight.peakServe)} | ${n(r.serve?.withheld ?? null)} |`);
  out.push("");
  const reasons = (m: Record<string, number>) => Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  out.push(`rollbacks: ${r.rollbacks.total} (${reasons(r.rollbacks.byReason)}); offers refused: ${reasons(r.refusals)}`);
  if (t && r.notOnTarget.length > 0) {
    const shown = r.notOnTarget.slice(0, 20).map((d) => `${d.id} ${d.outcome}${d.reasonName !== "OK" ? ` ${d.reasonName}` : ""} (runs ${d.version})`);
    out.push(`NOT on the target ${t.version}: ${r.notOnTarget.length} device(s): ${shown.join("; ")}${r.notOnTarget.length > 20 ? "; …" : ""}`);
  }
  const sc = r.scheduler;
  out.push(`scheduler: ${n(sc.timerEvents)} timer events, ${n(sc.ioEntries)} messages accounted, ${n(sc.ioWaits)} waits for I/O, ${sc.stalls} stalls${sc.stalls ? ` (${sc.stallDetail.join("; ")}): this run is not promised to repeat` : ""}`);
  const rows = o.allRows ? r.perDevice : r.perDevice.filter((d) => d.outcome !== "committed" || d.faults || d.powerCuts || d.linkDrops || d.rollbacks);
  if (rows.length > 0) {
    out.push("");
    out.push("| device | outcome | reason | runs | faults | attempts | rollbacks | MQTT sessions | link drops | power cuts | boots | done at (virtual) |");
    out.push("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (const d of rows) {
      out.push(`| ${d.id} | ${d.outcome} | ${d.reason ? `${d.reasonName} (${d.reason})` : "—"} | ${d.version} | ${d.faults || "—"} | ${d.attempts} | ${d.rollbacks} | ${d.mqttConnects} | ${d.linkDrops} | ${d.powerCuts} | ${d.boots} | ${d.doneAtS === null ? "—" : `${d.doneAtS} s`} |`);
    }
  }
  const quiet = r.perDevice.length - rows.length;
  if (quiet > 0) out.push(`(${quiet} more devices committed with no fault; every device is in the JSON report)`);
  if (r.simulatorErrors.length) {
    out.push("");
    out.push(`SIMULATOR ERRORS (${r.simulatorErrors.length}):`);
    for (const e of r.simulatorErrors) out.push(e.split("\n").slice(0, 4).join("\n"));
  }
  return out.join("\n");
}
