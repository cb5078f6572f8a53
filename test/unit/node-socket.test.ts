/**
 * The Node TCP/TLS adapter: the HAL network conformance suite against a local
 * echo server, and the TLS rules (verify against the configured CA and the
 * server name; plaintext only when `tls: false` is stated).
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
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
