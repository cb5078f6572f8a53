/**
 * The HTTP/1.1 range client: the response parser (split at every point,
 * limits, malformed input, a seeded random run), and the client over the
 * Node socket against Node's http/https servers, including servers that
 * send garbage, stall, close early, ignore Range or redirect in a loop.
 */
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Prng } from "../../hal/mock/prng";
import { Reason } from "../../src/errors";
import { HttpClient, HttpResponseParser, MAX_LINE, parseContentRange, parseUrl, type ResponseHead } from "../../src/protocol/http";
import { ensureTlsFiles } from "../../tools/serve/certs";

const enc = (s: string) => new TextEncoder().encode(s);

function parseAll(chunks: Uint8Array[]): { rc: number; head?: ResponseHead; body: number[]; done: boolean } {
  const p = new HttpResponseParser();
  const body: number[] = [];
  let head: ResponseHead | undefined;
  for (const c of chunks) {
    const rc = p.update(c, { onHead: (h) => (head = h), onBody: (b) => body.push(...b) });
    if (rc !== Reason.OK) return { rc, head, body, done: false };
  }
  return { rc: Reason.OK, head, body, done: p.done };
}

const chunkedResponse = enc(
  "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-19/100\r\nTransfer-Encoding: chunked\r\nX-Other: y\r\n\r\n" +
    "4;ext=1\r\nabcd\r\n6\r\nefghij\r\n0\r\nTrailer: z\r\n\r\n",
);
const lengthResponse = enc("HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nContent-Range: bytes 0-4/5\r\nConnection: keep-alive\r\n\r\nhello");

describe("HTTP response parser", () => {
  it("parses a chunked and a Content-Length response split at every point", () => {
    for (const [bytes, want] of [
      [chunkedResponse, "abcdefghij"],
      [lengthResponse, "hello"],
    ] as const) {
      for (let cut = 0; cut <= bytes.length; cut++) {
        const r = parseAll([bytes.subarray(0, cut), bytes.subarray(cut)]);
        expect(r.rc).toBe(Reason.OK);
        expect(r.done).toBe(true);
        expect(String.fromCharCode(...r.body)).toBe(want);
        expect(r.head?.status).toBe(206);
        expect(r.head?.keepAlive).toBe(true);
      }
    }
  });
  it("reads the headers it acts on", () => {
    const r = parseAll([enc("HTTP/1.0 302 Found\r\nLocation: https://h/x\r\nContent-Length: 0\r\n\r\n")]);
    expect(r.head).toMatchObject({ version: 10, status: 302, location: "https://h/x", keepAlive: false, contentLength: 0 });
    const close = parseAll([enc("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")]);
    expect(close.head?.keepAlive).toBe(false);
    const untilClose = new HttpResponseParser();
    expect(untilClose.update(enc("HTTP/1.1 200 OK\r\n\r\nabc"), {})).toBe(Reason.OK);
    expect(untilClose.head?.keepAlive).toBe(false);
    expect(untilClose.finish()).toBe(Reason.OK);
  });
  const bad = (name: string, text: string, code: number = Reason.HTTP_MALFORMED) =>
    it(`refuses ${name}`, () => {
      expect(parseAll([enc(text)]).rc).toBe(code);
    });
  bad("a garbage status line", "garbage\r\n\r\n");
  bad("HTTP/2 in a status line", "HTTP/2 200 OK\r\n\r\n");
  bad("a bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n");
  bad("obsolete header folding", "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n");
  bad("a header without a name", "HTTP/1.1 200 OK\r\n: x\r\n\r\n");
  bad("conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  bad("a negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
  bad("chunked with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
  bad("gzip transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  bad("a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  bad("a chunk size over 8 hex digits", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n");
  bad("chunk data longer than its size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n");
  bad("bytes after the response", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy");
  bad("an interim 100 to a GET", "HTTP/1.1 100 Continue\r\n\r\n", Reason.HTTP_STATUS);
  bad("a line over 1024 bytes", `HTTP/1.1 200 OK\r\nX: ${"a".repeat(MAX_LINE)}\r\n\r\n`, Reason.HTTP_TOO_LARGE);
  bad("more than 64 header lines", "HTTP/1.1 200 OK\r\n" + "A: b\r\n".repeat(65) + "\r\n", Reason.HTTP_TOO_LARGE);
  bad("a head over 8 KiB", "HTTP/1.1 200 OK\r\n" + `A: ${"b".repeat(1000)}\r\n`.repeat(9) + "\r\n", Reason.HTTP_TOO_LARGE);
  it("reports a truncated response at finish", () => {
    const p = new HttpResponseParser();
    expect(p.update(enc("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), {})).toBe(Reason.OK);
    expect(p.finish()).toBe(Reason.HTTP_TRUNCATED);
  });
  it("parses URLs and Content-Range strictly", () => {
    expect(parseUrl("https://127.0.0.1:8443/streams/a.bin")).toEqual({ tls: true, host: "127.0.0.1", port: 8443, path: "/streams/a.bin" });
    expect(parseUrl("http://localhost")).toEqual({ tls: false, host: "localhost", port: 80, path: "/" });
    expect(parseUrl("ftp://h/x")).toBeUndefined();
    expect(parseUrl("https://u@h/x")).toBeUndefined();
    expect(parseUrl("https://h:99999/x")).toBeUndefined();
    expect(parseContentRange("bytes 0-9/10")).toEqual({ first: 0, last: 9, total: 10 });
    expect(parseContentRange("bytes 0-9/*")).toEqual({ first: 0, last: 9, total: undefined });
    expect(parseContentRange("bytes 5-4/10")).toBeUndefined();
    expect(parseContentRange("bytes 0-10/10")).toBeUndefined();
  });
  it("100,000 random and mutated inputs: no throw, failure is sticky, no growth", () => {
    const prng = new Prng(0x5eed_0002);
    const seeds = [chunkedResponse, lengthResponse, enc("HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")];
    let ok = 0;
    let failed = 0;
    for (let run = 0; run < 100_000; run++) {
      let input: Uint8Array;
      if (run % 2 === 0) {
        input = prng.fill(new Uint8Array(prng.below(64)));
        if (run % 4 === 0) input = new Uint8Array([...enc("HTTP/1.1 "), ...input]);
      } else {
        input = seeds[prng.below(seeds.length)].slice();
        for (let k = 0, n = 1 + prng.below(3); k < n; k++) input[prng.below(input.length)] = prng.below(256);
      }
      const p = new HttpResponseParser();
      const cut = prng.below(input.length + 1);
      let bodyBytes = 0;
      const sink = { onBody: (b: Uint8Array) => (bodyBytes += b.length) };
      const rc1 = p.update(input.subarray(0, cut), sink);
      const rc2 = p.update(input.subarray(cut), sink);
      if (rc1 !== Reason.OK) expect(rc2).toBe(rc1);
      expect(bodyBytes).toBeLessThanOrEqual(input.length);
      const fin = p.finish();
      if (fin === Reason.OK) ok++;
      else failed++;
    }
    expect(ok).toBeGreaterThan(100);
    expect(failed).toBeGreaterThan(1000);
  });
});

// ---------------------------------------------------------------- against Node's servers

const FILE = new Uint8Array(10_000).map((_, i) => (i * 7 + 3) & 0xff);
const HOST = "127.0.0.1";
let dir: string;
let caPem: string;
const closers: (() => Promise<void>)[] = [];
const ports: { [name: string]: number } = {};

function track(server: net.Server): net.Server {
  const conns = new Set<net.Socket>();
  server.on("connection", (c: net.Socket) => {
    conns.add(c);
    c.on("close", () => conns.delete(c));
  });
  closers.push(async () => {
    for (const c of conns) c.destroy();
    await new Promise((r) => server.close(r));
  });
  return server;
}

async function start(name: string, server: net.Server): Promise<void> {
  track(server);
  ports[name] = await new Promise<number>((resolve) => server.listen(0, HOST, () => resolve((server.address() as net.AddressInfo).port)));
}

/** A correct range server; `mode` varies its behaviour. */
function rangeHandler(mode: "ok" | "chunked" | "ignore-range" | "wrong-range" | "redirect" | "loop" | "404") {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (mode === "404") return void res.writeHead(404).end();
    if (mode === "loop") return void res.writeHead(302, { Location: req.url }).end();
    if (mode === "redirect" && req.url !== "/final") {
      const n = Number(req.url?.slice(1) ?? 0);
      return void res.writeHead(307, { Location: n >= 2 ? "/final" : `/${n + 1}` }).end();
    }
    if (mode === "ignore-range") return void res.writeHead(200, { "Content-Length": FILE.length }).end(Buffer.from(FILE));
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range));
    if (!m) return void res.writeHead(400).end();
    const first = +m[1];
    const last = Math.min(+m[2], FILE.length - 1);
    if (first >= FILE.length) return void res.writeHead(416, { "Content-Range": `bytes */${FILE.length}` }).end();
    const body = Buffer.from(FILE.subarray(first, last + 1));
    const shownFirst = mode === "wrong-range" ? first + 1 : first;
    if (mode === "chunked") {
      res.writeHead(206, { "Content-Range": `bytes ${shownFirst}-${last}/${FILE.length}` });
      for (let o = 0; o < body.length; o += 700) res.write(body.subarray(o, o + 700));
      return void res.end();
    }
    res.writeHead(206, { "Content-Range": `bytes ${shownFirst}-${last}/${FILE.length}`, "Content-Length": body.length }).end(body);
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-http-"));
  const files = ensureTlsFiles(join(dir, "tls"));
  caPem = readFileSync(files.ca, "utf8");
  for (const mode of ["ok", "chunked", "ignore-range", "wrong-range", "redirect", "loop", "404"] as const) {
    const s = http.createServer(rangeHandler(mode));
    s.keepAliveTimeout = 5000;
    await start(mode, s);
  }
  // Answers one request per connection, then drops the connection when a second request arrives on it
  // (what a server whose keep-alive timer fired just as the request left looks like to the client).
  await start(
    "one-per-conn",
    net.createServer((s) => {
      let n = 0;
      s.on("data", () => {
        if (n++ > 0) return void s.destroy();
        s.write("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-1/10000\r\nContent-Length: 2\r\n\r\nok");
      });
    }),
  );
  await start("https", https.createServer({ cert: readFileSync(files.cert), key: readFileSync(files.key) }, rangeHandler("ok")));
  await start("garbage", net.createServer((s) => s.once("data", () => s.end("HELLO THIS IS NOT HTTP\r\n\r\n"))));
  await start("stall", net.createServer(() => {}));
  await start("close-early", net.createServer((s) => s.once("data", () => s.end("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/10000\r\nContent-Length: 100\r\n\r\nonly ten b"))));
  await start("extra-body", net.createServer((s) => s.once("data", () => s.end("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/10000\r\n\r\n0123456789"))));
});

afterAll(async () => {
  for (const c of closers) await c();
  rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  code: number;
  data: Uint8Array;
  total?: number;
  status?: number;
}

function get(client: HttpClient, url: string, offset: number, length: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const parts: Uint8Array[] = [];
    let expectAt = offset;
    const guard = setTimeout(() => resolve({ code: -1, data: new Uint8Array(0) }), 10_000);
    client.get({
      url,
      offset,
      length,
      onData: (d, at) => {
        expect(at).toBe(expectAt);
        expectAt += d.length;
        parts.push(d);
      },
      onDone: (code, info) => {
        clearTimeout(guard);
        resolve({ code, data: Buffer.concat(parts), total: info.total, status: info.status });
      },
    });
  });
}

function client(extra: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}): HttpClient {
  return new HttpClient({ net: new NodeNetwork({ connectTimeoutMs: 3000 }), clock: new NodeClock(), allowPlaintext: true, timeoutMs: 2000, ...extra });
}
const url = (name: string, path = "/payload.bin") => `http://${HOST}:${ports[name]}${path}`;

describe("HTTP client against Node's http server", () => {
  it("fetches ranges on one kept-alive connection", async () => {
    const c = client();
    for (const [off, len] of [
      [0, 4096],
      [4096, 4096],
      [8192, 1808],
    ]) {
      const r = await get(c, url("ok"), off, len);
      expect(r.code).toBe(Reason.OK);
      expect(Buffer.from(r.data).equals(Buffer.from(FILE.subarray(off, off + len)))).toBe(true);
      expect(r.total).toBe(FILE.length);
    }
    expect(c.connections).toBe(1);
    c.close();
  });
  it("accepts a short range at the end of the file", async () => {
    const c = client();
    const r = await get(c, url("ok"), 9000, 4096);
    expect(r.code).toBe(Reason.OK);
    expect(r.data.length).toBe(1000);
    c.close();
  });
  it("reads a chunked 206", async () => {
    const c = client();
    const r = await get(c, url("chunked"), 100, 3000);
    expect(r.code).toBe(Reason.OK);
    expect(Buffer.from(r.data).equals(Buffer.from(FILE.subarray(100, 3100)))).toBe(true);
    c.close();
  });
  it("follows a bounded number of redirects", async () => {
    const c = client();
    const r = await get(c, url("redirect", "/0"), 0, 10);
    expect(r.code).toBe(Reason.OK);
    expect(r.data.length).toBe(10);
    const loop = await get(c, url("loop", "/x"), 0, 10);
    expect(loop.code).toBe(Reason.HTTP_REDIRECTS);
    c.close();
  });
  it("refuses a Content-Range other than the one asked for", async () => {
    const c = client();
    expect((await get(c, url("wrong-range"), 10, 10)).code).toBe(Reason.HTTP_RANGE_MISMATCH);
    c.close();
  });
  it("takes a 200 only when the whole file is what was asked", async () => {
    const c = client();
    const whole = await get(c, url("ignore-range"), 0, 20_000);
    expect(whole.code).toBe(Reason.OK);
    expect(whole.data.length).toBe(FILE.length);
    expect((await get(c, url("ignore-range"), 100, 10)).code).toBe(Reason.HTTP_RANGE_MISMATCH);
    c.close();
  });
  it("reports 404 as HTTP_STATUS and 416 as HTTP_RANGE_MISMATCH", async () => {
    const c = client();
    const r = await get(c, url("404"), 0, 10);
    expect(r.code).toBe(Reason.HTTP_STATUS);
    expect(r.status).toBe(404);
    expect((await get(c, url("ok"), 20_000, 10)).code).toBe(Reason.HTTP_RANGE_MISMATCH);
    c.close();
  });
  it("a server that sends garbage: HTTP_MALFORMED", async () => {
    const c = client();
    expect((await get(c, url("garbage"), 0, 10)).code).toBe(Reason.HTTP_MALFORMED);
    c.close();
  });
  it("a server that stalls: HTTP_TIMEOUT", async () => {
    const c = client({ timeoutMs: 300 });
    expect((await get(c, url("stall"), 0, 10)).code).toBe(Reason.HTTP_TIMEOUT);
    c.close();
  });
  it("a server that closes early: HTTP_TRUNCATED", async () => {
    const c = client();
    const r = await get(c, url("close-early"), 0, 100);
    expect(r.code).toBe(Reason.HTTP_TRUNCATED);
    expect(r.data.length).toBe(10);
    c.close();
  });
  it("a body longer than the range: HTTP_MALFORMED", async () => {
    const c = client();
    expect((await get(c, url("extra-body"), 0, 4)).code).toBe(Reason.HTTP_MALFORMED);
    c.close();
  });
  it("retries once on a fresh connection when the kept-alive one was closed by the server", async () => {
    const c = client();
    expect((await get(c, url("one-per-conn"), 0, 2)).code).toBe(Reason.OK);
    const r = await get(c, url("one-per-conn"), 0, 2);
    expect(r.code).toBe(Reason.OK);
    expect(c.connections).toBe(2);
    c.close();
  });
  it("refuses http:// unless plaintext is allowed, and one request at a time", async () => {
    const strict = new HttpClient({ net: new NodeNetwork(), clock: new NodeClock() });
    expect(() => strict.get({ url: url("ok"), offset: 0, length: 1, onData: () => {}, onDone: () => {} })).toThrow(RangeError);
    const c = client();
    const first = get(c, url("ok"), 0, 10);
    expect(() => c.get({ url: url("ok"), offset: 0, length: 1, onData: () => {}, onDone: () => {} })).toThrow(/HTTP_BUSY/);
    expect((await first).code).toBe(Reason.OK);
    c.close();
  });
  it("fetches over HTTPS verified against the CA, and refuses without it", async () => {
    const c = new HttpClient({ net: new NodeNetwork(), clock: new NodeClock(), ca: caPem, timeoutMs: 2000 });
    const r = await get(c, `https://${HOST}:${ports.https}/p`, 5, 50);
    expect(r.code).toBe(Reason.OK);
    expect(Buffer.from(r.data).equals(Buffer.from(FILE.subarray(5, 55)))).toBe(true);
    c.close();
    const untrusting = new HttpClient({ net: new NodeNetwork(), clock: new NodeClock(), timeoutMs: 2000 });
    expect((await get(untrusting, `https://${HOST}:${ports.https}/p`, 0, 10)).code).toBe(Reason.SOCKET_TLS);
    untrusting.close();
  });
});
