/**
 * Key roles (issue 16B): the key set format and its refusals, root
 * authentication, the bounded-step / epoch acceptance rule, the persisted
 * state, who may sign what (DeviceTrust), manifests and revocation records
 * checked against key set roles and scopes, signed time statements, and the
 * trusted-time clock that only moves forward.
 */
import { readFileSync } from "node:fs";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { p256 } from "../../src/crypto/p256";
import { signerFromSecret } from "../../tools/keys/signer";
import { createKeyring, KeyRole } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { isOtaError, Reason, reasonName } from "../../src/errors";
import { parseVersion } from "../../src/image/format";
import { parseSignedManifest } from "../../src/update/manifest";
import {
  acceptKeySet,
  decodeKeySet,
  decodeKeySetState,
  DeviceTrust,
  encodeKeySetState,
  MAX_KEYSET_STATE_BYTES,
  MAX_SEQUENCE_STEP,
  KEYSET_MAGIC,
  parseSignedKeySet,
  sameKeySet,
  sequenceOrder,
  type KeySet,
} from "../../src/update/keyset";
import { parseSignedRevocation } from "../../src/update/revocation";
import { parseSignedTime } from "../../src/update/time-statement";
import { FLOOR_PERSIST_STEP_S, STATEMENT_VERIFY_AHEAD_S, TrustedTime } from "../../src/agent/trusted-time";
import { TRUST_SPACE } from "../../src/store/layout";
import { fromHex, toHex } from "../../src/util/bytes";
import { checkBatchKey, encodeKeySet, KeySetError, makeKeySet, signKeySet, signKeySetBytes, signTimeStatement, type KeySetSpec } from "../../tools/release/keyset";
import { signManifest } from "../../tools/release/encode";
import { signRevocation } from "../../tools/release/revoke";
import { buildImage, release, testKey, HARDWARE } from "../lib/sim-fixtures";
import { smallFlashMap } from "../../targets/sim/flashmap";

const root = testKey(101);
const batchA = testKey(102);
const batchB = testKey(103);
const timeKey = testKey(104);
const legacy = testKey(7);
const T0 = 1_790_000_000;
const YEAR = 365 * 86400;
const any = { notBefore: T0 - YEAR, notAfter: T0 + 10 * YEAR };

function spec(o: Partial<KeySetSpec> = {}): KeySetSpec {
  return {
    sequence: 1,
    epoch: 0,
    issuedAt: T0,
    keys: [
      { publicKey: batchA.publicKey, roles: KeyRole.MANIFEST | KeyRole.REVOCATION, scope: { ...any, hardwareId: HARDWARE } },
      { publicKey: timeKey.publicKey, roles: KeyRole.TIME, scope: any },
    ],
    ...o,
  };
}

function decodeOk(s: KeySetSpec): KeySet {
  return decodeKeySet(encodeKeySet(s), softwareDigest);
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isOtaError(e)) return reasonName(e.code);
    throw e;
  }
  return "OK";
}

const KEYSET_MAGIC_BYTES = KEYSET_MAGIC;
const roots = createKeyring([root.publicKey], softwareDigest);
const keyring = createKeyring([legacy.publicKey], softwareDigest);

describe("key set format", () => {
  it("round-trips what the host encodes, with key ids = SHA-256 of the SPKI", () => {
    const ks = decodeOk(spec({ retired: [batchB.keyId] }));
    expect(ks.sequence).toBe(1);
    expect(ks.keys.map((k) => toHex(k.keyId))).toEqual([toHex(batchA.keyId), toHex(timeKey.keyId)]);
    expect(ks.keys[0].scope).toEqual({ hardwareId: HARDWARE, ...any });
    expect(ks.keys[1].scope.hardwareId).toBeUndefined();
    expect(ks.retired.map(toHex)).toEqual([toHex(batchB.keyId.subarray(0, 8))]);
  });

  it("refuses every malformed key set with its reason", () => {
    const k = spec().keys[0];
    expect(code(() => decodeOk(spec({ keys: [] })))).toBe("KEYSET_MALFORMED");
    expect(code(() => decodeOk(spec({ keys: [k, { ...k, publicKey: batchB.publicKey }, { ...k, publicKey: timeKey.publicKey }, { ...k, publicKey: root.publicKey }, { ...k, publicKey: legacy.publicKey }] })))).toMatch(/KEYSET_MALFORMED|MANIFEST_FIELD_TOO_LONG/);
    const offCurve = Uint8Array.from(batchA.publicKey);
    offCurve[64] ^= 1;
    expect(code(() => decodeOk(spec({ keys: [{ ...k, publicKey: offCurve }] })))).toBe("KEYSET_MALFORMED");
    const badRoles = encodeKeySet(spec({ keys: [k] }));
    badRoles[badRoles.length - 75 - HARDWARE.length + 65] = 0x08; // the roles byte of the only entry
    expect(code(() => decodeKeySet(badRoles, softwareDigest))).toBe("KEYSET_MALFORMED");
    expect(code(() => decodeOk(spec({ keys: [{ ...k, scope: { notBefore: 5, notAfter: 5 } }] })))).toBe("KEYSET_MALFORMED");
    expect(code(() => decodeOk(spec({ keys: [{ ...k, scope: { ...any, hardwareId: "usr n520" } }] })))).toBe("KEYSET_MALFORMED");
    expect(code(() => decodeOk(spec({ keys: [k, k] })))).toBe("KEYSET_MALFORMED");
    expect(code(() => decodeOk(spec({ retired: [batchA.keyId] })))).toBe("KEYSET_MALFORMED");
    expect(code(() => decodeOk(spec({ retired: [batchB.keyId, batchB.keyId] })))).toBe("KEYSET_MALFORMED");
    expect(code(() => decodeOk(spec({ sequence: 0 })))).toBe("MANIFEST_BAD_VALUE");
    expect(code(() => decodeKeySet(encodeKeySet(spec(), undefined, { format: 2 }), softwareDigest))).toBe("MANIFEST_UNSUPPORTED_VERSION");
  });

  it("the largest key set's state fits the trust space (4 keys with 32-byte hardware ids, 4 retired)", () => {
    const keys = [batchA, batchB, timeKey, legacy].map((s) => ({ publicKey: s.publicKey, roles: 7, scope: { ...any, hardwareId: "h".repeat(32) } }));
    const retired = [101, 110, 111, 112].map((n) => testKey(n).keyId);
    const ks = decodeOk(spec({ keys, retired, sequence: 0xffffffff, epoch: 0xffffffff }));
    const state = encodeKeySetState(ks);
    expect(state.length).toBe(MAX_KEYSET_STATE_BYTES);
    expect(state.length).toBeLessThanOrEqual(TRUST_SPACE.maxValue);
    expect(decodeKeySetState(state, softwareDigest)).toEqual(ks);
    for (let cut = 0; cut < state.length; cut++) expect(code(() => decodeKeySetState(state.subarray(0, cut), softwareDigest))).toBe("KEYSET_MALFORMED");
  });
});

describe("parseSignedKeySet: only a root key signs key sets", () => {
  it("accepts the root's, refuses another key's and any flipped byte", () => {
    const env = signKeySet(spec(), root);
    const ok = parseSignedKeySet(env, roots, softwareDigest);
    expect(ok.ok && ok.keySet.sequence).toBe(1);
    const byBatch = parseSignedKeySet(signKeySet(spec(), batchA), roots, softwareDigest);
    expect(!byBatch.ok && byBatch.reason).toBe(Reason.KEYSET_UNKNOWN_ROOT);
    for (let i = 0; i < env.length; i++) {
      const bad = Uint8Array.from(env);
      bad[i] ^= 0x40;
      const r = parseSignedKeySet(bad, roots, softwareDigest);
      expect(r.ok, `byte ${i}`).toBe(false);
    }
    const flipped = Uint8Array.from(env);
    flipped[20] ^= 1;
    const r = parseSignedKeySet(flipped, roots, softwareDigest);
    expect(!r.ok && r.reason).toBe(Reason.KEYSET_BAD_SIGNATURE);
  });
});

describe("acceptKeySet: newer by a bounded step, or the root's next epoch", () => {
  const held = decodeOk(spec({ sequence: 10 }));
  it("takes a newer sequence within the step and a harmless re-send", () => {
    expect(acceptKeySet(undefined, held)).toBe(Reason.OK);
    expect(acceptKeySet(held, decodeOk(spec({ sequence: 11 })))).toBe(Reason.OK);
    expect(acceptKeySet(held, decodeOk(spec({ sequence: 10 + MAX_SEQUENCE_STEP })))).toBe(Reason.OK);
    expect(acceptKeySet(held, decodeKeySet(encodeKeySet(spec({ sequence: 10 }), "a note"), softwareDigest))).toBe(Reason.OK);
    expect(sameKeySet(held, decodeOk(spec({ sequence: 10, retired: [batchB.keyId] })))).toBe(false);
  });
  it("refuses older, a changed set under a held sequence, and jumps", () => {
    expect(acceptKeySet(held, decodeOk(spec({ sequence: 9 })))).toBe(Reason.KEYSET_OLDER);
    expect(acceptKeySet(held, decodeOk(spec({ sequence: 10, retired: [batchB.keyId] })))).toBe(Reason.KEYSET_OLDER);
    expect(acceptKeySet(held, decodeOk(spec({ sequence: 11 + MAX_SEQUENCE_STEP })))).toBe(Reason.SEQUENCE_JUMP);
    expect(acceptKeySet(held, decodeOk(spec({ sequence: 0xffffffff })))).toBe(Reason.SEQUENCE_JUMP);
    expect(acceptKeySet(undefined, decodeOk(spec({ sequence: 0xffffffff })))).toBe(Reason.SEQUENCE_JUMP);
  });
  it("the root resets: the next epoch restarts at a low sequence; two epochs at once or an old epoch are refused", () => {
    const stuck = decodeOk(spec({ sequence: 0xffffffff }));
    expect(acceptKeySet(stuck, decodeOk(spec({ epoch: 1, sequence: 1 })))).toBe(Reason.OK);
    expect(acceptKeySet(stuck, decodeOk(spec({ epoch: 1, sequence: MAX_SEQUENCE_STEP + 1 })))).toBe(Reason.SEQUENCE_JUMP);
    expect(acceptKeySet(stuck, decodeOk(spec({ epoch: 2, sequence: 1 })))).toBe(Reason.SEQUENCE_JUMP);
    expect(acceptKeySet(decodeOk(spec({ epoch: 1, sequence: 1 })), stuck)).toBe(Reason.KEYSET_OLDER);
    expect(sequenceOrder({ epoch: 3, sequence: 5 }, { epoch: 3, sequence: 6 }, 3)).toBe("newer");
    expect(sequenceOrder({ epoch: 3, sequence: 5 }, { epoch: 4, sequence: 1 }, 3)).toBe("jump");
  });
});

describe("DeviceTrust: who may sign what", () => {
  const ks = decodeOk(spec({ retired: [batchB.keyId] }));
  it("without root keys: the single keyring signs manifests and revocations, nothing signs time", () => {
    const t = new DeviceTrust(keyring, createKeyring([], softwareDigest), undefined);
    expect(t.signer(legacy.keyId, KeyRole.MANIFEST).ok).toBe(true);
    expect(t.signer(legacy.keyId, KeyRole.REVOCATION).ok).toBe(true);
    expect(t.signer(legacy.keyId, KeyRole.TIME).ok).toBe(false);
    expect(t.signer(batchA.keyId, KeyRole.MANIFEST).ok).toBe(false);
  });
  it("root keys but no key set yet (a fleet upgrading): the keyring still signs releases", () => {
    const t = new DeviceTrust(keyring, roots, undefined);
    expect(t.signer(legacy.keyId, KeyRole.MANIFEST).ok).toBe(true);
    expect(t.signer(timeKey.keyId, KeyRole.TIME).ok).toBe(false);
  });
  it("with a key set: only its keys, for their roles; retired and legacy signers named", () => {
    const t = new DeviceTrust(keyring, roots, ks);
    const a = t.signer(batchA.keyId, KeyRole.MANIFEST);
    expect(a.ok && a.scope?.hardwareId).toBe(HARDWARE);
    const r = (id: Uint8Array, role: (typeof KeyRole)[keyof typeof KeyRole]) => {
      const x = t.signer(id, role);
      return x.ok ? "OK" : x.reason === undefined ? "unknown" : reasonName(x.reason);
    };
    expect(r(batchA.keyId, KeyRole.TIME)).toBe("KEY_WRONG_ROLE");
    expect(r(timeKey.keyId, KeyRole.TIME)).toBe("OK");
    expect(r(timeKey.keyId, KeyRole.MANIFEST)).toBe("KEY_WRONG_ROLE");
    expect(r(batchB.keyId, KeyRole.MANIFEST)).toBe("KEY_RETIRED");
    expect(r(legacy.keyId, KeyRole.MANIFEST)).toBe("KEY_LEGACY_SIGNER");
    expect(r(root.keyId, KeyRole.MANIFEST)).toBe("unknown");
  });
});

describe("manifests and revocation records under a key set", () => {
  const map = smallFlashMap(128);
  const img = buildImage(map, legacy, "1.1.0", 1);
  const manifest = release(legacy, img).manifest;
  const t = new DeviceTrust(keyring, roots, decodeOk(spec({ retired: [batchB.keyId] })));
  const parse = (env: Uint8Array) => {
    const r = parseSignedManifest(env, t, softwareDigest);
    return r.ok ? "OK" : reasonName(r.reason);
  };
  it("a batch key signs within its scope; outside it, retired, legacy or unknown are refused", () => {
    expect(parse(signManifest(manifest, batchA))).toBe("OK");
    expect(parse(signManifest({ ...manifest, hardwareId: "usr-g771" }, batchA))).toBe("KEY_WRONG_HARDWARE");
    expect(parse(signManifest({ ...manifest, issuedAt: T0 + 11 * YEAR, expiresAt: T0 + 12 * YEAR }, batchA))).toBe("KEY_NOT_VALID");
    expect(parse(signManifest(manifest, batchB))).toBe("KEY_RETIRED");
    expect(parse(signManifest(manifest, legacy))).toBe("KEY_LEGACY_SIGNER");
    expect(parse(signManifest(manifest, timeKey))).toBe("KEY_WRONG_ROLE");
    expect(parse(signManifest(manifest, testKey(150)))).toBe("MANIFEST_UNKNOWN_KEY");
  });
  it("revocation records need the revocation role", () => {
    const rec = { hardwareId: HARDWARE, sequence: 1, issuedAt: T0, minVersion: parseVersion("0.0.0")!, minSecurityCounter: 0, blocked: [] };
    const ok = parseSignedRevocation(signRevocation(rec, batchA), t, softwareDigest);
    expect(ok.ok).toBe(true);
    const byTime = parseSignedRevocation(signRevocation(rec, timeKey), t, softwareDigest);
    expect(!byTime.ok && reasonName(byTime.reason)).toBe("KEY_WRONG_ROLE");
  });
  it("xs-ota release --keyset: checkBatchKey gives the reason a device would", () => {
    const ks = decodeOk(spec({ retired: [batchB.keyId] }));
    expect(checkBatchKey(ks, batchA.keyId, HARDWARE, T0)).toBe(Reason.OK);
    expect(checkBatchKey(ks, batchA.keyId, "usr-g771", T0)).toBe(Reason.KEY_WRONG_HARDWARE);
    expect(checkBatchKey(ks, batchB.keyId, HARDWARE, T0)).toBe(Reason.KEY_RETIRED);
    expect(checkBatchKey(ks, timeKey.keyId, HARDWARE, T0)).toBe(Reason.KEY_WRONG_ROLE);
  });
});

describe("makeKeySet: the host refuses what a device would", () => {
  it("checks the decoder and the step from the previous key set", () => {
    const prev = decodeOk(spec({ sequence: 5 }));
    expect(makeKeySet(spec({ sequence: 6 }), root, { previous: prev }).keySet.sequence).toBe(6);
    expect(() => makeKeySet(spec({ sequence: 5 }), root, { previous: prev })).toThrow(KeySetError);
    expect(() => makeKeySet(spec({ sequence: 6 + MAX_SEQUENCE_STEP }), root, { previous: prev })).toThrow(/SEQUENCE_JUMP/);
    expect(() => makeKeySet(spec({ epoch: 2 }), root, { previous: prev })).toThrow(/epoch/);
    expect(makeKeySet(spec({ epoch: 1, sequence: 1 }), root, { previous: prev }).keySet.epoch).toBe(1);
    expect(() => makeKeySet(spec({ keys: [] }), root)).toThrow(KeySetError);
  });
});

describe("signed time statements", () => {
  const t = new DeviceTrust(keyring, roots, decodeOk(spec()));
  const time = (env: Uint8Array) => {
    const r = parseSignedTime(env, t, softwareDigest);
    return r.ok ? r.time : reasonName(r.reason);
  };
  it("a time key's statement is taken; other keys, forged bytes and times outside the key's window are not", () => {
    expect(time(signTimeStatement(T0 + 5, timeKey))).toBe(T0 + 5);
    expect(time(signTimeStatement(T0 + 5, batchA))).toBe("KEY_WRONG_ROLE");
    expect(time(signTimeStatement(T0 + 5, testKey(150)))).toBe("TIME_UNKNOWN_KEY");
    expect(time(signTimeStatement(T0 + 11 * YEAR, timeKey))).toBe("KEY_NOT_VALID");
    const forged = signTimeStatement(T0 + 5, timeKey);
    forged[14] ^= 1; // inside the time value
    expect(time(forged)).toBe("TIME_BAD_SIGNATURE");
    expect(time(signKeySetBytes(encodeKeySet(spec()), timeKey))).toBe("TIME_MALFORMED");
    expect(time(new Uint8Array(0))).toBe("TIME_MALFORMED");
  });
});

describe("TrustedTime: only forward, only signed, the floor survives", () => {
  it("statements run a clock; older ones are ignored; issued-at raises the floor; the floor is stored", () => {
    let ms = 0;
    const stored: number[] = [];
    const tt = new TrustedTime(() => ms, 0, (f) => stored.push(f));
    expect(tt.now()).toBe(0);
    expect(tt.running).toBe(false);
    tt.observeIssuedAt(T0);
    expect(tt.now()).toBe(T0);
    expect(stored).toEqual([T0]);
    expect(tt.observeStatement(T0 + 100)).toBe(Reason.OK);
    ms = 50_000;
    expect(tt.now()).toBe(T0 + 150);
    expect(tt.observeStatement(T0 + 120)).toBe(Reason.TIME_BEHIND);
    expect(tt.now()).toBe(T0 + 150);
    expect(stored).toEqual([T0]); // under FLOOR_PERSIST_STEP_S: not written yet
    tt.save();
    expect(stored).toEqual([T0, T0 + 150]);
    expect(tt.observeStatement(T0 + 150 + FLOOR_PERSIST_STEP_S)).toBe(Reason.OK);
    expect(stored.at(-1)).toBe(T0 + 150 + FLOOR_PERSIST_STEP_S);
    const again = new TrustedTime(() => 0, stored.at(-1)!, () => {});
    expect(again.now(), "after a reset: the stored floor").toBe(T0 + 150 + FLOOR_PERSIST_STEP_S);
    expect(again.observeStatement(T0)).toBe(Reason.TIME_BEHIND);
    again.reset(T0);
    expect(again.now(), "only the root's reset goes back").toBe(T0);
    expect(again.worthVerifying(T0 - 10), "before the clock runs every statement is checked").toBe(true);
    again.observeStatement(T0);
    expect(again.worthVerifying(T0 + 60)).toBe(false);
    expect(again.worthVerifying(T0 - 10)).toBe(false);
    expect(again.worthVerifying(T0 + STATEMENT_VERIFY_AHEAD_S)).toBe(true);
  });
});

describe("vectors (test/vectors/keyset-v1.json) and random input", () => {
  const v = JSON.parse(readFileSync(new URL("../vectors/keyset-v1.json", import.meta.url), "utf8"));
  const key = (name: string) => signerFromSecret(fromHex(v[`${name}Secret`])!);
  const vSpec: KeySetSpec = {
    sequence: v.keySet.spec.sequence,
    epoch: v.keySet.spec.epoch,
    issuedAt: v.keySet.spec.issuedAt,
    keys: v.keySet.spec.keys.map((k: { key: string; roles: number; hardwareId?: string; notBefore: number; notAfter: number }) => ({
      publicKey: key(k.key).publicKey,
      roles: k.roles,
      scope: k.hardwareId === undefined ? { notBefore: k.notBefore, notAfter: k.notAfter } : { hardwareId: k.hardwareId, notBefore: k.notBefore, notAfter: k.notAfter },
    })),
    retired: v.keySet.spec.retired.map((n: string) => key(n).keyId),
  };

  it("the record and envelope bytes of a fixed key set and root do not drift, and lay out as docs/formats.md says", () => {
    const record = encodeKeySet(vSpec, v.keySet.spec.note);
    expect(toHex(record)).toBe(v.keySet.record);
    expect(toHex(signKeySetBytes(record, key("root")))).toBe(v.keySet.envelope);
    // "XSKS", format 1, then NOTE (0x01, 6 bytes), SEQUENCE, EPOCH, ISSUED_AT, KEYS, RETIRED
    expect(toHex(record.subarray(0, 5))).toBe("58534b5301");
    const at = 5 + 3 + 6 + 3 * 7; // after note and the three u32 records
    expect(record[at]).toBe(0x84);
    const entry = record.subarray(at + 3);
    expect(toHex(entry.subarray(0, 65))).toBe(toHex(key("batch").publicKey));
    expect(entry[65]).toBe(3);
    expect(new DataView(entry.buffer, entry.byteOffset).getUint32(66, true)).toBe(1_780_000_000);
    expect(new DataView(entry.buffer, entry.byteOffset).getUint32(70, true)).toBe(1_850_000_000);
    expect(entry[74]).toBe(8);
    expect(new TextDecoder().decode(entry.subarray(75, 83))).toBe("usr-n520");
    // the root's signature verifies with noble directly (not our verifier) over SHA-256(record)
    const env = fromHex(v.keySet.envelope)!;
    const sig = env.subarray(8 + record.length + 32 + 1);
    expect(p256.verify(sig, sha256(record), key("root").publicKey, { prehash: false, format: "der", lowS: false })).toBe(true);
    const parsed = parseSignedKeySet(env, createKeyring([key("root").publicKey], softwareDigest), softwareDigest);
    if (!parsed.ok) throw new Error(parsed.message);
    expect(toHex(parsed.id)).toBe(v.keySet.id);
    expect(parsed.keySet.keys.map((k) => toHex(k.keyId))).toEqual([v.keySet.keyIds.batch, v.keySet.keyIds.time]);
    expect(parsed.keySet.retired.map(toHex)).toEqual([v.keySet.keyIds.retired.slice(0, 16)]);
    const t = parseSignedTime(fromHex(v.timeStatement.envelope)!, new DeviceTrust(keyring, roots, parsed.keySet), softwareDigest);
    expect(t.ok && t.time).toBe(v.timeStatement.time);
    expect(toHex(signTimeStatement(v.timeStatement.time, key("time")))).toBe(v.timeStatement.envelope);
  });

  it("random and mutated input: every decoder refuses with an OtaError or a refusal, never anything else", () => {
    let seed = 0x16b;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) & 0xff;
    const record = fromHex(v.keySet.record)!;
    const envelope = fromHex(v.keySet.envelope)!;
    const trust = new DeviceTrust(keyring, roots, decodeOk(spec()));
    const vRoots = createKeyring([key("root").publicKey], softwareDigest);
    for (let i = 0; i < 400; i++) {
      const len = rnd() * 4;
      const junk = Uint8Array.from({ length: len }, rnd);
      const mutated = Uint8Array.from(i % 2 ? record : envelope);
      for (let k = 0; k < 1 + (i % 4); k++) mutated[(rnd() << 8 | rnd()) % mutated.length] = rnd();
      for (const bytes of [junk, mutated, Uint8Array.from([...KEYSET_MAGIC_BYTES, 1, ...junk])]) {
        for (const f of [() => decodeKeySet(bytes, softwareDigest), () => decodeKeySetState(bytes, softwareDigest)]) {
          try {
            f();
          } catch (e) {
            expect(isOtaError(e), String(e)).toBe(true);
          }
        }
        // under the vector's own root, a changed envelope never verifies
        const unchanged = bytes.length === envelope.length && bytes.every((b, j) => b === envelope[j]);
        expect(parseSignedKeySet(bytes, vRoots, softwareDigest).ok).toBe(unchanged);
        expect(parseSignedTime(bytes, trust, softwareDigest).ok).toBe(false);
      }
    }
  });
});
