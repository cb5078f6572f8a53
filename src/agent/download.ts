/**
 * One download attempt of a release's payload: the sink (slot writer or
 * patcher) fed by a fetcher (MQTT chunk stream or HTTPS Range), with the data
 * budget, the overall deadline, progress journaling and the software
 * watchdog's "download" activity. Created fresh or from the journal's last
 * durable progress; ends by calling `done` or `fail` exactly once (or being
 * stopped).
 */
import type { Platform, TimerId } from "../../hal/types";
import { isOtaError, Reason, type ReasonCode } from "../errors";
import type { ChunkReply } from "../protocol/messages";
import type { ReleaseManifest } from "../update/types";
import type { CloudLink } from "./cloud";
import { stallLimitMs, type ResolvedConfig } from "./config";
import { ChunkFetcher } from "./fetch";
import { HttpFetcher } from "./http-fetch";
import type { Journal, Progress } from "./journal";
import { openSink, type PayloadSink, type SinkOptions } from "./sink";
import { HeaderHold, headerUnitLength } from "../update/slot-writer";
import type { Activity, Supervisor } from "./supervisor";

export interface DownloadContext {
  readonly platform: Platform;
  readonly config: ResolvedConfig;
  readonly journal: Journal;
  readonly supervisor: Supervisor;
  readonly cloud: CloudLink;
  readonly runningSlot: 0 | 1;
  /** The running image's length and SHA-256 (hashed in slices at boot). */
  readonly running: { readonly length: number; readonly sha256: Uint8Array };
  /** The release id the journaled progress is tagged with. */
  readonly releaseId: Uint8Array;
  /** For encrypted payloads: the cipher and the device's decryption key (see SinkOptions.decryption). */
  readonly decryption?: SinkOptions["decryption"];
  readonly done: () => void;
  readonly fail: (reason: ReasonCode, message: string) => void;
}

/** Thrown inside a fetcher when the data budget is spent. */
class BudgetExceeded extends Error {}

/** While no payload byte arrives, the download time is journaled at least this often (bounded flash wear). */
export const ELAPSED_SAVE_MS = 30_000;
/** A gap between payload bytes longer than this counts as stalled time. */
const STALL_GAP_MS = 1000;


export class Download {
  readonly sink: PayloadSink;
  /** The inactive slot with the new image's header unit held in RAM (journaled with the progress). */
  readonly hold: HeaderHold;
  private readonly fetcher: ChunkFetcher | HttpFetcher;
  private activity: Activity | undefined;
  private bytesFetched: number;
  private readonly elapsedBase: number;
  private readonly startedAt: number;
  private sinceProgress = 0;
  private ended = false;
  /** Last payload byte (or the start of supervision), virtual ms. */
  private lastProgressAt: number;
  private lastSavedAt: number;
  private readonly stalledBase: number;
  /** Carried through the progress records (the release's trials without the cloud, src/agent/retry.ts). */
  private readonly noCloudTrials: number;
  private stalledThisBoot = 0;
  private durablePoint: { payloadOffset: number; checkpoint: Uint8Array };
  private ticker: TimerId | undefined;
  /** A sink slice is scheduled (one per event-loop turn). */
  private sliceTimer: TimerId | undefined;
  /** The fetcher delivered everything; `done` waits for the sink's queue to drain. */
  private fetched = false;
  /** Peak of the install's working memory seen at a delivery (for the budget bench). */
  peakMemory = 0;

  /** @throws OtaError when the sink cannot be opened (flash, checkpoint). */
  constructor(
    private readonly x: DownloadContext,
    private readonly manifest: ReleaseManifest,
    progress: Progress,
  ) {
    const m = manifest;
    const c = x.config;
    const useHttps = m.fetch.url !== undefined && (m.fetch.stream === undefined || c.preferHttps);
    const inactive = x.platform.flash.slots[1 - x.runningSlot];
    const header = progress.header;
    this.hold = new HeaderHold(inactive, header !== undefined && header.length === headerUnitLength(inactive) ? header : undefined);
    this.sink = openSink(
      {
        manifest: m,
        activeSlot: x.platform.flash.slots[x.runningSlot],
        inactiveSlot: this.hold,
        digest: x.platform.digest,
        onDurable: (d) => this.saveProgress(d.payloadOffset, d.checkpoint),
        running: x.running,
        ...(x.decryption ? { decryption: x.decryption } : {}),
      },
      progress,
    );
    this.bytesFetched = progress.bytesFetched;
    this.elapsedBase = progress.elapsedMs;
    this.startedAt = x.platform.clock.now();
    this.lastProgressAt = this.startedAt;
    this.lastSavedAt = this.startedAt;
    this.stalledBase = progress.stalledMs ?? 0;
    this.noCloudTrials = progress.noCloudTrials ?? 0;
    this.durablePoint = { payloadOffset: progress.payloadOffset, checkpoint: progress.checkpoint };
    this.ticker = x.platform.clock.setTimer(() => this.tick(), c.supervisorPeriodMs, c.supervisorPeriodMs);
    const counted = (n: number) => {
      this.bytesFetched += n;
      if (this.bytesFetched > m.maxDownload) throw new BudgetExceeded();
    };
    const done = () => {
      this.fetched = true;
      if (!this.sinkBusy()) this.end(() => x.done());
    };
    // Ask for more payload only when the sink has taken what it was given (RAM: one window or range queued at most).
    const ready = () => this.sink.queued === 0;
    const fail = (reason: ReasonCode, message: string) => this.end(() => x.fail(reason, message));
    if (useHttps) {
      this.fetcher = new HttpFetcher({
        net: x.platform.net,
        clock: x.platform.clock,
        url: m.fetch.url!,
        ca: c.server.ca,
        total: m.payload.length,
        start: this.sink.nextOffset,
        rangeBytes: c.httpRangeBytes,
        timeoutMs: c.chunkTimeoutMs,
        retries: c.chunkRetries,
        stallMs: stallLimitMs(c),
        ready,
        slowFloorBytes: c.slowFloorBytes,
        slowWindowMs: c.slowWindowMs,
        deliver: (data) => this.deliver(data),
        counted,
        done,
        fail: (reason, message) => {
          if (reason === Reason.DOWNLOAD_STALLED) this.saveTime();
          fail(reason, message);
        },
        error: (e) => this.error(e),
      });
      this.activity = x.supervisor.register("download", c.downloadStallMs);
      this.fetcher.resume();
      return;
    }
    if (m.fetch.stream === undefined) throw new Error("Download: no stream and no URL (the manifest parser requires one)");
    this.fetcher = new ChunkFetcher({
      clock: x.platform.clock,
      stream: m.fetch.stream,
      total: m.payload.length,
      start: this.sink.nextOffset,
      chunkSize: c.chunkSize,
      window: c.chunkWindow,
      timeoutMs: c.chunkTimeoutMs,
      retries: c.chunkRetries,
      slowFloorBytes: c.slowFloorBytes,
      slowWindowMs: c.slowWindowMs,
      request: (offset, length) => x.cloud.requestChunk(m.fetch.stream!, offset, length),
      ready,
      deliver: (data) => this.deliver(data),
      counted,
      done,
      fail: (reason, message) => {
        if (reason === Reason.DOWNLOAD_STALLED) this.saveTime();
        fail(reason, message);
      },
    });
    if (x.cloud.isUp) this.linkUp();
  }

  /** Percent of the payload delivered. */
  get percent(): number {
    return Math.min(100, Math.floor((this.fetcher.next * 100) / Math.max(1, this.manifest.payload.length)));
  }

  /** Download time across boots, ms (stalled time included: it counts toward the deadline). */
  elapsedMs(): number {
    return this.elapsedBase + (this.x.platform.clock.now() - this.startedAt);
  }

  /** Time spent without payload bytes (gaps over a second), across boots, ms. */
  stalledMs(): number {
    const gap = this.x.platform.clock.now() - this.lastProgressAt;
    return this.stalledBase + this.stalledThisBoot + (gap > STALL_GAP_MS ? gap : 0);
  }

  /**
   * Every supervisor period: a download without a payload byte for the stall
   * limit (online or not: a link that keeps dropping is no progress) ends
   * (DOWNLOAD_STALLED, reported) before the software watchdog would reset; and the time spent is journaled every
   * ELAPSED_SAVE_MS, so a reset never loses more of it than that.
   */
  private tick(): void {
    if (this.ended) return;
    const now = this.x.platform.clock.now();
    // Online or not: a link that keeps dropping before any payload arrives is a stall too (no reset loop, a report).
    if (now - this.lastProgressAt >= stallLimitMs(this.x.config)) {
      this.saveTime();
      return this.end(() => this.x.fail(Reason.DOWNLOAD_STALLED, `no payload byte for ${now - this.lastProgressAt} ms`));
    }
    if (now - this.lastSavedAt >= ELAPSED_SAVE_MS) this.saveTime();
  }

  /** Journal the time spent at the last durable point (no flash work on the slot). */
  private saveTime(): void {
    this.saveProgress(this.durablePoint.payloadOffset, this.durablePoint.checkpoint);
  }

  /** The MQTT link came up: chunk streams (re)start, supervised. */
  linkUp(): void {
    if (this.ended || !(this.fetcher instanceof ChunkFetcher)) return;
    this.activity?.end();
    this.activity = this.x.supervisor.register("download", this.x.config.downloadStallMs);
    this.fetcher.resume();
  }

  /** The MQTT link went down: a chunk stream cannot progress (the link's reconnect is supervised instead). */
  linkDown(): void {
    if (!(this.fetcher instanceof ChunkFetcher)) return;
    this.fetcher.pause();
    this.activity?.end();
    this.activity = undefined;
  }

  onChunk(r: ChunkReply): void {
    if (this.ended || !(this.fetcher instanceof ChunkFetcher)) return;
    try {
      this.fetcher.onReply(r);
    } catch (e) {
      this.error(e);
    }
  }

  /** Ends the attempt without a verdict (abort, another failure). Idempotent. */
  stop(): void {
    this.ended = true;
    if (this.ticker !== undefined) this.x.platform.clock.clearTimer(this.ticker);
    this.ticker = undefined;
    if (this.sliceTimer !== undefined) this.x.platform.clock.clearTimer(this.sliceTimer);
    this.sliceTimer = undefined;
    this.fetcher.stop();
    this.activity?.end();
    this.activity = undefined;
  }

  private end(then: () => void): void {
    if (this.ended) return;
    this.stop();
    then();
  }

  /**
   * RAM the install holds now: the sink's buffers (patcher, inflater, slot
   * writer), early chunk replies held for ordering, the MQTT packet being decoded.
   */
  get workingMemory(): number {
    const held = this.fetcher instanceof ChunkFetcher ? this.fetcher.heldBytes : 0;
    return this.sink.workingMemory + held + this.x.cloud.bufferedBytes;
  }

  /** The sink has queued or pending work (a slice is scheduled). */
  private sinkBusy(): boolean {
    return this.sliceTimer !== undefined || this.sink.queued > 0;
  }

  /** Payload bytes arrived: queued in the sink, worked off one slice per event-loop turn. */
  private deliver(data: Uint8Array): void {
    this.peakMemory = Math.max(this.peakMemory, this.workingMemory + data.length);
    this.activity?.checkIn();
    const now = this.x.platform.clock.now();
    if (now - this.lastProgressAt > STALL_GAP_MS) this.stalledThisBoot += now - this.lastProgressAt;
    this.lastProgressAt = now;
    this.sink.write(data);
    this.sinceProgress += data.length;
    this.scheduleSlice();
  }

  private scheduleSlice(): void {
    if (this.sliceTimer !== undefined || this.ended) return;
    this.sliceTimer = this.x.platform.clock.setTimer(() => this.slice(), 0);
  }

  /**
   * One slice of sink work (bounded: see SINK_SLICE_BYTES), then back to the
   * event loop; when the queue is empty, the progress is journaled (full
   * images, every progressEveryBytes) and the fetcher asked for more.
   */
  private slice(): void {
    this.sliceTimer = undefined;
    if (this.ended) return;
    let more: boolean;
    try {
      more = this.sink.pump();
    } catch (e) {
      return this.error(e);
    }
    this.activity?.checkIn();
    this.lastProgressAt = this.x.platform.clock.now();
    this.slices++;
    if (more) return this.scheduleSlice();
    if (this.manifest.payload.kind === "full" && this.sinceProgress >= this.x.config.progressEveryBytes) {
      try {
        const d = this.sink.durable();
        this.saveProgress(d.payloadOffset, d.checkpoint);
      } catch (e) {
        return this.error(e);
      }
    }
    if (this.fetched) return this.end(() => this.x.done());
    this.fetcher.kick();
  }

  /** Sink slices run so far (for tests and the bench). */
  slices = 0;

  private saveProgress(payloadOffset: number, checkpoint: Uint8Array): void {
    this.sinceProgress = 0;
    this.durablePoint = { payloadOffset, checkpoint };
    this.lastSavedAt = this.x.platform.clock.now();
    this.x.journal.setProgress({
      payloadOffset,
      bytesFetched: this.bytesFetched,
      elapsedMs: this.elapsedMs(),
      stalledMs: this.stalledMs(),
      checkpoint,
      header: this.hold.bytes() ?? new Uint8Array(0),
      release: this.x.releaseId,
      noCloudTrials: this.noCloudTrials,
    });
  }

  /** An error from the sink or the budget while bytes were delivered: the attempt ends with its reason. */
  private error(e: unknown): void {
    if (e instanceof BudgetExceeded) return this.end(() => this.x.fail(Reason.DOWNLOAD_BUDGET, `over the budget of ${this.manifest.maxDownload} bytes`));
    if (!isOtaError(e)) throw e;
    this.end(() => this.x.fail(e.code, e.message));
  }
}
