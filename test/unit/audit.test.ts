/** The audit ring: encoding, wrap-around, bounded reads, remount, and power cuts during appends. */
import { describe, expect, it } from "vitest";
import { NorFlash } from "../../hal/mock/flash";
import { PowerCut, PowerRail } from "../../hal/mock/rail";
import { Reason } from "../../src/errors";
import { AUDIT_ENTRY_SIZE, AUDIT_READ_MAX, AuditEvent, AuditLog, decodeAuditEntry, encodeAuditEntry } from "../../src/store/audit";
import { AUDIT_ENTRY_MAX, openStorage } from "../../src/store/layout";

const KiB = 1024;
const geometry = { size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 };

describe("audit entries", () => {
  it("round-trip, including 48-bit uptimes and versions", () => {
    const e = {
      seq: 0xfffffffe,
      uptimeMs: 2 ** 48 - 1,
      unixS: 1_700_000_000,
      event: 0xffff,
      reason: Reason.ROLLED_BACK,
      from: { major: 1, minor: 2, revision: 3, build: 4 },
      to: { major: 255, minor: 255, revision: 65535, build: 0xffffffff },
    };
    const b = encodeAuditEntry(e);
    expect(b.length).toBe(AUDIT_ENTRY_SIZE);
    expect(AUDIT_ENTRY_SIZE).toBeLessThanOrEqual(AUDIT_ENTRY_MAX);
    expect(decodeAuditEntry(b)).toEqual(e);
    expect(() => encodeAuditEntry({ ...e, uptimeMs: 2 ** 48 })).toThrow(RangeError);
    expect(() => decodeAuditEntry(b.subarray(1))).toThrow(/STORE_CORRUPT/);
  });
});

describe("audit ring", () => {
  it("keeps the newest `capacity` entries across remounts", () => {
    const flash = new NorFlash(geometry);
    let log = new AuditLog(openStorage(flash).audit);
    const cap = log.capacity;
    expect(cap).toBe(63);
    for (let i = 0; i < cap * 3 + 5; i++) {
      log.append({ uptimeMs: i * 10, unixS: 0, event: AuditEvent.BOOT, reason: i % 7 });
      if (i % 20 === 0) log = new AuditLog(openStorage(flash).audit);
    }
    log = new AuditLog(openStorage(flash).audit);
    expect(log.count).toBe(cap * 3 + 5);
    expect(log.first).toBe(log.count - cap);
    expect(log.read(0, 16)).toEqual([]);
    const tail = log.read(log.first, 100);
    expect(tail.length).toBe(AUDIT_READ_MAX);
    expect(tail.map((e) => e.seq)).toEqual(Array.from({ length: 16 }, (_, i) => log.first + i));
    expect(log.read(log.count - 2, 5).map((e) => e.uptimeMs)).toEqual([(log.count - 2) * 10, (log.count - 1) * 10]);
    expect(() => log.read(-1, 1)).toThrow(RangeError);
  });
  it("a power cut during an append leaves the log with or without that entry", () => {
    const rail = new PowerRail({ seed: 3 });
    const flash = new NorFlash(geometry, rail);
    const storage = openStorage(flash);
    const log = new AuditLog(storage.audit);
    for (let i = 0; i < 40; i++) log.append({ uptimeMs: i, unixS: 0, event: 1, reason: 0 });
    for (const mode of ["clean", "torn"] as const) {
      for (let k = 1; k <= 3; k++) {
        const snapshot = flash.cells.slice();
        const l = new AuditLog(openStorage(flash).audit);
        const n = l.count;
        rail.armCut(k, mode);
        try {
          for (let j = 0; j < 40; j++) l.append({ uptimeMs: 1000 + j, unixS: 0, event: 2, reason: 0 });
        } catch (e) {
          if (!(e instanceof PowerCut)) throw e;
        }
        rail.restore();
        const after = new AuditLog(openStorage(flash).audit);
        expect(after.count).toBeGreaterThanOrEqual(n);
        const entries = after.read(Math.max(after.first, after.count - 16), 16);
        for (let j = 1; j < entries.length; j++) expect(entries[j].seq).toBe(entries[j - 1].seq + 1);
        flash.cells.set(snapshot);
      }
    }
  });
});
