/**
 * The agent's side of the cloud protocol (docs/protocol.md): one MQTT link
 * kept up with backoff, periodic heartbeats whose acknowledgements set the
 * interval and carry the server's time (plain, and signed when the server has
 * a time key: the agent decides what to trust), missed acknowledgements that force a
 * redial, status reports queued (bounded) while offline, and dispatch of
 * inbound offers, chunk replies and commands.
 */
import type { Platform, TimerId } from "../../hal/types";
import { isOtaError, Reason } from "../errors";
import { Backoff, seededRandom } from "../protocol/backoff";
import { MqttLink } from "../protocol/link";
import type { MqttMessage } from "../protocol/mqtt";
import {
  CloudTopic,
  DeviceTopic,
  decodeChunkReply,
  decodeCommand,
  decodeHeartbeatAck,
  decodeKeySetPayload,
  decodeOffer,
  decodeRevocationPayload,
  deviceInboundLeaf,
  deviceSubscriptions,
  encodeChunkRequest,
  encodeHeartbeat,
  encodeStatusReport,
  topicFor,
  type ChunkReply,
  type Command,
  type Heartbeat,
  type HeartbeatAck,
  type StatusReport,
} from "../protocol/messages";
import type { ResolvedConfig } from "./config";

/** Status reports kept while offline; the oldest is dropped beyond this. */
export const MAX_QUEUED_REPORTS = 16;

export interface CloudHandlers {
  onUp(): void;
  onDown(reason: number): void;
  onAck(ack: HeartbeatAck): void;
  onOffer(envelope: Uint8Array): void;
  onChunk(reply: ChunkReply): void;
  onCommand(cmd: Command): void;
  /** A signed revocation envelope (opaque here). */
  onRevocation(envelope: Uint8Array): void;
  /** A signed key set envelope (opaque here). */
  onKeySet(envelope: Uint8Array): void;
  /** The heartbeat loop made progress (a heartbeat sent, the link went up or down). */
  onActivity(): void;
  /** A malformed inbound message (logged and counted, never fatal). */
  onBadMessage(reason: number, topic: string): void;
}

export class CloudLink {
  private readonly link: MqttLink;
  private readonly reports: { report: Omit<StatusReport, "seq">; onAck?: (code: number) => void }[] = [];
  private reportSeq = 0;
  private heartbeatSeq = 0;
  private heartbeatTimer: TimerId | undefined;
  private unacked = 0;
  intervalS: number;
  /** Connections established, for the report. */
  connects = 0;

  constructor(
    private readonly platform: Platform,
    private readonly config: ResolvedConfig,
    private readonly heartbeat: () => Omit<Heartbeat, "seq">,
    private readonly h: CloudHandlers,
  ) {
    this.intervalS = config.heartbeatIntervalS;
    this.link = new MqttLink(
      {
        net: platform.net,
        clock: platform.clock,
        server: config.server,
        clientId: config.deviceId,
        keepAliveSec: config.keepAliveSec,
        cleanSession: true,
        maxPacket: 8192,
        backoff: new Backoff({ initialMs: config.backoffInitialMs, maxMs: config.backoffMaxMs, random: seededRandom(config.seed) }),
        subscriptions: deviceSubscriptions(config.deviceId),
      },
      {
        onUp: () => this.up(),
        onDown: (reason) => {
          this.stopHeartbeats();
          this.h.onDown(reason);
        },
        onMessage: (m) => this.message(m),
      },
    );
  }

  get isUp(): boolean {
    return this.link.up;
  }

  /** RAM the link's inbound decoder holds now (bounded by its 8 KiB packet limit). */
  get bufferedBytes(): number {
    return this.link.client.bufferedBytes;
  }

  start(): void {
    this.link.start();
  }

  stop(): void {
    this.stopHeartbeats();
    this.link.stop();
  }

  /** Send a heartbeat now (and restart the interval). */
  heartbeatNow(): void {
    if (!this.link.up) return;
    this.scheduleHeartbeats();
    this.sendHeartbeat();
  }

  /** Queue a status report (QoS 1); `onAck` hears Reason.OK once the broker has it. */
  report(r: Omit<StatusReport, "seq">, onAck?: (code: number) => void): void {
    this.reports.push({ report: r, onAck });
    if (this.reports.length > MAX_QUEUED_REPORTS) this.reports.shift();
    this.flushReports();
  }

  /** Nothing queued and nothing awaiting a PUBACK. */
  get drained(): boolean {
    return this.reports.length === 0 && this.link.client.inflightCount === 0;
  }

  /**
   * Call `then` once every queued report has been acknowledged, or after
   * `timeoutMs` (polled every 50 ms; the bound keeps a dead link from
   * holding up a reboot for ever).
   */
  whenDrained(timeoutMs: number, then: () => void): void {
    const until = this.platform.clock.now() + timeoutMs;
    const poll = () => {
      if (this.drained || this.platform.clock.now() >= until) then();
      else this.platform.clock.setTimer(poll, 50);
    };
    this.platform.clock.setTimer(poll, 0);
  }

  requestChunk(stream: string, offset: number, length: number): void {
    if (!this.link.up) return;
    this.link.publish(topicFor(this.config.deviceId, DeviceTopic.chunkRequest), encodeChunkRequest({ stream, offset, length }), 0);
  }

  private up(): void {
    this.connects++;
    this.unacked = 0;
    this.h.onUp();
    this.flushReports();
    this.heartbeatNow();
  }

  private flushReports(): void {
    while (this.link.up && this.reports.length > 0) {
      if (this.link.client.inflightCount >= 4) return; // leave room in the in-flight window for chunk traffic
      const { report, onAck } = this.reports.shift()!;
      this.link.publish(topicFor(this.config.deviceId, DeviceTopic.status), encodeStatusReport({ ...report, seq: this.reportSeq++ >>> 0 }), 1, false, (code) => {
        onAck?.(code);
        this.flushReports();
      });
    }
  }

  private scheduleHeartbeats(): void {
    this.stopHeartbeats();
    if (!this.config.heartbeatEnabled) return; // one heartbeat per connection only (AT+HEARTEN=OFF)
    const ms = this.intervalS * 1000;
    this.heartbeatTimer = this.platform.clock.setTimer(() => this.sendHeartbeat(), ms, ms);
  }

  private stopHeartbeats(): void {
    if (this.heartbeatTimer !== undefined) this.platform.clock.clearTimer(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private sendHeartbeat(): void {
    if (!this.link.up) return;
    if (this.unacked >= this.config.missedAcksBeforeReconnect) {
      // The broker takes our bytes but nobody answers: redial (the link's backoff paces it).
      this.unacked = 0;
      this.stopHeartbeats();
      this.link.stop();
      this.link.start();
      return;
    }
    this.unacked++;
    this.h.onActivity();
    const hb = { ...this.heartbeat(), seq: this.heartbeatSeq++ >>> 0 };
    this.link.publish(topicFor(this.config.deviceId, DeviceTopic.heartbeat), encodeHeartbeat(hb), 0);
  }

  private message(m: MqttMessage): void {
    try {
      const leaf = deviceInboundLeaf(this.config.deviceId, m.topic);
      if (leaf === CloudTopic.heartbeatAck) {
        const ack = decodeHeartbeatAck(m.payload);
        this.unacked = 0;
        if (ack.interval !== this.intervalS) {
          this.intervalS = ack.interval;
          this.scheduleHeartbeats();
        }
        this.h.onAck(ack);
      } else if (leaf === CloudTopic.offer) this.h.onOffer(decodeOffer(m.payload));
      else if (leaf === CloudTopic.chunkReply) this.h.onChunk(decodeChunkReply(m.payload));
      else if (leaf === CloudTopic.command) this.h.onCommand(decodeCommand(m.payload));
      else if (leaf === CloudTopic.revocation) this.h.onRevocation(decodeRevocationPayload(m.payload));
      else if (leaf === CloudTopic.keySet) this.h.onKeySet(decodeKeySetPayload(m.payload));
    } catch (e) {
      if (!isOtaError(e)) throw e;
      this.h.onBadMessage(e.code ?? Reason.MESSAGE_MALFORMED, m.topic);
    }
  }
}
