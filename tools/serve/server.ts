/**
 * `xs-ota serve`: the update server. Answers heartbeats (interval + trusted
 * time, the newest revocation record when the device holds an older one, and
 * an offer when a newer release fits the device, or a replacement when its
 * running image is revoked), chunk requests over MQTT and Range requests over
 * HTTPS, and records status reports.
 *
 * Stateless apart from the release directory and the reports log: every
 * decision is made from the message in hand and the files in DIR, so several
 * instances behind one broker (shared subscription `$share/xs-ota-serve/...`)
 * split the load and any of them can die.
 *
 * Two broker modes: an embedded aedes broker (TLS by default, with a
 * throwaway CA in DIR/tls/), or an existing broker (`--broker mqtts://…`)
 * reached with the device's own portable MQTT client over the Node socket.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as tls from "node:tls";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Aedes } from "aedes";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { OtaError, Reason, reasonName } from "../../src/errors";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import {
  ChunkStatus,
  decodeChunkRequest,
  decodeHeartbeat,
  decodeStatusReport,
  encodeChunkReply,
  encodeCommand,
  encodeHeartbeatAck,
  formatVersion,
  MAX_CHUNK,
  parseDeviceTopic,
  serverSubscriptions,
  topicFor,
  type Command,
} from "../../src/protocol/messages";
import { toHex } from "../../src/util/bytes";
import { readReleaseDir } from "../release/read";
import type { Keyring } from "../../src/crypto/keyring";
import { newestRevocations, revocationOrder, type RevocationEntry } from "../release/revoke";
import { ensureTlsFiles } from "./certs";
import { brokerIdentityFromFiles, checkClientCertificate, clientAuthTlsOptions } from "./client-auth";
import { chooseOffer, offerContext, type OfferCandidate } from "./offers";
import { Rollout } from "./rollout";
import { dashboard } from "./dashboard";
import { INSTANCE_BEAT_MS, mergeRecord, RolloutPlans } from "./plans";
import { PublishQueue } from "./publish-queue";
import { SharedState, STATE_FILTER, STATE_TOPIC_PREFIX } from "./store";
import { readRevocations } from "./revocations";
import { readKeySets } from "./keysets";
import { checkBatchKey, keySetOrder, newestKeySet, signTimeStatement, type KeySetEntryFile } from "../release/keyset";
import type { SigningKey } from "../keys/signer";

export interface ServeOptions {
  readonly releasesDir: string;
  /** When given, only releases whose signature a key in it verifies are served (others are skipped and logged). */
  readonly keyring?: Keyring;
  /**
   * The operator credential's password (MQTT username OPERATOR_USERNAME, client id
   * OPERATOR_CLIENT_PREFIX…), which may read the operator topic and nothing else.
   * Default (embedded broker): DIR/operator.token, made at the first start (mode 0600).
   */
  readonly operatorToken?: string;
  /** Bind address for the embedded broker and the HTTPS server. */
  readonly host: string;
  /** Embedded broker port (0 = any free port). Ignored with `broker`. */
  readonly mqttPort: number;
  /** HTTPS (Range) port (0 = any free port). */
  readonly httpsPort: number;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  /** CA file: printed for devices; with `broker`, the CA the broker's certificate must chain to. */
  readonly ca?: string;
  /** `mqtts://host:port` (or `mqtt://` with insecurePlaintext): use this broker instead of the embedded one. */
  readonly broker?: string;
  readonly insecurePlaintext: boolean;
  /**
   * Fleet CA certificate file (`xs-ota ca init`): the embedded broker then requires
   * a device certificate from it and binds the client id to its CN (tools/serve/client-auth.ts).
   */
  readonly clientCa?: string;
  /** With `broker`: serve's own client certificate and key files (PEM), for a broker that requires one. */
  readonly brokerCert?: string;
  readonly brokerKey?: string;
  /** Heartbeat interval told to devices, seconds. */
  readonly heartbeatIntervalSec: number;
  /** JSON-lines log of status reports. */
  readonly reportsPath: string;
  readonly log: (line: string) => void;
  /** Unix seconds (injectable for tests). */
  readonly now?: () => number;
  /** At most this many devices in an update at once (0 or absent = no bound); see tools/serve/rollout.ts. */
  readonly maxInFlight?: number;
  /** A device in an update that is silent this long (s) loses its place; default 600. */
  readonly inFlightTimeoutSec?: number;
  /** Bytes per second a device is assumed to download at, to choose among deltas (tools/serve/offers.ts); default DEFAULT_LINK_RATE. */
  readonly linkRate?: number;
  /** Called with every status report as logged (the fleet simulator watches them). */
  readonly onReport?: (report: ReportLine) => void;
  /**
   * The fleet simulator's I/O accounting (tools/sim/ledger.ts): told of every message serve takes
   * from a device topic (before it is handled) and of every message it publishes.
   */
  readonly trace?: { readonly received: (topic: string) => void; readonly published: (topic: string) => void };
  /** Public keys a rollout plan must be signed by (serve --trust); none = a plan is bound by its hash only. */
  readonly planKeys?: readonly Uint8Array[];
  /**
   * A key of the time role (`xs-ota keyset make --time KEY`): every ack then carries a
   * statement of serve's time signed with it, the only time devices decide expiry by.
   */
  readonly timeKey?: SigningKey;
  /** An offer of a planned release not answered within this (s) is taken as lost and its place freed; default 15. */
  readonly offerTimeoutSec?: number;
}

/** One line of the reports log. */
export interface ReportLine {
  readonly time: string;
  readonly deviceId: string;
  readonly event: string;
  readonly version: string;
  readonly target?: string;
  readonly reason: number;
  readonly reasonName: string;
  /** Hex release id (SHA-256 of the signed manifest bytes). */
  readonly release?: string;
}

/** Serve's own counters. */
export interface ServeStats {
  readonly heartbeats: number;
  readonly offers: number;
  /** Offers not sent because every in-flight place was taken. */
  readonly withheld: number;
  /** Offers not sent because the device already finished with that release. */
  readonly finishedSkips: number;
  readonly chunks: number;
  /** Payload bytes in chunk replies (MQTT). */
  readonly chunkBytes: number;
  readonly rangeRequests: number;
  /** Payload bytes sent by the HTTPS Range server. */
  readonly rangeBytes: number;
  readonly reports: number;
  readonly inFlight: number;
  readonly peakInFlight: number;
}

export interface ServeHandle {
  /** The embedded broker's port (undefined with an external broker). */
  readonly mqttPort: number | undefined;
  readonly httpsPort: number;
  /** CA devices should trust (the throwaway CA unless --ca was given). */
  readonly caPath: string | undefined;
  /** The operator credential's password file (embedded broker, default token), if any. */
  readonly operatorTokenPath: string | undefined;
  /** Publish a command to one device. */
  command(deviceId: string, c: Command): void;
  /** Devices seen, events and failures so far. */
  summary(): string;
  stats(): ServeStats;
  close(): Promise<void>;
}

interface Bus {
  /** false: not sent and never will be (an offer's place is then freed). */
  publish(topic: string, payload: Uint8Array, qos: 0 | 1): boolean;
  close(): Promise<void>;
}

/** Only what a device may do: publish its own device → cloud topics, subscribe its own cloud → device topics. */
export function mayPublish(clientId: string, topic: string): boolean {
  try {
    return parseDeviceTopic(topic).deviceId === clientId;
  } catch (e) {
    if (e instanceof OtaError) return false;
    throw e;
  }
}

export function maySubscribe(clientId: string, filter: string): boolean {
  const prefix = `xs-ota/v1/${clientId}/`;
  if (!filter.startsWith(prefix)) return false;
  const leaf = filter.slice(prefix.length);
  return leaf === "hb/ack" || leaf === "offer" || leaf === "chunk/res" || leaf === "cmd" || leaf === "revocation" || leaf === "keyset" || leaf === "#" || leaf === "+";
}

/**
 * The operator topic: fleet events (heartbeats, status reports, download
 * progress) as JSON, published by serve for `xs-ota watch`. Outside every
 * device's namespace (xs-ota/v1/<id>/…), so no device may subscribe to it.
 */
export const OPERATOR_TOPIC = "xs-ota/operator/v1/fleet";
/** The MQTT username of the operator credential. */
export const OPERATOR_USERNAME = "xs-ota-operator";
/** Operator client ids start with this; a client without the credential may not use it. */
export const OPERATOR_CLIENT_PREFIX = "xs-ota-operator-";

/** One fleet event on the operator topic. */
export interface OperatorEvent {
  readonly time: string;
  readonly deviceId: string;
  /** What serve saw: a heartbeat, a status report, or a chunk it served (download progress). */
  readonly source: "hb" | "report" | "chunk";
  readonly version?: string;
  readonly state?: string;
  /** Percent of the current download (chunks: from the bytes served). */
  readonly progress?: number;
  readonly bytes?: number;
  readonly total?: number;
  readonly reason?: number;
  readonly reasonName?: string;
  readonly event?: string;
  readonly target?: string;
}

/** An operator may subscribe to the operator topic only. */
export function operatorMaySubscribe(filter: string): boolean {
  return filter === OPERATOR_TOPIC || filter === "xs-ota/operator/v1/#" || filter === "xs-ota/operator/#";
}

/** The operator token in DIR/operator.token, made (32 random bytes, hex, mode 0600) when missing. */
export function ensureOperatorToken(dir: string): { path: string; token: string } {
  const path = join(dir, "operator.token");
  // "wx": two instances starting at once on one folder keep the first token, never half of each.
  try {
    fs.writeFileSync(path, randomBytes(32).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  for (let i = 0; i < 50 && fs.statSync(path).size === 0; i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  return { path, token: fs.readFileSync(path, "utf8").trim() };
}

function trackConnections(server: net.Server): () => Promise<void> {
  const conns = new Set<net.Socket>();
  const add = (c: net.Socket) => {
    conns.add(c);
    c.on("close", () => conns.delete(c));
  };
  server.on("connection", add);
  return async () => {
    for (const c of conns) c.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
}

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** A listen failure as one line naming the port and the option that sets it. */
function listenError(e: unknown, what: string, host: string, port: number, option: string): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") return new Error(`cannot listen for ${what} on ${host}:${port}: the port is in use (another server?); choose another with ${option}`);
  if (code === "EACCES") return new Error(`cannot listen for ${what} on ${host}:${port}: permission denied (ports below 1024 need privileges); choose another with ${option}`);
  if (code === "EADDRNOTAVAIL") return new Error(`cannot listen for ${what} on ${host}:${port}: no such local address (--host)`);
  return new Error(`cannot listen for ${what} on ${host}:${port}: ${(e as Error).message}`);
}

/** Parse `bytes=a-b`, `bytes=a-`, `bytes=-n` against a file size; undefined = not satisfiable; null = no/ignored header. */
export function parseRangeHeader(h: string | undefined, size: number): { start: number; end: number } | undefined | null {
  if (h === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const n = Math.min(+m[2], size);
    return n > 0 ? { start: size - n, end: size - 1 } : undefined;
  }
  const start = +m[1];
  const end = m[2] === "" ? size - 1 : Math.min(+m[2], size - 1);
  if (start >= size || end < start) return undefined;
  return { start, end };
}

/** Start serving. Resolves once the broker (or broker link) and the HTTPS server listen. */
export async function startServe(o: ServeOptions): Promise<ServeHandle> {
  const now = o.now ?? (() => Math.floor(Date.now() / 1000));
  if (!fs.statSync(o.releasesDir).isDirectory()) throw new Error(`${o.releasesDir} is not a directory`);

  const brokerUrl = o.broker !== undefined ? /^(mqtts?):\/\/([A-Za-z0-9.-]+):(\d{1,5})$/.exec(o.broker) : undefined;
  if (o.broker !== undefined && !brokerUrl) throw new Error(`--broker must be mqtts://host:port, got "${o.broker}"`);
  if (brokerUrl && brokerUrl[1] === "mqtt" && !o.insecurePlaintext) throw new Error("--broker mqtt:// (plaintext) needs --insecure-plaintext");

  // TLS material: given, or a throwaway CA in DIR/tls/.
  let cert: string | undefined;
  let key: string | undefined;
  let caPath = o.ca;
  if (o.tlsCert || o.tlsKey) {
    if (!o.tlsCert || !o.tlsKey) throw new Error("--tls-cert and --tls-key go together");
    cert = o.tlsCert;
    key = o.tlsKey;
  } else if (!o.insecurePlaintext) {
    const files = ensureTlsFiles(join(o.releasesDir, "tls"));
    cert = files.cert;
    key = files.key;
    caPath ??= files.ca;
  }
  let operatorToken = o.operatorToken;
  let operatorTokenPath: string | undefined;
  if (operatorToken === undefined && !o.broker) ({ token: operatorToken, path: operatorTokenPath } = ensureOperatorToken(o.releasesDir));
  // The dashboard's credential: the operator token (with --broker too, where it opens the dashboard only).
  const dashboardToken = operatorToken ?? ensureOperatorToken(o.releasesDir).token;
  const tlsOptions = cert && key ? { cert: fs.readFileSync(cert), key: fs.readFileSync(key), minVersion: "TLSv1.2" as const } : undefined;

  // Releases and revocation records: re-read from DIR at most every 2 s (DIR is the only state).
  type Entry = OfferCandidate & { readonly releaseId: string };
  let cache: { at: number; entries: Entry[]; revocations: Map<string, RevocationEntry>; keySet: KeySetEntryFile | undefined } | undefined;
  // One signature per second, whatever the number of heartbeats.
  let signedTime: { time: number; statement: Uint8Array } | undefined;
  const timeStatement = (time: number): Uint8Array => {
    if (signedTime?.time !== time) signedTime = { time, statement: signTimeStatement(time, o.timeKey!) };
    return signedTime.statement;
  };
  const skipped = new Set<string>();
  const load = () => {
    const t = Date.now();
    if (cache && t - cache.at < 2000) return cache;
    const skip = (p: string, e: Error) => {
      // Once per file and reason: DIR is re-read every 2 s.
      const said = `${p}\0${e.message}`;
      if (!skipped.has(said)) o.log(`skipping ${p}: ${e.message}`);
      skipped.add(said);
    };
    const keySet = newestKeySet(readKeySets(o.releasesDir, { onError: skip }));
    // A release signed by a key the newest key set retired is never offered (devices refuse it: KEY_RETIRED).
    const retiredSigner = (keyId: Uint8Array) => keySet !== undefined && checkBatchKey(keySet.keySet, keyId, "", 0) === Reason.KEY_RETIRED;
    const entries: Entry[] = [];
    for (const e of readReleaseDir(o.releasesDir, { keyring: o.keyring, onError: skip })) {
      if (retiredSigner(e.accepted.keyId)) skip(e.path, new Error(`signed by a key that key set ${keySet!.keySet.epoch}.${keySet!.keySet.sequence} retired`));
      else entries.push({ manifest: e.manifest, envelope: e.bytes, payloadPath: e.payloadPath, releaseId: toHex(e.accepted.releaseId) });
    }
    const revocations = newestRevocations(readRevocations(o.releasesDir, { onError: skip }), (kept, dropped) =>
      o.log(`revocation ${dropped.path} has the same hardware id and sequence as ${kept.path} but other content; publishing ${kept.path}`),
    );
    cache = { at: t, entries, revocations, keySet };
    return cache;
  };
  const releases = (): Entry[] => load().entries;
  const payloadFor = (stream: string): string | undefined => releases().find((r) => r.manifest.fetch.stream === stream && r.payloadPath)?.payloadPath;

  // Soft state for the summary only.
  const devices = new Map<string, { version: string; state: string; reason: number; seen: number }>();
  const events = new Map<string, number>();
  const failures = new Map<string, number>();
  let chunks = 0;
  let chunkBytes = 0;
  let rangeRequests = 0;
  let rangeBytes = 0;
  let heartbeats = 0;
  let reports = 0;
  let finishedSkips = 0;
  let offers = 0;
  let revocationsSent = 0;
  // In memory only: rebuilt from the reports log, so a restarted serve neither re-offers finished releases nor forgets them.
  // --max-in-flight is not counted here (each instance would count its own places) but from the shared state, by `plans`.
  const rollout = new Rollout({ maxInFlight: 0, timeoutSec: o.inFlightTimeoutSec ?? 600 });
  const replayed = rollout.rebuild(o.reportsPath);
  if (replayed > 0) o.log(`rollout state rebuilt from ${replayed} reports in ${o.reportsPath}`);
  // Rollout plans and the state every instance shares (tools/serve/store.ts): retained messages on the broker, or a snapshot file with the embedded one.
  let publishState: ((topic: string, payload: Uint8Array) => void) | undefined;
  const state = new SharedState({
    merge: mergeRecord,
    ...(o.broker ? { publish: (t: string, p: Uint8Array) => publishState?.(t, p) } : { snapshotPath: join(o.releasesDir, "rollout-state.json") }),
  });
  // An injected clock (the simulator's virtual time, a test's) is the plans' and the in-flight bound's clock too.
  const plans = new RolloutPlans({ store: state, trusted: o.planKeys ?? [], inFlightTimeoutMs: (o.inFlightTimeoutSec ?? 600) * 1000, offerTimeoutMs: (o.offerTimeoutSec ?? 15) * 1000, silentAfterMs: 3 * o.heartbeatIntervalSec * 1000, log: o.log, maxInFlight: o.maxInFlight ?? 0, warmUpMs: o.broker ? INSTANCE_BEAT_MS + 1000 : 0, ...(o.now ? { now: () => o.now!() * 1000 } : {}) });

  let bus: Bus;
  const lastPercent = new Map<string, number>();
  const operator = (e: Omit<OperatorEvent, "time">): void => {
    try {
      bus.publish(OPERATOR_TOPIC, new TextEncoder().encode(JSON.stringify({ time: new Date(now() * 1000).toISOString(), ...e })), 0);
    } catch (err) {
      if (!(err instanceof OtaError)) throw err;
    }
  };
  const handle = (topic: string, payload: Uint8Array): void => {
    o.trace?.received(topic);
    let deviceId: string;
    let leaf: string;
    try {
      ({ deviceId, leaf } = parseDeviceTopic(topic));
    } catch (e) {
      if (e instanceof OtaError) return;
      throw e;
    }
    try {
      if (leaf === "hb") {
        const hb = decodeHeartbeat(payload);
        heartbeats++;
        devices.set(deviceId, { version: formatVersion(hb.version), state: hb.state, reason: hb.reason, seen: now() });
        operator({ deviceId, source: "hb", version: formatVersion(hb.version), state: hb.state, progress: hb.progress, reason: hb.reason, reasonName: reasonName(hb.reason) });
        rollout.seen(deviceId, now());
        plans.heartbeat(deviceId, hb);
        const { entries, revocations, keySet } = load();
        // The key set first: the ack's time statement, the revocation record and the offer may be signed by keys it brings.
        const heldKeySet = hb.keySet ? keySetOrder(hb.keySet) : -1;
        if (keySet && heldKeySet < keySetOrder(keySet.keySet)) {
          o.log(`key set ${keySet.keySet.epoch}.${keySet.keySet.sequence} to ${deviceId}, which holds ${hb.keySet ? `${hb.keySet.epoch}.${hb.keySet.sequence}` : "none"}`);
          bus.publish(topicFor(deviceId, "keyset"), keySet.bytes, 1);
        }
        const time = now();
        bus.publish(topicFor(deviceId, "hb/ack"), encodeHeartbeatAck({ seq: hb.seq, interval: o.heartbeatIntervalSec, time, ...(o.timeKey ? { statement: timeStatement(time) } : {}) }), 1);
        const revocation = revocations.get(hb.hardwareId);
        if (revocation && revocationOrder({ epoch: hb.revocationEpoch, sequence: hb.revocation ?? 0 }) < revocationOrder(revocation.record)) {
          revocationsSent++;
          o.log(`revocation ${revocation.record.sequence} (${hb.hardwareId}) to ${deviceId}, which holds ${hb.revocation ?? "none"}`);
          bus.publish(topicFor(deviceId, "revocation"), revocation.bytes, 1);
        }
        if (hb.state === "idle" || hb.state === "revoked") {
          const ctx = { ...offerContext(entries, hb, revocation?.record), ...(o.linkRate !== undefined ? { linkRate: o.linkRate } : {}) };
          // A planned release only where its rollout lets this device have it now (tools/serve/plans.ts).
          const allowed = plans.filter(deviceId, hb, entries);
          // Releases this device finished with for good are not offered again (it would refuse them as replayed).
          let offer = chooseOffer(allowed, hb, now(), ctx);
          if (offer && rollout.isFinished(deviceId, offer.releaseId)) {
            finishedSkips++;
            offer = chooseOffer(allowed.filter((c) => !rollout.isFinished(deviceId, c.releaseId)), hb, now(), ctx);
          }
          if (offer && !plans.admit(deviceId, offer)) {
            // in flight already (no duplicate offer), or every place (of its rollout, or of --max-in-flight over all instances) is taken
          } else if (offer) {
            rollout.admit(deviceId, offer.releaseId, now()); // no bound: remembers the offer a refusal without a release id answers
            offers++;
            const coded = offer.manifest.payload.kind === "delta" ? ` ${offer.manifest.payload.compression}` : "";
            o.log(`${ctx.replace ? "replacement " : ""}offer ${formatVersion(offer.manifest.version)} (${offer.manifest.payload.kind}${coded}, slot ${offer.manifest.slot}) to ${deviceId}`);
            if (!bus.publish(topicFor(deviceId, "offer"), offer.envelope, 1)) plans.dropped(deviceId);
          } else if (ctx.replace) o.log(`no replacement for the revoked ${formatVersion(hb.version)} of ${deviceId}`);
        }
      } else if (leaf === "chunk/req") {
        const req = decodeChunkRequest(payload);
        const path = payloadFor(req.stream);
        const reply = (status: number, offset: number, total: number, data: Uint8Array): void => void bus.publish(topicFor(deviceId, "chunk/res"), encodeChunkReply({ status, stream: req.stream, offset, total, data }), 0);
        if (!path) return reply(ChunkStatus.UNKNOWN_STREAM, req.offset, 0, new Uint8Array(0));
        const size = fs.statSync(path).size;
        if (req.offset > size) return reply(ChunkStatus.OUT_OF_RANGE, req.offset, size, new Uint8Array(0));
        const n = Math.min(req.length, MAX_CHUNK, size - req.offset);
        const data = new Uint8Array(n);
        const fd = fs.openSync(path, "r");
        try {
          fs.readSync(fd, data, 0, n, req.offset);
        } finally {
          fs.closeSync(fd);
        }
        chunks++;
        chunkBytes += n;
        reply(ChunkStatus.OK, req.offset, size, data);
        // Download progress for the operator: at most one event per percent per device.
        const percent = size ? Math.floor((100 * (req.offset + n)) / size) : 100;
        if (lastPercent.get(deviceId) !== percent) {
          lastPercent.set(deviceId, percent);
          operator({ deviceId, source: "chunk", state: "downloading", progress: percent, bytes: req.offset + n, total: size });
        }
      } else if (leaf === "status") {
        const s = decodeStatusReport(payload);
        const line = {
          time: new Date(now() * 1000).toISOString(),
          deviceId,
          event: s.event,
          version: formatVersion(s.version),
          ...(s.target ? { target: formatVersion(s.target) } : {}),
          reason: s.reason,
          reasonName: reasonName(s.reason),
          ...(s.releaseId ? { release: toHex(s.releaseId) } : {}),
        };
        // A QoS 1 redelivery (same device, sequence and event), here or at another instance, is logged and counted once.
        if (!plans.report(deviceId, { seq: s.seq, event: s.event, reason: s.reason, version: line.version, ...(line.target ? { target: line.target } : {}) })) return;
        fs.appendFileSync(o.reportsPath, JSON.stringify(line) + "\n");
        reports++;
        rollout.report(line, now());
        o.onReport?.(line);
        events.set(s.event, (events.get(s.event) ?? 0) + 1);
        if (s.reason !== 0) failures.set(reasonName(s.reason), (failures.get(reasonName(s.reason)) ?? 0) + 1);
        o.log(`report ${deviceId}: ${s.event}${s.reason ? ` (${reasonName(s.reason)})` : ""}`);
        operator({ deviceId, source: "report", event: s.event, version: line.version, ...(line.target ? { target: line.target } : {}), reason: s.reason, reasonName: line.reasonName });
      }
    } catch (e) {
      if (!(e instanceof OtaError)) throw e;
      o.log(`refused ${leaf} from ${deviceId}: ${e.message}`);
    }
  };

  const closers: (() => Promise<void>)[] = [];
  let mqttPort: number | undefined;
  try {
    if (o.broker) {
      const m = brokerUrl!;
      const useTls = m[1] === "mqtts";
      const clock = new NodeClock();
      const network = new NodeNetwork();
      const ca = o.ca ? fs.readFileSync(o.ca, "utf8") : undefined;
      const link = new MqttLink(
        {
          net: network,
          clock,
          server: { host: m[2], port: +m[3], tls: useTls, ...(ca ? { ca } : {}), ...(o.brokerCert && o.brokerKey ? { clientIdentity: brokerIdentityFromFiles(o.brokerCert, o.brokerKey) } : {}) },
          clientId: `xs-ota-serve-${randomBytes(6).toString("hex")}`,
          keepAliveSec: 30,
          maxPacket: 64 * 1024,
          inflightWindow: 64,
          backoff: new Backoff({ initialMs: 500, maxMs: 30_000, random: seededRandom(randomBytes(4).readUInt32LE(0)) }),
          // The shared state's retained records: every instance reads all of them (no $share).
          subscriptions: [...serverSubscriptions(true), { topic: STATE_FILTER, qos: 1 }],
        },
        {
          onUp: (refused) => {
            o.log(`connected to ${o.broker}${refused.length ? `; refused: ${refused.join(", ")}` : ""}`);
            queue.drain();
          },
          onDown: (reason, retry) => o.log(`broker link down (${reasonName(reason)}), retry in ${retry} ms`),
          onMessage: (msg) => (msg.topic.startsWith(STATE_TOPIC_PREFIX) ? state.receive(msg.topic, msg.payload) : handle(msg.topic, msg.payload)),
        },
      );
      // QoS 1 publishes beyond the client's window wait for PUBACKs (back-pressure) instead of being dropped.
      const queue = new PublishQueue(link);
      publishState = (topic, payload) => queue.publish(topic, payload, true);
      link.start();
      bus = {
        publish: (topic, payload, qos) => {
          try {
            if (qos === 1) return queue.publish(topic, payload);
            link.publish(topic, payload, qos);
            return true;
          } catch (e) {
            if (!(e instanceof OtaError)) throw e;
            o.log(`not published to ${topic}: ${e.message}`);
            return false;
          }
        },
        close: async () => {
          link.stop();
          clock.clearAll();
        },
      };
    } else {
      const operators = new WeakSet<object>();
      const broker = await Aedes.createBroker({
        // The operator credential (username OPERATOR_USERNAME, a client id with the operator prefix) reads the
        // operator topic and nothing else; no other client may use the prefix. Devices connect as before.
        authenticate: (client, username, password, cb) => {
          const isOperatorId = client.id.startsWith(OPERATOR_CLIENT_PREFIX);
          const claims = username === OPERATOR_USERNAME;
          const good = claims && operatorToken !== undefined && password !== undefined && password.toString("utf8") === operatorToken;
          if (good && isOperatorId) {
            operators.add(client);
            return cb(null, true);
          }
          if (o.clientCa && !claims && !isOperatorId) {
            const check = checkClientCertificate((client as { conn?: unknown }).conn, client.id);
            if (!check.ok) {
              o.log(`refused client ${client.id}: ${check.why}`);
              return cb(Object.assign(new Error(check.why), { returnCode: 5 }) as never, false);
            }
          }
          if (claims || isOperatorId) {
            o.log(`refused operator connection from client ${client.id}: ${claims && isOperatorId ? "wrong operator token" : `the operator credential goes with a client id starting ${OPERATOR_CLIENT_PREFIX}`}`);
            const e = Object.assign(new Error("bad operator credential"), { returnCode: claims && isOperatorId ? 4 : 5 });
            return cb(e as never, false);
          }
          cb(null, true);
        },
        authorizePublish: (client, packet, cb) => cb(client === null || (!operators.has(client) && mayPublish(client.id, packet.topic)) ? null : new Error("not this client's topic")),
        authorizeSubscribe: (client, sub, cb) => cb(null, (operators.has(client) ? operatorMaySubscribe(sub.topic) : maySubscribe(client.id, sub.topic)) ? sub : null),
      });
      if (o.clientCa && (!tlsOptions || o.insecurePlaintext)) throw new Error("--client-ca needs TLS (not --insecure-plaintext)");
      const mqttTls = tlsOptions && o.clientCa ? { ...tlsOptions, ...clientAuthTlsOptions(fs.readFileSync(o.clientCa)) } : tlsOptions;
      // No Nagle: a broker's small replies (CONNACK, SUBACK, PUBACK, a short publish) must not wait for the peer's delayed ACK (40 ms).
      const server = mqttTls && !o.insecurePlaintext ? tls.createServer({ ...mqttTls, noDelay: true }, broker.handle as never) : net.createServer({ noDelay: true }, broker.handle as never);
      if (o.clientCa) o.log(`devices must present a certificate from the fleet CA in ${o.clientCa} (client id = its CN)`);
      if (!tlsOptions || o.insecurePlaintext) o.log("WARNING: the embedded broker is listening WITHOUT TLS (--insecure-plaintext)");
      const closeServer = trackConnections(server);
      try {
        mqttPort = await listen(server, o.mqttPort, o.host);
      } catch (e) {
        // Aedes keeps timers: close it, or a failed start would never exit.
        await new Promise<void>((r) => broker.close(() => r()));
        throw listenError(e, "MQTT", o.host, o.mqttPort, "--mqtt-port");
      }
      for (const s of serverSubscriptions(false)) {
        await new Promise<void>((r) =>
          broker.subscribe(
            s.topic,
            (packet, cb) => {
              handle(packet.topic, new Uint8Array(packet.payload as Buffer));
              cb();
            },
            () => r(),
          ),
        );
      }
      bus = {
        publish: (topic, payload, qos) => (
          broker.publish({ cmd: "publish", topic, payload: Buffer.from(payload), qos, retain: false, dup: false }, (e) => e && o.log(`publish ${topic}: ${e.message}`)), true
        ),
        close: async () => {
          await closeServer();
          await new Promise<void>((r) => broker.close(() => r()));
        },
      };
      o.log(`${o.insecurePlaintext ? "mqtt" : "mqtts"} broker listening on ${o.host}:${mqttPort}`);
    }
    closers.push(() => bus.close());
    if (o.trace) {
      const inner = bus;
      const trace = o.trace;
      bus = { ...inner, publish: (topic, payload, qos) => (trace.published(topic), inner.publish(topic, payload, qos)) };
    }
    const board = dashboard(plans, dashboardToken, o.log);
    const ticker = setInterval(() => plans.tick(), 1000);
    closers.push(async () => {
      clearInterval(ticker);
      board.close();
      state.flush();
    });

    // HTTPS Range server for the payload files.
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (board.handle(req, res)) return;
      const m = /^\/streams\/([A-Za-z0-9._-]{1,64})$/.exec(req.url ?? "");
      if ((req.method !== "GET" && req.method !== "HEAD") || !m) return void res.writeHead(req.method === "GET" || req.method === "HEAD" ? 404 : 405).end();
      const path = payloadFor(m[1]);
      if (!path) return void res.writeHead(404).end();
      const size = fs.statSync(path).size;
      const range = parseRangeHeader(req.headers.range, size);
      if (range === undefined) return void res.writeHead(416, { "Content-Range": `bytes */${size}` }).end();
      const start = range ? range.start : 0;
      const end = range ? range.end : size - 1;
      const headers = { "Content-Length": String(end - start + 1), "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream" };
      res.writeHead(range ? 206 : 200, range ? { ...headers, "Content-Range": `bytes ${start}-${end}/${size}` } : headers);
      if (req.method === "HEAD" || size === 0) return void res.end();
      rangeRequests++;
      rangeBytes += end - start + 1;
      fs.createReadStream(path, { start, end }).pipe(res);
    };
    const web = tlsOptions && !o.insecurePlaintext ? https.createServer({ ...tlsOptions, noDelay: true }, onRequest) : http.createServer({ noDelay: true }, onRequest);
    web.keepAliveTimeout = 30_000;
    const closeWeb = trackConnections(web);
    let httpsPort: number;
    try {
      httpsPort = await listen(web, o.httpsPort, o.host);
    } catch (e) {
      throw listenError(e, "HTTPS", o.host, o.httpsPort, "--https-port");
    }
    closers.push(closeWeb);
    o.log(`${web instanceof https.Server ? "https" : "http"} range server listening on ${o.host}:${httpsPort} (/streams/<stream>)`);
    if (caPath) o.log(`devices trust the CA in ${caPath}`);
    o.log(`operator dashboard: ${web instanceof https.Server ? "https" : "http"}://${o.host === "0.0.0.0" ? "127.0.0.1" : o.host}:${httpsPort}/dashboard (operator token: ${join(o.releasesDir, "operator.token")}); rollouts in ${state.size ? `${plans.rollouts().length} plan(s)` : "none yet"}`);

    return {
      mqttPort,
      httpsPort,
      caPath,
      operatorTokenPath,
      command: (deviceId, c) => bus.publish(topicFor(deviceId, "cmd"), encodeCommand(c), 1),
      stats: () => ({
        heartbeats,
        offers,
        withheld: plans.withheldForPlace,
        finishedSkips,
        chunks,
        chunkBytes,
        rangeRequests,
        rangeBytes,
        reports,
        inFlight: plans.fleetInFlight().inFlight,
        peakInFlight: plans.peakInFlight,
      }),
      summary: () => {
        const lines = [`devices seen: ${devices.size}; offers sent: ${offers}; revocations sent: ${revocationsSent}; chunks served: ${chunks}`];
        if (o.maxInFlight) lines.push(`in flight: ${plans.fleetInFlight().inFlight} of at most ${o.maxInFlight} (peak ${plans.peakInFlight}); offers withheld for a place: ${plans.withheldForPlace}`);
        for (const [id, d] of [...devices].sort()) lines.push(`  ${id}: ${d.version} ${d.state}${d.reason ? ` last ${reasonName(d.reason)}` : ""}`);
        if (events.size) lines.push(`reports: ${[...events].map(([k, v]) => `${k} ${v}`).join(", ")}`);
        if (failures.size) lines.push(`failures: ${[...failures].map(([k, v]) => `${k} ${v}`).join(", ")}`);
        return lines.join("\n");
      },
      close: async () => {
        for (const c of closers.reverse()) await c();
        closers.length = 0;
      },
    };
  } catch (e) {
    for (const c of closers.reverse()) await c();
    throw e;
  }
}
