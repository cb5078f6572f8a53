/**
 * MQTT codec cost: ours beside mqtt-packet (the reference) on Node, in the
 * same run, and the XS computrons of the client running a scripted session.
 */
import mqttPacket from "mqtt-packet";
import { startXs } from "../test/xs/harness";
import { encodePacket, MqttDecoder, type Packet } from "../src/protocol/mqtt-codec";

const N = 20_000;
const payload = new Uint8Array(4096).map((_, i) => i & 0xff);
const ours: Packet = { type: "publish", topic: "xs-ota/v1/usr-n520-00042/chunk/res", payload, qos: 1, retain: false, dup: false, packetId: 1 };
const theirs = { cmd: "publish" as const, topic: ours.topic, payload: Buffer.from(payload), qos: 1 as const, retain: false, dup: false, messageId: 1 };

function time(fn: () => void): number {
  fn(); // warm up
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

const encOurs = time(() => {
  for (let i = 0; i < N; i++) encodePacket(ours);
});
const encTheirs = time(() => {
  for (let i = 0; i < N; i++) mqttPacket.generate(theirs);
});
const wire = encodePacket(ours);
const stream = new Uint8Array(wire.length * 100);
for (let i = 0; i < 100; i++) stream.set(wire, i * wire.length);
let count = 0;
const decOurs = time(() => {
  for (let i = 0; i < N / 100; i++) {
    const d = new MqttDecoder(8192);
    for (let o = 0; o < stream.length; o += 1460) d.update(stream.subarray(o, o + 1460), () => count++);
  }
});
const decTheirs = time(() => {
  for (let i = 0; i < N / 100; i++) {
    const p = mqttPacket.parser({ protocolVersion: 4 });
    p.on("packet", () => count++);
    const b = Buffer.from(stream);
    for (let o = 0; o < b.length; o += 1460) p.parse(b.subarray(o, o + 1460));
  }
});

const xs = await startXs("test/xs/entries/mqtt.ts");
const { computrons } = await xs.run("mqtt-session");
await xs.close();

console.log(`| workload (${N} × 4 KiB QoS 1 PUBLISH) | xs-ota codec, Node ms | mqtt-packet 9.0.2, Node ms |`);
console.log("|---|---:|---:|");
console.log(`| encode | ${encOurs.toFixed(1)} | ${encTheirs.toFixed(1)} |`);
console.log(`| decode (1460-byte TCP segments) | ${decOurs.toFixed(1)} | ${decTheirs.toFixed(1)} |`);
console.log("");
console.log("| XS workload | computrons |");
console.log("|---|---:|");
console.log(`| client session: connect, subscribe, 50 × 200 B QoS 1 out (echoed back), 50 × 1 KiB QoS 1 in | ${computrons} |`);
