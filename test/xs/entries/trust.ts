/**
 * XS entry: key roles and trusted time (issue 16B) through the real agent on
 * the virtual device, inside XS with Moddable's frozen built-ins: the expired
 * release replayed through rewound acks, a retired batch key after a key
 * set rotation, the 0xFFFFFFFF revocation lockout and its epoch reset, and
 * the key set / time statement decoders. test/unit/keyset-agent.test.ts is
 * the same on Node.
 */
import { Reason } from "../../../src/errors";
import { formatVersion, parseVersion } from "../../../src/image/format";
import { softwareDigest } from "../../../src/crypto/sha256";
import { createKeyring } from "../../../src/crypto/keyring";
import { acceptKeySet, DeviceTrust, parseSignedKeySet } from "../../../src/update/keyset";
import { parseSignedTime } from "../../../src/update/time-statement";
import { signRevocation } from "../../../tools/release/revoke";
import { signTimeStatement } from "../../../tools/release/keyset";
import { AgentAuditEvent } from "../../../src/agent/events";
import { buildImage, release, HARDWARE } from "../../lib/sim-fixtures";
import { makeWorld, type World } from "../../lib/sim-world";
import { BATCH_1, BATCH_2, fleetKeySet, ROOT, TIME_KEY, TRUSTED_DEVICE, trustWorld } from "../../lib/trust";
import { serve, task } from "../runtime";

const T0 = 1_790_000_000;

function refusedInAudit(w: World): number[] {
  const a = w.agents.get(w.devices[0])!.audit.log;
  return a
    .read(a.first, 128)
    .filter((e) => e.event === AgentAuditEvent.OFFER_REFUSED)
    .map((e) => e.reason);
}

task("expired-replay", () => {
  const w = makeWorld();
  trustWorld(w);
  const expiring = release(BATCH_1, buildImage(w.map, w.key, "1.1.0", 1), { issuedAt: T0 - 3600, expiresAt: T0 + 60 });
  const d = w.addDevice("xs-dev", TRUSTED_DEVICE);
  d.run(120_000);
  w.cloud.pushOffer("xs-dev", expiring.envelope);
  d.run(2000);
  // the broker rewinds its acks an hour and replays a statement signed before the expiry
  const early = signTimeStatement(T0 + 10, TIME_KEY);
  w.cloud.ackTimeShiftS = -3600;
  w.cloud.timeStatement = () => early;
  d.run(30_000);
  w.cloud.pushOffer("xs-dev", expiring.envelope);
  d.run(2000);
  w.cloud.timeStatement = undefined;
  d.pressReset();
  d.run(30_000);
  w.cloud.pushOffer("xs-dev", expiring.envelope);
  d.run(2000);
  return {
    refused: refusedInAudit(w),
    accepted: w.cloud.reportsOf("xs-dev", "offer-accepted").length,
    untouched: d.slots[1].cells.every((b) => b === 0xff),
    log: w.logs.slice(-10),
  };
});

task("retired-batch-key", () => {
  const w = makeWorld();
  trustWorld(w, fleetKeySet({ sequence: 1, batch: [BATCH_1] }));
  const d = w.addDevice("xs-dev", TRUSTED_DEVICE);
  d.run(20_000);
  const img = buildImage(w.map, w.key, "1.1.0", 1);
  w.cloud.setKeySet(fleetKeySet({ sequence: 2, batch: [BATCH_2], retired: [BATCH_1] }));
  d.run(20_000);
  const keySet = w.cloud.heartbeats[w.cloud.heartbeats.length - 1].heartbeat.keySet;
  w.cloud.pushOffer("xs-dev", release(BATCH_1, img).envelope);
  d.run(2000);
  w.cloud.releases = [release(BATCH_2, img)];
  d.run(5 * 60_000);
  return {
    keySet,
    refused: refusedInAudit(w),
    committed: w.cloud.reportsOf("xs-dev", "committed").length,
    version: d.lastBoot?.info ? formatVersion(d.lastBoot.info.header.version) : "",
    log: w.logs.slice(-10),
  };
});

task("revocation-lockout", () => {
  const w = makeWorld();
  trustWorld(w);
  const rec = (sequence: number, epoch: number) => ({ hardwareId: HARDWARE, sequence, ...(epoch ? { epoch } : {}), issuedAt: T0, minVersion: parseVersion("0.0.0")!, minSecurityCounter: 0, blocked: [] });
  const d = w.addDevice("xs-dev", TRUSTED_DEVICE);
  d.run(20_000);
  w.cloud.pushRevocation("xs-dev", signRevocation(rec(0xffffffff, 0), BATCH_1));
  d.run(15_000);
  const afterLockout = w.cloud.heartbeats[w.cloud.heartbeats.length - 1].heartbeat.revocation ?? null;
  w.cloud.setKeySet(fleetKeySet({ epoch: 1, sequence: 1 }));
  w.cloud.setRevocation(signRevocation(rec(1, 1), BATCH_1));
  d.run(30_000);
  const hb = w.cloud.heartbeats[w.cloud.heartbeats.length - 1].heartbeat;
  return { afterLockout, keySet: hb.keySet, revocation: [hb.revocationEpoch ?? 0, hb.revocation ?? 0] };
});

task("keyset-decode", () => {
  const roots = createKeyring([ROOT.publicKey], softwareDigest);
  const a = parseSignedKeySet(fleetKeySet({ sequence: 3 }), roots, softwareDigest);
  const jump = parseSignedKeySet(fleetKeySet({ sequence: 0xffffffff }), roots, softwareDigest);
  const forged = fleetKeySet({ sequence: 4 });
  forged[40] ^= 1;
  const bad = parseSignedKeySet(forged, roots, softwareDigest);
  return {
    ok: a.ok,
    keys: a.ok ? a.keySet.keys.length : 0,
    jump: a.ok && jump.ok ? acceptKeySet(a.keySet, jump.keySet) : -1,
    forged: bad.ok ? 0 : bad.reason,
    expected: [Reason.SEQUENCE_JUMP, Reason.KEYSET_BAD_SIGNATURE],
  };
});
// Made when the bundle loads (not metered): the task below pays only for what a device does.
const PARSE_INPUT = { keySet: fleetKeySet({ sequence: 9 }), statement: signTimeStatement(T0 + 5, TIME_KEY) };
task("keyset-parse-cost", () => {
  const roots = createKeyring([ROOT.publicKey], softwareDigest);
  const r = parseSignedKeySet(PARSE_INPUT.keySet, roots, softwareDigest);
  return { ok: r.ok, bytes: PARSE_INPUT.keySet.length };
});
task("time-parse-cost", () => {
  const roots = createKeyring([ROOT.publicKey], softwareDigest);
  const r = parseSignedKeySet(PARSE_INPUT.keySet, roots, softwareDigest);
  if (!r.ok) return { ok: false };
  const trust = new DeviceTrust(createKeyring([BATCH_1.publicKey], softwareDigest), roots, r.keySet);
  const t = parseSignedTime(PARSE_INPUT.statement, trust, softwareDigest);
  return { ok: t.ok };
});
serve();
