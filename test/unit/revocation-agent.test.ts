/**
 * Signed revocation on the device: blocked releases are refused, older and
 * forged records are refused, and a revoked running firmware is reported
 * and replaced by the next allowed release (issue: supervision and revocation).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { formatVersion, parseVersion } from "../../src/image/format";
import { AgentAuditEvent } from "../../src/agent/events";
import { signRevocation } from "../../tools/release/revoke";
import { buildImage, imageBytes, release, testKey, HARDWARE } from "../lib/sim-fixtures";
import { makeWorld, type World } from "../lib/sim-world";

function revocation(w: World, o: { sequence: number; blocked?: Uint8Array[]; minVersion?: string; minSecurityCounter?: number; key?: ReturnType<typeof testKey>; hardwareId?: string }): Uint8Array {
  return signRevocation(
    {
      hardwareId: o.hardwareId ?? HARDWARE,
      sequence: o.sequence,
      issuedAt: 1_790_000_000,
      minVersion: parseVersion(o.minVersion ?? "0.0.0"),
      minSecurityCounter: o.minSecurityCounter ?? 0,
      blocked: o.blocked ?? [],
    },
    o.key ?? w.key,
  );
}

function auditEvents(w: World): number[] {
  const a = w.agents.get(w.devices[0])!.audit.log;
  return a.read(Math.max(a.first, a.count - 16), 16).map((e) => e.event);
}

describe("revocation on the device", () => {
  it("a blocked release is refused with REVOKED (and the cloud no longer offers it)", () => {
    const w = makeWorld();
    const bad = release(w.key, buildImage(w.map, w.key, "1.1.0", 1));
    const d = w.addDevice("dev");
    d.run(2000);
    w.cloud.setRevocation(revocation(w, { sequence: 1, blocked: [bad.manifest.image.sha256] }));
    d.run(15_000); // a heartbeat later the device holds record 1
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.revocation).toBe(1);
    w.cloud.pushOffer("dev", bad.envelope);
    d.run(2000);
    const refused = w.cloud.reportsOf("dev", "offer-refused");
    expect(refused).toHaveLength(1);
    expect(refused[0].reason).toBe(Reason.REVOKED);
    w.cloud.releases = [bad];
    d.run(60_000);
    expect(w.cloud.reportsOf("dev", "offer-accepted")).toHaveLength(0);
    expect(d.runningSlot).toBe(0);
  });

  it("an older record is refused and the newer one is kept (also across a reboot)", () => {
    const w = makeWorld();
    const d = w.addDevice("dev");
    d.run(2000);
    w.cloud.pushRevocation("dev", revocation(w, { sequence: 5, minVersion: "0.5.0" }));
    d.run(1000);
    w.cloud.pushRevocation("dev", revocation(w, { sequence: 4, minVersion: "0.0.0" }));
    d.run(15_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.revocation).toBe(5);
    expect(auditEvents(w)).toContain(AgentAuditEvent.REVOCATION_REFUSED);
    const a = w.agents.get(d)!.audit.log;
    const refusal = a.read(a.first, 64).find((e) => e.event === AgentAuditEvent.REVOCATION_REFUSED)!;
    expect(refusal.reason).toBe(Reason.REVOCATION_OLDER);
    d.pressReset();
    d.run(15_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.revocation, "persisted in the journal").toBe(5);
  });

  it("a forged record (unknown key, or one flipped bit) is refused", () => {
    const w = makeWorld();
    const d = w.addDevice("dev");
    d.run(2000);
    w.cloud.pushRevocation("dev", revocation(w, { sequence: 9, key: testKey(42) }));
    const flipped = revocation(w, { sequence: 9 });
    flipped[20] ^= 1;
    w.cloud.pushRevocation("dev", flipped);
    w.cloud.pushRevocation("dev", revocation(w, { sequence: 9, hardwareId: "usr-g771" }));
    d.run(15_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.revocation).toBeUndefined();
    const a = w.agents.get(d)!.audit.log;
    const reasons = a.read(a.first, 64).filter((e) => e.event === AgentAuditEvent.REVOCATION_REFUSED).map((e) => e.reason);
    expect(reasons).toEqual([Reason.REVOCATION_UNKNOWN_KEY, Reason.REVOCATION_BAD_SIGNATURE, Reason.REVOCATION_WRONG_HARDWARE]);
  });

  it("a revoked running firmware is reported and replaced by the next allowed release", () => {
    const w = makeWorld();
    const v110 = buildImage(w.map, w.key, "1.1.0", 1);
    const v120 = buildImage(w.map, w.key, "1.2.0", 0);
    w.cloud.releases = [release(w.key, v110)];
    const d = w.addDevice("dev");
    d.run(5 * 60_000);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.1.0+0");
    // 1.1.0 turns out bad: revoke it; the fixed release 1.2.0 (a higher version: MCUboot boots the highest) is published
    w.cloud.setRevocation(revocation(w, { sequence: 1, blocked: [sha256(imageBytes(v110))] }));
    w.cloud.releases = [release(w.key, v110), release(w.key, v120)];
    d.run(5 * 60_000);
    const revoked = w.cloud.reportsOf("dev", "revoked");
    expect(revoked, w.logs.slice(-12).join("\n")).toHaveLength(1);
    expect(revoked[0].reason).toBe(Reason.REVOKED);
    expect(w.cloud.heartbeats.some((h) => h.heartbeat.state === "revoked")).toBe(true);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.2.0+0");
    expect(w.cloud.reportsOf("dev", "committed")).toHaveLength(2);
    expect(d.counter.read()).toBeGreaterThanOrEqual(1);
  });
});
