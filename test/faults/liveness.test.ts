/**
 * The liveness campaign on the virtual clock: a device left for a virtual day
 * against a server that is silent, drips (the response head or the body a
 * byte at a time), closes mid-body, or behind a flapping link — over MQTT and
 * over HTTPS. Asserts that resets stay bounded (none from the watchdog: every
 * bound nests inside the supervisor's), that attempts are bounded (the retry
 * pause), and that the outcome is reported: committed, or failed with its
 * reason, never silence.
 */
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { buildImage, release } from "../../tools/demo/firmware";
import { makeWorld, type World } from "../lib/sim-world";
import type { VirtualDevice } from "../../targets/sim/device";

const DAY_MS = 24 * 3600_000;
const DAY = Number(process.env.FAULTS_LIVENESS_MS ?? DAY_MS);

type Fault = "silent" | "drip-head" | "drip-body" | "close-mid-body" | "flapping";

interface Outcome {
  readonly watchdogResets: number;
  readonly boots: number;
  readonly attempts: number;
  readonly committed: number;
  readonly failed: readonly number[];
}

function run(transport: "mqtt" | "https", fault: Fault): Outcome {
  const w: World = makeWorld({
    releases: (w) => [
      release(w.key, buildImage(w.map, w.key, "1.1.0", 1, { securityCounter: 2 }), transport === "https" ? { url: (s) => w.cloud.urlOf(s), httpsOnly: true } : {}),
    ],
  });
  // the server sets a 10-minute heartbeat (a day of virtual time stays cheap to simulate)
  w.cloud.heartbeatIntervalS = 600;
  // the shipped download bounds (the test world shortens chunkTimeoutMs)
  const d: VirtualDevice = w.addDevice("dev", { chunkTimeoutMs: 10_000 });
  if (transport === "https") {
    if (fault === "silent" || fault === "drip-head" || fault === "drip-body" || fault === "close-mid-body") w.cloud.httpMode = fault;
    w.cloud.httpDripMs = fault === "drip-head" ? 9000 : 1500;
  } else {
    if (fault === "silent") w.cloud.faults = { drop: () => true };
    if (fault === "drip-head" || fault === "drip-body") {
      // MQTT has no HTTP head: the server answers every chunk request late with a single byte
      // (liveness every 9 s with next to no progress; or a body at 1 byte per 1.5 s)
      const every = fault === "drip-head" ? 9000 : 1500;
      w.cloud.faults = { delayMs: () => every, limit: () => 1 };
    }
    if (fault === "close-mid-body") {
      let n = 0;
      // every third chunk reply is cut off: the broker connection drops while it is on the way
      w.cloud.faults = { drop: () => ++n % 3 === 0 && (w.net.dropAll(), true) };
    }
  }
  if (fault === "flapping") {
    // the link drops every 20 s all day long
    for (let t = 0; t < DAY; t += 20_000) {
      d.run(20_000);
      w.net.dropAll();
    }
  } else d.run(DAY);
  return {
    watchdogResets: d.boots.filter((b) => b.cause === "watchdog").length,
    boots: d.boots.length,
    // the device's own count (a report re-sent over a dropped link arrives twice)
    attempts: w.logs.filter((l) => l.includes("-accept-> downloading")).length,
    committed: w.cloud.reportsOf("dev", "committed").length,
    failed: w.cloud.reportsOf("dev", "failed").map((r) => r.reason),
  };
}

describe("liveness campaign: a virtual day against misbehaving servers", () => {
  const rows: string[] = [];
  for (const transport of ["mqtt", "https"] as const) {
    for (const fault of ["silent", "drip-head", "drip-body", "close-mid-body", "flapping"] as const) {
      it(`${transport}, ${fault}: no watchdog reset, bounded attempts, the outcome reported`, () => {
        const o = run(transport, fault);
        rows.push(`| ${transport.padEnd(5)} | ${fault.padEnd(14)} | ${String(o.watchdogResets).padStart(6)} | ${String(o.boots).padStart(5)} | ${String(o.attempts).padStart(8)} | ${o.committed ? "committed" : `failed ×${o.failed.length} (${[...new Set(o.failed)].join(",")})`} |`);
        expect(o.watchdogResets, "no reset from the watchdog").toBe(0);
        expect(o.boots, "boots: power-on, and the trial's when it commits").toBeLessThanOrEqual(3);
        // the retry pause doubles from 1 min to 1 h: about 30 attempts a day at most
        expect(o.attempts).toBeLessThanOrEqual(40);
        expect(o.committed + o.failed.length, "an outcome reached the cloud").toBeGreaterThan(0);
        if (!o.committed) expect(o.failed.every((r) => r === Reason.DOWNLOAD_STALLED || r === Reason.DOWNLOAD_DEADLINE), `reasons ${o.failed.join(",")}`).toBe(true);
      });
    }
  }
  it("prints the table", () => {
    console.log(["[liveness] a virtual day per row", "| link  | server         | wd rst | boots | attempts | outcome |", ...rows].join("\n"));
    expect(rows.length).toBe(10);
  });
});
