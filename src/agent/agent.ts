/**
 * The update agent: a frozen transition table over the update's states,
 * journaled in power-safe storage before every step that must survive a
 * reset, talking to the cloud only through the MQTT link and the protocol
 * of docs/protocol.md.
 *
 *   boot ─► idle ─offer─► checking ─► downloading ─► verifying ─► staged ─► installing ─► (reboot)
 *   boot ─► trial ─ack─► committed ─► idle          trial ─deadline─► (reboot unconfirmed: revert)
 *   boot ─► rolled-back ─► idle                     * ─fail─► failed ─► idle
 *
 * Preconditions the agent relies on: the target built the Platform; the
 * storage was opened with AGENT_JOURNAL_SPACE; the running image is valid
 * (the bootloader booted it).
 */
import type { Platform, TimerId } from "../../hal/types";
import { isOtaError, Reason, reasonName, type ReasonCode } from "../errors";
import { createKeyring, type Keyring } from "../crypto/keyring";
import { formatVersion, type ImageVersion } from "../image/format";
import { imageSignatureChecker } from "../image/signature";
import { readTrailer, setConfirmed, setPending } from "../image/trailer";
import { imageExtent, verifyImage } from "../image/verify";
import type { ChunkReply, Command, HeartbeatAck, StatusEvent } from "../protocol/messages";
import type { Storage } from "../store/layout";
import { AuditLog } from "../store/audit";
import { checkImageAgainstManifest, parseSignedManifest } from "../update/manifest";
import { checkPolicy, nextNewestIssuedAt, rememberRelease } from "../update/policy";
import type { AcceptedManifest } from "../update/types";
import { StateMachine, type Table } from "./fsm";
import { checkConfig, inWindow, type AgentConfig, type ResolvedConfig } from "./config";
import { CloudLink } from "./cloud";
import { ChunkFetcher } from "./fetch";
import { HttpFetcher } from "./http-fetch";
import { Journal, OUTCOME_EVENTS, Phase, type PhaseCode, type Session } from "./journal";
import { imageCapacity, openSink, type PayloadSink } from "./sink";
import { AgentAudit } from "./events";
import { Supervisor, type Activity, type ActivityName } from "./supervisor";
import { hashInSlices } from "./slice-hash";
import { equalBytes } from "../util/bytes";

export type AgentState =
  | "boot" | "idle" | "checking" | "downloading" | "verifying" | "staged" | "installing"
  | "trial" | "committed" | "rolled-back" | "failed";
export type AgentEvent =
  | "start" | "normal" | "resume-download" | "resume-staged" | "trial-boot" | "reverted" | "confirmed"
  | "offer" | "accept" | "refuse" | "downloaded" | "verified" | "ready" | "ack" | "trial-timeout"
  | "fail" | "abort" | "done";

type Row = { state: AgentState | "*"; event: AgentEvent; handler: (a: Agent, data: unknown) => boolean; next: AgentState | "*" };

const yes = () => true;

/** The transition table. Order matters: the first matching row wins. */
export const TRANSITIONS: Table<AgentState, AgentEvent, Agent> = Object.freeze(
  (
    [
      { state: "boot", event: "start", handler: (a) => a.reconcile(), next: "*" },
      { state: "boot", event: "normal", handler: (a) => a.goOnline(), next: "idle" },
      { state: "boot", event: "resume-download", handler: (a) => a.resumeDownload(), next: "downloading" },
      { state: "boot", event: "resume-staged", handler: (a) => a.goOnline(), next: "staged" },
      { state: "boot", event: "trial-boot", handler: (a) => a.beginTrial(), next: "trial" },
      { state: "boot", event: "reverted", handler: (a, d) => a.reportRollback(d as ReasonCode), next: "rolled-back" },
      { state: "boot", event: "confirmed", handler: (a) => a.finishCommit(), next: "committed" },
      { state: "idle", event: "offer", handler: (a, d) => a.checkOffer(d as Uint8Array), next: "checking" },
      { state: "checking", event: "accept", handler: (a) => a.startDownload(), next: "downloading" },
      { state: "checking", event: "refuse", handler: yes, next: "idle" },
      { state: "downloading", event: "downloaded", handler: (a) => a.verify(), next: "verifying" },
      { state: "verifying", event: "verified", handler: (a) => a.stage(), next: "staged" },
      { state: "staged", event: "ready", handler: (a) => a.install(), next: "installing" },
      { state: "trial", event: "ack", handler: (a) => a.commit(), next: "committed" },
      { state: "trial", event: "trial-timeout", handler: (a) => a.abandonTrial(), next: "failed" },
      { state: "downloading", event: "abort", handler: (a) => a.fail(Reason.ABORTED, "aborted by command"), next: "failed" },
      { state: "verifying", event: "abort", handler: (a) => a.fail(Reason.ABORTED, "aborted by command"), next: "failed" },
      { state: "staged", event: "abort", handler: (a) => a.fail(Reason.ABORTED, "aborted by command"), next: "failed" },
      { state: "*", event: "fail", handler: (a, d) => a.fail((d as { reason: ReasonCode }).reason, (d as { message: string }).message), next: "failed" },
      { state: "committed", event: "done", handler: (a) => a.forget(), next: "idle" },
      { state: "rolled-back", event: "done", handler: (a) => a.forget(), next: "idle" },
      { state: "failed", event: "done", handler: (a) => a.forget(), next: "idle" },
    ] as Row[]
  ).map((r) => Object.freeze(r)),
);

/** What the AT console and the heartbeat show of the agent. */
export interface AgentStatus {
  readonly state: AgentState;
  readonly progress: number;
  readonly lastReason: number;
  readonly runningVersion: ImageVersion;
  readonly runningSlot: 0 | 1;
  readonly target?: ImageVersion;
}

export class Agent {
  readonly config: ResolvedConfig;
  readonly journal: Journal;
  readonly audit: AgentAudit;
  readonly keyring: Keyring;
  private readonly fsm: StateMachine<AgentState, AgentEvent, Agent>;
  readonly cloud: CloudLink;

  // What the running image is (from the slot, at start).
  runningSlot: 0 | 1;
  runningVersion: ImageVersion = { major: 0, minor: 0, revision: 0, build: 0 };
  runningSha256: Uint8Array = new Uint8Array(32);

  private session: Session;
  private current: AcceptedManifest | undefined;
  private sink: PayloadSink | undefined;
  private fetcher: ChunkFetcher | HttpFetcher | undefined;
  private bytesFetched = 0;
  private elapsedBase = 0;
  private downloadStartedAt = 0;
  private sinceProgress = 0;
  private lastReason = 0;
  private trustedAt: { time: number; at: number } | undefined;
  readonly supervisor: Supervisor;
  private heartbeatActivity: Activity | undefined;
  private downloadActivity: Activity | undefined;
  private trialActivity: Activity | undefined;
  private trialTimer: TimerId | undefined;
  private stagedTimer: TimerId | undefined;

  constructor(readonly platform: Platform, config: AgentConfig, storage: Storage) {
    this.config = checkConfig(config);
    this.journal = new Journal(storage.journal);
    this.audit = new AgentAudit(new AuditLog(storage.audit), platform.clock, () => this.trustedTime());
    this.keyring = createKeyring(this.config.trustedKeys, platform.digest);
    this.runningSlot = platform.system.runningSlot();
    this.session = this.journal.session();
    this.fsm = new StateMachine<AgentState, AgentEvent, Agent>(TRANSITIONS, "boot", this as Agent, {
      onDrop: (s, e, why) => this.log(`drop ${e} in ${s}: ${why}`),
      onTransition: (from, to, e) => this.log(`${from} -${e}-> ${to}`),
    });
    this.supervisor = new Supervisor(platform.clock, platform.watchdog, {
      feedEveryMs: this.config.supervisorPeriodMs,
      onStuck: (name, overdue) => this.stuck(name, overdue),
    });
    this.cloud = new CloudLink(platform, this.config, () => this.heartbeat(), {
      onUp: () => {
        this.heartbeatActivity?.checkIn();
        if (this.fetcher instanceof ChunkFetcher) {
          this.downloadActivity?.end();
          this.downloadActivity = this.supervisor.register("download", this.config.downloadStallMs);
          this.fetcher.resume();
        }
      },
      onDown: (reason) => {
        // Offline, a download cannot progress: the link's own reconnect (supervised as "heartbeat") takes over.
        this.heartbeatActivity?.checkIn();
        if (this.fetcher instanceof ChunkFetcher) {
          this.fetcher.pause();
          this.downloadActivity?.end();
          this.downloadActivity = undefined;
        }
        this.log(`link down: ${reasonName(reason)}`);
      },
      onActivity: () => this.heartbeatActivity?.checkIn(),
      onAck: (ack) => this.onAck(ack),
      onOffer: (env) => this.fsm.post("offer", env),
      onChunk: (r) => this.onChunk(r),
      onCommand: (c) => this.onCommand(c),
      onBadMessage: (reason, topic) => this.log(`bad message on ${topic}: ${reasonName(reason)}`),
    });
  }

  /**
   * Start: arm the watchdog under the supervisor, hash the running image (in
   * slices: it is the base a delta must match), reconcile the journal, go.
   */
  start(): void {
    this.supervisor.start(this.config.watchdogTimeoutMs);
    if (this.platform.system.resetCause() === "watchdog") this.lastReason = Reason.WATCHDOG_RESET;
    this.platform.clock.setTimer(() => this.service(), 1000, 1000);
    this.heartbeatActivity = this.supervisor.register("heartbeat", this.heartbeatDeadline());
    const running = this.platform.flash.slots[this.runningSlot];
    const extent = imageExtent(running);
    this.runningVersion = extent.header.version;
    const hashing = this.supervisor.register("verify", this.config.verifyStallMs);
    hashInSlices({
      clock: this.platform.clock,
      digest: this.platform.digest,
      flash: running,
      lengths: [extent.totalLength],
      sliceBytes: this.config.hashSliceBytes,
      onSlice: () => hashing.checkIn(),
      done: ([sha]) => {
        hashing.end();
        this.runningSha256 = sha;
        this.fsm.post("start");
      },
      fail: (e) => {
        // The bootloader just validated this image: a read error here is a flash fault.
        hashing.end();
        this.log(`cannot read the running image: ${e.message}`);
        this.lastReason = e.code;
        this.fsm.post("start");
      },
    });
  }

  /** The heartbeat loop's software-watchdog deadline: three intervals, or a full backoff and connect. */
  private heartbeatDeadline(): number {
    return Math.max(3 * this.cloud.intervalS * 1000, this.config.backoffMaxMs + 60_000);
  }

  /** An activity missed its deadline: record it, then let the hardware watchdog reset the device. */
  private stuck(name: ActivityName, overdueMs: number): void {
    this.lastReason = Reason.ACTIVITY_STUCK;
    this.log(`software watchdog: ${name} is stuck (${overdueMs} ms past its deadline); starving the hardware watchdog`);
    this.audit.stuck(name, this.runningVersion);
  }

  get state(): AgentState {
    return this.fsm.state;
  }

  status(): AgentStatus {
    return {
      state: this.fsm.state,
      progress: this.progressPercent(),
      lastReason: this.lastReason,
      runningVersion: this.runningVersion,
      runningSlot: this.runningSlot,
      target: this.current?.manifest.version,
    };
  }

  /** Ask the cloud for offers now (AT+CHECK, the `check` command). */
  checkNow(): ReasonCode {
    if (!this.cloud.isUp) return Reason.SOCKET_CLOSED;
    this.cloud.heartbeatNow();
    return Reason.OK;
  }

  /** Stop the download or install in progress (AT+ABORT, the `abort` command). */
  abort(): ReasonCode {
    const s = this.fsm.state;
    if (s !== "downloading" && s !== "verifying" && s !== "staged") return Reason.BUSY;
    this.fsm.post("abort");
    return Reason.OK;
  }

  // ── boot ────────────────────────────────────────────────────────────────

  /** Decide what this boot is from the journal and what the bootloader booted. */
  reconcile(): boolean {
    const s = this.session;
    if (this.journal.corruption) this.log(`journal record unreadable (${reasonName(this.journal.corruption)}); treating as idle`);
    this.audit.boot(this.runningVersion, this.platform.system.resetCause());
    if (s.phase === Phase.IDLE) {
      if (s.outcome) this.sendOutcome(); // a reset came before the cloud acknowledged it
      return this.post("normal");
    }
    const accepted = this.reparse(s.envelope);
    this.currentEnvelope = s.envelope;
    if (!accepted) {
      this.journal.setSession({ ...s, phase: Phase.IDLE, envelope: new Uint8Array(0) });
      return this.post("normal");
    }
    this.current = accepted;
    const m = accepted.manifest;
    const runningIsNew = this.runningSlot === m.slot && formatVersion(this.runningVersion) === formatVersion(m.version);
    switch (s.phase as PhaseCode) {
      case Phase.DOWNLOADING:
        return this.post("resume-download");
      case Phase.STAGED:
        return this.post("resume-staged");
      case Phase.TRIAL_PENDING:
        if (!runningIsNew) return this.post("reverted", this.rollbackReason(s));
        if (readTrailer(this.platform.flash.slots[this.runningSlot]).imageOk === "set") return this.post("confirmed");
        return this.post("trial-boot");
      case Phase.CONFIRMED:
        // A reset while image_ok was being written: the bootloader reverted (rollbackReason says why).
        return runningIsNew ? this.post("confirmed") : this.post("reverted", this.rollbackReason(s));
      case Phase.TRIAL_FAILED:
        if (!runningIsNew) return this.post("reverted", (s.lastReason || Reason.TRIAL_FAILED) as ReasonCode);
        // The bootloader kept the image: confirmed after all, or (never under MCUboot's revert) booted again.
        if (readTrailer(this.platform.flash.slots[this.runningSlot]).imageOk === "set") return this.post("confirmed");
        return this.post("trial-boot");
      default:
        return this.post("normal");
    }
  }

  private rollbackReason(s: Session): ReasonCode {
    const cause = this.platform.system.resetCause();
    if (s.lastReason && s.lastReason !== Reason.OK) return s.lastReason as ReasonCode;
    // The firmware's own doing (a hang, a crash, a reboot without confirming) fails the release;
    // a power loss or reset button during the trial says nothing about it (ROLLED_BACK: it may be offered again).
    return cause === "watchdog" || cause === "software" ? Reason.TRIAL_FAILED : Reason.ROLLED_BACK;
  }

  goOnline(): boolean {
    this.cloud.start();
    if (this.session.phase === Phase.STAGED) this.scheduleStagedCheck(0);
    return true;
  }

  // ── offer ───────────────────────────────────────────────────────────────

  checkOffer(envelope: Uint8Array): boolean {
    const parsed = parseSignedManifest(envelope, this.keyring, this.platform.digest);
    if (!parsed.ok) return this.refuse(parsed.reason, parsed.message);
    const policy = this.journal.policy();
    const verdict = checkPolicy(parsed.accepted, {
      hardwareId: this.config.hardwareId,
      runningVersion: this.runningVersion,
      protectedCounter: this.platform.counter.read(),
      trustedTime: this.trustedTime(),
      newestIssuedAt: policy.newestIssuedAt,
      handledReleaseIds: policy.handled,
      runningImageSha256: this.runningSha256,
      slotSize: imageCapacity(this.inactiveSlot()),
      inactiveSlot: (1 - this.runningSlot) as 0 | 1,
    });
    if (!verdict.ok) return this.refuse(verdict.reason, verdict.message, parsed.accepted);
    this.current = parsed.accepted;
    this.currentEnvelope = envelope.slice();
    this.journal.setPolicy({ newestIssuedAt: nextNewestIssuedAt(policy.newestIssuedAt, parsed.accepted), handled: policy.handled });
    this.report("offer-accepted", Reason.OK);
    this.audit.event("OFFER_ACCEPTED", Reason.OK, this.runningVersion, parsed.accepted.manifest.version);
    return this.post("accept");
  }

  private refuse(reason: ReasonCode, message: string, accepted?: AcceptedManifest): boolean {
    this.lastReason = reason;
    this.log(`offer refused: ${reasonName(reason)}: ${message}`);
    this.cloud.report({ event: "offer-refused", version: this.runningVersion, target: accepted?.manifest.version, reason, releaseId: accepted?.releaseId });
    this.audit.event("OFFER_REFUSED", reason, this.runningVersion, accepted?.manifest.version);
    return this.post("refuse");
  }

  // ── download ────────────────────────────────────────────────────────────

  startDownload(): boolean {
    this.setSession(Phase.DOWNLOADING, Reason.OK);
    this.journal.setProgress({ payloadOffset: 0, bytesFetched: 0, elapsedMs: 0, checkpoint: new Uint8Array(0) });
    this.report("download-started", Reason.OK);
    this.audit.event("DOWNLOAD_STARTED", Reason.OK, this.runningVersion, this.current!.manifest.version);
    return this.openDownload({ payloadOffset: 0, bytesFetched: 0, elapsedMs: 0, checkpoint: new Uint8Array(0) });
  }

  resumeDownload(): boolean {
    const p = this.journal.progress();
    this.audit.event("DOWNLOAD_RESUMED", Reason.OK, this.runningVersion, this.current!.manifest.version);
    this.cloud.start();
    return this.openDownload(p);
  }

  private openDownload(p: { payloadOffset: number; bytesFetched: number; elapsedMs: number; checkpoint: Uint8Array }): boolean {
    const m = this.current!.manifest;
    const useHttps = m.fetch.url !== undefined && (m.fetch.stream === undefined || this.config.preferHttps);
    if (!useHttps && m.fetch.stream === undefined) return this.post("fail", { reason: Reason.DOWNLOAD_NOT_FOUND, message: "no MQTT stream or URL in the manifest" });
    try {
      this.sink = openSink(
        {
          manifest: m,
          activeSlot: this.platform.flash.slots[this.runningSlot],
          inactiveSlot: this.inactiveSlot(),
          digest: this.platform.digest,
          onDurable: (d) => this.saveProgress(d.payloadOffset, d.checkpoint),
        },
        p,
      );
    } catch (e) {
      if (!isOtaError(e)) throw e;
      return this.post("fail", { reason: e.code, message: e.message });
    }
    this.bytesFetched = p.bytesFetched;
    this.elapsedBase = p.elapsedMs;
    this.downloadStartedAt = this.platform.clock.now();
    this.sinceProgress = 0;
    const c = this.config;
    const counted = (n: number) => {
      this.bytesFetched += n;
      if (this.bytesFetched > m.maxDownload) throw new BudgetExceeded();
    };
    const done = () => this.post("downloaded");
    const fail = (reason: ReasonCode, message: string) => this.post("fail", { reason, message });
    if (useHttps) {
      this.fetcher = new HttpFetcher({
        net: this.platform.net,
        clock: this.platform.clock,
        url: m.fetch.url!,
        ca: c.server.ca,
        total: m.payload.length,
        start: this.sink.nextOffset,
        rangeBytes: c.httpRangeBytes,
        timeoutMs: c.chunkTimeoutMs,
        retries: c.chunkRetries,
        deliver: (data) => this.deliver(data),
        counted,
        done,
        fail,
        error: (e) => this.downloadError(e),
      });
      this.downloadActivity = this.supervisor.register("download", c.downloadStallMs);
      this.fetcher.resume();
      return true;
    }
    this.fetcher = new ChunkFetcher({
      clock: this.platform.clock,
      stream: m.fetch.stream!,
      total: m.payload.length,
      start: this.sink.nextOffset,
      chunkSize: c.chunkSize,
      window: c.chunkWindow,
      timeoutMs: c.chunkTimeoutMs,
      retries: c.chunkRetries,
      slowFloorBytes: c.slowFloorBytes,
      slowWindowMs: c.slowWindowMs,
      request: (offset, length) => this.cloud.requestChunk(m.fetch.stream!, offset, length),
      deliver: (data) => this.deliver(data),
      counted,
      done,
      fail,
    });
    if (this.cloud.isUp) {
      this.downloadActivity = this.supervisor.register("download", this.config.downloadStallMs);
      this.fetcher.resume();
    }
    return true;
  }

  private deliver(data: Uint8Array): void {
    this.downloadActivity?.checkIn();
    this.sink!.write(data);
    this.sinceProgress += data.length;
    if (this.current!.manifest.payload.kind === "full" && this.sinceProgress >= this.config.progressEveryBytes) {
      const d = this.sink!.durable();
      this.saveProgress(d.payloadOffset, d.checkpoint);
    }
  }

  private saveProgress(payloadOffset: number, checkpoint: Uint8Array): void {
    this.sinceProgress = 0;
    this.journal.setProgress({ payloadOffset, bytesFetched: this.bytesFetched, elapsedMs: this.elapsedMs(), checkpoint });
  }

  private elapsedMs(): number {
    return this.elapsedBase + (this.platform.clock.now() - this.downloadStartedAt);
  }

  private onChunk(r: ChunkReply): void {
    if (!(this.fetcher instanceof ChunkFetcher) || this.fsm.state !== "downloading") return;
    try {
      this.fetcher.onReply(r);
    } catch (e) {
      this.downloadError(e);
    }
  }

  /** An error from the sink or the budget while bytes were delivered: the attempt ends with its reason. */
  private downloadError(e: unknown): void {
    if (e instanceof BudgetExceeded) return void this.post("fail", { reason: Reason.DOWNLOAD_BUDGET, message: `over the budget of ${this.current!.manifest.maxDownload} bytes` });
    if (!isOtaError(e)) throw e;
    this.post("fail", { reason: e.code, message: e.message });
  }

  // ── verify, stage, install ──────────────────────────────────────────────

  /**
   * The payload is all in: finish the sink, then check the slot as MCUboot
   * will (hash, key, signature) and against the manifest (length, version,
   * security counter, SHA-256 of the whole image) — hashing in slices.
   */
  verify(): boolean {
    const m = this.current!.manifest;
    const slot = this.inactiveSlot();
    let extent;
    try {
      this.sink!.finish();
      extent = imageExtent(slot);
    } catch (e) {
      if (!isOtaError(e)) throw e;
      return this.post("fail", { reason: e.code, message: e.message });
    } finally {
      this.downloadActivity?.end();
      this.downloadActivity = undefined;
      this.fetcher?.stop();
      this.fetcher = undefined;
      this.sink = undefined;
    }
    const activity = this.supervisor.register("verify", this.config.verifyStallMs);
    const ext = extent;
    hashInSlices({
      clock: this.platform.clock,
      digest: this.platform.digest,
      flash: slot,
      lengths: [ext.hashedLength, ext.totalLength],
      sliceBytes: this.config.hashSliceBytes,
      onSlice: () => activity.checkIn(),
      fail: (e) => {
        activity.end();
        this.fsm.post("fail", { reason: e.code, message: e.message });
      },
      done: ([mcubootHash, imageHash]) => {
        activity.end();
        if (this.fsm.state !== "verifying") return; // aborted meanwhile
        const result = verifyImage(slot, { digest: this.platform.digest, hash: mcubootHash, checkSignature: imageSignatureChecker(this.keyring) });
        if (!result.ok) return this.fsm.post("fail", { reason: result.reason, message: `image check: ${result.message}` });
        const v = result.info.header.version;
        const same =
          ext.totalLength === m.image.length &&
          equalBytes(imageHash, m.image.sha256) &&
          formatVersion(v) === formatVersion(m.version) &&
          (result.info.securityCounter ?? 0) === m.securityCounter;
        if (!same) return this.fsm.post("fail", { reason: Reason.MANIFEST_IMAGE_MISMATCH, message: "image differs from the manifest" });
        this.report("download-done", Reason.OK);
        this.audit.event("DOWNLOAD_DONE", Reason.OK, this.runningVersion, m.version);
        this.fsm.post("verified");
      },
    });
    return true;
  }

  stage(): boolean {
    this.setSession(Phase.STAGED, Reason.OK);
    this.report("verified", Reason.OK);
    this.audit.event("VERIFIED", Reason.OK, this.runningVersion, this.current!.manifest.version);
    this.scheduleStagedCheck(0);
    return true;
  }

  private scheduleStagedCheck(delay: number): void {
    if (this.stagedTimer !== undefined) this.platform.clock.clearTimer(this.stagedTimer);
    this.stagedTimer = this.platform.clock.setTimer(() => {
      this.stagedTimer = undefined;
      if (this.fsm.state !== "staged") return;
      const why = this.preconditions();
      if (why === Reason.OK) this.fsm.post("ready");
      else {
        this.lastReason = why;
        this.scheduleStagedCheck(this.config.preconditionRetryMs);
      }
    }, delay);
  }

  /** Supply voltage, maintenance window, busy: Reason.OK or why not now. */
  preconditions(): ReasonCode {
    const c = this.config;
    if (c.minSupplyMv > 0 && this.platform.power.supplyMillivolts() < c.minSupplyMv) return Reason.LOW_SUPPLY;
    if (c.maintenanceWindow) {
      const t = this.trustedTime();
      if (t === 0 || !inWindow(c.maintenanceWindow, Math.floor((t % 86400) / 60))) return Reason.NOT_IN_WINDOW;
    }
    if (c.isBusy?.()) return Reason.BUSY;
    return Reason.OK;
  }

  install(): boolean {
    const m = this.current!.manifest;
    // Journal first: after the reboot the agent must know it asked for this trial.
    this.setSession(Phase.TRIAL_PENDING, Reason.OK);
    setPending(this.inactiveSlot(), false);
    this.audit.event("INSTALLED", Reason.OK, this.runningVersion, m.version);
    this.log(`rebooting into ${formatVersion(m.version)} for its trial`);
    // Let the reports so far reach the cloud first (bounded: a dead link does not hold the reboot).
    this.cloud.whenDrained(REBOOT_DRAIN_MS, () => this.platform.system.reboot());
    return true;
  }

  // ── trial, commit, rollback ─────────────────────────────────────────────

  beginTrial(): boolean {
    const s = this.session;
    if (s.trialBoots >= 1) {
      // MCUboot gives a trial one boot; a second one means it was reset mid-trial: give up now.
      this.setSession(Phase.TRIAL_FAILED, Reason.TRIAL_LIMIT);
      this.platform.system.reboot();
    }
    this.journal.setSession({ ...s, trialBoots: s.trialBoots + 1 });
    this.session = this.journal.session();
    this.audit.event("TRIAL_STARTED", Reason.OK, this.current!.manifest.version, this.current!.manifest.version);
    this.trialTimer = this.platform.clock.setTimer(() => this.fsm.post("trial-timeout"), this.config.trialDeadlineMs);
    // Backstop: the trial timer above must fire; if the agent is wedged, the watchdog resets (and MCUboot reverts).
    this.trialActivity = this.supervisor.register("trial", this.config.trialDeadlineMs + 2 * this.config.supervisorPeriodMs + 1000);
    this.cloud.start();
    return true;
  }

  commit(): boolean {
    if (this.trialTimer !== undefined) this.platform.clock.clearTimer(this.trialTimer);
    this.trialActivity?.end();
    this.setSession(Phase.CONFIRMED, Reason.OK);
    setConfirmed(this.platform.flash.slots[this.runningSlot]);
    return this.finishCommit();
  }

  /** After image_ok: raise the counter, close the session. Idempotent across resets. */
  finishCommit(): boolean {
    const m = this.current!.manifest;
    setConfirmed(this.platform.flash.slots[this.runningSlot]);
    if (this.platform.counter.read() < m.securityCounter) this.platform.counter.advance(m.securityCounter);
    this.audit.event("COMMITTED", Reason.OK, m.version, m.version);
    this.closeSession(Reason.OK, true, "committed");
    if (!this.cloud.isUp) this.cloud.start();
    return this.post("done");
  }

  abandonTrial(): boolean {
    this.lastReason = Reason.TRIAL_NO_CLOUD;
    this.setSession(Phase.TRIAL_FAILED, Reason.TRIAL_NO_CLOUD);
    this.audit.event("FAILED", Reason.TRIAL_NO_CLOUD, this.current!.manifest.version, this.current!.manifest.version);
    this.platform.system.reboot();
  }

  reportRollback(reason: ReasonCode): boolean {
    const m = this.current!.manifest;
    this.lastReason = reason;
    this.audit.event("ROLLED_BACK", reason, m.version, this.runningVersion);
    this.closeSession(reason, reason !== Reason.ROLLED_BACK, "rolled-back");
    this.cloud.start();
    return this.post("done");
  }

  fail(reason: ReasonCode, message: string): boolean {
    this.log(`update failed: ${reasonName(reason)}: ${message}`);
    this.lastReason = reason;
    this.fetcher?.stop();
    this.fetcher = undefined;
    this.sink = undefined;
    this.downloadActivity?.end();
    this.downloadActivity = undefined;
    if (this.stagedTimer !== undefined) this.platform.clock.clearTimer(this.stagedTimer);
    // Integrity failures are final for this release; network ones may be offered again.
    const final = !(reason === Reason.DOWNLOAD_STALLED || reason === Reason.DOWNLOAD_DEADLINE || reason === Reason.ABORTED || reason === Reason.SOCKET_CLOSED);
    this.audit.event(reason === Reason.ABORTED ? "ABORTED" : "FAILED", reason, this.runningVersion, this.current?.manifest.version);
    this.closeSession(reason, final, reason === Reason.ABORTED ? "aborted" : "failed");
    return this.post("done");
  }

  // ── helpers ─────────────────────────────────────────────────────────────

  /**
   * End the release: remember it (replay defence) when `handled`, go idle,
   * and keep its outcome in the journal until the cloud acknowledged the report.
   */
  private closeSession(reason: ReasonCode, handled: boolean, event: (typeof OUTCOME_EVENTS)[number]): void {
    const m = this.current;
    if (handled && m) {
      const p = this.journal.policy();
      this.journal.setPolicy({ newestIssuedAt: p.newestIssuedAt, handled: rememberRelease(p.handled, m.releaseId) });
    }
    const outcome = m ? { event: OUTCOME_EVENTS.indexOf(event), reason, target: m.manifest.version, releaseId: m.releaseId } : undefined;
    this.journal.setSession({ phase: Phase.IDLE, lastReason: reason, trialBoots: 0, envelope: new Uint8Array(0), outcome });
    this.session = this.journal.session();
    this.sendOutcome();
  }

  /** Report the journaled outcome; forget it once the broker acknowledged it. */
  private sendOutcome(): void {
    const o = this.session.outcome;
    if (!o) return;
    const sent = this.session;
    this.cloud.report(
      { event: OUTCOME_EVENTS[o.event], version: this.runningVersion, target: o.target, reason: o.reason, releaseId: o.releaseId },
      (code) => {
        if (code !== Reason.OK || this.session !== sent) return;
        this.journal.setSession({ ...sent, outcome: undefined });
        this.session = this.journal.session();
      },
    );
  }

  private setSession(phase: PhaseCode, reason: ReasonCode): void {
    const trialBoots = phase === Phase.TRIAL_PENDING ? 0 : this.session.trialBoots;
    this.journal.setSession({ phase, lastReason: reason, trialBoots, envelope: this.currentEnvelope });
    this.session = this.journal.session();
  }

  /** The release is finished with: nothing is current any more. */
  forget(): boolean {
    this.current = undefined;
    this.currentEnvelope = new Uint8Array(0);
    return true;
  }

  /** The signed envelope of the release being handled (from the offer, or the journal after a reset). */
  private currentEnvelope: Uint8Array = new Uint8Array(0);

  private reparse(envelope: Uint8Array): AcceptedManifest | undefined {
    const r = parseSignedManifest(envelope, this.keyring, this.platform.digest);
    if (!r.ok) {
      this.log(`journaled manifest no longer verifies: ${reasonName(r.reason)}`);
      return undefined;
    }
    return r.accepted;
  }

  private inactiveSlot() {
    return this.platform.flash.slots[1 - this.runningSlot];
  }

  private post(event: AgentEvent, data?: unknown): boolean {
    this.fsm.post(event, data);
    return true;
  }

  private onAck(ack: HeartbeatAck): void {
    this.trustedAt = { time: ack.time, at: this.platform.clock.now() };
    if (this.fsm.state === "trial") this.fsm.post("ack");
  }

  private onCommand(c: Command): void {
    this.log(`command ${c.cmd} (${c.id})`);
    if (c.cmd === "check") this.checkNow();
    else if (c.cmd === "abort") this.abort();
  }

  /** Unix seconds from the last acknowledged heartbeat, advanced by the monotonic clock; 0 when unknown. */
  trustedTime(): number {
    if (!this.trustedAt) return 0;
    return this.trustedAt.time + Math.floor((this.platform.clock.now() - this.trustedAt.at) / 1000);
  }

  private service(): void {
    if (this.fsm.state === "downloading" && this.fetcher && this.elapsedMs() > this.config.downloadDeadlineMs) {
      this.post("fail", { reason: Reason.DOWNLOAD_DEADLINE, message: `download took longer than ${this.config.downloadDeadlineMs} ms` });
    }
  }

  private progressPercent(): number {
    if (this.fsm.state !== "downloading" || !this.fetcher || !this.current) return 0;
    return Math.min(100, Math.floor((this.fetcher.next * 100) / Math.max(1, this.current.manifest.payload.length)));
  }

  private heartbeat() {
    const s = this.status();
    return {
      hardwareId: this.config.hardwareId,
      version: this.runningVersion,
      slot: this.runningSlot,
      imageSha256: this.runningSha256,
      state: s.state,
      progress: s.progress,
      reason: this.lastReason,
      uptime: Math.floor(this.platform.clock.now() / 1000) >>> 0,
      supplyMv: Math.min(0xffff, this.platform.power.supplyMillivolts()),
    };
  }

  private report(event: StatusEvent, reason: ReasonCode): void {
    const m = this.current;
    this.cloud.report({ event, version: this.runningVersion, target: m?.manifest.version, reason, releaseId: m?.releaseId });
  }

  log(line: string): void {
    this.config.log?.(`[agent ${this.config.deviceId}] ${line}`);
  }
}

/** Longest wait for the report queue to drain before a reboot, ms. */
export const REBOOT_DRAIN_MS = 5000;

/** Thrown inside the fetcher when the data budget is spent. */
class BudgetExceeded extends Error {}
