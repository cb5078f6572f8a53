/** Cloud messages: round trips, strict decoding, size limits, topic rules. */
import { describe, expect, it } from "vitest";
import { OtaError, Reason } from "../../src/errors";
import {
  ChunkStatus,
  decodeChunkReply,
  decodeChunkRequest,
  decodeCommand,
  decodeHeartbeat,
  decodeHeartbeatAck,
  decodeOffer,
  decodeStatusReport,
  deviceInboundLeaf,
  deviceSubscriptions,
  encodeChunkReply,
  encodeChunkRequest,
  encodeCommand,
  encodeHeartbeat,
  encodeHeartbeatAck,
  encodeStatusReport,
  MAX_CHUNK,
  MAX_CONTROL_PAYLOAD,
  MAX_INSTRUCTIONS_PER_BYTE,
  MAX_MHZ,
  MAX_OFFER,
  parseDeviceTopic,
  parseVersion,
  serverSubscriptions,
  topicFor,
  type Heartbeat,
} from "../../src/protocol/messages";

const enc = (s: string) => new TextEncoder().encode(s);
const code = (c: number) => (e: unknown) => e instanceof OtaError && e.code === c;
const throwsCode = (fn: () => unknown, c: number) => {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(code(c)(err), `expected reason ${c}, got ${String(err)}`).toBe(true);
};

const hb: Heartbeat = {
  seq: 7,
  hardwareId: "usr-n520",
  version: { major: 1, minor: 2, revision: 3, build: 45 },
  slot: 1,
  imageSha256: new Uint8Array(32).map((_, i) => i),
  state: "downloading",
  progress: 42,
  reason: 0,
  uptime: 3600,
  supplyMv: 3290,
};

describe("cloud messages", () => {
  it("heartbeat round-trips and is readable JSON", () => {
    const b = encodeHeartbeat(hb);
    expect(b.length).toBeLessThanOrEqual(MAX_CONTROL_PAYLOAD);
    expect(JSON.parse(new TextDecoder().decode(b)).version).toBe("1.2.3+45");
    expect(decodeHeartbeat(b)).toEqual(hb);
  });
  it("heartbeat decode cost: round trip, wire form, absent from older devices", () => {
    const decode = { mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 4211 }, { codec: 1, instructionsPerByte: 3698 }, { codec: 2, instructionsPerByte: 81120 }] };
    const b = encodeHeartbeat({ ...hb, decode });
    const o = JSON.parse(new TextDecoder().decode(b));
    expect(o.decode).toBe("3:4211,1:3698,2:81120");
    expect(o.mhz).toBe(400);
    expect(decodeHeartbeat(b)).toEqual({ ...hb, decode });
    expect("decode" in decodeHeartbeat(encodeHeartbeat(hb))).toBe(false);
    expect("mhz" in JSON.parse(new TextDecoder().decode(encodeHeartbeat(hb)))).toBe(false);
    // the largest heartbeat with the largest announcement still fits a control message
    const big: Heartbeat = {
      ...hb,
      seq: 0xffffffff,
      hardwareId: "x".repeat(64),
      version: { major: 255, minor: 255, revision: 65535, build: 0xffffffff },
      state: "a".repeat(32),
      reason: 0xffff,
      uptime: 0xffffffff,
      supplyMv: 0xffff,
      revocation: 0xffffffff,
      revocationEpoch: 0xffffffff,
      keySet: { epoch: 0xffffffff, sequence: 0xffffffff },
      decode: { mhz: MAX_MHZ, codecs: [252, 253, 254, 255].map((codec) => ({ codec, instructionsPerByte: MAX_INSTRUCTIONS_PER_BYTE })) },
    };
    expect(decodeHeartbeat(encodeHeartbeat(big))).toEqual(big);
    // the encoder refuses what the decoder would
    for (const bad of [
      { mhz: 0, codecs: decode.codecs },
      { mhz: 400, codecs: [] },
      { mhz: 400, codecs: [{ codec: 1, instructionsPerByte: 1 }, { codec: 1, instructionsPerByte: 2 }] },
      { mhz: 400, codecs: [{ codec: 256, instructionsPerByte: 1 }] },
      { mhz: 400, codecs: [{ codec: 1, instructionsPerByte: 0 }] },
      { mhz: 400, codecs: [0, 1, 2, 3, 4].map((codec) => ({ codec, instructionsPerByte: 1 })) },
    ]) expect(() => encodeHeartbeat({ ...hb, decode: bad }), JSON.stringify(bad)).toThrow(RangeError);
  });
  it("heartbeat decode cost decoding is strict (MESSAGE_MALFORMED)", () => {
    const o = JSON.parse(new TextDecoder().decode(encodeHeartbeat(hb)));
    const variants: object[] = [
      { ...o, decode: "3:4211" }, // without mhz
      { ...o, mhz: 400 }, // without decode
      { ...o, decode: "", mhz: 400 },
      { ...o, decode: "3:4211,", mhz: 400 },
      { ...o, decode: "3:4211,,1:3698", mhz: 400 },
      { ...o, decode: "3", mhz: 400 },
      { ...o, decode: "3:", mhz: 400 },
      { ...o, decode: ":4211", mhz: 400 },
      { ...o, decode: "3:0", mhz: 400 },
      { ...o, decode: "03:4211", mhz: 400 },
      { ...o, decode: "3:04211", mhz: 400 },
      { ...o, decode: "3:-1", mhz: 400 },
      { ...o, decode: "3:1.5", mhz: 400 },
      { ...o, decode: "3: 4211", mhz: 400 },
      { ...o, decode: "256:1", mhz: 400 },
      { ...o, decode: "3:10000000", mhz: 400 },
      { ...o, decode: "3:1,3:2", mhz: 400 },
      { ...o, decode: "0:1,1:1,2:1,3:1,4:1", mhz: 400 },
      { ...o, decode: ["3:4211"], mhz: 400 },
      { ...o, decode: 3, mhz: 400 },
      { ...o, decode: "3:4211", mhz: 0 },
      { ...o, decode: "3:4211", mhz: MAX_MHZ + 1 },
      { ...o, decode: "3:4211", mhz: 400.5 },
      { ...o, decode: "3:4211", mhz: "400" },
    ];
    for (const v of variants) throwsCode(() => decodeHeartbeat(enc(JSON.stringify(v))), Reason.MESSAGE_MALFORMED);
    expect(decodeHeartbeat(enc(JSON.stringify({ ...o, decode: "0:1,255:9999999", mhz: 1 }))).decode).toEqual({
      mhz: 1,
      codecs: [{ codec: 0, instructionsPerByte: 1 }, { codec: 255, instructionsPerByte: 9_999_999 }],
    });
  });
  it("heartbeat decoding is strict", () => {
    const o = JSON.parse(new TextDecoder().decode(encodeHeartbeat(hb)));
    const variants: object[] = [
      { ...o, extra: 1 },
      { ...o, slot: 2 },
      { ...o, progress: 101 },
      { ...o, seq: -1 },
      { ...o, seq: 1.5 },
      { ...o, version: "1.2.3" },
      { ...o, version: "256.0.0+0" },
      { ...o, image: "00" },
      { ...o, state: "Idle" },
      Object.fromEntries(Object.entries(o).filter(([k]) => k !== "uptime")),
    ];
    for (const v of variants) throwsCode(() => decodeHeartbeat(enc(JSON.stringify(v))), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeHeartbeat(enc("[1]")), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeHeartbeat(enc("{")), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeHeartbeat(Uint8Array.of(0x7b, 0xff, 0x7d)), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeHeartbeat(new Uint8Array(MAX_CONTROL_PAYLOAD + 1).fill(0x20)), Reason.MESSAGE_TOO_LARGE);
  });
  it("heartbeat ack, command, chunk request and status report round-trip", () => {
    expect(decodeHeartbeatAck(encodeHeartbeatAck({ seq: 7, interval: 300, time: 1_760_000_000 }))).toEqual({ seq: 7, interval: 300, time: 1_760_000_000 });
    throwsCode(() => decodeHeartbeatAck(enc('{"seq":1,"interval":5,"time":1}')), Reason.MESSAGE_MALFORMED);
    expect(decodeCommand(encodeCommand({ id: 3, cmd: "abort" }))).toEqual({ id: 3, cmd: "abort" });
    throwsCode(() => decodeCommand(enc('{"id":3,"cmd":"reboot"}')), Reason.MESSAGE_MALFORMED);
    expect(decodeChunkRequest(encodeChunkRequest({ stream: "fw-1.2.3-s1.bin", offset: 8192, length: 4096 }))).toEqual({ stream: "fw-1.2.3-s1.bin", offset: 8192, length: 4096 });
    throwsCode(() => decodeChunkRequest(enc(`{"stream":"a","offset":0,"length":${MAX_CHUNK + 1}}`)), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeChunkRequest(enc('{"stream":"../etc/passwd","offset":0,"length":1}')), Reason.MESSAGE_MALFORMED);
    const s = { seq: 1, event: "committed" as const, version: hb.version, target: { major: 1, minor: 3, revision: 0, build: 0 }, reason: 0, releaseId: new Uint8Array(32).fill(9) };
    expect(decodeStatusReport(encodeStatusReport(s))).toEqual(s);
    const minimal = { seq: 2, event: "failed" as const, version: hb.version, reason: 305 };
    expect(decodeStatusReport(encodeStatusReport(minimal))).toEqual(minimal);
    throwsCode(() => decodeStatusReport(enc('{"seq":1,"event":"exploded","version":"1.0.0+0","reason":0}')), Reason.MESSAGE_MALFORMED);
  });
  it("chunk replies are binary, bounded and checked", () => {
    const data = new Uint8Array(MAX_CHUNK).fill(0xaa);
    const r = { status: ChunkStatus.OK, stream: "s1", offset: 4096, total: 100_000, data };
    const b = encodeChunkReply(r);
    expect(b.length).toBe(3 + 2 + 8 + MAX_CHUNK);
    expect(decodeChunkReply(b)).toEqual(r);
    expect(decodeChunkReply(encodeChunkReply({ status: ChunkStatus.UNKNOWN_STREAM, stream: "s1", offset: 0, total: 0, data: new Uint8Array(0) })).status).toBe(ChunkStatus.UNKNOWN_STREAM);
    throwsCode(() => decodeChunkReply(Uint8Array.of(2, 0, 0)), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeChunkReply(b.subarray(0, 8)), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeChunkReply(encodeChunkReply({ ...r, offset: 99_000, data: new Uint8Array(2000) })), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeChunkReply(new Uint8Array(5000).fill(1)), Reason.MESSAGE_TOO_LARGE);
    expect(() => encodeChunkReply({ ...r, data: new Uint8Array(MAX_CHUNK + 1) })).toThrow(RangeError);
  });
  it("offers are opaque, non-empty and bounded", () => {
    expect(decodeOffer(Uint8Array.of(1, 2))).toEqual(Uint8Array.of(1, 2));
    throwsCode(() => decodeOffer(new Uint8Array(0)), Reason.MESSAGE_MALFORMED);
    throwsCode(() => decodeOffer(new Uint8Array(MAX_OFFER + 1)), Reason.MESSAGE_TOO_LARGE);
  });
  it("topics carry the device id and a device is addressed only on its own", () => {
    expect(topicFor("dev-1", "hb")).toBe("xs-ota/v1/dev-1/hb");
    expect(deviceSubscriptions("dev-1").map((s) => s.topic)).toEqual(["xs-ota/v1/dev-1/hb/ack", "xs-ota/v1/dev-1/offer", "xs-ota/v1/dev-1/chunk/res", "xs-ota/v1/dev-1/cmd", "xs-ota/v1/dev-1/revocation", "xs-ota/v1/dev-1/keyset"]);
    expect(() => topicFor("a/b", "hb")).toThrow(RangeError);
    expect(() => topicFor("#", "hb")).toThrow(RangeError);
    throwsCode(() => deviceInboundLeaf("dev-1", "xs-ota/v1/dev-10/cmd"), Reason.MESSAGE_TOPIC);
    expect(parseDeviceTopic("xs-ota/v1/dev-1/chunk/req")).toEqual({ deviceId: "dev-1", leaf: "chunk/req" });
    throwsCode(() => parseDeviceTopic("xs-ota/v1/dev-1/offer"), Reason.MESSAGE_TOPIC);
    throwsCode(() => parseDeviceTopic("xs-ota/v2/dev-1/hb"), Reason.MESSAGE_TOPIC);
    expect(serverSubscriptions(true)[2].topic).toBe("$share/xs-ota-serve/xs-ota/v1/+/chunk/req");
    expect(serverSubscriptions(false)[0].topic).toBe("xs-ota/v1/+/hb");
  });
  it("versions parse strictly", () => {
    expect(parseVersion("0.0.0+0")).toEqual({ major: 0, minor: 0, revision: 0, build: 0 });
    expect(parseVersion("255.255.65535+4294967295")).toEqual({ major: 255, minor: 255, revision: 65535, build: 4294967295 });
    for (const bad of ["01.0.0+0", "1.0.0", "1.0.0+4294967296", "1.256.0+0", " 1.0.0+0", 1]) expect(parseVersion(bad)).toBeUndefined();
  });
});
