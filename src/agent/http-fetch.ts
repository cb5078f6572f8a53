/**
 * The HTTPS Range download path: the payload fetched from any HTTPS server or
 * CDN that honours Range, `rangeBytes` at a time on one kept-alive
 * connection, in order, through the same delivery and budget hooks as the
 * MQTT chunk fetcher. A server answer that cannot succeed (4xx: unknown file,
 * refused range) ends the attempt; transient failures (5xx, a dropped or
 * silent connection) are retried a bounded number of times with a growing
 * pause; a size that disagrees with the manifest ends it.
 *
 * Bounds: one request at a time; `retries` consecutive failures; the HTTP
 * client's own limits (head size, redirects, silence).
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
  readonly deliver: (data: Uint8Array) => void;
  readonly counted: (bytes: number) => void;
  readonly done: () => void;
  readonly fail: (reason: ReasonCode, message: string) => void;
  /** Errors thrown by `deliver`/`counted` (the sink's): the caller decides. */
  readonly error: (e: unknown) => void;
}

export class HttpFetcher {
  next: number;
  private readonly client: HttpClient;
  private failures = 0;
  private stopped = false;
  private retryTimer: TimerId | undefined;

  constructor(private readonly o: HttpFetchOptions) {
    this.next = o.start;
    this.client = new HttpClient({ net: o.net, clock: o.clock, ca: o.ca, timeoutMs: o.timeoutMs, maxRedirects: 3 });
  }

  resume(): void {
    if (this.stopped || this.client.busy || this.retryTimer !== undefined) return;
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
    this.client.close();
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
    if (++this.failures > this.o.retries) return this.failWith(Reason.DOWNLOAD_STALLED, `${this.failures - 1} retries failed (last: HTTP ${status || code})`);
    const pause = Math.min(60_000, 1000 * 2 ** (this.failures - 1));
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
