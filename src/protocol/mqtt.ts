/**
 * MQTT 3.1.1 client over the HAL `Network` (one connection at a time) with
 * timers from the HAL `Clock`. QoS 0 and 1 (the device never asks for QoS 2),
 * a bounded in-flight window with retransmission (DUP set), keepalive
 * supervision, and a clean disconnect on any protocol violation.
 *
 * One `connect()` is one attempt; reconnecting is the job of `MqttLink`
 * (./link.ts) with the backoff policy. QoS 1 messages not yet acknowledged
 * survive a lost connection and are sent again (DUP) after the next CONNACK,
 * so a broker restart loses nothing the window holds.
 *
 * Bounds: in-flight QoS 1 publishes ≤ `inflightWindow` (each ≤ 16 KiB
 * encoded); pending SUBSCRIBE/UNSUBSCRIBE ≤ 8; retransmissions per message ≤
 * `maxRetries` per connection; one inbound packet ≤ `maxPacket` bytes.
 */
import { OtaError, Reason } from "../errors";
import type { Clock, Network, Socket, SocketOptions, TimerId } from "../../hal/types";
import {
  ConnackCode,
  DEFAULT_MAX_PACKET,
  encodePacket,
  isValidTopicFilter,
  isValidTopicName,
  MqttDecoder,
  SUBACK_FAILURE,
  type Packet,
  type PublishPacket,
  type Subscription,
  type Will,
} from "./mqtt-codec";

/** Largest single socket write the HAL allows; bounds one outbound packet. */
export const MAX_OUTBOUND_PACKET = 16384;
/** Bound on SUBSCRIBE/UNSUBSCRIBE waiting for their acknowledgement. */
export const MAX_PENDING_ACKS = 8;

export interface MqttClientOptions {
  readonly net: Network;
  readonly clock: Clock;
  /** Broker address; `tls` must be stated (the adapter refuses implicit plaintext). */
  readonly server: SocketOptions;
  /** 1..23 characters is what every broker must accept; longer is allowed up to 65535 bytes. */
  readonly clientId: string;
  readonly username?: string;
  readonly password?: Uint8Array;
  readonly will?: Will;
  /** Keepalive in seconds, 1..65535. No bytes from the broker for 1.5× this closes the link. */
  readonly keepAliveSec: number;
  /** Default true. */
  readonly cleanSession?: boolean;
  /** Largest inbound packet in bytes (default 8192). */
  readonly maxPacket?: number;
  /** QoS 1 publishes awaiting PUBACK, 1..64 (default 8). */
  readonly inflightWindow?: number;
  /** Resend an unacknowledged QoS 1 publish after this many ms (default 10000). */
  readonly retryMs?: number;
  /** Resends per message per connection before the link is declared stalled, 0..10 (default 3). */
  readonly maxRetries?: number;
  /** Socket + TLS + CONNACK must complete within this (default 20000 ms). */
  readonly connectTimeoutMs?: number;
}

export interface MqttMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: 0 | 1;
  readonly retain: boolean;
  readonly dup: boolean;
}

export interface MqttHandlers {
  /** CONNACK accepted. */
  onConnect?(sessionPresent: boolean): void;
  /** An application message (QoS 1 messages are acknowledged after this returns). */
  onMessage?(message: MqttMessage): void;
  /**
   * The attempt failed or the connection was lost (not called for `disconnect()`).
   * `reason`: SOCKET_* from the adapter, MQTT_REFUSED (`detail` = CONNACK code),
   * MQTT_TIMEOUT, MQTT_MALFORMED, MQTT_TOO_LARGE, MQTT_PROTOCOL.
   */
  onClose?(reason: number, detail?: number | string): void;
}

/** Completion of a publish or (un)subscribe: Reason.OK or why it did not complete. */
export type AckCallback = (code: number) => void;
export type SubackCallback = (code: number, granted: readonly number[]) => void;

interface Inflight {
  packet: PublishPacket;
  /** Clock time of the last send, or -1 while unsent on this connection. */
  sentAt: number;
  retries: number;
  onAck?: AckCallback;
}

interface PendingAck {
  kind: "suback" | "unsuback";
  count: number;
  sentAt: number;
  onSuback?: SubackCallback;
  onUnsuback?: AckCallback;
}

export type MqttState = "idle" | "connecting" | "connected";

function aInt(v: unknown, lo: number, hi: number, what: string): number {
  if (typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi) return v;
  throw new RangeError(`MqttClient: ${what} must be an integer ${lo}..${hi}, got ${String(v)}`);
}

/**
 * @example
 *   const c = new MqttClient({ net, clock, server: { host, port: 8883, tls: true, ca }, clientId: "dev-1", keepAliveSec: 60 },
 *     { onConnect: () => c.subscribe([{ topic: "xs-ota/v1/dev-1/#", qos: 1 }], cb), onMessage: handle });
 *   c.connect();
 */
export class MqttClient {
  private readonly o: MqttClientOptions;
  private readonly h: MqttHandlers;
  private readonly keepAliveMs: number;
  private readonly maxPacket: number;
  private readonly window: number;
  private readonly retryMs: number;
  private readonly maxRetries: number;
  private readonly connectTimeoutMs: number;
  private readonly tickMs: number;
  private socket: Socket | undefined;
  private decoder: MqttDecoder;
  private gen = 0;
  private _state: MqttState = "idle";
  private tick: TimerId | undefined;
  private connectTimer: TimerId | undefined;
  private lastRx = 0;
  private lastTx = 0;
  private pingSentAt = -1;
  private nextId = 1;
  private readonly inflight = new Map<number, Inflight>();
  private readonly pending = new Map<number, PendingAck>();
  /** Counters for tests and the heartbeat: packets resent with DUP, pings sent. */
  readonly stats = { retransmits: 0, pings: 0, connects: 0 };

  constructor(options: MqttClientOptions, handlers: MqttHandlers = {}) {
    if (!options || typeof options.net?.connect !== "function" || typeof options.clock?.setTimer !== "function") {
      throw new TypeError("MqttClient: options.net and options.clock are required");
    }
    if (!options.server || typeof options.server.tls !== "boolean") throw new TypeError("MqttClient: server.tls must be true or false");
    if (typeof options.clientId !== "string") throw new TypeError("MqttClient: clientId must be a string");
    this.keepAliveMs = aInt(options.keepAliveSec, 1, 0xffff, "keepAliveSec") * 1000;
    this.maxPacket = aInt(options.maxPacket ?? DEFAULT_MAX_PACKET, 64, 1 << 20, "maxPacket");
    this.window = aInt(options.inflightWindow ?? 8, 1, 64, "inflightWindow");
    this.retryMs = aInt(options.retryMs ?? 10_000, 100, 3_600_000, "retryMs");
    this.maxRetries = aInt(options.maxRetries ?? 3, 0, 10, "maxRetries");
    this.connectTimeoutMs = aInt(options.connectTimeoutMs ?? 20_000, 100, 600_000, "connectTimeoutMs");
    this.tickMs = Math.max(50, Math.min(1000, Math.floor(this.keepAliveMs / 4), Math.floor(this.retryMs / 2)));
    this.o = options;
    this.h = handlers;
    // Validates the CONNECT fields now, so a bad configuration fails at construction.
    encodePacket(this.connectPacket());
    this.decoder = new MqttDecoder(this.maxPacket);
  }

  get state(): MqttState {
    return this._state;
  }

  /** Bytes the inbound decoder holds for the packet in progress (≤ maxPacket). */
  get bufferedBytes(): number {
    return this.decoder.buffered;
  }

  /** QoS 1 publishes not yet acknowledged. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /**
   * Start one connection attempt; the outcome arrives as onConnect or onClose.
   * @throws Error when not idle; OtaError BAD_ARGUMENT from the adapter for bad options.
   */
  connect(): void {
    if (this._state !== "idle") throw new Error(`MqttClient.connect: already ${this._state}`);
    const gen = ++this.gen;
    this._state = "connecting";
    this.stats.connects++;
    this.decoder = new MqttDecoder(this.maxPacket);
    this.pingSentAt = -1;
    this.connectTimer = this.o.clock.setTimer(() => {
      if (gen === this.gen) this.drop(Reason.MQTT_TIMEOUT, "no CONNACK in time");
    }, this.connectTimeoutMs);
    this.socket = this.o.net.connect(this.o.server, {
      onConnect: () => {
        if (gen !== this.gen) return;
        this.lastRx = this.o.clock.now();
        this.send(encodePacket(this.connectPacket()));
      },
      onData: (data) => {
        if (gen !== this.gen) return;
        this.lastRx = this.o.clock.now();
        const rc = this.decoder.update(data, (p) => {
          if (gen === this.gen) this.onPacket(p);
        });
        if (rc !== Reason.OK && gen === this.gen) this.drop(rc, this.decoder.why, true);
      },
      onClose: (reason) => {
        if (gen === this.gen) this.drop(reason, "socket closed");
      },
    });
  }

  /**
   * Publish. QoS 0 needs a connection; QoS 1 is queued in the window and sent
   * now or after the next CONNACK. `onAck` gets Reason.OK at PUBACK (QoS 1) or
   * at hand-over to the socket (QoS 0), or MQTT_NOT_CONNECTED after `disconnect()`.
   * @returns the packet id (QoS 1) or 0.
   * @throws OtaError MQTT_NOT_CONNECTED (QoS 0 while not connected),
   *   MQTT_INFLIGHT_FULL (window full), MQTT_TOO_LARGE (over 16 KiB encoded);
   *   RangeError for an invalid topic or QoS.
   */
  publish(topic: string, payload: Uint8Array, qos: 0 | 1 = 0, retain = false, onAck?: AckCallback): number {
    if (!isValidTopicName(topic)) throw new RangeError(`publish: invalid topic name "${String(topic)}"`);
    if (qos !== 0 && qos !== 1) throw new RangeError(`publish: qos must be 0 or 1, got ${String(qos)}`);
    if (!(payload instanceof Uint8Array)) throw new TypeError("publish: payload must be a Uint8Array");
    if (qos === 0) {
      if (this._state !== "connected") throw new OtaError(Reason.MQTT_NOT_CONNECTED, "QoS 0 publish while not connected");
      const bytes = encodePacket({ type: "publish", topic, payload, qos: 0, retain, dup: false });
      if (bytes.length > MAX_OUTBOUND_PACKET) throw new OtaError(Reason.MQTT_TOO_LARGE, `publish of ${bytes.length} bytes`);
      this.send(bytes);
      onAck?.(Reason.OK);
      return 0;
    }
    if (this.inflight.size >= this.window) throw new OtaError(Reason.MQTT_INFLIGHT_FULL, `${this.inflight.size} QoS 1 messages in flight`);
    const packetId = this.allocId();
    const packet: PublishPacket = { type: "publish", topic, payload, qos: 1, retain, dup: false, packetId };
    const bytes = encodePacket(packet);
    if (bytes.length > MAX_OUTBOUND_PACKET) throw new OtaError(Reason.MQTT_TOO_LARGE, `publish of ${bytes.length} bytes`);
    const entry: Inflight = { packet, sentAt: -1, retries: 0, onAck };
    this.inflight.set(packetId, entry);
    if (this._state === "connected") {
      entry.sentAt = this.o.clock.now();
      this.send(bytes);
    }
    return packetId;
  }

  /**
   * Subscribe at QoS 0 or 1. `onSuback(code, granted)`: code OK, or
   * MQTT_SUBSCRIBE_REFUSED when any filter got 0x80, or the reason the
   * connection was lost first.
   * @throws OtaError MQTT_NOT_CONNECTED, MQTT_INFLIGHT_FULL (8 pending); RangeError for bad filters.
   */
  subscribe(subscriptions: readonly Subscription[], onSuback?: SubackCallback): number {
    for (const s of subscriptions) {
      if (!isValidTopicFilter(s.topic) || (s.qos !== 0 && s.qos !== 1)) throw new RangeError(`subscribe: bad filter "${s.topic}" or qos ${s.qos}`);
    }
    const packetId = this.reserveAck("suback", subscriptions.length);
    this.pending.get(packetId)!.onSuback = onSuback;
    this.send(encodePacket({ type: "subscribe", packetId, subscriptions }));
    return packetId;
  }

  /** Unsubscribe. @throws like subscribe. */
  unsubscribe(topics: readonly string[], onUnsuback?: AckCallback): number {
    for (const t of topics) if (!isValidTopicFilter(t)) throw new RangeError(`unsubscribe: bad filter "${t}"`);
    const packetId = this.reserveAck("unsuback", topics.length);
    this.pending.get(packetId)!.onUnsuback = onUnsuback;
    this.send(encodePacket({ type: "unsubscribe", packetId, topics }));
    return packetId;
  }

  /**
   * Send DISCONNECT (when connected) and close. Every queued QoS 1 message is
   * dropped with MQTT_NOT_CONNECTED; onClose is not called. Idempotent.
   */
  disconnect(): void {
    const wasConnected = this._state === "connected";
    if (this._state !== "idle") this.teardown(wasConnected);
    const dropped = Array.from(this.inflight.values());
    this.inflight.clear();
    for (const e of dropped) e.onAck?.(Reason.MQTT_NOT_CONNECTED);
  }

  // ------------------------------------------------------------ internals

  private connectPacket(): Packet {
    const o = this.o;
    return {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: o.clientId,
      keepAlive: o.keepAliveSec,
      clean: o.cleanSession ?? true,
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(o.will !== undefined ? { will: o.will } : {}),
    };
  }

  private reserveAck(kind: PendingAck["kind"], count: number): number {
    if (this._state !== "connected") throw new OtaError(Reason.MQTT_NOT_CONNECTED, `${kind === "suback" ? "subscribe" : "unsubscribe"} while not connected`);
    if (count === 0) throw new RangeError("at least one topic filter is required");
    if (this.pending.size >= MAX_PENDING_ACKS) throw new OtaError(Reason.MQTT_INFLIGHT_FULL, `${this.pending.size} (un)subscribes pending`);
    const packetId = this.allocId();
    this.pending.set(packetId, { kind, count, sentAt: this.o.clock.now() });
    return packetId;
  }

  /** A packet id not in use; bounded by the number of ids in use + 1. */
  private allocId(): number {
    for (let tries = 0; tries <= this.window + MAX_PENDING_ACKS; tries++) {
      const id = this.nextId;
      this.nextId = id === 0xffff ? 1 : id + 1;
      if (!this.inflight.has(id) && !this.pending.has(id)) return id;
    }
    throw new OtaError(Reason.MQTT_INFLIGHT_FULL, "no free packet identifier");
  }

  /** Write to the socket; a failing write drops the link from a fresh timer turn (never re-entrantly). */
  private send(bytes: Uint8Array): void {
    const s = this.socket;
    if (!s) return;
    try {
      s.write(bytes);
      this.lastTx = this.o.clock.now();
    } catch (e) {
      if (!(e instanceof OtaError)) throw e;
      const gen = this.gen;
      this.o.clock.setTimer(() => {
        if (gen === this.gen) this.drop(e.code, e.message);
      }, 0);
    }
  }

  private onPacket(p: Packet): void {
    if (this._state === "connecting") {
      if (p.type !== "connack") return this.drop(Reason.MQTT_PROTOCOL, `${p.type} before CONNACK`, true);
      if (p.returnCode !== ConnackCode.ACCEPTED) return this.drop(Reason.MQTT_REFUSED, p.returnCode);
      this._state = "connected";
      if (this.connectTimer !== undefined) this.o.clock.clearTimer(this.connectTimer);
      this.connectTimer = undefined;
      this.tick = this.o.clock.setTimer(() => this.onTick(), this.tickMs, this.tickMs);
      const gen = this.gen;
      // Oldest first, as the window was filled; DUP only if this id went out before.
      for (const e of this.inflight.values()) {
        if (gen !== this.gen) return;
        const dup = e.retries > 0 || e.sentAt === -2;
        e.sentAt = this.o.clock.now();
        e.retries = 0;
        if (dup) this.stats.retransmits++;
        this.send(encodePacket(dup ? { ...e.packet, dup: true } : e.packet));
      }
      this.h.onConnect?.(p.sessionPresent);
      return;
    }
    switch (p.type) {
      case "publish": {
        if (p.qos === 2) return this.drop(Reason.MQTT_PROTOCOL, "QoS 2 PUBLISH on a QoS ≤ 1 session", true);
        const gen = this.gen;
        this.h.onMessage?.({ topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain, dup: p.dup });
        if (p.qos === 1 && gen === this.gen) this.send(encodePacket({ type: "puback", packetId: p.packetId! }));
        return;
      }
      case "puback": {
        const e = this.inflight.get(p.packetId);
        if (!e) return; // a late PUBACK for a message acknowledged after a resend
        this.inflight.delete(p.packetId);
        e.onAck?.(Reason.OK);
        return;
      }
      case "suback":
      case "unsuback": {
        const w = this.pending.get(p.packetId);
        if (!w || w.kind !== p.type) return this.drop(Reason.MQTT_PROTOCOL, `${p.type} for unknown id ${p.packetId}`, true);
        this.pending.delete(p.packetId);
        if (p.type === "suback") {
          if (p.granted.length !== w.count) return this.drop(Reason.MQTT_PROTOCOL, "SUBACK count differs from SUBSCRIBE", true);
          const refused = p.granted.indexOf(SUBACK_FAILURE) >= 0;
          w.onSuback?.(refused ? Reason.MQTT_SUBSCRIBE_REFUSED : Reason.OK, p.granted);
        } else w.onUnsuback?.(Reason.OK);
        return;
      }
      case "pingresp":
        this.pingSentAt = -1;
        return;
      default:
        return this.drop(Reason.MQTT_PROTOCOL, `unexpected ${p.type} from the broker`, true);
    }
  }

  private onTick(): void {
    const now = this.o.clock.now();
    if (now - this.lastRx >= this.keepAliveMs * 1.5) return this.drop(Reason.MQTT_TIMEOUT, "no bytes from the broker for 1.5 × keepalive");
    if (this.pingSentAt < 0 && (now - this.lastTx >= this.keepAliveMs || now - this.lastRx >= this.keepAliveMs)) {
      this.pingSentAt = now;
      this.stats.pings++;
      this.send(encodePacket({ type: "pingreq" }));
    }
    const gen = this.gen;
    for (const e of this.inflight.values()) {
      if (gen !== this.gen) return;
      if (e.sentAt < 0 || now - e.sentAt < this.retryMs) continue;
      if (e.retries >= this.maxRetries) return this.drop(Reason.MQTT_TIMEOUT, `no PUBACK for id ${e.packet.packetId}`);
      e.retries++;
      e.sentAt = now;
      this.stats.retransmits++;
      this.send(encodePacket({ ...e.packet, dup: true }));
    }
    for (const w of this.pending.values()) {
      if (now - w.sentAt >= this.retryMs * (this.maxRetries + 1)) return this.drop(Reason.MQTT_TIMEOUT, `no ${w.kind}`);
    }
  }

  /** Close this connection; pending (un)subscribes fail; the QoS 1 window is kept for the next one. */
  private teardown(sendDisconnect: boolean): PendingAck[] {
    if (sendDisconnect && this.socket) {
      try {
        this.socket.write(encodePacket({ type: "disconnect" }));
      } catch (e) {
        if (!(e instanceof OtaError)) throw e;
      }
    }
    this.gen++;
    const s = this.socket;
    this.socket = undefined;
    // After a DISCONNECT, close on the next turn so the packet is not cut off with the link.
    if (sendDisconnect && s) this.o.clock.setTimer(() => s.close(), 0);
    else s?.close();
    this._state = "idle";
    if (this.tick !== undefined) this.o.clock.clearTimer(this.tick);
    if (this.connectTimer !== undefined) this.o.clock.clearTimer(this.connectTimer);
    this.tick = this.connectTimer = undefined;
    this.pingSentAt = -1;
    // Mark what went out so the next connection resends it with DUP.
    for (const e of this.inflight.values()) if (e.sentAt >= 0 || e.retries > 0) e.sentAt = -2;
    const failed = Array.from(this.pending.values());
    this.pending.clear();
    return failed;
  }

  private drop(reason: number, detail?: number | string, sendDisconnect = false): void {
    if (this._state === "idle") return;
    const failed = this.teardown(sendDisconnect);
    for (const w of failed) {
      if (w.kind === "suback") w.onSuback?.(reason, []);
      else w.onUnsuback?.(reason);
    }
    this.h.onClose?.(reason, detail);
  }
}
