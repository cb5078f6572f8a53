/**
 * The fleet table `xs-ota watch` draws from the operator topic's events: one
 * row per device with its version, state, progress (a bar with bytes for
 * downloads) and last reason.
 */
import type { OperatorEvent } from "../serve/server";

export interface DeviceRow {
  deviceId: string;
  version: string;
  state: string;
  progress: number | undefined;
  bytes: number | undefined;
  total: number | undefined;
  reason: string;
  lastEvent: string;
  seen: string;
}

/** Most devices a table keeps (the oldest seen is dropped beyond it). */
export const MAX_ROWS = 10_000;

export class FleetTable {
  readonly rows = new Map<string, DeviceRow>();
  events = 0;

  /** Fold one event in; returns the row. Unknown fields are ignored. */
  apply(e: OperatorEvent): DeviceRow {
    this.events++;
    let r = this.rows.get(e.deviceId);
    if (!r) {
      if (this.rows.size >= MAX_ROWS) this.rows.delete(this.rows.keys().next().value!);
      r = { deviceId: e.deviceId, version: "?", state: "?", progress: undefined, bytes: undefined, total: undefined, reason: "—", lastEvent: "—", seen: e.time };
      this.rows.set(e.deviceId, r);
    }
    r.seen = e.time;
    if (e.version) r.version = e.version;
    if (e.source === "chunk") {
      r.state = "downloading";
      r.progress = e.progress;
      r.bytes = e.bytes;
      r.total = e.total;
    } else if (e.source === "hb") {
      if (e.state) r.state = e.state;
      if (e.state !== "downloading") {
        r.progress = e.state === "installing" || e.state === "verifying" ? e.progress : undefined;
        if (e.state !== "installing" && e.state !== "verifying") r.bytes = r.total = undefined;
      } else if (e.progress !== undefined && (r.progress === undefined || e.progress > r.progress)) r.progress = e.progress;
      if (e.reason) r.reason = e.reasonName ?? String(e.reason);
    } else if (e.source === "report") {
      r.lastEvent = e.event ?? "?";
      if (e.event === "download-done") r.progress = 100;
      if (e.event === "committed" || e.event === "rolled-back" || e.event === "failed" || e.event === "aborted") {
        r.state = e.event;
        r.progress = undefined;
        r.bytes = r.total = undefined;
      }
      if (e.reason) r.reason = e.reasonName ?? String(e.reason);
    }
    return r;
  }

  /** The table as text lines (width-aligned), newest state per device, sorted by id. */
  render(now = new Date()): string[] {
    const rows = [...this.rows.values()].sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
    const counts = new Map<string, number>();
    for (const r of rows) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
    const head = ["DEVICE", "VERSION", "STATE", "PROGRESS", "LAST REASON", "LAST REPORT", "SEEN"];
    const body = rows.map((r) => [r.deviceId, r.version, r.state, progressCell(r), r.reason, r.lastEvent, ago(r.seen, now)]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
    return [
      `xs-ota watch — ${rows.length} device(s): ${[...counts].map(([k, v]) => `${k} ${v}`).join(", ") || "none yet"}; ${this.events} event(s)`,
      "",
      line(head),
      ...body.map(line),
    ];
  }
}

/** "[######------] 42% 12,345/29,000 B" for a download; a bare bar for other progress. */
export function progressCell(r: Pick<DeviceRow, "progress" | "bytes" | "total">): string {
  if (r.progress === undefined) return "";
  const p = Math.max(0, Math.min(100, r.progress));
  const n = Math.round(p / 5);
  const bar = `[${"#".repeat(n)}${"-".repeat(20 - n)}] ${String(p).padStart(3)}%`;
  return r.bytes !== undefined && r.total !== undefined ? `${bar} ${r.bytes.toLocaleString("en-US")}/${r.total.toLocaleString("en-US")} B` : bar;
}

function ago(iso: string, now: Date): string {
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}
