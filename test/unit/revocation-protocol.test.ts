/**
 * The protocol's revocation parts (src/protocol/messages.ts): the heartbeat's
 * optional `revocation` field (and heartbeats without it still decoding), the
 * `revocation` leaf (subscribed, accepted as inbound, size-limited payload)
 * and the `revoked` status event.
 */
import { describe, expect, it } from "vitest";
import { isOtaError, Reason } from "../../src/errors";
import {
  decodeHeartbeat,
  decodeRevocationPayload,
  decodeStatusReport,
  deviceInboundLeaf,
  deviceSubscriptions,
  encodeHeartbeat,
  encodeStatusReport,
  MAX_CONTROL_PAYLOAD,
  MAX_TIME_STATEMENT,
  encodeHeartbeatAck,
  decodeHeartbeatAck,
  MAX_REVOCATION,
  STATUS_EVENTS,
  topicFor,
  type Heartbeat,
} from "../../src/protocol/messages";
import { MAX_REVOCATION_ENVELOPE_BYTES } from "../../src/update/revocation";
import { utf8Decode, utf8Encode } from "../../src/util/bytes";

const hb: Heartbeat = {
  seq: 7,
  hardwareId: "usr-n520",
  version: { major: 1, minor: 2, revision: 3, build: 45 },
  slot: 1,
  imageSha256: new Uint8Array(32).fill(0xab),
  state: "idle",
  progress: 0,
  reason: 0,
  uptime: 3600,
  supplyMv: 3290,
};

function code(f: () => unknown): number | undefined {
  try {
    f();
  } catch (e) {
    if (isOtaError(e)) return e.code;
    throw e;
  }
  return undefined;
}

describe("heartbeat.revocation", () => {
  it("is absent when the device holds no record, and a heartbeat without it decodes without it", () => {
    const b = encodeHeartbeat(hb);
    expect(utf8Decode(b)).not.toContain("revocation");
    const d = decodeHeartbeat(b);
    expect(d).toEqual(hb);
    expect("revocation" in d).toBe(false);
    // The exact bytes a device of the previous release sends.
    const old = '{"seq":7,"hardwareId":"usr-n520","version":"1.2.3+45","slot":1,"image":"' + "ab".repeat(32) + '","state":"idle","progress":0,"reason":0,"uptime":3600,"supplyMv":3290}';
    expect(decodeHeartbeat(utf8Encode(old))).toEqual(hb);
  });
  it("round-trips the held sequence, 0..2^32-1", () => {
    for (const revocation of [0, 1, 3, 0xffffffff]) {
      const b = encodeHeartbeat({ ...hb, revocation });
      expect(utf8Decode(b)).toContain(`"revocation":${revocation}`);
      expect(decodeHeartbeat(b)).toEqual({ ...hb, revocation });
    }
  });
  it("refuses a value that is not a u32 (MESSAGE_MALFORMED), and the encoder refuses one (RangeError)", () => {
    const base = JSON.parse(utf8Decode(encodeHeartbeat(hb))!);
    for (const v of [-1, 1.5, 2 ** 32, "3", null, true]) {
      expect(code(() => decodeHeartbeat(utf8Encode(JSON.stringify({ ...base, revocation: v }))))).toBe(Reason.MESSAGE_MALFORMED);
    }
    expect(() => encodeHeartbeat({ ...hb, revocation: -1 })).toThrow(RangeError);
    expect(() => encodeHeartbeat({ ...hb, revocation: 2 ** 32 })).toThrow(RangeError);
  });
  it("the largest heartbeat with the field still fits a control message", () => {
    const big = encodeHeartbeat({ ...hb, seq: 0xffffffff, hardwareId: "h".repeat(64), state: "a".repeat(32), progress: 100, reason: 65535, uptime: 0xffffffff, supplyMv: 65535, version: { major: 255, minor: 255, revision: 65535, build: 0xffffffff }, revocation: 0xffffffff });
    expect(big.length).toBeLessThanOrEqual(MAX_CONTROL_PAYLOAD);
  });
  it("key set and revocation epoch fields (issue 16B): round-trip, strict, and the largest heartbeat with them still fits", () => {
    const withAll = { ...hb, revocation: 3, revocationEpoch: 2, keySet: { epoch: 1, sequence: 9 } };
    expect(decodeHeartbeat(encodeHeartbeat(withAll))).toEqual(withAll);
    const base = JSON.parse(new TextDecoder().decode(encodeHeartbeat(hb)));
    for (const bad of ["1", "1.", ".1", "01.2", "1.2.3", "4294967296.1", 7]) {
      expect(code(() => decodeHeartbeat(utf8Encode(JSON.stringify({ ...base, keyset: bad }))))).toBe(Reason.MESSAGE_MALFORMED);
    }
    const big = encodeHeartbeat({ ...hb, seq: 0xffffffff, hardwareId: "h".repeat(64), state: "a".repeat(32), progress: 100, reason: 65535, uptime: 0xffffffff, supplyMv: 65535, version: { major: 255, minor: 255, revision: 65535, build: 0xffffffff }, revocation: 0xffffffff, revocationEpoch: 0xffffffff, keySet: { epoch: 0xffffffff, sequence: 0xffffffff } });
    expect(big.length).toBeLessThanOrEqual(MAX_CONTROL_PAYLOAD);
  });
});

describe("the revocation leaf", () => {
  it("is one of the device's subscriptions (QoS 1) and an accepted inbound topic", () => {
    expect(deviceSubscriptions("dev-1")).toContainEqual({ topic: "xs-ota/v1/dev-1/revocation", qos: 1 });
    expect(deviceInboundLeaf("dev-1", topicFor("dev-1", "revocation"))).toBe("revocation");
    expect(code(() => deviceInboundLeaf("dev-1", "xs-ota/v1/dev-2/revocation"))).toBe(Reason.MESSAGE_TOPIC);
  });
  it("carries the envelope as opaque bytes: non-empty, at most MAX_REVOCATION (room for the largest envelope)", () => {
    expect(MAX_REVOCATION).toBeGreaterThanOrEqual(MAX_REVOCATION_ENVELOPE_BYTES);
    const env = new Uint8Array(MAX_REVOCATION).fill(1);
    expect(decodeRevocationPayload(env)).toBe(env);
    expect(code(() => decodeRevocationPayload(new Uint8Array(0)))).toBe(Reason.MESSAGE_MALFORMED);
    expect(code(() => decodeRevocationPayload(new Uint8Array(MAX_REVOCATION + 1)))).toBe(Reason.MESSAGE_TOO_LARGE);
  });
});

describe("the revoked status event", () => {
  it("is a status event and round-trips with REVOKED", () => {
    expect(STATUS_EVENTS).toContain("revoked");
    const s = { seq: 3, event: "revoked" as const, version: hb.version, reason: Reason.REVOKED };
    expect(decodeStatusReport(encodeStatusReport(s))).toEqual(s);
  });
});

describe("the ack's time statement (issue 16B)", () => {
  it("round-trips as hex, is optional, and is strict about hex and length", () => {
    const statement = Uint8Array.from({ length: MAX_TIME_STATEMENT }, (_, i) => i);
    const ack = { seq: 0xffffffff, interval: 86400, time: 2 ** 40, statement };
    const bytes = encodeHeartbeatAck(ack);
    expect(bytes.length).toBeLessThanOrEqual(MAX_CONTROL_PAYLOAD);
    expect(decodeHeartbeatAck(bytes)).toEqual(ack);
    expect(decodeHeartbeatAck(encodeHeartbeatAck({ seq: 1, interval: 60, time: 5 }))).toEqual({ seq: 1, interval: 60, time: 5 });
    for (const stmt of ["zz", "abc", "", "AB", "00".repeat(MAX_TIME_STATEMENT + 1), 5]) {
      expect(code(() => decodeHeartbeatAck(utf8Encode(JSON.stringify({ seq: 1, interval: 60, time: 5, stmt }))))).toBe(Reason.MESSAGE_MALFORMED);
    }
    expect(() => encodeHeartbeatAck({ seq: 1, interval: 60, time: 5, statement: new Uint8Array(MAX_TIME_STATEMENT + 1) })).toThrow(RangeError);
  });
});
