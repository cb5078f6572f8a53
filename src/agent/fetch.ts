/**
 * The MQTT chunk stream fetcher: asks the server for `[offset, offset+length)`
 * of a stream, keeps a bounded window of requests outstanding, delivers the
 * bytes in order, re-asks what is not answered in time, and gives up with a
 * reason code when the server cannot succeed (unknown stream, a range it
 * refuses, a size that disagrees with the manifest) or the link is too slow.
 *
 * Bounds: `window` requests outstanding and at most `window` early chunks
 * held (window × chunkSize bytes); `retries` re-asks of one offset; the slow
 * floor is checked every `slowWindowMs`. Replies for other streams or stale
 * offsets are counted (data budget) and dropped.
 */
import type { Clock, TimerId } from "../../hal/types";
import { Reason, type ReasonCode } from "../errors";
import { ChunkStatus, type ChunkReply } from "../protocol/messages";

export interface FetchOptions {
  readonly clock: Clock;
  readonly stream: string;
  /** Total payload length (the manifest's). */
  readonly total: number;
  /** First offset needed. */
  readonly start: number;
  readonly chunkSize: number;
  readonly window: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly slowFloorBytes: number;
  readonly slowWindowMs: number;
  /** Send one chunk request (the link may be down: then it is simply lost and re-asked). */
  readonly request: (offset: number, length: number) => void;
  /** False while the consumer is still working off what was delivered: no new requests until `kick`. */
  readonly ready?: () => boolean;
  /** In-order bytes starting at the fetcher's `next`; may throw (the sink's errors end the fetch). */
  readonly deliver: (data: Uint8Array) => void;
  /** Every payload byte received, duplicates included (the data budget). */
  readonly counted: (bytes: number) => void;
  readonly done: () => void;
  readonly fail: (reason: ReasonCode, message: string) => void;
}

interface Outstanding {
  offset: number;
  length: number;
  sentAt: number;
}

export class ChunkFetcher {
  /** Next payload offset to deliver. */
  next: number;
  private outstanding: Outstanding[] = [];
  private early: { offset: number; data: Uint8Array }[] = [];
  private retriesAtHead = 0;
  private ticker: TimerId | undefined;
  private paused = true;
  private stopped = false;
  private windowStart = 0;
  private windowBytes = 0;

  constructor(private readonly o: FetchOptions) {
    this.next = o.start;
  }

  /** Start (or restart after the link came back). */
  resume(): void {
    if (this.stopped) return;
    this.paused = false;
    this.outstanding = [];
    this.retriesAtHead = 0;
    this.windowStart = this.o.clock.now();
    this.windowBytes = 0;
    if (this.ticker === undefined) {
      const period = Math.max(50, Math.min(this.o.timeoutMs, this.o.slowWindowMs) >> 1);
      this.ticker = this.o.clock.setTimer(() => this.tick(), period, period);
    }
    if (this.next >= this.o.total) return this.finish();
    this.fill();
  }

  /** The link went down: nothing is outstanding any more; time-outs stop counting. */
  pause(): void {
    this.paused = true;
    this.outstanding = [];
    this.early = [];
  }

  stop(): void {
    this.stopped = true;
    this.paused = true;
    if (this.ticker !== undefined) this.o.clock.clearTimer(this.ticker);
    this.ticker = undefined;
    this.outstanding = [];
    this.early = [];
  }

  /** Bytes held in early chunks (RAM). */
  get heldBytes(): number {
    let n = 0;
    for (const e of this.early) n += e.data.length;
    return n;
  }

  /** A chunk reply for this device arrived. */
  onReply(r: ChunkReply): void {
    if (this.stopped || r.stream !== this.o.stream) return;
    if (r.status === ChunkStatus.UNKNOWN_STREAM) return this.failWith(Reason.DOWNLOAD_NOT_FOUND, `the server has no stream ${r.stream}`);
    if (r.status === ChunkStatus.OUT_OF_RANGE) return this.failWith(Reason.DOWNLOAD_NOT_FOUND, `the server refuses offset ${r.offset}`);
    if (r.status !== ChunkStatus.OK) return; // BUSY: the timeout re-asks
    this.o.counted(r.data.length);
    if (r.total !== 0 && r.total !== this.o.total) return this.failWith(Reason.DOWNLOAD_SIZE, `server says ${r.total} bytes, manifest ${this.o.total}`);
    if (r.data.length === 0 || r.offset + r.data.length > this.o.total) return this.failWith(Reason.DOWNLOAD_SIZE, `chunk ${r.offset}+${r.data.length} outside the stream`);
    if (this.paused) return;
    if (r.offset > this.next) {
      if (this.early.length < this.o.window && !this.early.some((e) => e.offset === r.offset)) this.early.push({ offset: r.offset, data: r.data.slice() });
      return;
    }
    if (r.offset + r.data.length <= this.next) return; // stale duplicate
    this.accept(r.data.subarray(this.next - r.offset));
    // drain early chunks that are now contiguous (bounded by the window)
    for (let progress = true; progress && !this.stopped; ) {
      progress = false;
      for (let i = 0; i < this.early.length; i++) {
        const e = this.early[i];
        if (e.offset <= this.next) {
          this.early.splice(i, 1);
          if (e.offset + e.data.length > this.next) this.accept(e.data.subarray(this.next - e.offset));
          progress = true;
          break;
        }
      }
    }
    if (this.stopped) return;
    if (this.next >= this.o.total) return this.finish();
    this.fill();
  }

  private accept(data: Uint8Array): void {
    try {
      this.o.deliver(data);
    } catch (e) {
      this.stop();
      throw e;
    }
    this.next += data.length;
    this.windowBytes += data.length;
    this.retriesAtHead = 0;
    this.outstanding = this.outstanding.filter((q) => q.offset + q.length > this.next);
  }

  /** The consumer is ready for more: ask for it. */
  kick(): void {
    if (this.stopped || this.paused) return;
    this.fill();
  }

  private fill(): void {
    if (this.o.ready && !this.o.ready()) return;
    let end = this.outstanding.length ? this.outstanding[this.outstanding.length - 1].offset + this.outstanding[this.outstanding.length - 1].length : this.next;
    if (end < this.next) end = this.next;
    while (this.outstanding.length < this.o.window && end < this.o.total) {
      const length = Math.min(this.o.chunkSize, this.o.total - end);
      this.outstanding.push({ offset: end, length, sentAt: this.o.clock.now() });
      this.o.request(end, length);
      end += length;
    }
  }

  private tick(): void {
    if (this.stopped || this.paused) return;
    const now = this.o.clock.now();
    const head = this.outstanding[0];
    if (head && now - head.sentAt >= this.o.timeoutMs) {
      if (++this.retriesAtHead > this.o.retries) return this.failWith(Reason.DOWNLOAD_STALLED, `no answer for offset ${head.offset} after ${this.o.retries} re-asks`);
      // re-ask the whole window from the head
      this.outstanding = [];
      this.fill();
    }
    if (this.o.slowFloorBytes > 0 && now - this.windowStart >= this.o.slowWindowMs) {
      if (this.windowBytes < this.o.slowFloorBytes) {
        return this.failWith(Reason.DOWNLOAD_STALLED, `${this.windowBytes} bytes in ${now - this.windowStart} ms is below the floor`);
      }
      this.windowStart = now;
      this.windowBytes = 0;
    }
  }

  private finish(): void {
    this.stop();
    this.o.done();
  }

  private failWith(reason: ReasonCode, message: string): void {
    this.stop();
    this.o.fail(reason, message);
  }
}
