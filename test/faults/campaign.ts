/**
 * The power-cut campaign against the faithful bootloader model
 * (targets/sim/bootloader.ts: MCUboot's loader.c rules, no kinder): for each
 * scenario, cut the power at every mutating operation (flash writes and
 * erases, counter advances) in its window — clean, torn, and double (a
 * second cut at an operation of the recovery from the first) — restart, let
 * the agent finish, and check the invariants:
 *
 *  - a valid image boots (the bootloader model verified hash, key and
 *    signature), the old or the new release, and the one the scenario expects;
 *  - the running version never goes down (confirmed boots only: a trial that
 *    is reverted is not a downgrade) and the protected counter never decreases
 *    nor runs ahead of the running image;
 *  - nothing is wedged: within the run's bounded virtual time the agent is
 *    idle and the release's final outcome was reported, exactly once;
 *  - a release that did not end for good (a cut says nothing against it)
 *    was offered again and installed: committed scenarios end committed;
 *  - the settings provisioned at the factory read back unchanged and the
 *    audit log reads back whole.
 *
 * Every cut is labelled with the update phase it fell in (download, patch,
 * staged, trial, commit, rollback), from the agent's state at that operation
 * in the fault-free run. Runs are deterministic: (scenario, cut, mode, second
 * cut, seed) reproduces one.
 */
import { formatVersion, compareVersions, parseVersion } from "../../src/image/format";
import { Reason } from "../../src/errors";
import { openStorage } from "../../src/store/layout";
import { defaultSettings, SettingsManager, sameSettings, type Settings } from "../../src/store/settings";
import { AuditLog } from "../../src/store/audit";
import { AGENT_JOURNAL_SPACE } from "../../src/agent/journal";
import type { CutMode } from "../../hal/mock/rail";
import type { VirtualDevice } from "../../targets/sim/device";
import { makePatch } from "../../tools/delta/index";
import { buildImage, release } from "../../tools/demo/firmware";
import { makeWorld, type World } from "../lib/sim-world";
import { TestOnlySeededRandom } from "../../hal/mock/random";
import { buildEncryptedImage, encryptedDeltaRelease, encryptedFullRelease, provisionDeviceKey, recordingRandom } from "../lib/enc-fixtures";

export const PHASES = Object.freeze(["download", "patch", "staged", "trial", "commit", "rollback"] as const);
export type PhaseName = (typeof PHASES)[number];

export interface Scenario {
  readonly name: string;
  readonly expect: "committed" | "rolled-back";
  readonly endVersion: string;
  /** The phase of the ops before the first transition (and of downloading). */
  readonly fetchPhase: "download" | "patch";
  build(w: World): void;
  /** Run the device up to where the cut window starts (default: power-on). */
  prepare?(w: World, d: VirtualDevice): void;
  /** Provision the device before its first boot (an encrypted release needs its key). */
  provision?(w: World, d: VirtualDevice): void;
  /** The install waits (busy) until this virtual time: a staged stretch with resets in it. */
  readonly busyUntilMs?: number;
}

const diff = (a: Uint8Array, b: Uint8Array) => makePatch(a, b).bytes;

/** Virtual time a run gets to converge (bounded: anything not done by then is wedged). */
export const RUN_MS = 12 * 60_000;

export const SCENARIOS: readonly Scenario[] = Object.freeze([
  {
    name: "full update",
    expect: "committed",
    endVersion: "1.1.0+0",
    fetchPhase: "download",
    build: (w) => (w.cloud.releases = [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }))]),
  },
  {
    name: "delta update",
    expect: "committed",
    endVersion: "1.1.0+0",
    fetchPhase: "patch",
    build: (w) => (w.cloud.releases = [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }), { base: w.factory, diff })]),
  },
  {
    name: "encrypted full update",
    expect: "committed",
    endVersion: "1.1.0+0",
    fetchPhase: "download",
    build: () => undefined,
    provision: (w, d) => {
      const pub = provisionDeviceKey(d.storage, new TestOnlySeededRandom(11));
      w.cloud.releases = [encryptedFullRelease(w.key, buildEncryptedImage(w.map, w.key, "1.1.0", 1, pub, recordingRandom(5).random, { securityCounter: 2 }))];
    },
  },
  {
    name: "encrypted delta update",
    expect: "committed",
    endVersion: "1.1.0+0",
    fetchPhase: "patch",
    build: () => undefined,
    provision: (w, d) => {
      const pub = provisionDeviceKey(d.storage, new TestOnlySeededRandom(12));
      w.cloud.releases = [encryptedDeltaRelease(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }), w.factory, diff, pub, recordingRandom(6).random)];
    },
  },
  {
    name: "staged",
    expect: "committed",
    endVersion: "1.1.0+0",
    fetchPhase: "download",
    busyUntilMs: 90_000,
    build: (w) => (w.cloud.releases = [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }))]),
  },
  {
    name: "commit",
    expect: "committed",
    endVersion: "1.1.0+0",
    fetchPhase: "download",
    build: (w) => (w.cloud.releases = [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }))]),
    // the window starts when the trial image boots: confirm, counter, report
    prepare: (_w, d) => {
      for (let i = 0; i < 100_000 && d.boots.length < 2; i++) d.run(10);
    },
  },
  {
    name: "rollback",
    expect: "rolled-back",
    endVersion: "1.0.0+1",
    fetchPhase: "download",
    build: (w) => (w.cloud.releases = [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { behaviour: "no-cloud", securityCounter: 2 }))]),
  },
]);

export interface Cut {
  /** The n-th mutating operation of the window (1-based). */
  readonly at: number;
  readonly mode: CutMode;
  /** A second cut: the m-th mutating operation after the first cut (the recovery), 1-based. */
  readonly then?: { readonly at: number; readonly mode: CutMode };
}

export interface RunResult {
  readonly violation?: string;
  readonly resumed: boolean;
  /** Mutating operations after the first cut until the run ended (the recovery's window). */
  readonly recoveryOps: number;
}

/** The settings provisioned at the factory: this device's id, the cloud, the release key, a 10 s heartbeat. */
function provisioned(w: World): Settings {
  return defaultSettings("dev", { serverHost: w.cloud.host, serverPort: w.cloud.port, trustedKeys: [w.key.publicKey], heartbeatIntervalS: 10 });
}

interface Run {
  w: World;
  d: VirtualDevice;
  /** (rail operations, agent state entered), in order. */
  transitions: { ops: number; state: string }[];
}

function world(s: Scenario, seed: number): Run {
  const w = makeWorld({ seed });
  s.build(w);
  const transitions: { ops: number; state: string }[] = [];
  let device: VirtualDevice | undefined;
  const d = w.addDevice("dev", {
    trialDeadlineMs: 30_000,
    ...(s.busyUntilMs !== undefined ? { isBusy: () => w.clock.now() < s.busyUntilMs!, preconditionRetryMs: 5000 } : {}),
    log: (line) => {
      w.logs.push(`${w.clock.now()} ${line}`);
      const m = / -[a-z-]+-> ([a-z-]+)$/.exec(line);
      if (m && device) transitions.push({ ops: device.rail.operations, state: m[1] });
    },
  });
  device = d;
  // every boot is a transition too (the bootloader's own writes: copy_done, a revert's erase)
  const boot = d.boot.bind(d);
  d.boot = () => {
    transitions.push({ ops: d.rail.operations, state: "reboot" });
    return boot();
  };
  // factory provisioning: settings saved before the first boot (the agent runs on them)
  new SettingsManager(openStorage(d.storage, undefined, AGENT_JOURNAL_SPACE).settings, provisioned(w)).save();
  s.provision?.(w, d);
  return { w, d, transitions };
}

/** The phase of every operation of the window, from a fault-free run. */
export interface Window {
  readonly ops: number;
  readonly phaseOf: readonly PhaseName[];
}

function phaseOfState(s: Scenario, state: string, trialSeen: boolean): PhaseName {
  switch (state) {
    case "verifying":
    case "staged":
      return "staged";
    case "installing":
    case "trial":
      return "trial";
    case "committed":
      return "commit";
    case "rollback-boot":
      return "rollback";
    case "failed":
    case "rolled-back":
      return trialSeen ? "rollback" : s.fetchPhase;
    case "reboot":
      // the boot into the trial, or (rollback) the reboot that ends it: MCUboot erases the slot
      return trialSeen ? (s.expect === "rolled-back" ? "rollback" : "trial") : s.fetchPhase;
    case "idle":
    case "boot":
      return trialSeen ? (s.expect === "rolled-back" ? "rollback" : "commit") : s.fetchPhase;
    default:
      return s.fetchPhase;
  }
}

/** Mutating operations in the scenario's window and their phases, from a fault-free run (and that run's own check). */
export function windowOf(s: Scenario, seed = 1): Window {
  const r = world(s, seed);
  s.prepare?.(r.w, r.d);
  const start = r.d.rail.operations;
  r.d.run(RUN_MS);
  const v = check(s, r);
  if (v) throw new Error(`${s.name}: the fault-free run already fails: ${v}`);
  const ops = r.d.rail.operations - start;
  const phaseOf: PhaseName[] = [];
  let t = 0;
  let state = "boot";
  let trialSeen = false;
  for (let k = 1; k <= ops; k++) {
    // the k-th op happens when `start + k - 1` ops were done
    while (t < r.transitions.length && r.transitions[t].ops <= start + k - 1) {
      const next = r.transitions[t].state;
      // the first boot after an install is the trial's; in a rollback scenario the next one reverts
      if (next === "reboot" && state === "installing") state = "trial";
      else state = next === "reboot" && trialSeen && s.expect === "rolled-back" ? "rollback-boot" : next;
      if (state === "installing" || state === "trial") trialSeen = true;
      t++;
    }
    phaseOf.push(phaseOfState(s, state, trialSeen || s.prepare !== undefined));
  }
  return { ops, phaseOf };
}

export function runOnce(s: Scenario, cut: Cut, seed: number): RunResult {
  const r = world(s, seed);
  const { d } = r;
  s.prepare?.(r.w, d);
  let cutAtOps = -1;
  let secondArmed = false;
  const rail = d.rail;
  const fail = rail.fail.bind(rail);
  rail.fail = (): never => {
    if (cutAtOps < 0) cutAtOps = rail.operations;
    try {
      return fail();
    } finally {
      const then = cut.then;
      if (then && cutAtOps === rail.operations && !secondArmed) {
        secondArmed = true;
        rail.armCut(then.at, then.mode);
      }
    }
  };
  rail.armCut(cut.at, cut.mode);
  d.run(RUN_MS);
  return {
    violation: check(s, r),
    resumed: r.w.logs.some((l) => l.includes("-resume-download->")),
    recoveryOps: cutAtOps < 0 ? 0 : rail.operations - cutAtOps,
  };
}

function check(s: Scenario, r: Run): string | undefined {
  const { w, d } = r;
  if (d.bricked || !d.lastBoot?.info) return "bricked: no slot boots";
  const running = formatVersion(d.lastBoot.info.header.version);
  if (running !== "1.0.0+1" && running !== "1.1.0+0") return `runs ${running}, neither the old nor the new release`;
  if (running !== s.endVersion) return `ended on ${running}, expected ${s.endVersion}`;
  // the running version never goes down: confirmed (non-trial) boots in order
  let last = parseVersion("0.0.0");
  for (const b of d.boots) {
    const info = b.decision.info;
    if (!info || b.decision.trial) continue;
    if (compareVersions(info.header.version, last) < 0) return `the running version went down: ${formatVersion(last)} → ${formatVersion(info.header.version)}`;
    last = info.header.version;
  }
  const h = d.counter.history;
  for (let i = 1; i < h.length; i++) if (h[i] < h[i - 1]) return `counter decreased ${h[i - 1]} → ${h[i]}`;
  const sec = d.lastBoot.info.securityCounter ?? 0;
  if (d.counter.value > sec) return `counter ${d.counter.value} ran ahead of the running image's ${sec}`;
  const agent = w.agents.get(d);
  if (!agent || agent.state !== "idle") return `wedged: the agent is ${agent ? `in "${agent.state}"` : "not running"} after ${RUN_MS / 60_000} virtual minutes`;
  const storage = openStorage(d.storage, undefined, AGENT_JOURNAL_SPACE);
  const m = new SettingsManager(storage.settings, defaultSettings("other"));
  if (m.source !== "saved" || !sameSettings(m.saved, provisioned(w))) return "settings changed or lost";
  const log = new AuditLog(storage.audit);
  for (let i = log.first; i < log.count; i += 16) {
    const got = log.read(i, 16);
    const want = Math.min(16, log.count - i);
    if (got.length !== want || got.some((e, k) => e.seq !== i + k)) return `audit log has a hole near entry ${i}`;
  }
  // A cut says nothing against the release: a trial cut short is reverted as ROLLED_BACK (retryable) and the
  // release offered and installed again: exactly one final outcome is expected.
  // A trial without the cloud is retried a bounded number of times (TRIAL_NO_CLOUD_RETRY) before the final rollback.
  const outcome = w.cloud.reportsOf("dev", s.expect).filter((r) => !(r.event === "rolled-back" && (r.reason === Reason.ROLLED_BACK || r.reason === Reason.TRIAL_NO_CLOUD_RETRY)));
  if (outcome.length !== 1) return `${outcome.length} final "${s.expect}" reports (expected exactly one)`;
  const finalFailures = w.cloud.reportsOf("dev", "failed");
  if (s.expect === "committed" && finalFailures.length > 0 && w.cloud.reportsOf("dev", "committed").length !== 1) return "failed and never installed";
  return undefined;
}
