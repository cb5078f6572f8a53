/**
 * Settings: the encoding, the key id against OpenSSL's DER, the pending /
 * saved / active sets, and a power cut (clean and torn) at every mutating
 * flash operation of `AT+S`: afterwards the saved settings are exactly the
 * old set or the new set.
 */
import { createHash, createPublicKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { NorFlash, type NorGeometry } from "../../hal/mock/flash";
import { PowerCut, PowerRail, type CutMode } from "../../hal/mock/rail";
import { openStorage } from "../../src/store/layout";
import { keyId, p256Spki } from "../../src/store/keyid";
import {
  checkPassword,
  CLEAR_GATE,
  decodeSettings,
  decodeSettingsRecord,
  defaultSettings,
  encodeSettings,
  hashPassword,
  makeSalt,
  sameSettings,
  SETTINGS_MAX_ENCODED,
  SettingsManager,
  type Settings,
} from "../../src/store/settings";
import { SETTINGS_SPACE } from "../../src/store/layout";
import { toHex } from "../../src/util/bytes";
import { makeRig, testKey } from "../xs/entries/at";

const KiB = 1024;

function full(): Settings {
  const salt = makeSalt("dev", 1, 2);
  return defaultSettings("device-with-a-long-id-0123456789", {
    serverHost: "a".repeat(64),
    serverPort: 65535,
    tls: false,
    caFingerprint: new Uint8Array(32).fill(7),
    heartbeatEnabled: false,
    heartbeatIntervalS: 86400,
    trustedKeys: [testKey(1), testKey(2), testKey(3), testKey(4)],
    locked: true,
    password: { salt, hash: hashPassword("pw-1", salt) },
    minSupplyMv: 65535,
    window: { always: false, startMin: 1439, endMin: 0 },
  });
}

describe("settings encoding", () => {
  it("round-trips the defaults and a set with every field at its largest", () => {
    for (const s of [defaultSettings("x"), full()]) {
      const b = encodeSettings(s);
      expect(sameSettings(decodeSettings(b), s)).toBe(true);
      expect(b.length).toBeLessThanOrEqual(SETTINGS_MAX_ENCODED);
    }
    expect(encodeSettings(full()).length).toBe(SETTINGS_MAX_ENCODED);
    expect(SETTINGS_MAX_ENCODED).toBeLessThanOrEqual(SETTINGS_SPACE.maxValue);
  });
  it("decodes strictly: every truncation, trailing bytes, unknown format or flags are STORE_CORRUPT", () => {
    const b = encodeSettings(full());
    for (let n = 0; n < b.length; n++) expect(() => decodeSettings(b.subarray(0, n)), `length ${n}`).toThrow(/STORE_CORRUPT/);
    const longer = new Uint8Array(b.length + 1);
    longer.set(b);
    expect(() => decodeSettings(longer)).toThrow(/STORE_CORRUPT/);
    const v2 = b.slice();
    v2[0] = 3;
    expect(() => decodeSettings(v2)).toThrow(/STORE_CORRUPT/);
    const flags = b.slice();
    flags[1] |= 0x80;
    expect(() => decodeSettings(flags)).toThrow(/STORE_CORRUPT/);
    const gateFlags = b.slice();
    gateFlags[gateFlags.length - 1] = 2;
    expect(() => decodeSettings(gateFlags)).toThrow(/STORE_CORRUPT.*gate/);
    const interval = encodeSettings(defaultSettings("x")).slice();
    interval[4] = 5;
    interval[5] = 0;
    expect(() => decodeSettings(interval)).toThrow(/STORE_CORRUPT.*heartbeat/);
  });
  it("carries the unlock gate (format 2); a format 1 record (no gate) decodes with a clear gate", () => {
    const b = encodeSettings(full(), { failures: 2, lockedOut: true });
    expect(b[0]).toBe(2);
    expect(Array.from(b.subarray(b.length - 2))).toEqual([2, 1]);
    const r = decodeSettingsRecord(b);
    expect(r.gate).toEqual({ failures: 2, lockedOut: true });
    expect(sameSettings(r.settings, full())).toBe(true);
    const v1 = b.slice(0, b.length - 2);
    v1[0] = 1;
    const old = decodeSettingsRecord(v1);
    expect(old.gate).toEqual(CLEAR_GATE);
    expect(sameSettings(old.settings, full())).toBe(true);
    expect(() => encodeSettings(full(), { failures: 256, lockedOut: false })).toThrow(RangeError);
  });
  it("refuses invalid settings with errors that name the field", () => {
    expect(() => defaultSettings("bad id")).toThrow(/deviceId/);
    expect(() => defaultSettings("x", { serverPort: 0 })).toThrow(/serverPort/);
    expect(() => defaultSettings("x", { heartbeatIntervalS: 9 })).toThrow(/heartbeat/);
    expect(() => defaultSettings("x", { locked: true })).toThrow(/password/);
    expect(() => defaultSettings("x", { trustedKeys: [1, 2, 3, 4, 5].map((n) => testKey(n)) })).toThrow(/at most 4/);
    expect(() => defaultSettings("x", { window: { always: false, startMin: 5, endMin: 5 } })).toThrow(/differ/);
  });
  it("hashes passwords with a salt and compares them", () => {
    const salt = makeSalt("dev", 0, 0);
    const stored = { salt, hash: hashPassword("open sesame", salt) };
    expect(checkPassword("open sesame", stored)).toBe(true);
    expect(checkPassword("open sesamE", stored)).toBe(false);
    expect(toHex(makeSalt("dev", 0, 0))).not.toBe(toHex(makeSalt("dev2", 0, 0)));
  });
});

describe("key id", () => {
  it("is SHA-256 of the DER SubjectPublicKeyInfo, as OpenSSL encodes it (MCUboot's KEYHASH)", () => {
    for (const fill of [1, 2, 0x11, 0x7f]) {
      const point = testKey(fill);
      const jwk = {
        kty: "EC",
        crv: "P-256",
        x: Buffer.from(point.subarray(1, 33)).toString("base64url"),
        y: Buffer.from(point.subarray(33)).toString("base64url"),
      };
      const der = createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "der" });
      expect(toHex(p256Spki(point))).toBe(der.toString("hex"));
      expect(toHex(keyId(point))).toBe(createHash("sha256").update(der).digest("hex"));
    }
  });
});

describe("settings manager", () => {
  it("starts from defaults, keeps pending / saved / active apart, and factory-resets", () => {
    const flash = new NorFlash({ size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 });
    const m = new SettingsManager(openStorage(flash).settings, defaultSettings("d1"));
    expect(m.source).toBe("defaults");
    m.edit({ serverHost: "example.net" });
    expect(m.dirty).toBe(true);
    expect(() => m.edit({ serverPort: 70000 })).toThrow(RangeError);
    m.save();
    expect(m.dirty).toBe(false);
    const m2 = new SettingsManager(openStorage(flash).settings, defaultSettings("d1"));
    expect(m2.source).toBe("saved");
    expect(m2.active.serverHost).toBe("example.net");
    m2.factoryReset();
    expect(new SettingsManager(openStorage(flash).settings, defaultSettings("d1")).active.serverHost).toBe("127.0.0.1");
  });
  it("saves the unlock gate at once and keeps it through AT+S, saveNow and a factory reset", () => {
    const flash = new NorFlash({ size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 });
    const open = () => new SettingsManager(openStorage(flash).settings, defaultSettings("d1"));
    const m = open();
    expect(m.gate).toEqual(CLEAR_GATE);
    m.edit({ heartbeatIntervalS: 30 });
    m.saveGate({ failures: 2, lockedOut: false });
    expect(open().gate).toEqual({ failures: 2, lockedOut: false });
    expect(open().saved.heartbeatIntervalS, "saveGate does not save pending edits").toBe(60);
    m.save();
    expect(open().gate).toEqual({ failures: 2, lockedOut: false });
    m.saveNow({ minSupplyMv: 5 });
    expect(open().gate.failures).toBe(2);
    m.factoryReset();
    expect(open().gate.failures).toBe(2);
    m.saveNow({ minSupplyMv: 6 }, CLEAR_GATE);
    expect(open().gate).toEqual(CLEAR_GATE);
  });
  it("a power cut at any flash operation of an AT+UNLOCK attempt: still locked; the attempt is counted before anything else is written", () => {
    const g: NorGeometry = { size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 };
    const setUp = (seed: number) => {
      const chip = new NorFlash(g, new PowerRail({ seed }));
      const rig = makeRig({ chip });
      expect(rig.at("AT+LOCK=right-pass")).toBe("\r\n+OK=LOCKED\r\n");
      expect(rig.at("AT+UNLOCK=wrong-pass")).toBe("\r\n+ERR=-5,355\r\n");
      return { chip, rig };
    };
    const probe = setUp(1);
    const before = probe.chip.rail.operations;
    expect(probe.rig.at("AT+UNLOCK=wrong-pass")).toBe("\r\n+ERR=-5,355\r\n");
    const ops = probe.chip.rail.operations - before;
    expect(ops).toBeGreaterThanOrEqual(2); // the counter, then the audit entry
    let counted = 0;
    for (const mode of ["clean", "torn"] as const) {
      for (let k = 1; k <= ops; k++) {
        const { chip, rig } = setUp(200 + k);
        chip.rail.armCut(k, mode);
        expect(() => rig.at("AT+UNLOCK=wrong-pass"), `cut at op ${k}`).toThrow(PowerCut);
        chip.rail.restore();
        const after = makeRig({ chip }).settings;
        expect(after.saved.locked).toBe(true);
        expect([1, 2]).toContain(after.gate.failures);
        if (after.gate.failures === 2) counted++;
        if (k === ops) expect(after.gate.failures, `cut at the last op (${mode})`).toBe(2);
      }
    }
    // Cut at the last operation (the audit entry, after the password check): counted already.
    expect(counted).toBeGreaterThan(0);
  });
});

/** The console commands that build the new set before `AT+S`. */
const EDITS = ["AT+HEARTTM=30", "AT+OTASVR=ota.example.com,1883", "AT+HEARTEN=OFF", "AT+MINVOLT=3100", "AT+OTAWIN=01:00,03:00", "AT+KEYADD=" + toHex(testKey(9))];

/**
 * History before the interrupted AT+S: `saves` earlier saves (so the cut
 * also lands in rotations and reclaims), then the edits.
 */
function prepare(chip: NorFlash, saves: number): { rig: ReturnType<typeof makeRig>; oldSet: Settings; newSet: Settings } {
  const rig = makeRig({ chip });
  for (let i = 0; i < saves; i++) {
    rig.at(`AT+HEARTTM=${100 + i}`);
    rig.at("AT+S");
  }
  const oldSet = rig.settings.saved;
  for (const e of EDITS) expect(rig.at(e)).toMatch(/^\r\n\+OK=/);
  return { rig, oldSet, newSet: rig.settings.pending };
}

function cutDuringSave(g: NorGeometry, saves: number, mode: CutMode): number {
  const probe = new NorFlash(g, new PowerRail({ seed: 1 }));
  const p = prepare(probe, saves);
  const before = probe.rail.operations;
  expect(p.rig.at("AT+S")).toBe("\r\n+OK=saved; AT+Z applies\r\n");
  const ops = probe.rail.operations - before;
  for (let k = 1; k <= ops; k++) {
    const chip = new NorFlash(g, new PowerRail({ seed: 100 + k }));
    const { rig, oldSet, newSet } = prepare(chip, saves);
    chip.rail.armCut(k, mode);
    expect(() => rig.at("AT+S"), `cut at op ${k}`).toThrow(PowerCut);
    chip.rail.restore();
    const after = makeRig({ chip }).settings.active;
    const isOld = sameSettings(after, oldSet);
    const isNew = sameSettings(after, newSet);
    expect(isOld || isNew, `cut ${k}/${ops} (${mode}) after ${saves} saves: neither old nor new`).toBe(true);
  }
  return ops;
}

describe("power cut at every mutating flash operation during AT+S", () => {
  const small: NorGeometry = { size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 };
  const device: NorGeometry = { size: 384 * KiB, blockLength: 128 * KiB, writeAlign: 32 };
  for (const mode of ["clean", "torn"] as const) {
    it(`simulator storage (8 x 8 KiB, split), ${mode}, after 0..130 earlier saves (a block holds ~120: rotations included)`, () => {
      let maxOps = 0;
      for (const saves of [0, 1, 2, 10, 30, ...Array.from({ length: 16 }, (_, i) => 115 + i)]) maxOps = Math.max(maxOps, cutDuringSave(small, saves, mode));
      // Some AT+S rotated the settings region: more than one put plus its audit entries.
      expect(maxOps).toBeGreaterThan(4);
    });
    it(`device storage (3 x 128 KiB, shared), ${mode}`, () => {
      expect(cutDuringSave(device, 1, mode)).toBeGreaterThanOrEqual(2);
    });
  }
});
