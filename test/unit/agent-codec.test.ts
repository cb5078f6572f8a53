/**
 * The manifest binds a delta's codec (payload.compression, src/update/codec.ts)
 * and the agent holds it to that, on the simulator: a name it does not decode
 * is refused before any download (PATCH_CODEC_UNSUPPORTED), a patch header that
 * is not the named codec before anything in the inactive slot is erased
 * (PATCH_CODEC_MISMATCH); it announces what it decodes in every heartbeat, and
 * the simulated cloud offers by that announcement.
 */
import { describe, expect, it } from "vitest";
import { checkConfig, DEVICE_DECODE_COST, type AgentConfig } from "../../src/agent/config";
import { Codec, parsePatchHeader } from "../../src/delta/format";
import { Reason } from "../../src/errors";
import { formatVersion } from "../../src/image/format";
import { makePatch } from "../../tools/delta/index";
import { buildImage, HARDWARE, release } from "../lib/sim-fixtures";
import { makeWorld, type World } from "../lib/sim-world";
import type { VirtualDevice } from "../../targets/sim/device";

const lz = (a: Uint8Array, b: Uint8Array) => makePatch(a, b).bytes;
const range = (a: Uint8Array, b: Uint8Array) => makePatch(a, b, { codec: Codec.RANGE }).bytes;

/** The inactive slot's bytes and the erase counts of its blocks. */
function inactiveSnapshot(d: VirtualDevice): { cells: Uint8Array; wear: number[] } {
  const slot = d.slots[1];
  const block = slot.status().blockLength;
  const first = slot.offset / block;
  return { cells: slot.cells.slice(), wear: Array.from(slot.chip.wear.subarray(first, first + slot.status().size / block)) };
}

/** Something left in the inactive slot's middle (no image header, no trailer): an erase would show. */
function leaveJunk(d: VirtualDevice): void {
  const slot = d.slots[1];
  const block = slot.status().blockLength;
  slot.write(new Uint8Array(block).fill(0x5a), 2 * block);
}

function journalOf(w: World, d: VirtualDevice) {
  const j = w.agents.get(d)!.journal;
  return { session: j.session(), progress: j.progress(), policy: j.policy() };
}

describe("agent configuration: decodeCost", () => {
  const base: AgentConfig = { deviceId: "d", hardwareId: HARDWARE, server: { host: "h", port: 1, tls: true }, trustedKeys: [new Uint8Array(65)] };
  it("defaults to the device lane's Cortex-M7 figures (codec 3, 4, 1, 2 at 400 MHz); a target may set its own", () => {
    expect(checkConfig(base).decodeCost).toBe(DEVICE_DECODE_COST);
    expect(DEVICE_DECODE_COST).toEqual({
      mhz: 400,
      codecs: [
        { codec: 3, instructionsPerByte: 3945 },
        { codec: 4, instructionsPerByte: 8388 },
        { codec: 1, instructionsPerByte: 3698 },
        { codec: 2, instructionsPerByte: 81120 },
      ],
    });
    expect(Object.isFrozen(DEVICE_DECODE_COST) && Object.isFrozen(DEVICE_DECODE_COST.codecs)).toBe(true);
    const own = { mhz: 216, codecs: [{ codec: 0, instructionsPerByte: 900 }, { codec: 1, instructionsPerByte: 5000 }] };
    expect(checkConfig({ ...base, decodeCost: own }).decodeCost).toEqual(own);
  });
  it("refuses at start an announcement that is malformed or names a codec this build does not decode", () => {
    for (const bad of [
      { mhz: 0, codecs: [{ codec: 1, instructionsPerByte: 1 }] },
      { mhz: 400, codecs: [] },
      { mhz: 400, codecs: [{ codec: 5, instructionsPerByte: 1 }] },
      { mhz: 400, codecs: [{ codec: 1, instructionsPerByte: 1 }, { codec: 1, instructionsPerByte: 1 }] },
      { mhz: 400, codecs: [{ codec: 1, instructionsPerByte: 1.5 }] },
    ]) expect(() => checkConfig({ ...base, decodeCost: bad }), JSON.stringify(bad)).toThrow(/AgentConfig\.decodeCost/);
  });
});

describe("agent: the manifest binds the delta's codec", () => {
  it("announces its codecs and their cost (the M7 figures by default) in every heartbeat", () => {
    const w = makeWorld();
    w.addDevice("dev").run(2000);
    const hb = w.cloud.heartbeats.filter((h) => h.deviceId === "dev");
    expect(hb.length).toBeGreaterThan(0);
    for (const h of hb) expect(h.heartbeat.decode).toEqual(DEVICE_DECODE_COST);
    const custom = { mhz: 216, codecs: [{ codec: 1, instructionsPerByte: 5000 }] };
    const w2 = makeWorld();
    w2.addDevice("dev", { decodeCost: custom }).run(2000);
    expect(w2.cloud.heartbeats[0].heartbeat.decode).toEqual(custom);
  });

  for (const [name, compression, decodeCost] of [
    ["a name no codec has", "zstd", undefined],
    ["a codec it does not announce", "lz", { mhz: 400, codecs: [{ codec: 1, instructionsPerByte: 3698 }] }],
  ] as const) {
    it(`${name}: refused with PATCH_CODEC_UNSUPPORTED before any download; nothing stored changes`, () => {
      const w = makeWorld();
      const target = buildImage(w.map, w.key, "1.1.0", 1);
      const r = release(w.key, target, { base: w.factory, diff: lz, compression });
      w.cloud.releases = [];
      const d = w.addDevice("dev", decodeCost ? { decodeCost } : {});
      leaveJunk(d);
      d.run(2000);
      const before = { slot: inactiveSnapshot(d), journal: journalOf(w, d) };
      w.cloud.pushOffer("dev", r.envelope);
      d.run(5000);
      const refused = w.cloud.reportsOf("dev", "offer-refused");
      expect(refused, w.logs.slice(-10).join("\n")).toHaveLength(1);
      expect(refused[0].reason).toBe(Reason.PATCH_CODEC_UNSUPPORTED);
      expect(w.cloud.reportsOf("dev", "download-started")).toHaveLength(0);
      expect(w.cloud.bytesSent.get("dev") ?? 0, "not a byte of payload asked for").toBe(0);
      expect(inactiveSnapshot(d)).toEqual(before.slot);
      expect(journalOf(w, d)).toEqual(before.journal);
      expect(d.runningSlot).toBe(0);
    });
  }

  it("a patch header that is not the named codec: PATCH_CODEC_MISMATCH before anything in the inactive slot is erased or written", () => {
    const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0", 1), { base: w.factory, diff: lz, compression: "range" })] });
    const patch = w.cloud.releases[0].payload;
    expect(parsePatchHeader(patch).codec).toBe(Codec.LZ);
    const d = w.addDevice("dev");
    leaveJunk(d);
    const before = inactiveSnapshot(d);
    d.run(30_000);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed, w.logs.slice(-15).join("\n")).toHaveLength(1);
    expect(failed[0].reason).toBe(Reason.PATCH_CODEC_MISMATCH);
    expect(w.cloud.reportsOf("dev", "download-started")).toHaveLength(1);
    const after = inactiveSnapshot(d);
    expect(after.wear, "no erase in the inactive slot").toEqual(before.wear);
    expect(after.cells, "no byte of the inactive slot changed").toEqual(before.cells);
    // retryable (the bytes are not the signed payload): not handled for good, progress back at 0
    const j = journalOf(w, d);
    expect(j.policy.handled).toHaveLength(0);
    expect(j.progress.payloadOffset).toBe(0);
    expect(d.runningSlot).toBe(0);
  });

  it("the header check passes a patch that is the named codec (here range, which the cloud chose by the device's cost)", () => {
    // This device says range decodes cheaply here and LZ does not: the cloud offers the range delta, which installs.
    const cost = { mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 90_000 }, { codec: 2, instructionsPerByte: 1000 }] };
    const w = makeWorld({
      releases: (w) => {
        const target = buildImage(w.map, w.key, "1.2.0+3", 1);
        return [release(w.key, target, { base: w.factory, diff: lz, stream: "lz" }), release(w.key, target, { base: w.factory, diff: range, stream: "range" })];
      },
    });
    expect(w.cloud.releases.map((r) => r.manifest.payload.compression)).toEqual(["lz", "range"]);
    w.cloud.linkRate = 1e9; // decode time decides
    const d = w.addDevice("dev", { decodeCost: cost });
    d.run(5 * 60_000);
    const committed = w.cloud.reportsOf("dev", "committed");
    expect(committed, w.logs.slice(-20).join("\n")).toHaveLength(1);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.2.0+3");
    const accepted = w.cloud.reportsOf("dev", "offer-accepted");
    const chosen = w.cloud.releases.find((r) => r.releaseId.every((b, i) => b === accepted[0].releaseId![i]))!;
    expect(chosen.manifest.payload.compression).toBe("range");
    expect(w.cloud.bytesSent.get("dev")).toBe(chosen.payload.length);
  });
});
