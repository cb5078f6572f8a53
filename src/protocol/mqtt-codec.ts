/**
 * MQTT 3.1.1 (OASIS standard, protocol level 4) packet codec: an encoder for
 * every control packet and a streaming decoder in explicit stages with a
 * bounded packet size. Both directions are here because the device encodes
 * what it sends, and the in-XS scripted broker of the XS lane decodes it.
 *
 * Portable: Uint8Array only, no Node API.
 */
import { Reason } from "../errors";
import { utf8Decode, utf8Encode } from "../util/bytes";

export type QoS = 0 | 1 | 2;

/** Control packet type numbers (the fixed header's upper nibble). */
export const PacketType = Object.freeze({
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  unsubscribe: 10,
  unsuback: 11,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
});

/** CONNACK return codes (3.1.1 table 3.1). */
export const ConnackCode = Object.freeze({
  ACCEPTED: 0,
  BAD_PROTOCOL: 1,
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_CREDENTIALS: 4,
  NOT_AUTHORIZED: 5,
});

/** The SUBACK return code for a refused subscription. */
export const SUBACK_FAILURE = 0x80;

export interface Will {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: QoS;
  readonly retain: boolean;
}

export interface ConnectPacket {
  readonly type: "connect";
  /** "MQTT" for 3.1.1; the decoder reports what it read so a broker can answer BAD_PROTOCOL. */
  readonly protocolName: string;
  readonly protocolLevel: number;
  readonly clientId: string;
  readonly keepAlive: number;
  readonly clean: boolean;
  readonly username?: string;
  readonly password?: Uint8Array;
  readonly will?: Will;
}
export interface ConnackPacket {
  readonly type: "connack";
  readonly sessionPresent: boolean;
  readonly returnCode: number;
}
export interface PublishPacket {
  readonly type: "publish";
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly dup: boolean;
  /** Present (1..65535) exactly when qos > 0. */
  readonly packetId?: number;
}
export interface AckPacket {
  readonly type: "puback" | "pubrec" | "pubrel" | "pubcomp" | "unsuback";
  readonly packetId: number;
}
export interface Subscription {
  readonly topic: string;
  readonly qos: QoS;
}
export interface SubscribePacket {
  readonly type: "subscribe";
  readonly packetId: number;
  readonly subscriptions: readonly Subscription[];
}
export interface SubackPacket {
  readonly type: "suback";
  readonly packetId: number;
  /** Granted QoS per filter, or SUBACK_FAILURE (0x80). */
  readonly granted: readonly number[];
}
export interface UnsubscribePacket {
  readonly type: "unsubscribe";
  readonly packetId: number;
  readonly topics: readonly string[];
}
export interface EmptyPacket {
  readonly type: "pingreq" | "pingresp" | "disconnect";
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | AckPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | EmptyPacket;

/** The largest remaining length the 4-byte variable integer can express (3.1.1 §2.2.3). */
export const MAX_REMAINING_LENGTH = 268_435_455;
/** Default bound on a whole packet (fixed header included) on the device. */
export const DEFAULT_MAX_PACKET = 8192;

// ---------------------------------------------------------------- encoding

function aPacketId(id: unknown, what: string): number {
  if (typeof id === "number" && Number.isInteger(id) && id >= 1 && id <= 0xffff) return id;
  throw new RangeError(`${what}: packetId must be an integer 1..65535, got ${String(id)}`);
}

function aQos(q: unknown, what: string): QoS {
  if (q === 0 || q === 1 || q === 2) return q;
  throw new RangeError(`${what}: qos must be 0, 1 or 2, got ${String(q)}`);
}

function aBytes(b: unknown, what: string): Uint8Array {
  if (b instanceof Uint8Array) return b;
  throw new TypeError(`${what} must be a Uint8Array`);
}

/** MQTT UTF-8 string: at most 65535 bytes, no U+0000. */
function mqttString(s: unknown, what: string): Uint8Array {
  if (typeof s !== "string") throw new TypeError(`${what} must be a string`);
  if (s.indexOf("\u0000") >= 0) throw new RangeError(`${what} must not contain U+0000`);
  const b = utf8Encode(s);
  if (b.length > 0xffff) throw new RangeError(`${what} is ${b.length} bytes, more than 65535`);
  return b;
}

/** Topic name for PUBLISH: non-empty, no wildcards. */
export function isValidTopicName(topic: string): boolean {
  return typeof topic === "string" && topic.length > 0 && topic.indexOf("+") < 0 && topic.indexOf("#") < 0 && topic.indexOf("\u0000") < 0;
}

/** Topic filter for SUBSCRIBE: non-empty; `+` fills a whole level; `#` only as the whole last level. */
export function isValidTopicFilter(filter: string): boolean {
  if (typeof filter !== "string" || filter.length === 0 || filter.indexOf("\u0000") >= 0) return false;
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l.indexOf("#") >= 0 && (l !== "#" || i !== levels.length - 1)) return false;
    if (l.indexOf("+") >= 0 && l !== "+") return false;
  }
  return true;
}

/** Does `topic` match `filter` (3.1.1 §4.7; `$`-topics are not matched by leading wildcards)? */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  if (t[0].charAt(0) === "$" && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

class Writer {
  readonly parts: Uint8Array[] = [];
  length = 0;
  byte(b: number): void {
    this.push(Uint8Array.of(b));
  }
  u16(v: number): void {
    this.push(Uint8Array.of(v >>> 8, v & 0xff));
  }
  prefixed(b: Uint8Array): void {
    this.u16(b.length);
    this.push(b);
  }
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
}

function frame(first: number, body: Writer): Uint8Array {
  const n = body.length;
  if (n > MAX_REMAINING_LENGTH) throw new RangeError(`packet body of ${n} bytes exceeds the MQTT limit ${MAX_REMAINING_LENGTH}`);
  const len: number[] = [];
  let x = n;
  do {
    let d = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) d |= 0x80;
    len.push(d);
  } while (x > 0);
  const out = new Uint8Array(1 + len.length + n);
  out[0] = first;
  out.set(len, 1);
  let o = 1 + len.length;
  for (const p of body.parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Encode one control packet.
 * @throws TypeError / RangeError for a packet that is not valid MQTT 3.1.1
 *   (wrong types, out-of-range ids, strings over 65535 bytes, wildcards in a
 *   topic name, empty subscription lists, a password without a username).
 * @example encodePacket({ type: "pingreq" }) // Uint8Array [0xc0, 0x00]
 */
export function encodePacket(p: Packet): Uint8Array {
  const w = new Writer();
  switch (p.type) {
    case "connect": {
      const clientId = mqttString(p.clientId, "connect.clientId");
      if (!Number.isInteger(p.keepAlive) || p.keepAlive < 0 || p.keepAlive > 0xffff) throw new RangeError("connect.keepAlive must be 0..65535");
      if (p.password !== undefined && p.username === undefined) throw new RangeError("connect: a password needs a username in MQTT 3.1.1");
      w.prefixed(mqttString(p.protocolName ?? "MQTT", "connect.protocolName"));
      w.byte(p.protocolLevel ?? 4);
      let flags = p.clean ? 0x02 : 0;
      if (p.will) {
        if (!isValidTopicName(p.will.topic)) throw new RangeError("connect.will.topic must be a topic name without wildcards");
        flags |= 0x04 | (aQos(p.will.qos, "connect.will") << 3) | (p.will.retain ? 0x20 : 0);
      }
      if (p.password !== undefined) flags |= 0x40;
      if (p.username !== undefined) flags |= 0x80;
      w.byte(flags);
      w.u16(p.keepAlive);
      w.prefixed(clientId);
      if (p.will) {
        w.prefixed(mqttString(p.will.topic, "connect.will.topic"));
        const payload = aBytes(p.will.payload, "connect.will.payload");
        if (payload.length > 0xffff) throw new RangeError("connect.will.payload over 65535 bytes");
        w.prefixed(payload);
      }
      if (p.username !== undefined) w.prefixed(mqttString(p.username, "connect.username"));
      if (p.password !== undefined) {
        const pw = aBytes(p.password, "connect.password");
        if (pw.length > 0xffff) throw new RangeError("connect.password over 65535 bytes");
        w.prefixed(pw);
      }
      return frame(0x10, w);
    }
    case "connack":
      if (!Number.isInteger(p.returnCode) || p.returnCode < 0 || p.returnCode > 255) throw new RangeError("connack.returnCode must be 0..255");
      w.byte(p.sessionPresent ? 1 : 0);
      w.byte(p.returnCode);
      return frame(0x20, w);
    case "publish": {
      const qos = aQos(p.qos, "publish");
      if (!isValidTopicName(p.topic)) throw new RangeError(`publish.topic "${String(p.topic)}" must be non-empty, without wildcards`);
      if (qos === 0 && p.dup) throw new RangeError("publish: DUP must be 0 for QoS 0");
      w.prefixed(mqttString(p.topic, "publish.topic"));
      if (qos > 0) w.u16(aPacketId(p.packetId, "publish"));
      w.push(aBytes(p.payload, "publish.payload"));
      return frame(0x30 | (p.dup ? 0x08 : 0) | (qos << 1) | (p.retain ? 1 : 0), w);
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
    case "unsuback":
      w.u16(aPacketId(p.packetId, p.type));
      return frame((PacketType[p.type] << 4) | (p.type === "pubrel" ? 0x02 : 0), w);
    case "subscribe": {
      w.u16(aPacketId(p.packetId, "subscribe"));
      if (!Array.isArray(p.subscriptions) || p.subscriptions.length === 0) throw new RangeError("subscribe needs at least one subscription");
      for (const s of p.subscriptions) {
        if (!isValidTopicFilter(s.topic)) throw new RangeError(`subscribe: invalid topic filter "${String(s.topic)}"`);
        w.prefixed(mqttString(s.topic, "subscribe.topic"));
        w.byte(aQos(s.qos, "subscribe"));
      }
      return frame(0x82, w);
    }
    case "suback":
      w.u16(aPacketId(p.packetId, "suback"));
      if (!Array.isArray(p.granted) || p.granted.length === 0) throw new RangeError("suback needs at least one return code");
      for (const g of p.granted) {
        if (g !== 0 && g !== 1 && g !== 2 && g !== SUBACK_FAILURE) throw new RangeError(`suback: return code ${String(g)} is not 0, 1, 2 or 0x80`);
        w.byte(g);
      }
      return frame(0x90, w);
    case "unsubscribe":
      w.u16(aPacketId(p.packetId, "unsubscribe"));
      if (!Array.isArray(p.topics) || p.topics.length === 0) throw new RangeError("unsubscribe needs at least one topic filter");
      for (const t of p.topics) {
        if (!isValidTopicFilter(t)) throw new RangeError(`unsubscribe: invalid topic filter "${String(t)}"`);
        w.prefixed(mqttString(t, "unsubscribe.topic"));
      }
      return frame(0xa2, w);
    case "pingreq":
      return Uint8Array.of(0xc0, 0);
    case "pingresp":
      return Uint8Array.of(0xd0, 0);
    case "disconnect":
      return Uint8Array.of(0xe0, 0);
    default:
      throw new TypeError(`encodePacket: unknown packet type ${String((p as { type?: unknown }).type)}`);
  }
}

// ---------------------------------------------------------------- decoding

/** Thrown inside the body parser only; never leaves this module. */
class Malformed {
  constructor(readonly why: string) {}
}

class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  get left(): number {
    return this.b.length - this.pos;
  }
  byte(): number {
    if (this.pos >= this.b.length) throw new Malformed("truncated");
    return this.b[this.pos++];
  }
  u16(): number {
    if (this.pos + 2 > this.b.length) throw new Malformed("truncated");
    const v = (this.b[this.pos] << 8) | this.b[this.pos + 1];
    this.pos += 2;
    return v;
  }
  bytes(): Uint8Array {
    const n = this.u16();
    if (this.pos + n > this.b.length) throw new Malformed("field runs past the packet");
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  string(): string {
    const s = utf8Decode(this.bytes());
    if (s === undefined) throw new Malformed("string is not well-formed UTF-8");
    if (s.indexOf("\u0000") >= 0) throw new Malformed("string contains U+0000");
    return s;
  }
  packetId(): number {
    const id = this.u16();
    if (id === 0) throw new Malformed("packet identifier 0");
    return id;
  }
  rest(): Uint8Array {
    const v = this.b.subarray(this.pos);
    this.pos = this.b.length;
    return v;
  }
  end(): void {
    if (this.pos !== this.b.length) throw new Malformed("trailing bytes in packet");
  }
}

const TYPE_NAMES = ["", "connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe", "suback", "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect"] as const;

/** Required fixed-header flag nibble per type (3.1.1 §2.2.2); -1 for PUBLISH (flags carry DUP/QoS/RETAIN). */
const REQUIRED_FLAGS = [-2, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, -2];

function checkFirstByte(first: number): string | undefined {
  const type = first >> 4;
  const flags = first & 0x0f;
  const want = REQUIRED_FLAGS[type];
  if (want === -2) return `reserved packet type ${type}`;
  if (want === -1) {
    const qos = (flags >> 1) & 3;
    if (qos === 3) return "PUBLISH with QoS 3";
    if (qos === 0 && flags & 0x08) return "PUBLISH QoS 0 with DUP set";
    return undefined;
  }
  return flags === want ? undefined : `${TYPE_NAMES[type]} with fixed-header flags 0x${flags.toString(16)}`;
}

function parseBody(first: number, body: Uint8Array): Packet {
  const type = first >> 4;
  const r = new Reader(body);
  switch (type) {
    case 1: {
      const protocolName = r.string();
      const protocolLevel = r.byte();
      const flags = r.byte();
      if (flags & 0x01) throw new Malformed("CONNECT reserved flag set");
      const keepAlive = r.u16();
      const clientId = r.string();
      const hasWill = (flags & 0x04) !== 0;
      const willQos = (flags >> 3) & 3;
      const willRetain = (flags & 0x20) !== 0;
      if (!hasWill && (willQos !== 0 || willRetain)) throw new Malformed("CONNECT will QoS/retain without a will");
      if (willQos === 3) throw new Malformed("CONNECT will QoS 3");
      if (flags & 0x40 && !(flags & 0x80)) throw new Malformed("CONNECT password without username");
      let will: Will | undefined;
      if (hasWill) {
        const topic = r.string();
        if (!isValidTopicName(topic)) throw new Malformed("CONNECT will topic is not a topic name");
        will = { topic, payload: r.bytes(), qos: willQos as QoS, retain: willRetain };
      }
      const username = flags & 0x80 ? r.string() : undefined;
      const password = flags & 0x40 ? r.bytes() : undefined;
      r.end();
      const p: ConnectPacket = { type: "connect", protocolName, protocolLevel, clientId, keepAlive, clean: (flags & 0x02) !== 0 };
      return Object.assign(p, will ? { will } : {}, username !== undefined ? { username } : {}, password !== undefined ? { password } : {});
    }
    case 2: {
      const ack = r.byte();
      if (ack & 0xfe) throw new Malformed("CONNACK reserved acknowledge flags set");
      const returnCode = r.byte();
      r.end();
      if (returnCode > 5) throw new Malformed(`CONNACK return code ${returnCode} is reserved`);
      if (returnCode !== 0 && ack & 1) throw new Malformed("CONNACK refusal with session present");
      return { type: "connack", sessionPresent: (ack & 1) !== 0, returnCode };
    }
    case 3: {
      const qos = ((first >> 1) & 3) as QoS;
      const topic = r.string();
      if (!isValidTopicName(topic)) throw new Malformed("PUBLISH topic is empty or has wildcards");
      const packetId = qos > 0 ? r.packetId() : undefined;
      const payload = r.rest();
      const p: PublishPacket = { type: "publish", topic, payload, qos, retain: (first & 1) !== 0, dup: (first & 8) !== 0 };
      return packetId === undefined ? p : Object.assign(p, { packetId });
    }
    case 4:
    case 5:
    case 6:
    case 7:
    case 11: {
      const packetId = r.packetId();
      r.end();
      return { type: TYPE_NAMES[type] as AckPacket["type"], packetId };
    }
    case 8: {
      const packetId = r.packetId();
      const subscriptions: Subscription[] = [];
      while (r.left > 0) {
        const topic = r.string();
        if (!isValidTopicFilter(topic)) throw new Malformed("SUBSCRIBE with an invalid topic filter");
        const q = r.byte();
        if (q > 2) throw new Malformed("SUBSCRIBE requested QoS byte out of range");
        subscriptions.push({ topic, qos: q as QoS });
      }
      if (subscriptions.length === 0) throw new Malformed("SUBSCRIBE without topic filters");
      return { type: "subscribe", packetId, subscriptions };
    }
    case 9: {
      const packetId = r.packetId();
      const granted: number[] = [];
      while (r.left > 0) {
        const g = r.byte();
        if (g > 2 && g !== SUBACK_FAILURE) throw new Malformed(`SUBACK return code 0x${g.toString(16)}`);
        granted.push(g);
      }
      if (granted.length === 0) throw new Malformed("SUBACK without return codes");
      return { type: "suback", packetId, granted };
    }
    case 10: {
      const packetId = r.packetId();
      const topics: string[] = [];
      while (r.left > 0) {
        const t = r.string();
        if (!isValidTopicFilter(t)) throw new Malformed("UNSUBSCRIBE with an invalid topic filter");
        topics.push(t);
      }
      if (topics.length === 0) throw new Malformed("UNSUBSCRIBE without topic filters");
      return { type: "unsubscribe", packetId, topics };
    }
    default:
      r.end();
      return { type: TYPE_NAMES[type] as EmptyPacket["type"] };
  }
}

const STAGE_TYPE = 0;
const STAGE_LENGTH = 1;
const STAGE_BODY = 2;
const STAGE_FAILED = 3;

/**
 * Streaming MQTT decoder in explicit stages: fixed-header byte → remaining
 * length (at most 4 bytes) → body. The body buffer is allocated only after
 * the declared size has been checked against `maxPacket`, so an oversize
 * packet costs no memory. Malformed input never throws: `update` returns a
 * reason code and the decoder stays failed (a connection is dropped on the
 * first bad packet; there is no resynchronising inside a byte stream).
 *
 * Memory bound: at most one body buffer of `maxPacket - 2` bytes.
 *
 * @example
 *   const d = new MqttDecoder(8192);
 *   const rc = d.update(bytes, (p) => handle(p)); // Reason.OK or MQTT_MALFORMED / MQTT_TOO_LARGE
 */
export class MqttDecoder {
  readonly maxPacket: number;
  private stage = STAGE_TYPE;
  private first = 0;
  private remaining = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private body: Uint8Array = new Uint8Array(0);
  private filled = 0;
  private failure: number = Reason.OK;
  /** Why the decoder failed, for the log. */
  why = "";

  constructor(maxPacket: number = DEFAULT_MAX_PACKET) {
    if (!Number.isInteger(maxPacket) || maxPacket < 2 || maxPacket > MAX_REMAINING_LENGTH + 5) {
      throw new RangeError(`MqttDecoder: maxPacket must be an integer 2..${MAX_REMAINING_LENGTH + 5}, got ${maxPacket}`);
    }
    this.maxPacket = maxPacket;
  }

  /** Bytes held for the packet in progress (the bound the fuzz run checks). */
  get buffered(): number {
    return this.body.length;
  }

  /** The failure code once failed, else Reason.OK. */
  get error(): number {
    return this.failure;
  }

  /**
   * Consume `data`, calling `onPacket` for each complete packet in order.
   * @returns Reason.OK, or MQTT_MALFORMED / MQTT_TOO_LARGE (also on every later call).
   */
  update(data: Uint8Array, onPacket: (p: Packet) => void): number {
    if (this.stage === STAGE_FAILED) return this.failure;
    if (!(data instanceof Uint8Array)) return this.fail(Reason.MQTT_MALFORMED, "input is not a Uint8Array");
    let i = 0;
    while (i < data.length) {
      if (this.stage === STAGE_TYPE) {
        const first = data[i++];
        const bad = checkFirstByte(first);
        if (bad) return this.fail(Reason.MQTT_MALFORMED, bad);
        this.first = first;
        this.remaining = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        this.stage = STAGE_LENGTH;
      } else if (this.stage === STAGE_LENGTH) {
        const b = data[i++];
        this.remaining += (b & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        this.lengthBytes++;
        if (b & 0x80) {
          if (this.lengthBytes === 4) return this.fail(Reason.MQTT_MALFORMED, "remaining length longer than 4 bytes");
          continue;
        }
        if (1 + this.lengthBytes + this.remaining > this.maxPacket) {
          return this.fail(Reason.MQTT_TOO_LARGE, `packet of ${1 + this.lengthBytes + this.remaining} bytes over the ${this.maxPacket}-byte bound`);
        }
        if (this.remaining === 0) {
          const rc = this.emit(new Uint8Array(0), onPacket);
          if (rc !== Reason.OK) return rc;
        } else {
          this.body = new Uint8Array(this.remaining);
          this.filled = 0;
          this.stage = STAGE_BODY;
        }
      } else {
        const n = Math.min(this.body.length - this.filled, data.length - i);
        this.body.set(data.subarray(i, i + n), this.filled);
        this.filled += n;
        i += n;
        if (this.filled === this.body.length) {
          const body = this.body;
          this.body = new Uint8Array(0);
          const rc = this.emit(body, onPacket);
          if (rc !== Reason.OK) return rc;
        }
      }
    }
    return Reason.OK;
  }

  /**
   * End of stream. @returns Reason.OK when no packet is half-read, MQTT_MALFORMED
   * (truncated) otherwise, or the earlier failure.
   */
  finish(): number {
    if (this.stage === STAGE_FAILED) return this.failure;
    if (this.stage !== STAGE_TYPE) return this.fail(Reason.MQTT_MALFORMED, "stream ended inside a packet");
    return Reason.OK;
  }

  private emit(body: Uint8Array, onPacket: (p: Packet) => void): number {
    let packet: Packet;
    try {
      packet = parseBody(this.first, body);
    } catch (e) {
      if (e instanceof Malformed) return this.fail(Reason.MQTT_MALFORMED, e.why);
      throw e;
    }
    this.stage = STAGE_TYPE;
    onPacket(packet);
    return Reason.OK;
  }

  private fail(code: number, why: string): number {
    this.stage = STAGE_FAILED;
    this.failure = code;
    this.why = why;
    this.body = new Uint8Array(0);
    return code;
  }
}
