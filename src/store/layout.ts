/**
 * How the storage partition is cut into the three record spaces the device
 * keeps: settings, the update journal, the audit log.
 *
 * Two modes, chosen from the geometry alone (so every boot of every firmware
 * with the same space specs finds the same layout):
 * - "split": 6 or more erase blocks. Three record stores in three windows,
 *   each >= 2 blocks: settings 2, audit 2, the journal (the most frequent
 *   writer: download progress) gets the rest. Journal churn never compacts
 *   the settings.
 * - "shared": 2..5 blocks whose single block holds the whole live set. One
 *   record store over the whole partition holds all three spaces (distinct
 *   key tags). This is the 128 KiB-sector case: 384 KiB = 3 blocks, or 256
 *   KiB = 2 blocks.
 *
 * Each store's live set is kept to at most half a block's capacity, so a
 * rotation always frees at least half a block: write amplification <= 2
 * (a full live set would let a rotation free a single record).
 *
 * The minimum is therefore 2 erase blocks when half a block holds the live
 * set of all three spaces: with the default specs and a 32-byte write unit,
 * 2240 bytes of settings and journal plus 16 audit entries of 64 bytes, so
 * blocks of >= 8 KiB. Smaller blocks (4 KiB sectors) need 6 of them (split:
 * settings 2, audit 2 with 31 entries, journal 2+). Anything less is refused
 * with STORE_GEOMETRY.
 *
 * The layout is part of the storage format: changing a space spec, the block
 * count or the mode changes where records live. Block headers carry a store
 * id per region, so a changed layout reads as foreign and is reformatted
 * (values return to defaults), never misread.
 */
import { OtaError, Reason } from "../errors";
import type { Flash, FlashStatus } from "../../hal/types";
import { BLOCK_HEADER, liveBytes, RecordStore, recordSpan, roundUp, type RecordSpace, type SpaceSpec } from "./records";
import { FlashWindow } from "./window";

/** Settings: one record, two copies (the previous set survives as a fallback). */
export const SETTINGS_SPACE: SpaceSpec = Object.freeze({ name: "settings", tag: 1, keys: 1, maxValue: 512, copies: 2 });
/**
 * The update journal (src/agent/journal.ts): session (with the signed release
 * manifest envelope, ≤ 1145 bytes), progress and policy records. One copy:
 * the log keeps the previous value until compaction, and the agent
 * reconciles a lost record with what the bootloader booted.
 */
export const JOURNAL_SPACE: SpaceSpec = Object.freeze({ name: "journal", tag: 2, keys: 3, maxValue: 1152, copies: 1 });
/**
 * The device's trust state (src/agent/journal.ts key set record): the
 * root-signed key set in force (src/update/keyset.ts state, ≤ 496 bytes: what
 * fits beside the journal in half of the simulator's 8 KiB blocks).
 * It lives beside the journal (the journal's region in split mode), written
 * only when a newer key set is accepted.
 */
export const TRUST_SPACE: SpaceSpec = Object.freeze({ name: "trust", tag: 4, keys: 1, maxValue: 496, copies: 1 });
/** Audit entry size bound; the entry count is chosen by the plan (see `auditEntries`). */
export const AUDIT_ENTRY_MAX = 48;
/** At most this many audit entries are kept, however large the blocks. */
export const AUDIT_MAX_ENTRIES = 128;
/** At least this many, or the layout is refused. */
export const AUDIT_MIN_ENTRIES = 16;
const AUDIT_TAG = 3;
/**
 * The device identity (src/store/identity.ts): key 0 the device's private key,
 * key 1 its certificate from the fleet CA. Kept only where it fits beside the
 * other spaces without changing them (see `planStorage`): in the shared store,
 * or beside the settings in split mode.
 */
export const IDENTITY_SPACE: SpaceSpec = Object.freeze({ name: "identity", tag: 5, keys: 2, maxValue: 1040, copies: 1 });

/** Store ids in block headers, one per region of a layout. */
export const STORE_ID = Object.freeze({ shared: 0x80, settings: 1, journal: 2, audit: 3 });

export interface RegionPlan {
  readonly storeId: number;
  readonly firstBlock: number;
  readonly blocks: number;
  readonly spaces: readonly SpaceSpec[];
}

export interface StoragePlan {
  readonly mode: "shared" | "split";
  readonly blockLength: number;
  readonly totalBlocks: number;
  readonly regions: readonly RegionPlan[];
  readonly settings: SpaceSpec;
  readonly journal: SpaceSpec;
  readonly trust: SpaceSpec;
  readonly audit: SpaceSpec;
  /** The identity space, when the geometry has room for it beside the others (see IDENTITY_SPACE). */
  readonly identity: SpaceSpec | undefined;
}

function auditSpace(entries: number): SpaceSpec {
  return Object.freeze({ name: "audit", tag: AUDIT_TAG, keys: entries, maxValue: AUDIT_ENTRY_MAX, copies: 1 as const });
}

/** Half a block's record capacity: the most live data a store of this layout may hold. */
function halfCapacity(g: FlashStatus): number {
  return Math.floor((g.blockLength - roundUp(BLOCK_HEADER, g.writeAlign)) / 2);
}

/** Audit entries that fit beside `others` in half a block (<= AUDIT_MAX_ENTRIES; negative: `others` alone do not fit). */
function auditEntries(g: FlashStatus, others: readonly SpaceSpec[]): number {
  const room = halfCapacity(g) - liveBytes(others, g.writeAlign);
  return Math.min(AUDIT_MAX_ENTRIES, Math.floor(room / recordSpan(AUDIT_ENTRY_MAX, g.writeAlign)));
}

/**
 * Plan the storage partition's regions from its geometry.
 * @param status the storage partition's `status()`
 * @param settings, journal the space specs (defaults above; the journal's owner may pass its own)
 * @throws OtaError STORE_GEOMETRY when the partition is too small for any layout.
 * @example planStorage({ size: 384 * 1024, blockLength: 128 * 1024, writeAlign: 32, eraseValue: 0xff }).mode === "shared"
 */
export function planStorage(status: FlashStatus, settings: SpaceSpec = SETTINGS_SPACE, journal: SpaceSpec = JOURNAL_SPACE): StoragePlan {
  const total = status.size / status.blockLength;
  if (!Number.isInteger(total) || total < 2) throw new OtaError(Reason.STORE_GEOMETRY, `storage of ${total} blocks: at least 2 needed`);
  if (total >= 6) {
    const audit = auditSpace(auditEntries(status, []));
    const journalBlocks = total - 4;
    // Every region must hold its own live set.
    for (const s of [[settings], [journal, TRUST_SPACE]]) {
      if (liveBytes(s, status.writeAlign) > halfCapacity(status)) throw new OtaError(Reason.STORE_GEOMETRY, `space ${s[0].name} does not fit half a block`);
    }
    if (audit.keys < AUDIT_MIN_ENTRIES) throw new OtaError(Reason.STORE_GEOMETRY, `only ${audit.keys} audit entries fit half a block`);
    const identity = liveBytes([settings, IDENTITY_SPACE], status.writeAlign) <= halfCapacity(status) ? IDENTITY_SPACE : undefined;
    return Object.freeze({
      mode: "split",
      blockLength: status.blockLength,
      totalBlocks: total,
      settings,
      journal,
      trust: TRUST_SPACE,
      audit,
      identity,
      regions: Object.freeze([
        Object.freeze({ storeId: STORE_ID.settings, firstBlock: 0, blocks: 2, spaces: Object.freeze(identity ? [settings, identity] : [settings]) }),
        Object.freeze({ storeId: STORE_ID.audit, firstBlock: 2, blocks: 2, spaces: Object.freeze([audit]) }),
        Object.freeze({ storeId: STORE_ID.journal, firstBlock: 4, blocks: journalBlocks, spaces: Object.freeze([journal, TRUST_SPACE]) }),
      ]),
    });
  }
  const entries = auditEntries(status, [settings, journal, TRUST_SPACE]);
  if (entries < AUDIT_MIN_ENTRIES) {
    throw new OtaError(
      Reason.STORE_GEOMETRY,
      `${total} blocks of ${status.blockLength} bytes: the live set does not fit half a block (6 blocks allow a split layout)`,
    );
  }
  const audit = auditSpace(entries);
  // Only from the room the audit ring left: adding the identity never shrinks an existing space.
  const identity = liveBytes([settings, journal, TRUST_SPACE, audit, IDENTITY_SPACE], status.writeAlign) <= halfCapacity(status) ? IDENTITY_SPACE : undefined;
  const shared = [settings, journal, TRUST_SPACE, audit];
  if (identity) shared.push(identity);
  return Object.freeze({
    mode: "shared",
    blockLength: status.blockLength,
    totalBlocks: total,
    settings,
    journal,
    trust: TRUST_SPACE,
    audit,
    identity,
    regions: Object.freeze([Object.freeze({ storeId: STORE_ID.shared, firstBlock: 0, blocks: total, spaces: Object.freeze(shared) })]),
  });
}

/** The mounted storage: one RecordSpace per use. */
export interface Storage {
  readonly plan: StoragePlan;
  readonly settings: RecordSpace;
  readonly journal: RecordSpace;
  /** The key set in force (TRUST_SPACE). */
  readonly trust: RecordSpace;
  readonly audit: RecordSpace;
  /** The device identity's records, when the layout has room for them. */
  readonly identity: RecordSpace | undefined;
  /** The record stores (one in shared mode, three in split mode), for stats. */
  readonly stores: readonly RecordStore[];
}

/**
 * Plan and mount the storage partition (repairing what a power cut left).
 * @throws OtaError STORE_GEOMETRY, STORE_CORRUPT, flash errors; PowerCut propagates.
 */
export function openStorage(flash: Flash, settings: SpaceSpec = SETTINGS_SPACE, journal: SpaceSpec = JOURNAL_SPACE): Storage {
  const plan = planStorage(flash.status(), settings, journal);
  const stores: RecordStore[] = [];
  const spaces: { [tag: number]: RecordSpace } = {};
  for (const r of plan.regions) {
    const window = plan.mode === "shared" ? flash : new FlashWindow(flash, r.firstBlock, r.blocks);
    const store = RecordStore.open(window, { storeId: r.storeId, spaces: r.spaces });
    stores.push(store);
    for (const s of r.spaces) spaces[s.tag] = store.space(s.tag);
  }
  return Object.freeze({
    plan,
    settings: spaces[plan.settings.tag],
    journal: spaces[plan.journal.tag],
    trust: spaces[plan.trust.tag],
    audit: spaces[plan.audit.tag],
    identity: plan.identity ? spaces[plan.identity.tag] : undefined,
    stores: Object.freeze(stores),
  });
}
