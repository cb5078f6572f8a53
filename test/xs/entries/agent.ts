/**
 * XS entry: one full update through the real agent on the virtual device,
 * against the in-XS virtual cloud, on the mocks — signing, download, verify,
 * trial boot, commit — all inside the XS engine.
 */
import { formatVersion } from "../../../src/image/format";
import { buildImage, release } from "../../lib/sim-fixtures";
import { makeWorld } from "../../lib/sim-world";
import { serve, task } from "../runtime";

task("full-update", () => {
  const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0+2", 1, { securityCounter: 2 }))] });
  const d = w.addDevice("xs-dev");
  d.run(5 * 60_000);
  return {
    events: w.cloud.reportsOf("xs-dev").map((r) => r.event),
    slot: d.runningSlot,
    version: d.lastBoot?.info ? formatVersion(d.lastBoot.info.header.version) : "",
    counter: d.counter.read(),
    log: w.logs.slice(-12),
  };
});
task("no-cloud-retry", () => {
  // A firmware that never reaches the cloud: retried (TRIAL_NO_CLOUD_RETRY) until the bound, then final (TRIAL_NO_CLOUD).
  const w = makeWorld({ releases: (w) => [release(w.key, buildImage(w.map, w.key, "1.1.0+2", 1, { behaviour: "no-cloud", securityCounter: 2 }))] });
  const d = w.addDevice("xs-dev");
  d.run(40 * 60_000);
  return {
    rollbacks: w.logs.filter((l) => l.indexOf("boot -reverted-> rolled-back") >= 0).length,
    reasons: w.cloud.reportsOf("xs-dev", "rolled-back").map((r) => r.reason),
    accepted: w.cloud.reportsOf("xs-dev", "offer-accepted").length,
    slot: d.runningSlot,
    log: w.logs.slice(-12),
  };
});
serve();
