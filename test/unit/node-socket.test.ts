/**
 * The Node TCP/TLS adapter: the HAL network conformance suite against a local
 * echo server, and the TLS rules (verify against the configured CA and the
 * server name; plaintext only when `tls: false` is stated).
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { spawnSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeNetwork } from "../../hal/node/socket";
import { OtaError, Reason } from "../../src/errors";
import { ensureTlsFiles, type TlsFiles } from "../../tools/serve/certs";
import { networkConformance } from "../conformance/peripherals";
import { registerSuite } from "../lib/vitest-suite";
import type { SocketHandlers, SocketOptions } from "../../hal/types";

const HOST = "127.0.0.1";
let dir: string;
let files: TlsFiles;
let otherCa: string;
const servers: net.Server[] = [];

const sockets = new Set<net.Socket>();
function listen(server: net.Server): Promise<number> {
  servers.push(server);
  server.on("connection", (c: net.Socket) => {
    sockets.add(c);
    c.on("close", () => sockets.delete(c));
  });
  server.on("secureConnection", (c: net.Socket) => {
    sockets.add(c);
    c.on("close", () => sockets.delete(c));
  });
  return new Promise((resolve) => server.listen(0, HOST, () => resolve((server.address() as net.AddressInfo).port)));
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await new Promise<number>((resolve) => s.listen(0, HOST, () => resolve((s.address() as net.AddressInfo).port)));
  await new Promise((r) => s.close(r));
  return port;
}

const echo = { host: HOST, port: 0 };
const closed = { host: HOST, port: 0 };
let tlsPort = 0;
let plainSilentPort = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-node-socket-"));
  files = ensureTlsFiles(join(dir, "tls"));
  otherCa = readFileSync(ensureTlsFiles(join(dir, "other")).ca, "utf8");
  echo.port = await listen(net.createServer((s) => s.pipe(s)));
  closed.port = await freePort();
  tlsPort = await listen(tls.createServer({ cert: readFileSync(files.cert), key: readFileSync(files.key) }, (s) => s.pipe(s)));
  plainSilentPort = await listen(net.createServer(() => {}));
});

afterAll(async () => {
  for (const c of sockets) c.destroy();
  for (const s of servers) await new Promise((r) => s.close(r));
  rmSync(dir, { recursive: true, force: true });
});

// The portable network conformance suite, bound here (not in test/conformance/, which must type-check without Node).
registerSuite(
  networkConformance({
    name: "NodeNetwork (TCP on 127.0.0.1)",
    make: () => {
      const network = new NodeNetwork({ connectTimeoutMs: 5000 });
      return {
        net: network,
        echo,
        closedPort: closed,
        settle: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        teardown: () => network.destroyAll(),
      };
    },
  }),
);

/** Connect and wait (bounded) for connect or close. */
function attempt(network: NodeNetwork, options: SocketOptions, payload?: Uint8Array): Promise<{ connected: boolean; reason?: number; echoed?: number[] }> {
  return new Promise((resolve) => {
    const got: number[] = [];
    const timer = setTimeout(() => resolve({ connected: false, reason: -1 }), 8000);
    let sock: ReturnType<NodeNetwork["connect"]>;
    const h: SocketHandlers = {
      onConnect: () => {
        if (!payload) {
          clearTimeout(timer);
          sock.close();
          resolve({ connected: true });
        } else sock.write(payload);
      },
      onData: (d) => {
        got.push(...d);
        if (payload && got.length >= payload.length) {
          clearTimeout(timer);
          sock.close();
          resolve({ connected: true, echoed: got });
        }
      },
      onClose: (reason) => {
        clearTimeout(timer);
        resolve({ connected: false, reason });
      },
    };
    sock = network.connect(options, h);
  });
}

describe("NodeNetwork TLS", () => {
  it("connects over TLS when the server certificate chains to the configured CA", async () => {
    const r = await attempt(new NodeNetwork(), { host: HOST, port: tlsPort, tls: true, ca: readFileSync(files.ca, "utf8") }, Uint8Array.of(1, 2, 3));
    expect(r).toEqual({ connected: true, echoed: [1, 2, 3] });
  });
  it("takes the CA as DER too, and from the network's default", async () => {
    const pem = readFileSync(files.ca, "utf8");
    const der = new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64"));
    expect((await attempt(new NodeNetwork(), { host: HOST, port: tlsPort, tls: true, ca: der })).connected).toBe(true);
    expect((await attempt(new NodeNetwork({ ca: pem }), { host: "localhost", port: tlsPort, tls: true })).connected).toBe(true);
  });
  it("refuses a server whose certificate does not chain to the CA (SOCKET_TLS)", async () => {
    const r = await attempt(new NodeNetwork(), { host: HOST, port: tlsPort, tls: true, ca: otherCa });
    expect(r).toEqual({ connected: false, reason: Reason.SOCKET_TLS });
  });
  it("refuses a certificate for another name (SOCKET_TLS)", async () => {
    const r = await attempt(new NodeNetwork(), { host: HOST, port: tlsPort, tls: true, ca: readFileSync(files.ca, "utf8"), serverName: "example.com" });
    expect(r).toEqual({ connected: false, reason: Reason.SOCKET_TLS });
  });
  it("a TLS connection to a plaintext server fails with SOCKET_TLS (no silent downgrade)", async () => {
    const r = await attempt(new NodeNetwork(), { host: HOST, port: echo.port, tls: true, ca: readFileSync(files.ca, "utf8") });
    expect(r.connected).toBe(false);
    expect(r.reason).toBe(Reason.SOCKET_TLS);
  });
  it("a handshake that never completes ends with SOCKET_TIMEOUT", async () => {
    const r = await attempt(new NodeNetwork({ connectTimeoutMs: 300 }), { host: HOST, port: plainSilentPort, tls: true, ca: readFileSync(files.ca, "utf8") });
    expect(r).toEqual({ connected: false, reason: Reason.SOCKET_TIMEOUT });
  });
  it("refuses to connect unless tls is stated, and checks host and port", () => {
    const n = new NodeNetwork();
    const bad = (o: unknown) => expect(() => n.connect(o as SocketOptions, {})).toThrow(OtaError);
    bad({ host: HOST, port: echo.port });
    bad({ host: HOST, port: echo.port, tls: "yes" });
    bad({ host: HOST, port: 0, tls: false });
    bad({ host: "", port: 1, tls: false });
  });
});

/**
 * The CA pin (issue 16): throwaway PKI made with openssl — root R with two
 * intermediates I1 and I2 (leaf L1 under I1, L2 under I2), and an unrelated
 * root B with leaf LB. The client trusts both roots, so every server passes
 * chain verification; only the pin tells them apart.
 */
describe("NodeNetwork TLS: the CA pin (SHA-256 of the CA certificate's DER)", () => {
  let pki: string;
  const ports = { l1: 0, l2: 0, lb: 0 };
  let trust = "";
  const fp: { [name: string]: Uint8Array } = {};
  const ssl = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: pki, encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const root = (n: string) =>
    ssl(["req", "-x509", ...ec, "-keyout", `${n}.key`, "-out", `${n}.pem`, "-days", "2", "-subj", `/CN=pin test ${n}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  const signed = (n: string, issuer: string, ext: string) => {
    ssl(["req", ...ec, "-keyout", `${n}.key`, "-out", `${n}.csr`, "-subj", `/CN=${n === "l1" || n === "l2" || n === "lb" ? "localhost" : "pin test " + n}`]);
    writeFileSync(join(pki, `${n}.ext`), ext);
    ssl(["x509", "-req", "-in", `${n}.csr`, "-CA", `${issuer}.pem`, "-CAkey", `${issuer}.key`, "-CAcreateserial", "-out", `${n}.pem`, "-days", "2", "-sha256", "-extfile", `${n}.ext`]);
  };
  const caExt = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
  const leafExt = "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
  const read = (n: string) => readFileSync(join(pki, `${n}.pem`), "utf8");

  beforeAll(async () => {
    pki = mkdtempSync(join(tmpdir(), "xs-ota-pin-"));
    root("r");
    root("b");
    signed("i1", "r", caExt);
    signed("i2", "r", caExt);
    signed("l1", "i1", leafExt);
    signed("l2", "i2", leafExt);
    signed("lb", "b", leafExt);
    for (const n of ["r", "b", "i1", "i2", "l1"]) fp[n] = new Uint8Array(createHash("sha256").update(new X509Certificate(read(n)).raw).digest());
    // The pin is what `openssl x509 -noout -fingerprint -sha256` prints (colons removed).
    const o = spawnSync("openssl", ["x509", "-in", "i1.pem", "-noout", "-fingerprint", "-sha256"], { cwd: pki, encoding: "utf8" });
    expect(o.stdout.trim().split("=")[1].replace(/:/g, "").toLowerCase()).toBe(Buffer.from(fp.i1).toString("hex"));
    trust = read("r") + read("b");
    const server = (leaf: string, chain: string[]) =>
      listen(tls.createServer({ cert: [leaf, ...chain].map(read).join(""), key: readFileSync(join(pki, `${leaf}.key`)) }, (s) => s.pipe(s)));
    ports.l1 = await server("l1", ["i1"]);
    ports.l2 = await server("l2", ["i2"]);
    ports.lb = await server("lb", []);
  });
  afterAll(() => rmSync(pki, { recursive: true, force: true }));

  const go = (port: number, caPin?: Uint8Array) =>
    attempt(new NodeNetwork(), { host: HOST, port, tls: true, ca: trust, ...(caPin ? { caPin } : {}) }, Uint8Array.of(7, 8));

  it("without a pin, every server the trust store accepts connects (the pin is what refuses below)", async () => {
    for (const p of [ports.l1, ports.l2, ports.lb]) expect(await go(p)).toEqual({ connected: true, echoed: [7, 8] });
  });
  it("accepts the server whose chain contains the pinned CA: the issuing intermediate or the root above it", async () => {
    expect(await go(ports.l1, fp.i1)).toEqual({ connected: true, echoed: [7, 8] });
    expect(await go(ports.l1, fp.r)).toEqual({ connected: true, echoed: [7, 8] });
    expect(await go(ports.l2, fp.r)).toEqual({ connected: true, echoed: [7, 8] });
  });
  it("refuses a server with a valid certificate from another CA (TLS_PIN_MISMATCH)", async () => {
    expect(await go(ports.lb, fp.i1)).toEqual({ connected: false, reason: Reason.TLS_PIN_MISMATCH });
    expect(await go(ports.lb, fp.r)).toEqual({ connected: false, reason: Reason.TLS_PIN_MISMATCH });
    expect(await go(ports.l1, fp.b)).toEqual({ connected: false, reason: Reason.TLS_PIN_MISMATCH });
  });
  it("refuses a server from the right root whose chain lacks the pinned issuer (TLS_PIN_MISMATCH)", async () => {
    expect(await go(ports.l2, fp.i1)).toEqual({ connected: false, reason: Reason.TLS_PIN_MISMATCH });
    expect(await go(ports.l1, fp.i2)).toEqual({ connected: false, reason: Reason.TLS_PIN_MISMATCH });
  });
  it("a pin of the server's own certificate is not a CA pin (refused)", async () => {
    expect(await go(ports.l1, fp.l1)).toEqual({ connected: false, reason: Reason.TLS_PIN_MISMATCH });
  });
  it("chain and name checks still come first (SOCKET_TLS), and a pin must be 32 bytes", async () => {
    const r = await attempt(new NodeNetwork(), { host: HOST, port: ports.l1, tls: true, ca: read("b"), caPin: fp.i1 });
    expect(r).toEqual({ connected: false, reason: Reason.SOCKET_TLS });
    expect(() => new NodeNetwork().connect({ host: HOST, port: ports.l1, tls: true, caPin: new Uint8Array(31) }, {})).toThrow(/caPin/);
  });
});
