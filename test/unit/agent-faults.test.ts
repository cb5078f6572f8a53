/**
 * The agent under faults on the simulator: power cuts during download and
 * patching resume where the journal says; refused offers are reported with
 * their reason codes; network faults end in a finished update or a clean
 * failure report.
 */
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { formatVersion } from "../../src/image/format";
import { buildImage, release, testKey } from "../lib/sim-fixtures";
import { fleetKeySet, TRUSTED_DEVICE, trustWorld } from "../lib/trust";
import { makeWorld } from "../lib/sim-world";
import { makePatch } from "../../tools/delta/index";

const diff = (a: Uint8Array, b: Uint8Array) => makePatch(a, b).bytes;

function world(kind: "full" | "delta") {
  return makeWorld({
    releases: (w) => {
      const target = buildImage(w.map, w.key, "1.1.0", 1);
      return kind === "full" ? [release(w.key, target)] : [release(w.key, target, { base: w.factory, diff })];
    },
  });
}

describe("agent: resume after power cuts", () => {
  for (const kind of ["full", "delta"] as const) {
    it(`${kind}: a cut at every mutating flash operation of the update (clean and torn) still ends committed on the new image`, () => {
      // a dry run counts the update's mutating operations, from power-on to commit
      const dry = world(kind);
      const d0 = dry.addDevice("dev");
      d0.run(10 * 60_000);
      expect(dry.cloud.reportsOf("dev", "committed")).toHaveLength(1);
      const total = d0.rail.operations;
      expect(total).toBeGreaterThan(20);
      let resumed = 0;
      for (let n = 1; n <= total; n++) {
        for (const mode of ["clean", "torn"] as const) {
          const w = world(kind);
          const d = w.addDevice("dev");
          d.rail.armCut(n, mode);
          d.run(10 * 60_000);
          const label = `${kind} ${mode} cut at op ${n}/${total}`;
          expect(d.bricked, label).toBe(false);
          expect(w.cloud.reportsOf("dev", "committed"), `${label}\n${w.logs.slice(-12).join("\n")}`).toHaveLength(1);
          expect(formatVersion(d.lastBoot!.info!.header.version), label).toBe("1.1.0+0");
          expect(d.counter.history.every((v, i, a) => i === 0 || v >= a[i - 1]), label).toBe(true);
          if (w.logs.some((l) => l.includes("-resume-download-> downloading"))) resumed++;
        }
      }
      expect(resumed, "cuts that fell in the download were resumed").toBeGreaterThan(4);
    });
  }

  it("a resumed full download does not start again from byte 0", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { size: 96 * 1024 }))] });
    const d = w.addDevice("dev");
    d.run(500);
    // let it fetch about half, then pull the plug
    for (let i = 0; i < 400 && (w.cloud.bytesSent.get("dev") ?? 0) < 48 * 1024; i++) d.run(50);
    d.cutPower();
    d.run(10 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed")).toHaveLength(1);
    const payload = w.cloud.releases[0].payload.length;
    expect(w.cloud.bytesSent.get("dev")!).toBeLessThan(payload * 1.5);
  });
});

describe("agent: refusals are reported with their reason", () => {
  const cases: [string, (w: ReturnType<typeof makeWorld>) => ReturnType<typeof release>, number][] = [
    ["downgrade", (w) => release(w.key, buildImage(w.map, w.key, "0.9.0", 1)), Reason.MANIFEST_DOWNGRADE],
    ["same version", (w) => release(w.key, buildImage(w.map, w.key, "1.0.0+1", 1)), Reason.MANIFEST_SAME_VERSION],
    ["expired", (w) => release(w.key, buildImage(w.map, w.key, "1.1.0", 1), { issuedAt: 1_780_000_000, expiresAt: 1_780_000_100 }), Reason.MANIFEST_EXPIRED],
    ["foreign hardware", (w) => release(w.key, buildImage(w.map, w.key, "1.1.0", 1), { hardwareId: "usr-g771" }), Reason.MANIFEST_WRONG_HARDWARE],
    ["signed by an unknown key", (w) => release(testKey(99), buildImage(w.map, testKey(99), "1.1.0", 1)), Reason.MANIFEST_UNKNOWN_KEY],
    ["lower security counter", (w) => release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 0 })), Reason.MANIFEST_SECURITY_COUNTER],
  ];
  for (const [name, make, reason] of cases) {
    it(name, () => {
      const w = makeWorld();
      const r = make(w);
      // Expiry is decided against signed time only: a world with a key set and a time key (issue 16B).
      if (reason === Reason.MANIFEST_EXPIRED) trustWorld(w, fleetKeySet({ batch: [w.key] }));
      // the cloud would not offer most of these; push it as an offer directly
      w.cloud.releases = [];
      const d = w.addDevice("dev", reason === Reason.MANIFEST_EXPIRED ? TRUSTED_DEVICE : {});
      d.run(2000);
      w.cloud.pushOffer("dev", r.envelope);
      d.run(2000);
      const refused = w.cloud.reportsOf("dev", "offer-refused");
      expect(refused, w.logs.slice(-10).join("\n")).toHaveLength(1);
      expect(refused[0].reason).toBe(reason);
      expect(d.runningSlot).toBe(0);
      expect(d.slots[1].cells.every((b) => b === 0xff), "nothing written to the inactive slot").toBe(true);
    });
  }

  it("a tampered envelope (one byte flipped) is refused", () => {
    const w = makeWorld();
    const r = release(w.key, buildImage(w.map, w.key, "1.1.0", 1));
    const d = w.addDevice("dev");
    d.run(2000);
    const bad = r.envelope.slice();
    bad[20] ^= 0x40;
    w.cloud.pushOffer("dev", bad);
    d.run(2000);
    const refused = w.cloud.reportsOf("dev", "offer-refused");
    expect(refused).toHaveLength(1);
    expect(refused[0].reason).toBe(Reason.MANIFEST_BAD_SIGNATURE);
  });

  it("a tampered payload (the server corrupts a chunk) fails verification and is reported", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1))] });
    w.cloud.faults = { corrupt: (offset, data) => (offset === 4096 ? data.map((b, i) => (i === 10 ? b ^ 1 : b)) : undefined) };
    const d = w.addDevice("dev");
    d.run(5 * 60_000);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed, w.logs.slice(-10).join("\n")).toHaveLength(1);
    expect([Reason.VERIFY_FAILED, Reason.IMAGE_HASH_MISMATCH]).toContain(failed[0].reason);
    expect(d.runningSlot).toBe(0);
    expect(w.cloud.reportsOf("dev", "committed")).toHaveLength(0);
  });
});

describe("agent: network faults", () => {
  it("dropped and duplicated chunks still end in a committed update", () => {
    let n = 0;
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1))] });
    w.cloud.faults = { drop: () => n++ % 7 === 3, duplicate: () => n % 5 === 1 };
    const d = w.addDevice("dev");
    d.run(10 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
  });

  it("a server that lies about the size ends the attempt with DOWNLOAD_SIZE", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1))] });
    w.cloud.faults = { total: (real) => real + 100 };
    const d = w.addDevice("dev");
    d.run(2 * 60_000);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed).toHaveLength(1);
    expect(failed[0].reason).toBe(Reason.DOWNLOAD_SIZE);
  });

  it("a broker restart mid-download is survived (reconnect with backoff, resume)", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { size: 64 * 1024 }))] });
    const d = w.addDevice("dev");
    for (let i = 0; i < 400 && (w.cloud.bytesSent.get("dev") ?? 0) < 16 * 1024; i++) d.run(50);
    w.cloud.stop();
    d.run(20_000);
    w.cloud.listen();
    d.run(10 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
  });

  it("the server's unknown stream ends the attempt (no endless retry)", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1), { stream: "missing" })] });
    w.cloud.releases = w.cloud.releases.map((r) => ({ ...r, payload: r.payload })); // stream "missing" is unknown to serveChunk below
    w.cloud.streamAlias = new Map([["missing", undefined]]);
    const d = w.addDevice("dev");
    d.run(2 * 60_000);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed).toHaveLength(1);
    expect(failed[0].reason).toBe(Reason.DOWNLOAD_NOT_FOUND);
  });
});

describe("agent: the HTTPS Range download path", () => {
  it("a release offered only by URL downloads over HTTPS Range and commits", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { size: 64 * 1024 }), { url: (s) => w.cloud.urlOf(s), httpsOnly: true })] });
    const d = w.addDevice("dev", { httpRangeBytes: 8192 });
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
    expect(w.cloud.rangeRequests).toBeGreaterThanOrEqual(8);
    expect(w.cloud.bytesSent.get("dev") ?? 0, "nothing came over MQTT chunks").toBe(0);
  });

  it("a delta over HTTPS with preferHttps, resumed after a power cut mid-download", () => {
    const w = makeWorld({
      releases: (w) => {
        const target = buildImage(w.map, w.key, "1.1.0", 1, { size: 64 * 1024 });
        return [release(w.key, target, { base: w.factory, diff, url: (s) => w.cloud.urlOf(s) })];
      },
    });
    const d = w.addDevice("dev", { preferHttps: true, httpRangeBytes: 1024 });
    d.rail.armCut(12, "torn");
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
    expect(w.cloud.rangeRequests).toBeGreaterThan(0);
  });

  it("a URL the server does not know (404) ends the attempt with DOWNLOAD_NOT_FOUND", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1), { url: `https://cloud.sim:8443/streams/nothing-here`, httpsOnly: true })] });
    w.cloud.streamAlias.set("nothing-here", undefined); // the server has lost the file
    const d = w.addDevice("dev");
    d.run(2 * 60_000);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed, w.logs.slice(-10).join("\n")).toHaveLength(1);
    expect(failed[0].reason).toBe(Reason.DOWNLOAD_NOT_FOUND);
  });
});
