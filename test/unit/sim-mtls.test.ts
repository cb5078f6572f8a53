/**
 * The fleet simulator with mutual TLS on (issue 16A): each virtual device is
 * provisioned through its own CSR and the fleet CA before its first boot,
 * serve requires the certificates, and the fleet still updates; every device's
 * certificate names it (so the broker binds its client id).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DeviceIdentity } from "../../src/store/identity";
import { openStorage } from "../../src/store/layout";
import { SimFleet } from "../../tools/sim/fleet";

describe("fleet simulator with mutual TLS", () => {
  it("3 devices, each with its own key and certificate, take a release from a serve that requires them", async () => {
    const serveLog: string[] = [];
    const fleet = await SimFleet.create({ devices: 3, seed: 4, speed: 50, releases: { kind: "demo", delta: false, imageBytes: 8 * 1024 }, heartbeatIntervalSec: 10, mutualTls: true, serveLog: (l) => serveLog.push(l) });
    try {
      expect(existsSync(join(fleet.work, "fleet-ca", "ca.pem"))).toBe(true);
      const keys = new Set<string>();
      for (const t of fleet.tracked) {
        const id = new DeviceIdentity(openStorage(t.device.storage).identity, undefined);
        expect(id.certificate()?.commonName).toBe(t.id);
        keys.add(Buffer.from(id.publicKey()).toString("hex"));
      }
      expect(keys.size).toBe(3);
      const why = await fleet.run({ untilDone: true, timeoutS: 90 });
      const r = fleet.report();
      expect(why).toBe("done");
      expect(r.outcomes.committed).toBe(3);
      expect(serveLog.some((l) => /devices must present a certificate from the fleet CA/.test(l))).toBe(true);
      expect(serveLog.filter((l) => /^refused client/.test(l))).toEqual([]);
      expect(readFileSync(join(fleet.work, "fleet-ca", "serial.log"), "utf8").trim().split("\n").length).toBe(3);
    } finally {
      await fleet.close();
    }
  }, 120_000);
});
