/**
 * Signed revocation records (src/update/revocation.ts, tools/release/revoke.ts):
 * a pinned vector, round trip, the strict parser's refusals (each with its
 * reason code), forgeries and the tamper matrix over a signed envelope
 * (every byte flipped, every value byte, every truncation, a byte inserted at
 * every point), domain separation from release manifests, the acceptance rule
 * (monotonic sequence, re-send, hardware id), the revoked check at its
 * boundaries, the persisted state, and random input that never throws.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { createKeyring } from "../../src/crypto/keyring";
import { MAX_SEQUENCE_STEP } from "../../src/update/keyset";
import { softwareDigest } from "../../src/crypto/sha256";
import { isOtaError, Reason, reasonName, type ReasonCode } from "../../src/errors";
import { parseVersion } from "../../src/image/format";
import { parseSignedManifest } from "../../src/update/manifest";
import {
  acceptRevocation,
  checkRevoked,
  decodeRevocation,
  decodeRevocationEnvelope,
  decodeRevocationState,
  encodeRevocationState,
  MAX_BLOCKED,
  MAX_REVOCATION_BYTES,
  MAX_REVOCATION_ENVELOPE_BYTES,
  MAX_REVOCATION_STATE_BYTES,
  parseSignedRevocation,
  RevocationField,
  sameRevocation,
  whyRevoked,
  type RevocationRecord,
} from "../../src/update/revocation";
import type { ReleaseManifest } from "../../src/update/types";
import { toHex, utf8Encode } from "../../src/util/bytes";
import { signerFromSecret } from "../../tools/keys/signer";
import { encodeEnvelope, signManifest, type ManifestRecord } from "../../tools/release/encode";
import { encodeRevocation, encodeRevocationRecords, revocationRecords, signRevocation, signRevocationBytes } from "../../tools/release/revoke";

const key = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => 100 + i));
const stranger = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => 50 + i));
const keyring = createKeyring([key.publicKey], softwareDigest);

const H = (b: number) => new Uint8Array(32).fill(b);
const V = (s: string) => parseVersion(s);

const rec: RevocationRecord = {
  hardwareId: "usr-n520",
  sequence: 3,
  issuedAt: 1_800_000_000,
  minVersion: V("1.2.0+0"),
  minSecurityCounter: 2,
  blocked: [H(0xaa), H(0xbb)],
};

function parse(envelope: Uint8Array) {
  return parseSignedRevocation(envelope, keyring, softwareDigest);
}
function reasonOf(envelope: Uint8Array): ReasonCode {
  const r = parse(envelope);
  return r.ok ? Reason.OK : r.reason;
}
/** Re-sign raw records with the trusted key: what a buggy or hostile tool holding the key could publish. */
function signedRecords(records: ManifestRecord[], header?: Parameters<typeof encodeRevocationRecords>[1]): Uint8Array {
  return signRevocationBytes(encodeRevocationRecords(records, header), key);
}
function replace(records: ManifestRecord[], type: number, value: Uint8Array | undefined): ManifestRecord[] {
  return records.flatMap((r) => (r.type !== type ? [r] : value === undefined ? [] : [{ type, value }]));
}
function u32(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24;
}

describe("pinned encoding (docs/formats.md, Revocation record)", () => {
  it("the record bytes and the envelope of a fixed record and key do not drift", () => {
    const one: RevocationRecord = { hardwareId: "hw", sequence: 1, issuedAt: 0x01020304, minVersion: V("1.2.3+4"), minSecurityCounter: 5, blocked: [H(0x11)] };
    const bytes = encodeRevocation(one);
    expect(toHex(bytes)).toBe(
      "58535252" + "01" + "810200" + "6877" + "820400" + "01000000" + "830400" + "04030201" + "840800" + "0102030004000000" + "850400" + "05000000" + "862000" + "11".repeat(32),
    );
    const env = signRevocation(one, key);
    expect(toHex(env.subarray(0, 8))).toBe("58535256" + "01" + "01" + bytes.length.toString(16).padStart(2, "0") + "00");
    expect(toHex(env.subarray(8 + bytes.length, 8 + bytes.length + 32))).toBe(toHex(key.keyId));
    // RFC 6979: the signature is deterministic, so the whole envelope is pinned by its hash.
    expect(toHex(sha256(env))).toBe("9edabb524c4e684d1a5744015a8e71ba47d4ea83a7adcb91b36949c98f394ea6");
    const r = parse(env);
    expect(r.ok && r.record).toEqual(one);
  });
});

describe("round trip", () => {
  it("decodes to what was encoded, with the id = SHA-256 of the signed bytes", () => {
    const env = signRevocation(rec, key, "1.3.0 bricks the RS-485 port");
    const r = parse(env);
    if (!r.ok) throw new Error(r.message);
    expect(r.record).toEqual(rec);
    expect(toHex(r.id)).toBe(toHex(sha256(decodeRevocationEnvelope(env).manifest)));
    expect(Object.isFrozen(r.record) && Object.isFrozen(r.record.blocked)).toBe(true);
  });
  it("an empty block list and zero minimums are a valid record (it lifts an earlier one)", () => {
    const clear: RevocationRecord = { ...rec, sequence: 4, minVersion: V("0.0.0+0"), minSecurityCounter: 0, blocked: [] };
    const r = parse(signRevocation(clear, key));
    expect(r.ok && r.record).toEqual(clear);
  });
  it("16 blocked hashes, a 64-byte hardware id and a 256-byte note fit", () => {
    const big: RevocationRecord = { ...rec, hardwareId: "h".repeat(64), blocked: Array.from({ length: MAX_BLOCKED }, (_, i) => H(i)) };
    const bytes = encodeRevocation(big, "n".repeat(256));
    expect(bytes.length).toBeLessThanOrEqual(MAX_REVOCATION_BYTES);
    const env = signRevocation(big, key, "n".repeat(256));
    expect(env.length).toBeLessThanOrEqual(MAX_REVOCATION_ENVELOPE_BYTES);
    expect(parse(env).ok).toBe(true);
  });
  it("fields in any order are accepted; unknown non-critical fields are skipped", () => {
    const recs = revocationRecords(rec).reverse();
    recs.splice(2, 0, { type: 0x7f, value: utf8Encode("future") });
    const r = parse(signedRecords(recs));
    expect(r.ok && r.record).toEqual(rec);
  });
});

describe("strict parsing: each defect has its own reason", () => {
  const recs = revocationRecords(rec);
  const cases: [string, () => Uint8Array, ReasonCode][] = [
    ["unknown critical field", () => signedRecords([...recs, { type: 0xc0, value: new Uint8Array(1) }]), Reason.MANIFEST_UNKNOWN_CRITICAL],
    ["duplicate sequence", () => signedRecords([...recs, { type: RevocationField.SEQUENCE, value: u32(9) }]), Reason.MANIFEST_DUPLICATE_FIELD],
    ["sequence of 3 bytes", () => signedRecords(replace(recs, RevocationField.SEQUENCE, new Uint8Array(3))), Reason.MANIFEST_WRONG_TYPE],
    ["min version of 4 bytes", () => signedRecords(replace(recs, RevocationField.MIN_VERSION, new Uint8Array(4))), Reason.MANIFEST_WRONG_TYPE],
    ["block list not whole hashes", () => signedRecords(replace(recs, RevocationField.BLOCKED, new Uint8Array(33))), Reason.MANIFEST_WRONG_TYPE],
    ["17 blocked hashes", () => signedRecords(replace(recs, RevocationField.BLOCKED, new Uint8Array(32 * 17))), Reason.MANIFEST_FIELD_TOO_LONG],
    ["a hash blocked twice", () => signedRecords(replace(recs, RevocationField.BLOCKED, Uint8Array.from([...H(1), ...H(2), ...H(1)]))), Reason.REVOCATION_MALFORMED],
    ["hardware id not UTF-8", () => signedRecords(replace(recs, RevocationField.HARDWARE_ID, Uint8Array.of(0xff))), Reason.MANIFEST_WRONG_TYPE],
    ["hardware id with a space", () => signedRecords(replace(recs, RevocationField.HARDWARE_ID, utf8Encode("usr n520"))), Reason.MANIFEST_BAD_VALUE],
    ["empty hardware id", () => signedRecords(replace(recs, RevocationField.HARDWARE_ID, new Uint8Array(0))), Reason.MANIFEST_BAD_VALUE],
    ["hardware id of 65 bytes", () => signedRecords(replace(recs, RevocationField.HARDWARE_ID, utf8Encode("h".repeat(65)))), Reason.MANIFEST_FIELD_TOO_LONG],
    ["note over 256 bytes", () => signedRecords([{ type: RevocationField.NOTE, value: new Uint8Array(257).fill(0x61) }, ...recs]), Reason.MANIFEST_FIELD_TOO_LONG],
    ["sequence 0", () => signedRecords(replace(recs, RevocationField.SEQUENCE, u32(0))), Reason.MANIFEST_BAD_VALUE],
    ["missing sequence", () => signedRecords(replace(recs, RevocationField.SEQUENCE, undefined)), Reason.MANIFEST_MISSING_FIELD],
    ["missing block list", () => signedRecords(replace(recs, RevocationField.BLOCKED, undefined)), Reason.MANIFEST_MISSING_FIELD],
    ["missing min security counter", () => signedRecords(replace(recs, RevocationField.MIN_SECURITY_COUNTER, undefined)), Reason.MANIFEST_MISSING_FIELD],
    ["bad record magic", () => signedRecords(recs, { magic: [0x58, 0x53, 0x52, 0x53] }), Reason.MANIFEST_BAD_MAGIC],
    ["record format 2", () => signedRecords(recs, { format: 2 }), Reason.MANIFEST_UNSUPPORTED_VERSION],
    ["record running past the end", () => signRevocationBytes(encodeRevocationRecords(recs).subarray(0, 32), key), Reason.MANIFEST_TRUNCATED],
    ["more than 16 records", () => signedRecords([...recs, ...Array.from({ length: 11 }, (_, i) => ({ type: 0x10 + i, value: new Uint8Array(0) }))]), Reason.MANIFEST_MALFORMED],
    ["record over 1024 bytes", () => signedRecords([...recs, ...Array.from({ length: 5 }, (_, i) => ({ type: 0x10 + i, value: new Uint8Array(200) }))]), Reason.MANIFEST_TOO_LARGE],
    ["signed by an unknown key", () => signRevocation(rec, stranger), Reason.REVOCATION_UNKNOWN_KEY],
    ["another key's signature under a trusted key id", () => encodeEnvelope(encodeRevocation(rec), key.keyId, stranger.sign(sha256(encodeRevocation(rec))), { magic: [0x58, 0x53, 0x52, 0x56] }), Reason.REVOCATION_BAD_SIGNATURE],
    ["malformed DER signature", () => encodeEnvelope(encodeRevocation(rec), key.keyId, new Uint8Array(70).fill(0x30), { magic: [0x58, 0x53, 0x52, 0x56] }), Reason.SIGNATURE_MALFORMED],
    ["envelope version 2", () => encodeEnvelope(encodeRevocation(rec), key.keyId, key.sign(sha256(encodeRevocation(rec))), { magic: [0x58, 0x53, 0x52, 0x56], version: 2 }), Reason.MANIFEST_UNSUPPORTED_VERSION],
    ["trailing bytes", () => Uint8Array.from([...signRevocation(rec, key), 0]), Reason.MANIFEST_TRAILING_BYTES],
    ["oversize envelope", () => new Uint8Array(MAX_REVOCATION_ENVELOPE_BYTES + 1), Reason.MANIFEST_TOO_LARGE],
    ["empty record", () => signRevocationBytes(new Uint8Array(0), key), Reason.MANIFEST_MALFORMED],
  ];
  for (const [name, make, want] of cases) {
    it(`${name} → ${reasonName(want)}`, () => expect(reasonName(reasonOf(make()))).toBe(reasonName(want)));
  }
  it("a record length field over the cap is MANIFEST_TOO_LARGE before anything is read", () => {
    const env = signRevocation(rec, key);
    env[6] = (MAX_REVOCATION_BYTES + 1) & 0xff;
    env[7] = (MAX_REVOCATION_BYTES + 1) >> 8;
    expect(reasonOf(env)).toBe(Reason.MANIFEST_TOO_LARGE);
  });
});

describe("domain separation from release manifests", () => {
  const m: ReleaseManifest = {
    hardwareId: "usr-n520",
    version: V("1.3.0+0"),
    securityCounter: 3,
    slot: 1,
    image: { length: 1000, sha256: H(0xaa) },
    payload: { kind: "full", length: 1000, sha256: H(0xaa), compression: "none" },
    fetch: { stream: "a.bin" },
    issuedAt: 1,
    expiresAt: 2,
    maxDownload: 2000,
  };
  it("a signed manifest envelope is not a revocation, and a revocation is not an offer", () => {
    expect(reasonOf(signManifest(m, key))).toBe(Reason.MANIFEST_BAD_MAGIC);
    const r = parseSignedManifest(signRevocation(rec, key), keyring, softwareDigest);
    expect(r.ok ? Reason.OK : r.reason).toBe(Reason.MANIFEST_BAD_MAGIC);
  });
  it("a validly signed manifest re-wrapped in the revocation envelope is refused by the record magic", () => {
    const env = signManifest(m, key);
    env.set([0x58, 0x53, 0x52, 0x56], 0); // the signature still verifies: it covers the body only
    expect(reasonOf(env)).toBe(Reason.MANIFEST_BAD_MAGIC);
  });
});

describe("forgeries and the tamper matrix over a signed envelope", () => {
  const env = signRevocation(rec, key, "why");
  it("flipping any one byte (xor 0x01, xor 0xff) at every position is refused", () => {
    const seen = new Set<string>();
    for (const mask of [0x01, 0xff]) {
      for (let i = 0; i < env.length; i++) {
        const t = Uint8Array.from(env);
        t[i] ^= mask;
        const r = parse(t);
        if (r.ok) throw new Error(`flip 0x${mask.toString(16)} at ${i} accepted`);
        seen.add(reasonName(r.reason));
      }
    }
    for (const want of ["MANIFEST_BAD_MAGIC", "MANIFEST_UNSUPPORTED_VERSION", "REVOCATION_BAD_SIGNATURE", "REVOCATION_UNKNOWN_KEY", "SIGNATURE_MALFORMED", "MANIFEST_TRUNCATED", "MANIFEST_TRAILING_BYTES"]) {
      expect([...seen]).toContain(want);
    }
  });
  it("every byte of the signed record mutated without re-signing → REVOCATION_BAD_SIGNATURE", () => {
    const body = decodeRevocationEnvelope(env).manifest;
    for (let i = 0; i < body.length; i++) {
      const t = Uint8Array.from(env);
      t[8 + i] ^= 0x01;
      expect(reasonOf(t)).toBe(Reason.REVOCATION_BAD_SIGNATURE);
    }
  });
  it("truncated at every length → refused", () => {
    for (let n = 0; n < env.length; n++) expect(reasonOf(env.subarray(0, n))).toBe(Reason.MANIFEST_TRUNCATED);
  });
  it("split at every point with a byte inserted between the halves → refused", () => {
    for (let i = 0; i <= env.length; i++) {
      const t = Uint8Array.from([...env.subarray(0, i), 0x00, ...env.subarray(i)]);
      expect(parse(t).ok, `insert at ${i}`).toBe(false);
    }
  });
  it("split at every point and the halves swapped → refused", () => {
    for (let i = 1; i < env.length; i++) {
      const t = Uint8Array.from([...env.subarray(i), ...env.subarray(0, i)]);
      expect(parse(t).ok, `rotate at ${i}`).toBe(false);
    }
  });
});

describe("random input never throws", () => {
  it("parseSignedRevocation returns a refusal for random bytes, with and without the magics", () => {
    const rnd = lcg(11);
    for (let i = 0; i < 2000; i++) {
      const len = rnd() * 5;
      const tail = Array.from({ length: len }, rnd);
      const forms = [Uint8Array.from(tail), Uint8Array.from([0x58, 0x53, 0x52, 0x56, 1, 1, len & 0xff, 0, ...tail])];
      for (const b of forms) {
        const r = parse(b);
        expect(r.ok).toBe(false);
      }
    }
  });
  it("decodeRevocation throws only OtaError for random bytes after the magic", () => {
    const rnd = lcg(5);
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from([0x58, 0x53, 0x52, 0x52, 1, ...Array.from({ length: rnd() * 2 }, rnd)]);
      try {
        decodeRevocation(b);
      } catch (e) {
        expect(isOtaError(e)).toBe(true);
      }
    }
  });
  it("decodeRevocationState throws only OtaError REVOCATION_MALFORMED for random bytes", () => {
    const rnd = lcg(9);
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from({ length: rnd() * 3 }, rnd);
      if (i % 2) b[0] = 1;
      try {
        decodeRevocationState(b);
      } catch (e) {
        expect(isOtaError(e, Reason.REVOCATION_MALFORMED)).toBe(true);
      }
    }
  });
});

describe("acceptRevocation: monotonic, per hardware id", () => {
  const next = { ...rec, sequence: rec.sequence + 1 };
  it("takes the first record and any greater sequence within the bounded step", () => {
    expect(acceptRevocation(undefined, rec, "usr-n520")).toBe(Reason.OK);
    expect(acceptRevocation(rec, next, "usr-n520")).toBe(Reason.OK);
    expect(acceptRevocation(rec, { ...rec, sequence: rec.sequence + MAX_SEQUENCE_STEP }, "usr-n520")).toBe(Reason.OK);
  });
  it("refuses a sequence more than MAX_SEQUENCE_STEP ahead with SEQUENCE_JUMP: 0xFFFFFFFF can no longer lock the sequence", () => {
    expect(acceptRevocation(rec, { ...rec, sequence: rec.sequence + MAX_SEQUENCE_STEP + 1 }, "usr-n520")).toBe(Reason.SEQUENCE_JUMP);
    expect(acceptRevocation(rec, { ...rec, sequence: 0xffffffff }, "usr-n520")).toBe(Reason.SEQUENCE_JUMP);
    expect(acceptRevocation(undefined, { ...rec, sequence: 0xffffffff }, "usr-n520")).toBe(Reason.SEQUENCE_JUMP);
  });
  it("a device stuck at 0xFFFFFFFF (an older firmware took it) takes records of the next epoch once the root's key set opens it", () => {
    const stuck = { ...rec, sequence: 0xffffffff };
    const fresh = { ...rec, sequence: 1, epoch: 1, minSecurityCounter: 9 };
    expect(acceptRevocation(stuck, fresh, "usr-n520", 0), "epoch 1 not authorised yet").toBe(Reason.SEQUENCE_JUMP);
    expect(acceptRevocation(stuck, fresh, "usr-n520", 1)).toBe(Reason.OK);
    expect(acceptRevocation(fresh, { ...stuck, epoch: 0 }, "usr-n520", 1), "the old epoch is over").toBe(Reason.REVOCATION_OLDER);
    expect(acceptRevocation(stuck, { ...fresh, sequence: MAX_SEQUENCE_STEP + 1 }, "usr-n520", 1), "a new epoch starts low").toBe(Reason.SEQUENCE_JUMP);
    expect(decodeRevocationState(encodeRevocationState(fresh))).toEqual(fresh);
    expect(encodeRevocationState(fresh)[0]).toBe(2);
  });
  it("refuses an older sequence with REVOCATION_OLDER", () => {
    expect(acceptRevocation(next, rec, "usr-n520")).toBe(Reason.REVOCATION_OLDER);
    expect(acceptRevocation({ ...rec, sequence: 1000 }, { ...rec, sequence: 999 }, "usr-n520")).toBe(Reason.REVOCATION_OLDER);
  });
  it("an identical re-send is harmless (OK, same content); the same sequence with other content is REVOCATION_OLDER", () => {
    const again = decodeRevocation(encodeRevocation(rec, "another note"));
    expect(acceptRevocation(rec, again, "usr-n520")).toBe(Reason.OK);
    expect(sameRevocation(rec, again)).toBe(true);
    expect(acceptRevocation(rec, { ...rec, blocked: [H(0xaa)] }, "usr-n520")).toBe(Reason.REVOCATION_OLDER);
    expect(acceptRevocation(rec, { ...rec, minSecurityCounter: 3 }, "usr-n520")).toBe(Reason.REVOCATION_OLDER);
    expect(sameRevocation(rec, next)).toBe(false);
  });
  it("refuses another hardware's record first, even when it is newer", () => {
    expect(acceptRevocation(undefined, { ...rec, hardwareId: "usr-g771" }, "usr-n520")).toBe(Reason.REVOCATION_WRONG_HARDWARE);
    expect(acceptRevocation(rec, { ...next, hardwareId: "usr-g771" }, "usr-n520")).toBe(Reason.REVOCATION_WRONG_HARDWARE);
  });
  it("throws TypeError for a hardware id that is not a string (misuse)", () => {
    expect(() => acceptRevocation(undefined, rec, undefined as unknown as string)).toThrow(TypeError);
  });
});

describe("checkRevoked: blocked hash, minimum version and counter at their boundaries", () => {
  const img = (version: string, securityCounter: number, imageSha256 = H(0x01)) => ({ version: V(version), securityCounter, imageSha256 });
  it("nothing held revokes nothing", () => {
    expect(checkRevoked(undefined, img("0.0.0+0", 0, H(0xaa)))).toBe(Reason.OK);
  });
  it("a blocked image hash is REVOKED whatever its version and counter", () => {
    expect(checkRevoked(rec, img("9.9.9+9", 99, H(0xaa)))).toBe(Reason.REVOKED);
    expect(checkRevoked(rec, img("9.9.9+9", 99, H(0xbb)))).toBe(Reason.REVOKED);
    expect(whyRevoked(rec, img("9.9.9+9", 99, H(0xbb)))).toBe("blocked");
    expect(checkRevoked(rec, img("9.9.9+9", 99, H(0xab)))).toBe(Reason.OK);
  });
  it("the minimum version is allowed, anything below it (build number included) is not", () => {
    const r = { ...rec, minVersion: V("1.2.0+5"), minSecurityCounter: 0 };
    expect(checkRevoked(r, img("1.2.0+5", 0))).toBe(Reason.OK);
    expect(checkRevoked(r, img("1.2.0+4", 0))).toBe(Reason.REVOKED);
    expect(whyRevoked(r, img("1.2.0+4", 0))).toBe("version");
    expect(checkRevoked(r, img("1.1.255+99", 0))).toBe(Reason.REVOKED);
    expect(checkRevoked(r, img("1.2.1+0", 0))).toBe(Reason.OK);
    expect(checkRevoked(r, img("0.255.65535+4294967295", 0))).toBe(Reason.REVOKED);
  });
  it("the minimum security counter is allowed, one below is not", () => {
    const r = { ...rec, minVersion: V("0.0.0+0"), minSecurityCounter: 7 };
    expect(checkRevoked(r, img("1.0.0+0", 7))).toBe(Reason.OK);
    expect(checkRevoked(r, img("1.0.0+0", 6))).toBe(Reason.REVOKED);
    expect(whyRevoked(r, img("1.0.0+0", 6))).toBe("counter");
    expect(checkRevoked(r, img("1.0.0+0", 0xffffffff))).toBe(Reason.OK);
  });
  it("throws RangeError for an image hash that is not 32 bytes (misuse)", () => {
    expect(() => checkRevoked(rec, { version: V("1.0.0"), securityCounter: 0, imageSha256: new Uint8Array(31) })).toThrow(RangeError);
  });
});

describe("persisted state: encodeRevocationState / decodeRevocationState", () => {
  it("round-trips and is at most 603 bytes for 16 hashes, a 64-byte hardware id and an epoch", () => {
    expect(decodeRevocationState(encodeRevocationState(rec))).toEqual(rec);
    const big: RevocationRecord = { ...rec, hardwareId: "h".repeat(64), minVersion: V("255.255.65535+4294967295"), minSecurityCounter: 0xffffffff, sequence: 0xffffffff, epoch: 0xffffffff, blocked: Array.from({ length: 16 }, (_, i) => H(i)) };
    const b = encodeRevocationState(big);
    expect(b.length).toBe(MAX_REVOCATION_STATE_BYTES);
    expect(b.length).toBeLessThanOrEqual(603);
    expect(decodeRevocationState(b)).toEqual(big);
    expect(encodeRevocationState({ ...rec, blocked: [] }).length).toBe(1 + 1 + 8 + 20 + 1);
  });
  it("the state of a parsed record equals the state of the record it was made from", () => {
    const r = parse(signRevocation(rec, key, "note is not stored"));
    expect(r.ok && toHex(encodeRevocationState(r.record))).toBe(toHex(encodeRevocationState(rec)));
  });
  const good = encodeRevocationState(rec);
  const corpus: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["format 2", Uint8Array.from([2, ...good.subarray(1)])],
    ["hardware id length 0", Uint8Array.from([1, 0, ...good.subarray(2)])],
    ["hardware id length 65", Uint8Array.from([1, 65, ...good.subarray(2)])],
    ["hardware id with a control character", (() => { const t = Uint8Array.from(good); t[2] = 0x09; return t; })()],
    ["sequence 0", (() => { const t = Uint8Array.from(good); t.set(u32(0), 2 + 8); return t; })()],
    ["17 hashes announced", (() => { const t = Uint8Array.from(good); t[2 + 8 + 20] = 17; return t; })()],
    ["count larger than the hashes present", (() => { const t = Uint8Array.from(good); t[2 + 8 + 20] = 3; return t; })()],
    ["a trailing byte", Uint8Array.from([...good, 0])],
    ["a hash stored twice", encodeRevocationStateUnchecked([H(1), H(1)])],
    ["over 603 bytes", new Uint8Array(MAX_REVOCATION_STATE_BYTES + 1).fill(1)],
  ];
  for (const [name, bytes] of corpus) {
    it(`${name} → REVOCATION_MALFORMED`, () => {
      let code: number | undefined;
      try {
        decodeRevocationState(bytes);
      } catch (e) {
        if (isOtaError(e)) code = e.code;
        else throw e;
      }
      expect(code).toBe(Reason.REVOCATION_MALFORMED);
    });
  }
  it("truncated at every length → REVOCATION_MALFORMED", () => {
    for (let n = 0; n < good.length; n++) expect(() => decodeRevocationState(good.subarray(0, n))).toThrow(/REVOCATION_MALFORMED/);
  });
  it("refuses to encode what no decoder would produce (RangeError)", () => {
    expect(() => encodeRevocationState({ ...rec, sequence: 0 })).toThrow(RangeError);
    expect(() => encodeRevocationState({ ...rec, hardwareId: "" })).toThrow(RangeError);
    expect(() => encodeRevocationState({ ...rec, blocked: Array.from({ length: 17 }, (_, i) => H(i)) })).toThrow(RangeError);
    expect(() => encodeRevocationState({ ...rec, blocked: [new Uint8Array(31)] })).toThrow(RangeError);
    expect(() => encodeRevocationState({ ...rec, minVersion: { major: 256, minor: 0, revision: 0, build: 0 } })).toThrow(RangeError);
  });
});

/** A state with arbitrary hashes, bypassing the encoder's checks (for the corrupt corpus). */
function encodeRevocationStateUnchecked(blocked: Uint8Array[]): Uint8Array {
  const head = encodeRevocationState({ ...rec, blocked: [] });
  head[head.length - 1] = blocked.length;
  return Uint8Array.from([...head, ...blocked.flatMap((h) => [...h])]);
}
