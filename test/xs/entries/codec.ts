/**
 * XS entry for the delta codec binding and announcement (src/update/codec.ts,
 * the heartbeat's decode cost, the agent's checks): the real agent on the
 * virtual device against the in-XS virtual cloud, with patches made inside
 * XS by the project's own encoder (tools/delta/encode.ts, portable: no
 * node:zlib on the LZ and range paths).
 */
import { Codec } from "../../../src/delta/format";
import { formatVersion } from "../../../src/image/format";
import { decodeHeartbeat, encodeHeartbeat } from "../../../src/protocol/messages";
import { encodePatch } from "../../../tools/delta/encode";
import { diffSegments } from "../../../tools/delta/bsdiff";
import { buildImage, release } from "../../lib/sim-fixtures";
import { makeWorld } from "../../lib/sim-world";
import { serve, task } from "../runtime";

const lz = (a: Uint8Array, b: Uint8Array) => encodePatch(a, b, [], { blockSize: 4096, codec: Codec.LZ }).bytes;
const range = (a: Uint8Array, b: Uint8Array) => encodePatch(a, b, diffSegments(a, b), { blockSize: 4096, codec: Codec.RANGE }).bytes;

task("heartbeat-decode-cost", () => {
  const hb = {
    seq: 1,
    hardwareId: "usr-n520",
    version: { major: 1, minor: 2, revision: 3, build: 4 },
    slot: 0 as const,
    imageSha256: new Uint8Array(32).fill(0xab),
    state: "idle",
    progress: 0,
    reason: 0,
    uptime: 12,
    supplyMv: 3300,
    decode: { mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 4211 }, { codec: 1, instructionsPerByte: 3698 }, { codec: 2, instructionsPerByte: 81120 }] },
  };
  const back = decodeHeartbeat(encodeHeartbeat(hb)).decode!;
  const refused: string[] = [];
  const base = String.fromCharCode(...encodeHeartbeat({ ...hb, decode: undefined })).slice(0, -1);
  for (const tail of [',"decode":"3:4211"', ',"mhz":400', ',"decode":"3:0","mhz":400', ',"decode":"3:1,3:2","mhz":400', ',"decode":"3:4211,","mhz":400']) {
    const text = `${base}${tail}}`;
    try {
      decodeHeartbeat(Uint8Array.from(text, (c) => c.charCodeAt(0)));
    } catch (e) {
      refused.push((e as { code?: number }).code === undefined ? "no code" : String((e as { code: number }).code));
    }
  }
  return { mhz: back.mhz, codecs: back.codecs.map((c) => `${c.codec}:${c.instructionsPerByte}`).join(","), refused };
});

task("choice-and-binding", () => {
  // The cloud holds an LZ and a range delta; a device whose announced cost favours range installs range.
  const cost = { mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 90_000 }, { codec: 2, instructionsPerByte: 1000 }] };
  const w = makeWorld({
    releases: (w) => {
      const target = buildImage(w.map, w.key, "1.1.0+2", 1, { securityCounter: 2 });
      return [release(w.key, target, { base: w.factory, diff: lz, stream: "lz" }), release(w.key, target, { base: w.factory, diff: range, stream: "range" })];
    },
  });
  w.cloud.linkRate = 1e9;
  const d = w.addDevice("xs-dev", { decodeCost: cost });
  d.run(5 * 60_000);
  const accepted = w.cloud.reportsOf("xs-dev", "offer-accepted")[0];
  const chosen = w.cloud.releases.filter((r) => accepted && r.releaseId.every((b, i) => b === accepted.releaseId![i]))[0];
  // A mislabelled delta (an LZ patch named "range"): refused before anything in the inactive slot is erased.
  const w2 = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0+2", 1, { securityCounter: 2 }), { base: w.factory, diff: lz, compression: "range" })] });
  const d2 = w2.addDevice("xs-dev");
  const erasesBefore = d2.slots[1].chip.stats.erases;
  d2.run(30_000);
  return {
    events: w.cloud.reportsOf("xs-dev").map((r) => r.event),
    version: d.lastBoot?.info ? formatVersion(d.lastBoot.info.header.version) : "",
    chosen: chosen ? chosen.manifest.payload.compression : "",
    announced: w.cloud.heartbeats[0].heartbeat.decode!.codecs.map((c) => c.codec),
    mismatch: w2.cloud.reportsOf("xs-dev", "failed").map((r) => r.reason),
    erases: d2.slots[1].chip.stats.erases - erasesBefore,
    log: w.logs.slice(-12),
  };
});
serve();
