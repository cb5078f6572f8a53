/** The network conformance suite bound to the Node TCP/TLS adapter (hal/node/socket.ts) and a local echo server. */
import { NodeNetwork } from "../../hal/node/socket";
import type { Suite } from "../lib/spec";
import { networkConformance } from "./peripherals";

export function nodeNetworkSuite(echo: { host: string; port: number }, closedPort: { host: string; port: number }): Suite {
  return networkConformance({
    name: "NodeNetwork (TCP on 127.0.0.1)",
    make: () => {
      const net = new NodeNetwork({ connectTimeoutMs: 5000 });
      return {
        net,
        echo,
        closedPort,
        settle: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        teardown: () => net.destroyAll(),
      };
    },
  });
}
