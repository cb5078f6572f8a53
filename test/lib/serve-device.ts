/**
 * A bare device link for serve tests: the project's own MQTT client on Node
 * sockets, subscribed as a device, that publishes one heartbeat and returns
 * everything serve sent in answer (the ack, then a short quiet period).
 */
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import type { MqttMessage } from "../../src/protocol/mqtt";
import { deviceSubscriptions, encodeHeartbeat, topicFor, type Heartbeat } from "../../src/protocol/messages";

export interface ServeDevice {
  readonly up: Promise<void>;
  /** Publish `h`, wait for its ack and 150 ms more, return every message that arrived (in order). */
  exchange(h: Heartbeat): Promise<MqttMessage[]>;
  stop(): void;
}

/** Connect as device `id` to serve's embedded broker on 127.0.0.1:`port` (plaintext). */
export function connectServeDevice(id: string, port: number): ServeDevice {
  const clock = new NodeClock();
  const network = new NodeNetwork({ connectTimeoutMs: 5000 });
  const queue: MqttMessage[] = [];
  const waiters: (() => void)[] = [];
  let upResolve: () => void;
  const up = new Promise<void>((r) => (upResolve = r));
  const link = new MqttLink(
    {
      net: network,
      clock,
      server: { host: "127.0.0.1", port, tls: false },
      clientId: id,
      keepAliveSec: 30,
      backoff: new Backoff({ initialMs: 100, maxMs: 1000, random: seededRandom(2) }),
      subscriptions: deviceSubscriptions(id),
    },
    {
      onUp: () => upResolve(),
      onDown: () => undefined,
      onMessage: (m) => {
        queue.push(m);
        for (const w of waiters.splice(0)) w();
      },
    },
  );
  link.start();
  const exchange = async (h: Heartbeat): Promise<MqttMessage[]> => {
    queue.length = 0;
    link.publish(topicFor(id, "hb"), encodeHeartbeat(h), 0);
    const deadline = Date.now() + 5000;
    while (!queue.some((m) => m.topic.endsWith("/hb/ack"))) {
      if (Date.now() > deadline) throw new Error(`no hb/ack for ${id}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    await new Promise((r) => setTimeout(r, 150));
    return queue.splice(0);
  };
  return {
    up,
    exchange,
    stop: () => {
      link.stop();
      clock.clearAll();
      network.destroyAll();
    },
  };
}
