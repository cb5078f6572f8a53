/**
 * The HTTPS Range download path: the payload fetched from any HTTPS server or
 * CDN that honours Range, `rangeBytes` at a time on one kept-alive
 * connection, in order, through the same delivery and budget hooks as the
 * MQTT chunk fetcher. A server answer that cannot succeed (4xx: unknown file,
 * refused range) ends the attempt; transient failures (5xx, a dropped or
 * silent connection) are retried a bounded number of times with a growing
 * pause; a size that disagrees with the manifest ends it.
 *
 * Bounds, all inside the supervisor's download deadline (the agent's config
 * check refuses settings where they are not): one request at a time;
 * `retries` consecutive failures, each ended by the client's silence or head
 * deadline (`timeoutMs`), with pauses of at most timeoutMs / 2 between them
 * (`httpRetryBudgetMs`); `stallMs` without a body byte ends the attempt
 * (header bytes keep a request alive but are not progress); fewer than
 * `slowFloorBytes` body bytes in a `slowWindowMs` window ends it too (a
 * slow drip), both as DOWNLOAD_STALLED.
 */
import type { Clock, Network, TimerId } from "../../hal/types";
import { Reason, type ReasonCode } from "../errors";
import { HttpClient } from "../protocol/http";

export interface HttpFetchOptions {
  readonly net: Network;
  readonly clock: Clock;
  readonly url: string;
  readonly ca?: string | Uint8Array;
  readonly total: number;
  readonly start: number;
  readonly rangeBytes: number;
  readonly timeoutMs: number;
  readonly retries: number;
  /** No body byte for this long ends the attempt (DOWNLOAD_STALLED); 0 = off. */
  readonly stallMs?: number;
  /** Slow-transfer floor: fewer body bytes than this per `slowWindowMs` ends the attempt (0 = off). */
  readonly slowFloorBytes?: number;
  readonly slowWindowMs?: number;
  readonly deliver: (data: Uint8Array) => void;
  readonly counted: (bytes: number) => void;
  readonly done: () => void;
  readonly fail: (reason: ReasonCode, message: string) => void;
  /** False while the consumer is still working off what was delivered: the next range waits for `kick`. */
  readonly ready?: () => boolean;
  /** Errors thrown by `deliver`/`counted` (the sink's): the caller decides. */
  readonly error: (e: unknown) => void;
}

/** Pause before the n-th retry (1-based): doubling from 1 s, at most timeoutMs / 2. */
export function httpRetryPauseMs(timeoutMs: number, n: number): number {
  return Math.min(Math.floor(timeoutMs / 2), 1000 * 2 ** Math.min(20, n - 1));
}

/**
 * The longest an HTTPS attempt can go without a body byte before its retries
 * are spent: retries + 1 requests each ended by the silence or head deadline,
 * and the pauses between them. Must be below the supervisor's download deadline.
 */
export function httpRetryBudgetMs(timeoutMs: number, retries: number): number {
  let total = (retries + 1) * timeoutMs;
  for (let n = 1; n <= retries; n++) total += httpRetryPauseMs(timeoutMs, n);
  return total;
}

export class HttpFetcher {
  next: number;
  private readonly client: HttpClient;
  private failures = 0;
  private stopped = false;
  private retryTimer: TimerId | undefined;
  private ticker: TimerId | undefined;
  private lastBodyAt: number;
  private windowStart: number;
  private windowBytes = 0;

  constructor(private readonly o: HttpFetchOptions) {
    this.next = o.start;
    this.client = new HttpClient({ net: o.net, clock: o.clock, ca: o.ca, timeoutMs: o.timeoutMs, headTimeoutMs: o.timeoutMs, maxRedirects: 3 });
    this.lastBodyAt = o.clock.now();
    this.windowStart = this.lastBodyAt;
  }

  /** The consumer is ready for more. */
  kick(): void {
    this.resume();
  }

  resume(): void {
    if (this.stopped || this.client.busy || this.retryTimer !== undefined) return;
    if (this.o.ready && !this.o.ready()) return;
    if (this.ticker === undefined && ((this.o.stallMs ?? 0) > 0 || (this.o.slowFloorBytes ?? 0) > 0)) {
      const period = Math.max(50, Math.min(this.o.stallMs || Infinity, this.o.slowWindowMs ?? Infinity, 5000) >> 2);
      this.lastBodyAt = this.o.clock.now();
      this.windowStart = this.lastBodyAt;
      this.ticker = this.o.clock.setTimer(() => this.tick(), period, period);
    }
    if (this.next >= this.o.total) return this.finish();
    const offset = this.next;
    const length = Math.min(this.o.rangeBytes, this.o.total - offset);
    try {
      this.client.get({
        url: this.o.url,
        offset,
        length,
        onData: (data, at) => this.onData(data, at),
        onDone: (code, info) => this.onDone(code, info),
      });
    } catch (e) {
      if (e instanceof RangeError) return this.failWith(Reason.DOWNLOAD_NOT_FOUND, e.message);
      throw e;
    }
  }

  /** Nothing to pause: HTTP does not ride the MQTT link. */
  pause(): void {}

  stop(): void {
    this.stopped = true;
    if (this.retryTimer !== undefined) this.o.clock.clearTimer(this.retryTimer);
    this.retryTimer = undefined;
    if (this.ticker !== undefined) this.o.clock.clearTimer(this.ticker);
    this.ticker = undefined;
    this.client.close();
  }

  /** The stall limit and the slow floor, checked a few times per window. */
  private tick(): void {
    if (this.stopped) return;
    const now = this.o.clock.now();
    if (this.o.ready && !this.o.ready()) {
      // the consumer is busy with what arrived: not a stall, not a slow link
      this.lastBodyAt = now;
      this.windowStart = now;
      this.windowBytes = 0;
      return;
    }
    const stallMs = this.o.stallMs ?? 0;
    if (stallMs > 0 && now - this.lastBodyAt >= stallMs) {
      return this.failWith(Reason.DOWNLOAD_STALLED, `no payload byte for ${now - this.lastBodyAt} ms`);
    }
    const floor = this.o.slowFloorBytes ?? 0;
    const window = this.o.slowWindowMs ?? 60_000;
    if (floor > 0 && now - this.windowStart >= window) {
      if (this.windowBytes < floor) return this.failWith(Reason.DOWNLOAD_STALLED, `${this.windowBytes} bytes in ${now - this.windowStart} ms is below the floor of ${floor}`);
      this.windowStart = now;
      this.windowBytes = 0;
    }
  }

  private onData(data: Uint8Array, at: number): void {
    if (this.stopped) return;
    try {
      this.o.counted(data.length);
      if (at + data.length <= this.next) return;
      const fresh = at < this.next ? data.subarray(this.next - at) : data;
      if (at > this.next) throw new Error("HttpFetcher: a gap in the body"); // the client delivers in order; never happens
      this.o.deliver(fresh.slice());
      this.next += fresh.length;
      if (fresh.length > 0) {
        this.lastBodyAt = this.o.clock.now();
        this.windowBytes += fresh.length;
      }
    } catch (e) {
      this.stop();
      this.o.error(e);
    }
  }

  private onDone(code: number, info: { total?: number; received: number; status?: number; detail?: string }): void {
    if (this.stopped) return;
    if (info.total !== undefined && info.total !== this.o.total) return this.failWith(Reason.DOWNLOAD_SIZE, `server says ${info.total} bytes, manifest ${this.o.total}`);
    if (code === Reason.OK) {
      this.failures = 0;
      return this.resume();
    }
    const status = info.status ?? 0;
    if (status >= 400 && status < 500) return this.failWith(Reason.DOWNLOAD_NOT_FOUND, `HTTP ${status} for ${this.o.url}`);
    // A request that delivered body bytes before it broke made progress: the retry count starts again
    // (the stall limit and the slow floor bound a server that always breaks after a few bytes).
    if (info.received > 0) this.failures = 0;
    if (++this.failures > this.o.retries) return this.failWith(Reason.DOWNLOAD_STALLED, `${this.failures - 1} retries failed (last: HTTP ${status || code})`);
    const pause = httpRetryPauseMs(this.o.timeoutMs, this.failures);
    this.retryTimer = this.o.clock.setTimer(() => {
      this.retryTimer = undefined;
      this.resume();
    }, pause);
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
