/**
 * The fleet simulator's machinery in the unit lane: a small fleet on one
 * virtual clock, real TLS sockets to an embedded `xs-ota serve` with a
 * bounded number in flight, seeded power cuts and link drops; every device
 * ends on the new release or with a final failure reported, none bricked.
 */
import { describe, expect, it } from "vitest";
import { SimFleet } from "../../tools/sim/fleet";
import { formatReport } from "../../tools/sim/report";

describe("fleet simulator (embedded serve)", () => {
  it("updates 12 devices, at most 3 in flight, with power cuts and link drops; none bricked", async () => {
    const fleet = await SimFleet.create({
      devices: 12,
      seed: Number(process.env.FLEET_SEED ?? 3),
      speed: 50,
      releases: { kind: "demo", delta: false, imageBytes: 12 * 1024 },
      maxInFlight: 3,
      heartbeatIntervalSec: 10,
      faults: { powercut: 0.25, linkdrop: 0.25 },
    });
    try {
      const why = await fleet.run({ untilDone: true, timeoutS: 90 });
      const r = fleet.report();
      console.log(formatReport(r, { allRows: true }));
      expect(why).toBe("done");
      expect(r.simulatorErrors).toEqual([]);
      expect(r.bricked).toBe(0);
      expect(r.outcomes.running).toBe(0);
      expect(r.inFlight.peakServe).toBeLessThanOrEqual(3);
      expect(r.inFlight.peakDevices).toBeLessThanOrEqual(3);
    } finally {
      await fleet.close();
    }
  }, 120_000);
});
