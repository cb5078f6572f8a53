/**
 * serve's link to an existing broker and its start-up on a shared folder:
 * the publish queue applies back-pressure (nothing dropped while the
 * client's QoS 1 window is full; sent in order as PUBACKs free it; dropped,
 * and said so, only past its own bound), and several processes making the
 * throwaway TLS files in one folder at once end with one consistent set.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSync } from "esbuild";
import { afterEach, describe, expect, it } from "vitest";
import { OtaError, Reason } from "../../src/errors";
import { PublishQueue, type QueuedLink } from "../../tools/serve/publish-queue";
import { repoRoot } from "../lib/cli";

/** A client with a QoS 1 window of `window`, whose PUBACKs the test releases. */
function fakeLink(window: number) {
  const inflight: { topic: string; onAck?: (code: number) => void }[] = [];
  const sent: string[] = [];
  const link: QueuedLink = {
    publish(topic, _payload, _qos, _retain, onAck) {
      if (inflight.length >= window) throw new OtaError(Reason.MQTT_INFLIGHT_FULL, "full");
      inflight.push({ topic, onAck });
      sent.push(topic);
      return inflight.length;
    },
  };
  const ack = (n = 1) => {
    for (let i = 0; i < n; i++) inflight.shift()?.onAck?.(Reason.OK);
  };
  return { link, sent, ack, inflight };
}

describe("serve's publish queue", () => {
  it("holds publishes while the window is full and sends them in order as PUBACKs free it", () => {
    const f = fakeLink(4);
    const q = new PublishQueue(f.link);
    const done: string[] = [];
    for (let i = 0; i < 10; i++) expect(q.publish(`t/${i}`, new Uint8Array(1), false, (ok) => ok && done.push(`t/${i}`))).toBe(true);
    expect(f.sent).toEqual(["t/0", "t/1", "t/2", "t/3"]);
    expect(q.length).toBe(6);
    f.ack(3);
    expect(f.sent).toEqual(["t/0", "t/1", "t/2", "t/3", "t/4", "t/5", "t/6"]);
    f.ack(10);
    f.ack(10);
    expect(f.sent).toEqual(Array.from({ length: 10 }, (_, i) => `t/${i}`));
    expect(done).toEqual(f.sent);
    expect(q.dropped).toBe(0);
    expect(q.peak).toBe(6);
  });

  it("drops only past its own bound, and says so (serve then frees the offer's place)", () => {
    const f = fakeLink(1);
    const q = new PublishQueue(f.link, 2);
    const results: boolean[] = [];
    const told: boolean[] = [];
    for (let i = 0; i < 5; i++) results.push(q.publish(`t/${i}`, new Uint8Array(1), false, (ok) => told.push(ok)));
    expect(results).toEqual([true, true, true, false, false]);
    expect(told).toEqual([false, false]);
    expect(q.dropped).toBe(2);
  });

  it("keeps a later publish behind earlier ones even when the window has room (order kept)", () => {
    const f = fakeLink(2);
    const q = new PublishQueue(f.link);
    q.publish("a", new Uint8Array(1));
    q.publish("b", new Uint8Array(1));
    q.publish("c", new Uint8Array(1));
    f.inflight.shift(); // a PUBACK whose callback has not run yet: the window has room, the queue does not skip
    q.publish("d", new Uint8Array(1));
    expect(f.sent).toEqual(["a", "b"]);
    q.drain();
    expect(f.sent).toEqual(["a", "b", "c"]);
  });
});

describe("throwaway TLS files made by several processes at once", () => {
  let dir: string | undefined;
  afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

  it("one consistent CA and server certificate, nothing left behind", async () => {
    dir = mkdtempSync(join(tmpdir(), "xs-ota-certs-race-"));
    const tls = join(dir, "tls");
    // tools/serve/certs.ts for plain node (Node 20 runs no TypeScript)
    const bundle = join(dir, "certs.mjs");
    buildSync({ entryPoints: [join(repoRoot, "tools/serve/certs.ts")], bundle: true, platform: "node", format: "esm", outfile: bundle, logLevel: "silent" });
    const script = `import { ensureTlsFiles } from ${JSON.stringify(bundle)}; ensureTlsFiles(${JSON.stringify(tls)});`;
    const runs = await Promise.all(
      Array.from({ length: 4 }, () =>
        new Promise<{ code: number | null; err: string }>((resolve) => {
          const c = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "ignore", "pipe"] });
          let err = "";
          c.stderr.on("data", (d) => (err += d));
          c.on("exit", (code) => resolve({ code, err }));
        }),
      ),
    );
    for (const r of runs) expect(r.code, r.err).toBe(0);
    expect(readdirSync(tls).sort()).toEqual(["ca.pem", "server-key.pem", "server.pem"]);
    const verify = spawnSync("openssl", ["verify", "-CAfile", join(tls, "ca.pem"), join(tls, "server.pem")], { encoding: "utf8" });
    expect(verify.stdout + verify.stderr).toMatch(/server\.pem: OK/);
    const pub = (args: string[]) => spawnSync("openssl", args, { encoding: "utf8" }).stdout;
    expect(pub(["x509", "-in", join(tls, "server.pem"), "-noout", "-pubkey"])).toBe(pub(["pkey", "-in", join(tls, "server-key.pem"), "-pubout"]));
  });
});
