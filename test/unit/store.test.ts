/**
 * The power-safe record store: basic behaviour on several geometries, a
 * power cut (clean and torn) at every mutating flash operation of a workload
 * that rotates and reclaims blocks, a second cut during the repair, bit-rot
 * fallback, foreign regions, and the layout plans.
 */
import { describe, expect, it } from "vitest";
import { NorFlash, type NorGeometry } from "../../hal/mock/flash";
import { PowerCut, PowerRail, type CutMode } from "../../hal/mock/rail";
import { Prng } from "../../hal/mock/prng";
import { isOtaError, Reason } from "../../src/errors";
import { crc32 } from "../../src/util/crc32";
import { openStorage, planStorage } from "../../src/store/layout";
import { RecordStore, type SpaceSpec } from "../../src/store/records";
import { FlashWindow } from "../../src/store/window";
import { utf8Encode } from "../../src/util/bytes";

const KiB = 1024;

const spaces: SpaceSpec[] = [
  { name: "a", tag: 1, keys: 1, maxValue: 200, copies: 2 },
  { name: "b", tag: 2, keys: 3, maxValue: 60, copies: 1 },
];

function chip(g: NorGeometry, rail = new PowerRail({ seed: 7 })): NorFlash {
  return new NorFlash(g, rail);
}

function value(tag: number, key: number, n: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (tag * 31 + key * 17 + n * 7 + i) & 0xff;
  return out;
}

/** A workload of puts: [tag, key, value]. Long enough to rotate several times. */
function workload(puts: number, maxA: number, maxB: number, seed = 3): [number, number, Uint8Array][] {
  const prng = new Prng(seed);
  const out: [number, number, Uint8Array][] = [];
  for (let n = 0; n < puts; n++) {
    if (prng.below(4) === 0) out.push([1, 0, value(1, 0, n, 1 + prng.below(maxA))]);
    else {
      const key = prng.below(3);
      out.push([2, key, value(2, key, n, prng.below(maxB + 1))]);
    }
  }
  return out;
}

function hex(b: Uint8Array | undefined): string | undefined {
  return b === undefined ? undefined : Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

describe("crc32", () => {
  it("matches the IEEE check value", () => {
    expect(crc32(utf8Encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

const geometries: [string, NorGeometry][] = [
  ["2 x 4 KiB, 32-byte unit", { size: 8 * KiB, blockLength: 4 * KiB, writeAlign: 32 }],
  ["3 x 4 KiB, 8-byte unit, erase 0x00", { size: 12 * KiB, blockLength: 4 * KiB, writeAlign: 8, eraseValue: 0x00 }],
  ["2 x 128 KiB, 32-byte unit", { size: 256 * KiB, blockLength: 128 * KiB, writeAlign: 32 }],
  ["4 x 2 KiB, 256-byte unit", { size: 8 * KiB, blockLength: 2 * KiB, writeAlign: 256 }],
];

describe("record store basics", () => {
  for (const [name, g] of geometries) {
    it(`puts, gets and survives remounts (${name})`, () => {
      const flash = chip(g);
      const small: SpaceSpec[] = g.writeAlign === 256 ? [{ name: "b", tag: 2, keys: 2, maxValue: 60, copies: 1 }] : spaces;
      let store = RecordStore.open(flash, { storeId: 9, spaces: small });
      const model = new Map<string, string | undefined>();
      const work = workload(600, 200, 60).filter(([tag, key]) => small.some((s) => s.tag === tag && key < s.keys));
      for (let i = 0; i < work.length; i++) {
        const [tag, key, v] = work[i];
        store.space(tag).put(key, v);
        model.set(`${tag}/${key}`, hex(v));
        if (i % 97 === 0) store = RecordStore.open(flash, { storeId: 9, spaces: small });
      }
      expect(store.stats.rotations + 0).toBeGreaterThanOrEqual(0);
      const reopened = RecordStore.open(flash, { storeId: 9, spaces: small });
      for (const [k, v] of model) {
        const [tag, key] = k.split("/").map(Number);
        expect(hex(reopened.space(tag).get(key)), k).toBe(v);
      }
      // The workload rotated: more bytes were appended than one block holds (128 KiB: not every time).
      if (g.blockLength <= 4 * KiB) expect(flash.stats.erases).toBeGreaterThan(0);
    });
  }

  it("returns undefined for keys never put and checks its arguments", () => {
    const store = RecordStore.open(chip(geometries[0][1]), { storeId: 1, spaces });
    expect(store.space(2).get(1)).toBeUndefined();
    expect(() => store.space(2).get(3)).toThrow(RangeError);
    expect(() => store.space(5)).toThrow(RangeError);
    expect(() => store.space(2).put(0, new Uint8Array(61))).toThrow(/STORE_TOO_LARGE/);
    expect(() => store.space(2).put(0, [1, 2] as unknown as Uint8Array)).toThrow(TypeError);
  });

  it("refuses geometries that cannot hold the live set", () => {
    const one = chip({ size: 4 * KiB, blockLength: 4 * KiB, writeAlign: 32 });
    expect(() => RecordStore.open(one, { storeId: 1, spaces })).toThrow(/STORE_GEOMETRY/);
    const big: SpaceSpec[] = [{ name: "x", tag: 1, keys: 100, maxValue: 60, copies: 2 }];
    expect(() => RecordStore.open(chip(geometries[0][1]), { storeId: 1, spaces: big })).toThrow(/STORE_GEOMETRY/);
  });

  it("falls back to the previous copy when the newest is corrupted (copies: 2)", () => {
    const flash = chip(geometries[0][1]);
    const store = RecordStore.open(flash, { storeId: 1, spaces });
    store.space(1).put(0, utf8Encode("old settings"));
    store.space(1).put(0, utf8Encode("new settings"));
    // Flip a bit inside the newest record's value.
    const text = Array.from(flash.cells, (c) => String.fromCharCode(c)).join("");
    const at = text.lastIndexOf("new settings");
    flash.cells[at] ^= 0x01;
    const again = RecordStore.open(flash, { storeId: 1, spaces });
    expect(new TextDecoder().decode(again.space(1).get(0))).toBe("old settings");
  });

  it("reformats a region written by another store id", () => {
    const flash = chip(geometries[0][1]);
    RecordStore.open(flash, { storeId: 1, spaces }).space(2).put(0, utf8Encode("x"));
    const other = RecordStore.open(flash, { storeId: 2, spaces });
    expect(other.space(2).get(0)).toBeUndefined();
  });

  it("works through a FlashWindow without touching blocks outside it", () => {
    const flash = chip({ size: 16 * KiB, blockLength: 4 * KiB, writeAlign: 32 });
    const store = RecordStore.open(new FlashWindow(flash, 1, 2), { storeId: 1, spaces });
    for (let i = 0; i < 200; i++) store.space(2).put(i % 3, value(2, i % 3, i, 60));
    expect(flash.wear[0]).toBe(0);
    expect(flash.wear[3]).toBe(0);
    expect(Array.from(flash.cells.subarray(0, 4 * KiB)).every((c) => c === 0xff)).toBe(true);
  });

  it("states its write amplification: a 32-byte journal record in 128 KiB blocks", () => {
    const flash = chip({ size: 256 * KiB, blockLength: 128 * KiB, writeAlign: 32 });
    const journal: SpaceSpec[] = [{ name: "j", tag: 2, keys: 4, maxValue: 16, copies: 1 }];
    const store = RecordStore.open(flash, { storeId: 1, spaces: journal });
    const erasesBefore = flash.stats.erases;
    const puts = 20000;
    for (let i = 0; i < puts; i++) store.space(2).put(0, value(2, 0, i, 16));
    const erases = flash.stats.erases - erasesBefore;
    const wa = (store.stats.bytesAppended + store.stats.bytesCopied) / store.stats.bytesAppended;
    console.log(`[store] ${puts} puts of 16 B: ${erases} erases of 128 KiB, write amplification ${wa.toFixed(4)}`);
    expect(erases).toBeLessThanOrEqual(Math.ceil(puts / ((128 * KiB - 32) / 32)) + 1);
    expect(wa).toBeLessThan(1.01);
  });
});

interface CampaignResult {
  cuts: number;
  repairsWithErase: number;
}

/**
 * Run `work` with a power cut at mutating operation k (every k), then remount
 * and check: the interrupted key reads old or new, every other key exactly
 * its value; the store then accepts more puts and reads them back.
 */
function campaign(g: NorGeometry, mode: CutMode, work: [number, number, Uint8Array][], wholeUnits = false, secondCut = false): CampaignResult {
  // Count the operations of an uninterrupted run.
  const probeRail = new PowerRail({ seed: 1 });
  const probe = chip(g, probeRail);
  const s0 = RecordStore.open(probe, { storeId: 5, spaces });
  const opsAfterFormat = probeRail.operations;
  for (const [tag, key, v] of work) s0.space(tag).put(key, v);
  const total = probeRail.operations - opsAfterFormat;
  let repairsWithErase = 0;
  for (let k = 1; k <= total; k++) {
    const rail = new PowerRail({ seed: 1000 + k });
    const flash = chip(g, rail);
    flash.tornWholeUnits = wholeUnits;
    const store = RecordStore.open(flash, { storeId: 5, spaces });
    const model = new Map<string, Uint8Array | undefined>();
    rail.armCut(k, mode);
    let cutAt = -1;
    for (let i = 0; i < work.length; i++) {
      const [tag, key, v] = work[i];
      try {
        store.space(tag).put(key, v);
      } catch (e) {
        if (!(e instanceof PowerCut)) throw e;
        cutAt = i;
        break;
      }
      model.set(`${tag}/${key}`, v);
    }
    expect(cutAt, `cut ${k} happened`).toBeGreaterThanOrEqual(0);
    rail.restore();
    if (secondCut) {
      // A second cut somewhere in the repairing mount or the next put.
      rail.armCut(1 + (k % 5), mode);
      try {
        const s = RecordStore.open(flash, { storeId: 5, spaces });
        // Re-put a value the key already has (the model stays right whether this completes or not).
        const same = model.get("2/0");
        if (same && !(work[cutAt][0] === 2 && work[cutAt][1] === 0)) s.space(2).put(0, same);
      } catch (e) {
        if (!(e instanceof PowerCut)) throw e;
      }
      rail.restore();
      rail.disarm(); // the second cut may not have been reached
    }
    const erasesBefore = flash.stats.erases;
    const after = RecordStore.open(flash, { storeId: 5, spaces });
    if (flash.stats.erases > erasesBefore) repairsWithErase++;
    const [ctag, ckey, cval] = work[cutAt];
    for (const s of spaces) {
      for (let key = 0; key < s.keys; key++) {
        const name = `${s.tag}/${key}`;
        const got = hex(after.space(s.tag).get(key));
        if (s.tag === ctag && key === ckey) {
          expect([hex(model.get(name)), hex(cval)], `cut ${k} (${mode}) during put ${cutAt}: ${name}`).toContain(got);
        } else {
          expect(got, `cut ${k} (${mode}) during put ${cutAt}: ${name}`).toBe(hex(model.get(name)));
        }
      }
    }
    // Still usable: more puts, then a clean remount reads them.
    for (let i = 0; i < 40; i++) after.space(2).put(i % 3, value(2, i % 3, 9000 + i, 50));
    const last = RecordStore.open(flash, { storeId: 5, spaces });
    for (let key = 0; key < 3; key++) expect(hex(last.space(2).get(key))).toBe(hex(value(2, key, 9000 + 39 - ((39 - key) % 3), 50)));
  }
  return { cuts: total, repairsWithErase };
}

describe("record store: power cut at every mutating flash operation", () => {
  const small: NorGeometry = { size: 8 * KiB, blockLength: 4 * KiB, writeAlign: 32 };
  const three: NorGeometry = { size: 12 * KiB, blockLength: 4 * KiB, writeAlign: 32, eraseValue: 0x00 };
  const work = workload(160, 200, 60, 11);
  for (const mode of ["clean", "torn"] as const) {
    it(`2 x 4 KiB blocks, ${mode}`, () => {
      const r = campaign(small, mode, work);
      console.log(`[store] 2 x 4 KiB ${mode}: ${r.cuts} cut points, ${r.repairsWithErase} repairs erased a block`);
      expect(r.cuts).toBeGreaterThan(160);
      if (mode === "torn") expect(r.repairsWithErase).toBeGreaterThan(0);
    });
    it(`3 x 4 KiB blocks, erase value 0x00, ${mode}`, () => {
      campaign(three, mode, work);
    });
    it(`2 x 4 KiB blocks, ${mode}, then a second cut during the repair`, () => {
      campaign(small, mode, work.slice(0, 100), false, true);
    });
  }
  it("2 x 4 KiB blocks, torn in whole write units", () => {
    campaign(small, "torn", work, true);
  });
  it("2 x 128 KiB blocks, clean and torn (large records force rotations)", () => {
    const big: NorGeometry = { size: 256 * KiB, blockLength: 128 * KiB, writeAlign: 32 };
    // 200-byte values (224-byte records) and 60-byte ones: ~280 KiB appended, two rotations.
    const many: [number, number, Uint8Array][] = [];
    for (let n = 0; n < 1400; n++) many.push(n % 4 !== 0 ? [1, 0, value(1, 0, n, 200)] : [2, n % 3, value(2, n % 3, n, 60)]);
    // Cutting at all ~700 operations with 128 KiB scans is slow; cut at a stride plus every rotation neighbourhood.
    const r = campaignSampled(big, many);
    expect(r).toBeGreaterThan(20);
  });
});

/** Like `campaign`, for large blocks: cut at every 17th operation and at every operation near an erase. */
function campaignSampled(g: NorGeometry, work: [number, number, Uint8Array][]): number {
  const probeRail = new PowerRail({ seed: 1 });
  const probe = chip(g, probeRail);
  const s0 = RecordStore.open(probe, { storeId: 5, spaces });
  const base = probeRail.operations;
  const erasesAt: number[] = [];
  let lastErases = probe.stats.erases;
  for (const [tag, key, v] of work) {
    s0.space(tag).put(key, v);
    if (probe.stats.erases > lastErases) erasesAt.push(probeRail.operations - base);
    lastErases = probe.stats.erases;
  }
  const total = probeRail.operations - base;
  expect(erasesAt.length).toBeGreaterThan(0);
  const points = new Set<number>();
  for (let k = 1; k <= total; k += 61) points.add(k);
  for (const e of erasesAt) for (let d = -12; d <= 2; d++) if (e + d >= 1 && e + d <= total) points.add(e + d);
  let n = 0;
  for (const mode of ["clean", "torn"] as const) {
    for (const k of points) {
      const rail = new PowerRail({ seed: k });
      const flash = chip(g, rail);
      const store = RecordStore.open(flash, { storeId: 5, spaces });
      const model = new Map<string, Uint8Array>();
      rail.armCut(k, mode);
      let cutAt = -1;
      for (let i = 0; i < work.length; i++) {
        try {
          store.space(work[i][0]).put(work[i][1], work[i][2]);
        } catch (e) {
          if (!(e instanceof PowerCut)) throw e;
          cutAt = i;
          break;
        }
        model.set(`${work[i][0]}/${work[i][1]}`, work[i][2]);
      }
      rail.restore();
      const after = RecordStore.open(flash, { storeId: 5, spaces });
      for (const s of spaces) {
        for (let key = 0; key < s.keys; key++) {
          const name = `${s.tag}/${key}`;
          const got = hex(after.space(s.tag).get(key));
          const interrupted = work[cutAt][0] === s.tag && work[cutAt][1] === key;
          if (interrupted) expect([hex(model.get(name)), hex(work[cutAt][2])]).toContain(got);
          else expect(got, `cut ${k} ${mode}: ${name}`).toBe(hex(model.get(name)));
        }
      }
      n++;
    }
  }
  return n;
}

// (16 KiB - 32-byte header) / 2 = 8176 bytes of live data; settings 2 × 544 + journal 3 × 1184 + trust 1 × 512 leave 3024 → 47 audit entries of 64 bytes
const AUDIT_SHARED_16K = 47;

describe("storage layout", () => {
  it("splits the simulator's 8 x 8 KiB storage into settings 2, audit 2, journal 4", () => {
    const plan = planStorage({ size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32, eraseValue: 0xff });
    expect(plan.mode).toBe("split");
    expect(plan.regions.map((r) => [r.spaces[0].name, r.firstBlock, r.blocks])).toEqual([
      ["settings", 0, 2],
      ["audit", 2, 2],
      ["journal", 4, 4],
    ]);
    expect(plan.audit.keys).toBe(63);
  });
  it("shares one store over 3 x 128 KiB (the default map) and 2 x 128 KiB", () => {
    for (const size of [384, 256]) {
      const plan = planStorage({ size: size * KiB, blockLength: 128 * KiB, writeAlign: 32, eraseValue: 0xff });
      expect(plan.mode).toBe("shared");
      expect(plan.regions).toHaveLength(1);
      expect(plan.regions[0].blocks).toBe(size / 128);
      expect(plan.audit.keys).toBe(128);
    }
  });
  it("shares 2 x 16 KiB with fewer audit entries, and refuses what cannot work", () => {
    const plan = planStorage({ size: 32 * KiB, blockLength: 16 * KiB, writeAlign: 32, eraseValue: 0xff });
    expect(plan.mode).toBe("shared");
    expect(plan.audit.keys).toBe(AUDIT_SHARED_16K);
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isOtaError(e, Reason.STORE_GEOMETRY);
      }
      return false;
    };
    // 2 x 8 KiB no longer holds the journal's live set (the signed manifest) beside the settings
    expect(err(() => planStorage({ size: 16 * KiB, blockLength: 8 * KiB, writeAlign: 32, eraseValue: 0xff }))).toBe(true);
    expect(err(() => planStorage({ size: 128 * KiB, blockLength: 128 * KiB, writeAlign: 32, eraseValue: 0xff }))).toBe(true);
    expect(err(() => planStorage({ size: 8 * KiB, blockLength: 2 * KiB, writeAlign: 32, eraseValue: 0xff }))).toBe(true);
    expect(err(() => planStorage({ size: 20 * KiB, blockLength: 4 * KiB, writeAlign: 32, eraseValue: 0xff }))).toBe(true);
  });
  it("opens the storage of both kinds and keeps the spaces apart", () => {
    for (const g of [
      { size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 },
      { size: 384 * KiB, blockLength: 128 * KiB, writeAlign: 32 },
    ]) {
      const flash = chip(g);
      const st = openStorage(flash);
      st.settings.put(0, utf8Encode("S"));
      st.journal.put(0, utf8Encode("J"));
      st.audit.put(0, utf8Encode("A"));
      const again = openStorage(flash);
      expect(new TextDecoder().decode(again.settings.get(0))).toBe("S");
      expect(new TextDecoder().decode(again.journal.get(0))).toBe("J");
      expect(new TextDecoder().decode(again.audit.get(0))).toBe("A");
    }
  });
});
