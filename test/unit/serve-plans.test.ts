/**
 * Rollout plans (tools/serve/plan.ts, plans.ts) and the shared state
 * (tools/serve/store.ts) without a network: plan parsing, wave membership,
 * the canary halting on its failure budget with later waves never offered,
 * waves opening after their soak, pause/resume/abort, a restart resuming from
 * the snapshot, and two replicas that receive each other's writes late and
 * out of order converging with nothing counted twice.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { parseVersion } from "../../src/image/format";
import { signerFromSecret } from "../../tools/keys/signer";
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex, utf8Encode } from "../../src/util/bytes";
import { parsePlan, planId, signedPlan, waveOf } from "../../tools/serve/plan";
import { mergeDevice, mergeRecord, mergeRollout, RolloutPlans, type DeviceRecord, type RolloutRecord } from "../../tools/serve/plans";
import { SharedState } from "../../tools/serve/store";
import type { OfferCandidate } from "../../tools/serve/offers";

const HW = "usr-n520";
const planText = (o: { waves?: unknown; maxInFlight?: number; extra?: object } = {}) =>
  JSON.stringify({
    release: { hardwareId: HW, version: "1.1.0+2" },
    waves: o.waves ?? [
      { name: "canary", upToPercent: 10, soakSec: 30, failureBudget: 0 },
      { name: "early", upToPercent: 40, soakSec: 30, failureBudget: 1 },
      { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 5 },
    ],
    maxInFlight: o.maxInFlight ?? 0,
    ...o.extra,
  });

const candidate = { manifest: { hardwareId: HW, version: parseVersion("1.1.0+2") } } as unknown as OfferCandidate;
const other = { manifest: { hardwareId: HW, version: parseVersion("1.0.5+1") } } as unknown as OfferCandidate;
const hb = (version = "1.0.0+1", state = "idle") => ({ hardwareId: HW, version: parseVersion(version), state, reason: 0 });
const ids = Array.from({ length: 60 }, (_, i) => `dev-${String(i).padStart(3, "0")}`);

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function rig(o: { snapshot?: string; publish?: (t: string, p: Uint8Array) => void; clock?: { t: number } } = {}) {
  const clock = o.clock ?? { t: 1_800_000_000_000 };
  const store = new SharedState({ merge: mergeRecord, ...(o.snapshot ? { snapshotPath: o.snapshot } : {}), ...(o.publish ? { publish: o.publish } : {}) });
  const plans = new RolloutPlans({ store, inFlightTimeoutMs: 600_000, offerTimeoutMs: 15_000, now: () => clock.t });
  return { clock, store, plans };
}

/** One device's whole update as serve sees it, ending with `final`. */
function update(plans: RolloutPlans, id: string, final: "committed" | "rolled-back", seq0: number) {
  expect(plans.gate(id, hb(), candidate)).toEqual({ ok: true });
  expect(plans.admit(id, candidate)).toBe(true);
  plans.report(id, { seq: seq0, event: "offer-accepted", reason: 0, version: "1.0.0+1", target: "1.1.0+2" });
  plans.report(id, { seq: seq0 + 1, event: "installed", reason: 0, version: "1.0.0+1", target: "1.1.0+2" });
  if (final === "committed") {
    plans.report(id, { seq: seq0 + 2, event: "committed", reason: 0, version: "1.1.0+2", target: "1.1.0+2" });
    plans.heartbeat(id, hb("1.1.0+2"));
  } else plans.report(id, { seq: seq0 + 2, event: "rolled-back", reason: Reason.TRIAL_FAILED, version: "1.0.0+1", target: "1.1.0+2" });
}

describe("plan files", () => {
  it("parses a plan, and refuses unknown fields, waves out of order, a last wave below 100 and a bad window", () => {
    const p = parsePlan(planText({ extra: { window: { notBefore: "2026-12-01T02:00:00Z" }, groups: { a: ["dev-0*"] }, target: { groups: ["a"] } } }));
    expect(p.waves.map((w) => w.upToPercent)).toEqual([10, 40, 100]);
    expect(p.notBefore).toBe(Date.parse("2026-12-01T02:00:00Z") / 1000);
    expect(p.targetGroups).toEqual(["a"]);
    const bad = (text: string, m: RegExp) => expect(() => parsePlan(text)).toThrow(m);
    bad(planText({ extra: { surprise: 1 } }), /unknown field "surprise"/);
    bad(planText({ waves: [{ name: "a", upToPercent: 50 }, { name: "b", upToPercent: 40 }] }), /waves\[1\].upToPercent/);
    bad(planText({ waves: [{ name: "a", upToPercent: 50 }] }), /last wave's upToPercent must be 100/);
    bad(planText({ extra: { window: { notBefore: "tomorrow" } } }), /ISO 8601/);
    bad(planText({ extra: { target: { groups: ["nope"] } } }), /not defined in groups/);
    bad("{", /not JSON/);
  });

  it("binds a plan by its hash, and with trusted keys needs a signature one of them makes", () => {
    const text = planText();
    const key = signerFromSecret(new Uint8Array(32).fill(3));
    const sig = toHex(key.sign(sha256(utf8Encode(text))));
    expect(signedPlan(text, undefined).id).toBe(toHex(sha256(utf8Encode(text))));
    expect(signedPlan(text, sig, [key.publicKey]).signature).toBe(sig);
    expect(() => signedPlan(text, undefined, [key.publicKey])).toThrow(/must be signed/);
    const otherKey = signerFromSecret(new Uint8Array(32).fill(4));
    expect(() => signedPlan(text, sig, [otherKey.publicKey])).toThrow(/no trusted key/);
    expect(() => signedPlan(text + " ", sig, [key.publicKey])).toThrow(/no trusted key/);
  });

  it("puts a device in the same wave every time, and splits a fleet about as the plan says", () => {
    const plan = parsePlan(planText());
    const id = planId(planText());
    const counts = [0, 0, 0];
    for (let i = 0; i < 2000; i++) counts[waveOf(plan, id, `d${i}`)]++;
    expect(waveOf(plan, id, "d7")).toBe(waveOf(plan, id, "d7"));
    expect(counts[0]).toBeGreaterThan(140);
    expect(counts[0]).toBeLessThan(260); // 10 %
    expect(counts[1]).toBeGreaterThan(480);
    expect(counts[1]).toBeLessThan(720); // 30 %
  });
});

describe("rollouts by plan", () => {
  it("halts the canary wave on a rollback beyond its budget; later waves are never offered the release, and it says why", () => {
    const { plans, clock } = rig();
    const v = plans.start(planText());
    for (const id of ids) plans.heartbeat(id, hb());
    const canary = ids.filter((id) => waveOf(parsePlan(planText()), v.id, id) === 0);
    const later = ids.filter((id) => !canary.includes(id));
    expect(canary.length).toBeGreaterThan(0);
    for (const id of later) expect(plans.gate(id, hb(), candidate)).toMatchObject({ ok: false, code: Reason.ROLLOUT_WAVE_CLOSED });
    // an unplanned release is not governed
    expect(plans.gate(later[0], hb(), other)).toEqual({ ok: true });
    update(plans, canary[0], "rolled-back", 1);
    const after = plans.fleet().rollouts[0];
    expect(after.status).toBe("halted");
    expect(after.reason).toBe(Reason.ROLLOUT_HALTED);
    expect(after.why).toMatch(/wave canary: 1 rolled back \+ 0 failed \+ 0 bricked-suspect > failure budget 0/);
    clock.t += 3600_000;
    plans.tick();
    for (const id of ids) expect(plans.gate(id, hb(), candidate)).toMatchObject({ ok: false, code: Reason.ROLLOUT_HALTED });
    expect(() => plans.control(v.id, "resume")).toThrow(/halted itself/);
    expect(plans.control(v.id.slice(0, 8), "abort").status).toBe("aborted");
  });

  it("opens the next wave only when the current one has nothing pending or in flight and has soaked", () => {
    const { plans, clock } = rig();
    const v = plans.start(planText());
    const plan = parsePlan(planText());
    for (const id of ids) plans.heartbeat(id, hb());
    const canary = ids.filter((id) => waveOf(plan, v.id, id) === 0);
    const early = ids.filter((id) => waveOf(plan, v.id, id) === 1);
    canary.forEach((id, i) => update(plans, id, "committed", 10 * i));
    clock.t += 10_000;
    plans.tick();
    expect(plans.fleet().rollouts[0].currentWave).toBe(0); // soaking
    expect(plans.gate(early[0], hb(), candidate)).toMatchObject({ ok: false, code: Reason.ROLLOUT_WAVE_CLOSED });
    clock.t += 25_000;
    plans.tick();
    const r = plans.fleet().rollouts[0];
    expect(r.currentWave).toBe(1);
    expect(r.waves[0]).toMatchObject({ complete: true, failures: 0 });
    expect(r.waves[0].stages.committed).toBe(canary.length);
    expect(plans.gate(early[0], hb(), candidate)).toEqual({ ok: true });
    // one failure in "early" is within its budget of 1; a second halts
    update(plans, early[0], "rolled-back", 100);
    expect(plans.fleet().rollouts[0].status).toBe("running");
    update(plans, early[1], "rolled-back", 200);
    expect(plans.fleet().rollouts[0].status).toBe("halted");
  });

  it("does not pass a wave none of whose devices finished (not seen yet: a connect storm) unless the plan says minDevices 0", () => {
    const { plans, clock } = rig();
    plans.start(planText());
    clock.t += 3600_000;
    plans.tick();
    expect(plans.fleet().rollouts[0].currentWave).toBe(0);
    const { plans: lax, clock: c2 } = rig();
    lax.start(planText({ waves: [{ name: "canary", upToPercent: 10, soakSec: 30, failureBudget: 0, minDevices: 0 }, { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 0 }] }));
    c2.t += 31_000;
    lax.tick();
    expect(lax.fleet().rollouts[0].currentWave).toBe(1);
  });

  it("a device gone offline (no heartbeat for the silence window) stops holding its wave back", () => {
    const clock = { t: 1_800_000_000_000 };
    const store = new SharedState({ merge: mergeRecord });
    const plans = new RolloutPlans({ store, inFlightTimeoutMs: 600_000, silentAfterMs: 180_000, now: () => clock.t });
    const v = plans.start(planText({ waves: [{ name: "canary", upToPercent: 50, soakSec: 10, failureBudget: 0 }, { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 0 }] }));
    const plan = parsePlan(planText({ waves: [{ name: "canary", upToPercent: 50, soakSec: 10, failureBudget: 0 }, { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 0 }] }));
    const canary = ids.filter((id) => waveOf(plan, v.id, id) === 0);
    for (const id of canary) plans.heartbeat(id, hb());
    update(plans, canary[0], "committed", 1);
    clock.t += 60_000;
    plans.tick();
    expect(plans.fleet().rollouts[0].waves[0].stages.pending).toBe(canary.length - 1);
    expect(plans.fleet().rollouts[0].currentWave).toBe(0);
    clock.t += 121_000;
    plans.heartbeat(canary[0], hb("1.1.0+2"));
    plans.tick();
    const r = plans.fleet().rollouts[0];
    expect(r.waves[0].stages.silent).toBe(canary.length - 1);
    expect(r.currentWave).toBe(1);
  });

  it("bounds the rollout's devices in flight, never offers twice, frees a dropped offer's place, and counts a silent update as bricked-suspect", () => {
    const { plans, clock } = rig();
    const v = plans.start(planText({ waves: [{ name: "all", upToPercent: 100, soakSec: 0, failureBudget: 0 }], maxInFlight: 2 }));
    for (const id of ids) plans.heartbeat(id, hb());
    expect(plans.admit("dev-000", candidate)).toBe(true);
    expect(plans.admit("dev-000", candidate)).toBe(false); // its offer is in flight
    expect(plans.admit("dev-001", candidate)).toBe(true);
    clock.t += 300;
    expect(plans.admit("dev-002", candidate)).toBe(false); // both places taken
    plans.dropped("dev-001");
    clock.t += 300;
    expect(plans.admit("dev-002", candidate)).toBe(true);
    plans.report("dev-000", { seq: 1, event: "download-started", reason: 0, version: "1.0.0+1", target: "1.1.0+2" });
    clock.t += 601_000; // dev-000 goes silent mid-update: its place is freed, and it is a suspect
    plans.heartbeat("dev-002", hb("1.0.0+1", "downloading"));
    plans.tick();
    const r = plans.fleet().rollouts[0];
    expect(r.waves[0].stages["bricked-suspect"]).toBe(1);
    expect(r.status).toBe("halted");
    expect(r.id).toBe(v.id);
  });

  it("counts a redelivered report once", () => {
    const { plans } = rig();
    plans.start(planText({ waves: [{ name: "all", upToPercent: 100, soakSec: 0, failureBudget: 3 }] }));
    plans.heartbeat("dev-000", hb());
    expect(plans.admit("dev-000", candidate)).toBe(true);
    const r = { seq: 4, event: "rolled-back", reason: Reason.TRIAL_FAILED, version: "1.0.0+1", target: "1.1.0+2" };
    expect(plans.report("dev-000", r)).toBe(true);
    expect(plans.report("dev-000", r)).toBe(false);
    expect(plans.duplicates).toBe(1);
    expect(plans.fleet().rollouts[0].waves[0].failures).toBe(1);
    expect(plans.fleet().failures[String(Reason.TRIAL_FAILED)].count).toBe(1);
  });

  it("pauses, resumes and aborts; outside its start window it offers nothing", () => {
    const { plans, clock } = rig();
    const v = plans.start(planText({ waves: [{ name: "all", upToPercent: 100, soakSec: 0, failureBudget: 0 }], extra: { window: { notBefore: new Date(clock.t + 3600_000).toISOString().replace(/\.\d+Z$/, "Z") } } }));
    plans.heartbeat("dev-000", hb());
    expect(plans.gate("dev-000", hb(), candidate)).toMatchObject({ ok: false, code: Reason.ROLLOUT_OUTSIDE_WINDOW });
    clock.t += 3601_000;
    plans.tick();
    expect(plans.gate("dev-000", hb(), candidate)).toEqual({ ok: true });
    plans.control(v.id, "pause", "line A maintenance");
    expect(plans.gate("dev-000", hb(), candidate)).toEqual({ ok: false, code: Reason.ROLLOUT_PAUSED, why: "line A maintenance" });
    plans.control(v.id, "resume");
    expect(plans.gate("dev-000", hb(), candidate)).toEqual({ ok: true });
    plans.control(v.id, "abort");
    expect(plans.gate("dev-000", hb(), candidate)).toMatchObject({ ok: false, code: Reason.ROLLOUT_ABORTED });
    expect(() => plans.control(v.id, "resume")).toThrow(/aborted/);
  });

  it("survives a restart: the plan, its open waves and every device's progress come back from the snapshot", () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-plans-"));
    dirs.push(dir);
    const snapshot = join(dir, "rollout-state.json");
    const a = rig({ snapshot });
    const v = a.plans.start(planText());
    const plan = parsePlan(planText());
    for (const id of ids) a.plans.heartbeat(id, hb());
    const canary = ids.filter((id) => waveOf(plan, v.id, id) === 0);
    canary.forEach((id, i) => update(a.plans, id, "committed", 10 * i));
    a.clock.t += 31_000;
    a.plans.tick();
    expect(a.plans.fleet().rollouts[0].currentWave).toBe(1);
    const early = ids.find((id) => waveOf(plan, v.id, id) === 1)!;
    expect(a.plans.admit(early, candidate)).toBe(true);
    a.store.flush();
    const b = rig({ snapshot, clock: { t: a.clock.t + 1000 } });
    const r = b.plans.fleet().rollouts[0];
    expect(r).toMatchObject({ id: v.id, status: "running", currentWave: 1 });
    expect(r.waves[0].stages.committed).toBe(canary.length);
    expect(b.plans.admit(early, candidate)).toBe(false); // its offer is still in flight: not offered twice
  });
});

describe("shared state between two instances", () => {
  it("merges are commutative and idempotent", () => {
    const base: DeviceRecord = { id: "d", hw: HW, version: "1.0.0+1", state: "idle", reason: 0, seen: 10, finals: {} };
    const x: DeviceRecord = { ...base, seen: 20, offer: { version: "1.1.0+2", rollout: "r", at: 15 } };
    const y: DeviceRecord = { ...base, seen: 12, finals: { "1.1.0+2": { event: "committed", reason: 0, at: 30 } }, report: { seq: 3, event: "committed", at: 30 } };
    expect(mergeDevice(x, y)).toEqual(mergeDevice(y, x));
    expect(mergeDevice(mergeDevice(x, y), y)).toEqual(mergeDevice(x, y));
    const r: RolloutRecord = { id: "r", text: "", startedAt: 1, status: "running", statusAt: 1, reason: 0, why: "", opened: [1, 0] };
    const halted = { ...r, status: "halted" as const, statusAt: 5, reason: Reason.ROLLOUT_HALTED, why: "budget" };
    const resumed = { ...r, statusAt: 9, opened: [1, 7] };
    expect(mergeRollout(halted, resumed)).toEqual(mergeRollout(resumed, halted));
    expect(mergeRollout(halted, resumed)).toMatchObject({ status: "halted", opened: [1, 7] });
  });

  it("two instances whose writes reach each other late never hold more places together than the plan's bound; a gone instance's share passes to the other", () => {
    const queue: { to: number; topic: string; payload: Uint8Array }[] = [];
    const clock = { t: 1_800_000_000_000 };
    const inst = [0, 1].map((n) => rig({ clock, publish: (topic, payload) => queue.push({ to: 1 - n, topic, payload }) }));
    const deliver = () => queue.splice(0).forEach((m) => inst[m.to].store.receive(m.topic, m.payload));
    inst[0].plans.start(planText({ waves: [{ name: "all", upToPercent: 100, soakSec: 0, failureBudget: 100 }], maxInFlight: 5 }));
    inst[1].plans.tick();
    deliver();
    expect(inst[0].plans.instances()).toEqual(inst[1].plans.instances());
    // Nothing is delivered while both admit: each sees only its own offers.
    const admitted = ids.map((id, k) => inst[k % 2].plans.admit(id, candidate)).filter(Boolean).length;
    expect(admitted).toBe(5);
    deliver();
    expect(inst[0].plans.fleet().rollouts[0].inFlight).toBe(5);
    // Instance 1 goes silent: after INSTANCE_GONE_MS its live places still count, but the free ones are all instance 0's.
    clock.t += 7000;
    inst[0].plans.tick();
    for (const id of ids.slice(0, 10)) inst[0].plans.report(id, { seq: 9, event: "committed", reason: 0, version: "1.1.0+2", target: "1.1.0+2" });
    expect(inst[0].plans.instances().length).toBe(1);
    const more = ids.slice(10).map((id) => inst[0].plans.admit(id, candidate)).filter(Boolean).length;
    expect(more).toBe(5);
  });

  it("two replicas over a broker that delivers late and out of order converge, with one place per device and no double count", () => {
    // A retained-message broker: it keeps the last record per topic and delivers every publish to both instances, later, shuffled.
    const retained = new Map<string, Uint8Array>();
    const queue: { to: number; topic: string; payload: Uint8Array }[] = [];
    let seed = 5;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const clock = { t: 1_800_000_000_000 };
    const inst = [0, 1].map((n) => rig({ clock, publish: (topic, payload) => (retained.set(topic, payload), queue.push({ to: 0, topic, payload }, { to: 1, topic, payload })) }));
    const deliver = (all = false) => {
      while (queue.length) {
        const i = Math.floor(rnd() * queue.length);
        const [m] = queue.splice(i, 1);
        inst[m.to].store.receive(m.topic, m.payload);
        if (!all && rnd() < 0.3) break;
      }
    };
    const v = inst[0].plans.start(planText({ waves: [{ name: "all", upToPercent: 100, soakSec: 0, failureBudget: 100 }], maxInFlight: 100 }));
    deliver(true);
    // Each message of a device goes to either instance (as $share does), and a commit is delivered twice.
    for (const [k, id] of ids.entries()) {
      const at = (n: number) => inst[(k + n) % 2].plans;
      at(0).heartbeat(id, hb());
      deliver();
      expect(at(1).admit(id, candidate)).toBe(true);
      deliver(true);
      expect(at(0).admit(id, candidate)).toBe(false); // the other instance's offer is in flight: no duplicate
      at(1).report(id, { seq: 1, event: "offer-accepted", reason: 0, version: "1.0.0+1", target: "1.1.0+2" });
      deliver();
      const commit = { seq: 2, event: k % 3 ? "committed" : "rolled-back", reason: k % 3 ? 0 : Reason.TRIAL_FAILED, version: "1.0.0+1", target: "1.1.0+2" };
      at(0).report(id, commit);
      deliver(true);
      expect(at(1).report(id, commit)).toBe(false); // the redelivery reaches the other instance: still once
      deliver();
    }
    deliver(true);
    const views = inst.map((x) => x.plans.fleet().rollouts[0]);
    expect(views[0]).toEqual(views[1]);
    expect(views[0].id).toBe(v.id);
    expect(views[0].inFlight).toBe(0);
    expect(views[0].waves[0].stages["rolled-back"]).toBe(ids.filter((_, k) => k % 3 === 0).length);
    expect(views[0].waves[0].stages.committed).toBe(ids.filter((_, k) => k % 3 !== 0).length);
    expect(inst[0].plans.duplicates + inst[1].plans.duplicates).toBe(ids.length);
    // what the broker retains is what both replicas hold
    const fresh = rig({ clock });
    for (const [topic, payload] of retained) fresh.store.receive(topic, payload);
    expect(fresh.plans.fleet().rollouts[0]).toEqual(views[0]);
  });
});

describe("serve --max-in-flight without a plan: the fleet's bound over the shared records", () => {
  function pair(bound: number) {
    const queue: { to: number; topic: string; payload: Uint8Array }[] = [];
    const clock = { t: 1_800_000_000_000 };
    const inst = [0, 1].map((n) => {
      const store = new SharedState({ merge: mergeRecord, publish: (topic, payload) => queue.push({ to: 1 - n, topic, payload }) });
      return { store, plans: new RolloutPlans({ store, inFlightTimeoutMs: 60_000, offerTimeoutMs: 15_000, now: () => clock.t, maxInFlight: bound }) };
    });
    const deliver = () => queue.splice(0).forEach((m) => inst[m.to].store.receive(m.topic, m.payload));
    for (const i of inst) i.plans.tick();
    deliver();
    return { clock, inst, deliver };
  }

  it("two instances whose writes reach each other late hold at most K places together, offer a device once, and free a finished, a dropped-out and a silent device's place on both", () => {
    const { clock, inst, deliver } = pair(4);
    // No plan names the release: only the bound applies. Nothing delivered while both admit.
    const admitted = ids.filter((id, k) => inst[k % 2].plans.admit(id, candidate));
    expect(admitted).toEqual(["dev-000", "dev-001", "dev-002", "dev-003"]);
    deliver();
    for (const i of inst) expect(i.plans.fleetInFlight().inFlight).toBe(4);
    expect(inst[1].plans.admit("dev-000", candidate)).toBe(false); // its offer is in flight: no duplicate offer
    for (const [k, id] of admitted.entries()) inst[(k + 1) % 2].plans.report(id, { seq: 1, event: "offer-accepted", reason: 0, version: "1.0.0+1", target: "1.1.0+2" });
    deliver();
    expect(inst[0].plans.admit("dev-010", candidate) || inst[1].plans.admit("dev-010", candidate)).toBe(false);
    // dev-000 commits (its final report reaches the instance that did not offer it), dev-001 is seen on the target,
    // dev-002 heartbeats idle well after its start (it dropped the update), dev-003 goes silent.
    clock.t += 20_000;
    for (const i of inst) i.plans.tick();
    inst[1].plans.report("dev-000", { seq: 2, event: "committed", reason: 0, version: "1.1.0+2", target: "1.1.0+2" });
    inst[0].plans.heartbeat("dev-001", hb("1.1.0+2"));
    inst[1].plans.heartbeat("dev-002", hb("1.0.0+1", "idle"));
    deliver();
    for (const i of inst) expect(i.plans.fleetInFlight().inFlight).toBe(1);
    clock.t += 61_000;
    for (const i of inst) i.plans.tick(); // both instances alive (each announces itself every 2 s)
    deliver();
    for (const i of inst) expect(i.plans.fleetInFlight().inFlight).toBe(0);
    // dev-002 may be offered again; every place is free for others on both instances (each its share).
    const next = ids.slice(10).filter((id, k) => inst[k % 2].plans.admit(id, candidate));
    expect(next.length).toBe(4);
    deliver();
    for (const i of inst) expect(i.plans.fleetInFlight().inFlight).toBe(4);
    expect(inst[0].plans.withheldForPlace + inst[1].plans.withheldForPlace).toBeGreaterThan(0);
  });

  it("an instance started while the other's records are still on their way holds no place until it has heard them (warm-up)", () => {
    const clock = { t: 1_800_000_000_000 };
    const toLate: { topic: string; payload: Uint8Array }[] = [];
    const a = new SharedState({ merge: mergeRecord, publish: (topic, payload) => toLate.push({ topic, payload }) });
    const first = new RolloutPlans({ store: a, inFlightTimeoutMs: 60_000, offerTimeoutMs: 15_000, now: () => clock.t, maxInFlight: 3, warmUpMs: 3000 });
    clock.t += 5000; // the first instance is past its warm-up and alone: it takes the whole bound
    first.tick();
    expect(ids.slice(0, 5).filter((id) => first.admit(id, candidate))).toEqual(["dev-000", "dev-001", "dev-002"]);
    // A second instance starts; the broker has not delivered the first one's records to it yet.
    const b = new SharedState({ merge: mergeRecord, publish: () => {} });
    const second = new RolloutPlans({ store: b, inFlightTimeoutMs: 60_000, offerTimeoutMs: 15_000, now: () => clock.t, maxInFlight: 3, warmUpMs: 3000 });
    second.tick();
    expect(ids.slice(10, 15).filter((id) => second.admit(id, candidate))).toEqual([]); // without the warm-up: 3 more, 6 in flight
    toLate.splice(0).forEach((m) => b.receive(m.topic, m.payload));
    clock.t += 3000;
    first.tick();
    toLate.splice(0).forEach((m) => b.receive(m.topic, m.payload));
    second.tick();
    expect(second.instances().length).toBe(2);
    expect(second.fleetInFlight().inFlight).toBe(3);
    expect(ids.slice(10, 15).filter((id) => second.admit(id, candidate))).toEqual([]); // the bound is full
  });
});
