/**
 * Rollouts by plan (tools/serve/plan.ts) over the shared state
 * (tools/serve/store.ts): which device may be offered a planned release now,
 * who is in flight, what each wave counts, when the next wave opens, and
 * when a wave's failures halt the rollout.
 *
 * Records in the shared state:
 *  - `rollout/<id>`: the plan's text (and signature), its status (running,
 *    paused, halted, aborted) with the reason and a sentence why, and when
 *    each wave opened. Merge: aborted and halted are latches (the first
 *    one's why is kept); running/paused by the later change; a wave's
 *    opening time is the earliest any instance wrote.
 *  - `device/<id>`: the device's last heartbeat (hardware, version, state,
 *    reason, when), its last offer, the last start of an update, its final
 *    report per target version, and its last report's sequence. Every field
 *    is the latest by its own timestamp.
 *
 * Everything else (who is in flight, a wave's counts, pending devices,
 * bricked suspects) is computed from those records, never counted from
 * events, so a QoS 1 redelivery or a report handled by another instance
 * changes nothing twice, and a place is held only while the records show a
 * recent offer or a live update: a final report or silence frees it.
 */
import { randomBytes } from "node:crypto";
import { Reason, reasonName } from "../../src/errors";
import { compareVersions, formatVersion, parseVersion } from "../../src/image/format";
import type { Heartbeat } from "../../src/protocol/messages";
import { isTargeted, planLabel, signedPlan, waveOf, type Plan } from "./plan";
import type { OfferCandidate } from "./offers";
import { RETRYABLE } from "./rollout";
import type { SharedState } from "./store";

export type RolloutStatus = "running" | "paused" | "halted" | "aborted";

export interface RolloutRecord {
  readonly id: string;
  readonly text: string;
  readonly signature?: string;
  /** ms */
  readonly startedAt: number;
  readonly status: RolloutStatus;
  readonly statusAt: number;
  /** Reason code of the status (0 while running). */
  readonly reason: number;
  readonly why: string;
  /** Per wave: ms it opened, 0 = not yet. */
  readonly opened: readonly number[];
}

interface Stamped {
  readonly at: number;
}

export interface DeviceRecord {
  readonly id: string;
  readonly hw: string;
  readonly version: string;
  readonly state: string;
  readonly reason: number;
  /** ms of the last heartbeat written (refreshed at least every refreshMs). */
  readonly seen: number;
  /** `dropped`: the offer could not be published (its place is free); a latch on that offer. */
  readonly offer?: { readonly version: string; readonly rollout: string; readonly dropped?: boolean; /** The serve instance that made it. */ readonly by?: string } & Stamped;
  readonly started?: { readonly version: string } & Stamped;
  readonly finals: { readonly [version: string]: { readonly event: string; readonly reason: number } & Stamped };
  readonly report?: { readonly seq: number; readonly event: string } & Stamped;
}

export const ROLLOUT_PREFIX = "rollout/";
export const DEVICE_PREFIX = "device/";
/** `instance/<id>`: a serve instance's sign of life ({at}), rewritten every INSTANCE_BEAT_MS. */
export const INSTANCE_PREFIX = "instance/";
export const INSTANCE_BEAT_MS = 2000;
/** An instance not heard from for this long is gone: its share of places goes to the others. */
export const INSTANCE_GONE_MS = 3 * INSTANCE_BEAT_MS;

const STATUS_RANK: { [s in RolloutStatus]: number } = { running: 0, paused: 0, halted: 1, aborted: 2 };
const FINAL = ["committed", "rolled-back", "failed", "aborted", "offer-refused"];

function pick<T extends Stamped>(a: T | undefined, b: T | undefined): T | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.at !== b.at) return a.at > b.at ? a : b;
  return JSON.stringify(a) >= JSON.stringify(b) ? a : b;
}

export function mergeRollout(a: RolloutRecord, b: RolloutRecord): RolloutRecord {
  const ra = STATUS_RANK[a.status];
  const rb = STATUS_RANK[b.status];
  let s: RolloutRecord;
  if (ra !== rb) s = ra > rb ? a : b;
  else if (ra > 0) s = a.statusAt !== b.statusAt ? (a.statusAt < b.statusAt ? a : b) : a.why <= b.why ? a : b; // a latch keeps the first
  else s = a.statusAt !== b.statusAt ? (a.statusAt > b.statusAt ? a : b) : a.status === "paused" ? a : b;
  const n = Math.max(a.opened.length, b.opened.length);
  const opened: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a.opened[i] ?? 0;
    const y = b.opened[i] ?? 0;
    opened.push(x && y ? Math.min(x, y) : x || y);
  }
  return {
    id: a.id,
    text: a.text,
    ...(a.signature !== undefined ? { signature: a.signature } : b.signature !== undefined ? { signature: b.signature } : {}),
    startedAt: Math.min(a.startedAt, b.startedAt),
    status: s.status,
    statusAt: s.statusAt,
    reason: s.reason,
    why: s.why,
    opened,
  };
}

export function mergeDevice(a: DeviceRecord, b: DeviceRecord): DeviceRecord {
  const hb = a.seen !== b.seen ? (a.seen > b.seen ? a : b) : JSON.stringify([a.hw, a.version, a.state, a.reason]) >= JSON.stringify([b.hw, b.version, b.state, b.reason]) ? a : b;
  const finals: { [v: string]: DeviceRecord["finals"][string] } = {};
  for (const v of [...new Set([...Object.keys(a.finals), ...Object.keys(b.finals)])].sort()) finals[v] = pick(a.finals[v], b.finals[v])!;
  let offer = pick(a.offer, b.offer);
  if (offer && a.offer && b.offer && a.offer.at === b.offer.at && (a.offer.dropped || b.offer.dropped)) offer = { ...offer, dropped: true };
  const started = pick(a.started, b.started);
  const report = pick(a.report, b.report);
  return {
    id: a.id,
    hw: hb.hw,
    version: hb.version,
    state: hb.state,
    reason: hb.reason,
    seen: hb.seen,
    ...(offer ? { offer } : {}),
    ...(started ? { started } : {}),
    finals,
    ...(report ? { report } : {}),
  };
}

/** The merge for SharedState: by key prefix. */
export function mergeRecord(key: string, a: unknown, b: unknown): unknown {
  if (key.startsWith(ROLLOUT_PREFIX)) return mergeRollout(a as RolloutRecord, b as RolloutRecord);
  if (key.startsWith(DEVICE_PREFIX)) return mergeDevice(a as DeviceRecord, b as DeviceRecord);
  if (key.startsWith(INSTANCE_PREFIX)) return (a as Stamped).at >= (b as Stamped).at ? a : b;
  return b;
}

/** Where a targeted device stands in a rollout. */
export type DeviceStage =
  | "pending" // seen, not on the target, nothing in flight: will be offered when its wave is open
  | "offered" // an offer not yet answered (in flight)
  | "updating" // accepted and alive (in flight)
  | "committed"
  | "up-to-date" // on the target (or newer) without a commit report in this rollout
  | "rolled-back"
  | "failed"
  | "refused"
  | "aborted"
  | "bricked-suspect" // started and silent past the in-flight timeout
  | "silent"; // not seen within the in-flight timeout, never started

export interface WaveView {
  readonly name: string;
  readonly upToPercent: number;
  readonly soakSec: number;
  readonly failureBudget: number;
  /** ms, 0 = not open. */
  readonly opened: number;
  /** Done: nothing in flight or pending and soaked. */
  readonly complete: boolean;
  /** ms at which the soak ends (when nothing is in flight or pending). */
  readonly soakUntil: number;
  readonly devices: number;
  readonly stages: { [stage in DeviceStage]?: number };
  readonly failures: number;
}

export interface RolloutView {
  readonly id: string;
  readonly label: string;
  readonly hardwareId: string;
  readonly version: string;
  readonly status: RolloutStatus | "complete";
  readonly reason: number;
  readonly reasonName: string;
  readonly why: string;
  readonly signed: boolean;
  readonly startedAt: number;
  readonly window: { readonly notBefore?: number; readonly notAfter?: number };
  readonly maxInFlight: number;
  readonly inFlight: number;
  /** Index of the last open wave (-1: none yet). */
  readonly currentWave: number;
  readonly waves: readonly WaveView[];
}

export interface PlansOptions {
  readonly store: SharedState;
  /** Public keys a plan must be signed by (serve --trust); empty = signature optional. */
  readonly trusted?: readonly Uint8Array[];
  /** A started update silent this long loses its place and counts as bricked-suspect. */
  readonly inFlightTimeoutMs: number;
  /** An offer not answered within this is taken as lost: its place is freed and it may be sent again. */
  readonly offerTimeoutMs?: number;
  /**
   * A device not updating and not heard from for this long is silent (offline): it no longer holds
   * its wave back. Default: the in-flight timeout; serve passes 3 heartbeat intervals.
   */
  readonly silentAfterMs?: number;
  readonly now?: () => number;
  readonly log?: (line: string) => void;
  /** This instance's id (default: random). */
  readonly instanceId?: string;
  /**
   * serve --max-in-flight: devices in an update at once over every release and every
   * instance, counted from the shared device records like a plan's places (0 = no bound).
   */
  readonly maxInFlight?: number;
  /**
   * For this long after it starts, the instance holds no places (its share is 0): long enough
   * to receive the broker's retained records and every live instance's beat (serve passes
   * INSTANCE_BEAT_MS + 1 s with --broker). Without it, an instance started while another's
   * records are still on their way sees no places taken and no other instance, and takes the
   * whole bound. Default 0 (the embedded broker: one instance).
   */
  readonly warmUpMs?: number;
}

interface Parsed {
  readonly rec: RolloutRecord;
  readonly plan: Plan;
  readonly version: string;
}

/** The decision for one device and one planned release. */
export type Gate = { readonly ok: true } | { readonly ok: false; readonly code: number; readonly why: string };

export class RolloutPlans {
  private readonly plans = new Map<string, Plan>();
  private readonly cache = new Map<string, { at: number; version: number; view: RolloutView; owners: Map<string, number> }>();
  readonly instanceId: string;
  private beatAt = 0;
  private readonly offerTimeoutMs: number;
  private readonly now: () => number;
  private readonly startedAt: number;
  /** Reports recognised as redeliveries (same device, sequence and event). */
  duplicates = 0;
  /** Offers withheld by a plan, by reason name. */
  readonly withheld = new Map<string, number>();
  private fleetCache: { at: number; version: number; inFlight: number; owners: Map<string, number> } | undefined;
  /** Offers withheld by the --max-in-flight bound. */
  withheldForPlace = 0;
  /** The most places of the --max-in-flight bound this instance saw taken at once. */
  peakInFlight = 0;

  constructor(private readonly o: PlansOptions) {
    this.instanceId = o.instanceId ?? randomBytes(6).toString("hex");
    this.offerTimeoutMs = o.offerTimeoutMs ?? 15_000;
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
  }

  private parsed(rec: RolloutRecord): Parsed {
    let plan = this.plans.get(rec.id);
    if (!plan) {
      plan = signedPlan(rec.text, rec.signature).plan;
      this.plans.set(rec.id, plan);
    }
    return { rec, plan, version: formatVersion(plan.release.version) };
  }

  /** Every rollout, oldest first. */
  rollouts(): Parsed[] {
    return this.o.store
      .entries<RolloutRecord>(ROLLOUT_PREFIX)
      .map(([, r]) => this.parsed(r))
      .sort((a, b) => a.rec.startedAt - b.rec.startedAt || (a.rec.id < b.rec.id ? -1 : 1));
  }

  /** The rollout that governs a release (hardware id and version): the newest one started for it. */
  governing(hardwareId: string, version: string): Parsed | undefined {
    let best: Parsed | undefined;
    for (const p of this.rollouts()) if (p.plan.release.hardwareId === hardwareId && p.version === version) best = p;
    return best;
  }

  device(id: string): DeviceRecord | undefined {
    return this.o.store.get<DeviceRecord>(DEVICE_PREFIX + id);
  }

  private putDevice(rec: DeviceRecord): void {
    this.o.store.put(DEVICE_PREFIX + rec.id, rec);
  }

  private blank(id: string, hw = "", version = "0.0.0+0"): DeviceRecord {
    return { id, hw, version, state: "", reason: 0, seen: 0, finals: {} };
  }

  /** A heartbeat: written when something changed, or at least every quarter of the in-flight timeout. */
  heartbeat(deviceId: string, hb: Pick<Heartbeat, "hardwareId" | "version" | "state" | "reason">): void {
    const now = this.now();
    const old = this.device(deviceId);
    const version = formatVersion(hb.version);
    if (old && old.hw === hb.hardwareId && old.version === version && old.state === hb.state && old.reason === hb.reason && now - old.seen < this.o.inFlightTimeoutMs / 4) return;
    this.putDevice({ ...(old ?? this.blank(deviceId)), hw: hb.hardwareId, version, state: hb.state, reason: hb.reason, seen: now });
  }

  /**
   * A status report. Returns false when it is a redelivery of the last one (same
   * sequence and event within two minutes): log it once, count it once.
   */
  report(deviceId: string, r: { readonly seq: number; readonly event: string; readonly reason: number; readonly version: string; readonly target?: string }): boolean {
    const now = this.now();
    const old = this.device(deviceId) ?? this.blank(deviceId, "", r.version);
    if (old.report && old.report.seq === r.seq && old.report.event === r.event && now - old.report.at < 120_000) {
      this.duplicates++;
      return false;
    }
    let rec: DeviceRecord = { ...old, report: { seq: r.seq, event: r.event, at: now } };
    // A refusal of a manifest the device could not read carries no target: it answers the last offer.
    const target = r.target ?? (r.event === "offer-refused" ? old.offer?.version : undefined);
    if (target !== undefined) {
      if (FINAL.includes(r.event)) rec = { ...rec, finals: { ...rec.finals, [target]: { event: r.event === "offer-refused" ? "refused" : r.event, reason: r.reason, at: now } } };
      else if (r.event !== "offline") rec = { ...rec, started: { version: target, at: now } };
    }
    this.putDevice(rec);
    if (FINAL.includes(r.event)) this.tick();
    return true;
  }

  /** Where `d` stands in rollout `p`. */
  stage(p: Parsed, d: DeviceRecord, now = this.now()): DeviceStage {
    const f = d.finals[p.version];
    const finalAt = f?.at ?? 0;
    const offerAt = d.offer && !d.offer.dropped && d.offer.rollout === p.rec.id && d.offer.version === p.version ? d.offer.at : 0;
    const startAt = d.started && d.started.version === p.version ? d.started.at : 0;
    const life = Math.max(d.seen, d.report?.at ?? 0, startAt);
    if (compareVersions(parseVersion(d.version), p.plan.release.version) >= 0 && d.seen >= finalAt) return f?.event === "committed" ? "committed" : "up-to-date";
    // A newer offer than the last start and final: in flight until answered or timed out (then taken as lost).
    if (offerAt > Math.max(startAt, finalAt) && now - offerAt <= this.offerTimeoutMs) return "offered";
    if (startAt > finalAt) return now - life > this.o.inFlightTimeoutMs ? "bricked-suspect" : "updating";
    if (f) return f.event as DeviceStage;
    return now - d.seen > (this.o.silentAfterMs ?? this.o.inFlightTimeoutMs) ? "silent" : "pending";
  }

  /** The rollout's waves and counts (cached for 250 ms). */
  view(p: Parsed): RolloutView {
    const now = this.now();
    const c = this.cache.get(p.rec.id);
    if (c && c.version === this.o.store.version && now - c.at < 250) return c.view;
    const waves = p.plan.waves.map(() => ({ devices: 0, stages: {} as { [s in DeviceStage]?: number }, lastFinal: 0 }));
    let inFlight = 0;
    const owners = new Map<string, number>();
    for (const [, d] of this.o.store.entries<DeviceRecord>(DEVICE_PREFIX)) {
      if (!isTargeted(p.plan, d.hw, d.id)) continue;
      const w = waveOf(p.plan, p.rec.id, d.id);
      const s = this.stage(p, d, now);
      const wv = waves[w];
      wv.devices++;
      wv.stages[s] = (wv.stages[s] ?? 0) + 1;
      const f = d.finals[p.version];
      if (f) wv.lastFinal = Math.max(wv.lastFinal, f.at);
      if (s === "offered" || s === "updating") {
        inFlight++;
        const by = d.offer?.by ?? "";
        owners.set(by, (owners.get(by) ?? 0) + 1);
      }
    }
    const wviews: WaveView[] = p.plan.waves.map((w, i) => {
      const x = waves[i];
      const opened = p.rec.opened[i] ?? 0;
      const failures = (x.stages["rolled-back"] ?? 0) + (x.stages.failed ?? 0) + (x.stages["bricked-suspect"] ?? 0);
      const busy = (x.stages.offered ?? 0) + (x.stages.updating ?? 0) + (x.stages.pending ?? 0);
      const finished = x.devices - busy - (x.stages.silent ?? 0);
      const soakUntil = opened ? Math.max(opened, x.lastFinal) + w.soakSec * 1000 : 0;
      return { ...w, opened, complete: opened > 0 && busy === 0 && finished >= w.minDevices && now >= soakUntil, soakUntil, devices: x.devices, stages: x.stages, failures };
    });
    const currentWave = wviews.reduce((acc, w, i) => (w.opened ? i : acc), -1);
    const view: RolloutView = {
      id: p.rec.id,
      label: planLabel(p.plan),
      hardwareId: p.plan.release.hardwareId,
      version: p.version,
      status: this.statusOf(p, wviews),
      reason: p.rec.reason,
      reasonName: p.rec.reason ? reasonName(p.rec.reason) : "",
      why: p.rec.why,
      signed: p.rec.signature !== undefined,
      startedAt: p.rec.startedAt,
      window: { ...(p.plan.notBefore !== undefined ? { notBefore: p.plan.notBefore } : {}), ...(p.plan.notAfter !== undefined ? { notAfter: p.plan.notAfter } : {}) },
      maxInFlight: p.plan.maxInFlight,
      inFlight,
      currentWave,
      waves: wviews,
    };
    this.cache.set(p.rec.id, { at: now, version: this.o.store.version, view, owners });
    return view;
  }

  private statusOf(p: Parsed, waves: readonly WaveView[]): RolloutView["status"] {
    if (p.rec.status === "running" && waves.length > 0 && waves.every((w) => w.complete)) return "complete";
    return p.rec.status;
  }

  private setStatus(p: Parsed, status: RolloutStatus, reason: number, why: string): void {
    // Later than the change it replaces, even within one millisecond (the merge orders running/paused by it).
    this.o.store.put(ROLLOUT_PREFIX + p.rec.id, { ...p.rec, status, statusAt: Math.max(this.now(), p.rec.statusAt + 1), reason, why });
    this.cache.delete(p.rec.id);
    this.o.log?.(`rollout ${p.rec.id.slice(0, 12)} (${planLabel(p.plan)}): ${status}${why ? `: ${why}` : ""}`);
  }

  private inWindow(plan: Plan, nowMs: number): boolean {
    const s = nowMs / 1000;
    return (plan.notBefore === undefined || s >= plan.notBefore) && (plan.notAfter === undefined || s < plan.notAfter);
  }

  /** Open waves that may open, halt rollouts whose wave broke its budget. Idempotent; every instance runs it. */
  tick(): void {
    const now = this.now();
    if (now - this.beatAt >= INSTANCE_BEAT_MS) {
      this.beatAt = now;
      this.o.store.put(INSTANCE_PREFIX + this.instanceId, { id: this.instanceId, at: now });
    }
    for (const p of this.rollouts()) {
      if (p.rec.status !== "running") continue;
      if (!(p.rec.opened[0] > 0)) {
        if (!this.inWindow(p.plan, now)) continue;
        this.o.store.put(ROLLOUT_PREFIX + p.rec.id, { ...p.rec, opened: p.plan.waves.map((_, i) => (i === 0 ? now : 0)) });
        this.cache.delete(p.rec.id);
        continue;
      }
      this.cache.delete(p.rec.id);
      const v = this.view(p);
      const broken = v.waves.find((w) => w.opened && w.failures > w.failureBudget);
      if (broken) {
        const s = broken.stages;
        this.setStatus(p, "halted", Reason.ROLLOUT_HALTED, `wave ${broken.name}: ${s["rolled-back"] ?? 0} rolled back + ${s.failed ?? 0} failed + ${s["bricked-suspect"] ?? 0} bricked-suspect > failure budget ${broken.failureBudget}`);
        continue;
      }
      const cw = v.currentWave;
      if (cw >= 0 && cw < v.waves.length - 1 && v.waves[cw].complete && this.inWindow(p.plan, now)) {
        const opened = [...p.rec.opened];
        opened[cw + 1] = now;
        this.o.store.put(ROLLOUT_PREFIX + p.rec.id, { ...p.rec, opened });
        this.cache.delete(p.rec.id);
        this.o.log?.(`rollout ${p.rec.id.slice(0, 12)} (${planLabel(p.plan)}): wave ${v.waves[cw + 1].name} open (wave ${v.waves[cw].name} complete: ${v.waves[cw].stages.committed ?? 0} committed, ${v.waves[cw].failures} failures)`);
      }
    }
  }

  /**
   * May `deviceId` be offered `c` now, as far as plans go? A release no plan
   * names is not governed (true).
   */
  gate(deviceId: string, hb: Pick<Heartbeat, "hardwareId">, c: OfferCandidate): Gate {
    const p = this.governing(c.manifest.hardwareId, formatVersion(c.manifest.version));
    if (!p) return { ok: true };
    const no = (code: number, why: string): Gate => ({ ok: false, code, why });
    if (p.rec.status === "paused") return no(Reason.ROLLOUT_PAUSED, p.rec.why || "paused by the operator");
    if (p.rec.status === "halted") return no(Reason.ROLLOUT_HALTED, p.rec.why);
    if (p.rec.status === "aborted") return no(Reason.ROLLOUT_ABORTED, p.rec.why || "aborted by the operator");
    if (!this.inWindow(p.plan, this.now())) return no(Reason.ROLLOUT_OUTSIDE_WINDOW, "outside the plan's start window");
    if (!isTargeted(p.plan, hb.hardwareId, deviceId)) return no(Reason.ROLLOUT_NOT_TARGETED, "not in the plan's target");
    const v = this.view(p);
    const w = waveOf(p.plan, p.rec.id, deviceId);
    if (w > v.currentWave) return no(Reason.ROLLOUT_WAVE_CLOSED, `wave ${p.plan.waves[w].name} is not open`);
    const d = this.device(deviceId);
    const f = d?.finals[p.version];
    if (f && f.event !== "committed" && !RETRYABLE.includes(f.reason)) return no(Reason.ROLLOUT_NOT_TARGETED, `finished with it (${f.event} ${reasonName(f.reason)})`);
    return { ok: true };
  }

  /** Candidates minus the planned releases `deviceId` may not be offered now. */
  filter<C extends OfferCandidate>(deviceId: string, hb: Pick<Heartbeat, "hardwareId">, candidates: readonly C[]): C[] {
    return candidates.filter((c) => {
      const g = this.gate(deviceId, hb, c);
      if (!g.ok) this.withheld.set(reasonName(g.code), (this.withheld.get(reasonName(g.code)) ?? 0) + 1);
      return g.ok;
    });
  }

  /**
   * Take a place for offering the planned release `c` to `deviceId`: false when
   * the device has an offer or update of it in flight (no duplicate offer) or
   * every place of the rollout is taken. Unplanned releases: true, nothing recorded.
   */
  admit(deviceId: string, c: OfferCandidate): boolean {
    const p = this.governing(c.manifest.hardwareId, formatVersion(c.manifest.version));
    const bound = this.o.maxInFlight ?? 0;
    if (!p && !bound) return true;
    const now = this.now();
    const d = this.device(deviceId) ?? this.blank(deviceId, c.manifest.hardwareId);
    if (!p) return this.admitFleet(d, formatVersion(c.manifest.version), "", now);
    const s = this.stage(p, d, now);
    if (s === "offered" || (s === "updating" && d.started && now - d.started.at < this.offerTimeoutMs)) return false;
    const v = this.view(p);
    if (p.plan.maxInFlight > 0 && (v.inFlight >= p.plan.maxInFlight || this.placesHeld(p) >= this.share(p, now))) {
      this.withheld.set("ROLLOUT_IN_FLIGHT_FULL", (this.withheld.get("ROLLOUT_IN_FLIGHT_FULL") ?? 0) + 1);
      return false;
    }
    return this.admitFleet(d, p.version, p.rec.id, now);
  }

  /**
   * The --max-in-flight bound (every release, planned or not), then the offer's record. A device
   * already in flight keeps its place; an offer of it not answered yet is not sent twice.
   */
  private admitFleet(d: DeviceRecord, version: string, rollout: string, now: number): boolean {
    const bound = this.o.maxInFlight ?? 0;
    if (bound > 0) {
      const busy = this.busy(d, now);
      if (busy === "offered" || (busy === "updating" && d.started && now - d.started.at < this.offerTimeoutMs)) return false;
      if (!busy) {
        const f = this.fleetInFlight(now);
        if (f.inFlight >= bound || (f.owners.get(this.instanceId) ?? 0) >= this.shareOf(bound, f.owners, now)) {
          this.withheldForPlace++;
          return false;
        }
      }
    }
    this.putDevice({ ...d, offer: { version, rollout, at: now, by: this.instanceId } });
    if (bound > 0) this.peakInFlight = Math.max(this.peakInFlight, this.fleetInFlight(now).inFlight);
    return true;
  }

  /**
   * Does `d` hold a place of the --max-in-flight bound: an offer (any release) not answered within
   * the offer timeout, or an update started and not ended. It ends with a final report, a
   * heartbeat on the target version, an idle heartbeat well after the start (the device dropped
   * it), or silence past the in-flight timeout.
   */
  busy(d: DeviceRecord, now = this.now()): "offered" | "updating" | undefined {
    const finalAt = (v: string): number => d.finals[v]?.at ?? 0;
    const reached = (v: string, at: number): boolean => d.seen > at && compareVersions(parseVersion(d.version), parseVersion(v)) >= 0;
    const s = d.started;
    const startAt = s?.at ?? 0;
    const o = d.offer;
    if (o && !o.dropped && o.at > Math.max(startAt, finalAt(o.version)) && now - o.at <= this.offerTimeoutMs && !reached(o.version, o.at)) return "offered";
    if (!s || startAt <= finalAt(s.version) || reached(s.version, startAt)) return undefined;
    if (d.state === "idle" && d.seen - startAt > this.offerTimeoutMs) return undefined;
    return now - Math.max(d.seen, d.report?.at ?? 0, startAt) <= this.o.inFlightTimeoutMs ? "updating" : undefined;
  }

  /**
   * Places of the --max-in-flight bound taken now, and by which instance's offers: a function of
   * the device records and the time only (cached for one instant), so a simulated fleet's run repeats.
   */
  fleetInFlight(now = this.now()): { inFlight: number; owners: Map<string, number> } {
    const c = this.fleetCache;
    if (c && c.version === this.o.store.version && now === c.at) return c;
    let inFlight = 0;
    const owners = new Map<string, number>();
    for (const [, d] of this.o.store.entries<DeviceRecord>(DEVICE_PREFIX)) {
      if (!this.busy(d, now)) continue;
      inFlight++;
      const by = d.offer?.by ?? "";
      owners.set(by, (owners.get(by) ?? 0) + 1);
    }
    this.fleetCache = { at: now, version: this.o.store.version, inFlight, owners };
    return this.fleetCache;
  }

  /** Live instances' ids, sorted (this one included). */
  instances(now = this.now()): string[] {
    const live = new Set([this.instanceId]);
    for (const [, r] of this.o.store.entries<{ id: string } & Stamped>(INSTANCE_PREFIX)) if (now - r.at < INSTANCE_GONE_MS) live.add(r.id);
    return [...live].sort();
  }

  /** Places this instance's own offers hold in rollout `p` (exact: its own writes are in its replica at once). */
  private placesHeld(p: Parsed): number {
    this.view(p);
    return this.cache.get(p.rec.id)!.owners.get(this.instanceId) ?? 0;
  }

  /**
   * This instance's share of the rollout's places: what live instances' offers do
   * not hold… split evenly. The places held by offers of instances that are gone
   * count against everyone until they end; so the instances' own places, each
   * known exactly, never add up to more than the bound, however late the others'
   * writes arrive.
   */
  private share(p: Parsed, now: number): number {
    return this.shareOf(p.plan.maxInFlight, this.cache.get(p.rec.id)!.owners, now);
  }

  /** This instance's share of `bound` places, given who holds them (see share). */
  private shareOf(bound: number, owners: ReadonlyMap<string, number>, now: number): number {
    if (now - this.startedAt < (this.o.warmUpMs ?? 0)) return 0;
    const live = this.instances(now);
    let orphaned = 0;
    for (const [by, n] of owners) if (!live.includes(by)) orphaned += n;
    const free = Math.max(0, bound - orphaned);
    const i = live.indexOf(this.instanceId);
    return Math.floor(free / live.length) + (i < free % live.length ? 1 : 0);
  }

  /** An offer that could not be published: its place is freed. */
  dropped(deviceId: string): void {
    const d = this.device(deviceId);
    if (!d?.offer) return;
    this.putDevice({ ...d, offer: { ...d.offer, dropped: true } });
  }

  /**
   * Start a rollout from a plan file's text (and signature).
   * @throws OtaError PLAN_INVALID / PLAN_SIGNATURE; Error when one runs for the release already.
   */
  start(text: string, signature?: string): RolloutView {
    const sp = signedPlan(text, signature, this.o.trusted);
    const label = planLabel(sp.plan);
    const existing = this.o.store.get<RolloutRecord>(ROLLOUT_PREFIX + sp.id);
    if (existing) return this.view(this.parsed(existing));
    const active = this.governing(sp.plan.release.hardwareId, formatVersion(sp.plan.release.version));
    if (active && (active.rec.status === "running" || active.rec.status === "paused")) {
      throw new Error(`rollout ${active.rec.id.slice(0, 12)} for ${label} is ${active.rec.status}: abort it first`);
    }
    const now = this.now();
    const rec: RolloutRecord = { id: sp.id, text, ...(signature !== undefined ? { signature } : {}), startedAt: now, status: "running", statusAt: now, reason: 0, why: "", opened: sp.plan.waves.map(() => 0) };
    this.o.store.put(ROLLOUT_PREFIX + sp.id, rec);
    this.o.log?.(`rollout ${sp.id.slice(0, 12)} (${label}) started: ${sp.plan.waves.map((w) => `${w.name} ${w.upToPercent}%`).join(", ")}${signature ? " (signed)" : ""}`);
    this.tick();
    return this.view(this.parsed(this.o.store.get<RolloutRecord>(ROLLOUT_PREFIX + sp.id)!));
  }

  /** Find a rollout by id or unique id prefix (at least 6 hex digits). */
  find(idOrPrefix: string): Parsed | undefined {
    const all = this.rollouts().filter((p) => p.rec.id.startsWith(idOrPrefix.toLowerCase()));
    if (all.length === 1 && (idOrPrefix.length >= 6 || all[0].rec.id === idOrPrefix)) return all[0];
    return undefined;
  }

  /**
   * pause / resume / abort.
   * @throws Error for an unknown rollout or a transition a latch forbids.
   */
  control(idOrPrefix: string, action: "pause" | "resume" | "abort", note = ""): RolloutView {
    const p = this.find(idOrPrefix);
    if (!p) throw new Error(`no rollout ${idOrPrefix} (give the id or 6+ leading hex digits of it)`);
    const s = p.rec.status;
    if (s === "aborted") throw new Error(`rollout ${p.rec.id.slice(0, 12)} is aborted (final)`);
    if (action === "abort") this.setStatus(p, "aborted", Reason.ROLLOUT_ABORTED, note || "aborted by the operator");
    else if (s === "halted") throw new Error(`rollout ${p.rec.id.slice(0, 12)} halted itself (${p.rec.why}); it cannot be ${action}d: abort it and start a new plan`);
    else if (action === "pause") this.setStatus(p, "paused", Reason.ROLLOUT_PAUSED, note || "paused by the operator");
    else this.setStatus(p, "running", 0, "");
    return this.view(this.parsed(this.o.store.get<RolloutRecord>(ROLLOUT_PREFIX + p.rec.id)!));
  }

  /** The fleet as the dashboard and `xs-ota rollout status` show it. */
  fleet(): FleetView {
    const now = this.now();
    const rollouts = this.rollouts().map((p) => ({ p, v: this.view(p) }));
    const devices: FleetView["devices"][number][] = [];
    const versions: { [v: string]: number } = {};
    const states: { [s: string]: number } = {};
    const failures: { [code: string]: { name: string; count: number } } = {};
    for (const [, d] of this.o.store.entries<DeviceRecord>(DEVICE_PREFIX).sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (!d.hw) continue;
      versions[d.version] = (versions[d.version] ?? 0) + 1;
      const state = now - d.seen > this.o.inFlightTimeoutMs ? "silent" : d.state;
      states[state] = (states[state] ?? 0) + 1;
      for (const f of Object.values(d.finals)) {
        if (!f.reason) continue;
        const k = String(f.reason);
        failures[k] = { name: reasonName(f.reason), count: (failures[k]?.count ?? 0) + 1 };
      }
      const last = rollouts.length ? rollouts[rollouts.length - 1] : undefined;
      const rollout = last && isTargeted(last.p.plan, d.hw, d.id) ? { id: last.p.rec.id, wave: last.p.plan.waves[waveOf(last.p.plan, last.p.rec.id, d.id)].name, stage: this.stage(last.p, d, now) } : undefined;
      devices.push({ id: d.id, hardwareId: d.hw, version: d.version, state, reason: d.reason, reasonName: d.reason ? reasonName(d.reason) : "", seenAgoSec: Math.round((now - d.seen) / 1000), ...(rollout ? { rollout } : {}) });
    }
    return { time: new Date(now).toISOString(), rollouts: rollouts.map((r) => r.v), devices, versions, states, failures, duplicateReports: this.duplicates, withheld: Object.fromEntries(this.withheld) };
  }
}

export interface FleetView {
  readonly time: string;
  readonly rollouts: readonly RolloutView[];
  readonly devices: readonly {
    readonly id: string;
    readonly hardwareId: string;
    readonly version: string;
    readonly state: string;
    readonly reason: number;
    readonly reasonName: string;
    readonly seenAgoSec: number;
    readonly rollout?: { readonly id: string; readonly wave: string; readonly stage: DeviceStage };
  }[];
  /** Devices per running version. */
  readonly versions: { readonly [version: string]: number };
  /** Devices per state of their last heartbeat (silent: none within the in-flight timeout). */
  readonly states: { readonly [state: string]: number };
  /** Final reports with a reason, per reason code. */
  readonly failures: { readonly [code: string]: { readonly name: string; readonly count: number } };
  readonly duplicateReports: number;
  readonly withheld: { readonly [reason: string]: number };
}
