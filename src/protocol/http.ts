/**
 * HTTP/1.1 GET with Range over the HAL socket: the device's second download
 * path (any HTTPS server or CDN that honours Range). A streaming response
 * parser in explicit stages with fixed limits, and a client that checks what
 * came back (status, Content-Range, Content-Length) against what it asked
 * for, keeps the connection alive between ranges, and follows a bounded
 * number of redirects.
 *
 * Bounds: one status/header/chunk-size line ≤ 1024 bytes (a fixed buffer);
 * the whole head ≤ 8 KiB and ≤ 64 header lines; a chunk size ≤ 8 hex digits;
 * redirects ≤ maxRedirects (≤ 5); silence ≤ timeoutMs per request; the
 * whole head (connect, status line, headers) within headTimeoutMs of the
 * request's start, however the bytes trickle in (a server sending one header
 * byte every few seconds never resets this one); at most one retry on a
 * fresh connection when a reused one turns out closed.
 */
import type { Clock, Network, Socket, TimerId } from "../../hal/types";
import { OtaError, Reason } from "../errors";
import { utf8Encode } from "../util/bytes";

export const MAX_LINE = 1024;
export const MAX_HEAD_BYTES = 8192;
export const MAX_HEADER_LINES = 64;

export interface ResponseHead {
  /** 10 for HTTP/1.0, 11 for HTTP/1.1. */
  readonly version: 10 | 11;
  readonly status: number;
  /** The headers the client acts on (names lower-cased); the rest are skipped. */
  readonly contentLength?: number;
  readonly contentRange?: string;
  readonly chunked: boolean;
  /** The connection can carry another request after this response. */
  readonly keepAlive: boolean;
  readonly location?: string;
}

export interface ResponseSink {
  onHead?(head: ResponseHead): void;
  /** Body bytes (a view into the caller's input: copy to keep). */
  onBody?(data: Uint8Array): void;
}

const S_STATUS = 0;
const S_HEADERS = 1;
const S_BODY = 2;
const S_BODY_UNTIL_CLOSE = 3;
const S_CHUNK_SIZE = 4;
const S_CHUNK_DATA = 5;
const S_CHUNK_CRLF = 6;
const S_TRAILERS = 7;
const S_DONE = 8;
const S_FAILED = 9;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function latin1(b: Uint8Array, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(b[i]);
  return s;
}

/**
 * Streaming HTTP/1.x response parser. Never throws for bad input: `update`
 * returns Reason.OK or HTTP_MALFORMED / HTTP_TOO_LARGE, and stays failed.
 * A response to a GET: 1xx, 204 and 304 have no body.
 */
export class HttpResponseParser {
  private stage = S_STATUS;
  private readonly line = new Uint8Array(MAX_LINE);
  private lineLength = 0;
  private sawCR = false;
  private headBytes = 0;
  private headerLines = 0;
  private left = 0;
  private failure: number = Reason.OK;
  why = "";
  private version: 10 | 11 = 11;
  private status = 0;
  private contentLength: number | undefined;
  private contentRange: string | undefined;
  private chunked = false;
  private connection = "";
  private location: string | undefined;
  head: ResponseHead | undefined;

  get error(): number {
    return this.failure;
  }

  /** The response is complete (bytes after it are an error). */
  get done(): boolean {
    return this.stage === S_DONE;
  }

  /** Body length still expected (Content-Length mode), for the caller's checks. */
  get bodyLeft(): number {
    return this.stage === S_BODY ? this.left : 0;
  }

  update(data: Uint8Array, sink: ResponseSink): number {
    if (this.stage === S_FAILED) return this.failure;
    if (!(data instanceof Uint8Array)) return this.fail(Reason.HTTP_MALFORMED, "input is not bytes");
    let i = 0;
    while (i < data.length) {
      switch (this.stage) {
        case S_BODY: {
          const n = Math.min(this.left, data.length - i);
          this.left -= n;
          const piece = data.subarray(i, i + n);
          i += n;
          if (this.left === 0) this.stage = S_DONE;
          sink.onBody?.(piece);
          break;
        }
        case S_BODY_UNTIL_CLOSE: {
          const piece = data.subarray(i);
          i = data.length;
          sink.onBody?.(piece);
          break;
        }
        case S_CHUNK_DATA: {
          const n = Math.min(this.left, data.length - i);
          this.left -= n;
          const piece = data.subarray(i, i + n);
          i += n;
          if (this.left === 0) this.stage = S_CHUNK_CRLF;
          sink.onBody?.(piece);
          break;
        }
        case S_DONE:
          return this.fail(Reason.HTTP_MALFORMED, "bytes after the end of the response");
        default: {
          // A line-oriented stage: STATUS, HEADERS, CHUNK_SIZE, CHUNK_CRLF, TRAILERS.
          const b = data[i++];
          if (this.stage !== S_CHUNK_SIZE && this.stage !== S_CHUNK_CRLF) {
            if (++this.headBytes > MAX_HEAD_BYTES) return this.fail(Reason.HTTP_TOO_LARGE, `head over ${MAX_HEAD_BYTES} bytes`);
          }
          if (this.sawCR) {
            if (b !== 0x0a) return this.fail(Reason.HTTP_MALFORMED, "CR not followed by LF");
            this.sawCR = false;
            const rc = this.onLine(sink);
            if (rc !== Reason.OK) return rc;
            continue;
          }
          if (b === 0x0d) {
            this.sawCR = true;
            continue;
          }
          if (b === 0x0a) return this.fail(Reason.HTTP_MALFORMED, "bare LF");
          if (this.lineLength >= MAX_LINE) return this.fail(Reason.HTTP_TOO_LARGE, `line over ${MAX_LINE} bytes`);
          this.line[this.lineLength++] = b;
        }
      }
    }
    return Reason.OK;
  }

  /** The connection closed: OK when the response is complete (or delimited by the close). */
  finish(): number {
    if (this.stage === S_FAILED) return this.failure;
    if (this.stage === S_DONE) return Reason.OK;
    if (this.stage === S_BODY_UNTIL_CLOSE) {
      this.stage = S_DONE;
      return Reason.OK;
    }
    return this.fail(Reason.HTTP_TRUNCATED, "connection closed before the response ended");
  }

  private onLine(sink: ResponseSink): number {
    const text = latin1(this.line, this.lineLength);
    this.lineLength = 0;
    switch (this.stage) {
      case S_STATUS: {
        const m = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: [\t -~\x80-\xff]*)?$/.exec(text);
        if (!m) return this.fail(Reason.HTTP_MALFORMED, "bad status line");
        this.version = m[1] === "1" ? 11 : 10;
        this.status = +m[2];
        this.stage = S_HEADERS;
        return Reason.OK;
      }
      case S_HEADERS:
        if (text.length === 0) return this.endOfHead(sink);
        return this.header(text);
      case S_CHUNK_SIZE: {
        const m = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(text);
        if (!m) return this.fail(Reason.HTTP_MALFORMED, "bad chunk size");
        this.left = parseInt(m[1], 16);
        this.stage = this.left === 0 ? S_TRAILERS : S_CHUNK_DATA;
        return Reason.OK;
      }
      case S_CHUNK_CRLF:
        if (text.length !== 0) return this.fail(Reason.HTTP_MALFORMED, "chunk data longer than its size");
        this.stage = S_CHUNK_SIZE;
        return Reason.OK;
      case S_TRAILERS:
        if (text.length === 0) {
          this.stage = S_DONE;
          return Reason.OK;
        }
        if (++this.headerLines > MAX_HEADER_LINES) return this.fail(Reason.HTTP_TOO_LARGE, "too many trailer lines");
        return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(text) ? Reason.OK : this.fail(Reason.HTTP_MALFORMED, "bad trailer");
      default:
        return this.fail(Reason.HTTP_MALFORMED, "internal stage");
    }
  }

  private header(text: string): number {
    if (++this.headerLines > MAX_HEADER_LINES) return this.fail(Reason.HTTP_TOO_LARGE, `more than ${MAX_HEADER_LINES} header lines`);
    const colon = text.indexOf(":");
    if (colon <= 0) return this.fail(Reason.HTTP_MALFORMED, "header line without a name");
    const name = text.slice(0, colon);
    if (!TOKEN.test(name)) return this.fail(Reason.HTTP_MALFORMED, "bad header name (or obsolete line folding)");
    const value = text.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    switch (name.toLowerCase()) {
      case "content-length": {
        if (!/^\d{1,15}$/.test(value)) return this.fail(Reason.HTTP_MALFORMED, "bad Content-Length");
        const n = +value;
        if (this.contentLength !== undefined && this.contentLength !== n) return this.fail(Reason.HTTP_MALFORMED, "conflicting Content-Length");
        this.contentLength = n;
        return Reason.OK;
      }
      case "content-range":
        this.contentRange = value;
        return Reason.OK;
      case "transfer-encoding":
        if (value.toLowerCase() !== "chunked") return this.fail(Reason.HTTP_MALFORMED, `unsupported Transfer-Encoding "${value}"`);
        this.chunked = true;
        return Reason.OK;
      case "connection":
        this.connection += "," + value.toLowerCase();
        return Reason.OK;
      case "location":
        this.location = value;
        return Reason.OK;
      default:
        return Reason.OK;
    }
  }

  private endOfHead(sink: ResponseSink): number {
    if (this.status < 200) return this.fail(Reason.HTTP_STATUS, `interim status ${this.status} to a GET`);
    if (this.chunked && this.contentLength !== undefined) return this.fail(Reason.HTTP_MALFORMED, "both chunked and Content-Length");
    const tokens = this.connection.split(",").map((t) => t.trim());
    const keepAlive = this.version === 11 ? tokens.indexOf("close") < 0 : tokens.indexOf("keep-alive") >= 0;
    const noBody = this.status === 204 || this.status === 304;
    const delimited = noBody || this.chunked || this.contentLength !== undefined;
    const head: ResponseHead = {
      version: this.version,
      status: this.status,
      chunked: this.chunked,
      keepAlive: keepAlive && delimited,
      ...(this.contentLength !== undefined ? { contentLength: this.contentLength } : {}),
      ...(this.contentRange !== undefined ? { contentRange: this.contentRange } : {}),
      ...(this.location !== undefined ? { location: this.location } : {}),
    };
    this.head = head;
    this.headerLines = 0;
    if (noBody || this.contentLength === 0) this.stage = S_DONE;
    else if (this.chunked) this.stage = S_CHUNK_SIZE;
    else if (this.contentLength !== undefined) {
      this.left = this.contentLength;
      this.stage = S_BODY;
    } else this.stage = S_BODY_UNTIL_CLOSE;
    sink.onHead?.(head);
    return Reason.OK;
  }

  private fail(code: number, why: string): number {
    this.stage = S_FAILED;
    this.failure = code;
    this.why = why;
    return code;
  }
}

/** A parsed `http(s)://host[:port]/path` (IPv4 or DNS names; no userinfo, no fragment). */
export interface Url {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

/** Parse an absolute http(s) URL; undefined when malformed. */
export function parseUrl(url: string): Url | undefined {
  if (typeof url !== "string" || url.length > 1024) return undefined;
  const m = /^(https?):\/\/([A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?(\/[!-~]*)?$/.exec(url);
  if (!m || m[4]?.indexOf("#") >= 0) return undefined;
  const tls = m[1] === "https";
  const port = m[3] !== undefined ? +m[3] : tls ? 443 : 80;
  if (port < 1 || port > 65535) return undefined;
  return { tls, host: m[2], port, path: m[4] ?? "/" };
}

/** Parse `bytes first-last/total` (total may be `*`). */
export function parseContentRange(v: string): { first: number; last: number; total: number | undefined } | undefined {
  const m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)$/.exec(v);
  if (!m) return undefined;
  const first = +m[1];
  const last = +m[2];
  const total = m[3] === "*" ? undefined : +m[3];
  if (last < first || (total !== undefined && last >= total)) return undefined;
  return { first, last, total };
}

export interface HttpClientOptions {
  readonly net: Network;
  readonly clock: Clock;
  /** CA for https (PEM or DER); the adapter's store when absent. */
  readonly ca?: string | Uint8Array;
  /** Allow http:// (plaintext). Default false: only https. */
  readonly allowPlaintext?: boolean;
  /** Fail a request after this long without a byte (default 15000 ms). */
  readonly timeoutMs?: number;
  /** Fail a request whose response head is not complete this long after it started (default: timeoutMs). */
  readonly headTimeoutMs?: number;
  /** 0..5, default 3. */
  readonly maxRedirects?: number;
}

export interface RangeGet {
  readonly url: string;
  /** First byte wanted. */
  readonly offset: number;
  /** Bytes wanted, 1..2^31; the server may return fewer only at the end of the file. */
  readonly length: number;
  /** Body bytes in order; `at` is the absolute file offset of data[0]. */
  onData(data: Uint8Array, at: number): void;
  /**
   * The request ended: Reason.OK, or HTTP_* / SOCKET_*. `total` is the file
   * length when the server said it; `received` the bytes delivered.
   */
  onDone(code: number, info: { total?: number; received: number; status?: number; detail?: string }): void;
}

interface Active {
  req: RangeGet;
  url: Url;
  redirects: number;
  received: number;
  expected: number;
  total: number | undefined;
  status: number | undefined;
  fresh: boolean;
  parser: HttpResponseParser;
  gotBytes: boolean;
}

function aInt(v: unknown, lo: number, hi: number, what: string): number {
  if (typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi) return v;
  throw new RangeError(`HttpClient: ${what} must be an integer ${lo}..${hi}, got ${String(v)}`);
}

/**
 * One request at a time; the connection is kept for the next range to the
 * same origin. Callbacks run from socket and timer events, never inside `get`.
 *
 * @example
 *   http.get({ url, offset: 65536, length: 4096, onData: (d, at) => w.write(d, at), onDone: (rc) => next(rc) });
 */
export class HttpClient {
  private readonly o: HttpClientOptions;
  private readonly timeoutMs: number;
  private readonly headTimeoutMs: number;
  private headTimer: TimerId | undefined;
  private readonly maxRedirects: number;
  private socket: Socket | undefined;
  private socketKey = "";
  private socketGen = 0;
  private idle = false;
  private active: Active | undefined;
  private timer: TimerId | undefined;
  /** Connections opened, for tests and the keep-alive figure. */
  connections = 0;

  constructor(options: HttpClientOptions) {
    if (!options || typeof options.net?.connect !== "function" || typeof options.clock?.setTimer !== "function") {
      throw new TypeError("HttpClient: options.net and options.clock are required");
    }
    this.o = options;
    this.timeoutMs = aInt(options.timeoutMs ?? 15_000, 10, 600_000, "timeoutMs");
    this.headTimeoutMs = aInt(options.headTimeoutMs ?? this.timeoutMs, 10, 600_000, "headTimeoutMs");
    this.maxRedirects = aInt(options.maxRedirects ?? 3, 0, 5, "maxRedirects");
  }

  get busy(): boolean {
    return this.active !== undefined;
  }

  /**
   * Start a range GET.
   * @throws OtaError HTTP_BUSY while a request runs; RangeError for a malformed
   *   URL or range, or http:// when plaintext is not allowed.
   */
  get(req: RangeGet): void {
    if (this.active) throw new OtaError(Reason.HTTP_BUSY, "a request is already running");
    const url = parseUrl(req.url);
    if (!url) throw new RangeError(`HttpClient.get: malformed URL "${String(req.url)}"`);
    if (!url.tls && !this.o.allowPlaintext) throw new RangeError("HttpClient.get: http:// refused (allowPlaintext is off)");
    aInt(req.offset, 0, Number.MAX_SAFE_INTEGER, "offset");
    aInt(req.length, 1, 2 ** 31, "length");
    if (typeof req.onData !== "function" || typeof req.onDone !== "function") throw new TypeError("HttpClient.get: onData and onDone are required");
    this.start({ req, url, redirects: 0, received: 0, expected: req.length, total: undefined, status: undefined, fresh: false, parser: new HttpResponseParser(), gotBytes: false });
  }

  /** Cancel the running request (no onDone) and close the connection. */
  abort(): void {
    this.active = undefined;
    this.clearHeadTimer();
    this.dropSocket();
  }

  /** Close the kept-alive connection. */
  close(): void {
    this.abort();
  }

  private start(a: Active): void {
    this.active = a;
    a.parser = new HttpResponseParser();
    a.gotBytes = false;
    this.armHeadTimer(a);
    const key = `${a.url.tls ? "s" : "p"}:${a.url.host}:${a.url.port}`;
    if (this.socket && this.idle && this.socketKey === key) {
      a.fresh = false;
      this.idle = false;
      this.armTimer();
      this.sendRequest(a);
      return;
    }
    this.dropSocket();
    a.fresh = true;
    this.socketKey = key;
    this.idle = false;
    const gen = ++this.socketGen;
    this.connections++;
    this.armTimer();
    this.socket = this.o.net.connect(
      { host: a.url.host, port: a.url.port, tls: a.url.tls, ...(this.o.ca !== undefined ? { ca: this.o.ca } : {}) },
      {
        onConnect: () => {
          if (gen === this.socketGen && this.active === a) this.sendRequest(a);
        },
        onData: (d) => {
          if (gen === this.socketGen) this.onData(d);
        },
        onClose: (reason) => {
          if (gen === this.socketGen) this.onSocketClose(reason);
        },
      },
    );
  }

  private sendRequest(a: Active): void {
    const last = a.req.offset + a.expected - 1;
    const host = (a.url.tls && a.url.port === 443) || (!a.url.tls && a.url.port === 80) ? a.url.host : `${a.url.host}:${a.url.port}`;
    const text =
      `GET ${a.url.path} HTTP/1.1\r\nHost: ${host}\r\nRange: bytes=${a.req.offset}-${last}\r\n` +
      `Accept-Encoding: identity\r\nUser-Agent: xs-ota\r\nConnection: keep-alive\r\n\r\n`;
    try {
      this.socket?.write(utf8Encode(text));
    } catch (e) {
      if (!(e instanceof OtaError)) throw e;
      const gen = this.socketGen;
      this.o.clock.setTimer(() => {
        if (gen === this.socketGen) this.onSocketClose(e.code);
      }, 0);
    }
  }

  /** Header bytes are liveness, not progress: the head has its own deadline from the request's start. */
  private armHeadTimer(a: Active): void {
    if (this.headTimer !== undefined) this.o.clock.clearTimer(this.headTimer);
    this.headTimer = this.o.clock.setTimer(() => {
      this.headTimer = undefined;
      if (this.active === a && a.parser.head === undefined) this.finish(Reason.HTTP_TIMEOUT, `response head not complete within ${this.headTimeoutMs} ms`, true);
    }, this.headTimeoutMs);
  }

  private clearHeadTimer(): void {
    if (this.headTimer !== undefined) this.o.clock.clearTimer(this.headTimer);
    this.headTimer = undefined;
  }

  private armTimer(): void {
    if (this.timer !== undefined) this.o.clock.clearTimer(this.timer);
    this.timer = this.o.clock.setTimer(() => {
      this.timer = undefined;
      if (this.active) this.finish(Reason.HTTP_TIMEOUT, "no bytes in time", true);
    }, this.timeoutMs);
  }

  private onData(d: Uint8Array): void {
    const a = this.active;
    if (!a) {
      // Bytes on an idle kept-alive connection: the server is confused; do not reuse it.
      this.dropSocket();
      return;
    }
    a.gotBytes = true;
    this.armTimer();
    const rc = a.parser.update(d, {
      onHead: (head) => this.onHead(a, head),
      onBody: (piece) => {
        if (this.active !== a) return;
        if (a.received + piece.length > a.expected) {
          this.finish(Reason.HTTP_MALFORMED, "more body than the range", true);
          return;
        }
        const at = a.req.offset + a.received;
        a.received += piece.length;
        a.req.onData(piece.slice(), at);
      },
    });
    if (this.active !== a) return;
    if (rc !== Reason.OK) return this.finish(rc, a.parser.why, true);
    if (a.parser.done) this.onComplete(a);
  }

  private onHead(a: Active, head: ResponseHead): void {
    this.clearHeadTimer();
    a.status = head.status;
    const s = head.status;
    if (s === 301 || s === 302 || s === 303 || s === 307 || s === 308) {
      if (a.redirects >= this.maxRedirects) return this.finish(Reason.HTTP_REDIRECTS, `more than ${this.maxRedirects} redirects`, true);
      const target = head.location?.charAt(0) === "/" ? `${a.url.tls ? "https" : "http"}://${a.url.host}:${a.url.port}${head.location}` : head.location;
      const url = target !== undefined ? parseUrl(target) : undefined;
      if (!url) return this.finish(Reason.HTTP_MALFORMED, "redirect without a usable Location", true);
      if (!url.tls && !this.o.allowPlaintext) return this.finish(Reason.HTTP_REDIRECTS, "redirect to plaintext refused", true);
      this.dropSocket();
      this.start({ ...a, url, redirects: a.redirects + 1, received: 0, total: undefined, status: undefined });
      return;
    }
    if (s === 206) {
      const cr = head.contentRange !== undefined ? parseContentRange(head.contentRange) : undefined;
      if (!cr) return this.finish(Reason.HTTP_RANGE_MISMATCH, "206 without a valid Content-Range", true);
      const wantLast = a.req.offset + a.req.length - 1;
      const shortAtEnd = cr.total !== undefined && cr.last === cr.total - 1 && cr.last < wantLast;
      if (cr.first !== a.req.offset || (cr.last !== wantLast && !shortAtEnd)) {
        return this.finish(Reason.HTTP_RANGE_MISMATCH, `asked ${a.req.offset}-${wantLast}, got ${cr.first}-${cr.last}`, true);
      }
      const n = cr.last - cr.first + 1;
      if (head.contentLength !== undefined && head.contentLength !== n) return this.finish(Reason.HTTP_RANGE_MISMATCH, "Content-Length differs from Content-Range", true);
      a.expected = n;
      a.total = cr.total;
      return;
    }
    if (s === 200) {
      // A server that ignores Range: usable only when the whole file is the range asked for.
      if (a.req.offset !== 0 || head.contentLength === undefined || head.contentLength > a.req.length) {
        return this.finish(Reason.HTTP_RANGE_MISMATCH, "200 (whole file) to a range request", true);
      }
      a.expected = head.contentLength;
      a.total = head.contentLength;
      return;
    }
    if (s === 416) return this.finish(Reason.HTTP_RANGE_MISMATCH, "416 range not satisfiable", true);
    return this.finish(Reason.HTTP_STATUS, `status ${s}`, true);
  }

  private onComplete(a: Active): void {
    if (a.received !== a.expected) return this.finish(Reason.HTTP_TRUNCATED, `got ${a.received} of ${a.expected} bytes`, true);
    const keep = a.parser.head?.keepAlive === true;
    this.finish(Reason.OK, undefined, !keep);
  }

  private onSocketClose(reason: number): void {
    const a = this.active;
    this.socket = undefined;
    this.idle = false;
    this.socketGen++;
    if (!a) return;
    // A kept-alive connection the server had already closed: retry once on a fresh one.
    if (!a.fresh && !a.gotBytes) {
      this.start({ ...a });
      return;
    }
    if (a.gotBytes) {
      const rc = a.parser.finish();
      if (rc === Reason.OK && a.parser.head) {
        if (a.received === a.expected) return this.finish(Reason.OK, undefined, true);
        return this.finish(Reason.HTTP_TRUNCATED, `closed after ${a.received} of ${a.expected} bytes`, true);
      }
      return this.finish(rc, a.parser.why, true);
    }
    this.finish(reason === Reason.SOCKET_CLOSED ? Reason.HTTP_TRUNCATED : reason, "connection closed before a response", true);
  }

  private finish(code: number, detail: string | undefined, closeSocket: boolean): void {
    const a = this.active;
    if (!a) return;
    this.active = undefined;
    if (this.timer !== undefined) this.o.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.clearHeadTimer();
    if (closeSocket) this.dropSocket();
    else this.idle = true;
    a.req.onDone(code, { received: a.received, ...(a.total !== undefined ? { total: a.total } : {}), ...(a.status !== undefined ? { status: a.status } : {}), ...(detail ? { detail } : {}) });
  }

  private dropSocket(): void {
    if (this.timer !== undefined && !this.active) {
      this.o.clock.clearTimer(this.timer);
      this.timer = undefined;
    }
    this.socketGen++;
    this.socket?.close();
    this.socket = undefined;
    this.idle = false;
  }
}
