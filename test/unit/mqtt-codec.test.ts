/**
 * The MQTT codec against mqtt-packet (the reference), both directions, for
 * every packet type; stream splits at every point; malformed and oversize
 * input; and a seeded random-bytes run.
 */
import { describe, expect, it } from "vitest";
import mqttPacket from "mqtt-packet";
import { Reason } from "../../src/errors";
import { encodePacket, MqttDecoder, topicMatches, isValidTopicFilter, type Packet } from "../../src/protocol/mqtt-codec";
import { Prng } from "../../hal/mock/prng";

const enc = (s: string) => new TextEncoder().encode(s);

/** Our packet → mqtt-packet's object. */
function toTheirs(p: Packet): mqttPacket.Packet {
  switch (p.type) {
    case "connect":
      return {
        cmd: "connect",
        protocolId: p.protocolName as "MQTT",
        protocolVersion: p.protocolLevel as 4,
        clientId: p.clientId,
        keepalive: p.keepAlive,
        clean: p.clean,
        ...(p.username !== undefined ? { username: p.username } : {}),
        ...(p.password !== undefined ? { password: Buffer.from(p.password) } : {}),
        ...(p.will ? { will: { topic: p.will.topic, payload: Buffer.from(p.will.payload), qos: p.will.qos, retain: p.will.retain } } : {}),
      };
    case "connack":
      return { cmd: "connack", sessionPresent: p.sessionPresent, returnCode: p.returnCode };
    case "publish":
      return { cmd: "publish", topic: p.topic, payload: Buffer.from(p.payload), qos: p.qos, retain: p.retain, dup: p.dup, ...(p.packetId ? { messageId: p.packetId } : {}) };
    case "subscribe":
      return { cmd: "subscribe", messageId: p.packetId, subscriptions: p.subscriptions.map((s) => ({ topic: s.topic, qos: s.qos })) };
    case "suback":
      return { cmd: "suback", messageId: p.packetId, granted: [...p.granted] };
    case "unsubscribe":
      return { cmd: "unsubscribe", messageId: p.packetId, unsubscriptions: [...p.topics] };
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
    case "unsuback":
      return { cmd: p.type, messageId: p.packetId } as mqttPacket.Packet;
    default:
      return { cmd: p.type } as mqttPacket.Packet;
  }
}

/** mqtt-packet's parsed object → our shape (for comparison). */
function fromTheirs(x: any): Packet {
  const b = (v: any) => new Uint8Array(v);
  switch (x.cmd) {
    case "connect":
      return {
        type: "connect",
        protocolName: x.protocolId,
        protocolLevel: x.protocolVersion,
        clientId: x.clientId,
        keepAlive: x.keepalive,
        clean: x.clean,
        ...(x.will ? { will: { topic: x.will.topic, payload: b(x.will.payload), qos: x.will.qos, retain: x.will.retain } } : {}),
        ...(x.username !== undefined ? { username: x.username } : {}),
        ...(x.password !== undefined ? { password: b(x.password) } : {}),
      };
    case "connack":
      return { type: "connack", sessionPresent: x.sessionPresent, returnCode: x.returnCode };
    case "publish":
      return { type: "publish", topic: x.topic, payload: b(x.payload), qos: x.qos, retain: x.retain, dup: x.dup, ...(x.qos > 0 ? { packetId: x.messageId } : {}) };
    case "subscribe":
      return { type: "subscribe", packetId: x.messageId, subscriptions: x.subscriptions.map((s: any) => ({ topic: s.topic, qos: s.qos })) };
    case "suback":
      return { type: "suback", packetId: x.messageId, granted: x.granted };
    case "unsubscribe":
      return { type: "unsubscribe", packetId: x.messageId, topics: x.unsubscriptions };
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
    case "unsuback":
      return { type: x.cmd, packetId: x.messageId };
    default:
      return { type: x.cmd };
  }
}

/** Canonical form for deep comparison (bytes as hex, keys sorted). */
function canon(p: unknown): string {
  return JSON.stringify(p, (_k, v) => {
    if (v instanceof Uint8Array) return "hex:" + Buffer.from(v).toString("hex");
    if (v && typeof v === "object" && !Array.isArray(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]));
    return v;
  });
}

function theirParse(bytes: Uint8Array): any[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const out: any[] = [];
  let err: Error | undefined;
  parser.on("packet", (p) => out.push(p));
  parser.on("error", (e) => (err = e));
  parser.parse(Buffer.from(bytes));
  if (err) throw err;
  return out;
}

function ourParse(bytes: Uint8Array, max = 1 << 20): Packet[] {
  const d = new MqttDecoder(max);
  const out: Packet[] = [];
  const rc = d.update(bytes, (p) => out.push(p));
  if (rc !== Reason.OK) throw new Error(`decoder: ${rc} ${d.why}`);
  expect(d.finish()).toBe(Reason.OK);
  return out;
}

const big = new Uint8Array(20_000).map((_, i) => i & 0xff);
const fixtures: [string, Packet][] = [
  ["connect minimal", { type: "connect", protocolName: "MQTT", protocolLevel: 4, clientId: "dev-1", keepAlive: 60, clean: true }],
  ["connect empty client id", { type: "connect", protocolName: "MQTT", protocolLevel: 4, clientId: "", keepAlive: 0, clean: true }],
  [
    "connect with will, credentials, persistent session",
    {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "usr-n520-00042",
      keepAlive: 65535,
      clean: false,
      will: { topic: "xs-ota/v1/usr-n520-00042/status", payload: enc('{"event":"offline"}'), qos: 1, retain: false },
      username: "device",
      password: Uint8Array.of(0, 1, 2, 255),
    },
  ],
  ["connect will qos 2 retained, username only", { type: "connect", protocolName: "MQTT", protocolLevel: 4, clientId: "c", keepAlive: 30, clean: true, will: { topic: "w", payload: new Uint8Array(0), qos: 2, retain: true }, username: "ü-ser" }],
  ...[0, 1, 2, 3, 4, 5].map((rc): [string, Packet] => [`connack return code ${rc}`, { type: "connack", sessionPresent: false, returnCode: rc }]),
  ["connack session present", { type: "connack", sessionPresent: true, returnCode: 0 }],
  ["publish qos 0", { type: "publish", topic: "xs-ota/v1/d/hb", payload: enc("{}"), qos: 0, retain: false, dup: false }],
  ["publish qos 0 empty payload retained", { type: "publish", topic: "a", payload: new Uint8Array(0), qos: 0, retain: true, dup: false }],
  ["publish qos 1", { type: "publish", topic: "a/b", payload: Uint8Array.of(1, 2, 3), qos: 1, retain: false, dup: false, packetId: 1 }],
  ["publish qos 1 dup", { type: "publish", topic: "a/b", payload: Uint8Array.of(9), qos: 1, retain: false, dup: true, packetId: 65535 }],
  ["publish qos 2 retain", { type: "publish", topic: "x/é/y", payload: Uint8Array.of(7), qos: 2, retain: true, dup: false, packetId: 300 }],
  ["publish 200 bytes (2-byte length)", { type: "publish", topic: "t", payload: big.subarray(0, 200), qos: 0, retain: false, dup: false }],
  ["publish 20000 bytes (3-byte length)", { type: "publish", topic: "t", payload: big, qos: 1, retain: false, dup: false, packetId: 2 }],
  ["puback", { type: "puback", packetId: 7 }],
  ["pubrec", { type: "pubrec", packetId: 8 }],
  ["pubrel", { type: "pubrel", packetId: 9 }],
  ["pubcomp", { type: "pubcomp", packetId: 10 }],
  ["subscribe", { type: "subscribe", packetId: 11, subscriptions: [{ topic: "xs-ota/v1/d/offer", qos: 1 }, { topic: "a/+/#", qos: 0 }, { topic: "$share/g/x/+/y", qos: 2 }] }],
  ["suback with a refusal", { type: "suback", packetId: 11, granted: [1, 0x80, 0, 2] }],
  ["unsubscribe", { type: "unsubscribe", packetId: 12, topics: ["a/b", "c/#"] }],
  ["unsuback", { type: "unsuback", packetId: 12 }],
  ["pingreq", { type: "pingreq" }],
  ["pingresp", { type: "pingresp" }],
  ["disconnect", { type: "disconnect" }],
];

describe("MQTT codec against mqtt-packet", () => {
  it("covers all 14 MQTT 3.1.1 packet types", () => {
    expect(new Set(fixtures.map(([, p]) => p.type)).size).toBe(14);
  });
  for (const [name, packet] of fixtures) {
    it(`${name}: our bytes equal mqtt-packet's, and each side decodes the other's`, () => {
      const ours = encodePacket(packet);
      const theirs = new Uint8Array(mqttPacket.generate(toTheirs(packet)));
      expect(Buffer.from(ours).toString("hex")).toBe(Buffer.from(theirs).toString("hex"));
      // their bytes → our decoder
      const decoded = ourParse(theirs);
      expect(decoded.length).toBe(1);
      expect(canon(decoded[0])).toBe(canon(packet));
      // our bytes → their parser
      const parsed = theirParse(ours);
      expect(parsed.length).toBe(1);
      expect(canon(fromTheirs(parsed[0]))).toBe(canon(packet));
    });
  }

  it("decodes a stream of every packet split at every point", () => {
    const stream = Buffer.concat(fixtures.filter(([n]) => !n.includes("20000")).map(([, p]) => encodePacket(p)));
    const want = fixtures.filter(([n]) => !n.includes("20000")).map(([, p]) => canon(p));
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new MqttDecoder(4096);
      const got: string[] = [];
      expect(d.update(stream.subarray(0, cut), (p) => got.push(canon(p)))).toBe(Reason.OK);
      expect(d.update(stream.subarray(cut), (p) => got.push(canon(p)))).toBe(Reason.OK);
      expect(d.finish()).toBe(Reason.OK);
      expect(got).toEqual(want);
    }
  });

  it("decodes byte by byte", () => {
    const bytes = encodePacket(fixtures[2][1]);
    const d = new MqttDecoder();
    const got: Packet[] = [];
    for (const b of bytes) expect(d.update(Uint8Array.of(b), (p) => got.push(p))).toBe(Reason.OK);
    expect(canon(got[0])).toBe(canon(fixtures[2][1]));
  });
});

describe("MQTT decoder refuses bad input", () => {
  const bad = (name: string, bytes: number[], code: number = Reason.MQTT_MALFORMED, max = 1024) =>
    it(name, () => {
      const d = new MqttDecoder(max);
      const rc = d.update(Uint8Array.from(bytes), () => {
        throw new Error("no packet expected");
      });
      expect(rc).toBe(code);
      expect(d.error).toBe(code);
      expect(d.update(Uint8Array.of(0xc0, 0), () => {})).toBe(code); // stays failed
    });
  bad("reserved type 0", [0x00, 0x00]);
  bad("reserved type 15", [0xf0, 0x00]);
  bad("PUBREL with flags 0", [0x60, 0x02, 0x00, 0x01]);
  bad("SUBSCRIBE with flags 0", [0x80, 0x05, 0, 1, 0, 1, 0x61]);
  bad("PINGREQ with flags", [0xc1, 0x00]);
  bad("PUBLISH QoS 3", [0x36, 0x05, 0, 1, 0x61, 0, 1]);
  bad("PUBLISH QoS 0 with DUP", [0x38, 0x03, 0, 1, 0x61]);
  bad("remaining length over 4 bytes", [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]);
  bad("PUBLISH topic with a wildcard", [0x30, 0x03, 0, 1, 0x23]);
  bad("PUBLISH topic empty", [0x30, 0x02, 0, 0]);
  bad("PUBLISH topic not UTF-8", [0x30, 0x04, 0, 2, 0xc3, 0x28]);
  bad("PUBLISH topic containing U+0000", [0x30, 0x04, 0, 2, 0x61, 0x00]);
  bad("PUBLISH topic length past the packet", [0x30, 0x03, 0, 9, 0x61]);
  bad("PUBLISH QoS 1 packet id 0", [0x32, 0x05, 0, 1, 0x61, 0, 0]);
  bad("PUBACK too long", [0x40, 0x03, 0, 1, 0]);
  bad("PUBACK too short", [0x40, 0x01, 0]);
  bad("CONNACK reserved flag", [0x20, 0x02, 0x02, 0x00]);
  bad("CONNACK reserved return code 6", [0x20, 0x02, 0x00, 0x06]);
  bad("CONNACK refusal with session present", [0x20, 0x02, 0x01, 0x05]);
  bad("PINGRESP with a body", [0xd0, 0x01, 0x00]);
  bad("SUBACK bad return code", [0x90, 0x03, 0, 1, 0x03]);
  bad("SUBACK without codes", [0x90, 0x02, 0, 1]);
  bad("SUBSCRIBE without filters", [0x82, 0x02, 0, 1]);
  bad("SUBSCRIBE requested QoS 3", [0x82, 0x06, 0, 1, 0, 1, 0x61, 3]);
  bad("SUBSCRIBE filter a#", [0x82, 0x07, 0, 1, 0, 2, 0x61, 0x23, 0]);
  bad("UNSUBSCRIBE without filters", [0xa2, 0x02, 0, 1]);
  bad("CONNECT reserved flag", [0x10, 0x0d, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x03, 0, 10, 0, 1, 0x61]);
  bad("CONNECT password without username", [0x10, 0x10, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x42, 0, 10, 0, 1, 0x61, 0, 1, 0x70]);
  bad("CONNECT will QoS without will", [0x10, 0x0d, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x0a, 0, 10, 0, 1, 0x61]);
  bad("oversize packet → MQTT_TOO_LARGE", [0x30, 0x80, 0x08], Reason.MQTT_TOO_LARGE, 1024);
  bad("max remaining length → MQTT_TOO_LARGE", [0x30, 0xff, 0xff, 0xff, 0x7f], Reason.MQTT_TOO_LARGE, 1024);

  it("refuses an oversize packet before allocating for it", () => {
    const d = new MqttDecoder(1024);
    expect(d.update(Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0x7f), () => {})).toBe(Reason.MQTT_TOO_LARGE);
    expect(d.buffered).toBe(0);
  });
  it("a packet exactly at the bound passes, one byte more does not", () => {
    const payload = new Uint8Array(1024 - 2 - 3 - 1 /* header, length bytes, topic */);
    const exact = encodePacket({ type: "publish", topic: "t", payload: payload.subarray(0, payload.length - 1), qos: 0, retain: false, dup: false });
    expect(exact.length).toBeLessThanOrEqual(1024);
    const atBound = encodePacket({ type: "publish", topic: "t", payload: new Uint8Array(1024 - 1 - 2 - 3), qos: 0, retain: false, dup: false });
    expect(atBound.length).toBe(1024);
    expect(new MqttDecoder(1024).update(atBound, () => {})).toBe(Reason.OK);
    const over = encodePacket({ type: "publish", topic: "t", payload: new Uint8Array(1024 - 1 - 2 - 3 + 1), qos: 0, retain: false, dup: false });
    expect(new MqttDecoder(1024).update(over, () => {})).toBe(Reason.MQTT_TOO_LARGE);
  });
  it("finish inside a packet is MQTT_MALFORMED", () => {
    const d = new MqttDecoder();
    expect(d.update(Uint8Array.of(0x40, 0x02, 0x00), () => {})).toBe(Reason.OK);
    expect(d.finish()).toBe(Reason.MQTT_MALFORMED);
  });
  it("the encoder refuses invalid packets", () => {
    expect(() => encodePacket({ type: "publish", topic: "a/+", payload: new Uint8Array(0), qos: 0, retain: false, dup: false })).toThrow(RangeError);
    expect(() => encodePacket({ type: "publish", topic: "a", payload: new Uint8Array(0), qos: 1, retain: false, dup: false })).toThrow(RangeError);
    expect(() => encodePacket({ type: "publish", topic: "a", payload: new Uint8Array(0), qos: 0, retain: false, dup: true })).toThrow(RangeError);
    expect(() => encodePacket({ type: "puback", packetId: 0 })).toThrow(RangeError);
    expect(() => encodePacket({ type: "subscribe", packetId: 1, subscriptions: [] })).toThrow(RangeError);
    expect(() => encodePacket({ type: "subscribe", packetId: 1, subscriptions: [{ topic: "a/#/b", qos: 0 }] })).toThrow(RangeError);
    expect(() => encodePacket({ type: "suback", packetId: 1, granted: [3] })).toThrow(RangeError);
    expect(() => encodePacket({ type: "connect", protocolName: "MQTT", protocolLevel: 4, clientId: "a", keepAlive: 1, clean: true, password: Uint8Array.of(1) })).toThrow(RangeError);
    expect(() => encodePacket({ type: "connect", protocolName: "MQTT", protocolLevel: 4, clientId: "x".repeat(70000), keepAlive: 1, clean: true })).toThrow(RangeError);
  });
  it("topic filters match as 3.1.1 section 4.7 says", () => {
    expect(topicMatches("a/+/c", "a/b/c")).toBe(true);
    expect(topicMatches("a/#", "a")).toBe(true);
    expect(topicMatches("a/#", "a/b/c")).toBe(true);
    expect(topicMatches("+/b", "a/b/c")).toBe(false);
    expect(topicMatches("#", "$SYS/x")).toBe(false);
    expect(isValidTopicFilter("a/b#")).toBe(false);
    expect(isValidTopicFilter("a/+b")).toBe(false);
  });
});

describe("MQTT decoder: seeded random input", () => {
  it("100,000 random and mutated inputs: no throw, bounded buffer, failure is sticky", () => {
    const prng = new Prng(0x5eed_0001);
    const seeds = fixtures.filter(([n]) => !n.includes("20000")).map(([, p]) => encodePacket(p));
    const MAX = 512;
    let packets = 0;
    let failures = 0;
    for (let run = 0; run < 100_000; run++) {
      let input: Uint8Array;
      if (run % 2 === 0) {
        input = prng.fill(new Uint8Array(prng.below(48)));
        if (input.length > 0 && run % 4 === 0) input[0] = (1 + prng.below(14)) << 4 | (input[0] & 0x0f); // a valid type nibble
      } else {
        const s = seeds[prng.below(seeds.length)];
        input = s.slice();
        for (let k = 0, n = 1 + prng.below(3); k < n; k++) input[prng.below(input.length)] ^= 1 << prng.below(8);
      }
      const d = new MqttDecoder(MAX);
      const cut = prng.below(input.length + 1);
      const rc1 = d.update(input.subarray(0, cut), () => packets++);
      expect(d.buffered).toBeLessThanOrEqual(MAX);
      const rc2 = d.update(input.subarray(cut), () => packets++);
      expect(d.buffered).toBeLessThanOrEqual(MAX);
      if (rc1 !== Reason.OK) expect(rc2).toBe(rc1);
      const fin = d.finish();
      expect([Reason.OK, Reason.MQTT_MALFORMED, Reason.MQTT_TOO_LARGE]).toContain(fin);
      if (fin !== Reason.OK) failures++;
    }
    // The run exercised both outcomes.
    expect(packets).toBeGreaterThan(1000);
    expect(failures).toBeGreaterThan(1000);
  });
});
