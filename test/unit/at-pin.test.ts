/**
 * The CA pin from the console to the socket (issue 16, item 2): AT+OTATLS's
 * fingerprint, saved and active after AT+Z, reaches every TLS connection the
 * simulated device's agent opens (`SocketOptions.caPin`), and a connection the
 * socket adapter refuses for the pin (TLS_PIN_MISMATCH) is written to the
 * audit log once (not once per retry). The adapter's own check against real
 * certificate chains is in test/unit/node-socket.test.ts.
 */
import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../hal/mock/clock";
import type { Network, SocketOptions } from "../../hal/types";
import { Reason } from "../../src/errors";
import type { ConsoleRuntime } from "../../src/at/start";
import { AuditEvent } from "../../src/store/audit";
import { toHex } from "../../src/util/bytes";
import { VirtualDevice } from "../../targets/sim/device";
import { agentFirmware } from "../../targets/sim/firmware";
import { smallFlashMap } from "../../targets/sim/flashmap";
import { HARDWARE, testKey } from "../../tools/demo/firmware";
import { installFactoryImage } from "../../tools/sim/fleet";

const SERVER_CA_PIN = new Uint8Array(32).fill(0xab);
const WRONG_PIN = new Uint8Array(32).fill(0x01);

/**
 * A network standing in for the TLS adapter: it records the options of each
 * connection and answers as an adapter would for a server whose chain holds
 * the CA with SERVER_CA_PIN: a missing or matching pin connects (and the
 * broker stays silent), another pin is refused with TLS_PIN_MISMATCH.
 */
function fakeTlsNetwork(clock: VirtualClock) {
  const seen: SocketOptions[] = [];
  let connected = 0;
  const net: Network = {
    connect(options, handlers) {
      seen.push(options);
      const pinOk = options.caPin === undefined || toHex(options.caPin) === toHex(SERVER_CA_PIN);
      clock.setTimer(() => {
        if (pinOk) {
          connected++;
          handlers.onConnect?.();
        } else handlers.onClose?.(Reason.TLS_PIN_MISMATCH);
      }, 20);
      return { write() {}, close() {} };
    },
  };
  return { net, seen, connected: () => connected };
}

function pinnedDevice() {
  const clock = new VirtualClock();
  const fake = fakeTlsNetwork(clock);
  const runtimes: ConsoleRuntime[] = [];
  const device = new VirtualDevice({
    map: smallFlashMap(),
    clock,
    network: fake.net,
    firmware: agentFirmware({
      config: {
        deviceId: "pin-0001",
        hardwareId: HARDWARE,
        server: { host: "broker.example", port: 8883, tls: true, ca: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n" },
        trustedKeys: [testKey().publicKey],
        backoffInitialMs: 1000,
        backoffMaxMs: 4000,
        seed: 5,
      },
      console: { startMode: "command" },
      onBoot: (r) => runtimes.push(r),
    }),
  });
  installFactoryImage(device);
  device.run(10);
  const at = (line: string) => {
    device.serial.send(line + "\r");
    device.run(5);
    return device.serial.drainText();
  };
  at("AT+E=OFF");
  return { device, fake, runtimes, at, audit: () => runtimes[runtimes.length - 1].audit };
}

const pinRefusals = (log: ConsoleRuntime["audit"]) =>
  log.read(log.first, 64).filter((e) => e.event === AuditEvent.TLS_PIN_REFUSED).map((e) => e.reason);

describe("the CA pin from AT+OTATLS to the agent's sockets", () => {
  it("without a pin the agent's TLS connections carry none", () => {
    const { device, fake } = pinnedDevice();
    device.run(3000);
    expect(fake.seen.length).toBeGreaterThan(0);
    for (const o of fake.seen) {
      expect(o.tls).toBe(true);
      expect(o.caPin).toBeUndefined();
    }
  });
  it("a wrong pin: every connection after AT+S and AT+Z carries it, each is refused, and the audit log has one TLS_PIN_REFUSED entry", () => {
    const { device, fake, at, audit } = pinnedDevice();
    expect(at("AT+OTATLS=ON," + toHex(WRONG_PIN))).toBe("\r\n+OK=pending; AT+S saves\r\n");
    device.run(3000);
    expect(fake.seen.every((o) => o.caPin === undefined), "pending, not active before AT+Z").toBe(true);
    expect(at("AT+S")).toBe("\r\n+OK=saved; AT+Z applies\r\n");
    expect(at("AT+Z")).toBe("\r\n+OK=restarting\r\n");
    const before = fake.seen.length;
    const connectedBefore = fake.connected();
    device.run(60_000);
    const after = fake.seen.slice(before);
    expect(after.length, "the agent retried").toBeGreaterThanOrEqual(3);
    for (const o of after) expect(toHex(o.caPin!)).toBe(toHex(WRONG_PIN));
    expect(fake.connected()).toBe(connectedBefore);
    expect(pinRefusals(audit())).toEqual([Reason.TLS_PIN_MISMATCH]);
    // AT+LOG shows it: event 10, reason 16.
    const log = at("AT+LOG=0,16");
    expect(log).toMatch(/\+LOG=\d+,\d+,\d+,10,[^,]+,[^,]+,16\r\n/);
  });
  it("the right pin connects; TLS off sends no pin", () => {
    const { device, fake, at, audit } = pinnedDevice();
    at("AT+OTATLS=ON," + toHex(SERVER_CA_PIN));
    at("AT+S");
    at("AT+Z");
    const before = fake.seen.length;
    const connectedBefore = fake.connected();
    device.run(5000);
    expect(fake.seen.length).toBeGreaterThan(before);
    for (const o of fake.seen.slice(before)) expect(toHex(o.caPin!)).toBe(toHex(SERVER_CA_PIN));
    expect(fake.connected()).toBeGreaterThan(connectedBefore);
    expect(pinRefusals(audit())).toEqual([]);
    at("AT+OTATLS=OFF");
    at("AT+S");
    at("AT+Z");
    const n = fake.seen.length;
    device.run(5000);
    const plain = fake.seen.slice(n);
    expect(plain.length).toBeGreaterThan(0);
    for (const o of plain) {
      expect(o.tls).toBe(false);
      expect(o.caPin).toBeUndefined();
    }
  });
  it("while the console is locked the pin cannot be changed or dropped", () => {
    const { at, device } = pinnedDevice();
    at("AT+OTATLS=ON," + toHex(SERVER_CA_PIN));
    at("AT+S");
    expect(at("AT+LOCK=provision-pw")).toBe("\r\n+OK=LOCKED\r\n");
    for (const l of ["AT+OTATLS=ON,NONE", "AT+OTATLS=OFF", "AT+OTATLS=ON," + toHex(WRONG_PIN), "AT+RELD", "AT+OTASVR=evil.example,8883"]) {
      expect(at(l), l).toBe("\r\n+ERR=-5,357\r\n");
    }
    expect(at("AT+OTATLS?")).toBe(`\r\n+OK=ON,${toHex(SERVER_CA_PIN)}\r\n`);
    expect(device.boots.length).toBe(1);
  });
});
