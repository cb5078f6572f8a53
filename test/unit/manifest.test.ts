/**
 * The release manifest and its signed envelope: golden vectors, round trip,
 * the strict parser's refusals (each with its own reason code), the tamper
 * matrix over a signed envelope, and the image ↔ manifest binding.
 */
import { readFileSync } from "node:fs";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { isOtaError, Reason, reasonName, type ReasonCode } from "../../src/errors";
import { parseVersion } from "../../src/image/format";
import { imageSignatureChecker } from "../../src/image/signature";
import { verifyImage } from "../../src/image/verify";
import {
  checkImageAgainstManifest,
  decodeEnvelope,
  decodeManifest,
  Field,
  MAX_ENVELOPE_BYTES,
  MAX_MANIFEST_BYTES,
  parseSignedManifest,
} from "../../src/update/manifest";
import type { ReleaseManifest } from "../../src/update/types";
import { fromHex, toHex, utf8Encode } from "../../src/util/bytes";
import { signImage } from "../../tools/image/sign";
import { signerFromSecret } from "../../tools/keys/signer";
import { encodeEnvelope, encodeManifest, encodeRecords, manifestRecords, signManifest, signManifestBytes, type ManifestRecord } from "../../tools/release/encode";

const vectors = JSON.parse(readFileSync(new URL("../vectors/manifest-v1.json", import.meta.url), "utf8"));
const vecKey = signerFromSecret(fromHex(vectors.secretKey)!);

const key = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => 100 + i));
const stranger = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => 50 + i));
const keyring = createKeyring([key.publicKey, vecKey.publicKey], softwareDigest);

const H = (b: number) => new Uint8Array(32).fill(b);
const base: ReleaseManifest = {
  hardwareId: "usr-n520",
  version: parseVersion("1.3.0+7"),
  securityCounter: 3,
  slot: 1,
  image: { length: 200_000, sha256: H(0xaa) },
  payload: { kind: "full", length: 200_000, sha256: H(0xaa), compression: "none" },
  fetch: { stream: "app-1.3.0.bin", url: "https://updates.example.com/app-1.3.0.bin" },
  issuedAt: 1_800_000_000,
  expiresAt: 1_800_000_000 + 30 * 86400,
  maxDownload: 400_000,
};
const deltaManifest: ReleaseManifest = {
  ...base,
  payload: { kind: "delta", length: 9_000, sha256: H(0xbb), baseSha256: H(0xcc), compression: "none" },
  fetch: { stream: "app-1.2.0-to-1.3.0.patch" },
};

function parse(envelope: Uint8Array) {
  return parseSignedManifest(envelope, keyring, softwareDigest);
}
function reasonOf(envelope: Uint8Array): ReasonCode {
  const r = parse(envelope);
  return r.ok ? Reason.OK : r.reason;
}
/** Re-sign raw records with a trusted key: what a buggy or hostile release tool with the key could publish. */
function signedRecords(records: ManifestRecord[], header?: Parameters<typeof encodeRecords>[1]): Uint8Array {
  return signManifestBytes(encodeRecords(records, header), key);
}
function replace(records: ManifestRecord[], type: number, value: Uint8Array | undefined): ManifestRecord[] {
  return records.flatMap((r) => (r.type !== type ? [r] : value === undefined ? [] : [{ type, value }]));
}

describe("golden vectors (docs/formats.md)", () => {
  for (const c of vectors.cases) {
    it(`${c.name}: encoder output, decoder result and signed envelope are pinned`, () => {
      const m = decodeManifest(fromHex(c.manifestHex)!);
      expect(m.hardwareId).toBe(c.manifest.hardwareId);
      expect(m.version).toEqual(c.manifest.version);
      expect(toHex(m.image.sha256)).toBe(c.manifest.image.sha256);
      expect(m.payload.kind).toBe(c.manifest.payload.kind);
      expect(m.payload.baseSha256 && toHex(m.payload.baseSha256)).toBe(c.manifest.payload.baseSha256);
      expect(m.fetch).toEqual(c.manifest.fetch);
      expect(toHex(encodeManifest(m, c.note ?? undefined))).toBe(c.manifestHex);
      expect(toHex(signManifestBytes(fromHex(c.manifestHex)!, vecKey))).toBe(c.envelopeHex);
      const r = parse(fromHex(c.envelopeHex)!);
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(toHex(r.accepted.releaseId)).toBe(toHex(sha256(fromHex(c.manifestHex)!)));
        expect(toHex(r.accepted.keyId)).toBe(vectors.keyId);
      }
    });
  }
});

describe("round trip", () => {
  it("full and delta manifests decode to what was encoded, with release id and key id", () => {
    for (const m of [base, deltaManifest]) {
      const env = signManifest(m, key, "notes are skipped");
      const r = parse(env);
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      expect(r.accepted.manifest).toEqual(m);
      expect(r.accepted.keyId).toEqual(key.keyId);
      expect(r.accepted.releaseId).toEqual(sha256(decodeEnvelope(env).manifest));
      expect(Object.isFrozen(r.accepted.manifest)).toBe(true);
    }
  });

  it("fields in any order are accepted; unknown non-critical fields are skipped", () => {
    const recs = manifestRecords(base).reverse();
    recs.splice(3, 0, { type: 0x33, value: utf8Encode("future, not critical") });
    const r = parse(signedRecords(recs));
    expect(r.ok && r.accepted.manifest).toEqual(base);
  });

  it("a stream-only or url-only fetch is fine; neither is MANIFEST_MISSING_FIELD", () => {
    const recs = manifestRecords(base);
    expect(reasonOf(signedRecords(replace(recs, Field.FETCH_URL, undefined)))).toBe(Reason.OK);
    expect(reasonOf(signedRecords(replace(recs, Field.FETCH_STREAM, undefined)))).toBe(Reason.OK);
    expect(reasonOf(signedRecords(replace(replace(recs, Field.FETCH_STREAM, undefined), Field.FETCH_URL, undefined)))).toBe(Reason.MANIFEST_MISSING_FIELD);
  });
});

describe("strict parsing: each defect has its own reason code", () => {
  const recs = manifestRecords(base);
  const u32 = (n: number) => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  const cases: [string, () => Uint8Array, ReasonCode][] = [
    ["unknown critical field", () => signedRecords([...recs, { type: 0xc0, value: Uint8Array.of(1) }]), Reason.MANIFEST_UNKNOWN_CRITICAL],
    ["duplicate field", () => signedRecords([...recs, recs[1]]), Reason.MANIFEST_DUPLICATE_FIELD],
    ["u32 field of 3 bytes (wrong type)", () => signedRecords(replace(recs, Field.SECURITY_COUNTER, Uint8Array.of(1, 2, 3))), Reason.MANIFEST_WRONG_TYPE],
    ["hash of 31 bytes (wrong type)", () => signedRecords(replace(recs, Field.IMAGE_SHA256, new Uint8Array(31))), Reason.MANIFEST_WRONG_TYPE],
    ["version of 4 bytes (wrong type)", () => signedRecords(replace(recs, Field.VERSION, Uint8Array.of(1, 2, 3, 4))), Reason.MANIFEST_WRONG_TYPE],
    ["hardware id not UTF-8 (wrong type)", () => signedRecords(replace(recs, Field.HARDWARE_ID, Uint8Array.of(0xc3, 0x28))), Reason.MANIFEST_WRONG_TYPE],
    ["hardware id of 65 bytes", () => signedRecords(replace(recs, Field.HARDWARE_ID, utf8Encode("x".repeat(65)))), Reason.MANIFEST_FIELD_TOO_LONG],
    ["url of 513 bytes", () => signedRecords(replace(recs, Field.FETCH_URL, utf8Encode("https://e.com/" + "a".repeat(499)))), Reason.MANIFEST_FIELD_TOO_LONG],
    ["stream id with a path", () => signedRecords(replace(recs, Field.FETCH_STREAM, utf8Encode("../etc/passwd"))), Reason.MANIFEST_BAD_VALUE],
    ["hardware id with a space", () => signedRecords(replace(recs, Field.HARDWARE_ID, utf8Encode("usr n520"))), Reason.MANIFEST_BAD_VALUE],
    ["empty hardware id", () => signedRecords(replace(recs, Field.HARDWARE_ID, new Uint8Array(0))), Reason.MANIFEST_BAD_VALUE],
    ["slot 2", () => signedRecords(replace(recs, Field.SLOT, Uint8Array.of(2))), Reason.MANIFEST_BAD_VALUE],
    ["payload kind 2", () => signedRecords(replace(recs, Field.PAYLOAD_KIND, Uint8Array.of(2))), Reason.MANIFEST_BAD_VALUE],
    ["ftp url", () => signedRecords(replace(recs, Field.FETCH_URL, utf8Encode("ftp://e.com/x"))), Reason.MANIFEST_BAD_VALUE],
    ["missing version", () => signedRecords(replace(recs, Field.VERSION, undefined)), Reason.MANIFEST_MISSING_FIELD],
    ["delta without base", () => signedRecords(replace(manifestRecords(deltaManifest), Field.BASE_SHA256, undefined)), Reason.MANIFEST_MISSING_FIELD],
    ["full with a base", () => signedRecords([...recs, { type: Field.BASE_SHA256, value: H(1) }]), Reason.MANIFEST_INCONSISTENT],
    ["full whose payload hash is not the image's", () => signedRecords(replace(recs, Field.PAYLOAD_SHA256, H(1))), Reason.MANIFEST_INCONSISTENT],
    ["expires before issued", () => signedRecords(replace(recs, Field.EXPIRES_AT, u32(base.issuedAt))), Reason.MANIFEST_INCONSISTENT],
    ["bad manifest magic", () => signedRecords(recs, { magic: [0x58, 0x53, 0x52, 0x4e] }), Reason.MANIFEST_BAD_MAGIC],
    ["manifest format 2", () => signedRecords(recs, { format: 2 }), Reason.MANIFEST_UNSUPPORTED_VERSION],
    ["record running past the end", () => signManifestBytes(encodeRecords(recs).subarray(0, 40), key), Reason.MANIFEST_TRUNCATED],
    ["manifest over 1024 bytes", () => signedRecords([...recs, ...Array.from({ length: 5 }, (_, i) => ({ type: 0x10 + i, value: new Uint8Array(200) }))]), Reason.MANIFEST_TOO_LARGE],
    ["more than 48 records", () => signedRecords([...recs, ...Array.from({ length: 40 }, (_, i) => ({ type: 0x10 + i, value: new Uint8Array(0) }))]), Reason.MANIFEST_MALFORMED],
    ["signed by an unknown key", () => signManifest(base, stranger), Reason.MANIFEST_UNKNOWN_KEY],
    ["another key's signature under a trusted key id", () => encodeEnvelope(encodeManifest(base), key.keyId, stranger.sign(sha256(encodeManifest(base)))), Reason.MANIFEST_BAD_SIGNATURE],
    ["malformed DER signature", () => encodeEnvelope(encodeManifest(base), key.keyId, new Uint8Array(70).fill(0x30)), Reason.SIGNATURE_MALFORMED],
    ["signature length byte below 8", () => encodeEnvelope(encodeManifest(base), key.keyId, new Uint8Array(7)), Reason.SIGNATURE_MALFORMED],
    ["envelope magic", () => encodeEnvelope(encodeManifest(base), key.keyId, key.sign(sha256(encodeManifest(base))), { magic: [1, 2, 3, 4] }), Reason.MANIFEST_BAD_MAGIC],
    ["envelope version 2", () => encodeEnvelope(encodeManifest(base), key.keyId, key.sign(sha256(encodeManifest(base))), { version: 2 }), Reason.MANIFEST_UNSUPPORTED_VERSION],
    ["signature algorithm 2", () => encodeEnvelope(encodeManifest(base), key.keyId, key.sign(sha256(encodeManifest(base))), { algorithm: 2 }), Reason.MANIFEST_UNSUPPORTED_VERSION],
    ["trailing bytes", () => Uint8Array.from([...signManifest(base, key), 0]), Reason.MANIFEST_TRAILING_BYTES],
    ["oversize envelope", () => new Uint8Array(MAX_ENVELOPE_BYTES + 1), Reason.MANIFEST_TOO_LARGE],
    ["empty manifest", () => encodeEnvelope(new Uint8Array(0), key.keyId, key.sign(sha256(new Uint8Array(0)))), Reason.MANIFEST_MALFORMED],
  ];
  for (const [name, make, want] of cases) {
    it(`${name} → ${reasonName(want)}`, () => expect(reasonName(reasonOf(make()))).toBe(reasonName(want)));
  }

  it("a manifest length field over the cap is MANIFEST_TOO_LARGE before anything is read", () => {
    const env = signManifest(base, key);
    env[6] = (MAX_MANIFEST_BYTES + 1) & 0xff;
    env[7] = (MAX_MANIFEST_BYTES + 1) >> 8;
    expect(reasonOf(env)).toBe(Reason.MANIFEST_TOO_LARGE);
  });

  it("decodeManifest throws OtaError (never another error) for random bytes after the magic", () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let i = 0; i < 500; i++) {
      const b = Uint8Array.from([0x58, 0x53, 0x52, 0x4d, 1, ...Array.from({ length: rnd() * 2 }, rnd)]);
      try {
        decodeManifest(b);
      } catch (e) {
        expect(isOtaError(e)).toBe(true);
      }
    }
  });
});

describe("tamper matrix over a signed envelope", () => {
  const env = signManifest(deltaManifest, key, "release notes");
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
    for (const want of ["MANIFEST_BAD_MAGIC", "MANIFEST_UNSUPPORTED_VERSION", "MANIFEST_BAD_SIGNATURE", "MANIFEST_UNKNOWN_KEY", "SIGNATURE_MALFORMED", "MANIFEST_TRUNCATED", "MANIFEST_TRAILING_BYTES"]) {
      expect([...seen]).toContain(want);
    }
  });

  it("every field mutated (each byte of each value) without re-signing → MANIFEST_BAD_SIGNATURE", () => {
    const bytes = decodeEnvelope(env).manifest;
    let off = 5;
    let fields = 0;
    while (off < bytes.length) {
      const len = bytes[off + 1] | (bytes[off + 2] << 8);
      for (let i = off + 3; i < off + 3 + len; i++) {
        const t = Uint8Array.from(env);
        t[8 + i] ^= 0x01;
        expect(reasonOf(t)).toBe(Reason.MANIFEST_BAD_SIGNATURE);
      }
      off += 3 + len;
      fields++;
    }
    expect(fields).toBe(manifestRecords(deltaManifest, "x").length);
  });

  it("truncated at every length → refused (MANIFEST_TRUNCATED, or the magic check for the first bytes)", () => {
    for (let n = 0; n < env.length; n++) {
      const code = reasonOf(env.subarray(0, n));
      expect(code).not.toBe(Reason.OK);
      expect([Reason.MANIFEST_TRUNCATED]).toContain(code);
    }
  });
});

describe("the image in the slot must be the one the manifest names", () => {
  const image = signImage({ input: Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff), padHeader: true, version: parseVersion("1.3.0+7"), securityCounter: 3, signer: key });
  const slot = new NorFlash({ size: 8192, blockLength: 4096, writeAlign: 4 });
  slot.eraseBlock(0);
  slot.eraseBlock(1);
  const padded = new Uint8Array(Math.ceil(image.length / 4) * 4).fill(0xff);
  padded.set(image);
  slot.write(padded, 0);
  const r = verifyImage(slot, { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
  const m: ReleaseManifest = { ...base, image: { length: image.length, sha256: sha256(image) }, payload: { ...base.payload, length: image.length, sha256: sha256(image) } };

  it("matches: OK", () => {
    expect(r.ok).toBe(true);
    if (r.ok) expect(checkImageAgainstManifest(slot, r.info, m, softwareDigest)).toBe(Reason.OK);
  });
  it("another length, hash, version or security counter → MANIFEST_IMAGE_MISMATCH", () => {
    if (!r.ok) throw new Error("image did not verify");
    for (const bad of [
      { ...m, image: { ...m.image, length: image.length + 1 } },
      { ...m, image: { ...m.image, sha256: H(0) } },
      { ...m, version: parseVersion("1.3.0+8") },
      { ...m, securityCounter: 4 },
    ]) {
      expect(checkImageAgainstManifest(slot, r.info, bad, softwareDigest)).toBe(Reason.MANIFEST_IMAGE_MISMATCH);
    }
  });
});
