/**
 * Key roles and trusted time on the device (issue 16B must-shows), through
 * the real agent on virtual devices against the virtual cloud:
 * - the expired-release replay through rewound acks is refused, before and
 *   after a reset;
 * - a manifest signed by a retired batch key is refused once the new key set
 *   arrives (also after a reset), and one signed by the new key is installed;
 * - the fleet upgrade path: releases of the single keyring work until the
 *   first key set, then are refused with KEY_LEGACY_SIGNER;
 * - the revocation lockout at 0xFFFFFFFF is refused, and a device that took
 *   it under older firmware takes records again after the root's epoch reset.
 * test/xs/trust.test.ts runs the first two inside XS.
 */
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/errors";
import { formatVersion, parseVersion } from "../../src/image/format";
import { AgentAuditEvent } from "../../src/agent/events";
import { encodeRevocationState } from "../../src/update/revocation";
import { signRevocation } from "../../tools/release/revoke";
import { signTimeStatement } from "../../tools/release/keyset";
import { buildImage, release, HARDWARE } from "../lib/sim-fixtures";
import { makeWorld, type World } from "../lib/sim-world";
import { BATCH_1, BATCH_2, fleetKeySet, TIME_KEY, TRUSTED_DEVICE, trustWorld } from "../lib/trust";

const T0 = 1_790_000_000; // the virtual cloud's time at clock 0

function refusals(w: World, id: string): number[] {
  return w.cloud.reportsOf(id, "offer-refused").map((r) => r.reason);
}

/** Offer refusals in the device's audit log (the cloud keeps one report per release and reason). */
function refusedInAudit(w: World): number[] {
  return audit(w)
    .filter((e) => e.event === AgentAuditEvent.OFFER_REFUSED)
    .map((e) => e.reason);
}

function audit(w: World) {
  const a = w.agents.get(w.devices[0])!.audit.log;
  return a.read(a.first, 128);
}

describe("trusted time: the expired-release replay through rewound acks", () => {
  it("a release refused as expired stays refused when the broker rewinds its acks and replays old time statements, also after a reset", () => {
    const w = makeWorld();
    trustWorld(w);
    const expiring = release(BATCH_1, buildImage(w.map, w.key, "1.1.0", 1), { issuedAt: T0 - 3600, expiresAt: T0 + 60 });
    const d = w.addDevice("dev", TRUSTED_DEVICE);
    d.run(120_000); // signed time now T0 + 120: past the expiry
    expect(w.agents.get(d)!.time.running).toBe(true);
    w.cloud.pushOffer("dev", expiring.envelope);
    d.run(2000);
    expect(refusals(w, "dev"), w.logs.slice(-8).join("\n")).toEqual([Reason.MANIFEST_EXPIRED]);
    expect(refusedInAudit(w)).toEqual([Reason.MANIFEST_EXPIRED]);

    // The broker turns hostile: acks an hour back, and the time statement it replays was signed before the expiry.
    const early = signTimeStatement(T0 + 10, TIME_KEY);
    w.cloud.ackTimeShiftS = -3600;
    w.cloud.timeStatement = () => early;
    d.run(30_000);
    expect(w.cloud.heartbeats.at(-1)!.at).toBeGreaterThan(130_000);
    w.cloud.pushOffer("dev", expiring.envelope);
    d.run(2000);
    expect(refusedInAudit(w), w.logs.slice(-14).join("\n")).toEqual([Reason.MANIFEST_EXPIRED, Reason.MANIFEST_EXPIRED]);
    expect(w.agents.get(d)!.time.now(), "the replayed statement did not take time back").toBeGreaterThan(T0 + 150);

    // A reset forgets the running clock but not the floor; the broker now sends no statement at all.
    w.cloud.timeStatement = undefined;
    d.pressReset();
    d.run(30_000);
    expect(w.agents.get(d)!.time.running).toBe(false);
    expect(w.agents.get(d)!.time.now()).toBeGreaterThan(T0 + 60);
    w.cloud.pushOffer("dev", expiring.envelope);
    d.run(2000);
    expect(refusedInAudit(w)).toEqual([Reason.MANIFEST_EXPIRED, Reason.MANIFEST_EXPIRED, Reason.MANIFEST_EXPIRED]);
    expect(refusals(w, "dev"), "reported (the cloud keeps one report per release and reason)").toEqual([Reason.MANIFEST_EXPIRED]);
    expect(w.cloud.reportsOf("dev", "offer-accepted")).toHaveLength(0);
    expect(d.slots[1].cells.every((b) => b === 0xff), "nothing written to the inactive slot").toBe(true);

    // Not a device that refuses everything: an unexpired release from the same key is taken.
    w.cloud.releases = [release(BATCH_1, buildImage(w.map, w.key, "1.2.0", 1), { issuedAt: T0, expiresAt: T0 + 86400 })];
    d.run(5 * 60_000);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.2.0+0");
  });

  it("the plain ack time alone never decides expiry: without signed time an expired release is judged by the signed floor only", () => {
    const w = makeWorld();
    const d = w.addDevice("dev"); // no root key: the single-keyring model, no time statements
    d.run(2000);
    // issued long ago, expired at the ack's time; nothing signed says the time is past T0 - 100
    const old = release(w.key, buildImage(w.map, w.key, "1.1.0", 1), { issuedAt: T0 - 200, expiresAt: T0 - 100 });
    w.cloud.pushOffer("dev", old.envelope);
    d.run(2000);
    expect(w.cloud.reportsOf("dev", "offer-accepted")).toHaveLength(1);
    // an accepted issued-at raises the floor: an older expired release is refused from then on
    const older = release(w.key, buildImage(w.map, w.key, "1.1.1", 1), { issuedAt: T0 - 400, expiresAt: T0 - 300 });
    d.run(5 * 60_000);
    w.cloud.pushOffer("dev", older.envelope);
    d.run(2000);
    expect(refusals(w, "dev")).toContain(Reason.MANIFEST_EXPIRED);
  });
});

describe("key roles: rotating a batch key over the air", () => {
  it("after the new key set arrives, a manifest signed by the retired batch key is refused (also after a reset) and one signed by the new key is installed", () => {
    const w = makeWorld();
    trustWorld(w, fleetKeySet({ sequence: 1, batch: [BATCH_1] }));
    const d = w.addDevice("dev", TRUSTED_DEVICE);
    d.run(20_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.keySet).toEqual({ epoch: 0, sequence: 1 });
    const img = buildImage(w.map, w.key, "1.1.0", 1); // the image is signed by the MCUboot key, as before
    const byOld = release(BATCH_1, img);

    // BATCH_1 leaked: the root retires it and certifies BATCH_2
    w.cloud.setKeySet(fleetKeySet({ sequence: 2, batch: [BATCH_2], retired: [BATCH_1] }));
    d.run(20_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.keySet).toEqual({ epoch: 0, sequence: 2 });
    expect(audit(w).some((e) => e.event === AgentAuditEvent.KEYSET_ACCEPTED)).toBe(true);
    w.cloud.pushOffer("dev", byOld.envelope);
    d.run(2000);
    expect(refusals(w, "dev"), w.logs.slice(-6).join("\n")).toEqual([Reason.KEY_RETIRED]);

    d.pressReset();
    d.run(20_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.keySet, "the key set is kept in the trust space").toEqual({ epoch: 0, sequence: 2 });
    w.cloud.pushOffer("dev", byOld.envelope);
    d.run(2000);
    expect(refusedInAudit(w)).toEqual([Reason.KEY_RETIRED, Reason.KEY_RETIRED]);

    w.cloud.releases = [release(BATCH_2, img)];
    d.run(5 * 60_000);
    expect(w.cloud.reportsOf("dev", "committed"), w.logs.slice(-10).join("\n")).toHaveLength(1);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.1.0+0");
  });

  it("a release being downloaded when its batch key is retired stops with KEY_RETIRED and is not installed", () => {
    const w = makeWorld({ bytesPerMs: 4 }); // 24 KiB at 4 bytes/ms: the download takes about 6 s
    trustWorld(w, fleetKeySet({ sequence: 1, batch: [BATCH_1] }));
    const d = w.addDevice("dev", TRUSTED_DEVICE);
    d.run(12_000);
    w.cloud.releases = [release(BATCH_1, buildImage(w.map, w.key, "1.1.0", 1))];
    d.run(11_000); // offered at the heartbeat at about 20 s
    expect(w.agents.get(d)!.state).toBe("downloading");
    w.cloud.pushKeySet("dev", fleetKeySet({ sequence: 2, batch: [BATCH_2], retired: [BATCH_1] }));
    d.run(60_000);
    const failed = w.cloud.reportsOf("dev", "failed");
    expect(failed.map((r) => r.reason), w.logs.slice(-30).join("\n")).toEqual([Reason.KEY_RETIRED]);
    expect(w.cloud.reportsOf("dev", "committed")).toHaveLength(0);
    expect(d.runningSlot).toBe(0);
  });

  it("an older key set, one from another root, or a sequence jump is refused and the held one stays", () => {
    const w = makeWorld();
    trustWorld(w, fleetKeySet({ sequence: 5 }));
    const d = w.addDevice("dev", TRUSTED_DEVICE);
    d.run(20_000);
    w.cloud.pushKeySet("dev", fleetKeySet({ sequence: 4, batch: [BATCH_2] }));
    w.cloud.pushKeySet("dev", fleetKeySet({ sequence: 0xffffffff, batch: [BATCH_2] }));
    const forged = fleetKeySet({ sequence: 6, batch: [BATCH_2] });
    forged[30] ^= 1;
    w.cloud.pushKeySet("dev", forged);
    d.run(20_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.keySet).toEqual({ epoch: 0, sequence: 5 });
    const reasons = audit(w).filter((e) => e.event === AgentAuditEvent.KEYSET_REFUSED).map((e) => e.reason);
    expect(reasons).toEqual([Reason.KEYSET_OLDER, Reason.SEQUENCE_JUMP, Reason.KEYSET_BAD_SIGNATURE]);
  });
});

describe("the fleet upgrade path from the single keyring", () => {
  it("a device with a root key takes single-keyring releases until its first key set, then refuses them with KEY_LEGACY_SIGNER", () => {
    const w = makeWorld();
    const d = w.addDevice("dev", TRUSTED_DEVICE);
    w.cloud.releases = [release(w.key, buildImage(w.map, w.key, "1.1.0", 1))];
    d.run(5 * 60_000);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.1.0+0");
    trustWorld(w);
    d.run(20_000);
    w.cloud.pushOffer("dev", release(w.key, buildImage(w.map, w.key, "1.2.0", 0)).envelope);
    d.run(2000);
    expect(refusals(w, "dev")).toEqual([Reason.KEY_LEGACY_SIGNER]);
  });

  it("a device without a root key ignores key sets and keeps its keyring", () => {
    const w = makeWorld();
    trustWorld(w);
    const d = w.addDevice("dev");
    d.run(20_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.keySet).toBeUndefined();
    expect(audit(w).find((e) => e.event === AgentAuditEvent.KEYSET_REFUSED)?.reason).toBe(Reason.KEYSET_UNKNOWN_ROOT);
    w.cloud.releases = [release(w.key, buildImage(w.map, w.key, "1.1.0", 1))];
    d.run(5 * 60_000);
    expect(formatVersion(d.lastBoot!.info!.header.version)).toBe("1.1.0+0");
  });
});

describe("the revocation lockout at 0xFFFFFFFF", () => {
  const record = (sequence: number, epoch = 0) => ({ hardwareId: HARDWARE, sequence, ...(epoch ? { epoch } : {}), issuedAt: T0, minVersion: parseVersion("0.0.0")!, minSecurityCounter: 0, blocked: [] });

  it("a record with sequence 0xFFFFFFFF is refused (SEQUENCE_JUMP); a device stuck there from older firmware takes the next epoch's records after the root's reset", () => {
    const w = makeWorld();
    trustWorld(w);
    const d = w.addDevice("dev", TRUSTED_DEVICE);
    d.run(20_000);
    w.cloud.pushRevocation("dev", signRevocation(record(0xffffffff), BATCH_1));
    d.run(15_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.revocation).toBeUndefined();
    expect(audit(w).find((e) => e.event === AgentAuditEvent.REVOCATION_REFUSED)?.reason).toBe(Reason.SEQUENCE_JUMP);

    // older firmware took such a record: the journal holds it
    const agent = w.agents.get(d)!;
    agent.journal.setPolicy({ ...agent.journal.policy(), revocation: encodeRevocationState(record(0xffffffff)) });
    d.pressReset();
    d.run(20_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.revocation).toBe(0xffffffff);
    w.cloud.pushRevocation("dev", signRevocation({ ...record(1, 1), minSecurityCounter: 1 }, BATCH_1));
    d.run(15_000);
    expect(w.cloud.heartbeats.at(-1)!.heartbeat.revocation, "epoch 1 is not open yet").toBe(0xffffffff);

    // the root opens epoch 1 (a key set of the next epoch); the record of epoch 1 is taken
    w.cloud.setKeySet(fleetKeySet({ epoch: 1, sequence: 1 }));
    w.cloud.setRevocation(signRevocation({ ...record(1, 1), minSecurityCounter: 1 }, BATCH_1));
    d.run(30_000);
    const hb = w.cloud.heartbeats.at(-1)!.heartbeat;
    expect(hb.keySet).toEqual({ epoch: 1, sequence: 1 });
    expect([hb.revocationEpoch, hb.revocation]).toEqual([1, 1]);
  });
});
