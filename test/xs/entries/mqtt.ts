/**
 * The MQTT client against an in-process scripted broker over the MockNetwork
 * and the VirtualClock. Portable: the same suite runs under vitest
 * (test/unit/mqtt-client.test.ts) and inside XS (test/xs/mqtt.test.ts), so
 * the bytes the XS engine sends are the bytes the Node run checked.
 */
import { VirtualClock } from "../../../hal/mock/clock";
import { MockNetwork, type PeerSocket } from "../../../hal/mock/socket";
import { OtaError, Reason } from "../../../src/errors";
import { Backoff, seededRandom } from "../../../src/protocol/backoff";
import { MqttLink } from "../../../src/protocol/link";
import { MqttClient, type MqttClientOptions, type MqttMessage } from "../../../src/protocol/mqtt";
import { encodePacket, MqttDecoder, topicMatches, type Packet, type QoS } from "../../../src/protocol/mqtt-codec";
import { decodeHeartbeat, deviceInboundLeaf, deviceSubscriptions, encodeHeartbeat, topicFor } from "../../../src/protocol/messages";
import { utf8Decode, utf8Encode } from "../../../src/util/bytes";
import { assert, runSuites, suite, type Suite } from "../../lib/spec";
import { serve, task } from "../runtime";

interface BrokerConn {
  peer: PeerSocket;
  clientId: string;
  subs: { topic: string; qos: QoS }[];
  nextId: number;
}

/** A broker whose answers a test scripts: what CONNACK says, which filters it refuses, which acks it withholds. */
export class ScriptedBroker {
  readonly conns: BrokerConn[] = [];
  /** Every packet received from clients, in order. */
  readonly received: Packet[] = [];
  connackCode = 0;
  sessionPresent = false;
  /** Filters answered with 0x80. */
  refuse: string[] = [];
  /** PUBACKs to withhold (counts down). */
  withholdPubacks = 0;
  /** Never answer anything after CONNECT (the link stalls at the MQTT level). */
  mute = false;
  /** Accept the socket but never send CONNACK. */
  noConnack = false;
  /** Retained message per topic (for the link test's "heartbeat seen by a monitor"). */
  readonly published: { topic: string; payload: Uint8Array; qos: QoS; dup: boolean }[] = [];

  constructor(readonly net: MockNetwork, readonly host = "broker", readonly port = 8883) {
    this.up();
  }

  up(): void {
    this.net.listen(this.host, this.port, (peer) => {
      const conn: BrokerConn = { peer, clientId: "", subs: [], nextId: 1 };
      const decoder = new MqttDecoder(1 << 16);
      this.conns.push(conn);
      return {
        onData: (d) => {
          const rc = decoder.update(d, (p) => this.onPacket(conn, p));
          if (rc !== Reason.OK) peer.close();
        },
        onClose: () => {
          const i = this.conns.indexOf(conn);
          if (i >= 0) this.conns.splice(i, 1);
        },
      };
    });
  }

  /** Stop listening and drop every connection (a broker restart's first half). */
  down(): void {
    this.net.unlisten(this.host, this.port);
    for (const c of this.conns.slice()) c.peer.close();
    this.conns.length = 0;
  }

  send(conn: BrokerConn, p: Packet): void {
    if (!conn.peer.closed) conn.peer.write(encodePacket(p));
  }

  /** Raw bytes to every connection. */
  sendRaw(bytes: Uint8Array): void {
    for (const c of this.conns) if (!c.peer.closed) c.peer.write(bytes);
  }

  /** Deliver an application message to every matching subscription. */
  publish(topic: string, payload: Uint8Array, qos: QoS): void {
    for (const c of this.conns) {
      const sub = c.subs.find((s) => topicMatches(s.topic, topic));
      if (!sub) continue;
      const q = Math.min(qos, sub.qos) as QoS;
      this.send(c, { type: "publish", topic, payload, qos: q, retain: false, dup: false, ...(q > 0 ? { packetId: c.nextId++ } : {}) });
    }
  }

  count(type: Packet["type"]): number {
    return this.received.filter((p) => p.type === type).length;
  }

  private onPacket(conn: BrokerConn, p: Packet): void {
    this.received.push(p);
    if (this.mute && p.type !== "connect") return;
    switch (p.type) {
      case "connect":
        conn.clientId = p.clientId;
        if (this.noConnack || this.mute) return;
        this.send(conn, { type: "connack", sessionPresent: this.connackCode === 0 && this.sessionPresent, returnCode: this.connackCode });
        // Close on the next turn, as TCP delivers the CONNACK before the FIN.
        if (this.connackCode !== 0) this.net.clock.setTimer(() => conn.peer.close(), 0);
        return;
      case "subscribe": {
        const granted = p.subscriptions.map((s) => (this.refuse.indexOf(s.topic) >= 0 ? 0x80 : s.qos));
        p.subscriptions.forEach((s, i) => granted[i] !== 0x80 && conn.subs.push(s));
        this.send(conn, { type: "suback", packetId: p.packetId, granted });
        return;
      }
      case "unsubscribe":
        conn.subs = conn.subs.filter((s) => p.topics.indexOf(s.topic) < 0);
        this.send(conn, { type: "unsuback", packetId: p.packetId });
        return;
      case "publish":
        this.published.push({ topic: p.topic, payload: p.payload, qos: p.qos, dup: p.dup });
        if (p.qos === 1) {
          if (this.withholdPubacks > 0) this.withholdPubacks--;
          else this.send(conn, { type: "puback", packetId: p.packetId! });
        }
        this.publish(p.topic, p.payload, p.qos);
        return;
      case "pingreq":
        this.send(conn, { type: "pingresp" });
        return;
      case "disconnect":
        conn.peer.close();
        return;
      default:
        return;
    }
  }
}

function env(over: Partial<MqttClientOptions> = {}) {
  const clock = new VirtualClock();
  const net = new MockNetwork(clock);
  const broker = new ScriptedBroker(net);
  const events: string[] = [];
  const messages: MqttMessage[] = [];
  const closes: { reason: number; detail?: number | string }[] = [];
  const options: MqttClientOptions = {
    net,
    clock,
    server: { host: "broker", port: 8883, tls: true },
    clientId: "dev-1",
    keepAliveSec: 10,
    retryMs: 1000,
    maxRetries: 2,
    ...over,
  };
  const client = new MqttClient(options, {
    onConnect: (sp) => events.push(`connect:${sp}`),
    onMessage: (m) => messages.push(m),
    onClose: (reason, detail) => closes.push({ reason, detail }),
  });
  return { clock, net, broker, client, events, messages, closes };
}

const isCode = (c: number) => (e: unknown) => e instanceof OtaError && e.code === c;
const text = (s: string) => utf8Encode(s);

export function mqttClientSuite(): Suite {
  return suite("MQTT client over the MockNetwork", (it) => {
    it("sends CONNECT with the configured fields and reports CONNACK", () => {
      const e = env({
        cleanSession: false,
        username: "device",
        password: Uint8Array.of(1, 2),
        will: { topic: "xs-ota/v1/dev-1/status", payload: text("bye"), qos: 1, retain: false },
      });
      e.broker.sessionPresent = true;
      e.client.connect();
      assert.equal(e.client.state, "connecting");
      e.clock.advance(1);
      assert.equal(e.client.state, "connected");
      assert.equal(e.events.join(), "connect:true");
      const c = e.broker.received[0];
      assert.ok(c.type === "connect");
      if (c.type !== "connect") return;
      assert.equal(c.clientId, "dev-1");
      assert.equal(c.keepAlive, 10);
      assert.equal(c.clean, false);
      assert.equal(c.username, "device");
      assert.bytes(c.password!, Uint8Array.of(1, 2));
      assert.equal(c.will?.topic, "xs-ota/v1/dev-1/status");
      assert.equal(c.protocolLevel, 4);
    });

    it("reports every CONNACK refusal code as MQTT_REFUSED with the code", () => {
      for (let rc = 1; rc <= 5; rc++) {
        const e = env();
        e.broker.connackCode = rc;
        e.client.connect();
        e.clock.advance(5);
        assert.equal(e.client.state, "idle");
        assert.equal(e.closes.length, 1, `rc ${rc}`);
        assert.equal(e.closes[0].reason, Reason.MQTT_REFUSED);
        assert.equal(e.closes[0].detail, rc);
        assert.equal(e.events.length, 0);
      }
    });

    it("times out when the broker never sends CONNACK", () => {
      const e = env({ connectTimeoutMs: 5000 });
      e.broker.noConnack = true;
      e.client.connect();
      e.clock.advance(4999);
      assert.equal(e.closes.length, 0);
      e.clock.advance(2);
      assert.equal(e.closes[0]?.reason, Reason.MQTT_TIMEOUT);
    });

    it("subscribes, reports a refused filter (0x80), unsubscribes", () => {
      const e = env();
      e.broker.refuse = ["forbidden/#"];
      e.client.connect();
      e.clock.advance(1);
      let result: { code: number; granted: readonly number[] } | undefined;
      e.client.subscribe(
        [
          { topic: "a/+", qos: 1 },
          { topic: "forbidden/#", qos: 0 },
        ],
        (code, granted) => (result = { code, granted }),
      );
      e.clock.advance(1);
      assert.equal(result?.code, Reason.MQTT_SUBSCRIBE_REFUSED);
      assert.equal(result?.granted.join(), "1,128");
      let unsub = -1;
      e.client.unsubscribe(["a/+"], (code) => (unsub = code));
      e.clock.advance(1);
      assert.equal(unsub, Reason.OK);
      assert.equal(e.client.state, "connected");
    });

    it("publishes QoS 1 and completes at PUBACK; QoS 0 needs a connection", () => {
      const e = env();
      assert.throws(() => e.client.publish("a/b", text("x"), 0), isCode(Reason.MQTT_NOT_CONNECTED));
      e.client.connect();
      e.clock.advance(1);
      const acks: number[] = [];
      const id = e.client.publish("a/b", text("hello"), 1, false, (c) => acks.push(c));
      assert.ok(id > 0);
      assert.equal(e.client.inflightCount, 1);
      e.clock.advance(1);
      assert.equal(acks.join(), String(Reason.OK));
      assert.equal(e.client.inflightCount, 0);
      e.client.publish("a/b", text("q0"), 0);
      e.clock.advance(1);
      const pubs = e.broker.published;
      assert.equal(pubs.length, 2);
      assert.equal(utf8Decode(pubs[0].payload), "hello");
      assert.equal(pubs[0].qos, 1);
      assert.equal(pubs[1].qos, 0);
    });

    it("retransmits an unacknowledged QoS 1 publish with DUP, then drops a stalled link", () => {
      const e = env({ retryMs: 1000, maxRetries: 2, keepAliveSec: 60 });
      e.client.connect();
      e.clock.advance(1);
      e.broker.withholdPubacks = 1;
      let ack = -1;
      e.client.publish("a/b", text("m"), 1, false, (c) => (ack = c));
      e.clock.advance(1);
      assert.equal(e.broker.published.length, 1);
      assert.equal(e.broker.published[0].dup, false);
      e.clock.advance(999);
      assert.equal(e.broker.published.length, 1, "not before retryMs");
      e.clock.advance(500); // the supervision tick is at most min(1 s, keepalive/4, retryMs/2)
      assert.equal(e.broker.published.length, 2, "resent after retryMs");
      assert.equal(e.broker.published[1].dup, true);
      assert.equal(ack, Reason.OK, "the resend was acknowledged");
      assert.equal(e.client.stats.retransmits, 1);
      // Now the broker stops acknowledging entirely.
      e.broker.withholdPubacks = 1000;
      e.client.publish("a/b", text("n"), 1);
      e.clock.advance(3 * 1000 + 500);
      assert.equal(e.closes[0]?.reason, Reason.MQTT_TIMEOUT);
      assert.equal(e.client.inflightCount, 1, "kept for the next connection");
    });

    it("bounds the in-flight window", () => {
      const e = env({ inflightWindow: 2 });
      e.client.connect();
      e.clock.advance(1);
      e.broker.withholdPubacks = 10;
      e.client.publish("a", text("1"), 1);
      e.client.publish("a", text("2"), 1);
      assert.throws(() => e.client.publish("a", text("3"), 1), isCode(Reason.MQTT_INFLIGHT_FULL));
    });

    it("receives QoS 0 and QoS 1 messages and acknowledges QoS 1", () => {
      const e = env();
      e.client.connect();
      e.clock.advance(1);
      e.client.subscribe([{ topic: "xs-ota/v1/dev-1/#", qos: 1 }]);
      e.clock.advance(1);
      e.broker.publish("xs-ota/v1/dev-1/cmd", text("c1"), 1);
      e.broker.publish("xs-ota/v1/dev-1/cmd", text("c0"), 0);
      e.clock.advance(1);
      assert.equal(e.messages.map((m) => `${utf8Decode(m.payload)}@${m.qos}`).join(), "c1@1,c0@0");
      assert.equal(e.broker.count("puback"), 1);
    });

    it("sends PINGREQ when idle for the keepalive and stays up while PINGRESP comes", () => {
      const e = env({ keepAliveSec: 10 });
      e.client.connect();
      e.clock.advance(1);
      e.clock.advance(60_000);
      assert.ok(e.broker.count("pingreq") >= 5, `pings: ${e.broker.count("pingreq")}`);
      assert.equal(e.client.state, "connected");
      assert.equal(e.closes.length, 0);
    });

    it("closes a link that went silent (no bytes for 1.5 × keepalive) with MQTT_TIMEOUT", () => {
      const e = env({ keepAliveSec: 10 });
      e.client.connect();
      e.clock.advance(1);
      e.broker.mute = true;
      e.clock.advance(14_000);
      assert.equal(e.closes.length, 0);
      e.clock.advance(2_000);
      assert.equal(e.closes[0]?.reason, Reason.MQTT_TIMEOUT);
      assert.ok(e.broker.count("pingreq") >= 1);
    });

    it("refuses an oversize packet with MQTT_TOO_LARGE and a clean DISCONNECT", () => {
      const e = env({ maxPacket: 256 });
      e.client.connect();
      e.clock.advance(1);
      e.client.subscribe([{ topic: "big", qos: 0 }]);
      e.clock.advance(1);
      e.broker.publish("big", new Uint8Array(300), 0);
      e.clock.advance(1);
      assert.equal(e.closes[0]?.reason, Reason.MQTT_TOO_LARGE);
      assert.equal(e.messages.length, 0);
      assert.equal(e.broker.count("disconnect"), 1);
    });

    it("refuses malformed bytes and unexpected packets from the broker", () => {
      const e = env();
      e.client.connect();
      e.clock.advance(1);
      e.broker.sendRaw(Uint8Array.of(0x20, 0x02, 0x00, 0x09)); // CONNACK with a reserved code
      e.clock.advance(1);
      assert.equal(e.closes[0]?.reason, Reason.MQTT_MALFORMED);
      const f = env();
      f.client.connect();
      f.clock.advance(1);
      f.broker.sendRaw(encodePacket({ type: "subscribe", packetId: 1, subscriptions: [{ topic: "x", qos: 0 }] }));
      f.clock.advance(1);
      assert.equal(f.closes[0]?.reason, Reason.MQTT_PROTOCOL);
    });

    it("disconnect sends DISCONNECT, fails queued messages, and reports no onClose", () => {
      const e = env();
      e.client.connect();
      e.clock.advance(1);
      e.broker.withholdPubacks = 5;
      let ack = -1;
      e.client.publish("a", text("x"), 1, false, (c) => (ack = c));
      e.client.disconnect();
      e.clock.advance(1);
      assert.equal(e.broker.count("disconnect"), 1);
      assert.equal(ack, Reason.MQTT_NOT_CONNECTED);
      assert.equal(e.closes.length, 0);
      assert.equal(e.client.state, "idle");
    });

    it("a link reconnects with growing backoff, resets it on success, resubscribes and resends QoS 1 with DUP", () => {
      const clock = new VirtualClock();
      const net = new MockNetwork(clock);
      const broker = new ScriptedBroker(net);
      const downs: number[] = [];
      let ups = 0;
      const got: string[] = [];
      const backoff = new Backoff({ initialMs: 1000, maxMs: 8000, jitter: 0, random: seededRandom(7) });
      const link = new MqttLink(
        { net, clock, server: { host: "broker", port: 8883, tls: true }, clientId: "dev-1", keepAliveSec: 10, backoff, subscriptions: deviceSubscriptions("dev-1") },
        { onUp: () => ups++, onDown: (_r, retry) => downs.push(retry), onMessage: (m) => got.push(utf8Decode(m.payload) ?? "") },
      );
      link.start();
      clock.advance(1);
      assert.equal(ups, 1);
      assert.equal(link.up, true);
      broker.down();
      clock.advance(1);
      assert.equal(link.up, false);
      // Queue a QoS 1 message while down: it goes out after the reconnect.
      link.publish(topicFor("dev-1", "status"), text("queued"), 1);
      clock.advance(1000 + 2000 + 4000 + 8000 + 8000 + 100);
      assert.equal(downs.slice(0, 5).join(), "1000,2000,4000,8000,8000", "capped exponential");
      broker.up();
      clock.advance(9000);
      assert.equal(ups, 2, "reconnected");
      assert.equal(backoff.attempts, 0, "reset on success");
      const resent = broker.published.find((p) => utf8Decode(p.payload) === "queued");
      assert.ok(resent, "the queued message arrived");
      broker.publish(topicFor("dev-1", "cmd"), text("after"), 1);
      clock.advance(1);
      assert.equal(got.join(), "after", "resubscribed");
      link.stop();
    });

    it("a stalled link is closed by keepalive supervision and retried", () => {
      const clock = new VirtualClock();
      const net = new MockNetwork(clock);
      const broker = new ScriptedBroker(net);
      let ups = 0;
      const reasons: number[] = [];
      const link = new MqttLink(
        { net, clock, server: { host: "broker", port: 8883, tls: true }, clientId: "dev-1", keepAliveSec: 5, backoff: new Backoff({ initialMs: 500, maxMs: 5000, random: seededRandom(1) }), subscriptions: [] },
        { onUp: () => ups++, onDown: (r) => reasons.push(r) },
      );
      link.start();
      clock.advance(1);
      net.stallAll();
      clock.advance(8000);
      assert.equal(reasons[0], Reason.MQTT_TIMEOUT);
      clock.advance(2000);
      assert.equal(ups, 2);
      assert.ok(broker.conns.length >= 1);
      link.stop();
    });

    it("a device accepts messages only on its own topics", () => {
      assert.equal(deviceInboundLeaf("dev-1", "xs-ota/v1/dev-1/offer"), "offer");
      assert.throws(() => deviceInboundLeaf("dev-1", "xs-ota/v1/dev-2/offer"), isCode(Reason.MESSAGE_TOPIC));
      assert.throws(() => deviceInboundLeaf("dev-1", "xs-ota/v1/dev-1/hb"), isCode(Reason.MESSAGE_TOPIC));
      assert.throws(() => topicFor("dev/+", "hb"));
    });

    it("a heartbeat goes out and comes back byte-identical through the broker", () => {
      const e = env();
      e.client.connect();
      e.clock.advance(1);
      const hb = encodeHeartbeat({
        seq: 1,
        hardwareId: "usr-n520",
        version: { major: 1, minor: 2, revision: 3, build: 4 },
        slot: 0,
        imageSha256: new Uint8Array(32).fill(0xab),
        state: "idle",
        progress: 0,
        reason: 0,
        uptime: 12,
        supplyMv: 3300,
      });
      e.client.publish(topicFor("dev-1", "hb"), hb, 0);
      e.clock.advance(1);
      assert.bytes(e.broker.published[0].payload, hb);
      assert.equal(decodeHeartbeat(e.broker.published[0].payload).supplyMv, 3300);
    });
  });
}

task("mqtt-client", () => runSuites([mqttClientSuite()]));
task("mqtt-session", () => {
  // One scripted session, for the computron figure: connect, subscribe, 50 QoS 1 publishes, 50 inbound messages.
  const e = env({ inflightWindow: 8 });
  e.client.connect();
  e.clock.advance(1);
  e.client.subscribe([{ topic: "xs-ota/v1/dev-1/#", qos: 1 }]);
  e.clock.advance(1);
  for (let i = 0; i < 50; i++) {
    e.client.publish("xs-ota/v1/dev-1/status", new Uint8Array(200).fill(i), 1);
    e.clock.advance(1);
  }
  for (let i = 0; i < 50; i++) e.broker.publish("xs-ota/v1/dev-1/cmd", new Uint8Array(1024).fill(i), 1);
  e.clock.advance(1);
  e.client.disconnect();
  return { received: e.messages.length, acked: e.broker.count("puback") };
});
serve();
