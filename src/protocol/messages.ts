/**
 * The cloud protocol's topics and payloads (docs/protocol.md is the prose
 * version). Both directions are here, encoders and decoders side by side,
 * because the device sends some messages and reads others and the server
 * does the opposite: the format is defined once.
 *
 * Control messages are small strict JSON objects (UTF-8, ≤ 512 bytes, no
 * unknown keys); the offer is the signed manifest envelope as raw bytes; a
 * chunk reply is a binary header followed by the bytes. Every decoder throws
 * OtaError MESSAGE_MALFORMED or MESSAGE_TOO_LARGE for bad input, nothing else.
 */
import type { ImageVersion } from "../image/format";
import { OtaError, Reason } from "../errors";
import { fromHex, toHex, utf8Decode, utf8Encode } from "../util/bytes";

export const TOPIC_ROOT = "xs-ota/v1";
/** The shared-subscription group `xs-ota serve` instances join to split the load. */
export const SHARE_GROUP = "xs-ota-serve";

/** Largest JSON control message in bytes. */
export const MAX_CONTROL_PAYLOAD = 512;
/** Largest offer (a signed manifest envelope) in bytes. */
export const MAX_OFFER = 4096;
/** Largest revocation (a signed revocation envelope, at most 1137 bytes) in bytes. */
export const MAX_REVOCATION = 2048;
/** Largest key set (a signed key set envelope, at most 2161 bytes) in bytes. */
export const MAX_KEYSET = 2304;
/** Largest time statement (a signed envelope, at most 177 bytes) an ack carries, in bytes. */
export const MAX_TIME_STATEMENT = 192;
/** Largest chunk a device may ask for, and a reply may carry, in bytes. */
export const MAX_CHUNK = 4096;
/** Chunk reply header: version, status, stream id length, id (≤ 64), offset, total. */
export const CHUNK_REPLY_VERSION = 1;
export const MAX_CHUNK_REPLY = 3 + 64 + 8 + MAX_CHUNK;

/** Leaves a device publishes to. */
export const DeviceTopic = Object.freeze({ heartbeat: "hb", chunkRequest: "chunk/req", status: "status" });
/** Leaves the cloud publishes to. */
export const CloudTopic = Object.freeze({ heartbeatAck: "hb/ack", offer: "offer", chunkReply: "chunk/res", command: "cmd", revocation: "revocation", keySet: "keyset" });
export type DeviceLeaf = (typeof DeviceTopic)[keyof typeof DeviceTopic];
export type CloudLeaf = (typeof CloudTopic)[keyof typeof CloudTopic];

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const TOKEN = /^[A-Za-z0-9._-]{1,64}$/;
const STATE = /^[a-z][a-z0-9-]{0,31}$/;

function malformed(why: string): OtaError {
  return new OtaError(Reason.MESSAGE_MALFORMED, why);
}

/** True for a device id usable in topics: 1..64 of [A-Za-z0-9_-] (no `/`, `+`, `#`). */
export function isDeviceId(id: unknown): id is string {
  return typeof id === "string" && DEVICE_ID.test(id);
}

function aDeviceId(id: unknown): string {
  if (isDeviceId(id)) return id;
  throw new RangeError(`device id must be 1..64 of [A-Za-z0-9_-], got ${JSON.stringify(id)}`);
}

/** `xs-ota/v1/<deviceId>/<leaf>`. @throws RangeError for a bad device id. */
export function topicFor(deviceId: string, leaf: DeviceLeaf | CloudLeaf): string {
  return `${TOPIC_ROOT}/${aDeviceId(deviceId)}/${leaf}`;
}

/** What a device subscribes to: exactly its own six inbound topics, QoS 1. */
export function deviceSubscriptions(deviceId: string): { topic: string; qos: 1 }[] {
  return [CloudTopic.heartbeatAck, CloudTopic.offer, CloudTopic.chunkReply, CloudTopic.command, CloudTopic.revocation, CloudTopic.keySet].map((leaf) => ({
    topic: topicFor(deviceId, leaf),
    qos: 1 as const,
  }));
}

/** What a server subscribes to (shared so several instances split the load). */
export function serverSubscriptions(shared: boolean): { topic: string; qos: 0 | 1 }[] {
  const prefix = shared ? `$share/${SHARE_GROUP}/` : "";
  return [
    { topic: `${prefix}${TOPIC_ROOT}/+/${DeviceTopic.heartbeat}`, qos: 0 },
    { topic: `${prefix}${TOPIC_ROOT}/+/${DeviceTopic.status}`, qos: 1 },
    { topic: `${prefix}${TOPIC_ROOT}/+/${DeviceTopic.chunkRequest}`, qos: 0 },
  ];
}

/**
 * On the device: which inbound leaf `topic` is, refusing any topic that is
 * not one of this device's own.
 * @throws OtaError MESSAGE_TOPIC.
 */
export function deviceInboundLeaf(deviceId: string, topic: string): CloudLeaf {
  const prefix = `${TOPIC_ROOT}/${deviceId}/`;
  if (typeof topic === "string" && topic.startsWith(prefix)) {
    const leaf = topic.slice(prefix.length);
    for (const k of Object.keys(CloudTopic) as (keyof typeof CloudTopic)[]) if (CloudTopic[k] === leaf) return leaf as CloudLeaf;
  }
  throw new OtaError(Reason.MESSAGE_TOPIC, `"${String(topic)}" is not an inbound topic of ${deviceId}`);
}

/** On the server: the device id and leaf of a device → cloud topic. @throws OtaError MESSAGE_TOPIC. */
export function parseDeviceTopic(topic: string): { deviceId: string; leaf: DeviceLeaf } {
  const parts = typeof topic === "string" ? topic.split("/") : [];
  if (parts.length >= 4 && `${parts[0]}/${parts[1]}` === TOPIC_ROOT && isDeviceId(parts[2])) {
    const leaf = parts.slice(3).join("/");
    for (const k of Object.keys(DeviceTopic) as (keyof typeof DeviceTopic)[]) {
      if (DeviceTopic[k] === leaf) return { deviceId: parts[2], leaf: leaf as DeviceLeaf };
    }
  }
  throw new OtaError(Reason.MESSAGE_TOPIC, `"${String(topic)}" is not a device topic`);
}

// ------------------------------------------------------------ versions

/** "major.minor.revision+build" (MCUboot's fields: u8.u8.u16+u32). */
export function formatVersion(v: ImageVersion): string {
  return `${v.major}.${v.minor}.${v.revision}+${v.build}`;
}

/** Strict inverse of formatVersion; undefined when malformed or out of range. */
export function parseVersion(s: unknown): ImageVersion | undefined {
  if (typeof s !== "string") return undefined;
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,4})\+(0|[1-9]\d{0,9})$/.exec(s);
  if (!m) return undefined;
  const v = { major: +m[1], minor: +m[2], revision: +m[3], build: +m[4] };
  if (v.major > 255 || v.minor > 255 || v.revision > 0xffff || v.build > 0xffffffff) return undefined;
  return v;
}

// ------------------------------------------------------------ JSON control messages

type Json = { [key: string]: unknown };

function encodeJson(o: Json): Uint8Array {
  const b = utf8Encode(JSON.stringify(o));
  if (b.length > MAX_CONTROL_PAYLOAD) throw new OtaError(Reason.MESSAGE_TOO_LARGE, `control message of ${b.length} bytes`);
  return b;
}

function decodeJson(payload: Uint8Array, required: readonly string[], optional: readonly string[] = []): Json {
  if (!(payload instanceof Uint8Array)) throw malformed("payload is not bytes");
  if (payload.length > MAX_CONTROL_PAYLOAD) throw new OtaError(Reason.MESSAGE_TOO_LARGE, `control message of ${payload.length} bytes`);
  const text = utf8Decode(payload);
  if (text === undefined || text.charAt(0) !== "{") throw malformed("not a UTF-8 JSON object");
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw malformed("not JSON");
  }
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw malformed("not a JSON object");
  const obj = o as Json;
  for (const k of Object.keys(obj)) if (required.indexOf(k) < 0 && optional.indexOf(k) < 0) throw malformed(`unknown field "${k}"`);
  for (const k of required) if (!(k in obj)) throw malformed(`missing field "${k}"`);
  return obj;
}

function uint(o: Json, k: string, max: number, min = 0): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw malformed(`"${k}" must be an integer ${min}..${max}`);
  return v;
}

function str(o: Json, k: string, re: RegExp): string {
  const v = o[k];
  if (typeof v !== "string" || !re.test(v)) throw malformed(`"${k}" is malformed`);
  return v;
}

function version(o: Json, k: string): ImageVersion {
  const v = parseVersion(o[k]);
  if (!v) throw malformed(`"${k}" must be "major.minor.revision+build"`);
  return v;
}

function sha256(o: Json, k: string): Uint8Array {
  const v = o[k];
  const b = typeof v === "string" && v.length === 64 ? fromHex(v) : undefined;
  if (!b) throw malformed(`"${k}" must be 64 hex digits`);
  return b;
}

const U32 = 0xffffffff;

/** Device → cloud, `hb`, QoS 0, not retained. */
export interface Heartbeat {
  /** Per-boot message counter (wraps at 2^32). */
  readonly seq: number;
  readonly hardwareId: string;
  /** Version of the running image. */
  readonly version: ImageVersion;
  /** Slot the running image executes from. */
  readonly slot: 0 | 1;
  /** SHA-256 of the complete running image (header through TLVs): the base a delta must match. */
  readonly imageSha256: Uint8Array;
  /** Agent state name, e.g. "idle", "downloading". */
  readonly state: string;
  /** Progress of the current activity in percent (0 when idle). */
  readonly progress: number;
  /** The last reason code (0 = none). */
  readonly reason: number;
  /** Seconds since boot. */
  readonly uptime: number;
  /** Supply voltage in millivolts. */
  readonly supplyMv: number;
  /** Sequence of the revocation record the device holds; absent when it holds none. */
  readonly revocation?: number;
  /** Epoch of that record when above 0 (JSON `revocationEpoch`). */
  readonly revocationEpoch?: number;
  /** The key set the device holds, as (epoch, sequence) (JSON `keyset`: "E.S"); absent when none. */
  readonly keySet?: { readonly epoch: number; readonly sequence: number };
  /**
   * The patch codecs the device decodes and what each costs it (JSON `decode`:
   * "3:3945,4:8388,1:3698,2:81120", and `mhz`: 400); absent from devices that predate
   * it, which decode the version-1 codecs (0, 1, 2) only.
   */
  readonly decode?: DecodeCost;
}

/** One patch codec a device decodes: its number (docs/formats.md, "Patch") and its decode cost. */
export interface CodecCost {
  readonly codec: number;
  /** Instructions per byte of new image, decode and write (the device lane's measure), 1..MAX_INSTRUCTIONS_PER_BYTE. */
  readonly instructionsPerByte: number;
}

/** What a device announces of its patch decoding: the codecs it decodes, their cost, and its CPU clock. */
export interface DecodeCost {
  /** CPU clock in MHz, 1..MAX_MHZ (instructions per second ≈ mhz × 10^6: one instruction a cycle). */
  readonly mhz: number;
  /** 1..MAX_ANNOUNCED_CODECS codecs, each at most once, in the device's order. */
  readonly codecs: readonly CodecCost[];
}

/** At most four codecs (as many as the patch format defines): the largest heartbeat stays within MAX_CONTROL_PAYLOAD. */
export const MAX_ANNOUNCED_CODECS = 4;
export const MAX_INSTRUCTIONS_PER_BYTE = 9_999_999;
export const MAX_MHZ = 10_000;

const CODEC_COST = /^(0|[1-9]\d{0,2}):([1-9]\d{0,6})$/;

/**
 * Why `d` is not a valid announcement, or undefined when it is.
 * @example decodeCostProblem({ mhz: 400, codecs: [{ codec: 3, instructionsPerByte: 4211 }] }) === undefined
 */
export function decodeCostProblem(d: DecodeCost): string | undefined {
  if (!d || typeof d !== "object") return "must be { mhz, codecs }";
  if (!Number.isInteger(d.mhz) || d.mhz < 1 || d.mhz > MAX_MHZ) return `mhz must be an integer 1..${MAX_MHZ}`;
  if (!Array.isArray(d.codecs) || d.codecs.length < 1 || d.codecs.length > MAX_ANNOUNCED_CODECS) return `codecs must list 1..${MAX_ANNOUNCED_CODECS} codecs`;
  const seen: number[] = [];
  for (const c of d.codecs) {
    if (!c || !Number.isInteger(c.codec) || c.codec < 0 || c.codec > 255) return "a codec number must be an integer 0..255";
    if (!Number.isInteger(c.instructionsPerByte) || c.instructionsPerByte < 1 || c.instructionsPerByte > MAX_INSTRUCTIONS_PER_BYTE) return `instructions per byte must be an integer 1..${MAX_INSTRUCTIONS_PER_BYTE}`;
    if (seen.indexOf(c.codec) >= 0) return `codec ${c.codec} listed twice`;
    seen.push(c.codec);
  }
  return undefined;
}

/** The wire form of the codec list: "codec:instructionsPerByte" joined by ",". @throws RangeError for an invalid announcement. */
export function formatCodecCosts(d: DecodeCost): string {
  const why = decodeCostProblem(d);
  if (why) throw new RangeError(`decode cost: ${why}`);
  return d.codecs.map((c) => `${c.codec}:${c.instructionsPerByte}`).join(",");
}

/** Strict inverse of formatCodecCosts (with the clock); undefined when malformed or out of range. */
export function parseDecodeCost(codecs: unknown, mhz: unknown): DecodeCost | undefined {
  if (typeof codecs !== "string" || typeof mhz !== "number" || codecs.length > MAX_ANNOUNCED_CODECS * 13) return undefined;
  const list: CodecCost[] = [];
  for (const part of codecs.split(",")) {
    const m = CODEC_COST.exec(part);
    if (!m) return undefined;
    list.push({ codec: +m[1], instructionsPerByte: +m[2] });
  }
  const d: DecodeCost = { mhz, codecs: list };
  return decodeCostProblem(d) === undefined ? d : undefined;
}

const KEYSET_ID = /^(0|[1-9]\d{0,9})\.(0|[1-9]\d{0,9})$/;

function isU32(n: unknown): boolean {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= U32;
}

export function encodeHeartbeat(h: Heartbeat): Uint8Array {
  if (!STATE.test(h.state)) throw new RangeError(`heartbeat.state "${h.state}" must match ${STATE}`);
  if (!TOKEN.test(h.hardwareId)) throw new RangeError(`heartbeat.hardwareId must match ${TOKEN}`);
  if (!(h.imageSha256 instanceof Uint8Array) || h.imageSha256.length !== 32) throw new RangeError("heartbeat.imageSha256 must be 32 bytes");
  if (h.revocation !== undefined && !(Number.isInteger(h.revocation) && h.revocation >= 0 && h.revocation <= U32)) throw new RangeError("heartbeat.revocation must be a u32");
  if (h.revocationEpoch !== undefined && !isU32(h.revocationEpoch)) throw new RangeError("heartbeat.revocationEpoch must be a u32");
  if (h.keySet !== undefined && !(isU32(h.keySet.epoch) && isU32(h.keySet.sequence))) throw new RangeError("heartbeat.keySet must be two u32");
  const decode = h.decode === undefined ? undefined : formatCodecCosts(h.decode);
  const o: Json = {
    seq: h.seq,
    hardwareId: h.hardwareId,
    version: formatVersion(h.version),
    slot: h.slot,
    image: toHex(h.imageSha256),
    state: h.state,
    progress: h.progress,
    reason: h.reason,
    uptime: h.uptime,
    supplyMv: h.supplyMv,
  };
  if (h.revocation !== undefined) o.revocation = h.revocation;
  if (h.revocationEpoch) o.revocationEpoch = h.revocationEpoch;
  if (h.keySet !== undefined) o.keyset = `${h.keySet.epoch}.${h.keySet.sequence}`;
  if (h.decode !== undefined) {
    o.decode = decode;
    o.mhz = h.decode.mhz;
  }
  return encodeJson(o);
}

/**
 * @throws OtaError MESSAGE_MALFORMED / MESSAGE_TOO_LARGE. A heartbeat without `revocation` (older devices) decodes without it;
 *   one without `decode` and `mhz` (older devices) without `decode`; one of the two without the other is malformed.
 */
export function decodeHeartbeat(payload: Uint8Array): Heartbeat {
  const o = decodeJson(payload, ["seq", "hardwareId", "version", "slot", "image", "state", "progress", "reason", "uptime", "supplyMv"], ["revocation", "revocationEpoch", "keyset", "decode", "mhz"]);
  const hb: Heartbeat = {
    seq: uint(o, "seq", U32),
    hardwareId: str(o, "hardwareId", TOKEN),
    version: version(o, "version"),
    slot: uint(o, "slot", 1) as 0 | 1,
    imageSha256: sha256(o, "image"),
    state: str(o, "state", STATE),
    progress: uint(o, "progress", 100),
    reason: uint(o, "reason", 0xffff),
    uptime: uint(o, "uptime", U32),
    supplyMv: uint(o, "supplyMv", 0xffff),
  };
  let out: Heartbeat = "revocation" in o ? { ...hb, revocation: uint(o, "revocation", U32) } : hb;
  if ("revocationEpoch" in o) out = { ...out, revocationEpoch: uint(o, "revocationEpoch", U32) };
  if ("keyset" in o) {
    const m = KEYSET_ID.exec(str(o, "keyset", KEYSET_ID))!;
    const epoch = +m[1];
    const sequence = +m[2];
    if (epoch > U32 || sequence > U32) throw malformed('"keyset" parts must be u32');
    out = { ...out, keySet: { epoch, sequence } };
  }
  if ("decode" in o || "mhz" in o) {
    if (!("decode" in o && "mhz" in o)) throw malformed('"decode" and "mhz" come together');
    const mhz = uint(o, "mhz", MAX_MHZ, 1);
    const decode = parseDecodeCost(o.decode, mhz);
    if (!decode) throw malformed(`"decode" must be 1..${MAX_ANNOUNCED_CODECS} distinct "codec:instructionsPerByte" (codec 0..255, 1..${MAX_INSTRUCTIONS_PER_BYTE}) joined by ","`);
    out = { ...out, decode };
  }
  return out;
}

/** Cloud → device, `hb/ack`, QoS 1: the heartbeat interval and trusted time. */
export interface HeartbeatAck {
  /** The heartbeat's seq. */
  readonly seq: number;
  /** Next heartbeats every this many seconds, 10..86400. */
  readonly interval: number;
  /**
   * The server's clock, unix seconds: unsigned, so it only orders heartbeats and
   * stamps logs; it never decides expiry (src/agent/trusted-time.ts).
   */
  readonly time: number;
  /** A signed time statement (src/update/time-statement.ts envelope), JSON `stmt` as hex; absent when the server has no time key. */
  readonly statement?: Uint8Array;
}

const HEX = /^(?:[0-9a-f]{2})+$/;

export function encodeHeartbeatAck(a: HeartbeatAck): Uint8Array {
  const o: Json = { seq: a.seq, interval: a.interval, time: a.time };
  if (a.statement !== undefined) {
    if (!(a.statement instanceof Uint8Array) || a.statement.length === 0 || a.statement.length > MAX_TIME_STATEMENT) throw new RangeError(`ack.statement must be 1..${MAX_TIME_STATEMENT} bytes`);
    o.stmt = toHex(a.statement);
  }
  return encodeJson(o);
}

/** @throws OtaError MESSAGE_MALFORMED / MESSAGE_TOO_LARGE. An ack without `stmt` (a server without a time key) decodes without it. */
export function decodeHeartbeatAck(payload: Uint8Array): HeartbeatAck {
  const o = decodeJson(payload, ["seq", "interval", "time"], ["stmt"]);
  const ack = { seq: uint(o, "seq", U32), interval: uint(o, "interval", 86400, 10), time: uint(o, "time", 2 ** 40) };
  if (!("stmt" in o)) return ack;
  const hex = str(o, "stmt", HEX);
  if (hex.length > 2 * MAX_TIME_STATEMENT) throw malformed('"stmt" too long');
  return { ...ack, statement: fromHex(hex)! };
}

/**
 * Cloud → device, `keyset`, QoS 1: the signed key set envelope (as `xs-ota
 * keyset make` wrote it), opaque here; the agent authenticates it
 * (`parseSignedKeySet` in src/update/keyset).
 * @throws OtaError MESSAGE_MALFORMED (empty) / MESSAGE_TOO_LARGE (over MAX_KEYSET).
 */
export function decodeKeySetPayload(payload: Uint8Array): Uint8Array {
  if (!(payload instanceof Uint8Array) || payload.length === 0) throw malformed("empty key set");
  if (payload.length > MAX_KEYSET) throw new OtaError(Reason.MESSAGE_TOO_LARGE, `key set of ${payload.length} bytes`);
  return payload;
}

/** Cloud → device, `offer`, QoS 1: the signed manifest envelope, opaque here. */
export function decodeOffer(payload: Uint8Array): Uint8Array {
  if (!(payload instanceof Uint8Array) || payload.length === 0) throw malformed("empty offer");
  if (payload.length > MAX_OFFER) throw new OtaError(Reason.MESSAGE_TOO_LARGE, `offer of ${payload.length} bytes`);
  return payload;
}

/**
 * Cloud → device, `revocation`, QoS 1: the signed revocation envelope (as
 * `xs-ota revoke` wrote it), opaque here; the agent authenticates it
 * (`parseSignedRevocation` in src/update/revocation).
 * @throws OtaError MESSAGE_MALFORMED (empty) / MESSAGE_TOO_LARGE (over MAX_REVOCATION).
 */
export function decodeRevocationPayload(payload: Uint8Array): Uint8Array {
  if (!(payload instanceof Uint8Array) || payload.length === 0) throw malformed("empty revocation");
  if (payload.length > MAX_REVOCATION) throw new OtaError(Reason.MESSAGE_TOO_LARGE, `revocation of ${payload.length} bytes`);
  return payload;
}

/** Device → cloud, `chunk/req`, QoS 0 (the device re-asks on timeout). */
export interface ChunkRequest {
  /** The manifest's `fetch.stream`. */
  readonly stream: string;
  readonly offset: number;
  /** 1..MAX_CHUNK. */
  readonly length: number;
}

export function encodeChunkRequest(r: ChunkRequest): Uint8Array {
  if (!TOKEN.test(r.stream)) throw new RangeError(`chunk request stream must match ${TOKEN}`);
  if (!Number.isInteger(r.offset) || r.offset < 0 || r.offset > U32) throw new RangeError("chunk request offset must be 0..2^32-1");
  if (!Number.isInteger(r.length) || r.length < 1 || r.length > MAX_CHUNK) throw new RangeError(`chunk request length must be 1..${MAX_CHUNK}`);
  return encodeJson({ stream: r.stream, offset: r.offset, length: r.length });
}

export function decodeChunkRequest(payload: Uint8Array): ChunkRequest {
  const o = decodeJson(payload, ["stream", "offset", "length"]);
  return { stream: str(o, "stream", TOKEN), offset: uint(o, "offset", U32), length: uint(o, "length", MAX_CHUNK, 1) };
}

/** Chunk reply status byte. */
export const ChunkStatus = Object.freeze({ OK: 0, UNKNOWN_STREAM: 1, OUT_OF_RANGE: 2, BUSY: 3 });

/** Cloud → device, `chunk/res`, QoS 0. */
export interface ChunkReply {
  readonly status: number;
  readonly stream: string;
  readonly offset: number;
  /** Length of the whole stream (0 when unknown). */
  readonly total: number;
  readonly data: Uint8Array;
}

/**
 * Binary: u8 version=1, u8 status, u8 n, n bytes stream id (ASCII), u32 BE
 * offset, u32 BE total, data.
 */
export function encodeChunkReply(r: ChunkReply): Uint8Array {
  if (!TOKEN.test(r.stream)) throw new RangeError(`chunk reply stream must match ${TOKEN}`);
  if (!(r.data instanceof Uint8Array) || r.data.length > MAX_CHUNK) throw new RangeError(`chunk reply data must be ≤ ${MAX_CHUNK} bytes`);
  if (r.status !== ChunkStatus.OK && r.data.length > 0) throw new RangeError("a refusal carries no data");
  const id = utf8Encode(r.stream);
  const out = new Uint8Array(3 + id.length + 8 + r.data.length);
  const dv = new DataView(out.buffer);
  out[0] = CHUNK_REPLY_VERSION;
  out[1] = r.status;
  out[2] = id.length;
  out.set(id, 3);
  dv.setUint32(3 + id.length, r.offset);
  dv.setUint32(7 + id.length, r.total);
  out.set(r.data, 11 + id.length);
  return out;
}

/** @throws OtaError MESSAGE_MALFORMED / MESSAGE_TOO_LARGE. */
export function decodeChunkReply(payload: Uint8Array): ChunkReply {
  if (!(payload instanceof Uint8Array) || payload.length < 3) throw malformed("chunk reply too short");
  if (payload.length > MAX_CHUNK_REPLY) throw new OtaError(Reason.MESSAGE_TOO_LARGE, `chunk reply of ${payload.length} bytes`);
  if (payload[0] !== CHUNK_REPLY_VERSION) throw malformed(`chunk reply version ${payload[0]}`);
  const status = payload[1];
  if (status > ChunkStatus.BUSY) throw malformed(`chunk reply status ${status}`);
  const n = payload[2];
  if (payload.length < 11 + n) throw malformed("chunk reply header truncated");
  const stream = utf8Decode(payload.subarray(3, 3 + n));
  if (stream === undefined || !TOKEN.test(stream)) throw malformed("chunk reply stream id");
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const offset = dv.getUint32(3 + n);
  const total = dv.getUint32(7 + n);
  const data = payload.subarray(11 + n);
  if (data.length > MAX_CHUNK) throw new OtaError(Reason.MESSAGE_TOO_LARGE, "chunk reply data");
  if (status !== ChunkStatus.OK && data.length > 0) throw malformed("a refusal carries data");
  if (status === ChunkStatus.OK && total > 0 && offset + data.length > total) throw malformed("chunk runs past the stream's end");
  return { status, stream, offset, total, data };
}

/** Status report events, in the order an update produces them (docs/protocol.md). */
export const STATUS_EVENTS = Object.freeze([
  "offer-accepted",
  "offer-refused",
  "download-started",
  "download-done",
  "verified",
  "installed",
  "trial",
  "committed",
  "rolled-back",
  "failed",
  "aborted",
  "offline",
  "revoked",
] as const);
export type StatusEvent = (typeof STATUS_EVENTS)[number];

/** Device → cloud, `status`, QoS 1. */
export interface StatusReport {
  readonly seq: number;
  readonly event: StatusEvent;
  /** Running version. */
  readonly version: ImageVersion;
  /** The version the event is about (the offered one), when there is one. */
  readonly target?: ImageVersion;
  /** Reason code (0 = success). */
  readonly reason: number;
  /** SHA-256 of the signed manifest bytes the event is about. */
  readonly releaseId?: Uint8Array;
}

export function encodeStatusReport(s: StatusReport): Uint8Array {
  if (STATUS_EVENTS.indexOf(s.event) < 0) throw new RangeError(`status event "${s.event}" is not one of ${STATUS_EVENTS.join(", ")}`);
  if (s.releaseId !== undefined && s.releaseId.length !== 32) throw new RangeError("status releaseId must be 32 bytes");
  const o: Json = { seq: s.seq, event: s.event, version: formatVersion(s.version), reason: s.reason };
  if (s.target) o.target = formatVersion(s.target);
  if (s.releaseId) o.release = toHex(s.releaseId);
  return encodeJson(o);
}

export function decodeStatusReport(payload: Uint8Array): StatusReport {
  const o = decodeJson(payload, ["seq", "event", "version", "reason"], ["target", "release"]);
  const event = o.event as StatusEvent;
  if (STATUS_EVENTS.indexOf(event) < 0) throw malformed(`unknown event ${JSON.stringify(o.event)}`);
  const r: StatusReport = { seq: uint(o, "seq", U32), event, version: version(o, "version"), reason: uint(o, "reason", 0xffff) };
  return Object.assign(r, "target" in o ? { target: version(o, "target") } : {}, "release" in o ? { releaseId: sha256(o, "release") } : {});
}

/** Cloud → device, `cmd`, QoS 1. */
export interface Command {
  /** Chosen by the sender; echoed in logs. */
  readonly id: number;
  /** "check": send a heartbeat now (an offer may follow); "abort": stop the download or install in progress. */
  readonly cmd: "check" | "abort";
}

export function encodeCommand(c: Command): Uint8Array {
  if (c.cmd !== "check" && c.cmd !== "abort") throw new RangeError(`command must be "check" or "abort"`);
  return encodeJson({ id: c.id, cmd: c.cmd });
}

export function decodeCommand(payload: Uint8Array): Command {
  const o = decodeJson(payload, ["id", "cmd"]);
  if (o.cmd !== "check" && o.cmd !== "abort") throw malformed(`unknown command ${JSON.stringify(o.cmd)}`);
  return { id: uint(o, "id", U32), cmd: o.cmd };
}
