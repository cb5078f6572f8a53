/** The HAL conformance suites bound to the strict mocks (run on Node and in XS). */
import { VirtualClock } from "../../hal/mock/clock";
import { MockCounter } from "../../hal/mock/counter";
import { NorFlash } from "../../hal/mock/flash";
import { PowerRail } from "../../hal/mock/rail";
import { SerialPipe } from "../../hal/mock/serial";
import { MockNetwork } from "../../hal/mock/socket";
import { MockWatchdog } from "../../hal/mock/watchdog";
import { softwareDigest } from "../../src/crypto/sha256";
import type { Suite } from "../lib/spec";
import { flashConformance } from "./flash";
import {
  clockConformance,
  counterConformance,
  digestConformance,
  networkConformance,
  powerConformance,
  serialConformance,
  watchdogConformance,
} from "./peripherals";

export function mockSuites(): Suite[] {
  return [
    flashConformance({
      name: "mock NOR 4 KiB blocks, 32-byte writes",
      strict: true,
      make: () => ({ flash: new NorFlash({ size: 64 * 1024, blockLength: 4096, writeAlign: 32 }) }),
    }),
    flashConformance({
      name: "mock NOR partition, 1-byte writes, erase 0x00",
      strict: true,
      make: () => ({ flash: new NorFlash({ size: 64 * 1024, blockLength: 1024, writeAlign: 1, eraseValue: 0 }).partition(8192, 16384) }),
    }),
    clockConformance({
      name: "VirtualClock",
      make: () => {
        const clock = new VirtualClock();
        return { clock, advance: (ms) => clock.advance(ms) };
      },
    }),
    watchdogConformance({
      name: "MockWatchdog",
      make: () => {
        const clock = new VirtualClock();
        let expired = false;
        const watchdog = new MockWatchdog(clock, () => (expired = true));
        return { watchdog, advance: (ms) => clock.advance(ms), expired: () => expired };
      },
    }),
    counterConformance({ name: "MockCounter", make: () => new MockCounter(new PowerRail(), 5) }),
    digestConformance({ name: "software SHA-256 (noble)", make: () => softwareDigest }),
    serialConformance({
      name: "SerialPipe",
      make: () => {
        const clock = new VirtualClock();
        const serial = new SerialPipe(clock);
        return { serial, hostSend: (b) => serial.send(b), hostDrain: () => serial.drain(), advance: (ms) => clock.advance(ms) };
      },
    }),
    networkConformance({
      name: "MockNetwork",
      make: () => {
        const clock = new VirtualClock();
        const net = new MockNetwork(clock);
        net.listen("echo", 7, (peer) => ({ onData: (d) => peer.write(d) }));
        return { net, echo: { host: "echo", port: 7 }, closedPort: { host: "echo", port: 8 }, settle: async (ms) => clock.advance(ms) };
      },
    }),
    powerConformance({ name: "PowerRail", make: () => new PowerRail({ millivolts: 3300 }) }),
  ];
}
