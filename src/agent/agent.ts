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
import { isOtaError, OtaError, Reason, reasonName, type ReasonCode } from "../errors";
import { createKeyring, type Keyring } from "../crypto/keyring";
import { formatVersion, type ImageVersion } from "../image/format";
import { readTrailer, setConfirmed, setPending } from "../image/trailer";
import { imageExtent } from "../image/verify";
import type { Command, HeartbeatAck, StatusEvent } from "../protocol/messages";
import type { Storage } from "../store/layout";
import { AuditLog } from "../store/audit";
import { parseSignedManifest } from "../update/manifest";
import { checkPolicy } from "../update/policy";
import { acceptKeySet, decodeKeySetState, DeviceTrust, encodeKeySetState, parseSignedKeySet, sameKeySet, type KeySet } from "../update/keyset";
import { claimedTime, parseSignedTime } from "../update/time-statement";
import { TrustedTime } from "./trusted-time";
import {
  acceptRevocation,
  checkRevoked,
  decodeRevocationState,
  encodeRevocationState,
  parseSignedRevocation,
  sameRevocation,
  whyRevoked,
  type RevocationRecord,
} from "../update/revocation";
import type { AcceptedManifest } from "../update/types";
import { StateMachine } from "./fsm";
import { isRetryable, noCloudPauseMs, restartsAfresh, rollbackVerdict, RETRY_PAUSE_MAX_MS, RETRY_PAUSE_MIN_MS } from "./retry";
import { equalBytes } from "../util/bytes";
import { TRANSITIONS, type AgentEvent, type AgentState } from "./transitions";

export { TRANSITIONS, type AgentEvent, type AgentState } from "./transitions";
import { checkConfig, inWindow, type AgentConfig, type ResolvedConfig } from "./config";
import { CloudLink } from "./cloud";
import { Download, type DownloadContext } from "./download";
import { identityDecryptionKey } from "./decryption-key";
import { softwareCipher } from "../crypto/cipher";
import { verifySlot } from "./verify-slot";
import { decideBoot } from "./boot-decision";
import { Journal, Phase, type Progress } from "./journal";
import { ReleaseSession } from "./release-session";
import { imageCapacity } from "./sink";
import { HeaderHold, headerUnitErased, headerUnitLength } from "../update/slot-writer";
import { AgentAudit } from "./events";
import { Supervisor, type Activity, type ActivityName } from "./supervisor";
import { hashInSlices } from "./slice-hash";

/** What the AT console and the heartbeat show of the agent. */
export interface AgentStatus {
  readonly state: AgentState;
  readonly progress: number;
  readonly lastReason: number;
  readonly runningVersion: ImageVersion;
  readonly runningSlot: 0 | 1;
  readonly target?: ImageVersion;
  /** While downloading: bytes of the new image written into the inactive slot, of its length. */
  readonly installed?: { readonly bytes: number; readonly of: number };
}

export class Agent {
  readonly config: ResolvedConfig;
  readonly journal: Journal;
  readonly audit: AgentAudit;
  /** The device keyring: MCUboot's image key(s); without a key set, also the manifest and revocation signers. */
  readonly keyring: Keyring;
  /** Who may sign manifests, revocation records and time (the keyring, the root keys, the key set in force). */
  readonly trust: DeviceTrust;
  /** Trusted time: only signed sources move it, only forward (src/agent/trusted-time.ts). */
  readonly time: TrustedTime;
  private readonly fsm: StateMachine<AgentState, AgentEvent, Agent>;
  readonly cloud: CloudLink;

  // What the running image is (from the slot, at start).
  runningSlot: 0 | 1;
  runningVersion: ImageVersion = { major: 0, minor: 0, revision: 0, build: 0 };
  runningSha256: Uint8Array = new Uint8Array(32);

  private readonly release: ReleaseSession;
  /** The newest accepted revocation record, if any. */
  private revocation: RevocationRecord | undefined;
  private runningRevoked = false;
  private runningSecurityCounter = 0;
  private runningLength = 0;
  private download: Download | undefined;
  private lastReason = 0;
  /** The server's plain (unsigned) ack time and when it came: log stamps and the maintenance window, never expiry. */
  private ackTime: { time: number; at: number } | undefined;
  /** The last time statement refusal logged (one audit entry per reason in a row, not one per heartbeat). */
  private lastTimeRefusal = 0;
  readonly supervisor: Supervisor;
  private heartbeatActivity: Activity | undefined;
  private heartbeatDeadlineMs = 0;
  private trialActivity: Activity | undefined;
  private trialTimer: TimerId | undefined;
  private stagedTimer: TimerId | undefined;
  /** The verified new image's header unit, held in RAM until the trial is requested. */
  private held: HeaderHold | undefined;
  /** Bumped when a verification is superseded (abort, failure): a late verdict is dropped. */
  private verifyAttempt = 0;
  /** After a retryable failure: offers of that release are ignored until `until`. */
  private retryGate: { releaseId: Uint8Array; until: number; pause: number } | undefined;
  /** Encrypted releases: the cipher and the device key's reader (src/agent/decryption-key.ts). */
  private readonly decryption: DownloadContext["decryption"];

  /**
   * @param storage the mounted storage partition (journal and audit spaces)
   * @param auditLog the audit log over `storage.audit` when the firmware opened one already
   *   (one AuditLog per space: two would overwrite each other's entries)
   */
  constructor(readonly platform: Platform, config: AgentConfig, storage: Storage, auditLog?: AuditLog) {
    this.config = checkConfig(config);
    this.journal = new Journal(storage.journal, storage.trust);
    this.decryption = { cipher: platform.cipher ?? softwareCipher, privateKey: identityDecryptionKey(storage.identity) };
    this.audit = new AgentAudit(auditLog ?? new AuditLog(storage.audit), platform.clock, () => this.trustedTime());
    this.keyring = createKeyring(this.config.trustedKeys, platform.digest);
    this.trust = new DeviceTrust(this.keyring, createKeyring(this.config.rootKeys, platform.digest), this.storedKeySet());
    this.time = new TrustedTime(() => platform.clock.now(), this.journal.policy().newestIssuedAt, (floor) => this.journal.setPolicy({ ...this.journal.policy(), newestIssuedAt: floor }));
    this.runningSlot = platform.system.runningSlot();
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
        this.download?.linkUp();
      },
      onDown: (reason) => {
        // Offline, a download cannot progress: the link's own reconnect (supervised as "heartbeat") takes over.
        this.heartbeatActivity?.checkIn();
        this.download?.linkDown();
        this.log(`link down: ${reasonName(reason)}`);
      },
      onActivity: () => this.heartbeatActivity?.checkIn(),
      onAck: (ack) => this.onAck(ack),
      onOffer: (env) => this.fsm.post("offer", env),
      onChunk: (r) => {
        if (this.fsm.state === "downloading") this.download?.onChunk(r);
      },
      onCommand: (c) => this.onCommand(c),
      onRevocation: (env) => this.onRevocation(env),
      onKeySet: (env) => this.onKeySet(env),
      onBadMessage: (reason, topic) => this.log(`bad message on ${topic}: ${reasonName(reason)}`),
    });
    this.release = new ReleaseSession(this.journal, this.cloud, (line) => this.log(line));
  }

  /** The release in hand. */
  private get current(): AcceptedManifest | undefined {
    return this.release.current;
  }

  /**
   * Start: arm the watchdog under the supervisor, hash the running image (in
   * slices: it is the base a delta must match), reconcile the journal, go.
   */
  start(): void {
    this.supervisor.start(this.config.watchdogTimeoutMs);
    if (this.platform.system.resetCause() === "watchdog") this.lastReason = Reason.WATCHDOG_RESET;
    this.platform.clock.setTimer(() => this.service(), 1000, 1000);
    this.heartbeatDeadlineMs = this.heartbeatDeadline();
    this.heartbeatActivity = this.supervisor.register("heartbeat", this.heartbeatDeadlineMs);
    const running = this.platform.flash.slots[this.runningSlot];
    const extent = imageExtent(running);
    this.runningVersion = extent.header.version;
    this.runningSecurityCounter = extent.securityCounter ?? 0;
    this.runningLength = extent.totalLength;
    // The targets' MCUboot has no hardware counter (TARGET_MCUBOOT): the agent does what
    // boot_update_hw_rollback_protection would, for a confirmed running image (MCUboot validated it).
    if (readTrailer(running).imageOk === "set" && this.runningSecurityCounter > this.platform.counter.read()) {
      this.platform.counter.advance(this.runningSecurityCounter);
    }
    const held = this.journal.policy().revocation;
    if (held && held.length > 0) {
      try {
        this.revocation = decodeRevocationState(held);
      } catch (e) {
        if (!isOtaError(e)) throw e;
        this.log(`stored revocation record unreadable: ${e.message}`);
      }
    }
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
        this.checkRunningRevoked();
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
      ...(this.fsm.state === "downloading" && this.download && this.current
        ? { installed: { bytes: this.download.sink.imageWritten, of: this.current.manifest.image.length } }
        : {}),
    };
  }

  /** The supervision bounds in force (AT+OTABOUNDS): what the software and hardware watchdogs enforce. */
  bounds(): readonly (readonly [string, number])[] {
    const c = this.config;
    return Object.freeze([
      ["watchdog", c.watchdogTimeoutMs],
      ["period", c.supervisorPeriodMs],
      ["heartbeat", this.heartbeatDeadline()],
      ["download", c.downloadStallMs],
      ["verify", c.verifyStallMs],
      ["trial", c.trialDeadlineMs],
      ["deadline", c.downloadDeadlineMs],
      ["slice", c.hashSliceBytes],
    ] as const);
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
    const s = this.release.session;
    if (this.journal.corruption) this.log(`journal record unreadable (${reasonName(this.journal.corruption)}); treating as idle`);
    this.audit.boot(this.runningVersion, this.platform.system.resetCause());
    if (s.phase === Phase.IDLE) {
      if (s.outcome) this.release.sendOutcome(this.runningVersion); // a reset came before the cloud acknowledged it
      return this.post("normal");
    }
    const accepted = this.release.restore(this.trust, this.platform.digest);
    if (!accepted) return this.post("normal");
    const m = accepted.manifest;
    const runningIsNew = this.runningSlot === m.slot && formatVersion(this.runningVersion) === formatVersion(m.version);
    const d = decideBoot({
      session: s,
      runningIsNew,
      imageOk: runningIsNew && readTrailer(this.platform.flash.slots[this.runningSlot]).imageOk === "set",
      resetCause: this.platform.system.resetCause(),
      installCut: !runningIsNew && s.phase === Phase.TRIAL_PENDING && this.installWasCut(),
    });
    return this.post(d.event, d.reason);
  }

  /**
   * A reset fell inside `install`, after the trailer asked for the trial and
   * before the header unit was programmed: the trailer magic is good, nothing
   * was tried (copy_done unset), the header unit is still erased, and the
   * journal holds the header. (After MCUboot's revert the whole slot is erased.)
   */
  private installWasCut(): boolean {
    const slot = this.inactiveSlot();
    const t = readTrailer(slot);
    const h = this.journal.progress().header;
    return t.magic === "good" && t.copyDone === "unset" && headerUnitErased(slot) && h !== undefined && h.length === headerUnitLength(slot);
  }

  /** Staged before the reset: take the held header back from the journal. */
  resumeStaged(): boolean {
    const slot = this.inactiveSlot();
    const h = this.journal.progress().header;
    if (h === undefined || h.length !== headerUnitLength(slot)) {
      this.goOnline();
      return this.post("fail", { reason: Reason.JOURNAL_CORRUPT, message: "staged image without its journaled header" });
    }
    this.held = new HeaderHold(slot, h);
    return this.goOnline();
  }

  /** Finish an install a reset cut short: program the header unit, reboot into the trial. */
  resumeInstall(): boolean {
    this.held = new HeaderHold(this.inactiveSlot(), this.journal.progress().header);
    this.held.commit();
    this.log(`install resumed: header programmed, rebooting into ${formatVersion(this.current!.manifest.version)}`);
    this.platform.system.reboot();
  }

  goOnline(): boolean {
    this.cloud.start();
    if (this.release.session.phase === Phase.STAGED) this.scheduleStagedCheck(0);
    return true;
  }

  // ── offer ───────────────────────────────────────────────────────────────

  checkOffer(envelope: Uint8Array): boolean {
    const parsed = parseSignedManifest(envelope, this.trust, this.platform.digest);
    if (!parsed.ok) return this.refuse(parsed.reason, parsed.message);
    const pm = parsed.accepted.manifest;
    const gate = this.retryGate;
    if (gate && equalBytes(gate.releaseId, parsed.accepted.releaseId) && this.platform.clock.now() < gate.until) {
      // A retryable failure a moment ago: not again yet (bounded attempts; no report, nothing refused for good).
      this.log(`offer of the same release ignored for ${gate.until - this.platform.clock.now()} ms more (retry pause)`);
      return this.post("refuse");
    }
    const revoked = checkRevoked(this.revocation, { version: pm.version, securityCounter: pm.securityCounter, imageSha256: pm.image.sha256 });
    if (revoked !== Reason.OK) return this.refuse(revoked, `release revoked (${whyRevoked(this.revocation, { version: pm.version, securityCounter: pm.securityCounter, imageSha256: pm.image.sha256 })})`, parsed.accepted);
    const policy = this.journal.policy();
    const verdict = checkPolicy(parsed.accepted, {
      hardwareId: this.config.hardwareId,
      runningVersion: this.runningVersion,
      protectedCounter: this.platform.counter.read(),
      // Signed time only: a running clock from a time statement, else nothing but the floor.
      trustedTime: this.time.running ? this.time.now() : 0,
      newestIssuedAt: this.time.now(),
      handledReleaseIds: policy.handled,
      runningImageSha256: this.runningSha256,
      slotSize: imageCapacity(this.inactiveSlot()),
      inactiveSlot: (1 - this.runningSlot) as 0 | 1,
      // What it announces is what it takes: a delta in another codec is refused before any download.
      codecs: this.config.decodeCost.codecs.map((c) => c.codec),
    });
    if (!verdict.ok) return this.refuse(verdict.reason, verdict.message, parsed.accepted);
    this.release.begin(parsed.accepted, envelope);
    this.time.observeIssuedAt(pm.issuedAt);
    this.report("offer-accepted", Reason.OK);
    this.audit.event("OFFER_ACCEPTED", Reason.OK, this.runningVersion, parsed.accepted.manifest.version);
    return this.post("accept");
  }

  private refuse(reason: ReasonCode, message: string, accepted?: AcceptedManifest): boolean {
    // The time that found it expired is stored first: after any reset the same release is refused again.
    if (reason === Reason.MANIFEST_EXPIRED) this.time.save();
    this.lastReason = reason;
    this.log(`offer refused: ${reasonName(reason)}: ${message}`);
    this.cloud.report({ event: "offer-refused", version: this.runningVersion, target: accepted?.manifest.version, reason, releaseId: accepted?.releaseId });
    this.audit.event("OFFER_REFUSED", reason, this.runningVersion, accepted?.manifest.version);
    return this.post("refuse");
  }

  // ── download ────────────────────────────────────────────────────────────

  startDownload(): boolean {
    this.release.setPhase(Phase.DOWNLOADING, Reason.OK);
    // The same release offered again after a retryable failure goes on from its journaled
    // progress: no flash work repeated, and its time and bytes keep counting (deadline, budget).
    const held = this.journal.progress();
    // Only while no install was attempted on the slot (its trailer still erased).
    const same =
      held.release !== undefined &&
      held.release.length === 32 &&
      equalBytes(held.release, this.current!.releaseId) &&
      readTrailer(this.inactiveSlot()).magic === "unset";
    const p: Progress = same ? held : { payloadOffset: 0, bytesFetched: 0, elapsedMs: 0, checkpoint: new Uint8Array(0), release: this.current!.releaseId, noCloudTrials: this.noCloudTrials() };
    if (!same) this.journal.setProgress(p);
    this.report("download-started", Reason.OK);
    this.audit.event("DOWNLOAD_STARTED", Reason.OK, this.runningVersion, this.current!.manifest.version);
    return this.openDownload(p);
  }

  resumeDownload(): boolean {
    const p = this.journal.progress();
    this.audit.event("DOWNLOAD_RESUMED", Reason.OK, this.runningVersion, this.current!.manifest.version);
    this.cloud.start();
    return this.openDownload(p);
  }

  private openDownload(p: Progress): boolean {
    const m = this.current!.manifest;
    if (m.fetch.stream === undefined && m.fetch.url === undefined) return this.post("fail", { reason: Reason.DOWNLOAD_NOT_FOUND, message: "no MQTT stream or URL in the manifest" });
    try {
      this.download = new Download(
        {
          platform: this.platform,
          config: this.config,
          journal: this.journal,
          supervisor: this.supervisor,
          cloud: this.cloud,
          runningSlot: this.runningSlot,
          running: { length: this.runningLength, sha256: this.runningSha256 },
          releaseId: this.current!.releaseId,
          decryption: this.decryption,
          done: () => this.fsm.post("downloaded"),
          fail: (reason, message) => this.fsm.post("fail", { reason, message }),
        },
        m,
        p,
      );
    } catch (e) {
      if (!isOtaError(e)) throw e;
      return this.post("fail", { reason: e.code, message: e.message });
    }
    return true;
  }

  // ── verify, stage, install ──────────────────────────────────────────────

  /**
   * The payload is all in: finish the sink, then check the slot as MCUboot
   * will (hash, key, signature) and against the manifest (length, version,
   * security counter, SHA-256 of the whole image) — hashing in slices.
   */
  verify(): boolean {
    const m = this.current!.manifest;
    const hold = this.download!.hold;
    try {
      this.download!.sink.finish();
      // The header unit goes to the journal with the progress: staged across resets, programmed at install.
      const header = hold.bytes();
      if (header === undefined) throw new OtaError(Reason.IMAGE_TRUNCATED, "image shorter than its header");
      this.journal.setProgress({ ...this.journal.progress(), header });
    } catch (e) {
      if (!isOtaError(e)) throw e;
      return this.post("fail", { reason: e.code, message: e.message });
    } finally {
      this.lastPeakMemory = Math.max(this.lastPeakMemory, this.download?.peakMemory ?? 0);
      this.download?.stop();
      this.download = undefined;
    }
    this.held = hold;
    const attempt = ++this.verifyAttempt;
    // The verdict may come synchronously (a header that does not parse) while this
    // handler still runs, before the machine is in "verifying": posted events queue
    // behind the transition, so the verdict is never dropped.
    verifySlot({
      platform: this.platform,
      slot: hold,
      manifest: m,
      keyring: this.keyring,
      supervisor: this.supervisor,
      sliceBytes: this.config.hashSliceBytes,
      stallMs: this.config.verifyStallMs,
      done: (reason, message) => {
        if (attempt !== this.verifyAttempt) return; // aborted or failed meanwhile
        if (reason !== Reason.OK) return this.fsm.post("fail", { reason, message });
        this.report("download-done", Reason.OK);
        this.audit.event("DOWNLOAD_DONE", Reason.OK, this.runningVersion, m.version);
        this.fsm.post("verified");
      },
    });
    return true;
  }

  stage(): boolean {
    this.release.setPhase(Phase.STAGED, Reason.OK);
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
    this.release.setPhase(Phase.TRIAL_PENDING, Reason.OK);
    // Trailer first, header unit last: until the header lands the slot is no boot candidate.
    setPending(this.inactiveSlot(), false);
    this.held!.commit();
    this.audit.event("INSTALLED", Reason.OK, this.runningVersion, m.version);
    this.log(`rebooting into ${formatVersion(m.version)} for its trial`);
    // Let the reports so far reach the cloud first (bounded: a dead link does not hold the reboot).
    this.cloud.whenDrained(REBOOT_DRAIN_MS, () => this.platform.system.reboot());
    return true;
  }

  // ── trial, commit, rollback ─────────────────────────────────────────────

  beginTrial(): boolean {
    const s = this.release.session;
    if (s.trialBoots >= 1) {
      // MCUboot gives a trial one boot; a second one means it was reset mid-trial: give up now.
      this.release.setPhase(Phase.TRIAL_FAILED, Reason.TRIAL_LIMIT);
      this.platform.system.reboot();
    }
    this.release.countTrialBoot();
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
    this.release.setPhase(Phase.CONFIRMED, Reason.OK);
    setConfirmed(this.platform.flash.slots[this.runningSlot]);
    return this.finishCommit();
  }

  /** After image_ok: raise the counter, close the session. Idempotent across resets. */
  finishCommit(): boolean {
    const m = this.current!.manifest;
    setConfirmed(this.platform.flash.slots[this.runningSlot]);
    if (this.platform.counter.read() < m.securityCounter) this.platform.counter.advance(m.securityCounter);
    this.audit.event("COMMITTED", Reason.OK, m.version, m.version);
    this.release.close(Reason.OK, true, "committed", this.runningVersion);
    if (!this.cloud.isUp) this.cloud.start();
    return this.post("done");
  }

  abandonTrial(): boolean {
    this.lastReason = Reason.TRIAL_NO_CLOUD;
    this.release.setPhase(Phase.TRIAL_FAILED, Reason.TRIAL_NO_CLOUD);
    this.audit.event("FAILED", Reason.TRIAL_NO_CLOUD, this.current!.manifest.version, this.current!.manifest.version);
    this.platform.system.reboot();
  }

  reportRollback(why: ReasonCode): boolean {
    const m = this.current!.manifest;
    const id = this.current!.releaseId;
    // A trial without the cloud is retried a bounded number of times (src/agent/retry.ts); the count is journaled.
    const trials = this.noCloudTrials() + (why === Reason.TRIAL_NO_CLOUD ? 1 : 0);
    const { reason, final } = rollbackVerdict(why, trials);
    // The slot was tried (or its install cut): a next attempt starts from byte 0.
    this.journal.setProgress({ payloadOffset: 0, bytesFetched: 0, elapsedMs: 0, checkpoint: new Uint8Array(0), release: id, noCloudTrials: trials });
    if (reason === Reason.TRIAL_NO_CLOUD_RETRY) {
      // RAM only: a reset forgets the pause, never the count.
      const pause = noCloudPauseMs(trials);
      this.retryGate = { releaseId: id, until: this.platform.clock.now() + pause, pause };
      this.log(`trial ${trials} of ${formatVersion(m.version)} found no cloud: retrying it after ${pause} ms`);
    }
    this.lastReason = reason;
    this.audit.event("ROLLED_BACK", reason, m.version, this.runningVersion);
    this.release.close(reason, final, "rolled-back", this.runningVersion);
    this.cloud.start();
    return this.post("done");
  }

  /** Trials of the current release that rolled back without the cloud (journaled with the progress). */
  private noCloudTrials(): number {
    const p = this.journal.progress();
    return p.release !== undefined && p.release.length === 32 && equalBytes(p.release, this.current!.releaseId) ? (p.noCloudTrials ?? 0) : 0;
  }

  fail(reason: ReasonCode, message: string): boolean {
    this.log(`update failed: ${reasonName(reason)}: ${message}`);
    this.lastReason = reason;
    this.download?.stop();
    this.download = undefined;
    this.verifyAttempt++;
    this.held = undefined;
    if (this.stagedTimer !== undefined) this.platform.clock.clearTimer(this.stagedTimer);
    const final = !isRetryable(reason);
    const id = this.current?.releaseId;
    if (!final && id && reason !== Reason.ABORTED) {
      // Retry pause for this release: doubling from RETRY_PAUSE_MIN_MS up to RETRY_PAUSE_MAX_MS (RAM: a reset forgets it).
      const pause = this.retryGate && equalBytes(this.retryGate.releaseId, id) ? Math.min(RETRY_PAUSE_MAX_MS, this.retryGate.pause * 2) : RETRY_PAUSE_MIN_MS;
      this.retryGate = { releaseId: id, until: this.platform.clock.now() + pause, pause };
    }
    // A spent deadline, or bytes damaged on the way, start the next attempt afresh.
    if (restartsAfresh(reason)) {
      const trials = id ? this.noCloudTrials() : 0;
      this.journal.setProgress({ payloadOffset: 0, bytesFetched: 0, elapsedMs: 0, checkpoint: new Uint8Array(0), ...(trials > 0 ? { release: id, noCloudTrials: trials } : {}) });
    }
    this.audit.event(reason === Reason.ABORTED ? "ABORTED" : "FAILED", reason, this.runningVersion, this.current?.manifest.version);
    this.release.close(reason, final, reason === Reason.ABORTED ? "aborted" : "failed", this.runningVersion);
    return this.post("done");
  }

  // ── helpers ─────────────────────────────────────────────────────────────

  /** The release is finished with: nothing is current any more. */
  forget(): boolean {
    this.release.forget();
    return true;
  }

  private inactiveSlot() {
    return this.platform.flash.slots[1 - this.runningSlot];
  }

  private post(event: AgentEvent, data?: unknown): boolean {
    this.fsm.post(event, data);
    return true;
  }

  private onAck(ack: HeartbeatAck): void {
    this.ackTime = { time: ack.time, at: this.platform.clock.now() };
    if (ack.statement) this.onTimeStatement(ack.statement);
    // The server may have set another interval: the heartbeat loop's deadline follows it
    // (a fixed one shorter than the new interval would starve the watchdog: a reset loop).
    const deadline = this.heartbeatDeadline();
    if (this.heartbeatActivity && deadline !== this.heartbeatDeadlineMs) {
      this.heartbeatActivity.end();
      this.heartbeatActivity = this.supervisor.register("heartbeat", deadline);
      this.heartbeatDeadlineMs = deadline;
    }
    if (this.fsm.state === "trial") this.fsm.post("ack");
  }

  /**
   * A signed revocation record from the cloud: verified, refused when older
   * than the one held (or forged, or for other hardware), persisted when
   * newer, then the running firmware is checked against it.
   */
  private onRevocation(envelope: Uint8Array): void {
    const r = parseSignedRevocation(envelope, this.trust, this.platform.digest);
    const accept = r.ok ? acceptRevocation(this.revocation, r.record, this.config.hardwareId, this.trust.epoch) : r.reason;
    if (!r.ok || accept !== Reason.OK) {
      this.log(`revocation refused: ${reasonName(accept)}${r.ok ? "" : `: ${r.message}`}`);
      this.audit.event("REVOCATION_REFUSED", accept, this.runningVersion);
      return;
    }
    if (this.revocation && sameRevocation(this.revocation, r.record)) return; // a re-send
    const policy = this.journal.policy();
    this.journal.setPolicy({ ...policy, revocation: encodeRevocationState(r.record) });
    this.revocation = r.record;
    this.time.observeIssuedAt(r.record.issuedAt);
    this.audit.event("REVOCATION_ACCEPTED", Reason.OK, this.runningVersion);
    this.log(`revocation record ${r.record.sequence} accepted`);
    this.checkRunningRevoked();
    this.cloud.heartbeatNow();
  }

  /** Is the running firmware itself revoked? Then report it: the cloud answers with a replacement. */
  private checkRunningRevoked(): void {
    const sec = this.runningSecurityCounter;
    const verdict = checkRevoked(this.revocation, { version: this.runningVersion, securityCounter: sec, imageSha256: this.runningSha256 });
    const was = this.runningRevoked;
    this.runningRevoked = verdict !== Reason.OK;
    if (this.runningRevoked && !was) {
      this.lastReason = Reason.REVOKED;
      this.log("the running firmware is revoked: asking for a replacement");
      this.cloud.report({ event: "revoked", version: this.runningVersion, reason: Reason.REVOKED });
      this.audit.event("RUNNING_REVOKED", Reason.REVOKED, this.runningVersion);
    }
  }

  /** The key set kept in the trust space, or undefined (none, or unreadable: logged). */
  private storedKeySet(): KeySet | undefined {
    const bytes = this.journal.keySet();
    if (!bytes || bytes.length === 0) return undefined;
    try {
      return decodeKeySetState(bytes, this.platform.digest);
    } catch (e) {
      if (!isOtaError(e)) throw e;
      this.log(`stored key set unreadable: ${e.message}`);
      return undefined;
    }
  }

  /**
   * A root-signed key set from the cloud: verified against the root keys,
   * refused unless newer by a bounded step (or the root's next epoch),
   * persisted, then put in force. A new epoch is the root's reset: time
   * restarts from the key set's issued-at.
   */
  private onKeySet(envelope: Uint8Array): void {
    const r = this.trust.roots.size === 0 ? undefined : parseSignedKeySet(envelope, this.trust.roots, this.platform.digest);
    const held = this.trust.keySet;
    const accept = r === undefined ? Reason.KEYSET_UNKNOWN_ROOT : r.ok ? acceptKeySet(held, r.keySet) : r.reason;
    if (!r || !r.ok || accept !== Reason.OK) {
      this.log(`key set refused: ${reasonName(accept)}${r && !r.ok ? `: ${r.message}` : ""}`);
      this.audit.event("KEYSET_REFUSED", accept, this.runningVersion);
      return;
    }
    if (held && sameKeySet(held, r.keySet)) return; // a re-send
    this.journal.setKeySet(encodeKeySetState(r.keySet));
    this.trust.install(r.keySet);
    if (r.keySet.epoch > (held?.epoch ?? 0)) this.time.reset(r.keySet.issuedAt);
    else this.time.observeIssuedAt(r.keySet.issuedAt);
    this.audit.event("KEYSET_ACCEPTED", Reason.OK, this.runningVersion);
    this.log(`key set ${r.keySet.epoch}.${r.keySet.sequence} accepted (${r.keySet.keys.length} keys, ${r.keySet.retired.length} retired)`);
    // A release in hand that the new key set no longer lets through stops before it is installed
    // (one already installed finishes its trial: its image was checked against MCUboot's key).
    const s = this.fsm.state;
    if (this.current && (s === "downloading" || s === "verifying" || s === "staged")) {
      const again = parseSignedManifest(this.release.session.envelope, this.trust, this.platform.digest);
      if (!again.ok) this.fsm.post("fail", { reason: again.reason, message: `key set ${r.keySet.epoch}.${r.keySet.sequence}: ${again.message}` });
    }
    this.cloud.heartbeatNow();
  }

  /** A signed time statement on an ack: moves trusted time forward, or is refused (logged, audited once per reason in a row). */
  private onTimeStatement(statement: Uint8Array): void {
    const claimed = claimedTime(statement);
    if (claimed !== undefined && !this.time.worthVerifying(claimed)) return; // nothing to learn: spare the ECDSA verify
    const t = parseSignedTime(statement, this.trust, this.platform.digest);
    const why = t.ok ? this.time.observeStatement(t.time) : t.reason;
    if (why === Reason.OK) {
      this.lastTimeRefusal = 0;
      return;
    }
    if (why === this.lastTimeRefusal) return;
    this.lastTimeRefusal = why;
    this.log(`time statement ignored: ${reasonName(why)}${t.ok ? ` (${t.time} < ${this.time.now()})` : `: ${t.message}`}`);
    if (why !== Reason.TIME_BEHIND) this.audit.event("TIME_REFUSED", why, this.runningVersion);
  }

  private onCommand(c: Command): void {
    this.log(`command ${c.cmd} (${c.id})`);
    if (c.cmd === "check") this.checkNow();
    else if (c.cmd === "abort") this.abort();
  }

  /**
   * Wall time for log stamps and the maintenance window, unix seconds: the signed
   * clock when a time statement came this boot, else the last plain ack time
   * advanced by the monotonic clock, else 0. Expiry never uses the plain ack
   * time: `checkOffer` takes only `this.time` (signed sources).
   */
  trustedTime(): number {
    if (this.time.running) return this.time.now();
    if (!this.ackTime) return 0;
    return this.ackTime.time + Math.floor((this.platform.clock.now() - this.ackTime.at) / 1000);
  }

  private service(): void {
    if (this.fsm.state === "downloading" && this.download && this.download.elapsedMs() > this.config.downloadDeadlineMs) {
      this.post("fail", { reason: Reason.DOWNLOAD_DEADLINE, message: `download took longer than ${this.config.downloadDeadlineMs} ms` });
    }
  }

  /** Peak working memory of the download in progress (or the last one of this boot), bytes. */
  get installPeakMemory(): number {
    return Math.max(this.lastPeakMemory, this.download?.peakMemory ?? 0);
  }
  private lastPeakMemory = 0;

  private progressPercent(): number {
    return this.fsm.state === "downloading" && this.download ? this.download.percent : 0;
  }

  private heartbeat() {
    const s = this.status();
    return {
      hardwareId: this.config.hardwareId,
      version: this.runningVersion,
      slot: this.runningSlot,
      imageSha256: this.runningSha256,
      state: this.runningRevoked && s.state === "idle" ? "revoked" : s.state,
      progress: s.progress,
      ...(this.revocation ? { revocation: this.revocation.sequence } : {}),
      ...(this.revocation?.epoch ? { revocationEpoch: this.revocation.epoch } : {}),
      ...(this.trust.keySet ? { keySet: { epoch: this.trust.keySet.epoch, sequence: this.trust.keySet.sequence } } : {}),
      reason: this.lastReason,
      uptime: Math.floor(this.platform.clock.now() / 1000) >>> 0,
      supplyMv: Math.min(0xffff, this.platform.power.supplyMillivolts()),
      decode: this.config.decodeCost,
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

