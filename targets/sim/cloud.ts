/**
 * A virtual cloud on the MockNetwork: a small MQTT 3.1.1 broker and the
 * update service of docs/protocol.md behind it (heartbeat acks with trusted
 * time, offers chosen per device, chunk replies, report capture). It speaks
 * the project's own codec, so the device under test sends and receives
 * exactly the bytes it would with a real broker; being portable, it runs
 * inside XS for the XS lane. Faults are injected per chunk.
 *
 * Offer choice (the same rule as `xs-ota serve`): releases for the device's
 * hardware id, built for its inactive slot, newer than what it runs; a delta
 * whose base is its running image beats a full image; the newest version
 * wins; among deltas, only codecs the device decodes (announced in its
 * heartbeat, else the version-1 codecs), the least estimated install time
 * first (src/update/codec.ts installSeconds, at `linkRate`). A release the
 * device reported as refused, failed, committed or rolled back is not offered
 * to it again.
 */
import type { SocketHandlers } from "../../hal/types";
import type { MockNetwork, PeerSocket } from "../../hal/mock/socket";
import { compareVersions, formatVersion } from "../../src/image/format";
import { encodePacket, MqttDecoder, type Packet } from "../../src/protocol/mqtt-codec";
import {
  ChunkStatus,
  CloudTopic,
  decodeChunkRequest,
  decodeHeartbeat,
  decodeStatusReport,
  encodeChunkReply,
  encodeCommand,
  encodeHeartbeatAck,
  parseDeviceTopic,
  topicFor,
  type Heartbeat,
  type StatusReport,
} from "../../src/protocol/messages";
import type { ReleaseManifest } from "../../src/update/types";
import { equalBytes, toHex } from "../../src/util/bytes";
import { Reason } from "../../src/errors";
import { RETRYABLE_REASONS } from "../../src/agent/retry";
import { checkRevoked, decodeRevocation, decodeRevocationEnvelope, type RevocationRecord } from "../../src/update/revocation";
import { decodeKeySet, decodeKeySetEnvelope, type KeySet } from "../../src/update/keyset";
import { softwareDigest } from "../../src/crypto/sha256";
import { DEFAULT_LINK_RATE, installSeconds } from "../../src/update/codec";

/** Outcome reasons that do not stop a release from being offered again (the same rule as the device's replay list). */
export const TRANSIENT: readonly number[] = RETRYABLE_REASONS;

export interface SimRelease {
  readonly envelope: Uint8Array;
  readonly manifest: ReleaseManifest;
  readonly releaseId: Uint8Array;
  readonly payload: Uint8Array;
}

/** Per-chunk fault decisions (seeded by the caller). */
export interface ChunkFaults {
  /** Return true to drop this reply. */
  drop?(offset: number): boolean;
  /** Return a corrupted copy (or undefined to leave it). */
  corrupt?(offset: number, data: Uint8Array): Uint8Array | undefined;
  /** Send this reply twice. */
  duplicate?(offset: number): boolean;
  /** Claim this total instead of the real one (a server that lies about sizes). */
  total?(real: number): number;
  /** Answer this many ms late (a slow server). */
  delayMs?(offset: number): number;
  /** Answer with at most this many bytes (a server that drips). */
  limit?(offset: number): number;
}

export interface VirtualCloudOptions {
  readonly host?: string;
  readonly port?: number;
  readonly releases?: SimRelease[];
  /** Heartbeat interval the acks set, seconds. */
  readonly heartbeatIntervalS?: number;
  /** Unix time at clock 0. */
  readonly epochS?: number;
  readonly faults?: ChunkFaults;
  /** Stop answering heartbeats (a cloud that takes bytes but never acknowledges). */
  readonly silent?: boolean;
  /** Bytes per second assumed for a device's download when choosing among deltas (default DEFAULT_LINK_RATE). */
  readonly linkRate?: number;
}

interface Connection {
  peer: PeerSocket;
  decoder: MqttDecoder;
  clientId: string;
  subscriptions: string[];
  nextId: number;
}

export class VirtualCloud {
  readonly host: string;
  readonly port: number;
  releases: SimRelease[];
  faults: ChunkFaults;
  silent: boolean;
  heartbeatIntervalS: number;
  linkRate: number;
  readonly heartbeats: { deviceId: string; heartbeat: Heartbeat; at: number }[] = [];
  readonly reports: { deviceId: string; report: StatusReport; at: number }[] = [];
  /** Chunk payload bytes sent, per device. */
  readonly bytesSent = new Map<string, number>();
  private readonly done = new Map<string, Set<string>>();
  private readonly connections = new Set<Connection>();
  private readonly epochS: number;

  constructor(private readonly net: MockNetwork, o: VirtualCloudOptions = {}) {
    this.host = o.host ?? "cloud.sim";
    this.port = o.port ?? 8883;
    this.releases = o.releases ?? [];
    this.faults = o.faults ?? {};
    this.silent = o.silent ?? false;
    this.heartbeatIntervalS = o.heartbeatIntervalS ?? 60;
    this.linkRate = o.linkRate ?? DEFAULT_LINK_RATE;
    this.epochS = o.epochS ?? 1_790_000_000;
    this.listen();
  }

  /**
   * How the HTTPS Range server misbehaves (liveness tests): "silent" accepts
   * and never answers; "drip-head" sends its response head one byte every
   * `httpDripMs`; "drip-body" sends the head at once and the body one byte
   * every `httpDripMs`; "close-mid-body" closes after half the body.
   */
  httpMode: "normal" | "silent" | "drip-head" | "drip-body" | "close-mid-body" = "normal";
  httpDripMs = 9000;

  /** The HTTPS Range server's port (same host); streams at `/streams/<stream>`. */
  readonly httpsPort = 8443;
  /** Range requests served. */
  rangeRequests = 0;

  /** Listen (again, after `stop`). */
  listen(): void {
    this.net.listen(this.host, this.port, (peer) => this.accept(peer));
    this.net.listen(this.host, this.httpsPort, (peer) => this.acceptHttp(peer));
  }

  /** The URL of a stream on the HTTPS server. */
  urlOf(stream: string): string {
    return `https://${this.host}:${this.httpsPort}/streams/${stream}`;
  }

  /** A minimal HTTP/1.1 Range server (206 / 404 / 416), keep-alive, for the HTTPS download path. */
  private acceptHttp(peer: PeerSocket): SocketHandlers {
    let head = "";
    return {
      onData: (d) => {
        for (let i = 0; i < d.length; i++) head += String.fromCharCode(d[i]);
        if (head.length > 16384) return peer.close();
        for (let end = head.indexOf("\r\n\r\n"); end >= 0; end = head.indexOf("\r\n\r\n")) {
          const req = head.slice(0, end);
          head = head.slice(end + 4);
          this.serveRange(peer, req);
        }
      },
    };
  }

  private serveRange(peer: PeerSocket, req: string): void {
    const ascii = (t: string) => Uint8Array.from(t, (c) => c.charCodeAt(0));
    const mode = this.httpMode;
    const drip = (bytes: Uint8Array, then?: () => void) => {
      let i = 0;
      const step = () => {
        if (peer.closed) return;
        if (i >= bytes.length) return then?.();
        peer.write(bytes.subarray(i, i + 1));
        i++;
        this.net.clock.setTimer(step, this.httpDripMs);
      };
      step();
    };
    const send = (status: string, headers: string[], body: Uint8Array) => {
      const head = ascii(`HTTP/1.1 ${status}\r\n${headers.concat(`Content-Length: ${body.length}`).join("\r\n")}\r\n\r\n`);
      if (mode === "drip-head") return drip(head, () => body.length && !peer.closed && peer.write(body));
      peer.write(head);
      if (mode === "drip-body") return drip(body);
      if (mode === "close-mid-body") {
        if (body.length > 1) peer.write(body.subarray(0, body.length >> 1));
        return peer.close();
      }
      if (body.length) peer.write(body);
    };
    this.rangeRequests++;
    if (mode === "silent") return;
    const m = /^GET \/streams\/([A-Za-z0-9._-]+) HTTP\/1\.1/.exec(req);
    const stream = m?.[1];
    const release =
      stream && !this.streamAlias.has(stream)
        ? this.releases.find((r) => r.manifest.fetch.stream === stream || (r.manifest.fetch.url ?? "").endsWith(`/streams/${stream}`))
        : undefined;
    if (!release) return send("404 Not Found", [], new Uint8Array(0));
    const total = release.payload.length;
    const r = /\r\nrange: bytes=(\d+)-(\d+)/i.exec(req);
    const first = r ? Number(r[1]) : 0;
    const last = Math.min(r ? Number(r[2]) : total - 1, total - 1);
    if (first >= total || last < first) return send("416 Range Not Satisfiable", [`Content-Range: bytes */${total}`], new Uint8Array(0));
    let body = release.payload.subarray(first, last + 1);
    body = this.faults.corrupt?.(first, body) ?? body;
    send("206 Partial Content", [`Content-Range: bytes ${first}-${last}/${this.faults.total?.(total) ?? total}`], body);
  }

  /** The broker goes away: stops listening and drops every connection. */
  stop(): void {
    this.net.unlisten(this.host, this.port);
    this.net.unlisten(this.host, this.httpsPort);
    for (const c of this.connections) c.peer.close();
    this.connections.clear();
  }

  now(): number {
    return this.epochS + Math.floor(this.net.clock.now() / 1000);
  }

  /** Reports of one kind from one device. */
  reportsOf(deviceId: string, event?: string): StatusReport[] {
    return this.reports.filter((r) => r.deviceId === deviceId && (!event || r.report.event === event)).map((r) => r.report);
  }

  /** Streams the server pretends not to have (maps a stream id to undefined). */
  streamAlias = new Map<string, undefined>();

  /** The revocation record the cloud publishes (its signed envelope and content). */
  revocation: { envelope: Uint8Array; record: RevocationRecord } | undefined;

  /** Publish this signed revocation record from now on (to every device whose heartbeat holds an older one). */
  setRevocation(envelope: Uint8Array): void {
    this.revocation = { envelope, record: decodeRevocation(decodeRevocationEnvelope(envelope).manifest) };
  }

  /** The key set the cloud publishes (its signed envelope and content). */
  keySet: { envelope: Uint8Array; keySet: KeySet } | undefined;

  /** Publish this signed key set from now on (to every device whose heartbeat holds an older one). */
  setKeySet(envelope: Uint8Array): void {
    this.keySet = { envelope, keySet: decodeKeySet(decodeKeySetEnvelope(envelope).manifest, softwareDigest) };
  }

  /** Send a key set envelope to a device now, whatever it holds (tests of refusals). */
  pushKeySet(deviceId: string, envelope: Uint8Array): void {
    this.publishTo(deviceId, topicFor(deviceId, CloudTopic.keySet), envelope);
  }

  /**
   * Signs the time statement each ack carries (`xs-ota serve --time-key`); absent:
   * acks carry none. Given the ack's time; may return undefined (a broker that drops it).
   */
  timeStatement: ((time: number) => Uint8Array | undefined) | undefined;
  /** Added to the plain ack time (a broker that rewinds its acks: negative). */
  ackTimeShiftS = 0;

  /** Send a revocation envelope to a device now, whatever it holds (tests of refusals). */
  pushRevocation(deviceId: string, envelope: Uint8Array): void {
    this.publishTo(deviceId, topicFor(deviceId, CloudTopic.revocation), envelope);
  }

  /** Publish an offer to a device now, whatever the offer rule says (tests of refusals). */
  pushOffer(deviceId: string, envelope: Uint8Array): void {
    this.publishTo(deviceId, topicFor(deviceId, CloudTopic.offer), envelope);
  }

  /** Send a command to a connected device. */
  command(deviceId: string, cmd: "check" | "abort", id = 1): void {
    this.publishTo(deviceId, topicFor(deviceId, CloudTopic.command), encodeCommand({ id, cmd }));
  }

  private accept(peer: PeerSocket): SocketHandlers {
    const c: Connection = { peer, decoder: new MqttDecoder(16384), clientId: "", subscriptions: [], nextId: 1 };
    this.connections.add(c);
    return {
      onData: (d) => {
        const rc = c.decoder.update(d, (p) => this.packet(c, p));
        if (rc !== 0) peer.close();
      },
      onClose: () => this.connections.delete(c),
    };
  }

  private send(c: Connection, p: Packet): void {
    if (!c.peer.closed) c.peer.write(encodePacket(p));
  }

  private packet(c: Connection, p: Packet): void {
    switch (p.type) {
      case "connect":
        c.clientId = p.clientId;
        for (const other of this.connections) if (other !== c && other.clientId === c.clientId) other.peer.close(); // session takeover
        this.send(c, { type: "connack", sessionPresent: false, returnCode: 0 });
        return;
      case "subscribe":
        for (const s of p.subscriptions) c.subscriptions.push(s.topic);
        this.send(c, { type: "suback", packetId: p.packetId, granted: p.subscriptions.map((s) => Math.min(1, s.qos)) });
        return;
      case "pingreq":
        this.send(c, { type: "pingresp" });
        return;
      case "disconnect":
        c.peer.close();
        return;
      case "publish":
        if (p.qos === 1) this.send(c, { type: "puback", packetId: p.packetId! });
        this.fromDevice(p.topic, p.payload);
        return;
      default:
        return; // PUBACKs of our QoS 1 publishes: delivery on the mock network is reliable
    }
  }

  private publishTo(deviceId: string, topic: string, payload: Uint8Array, qos: 0 | 1 = 1): void {
    for (const c of this.connections) {
      if (c.clientId !== deviceId || !c.subscriptions.some((s) => s === topic || (s.endsWith("#") && topic.startsWith(s.slice(0, -1))))) continue;
      const packetId = qos === 1 ? (c.nextId = (c.nextId % 65535) + 1) : undefined;
      this.send(c, { type: "publish", topic, payload, qos, retain: false, dup: false, packetId });
    }
  }

  private fromDevice(topic: string, payload: Uint8Array): void {
    let where: { deviceId: string; leaf: string };
    try {
      where = parseDeviceTopic(topic);
    } catch {
      return;
    }
    const id = where.deviceId;
    try {
      if (where.leaf === "hb") this.onHeartbeat(id, decodeHeartbeat(payload));
      else if (where.leaf === "status") this.onReport(id, decodeStatusReport(payload));
      else if (where.leaf === "chunk/req") this.onChunkRequest(id, payload);
    } catch {
      // a malformed device message is dropped, as the real server does
    }
  }

  private onHeartbeat(deviceId: string, hb: Heartbeat): void {
    this.heartbeats.push({ deviceId, heartbeat: hb, at: this.net.clock.now() });
    if (this.silent) return;
    // The key set first: the ack's time statement, the revocation record and the offer may be signed by keys it brings.
    const ks = this.keySet?.keySet;
    const held = hb.keySet;
    if (ks && (!held || held.epoch < ks.epoch || (held.epoch === ks.epoch && held.sequence < ks.sequence))) this.pushKeySet(deviceId, this.keySet!.envelope);
    const time = this.now() + this.ackTimeShiftS;
    const statement = this.timeStatement?.(time);
    this.publishTo(deviceId, topicFor(deviceId, CloudTopic.heartbeatAck), encodeHeartbeatAck({ seq: hb.seq, interval: this.heartbeatIntervalS, time, ...(statement ? { statement } : {}) }));
    const rev = this.revocation;
    const heldRev = { epoch: hb.revocationEpoch ?? 0, sequence: hb.revocation ?? 0 };
    if (rev && (heldRev.epoch < (rev.record.epoch ?? 0) || (heldRev.epoch === (rev.record.epoch ?? 0) && heldRev.sequence < rev.record.sequence))) this.pushRevocation(deviceId, rev.envelope);
    // a device whose running firmware is revoked asks for a replacement
    if (hb.state !== "idle" && hb.state !== "revoked") return;
    const offer = this.chooseOffer(deviceId, hb);
    if (offer) this.publishTo(deviceId, topicFor(deviceId, CloudTopic.offer), offer.envelope);
  }

  /** The offer rule (see the file comment). */
  chooseOffer(deviceId: string, hb: Heartbeat): SimRelease | undefined {
    const done = this.done.get(deviceId);
    let best: SimRelease | undefined;
    let bestSeconds = 0;
    for (const r of this.releases) {
      const m = r.manifest;
      if (m.hardwareId !== hb.hardwareId || m.slot !== 1 - hb.slot || compareVersions(m.version, hb.version) <= 0) continue;
      if (done?.has(toHex(r.releaseId))) continue;
      if (this.revocation && checkRevoked(this.revocation.record, { version: m.version, securityCounter: m.securityCounter, imageSha256: m.image.sha256 }) !== Reason.OK) continue;
      if (m.payload.kind === "delta" && !(m.payload.baseSha256 && equalBytes(m.payload.baseSha256, hb.imageSha256))) continue;
      const seconds = installSeconds(m, hb.decode, this.linkRate);
      if (seconds === undefined) continue; // a codec the device does not decode
      let better = !best;
      if (best) {
        const order = compareVersions(m.version, best.manifest.version);
        const kinds = m.payload.kind === best.manifest.payload.kind;
        better = order > 0 || (order === 0 && ((m.payload.kind === "delta" && !kinds) || (kinds && seconds < bestSeconds)));
      }
      if (better) {
        best = r;
        bestSeconds = seconds;
      }
    }
    return best;
  }

  /** Outcome reports received again (a device re-sends until acknowledged: at least once). */
  duplicateReports = 0;

  private onReport(deviceId: string, report: StatusReport): void {
    const final = ["offer-refused", "failed", "committed", "rolled-back", "aborted"];
    if (report.releaseId && final.includes(report.event)) {
      const id = toHex(report.releaseId);
      if (this.reports.some((r) => r.deviceId === deviceId && r.report.event === report.event && r.report.reason === report.reason && r.report.releaseId && toHex(r.report.releaseId) === id)) {
        this.duplicateReports++;
        return;
      }
    }
    this.reports.push({ deviceId, report, at: this.net.clock.now() });
    // A rollback by power loss, or a download that failed on the network, says nothing against the release: offer it again.
    const transient = TRANSIENT.includes(report.reason);
    if (report.releaseId && final.includes(report.event) && !transient) {
      if (!this.done.has(deviceId)) this.done.set(deviceId, new Set());
      this.done.get(deviceId)!.add(toHex(report.releaseId));
    }
  }

  private onChunkRequest(deviceId: string, payload: Uint8Array): void {
    const req = decodeChunkRequest(payload);
    const release = this.streamAlias.has(req.stream) ? undefined : this.releases.find((r) => r.manifest.fetch.stream === req.stream);
    const topic = topicFor(deviceId, CloudTopic.chunkReply);
    if (!release) {
      this.publishTo(deviceId, topic, encodeChunkReply({ status: ChunkStatus.UNKNOWN_STREAM, stream: req.stream, offset: req.offset, total: 0, data: new Uint8Array(0) }), 0);
      return;
    }
    const total = release.payload.length;
    if (req.offset >= total) {
      this.publishTo(deviceId, topic, encodeChunkReply({ status: ChunkStatus.OUT_OF_RANGE, stream: req.stream, offset: req.offset, total, data: new Uint8Array(0) }), 0);
      return;
    }
    if (this.faults.drop?.(req.offset)) return;
    const length = Math.min(req.length, this.faults.limit?.(req.offset) ?? req.length);
    let data = release.payload.subarray(req.offset, Math.min(total, req.offset + length));
    data = this.faults.corrupt?.(req.offset, data) ?? data;
    const reply = encodeChunkReply({ status: ChunkStatus.OK, stream: req.stream, offset: req.offset, total: this.faults.total?.(total) ?? total, data });
    const times = this.faults.duplicate?.(req.offset) ? 2 : 1;
    const send = () => {
      for (let i = 0; i < times; i++) {
        this.bytesSent.set(deviceId, (this.bytesSent.get(deviceId) ?? 0) + data.length);
        this.publishTo(deviceId, topic, reply, 0);
      }
    };
    const delay = this.faults.delayMs?.(req.offset) ?? 0;
    if (delay > 0) this.net.clock.setTimer(send, delay);
    else send();
  }

  /** A one-line description of a release, for logs. */
  static describe(r: SimRelease): string {
    return `${r.manifest.hardwareId} ${formatVersion(r.manifest.version)} slot ${r.manifest.slot} ${r.manifest.payload.kind}`;
  }
}
