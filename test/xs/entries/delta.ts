/**
 * XS entry for the delta engine: the device's patcher, unchanged, inside XS.
 *
 * XS has no file system, so the inputs come two ways: the 1 MiB old/new pair
 * is generated here deterministically (test/fixtures/firmware/synth.ts, the
 * same code Node uses to make the patch), and the patches themselves arrive
 * as base64 in `globalThis.__xsOtaDelta`, set by a data module that the Node
 * side (test/xs/delta.test.ts, bench/delta.bench.ts) bundles in front of this
 * entry. Tasks read it only when run.
 */
import { NorFlash } from "../../../hal/mock/flash";
import { PowerCut } from "../../../hal/mock/rail";
import { softwareDigest } from "../../../src/crypto/sha256";
import type { PatchCheckpoint } from "../../../src/delta/format";
import { hashSlot, PatchApplier } from "../../../src/delta/patcher";
import type { Digest, Flash } from "../../../hal/types";
import { toHex } from "../../../src/util/bytes";
import { synthPair } from "../../fixtures/firmware/synth";
import { serve, task } from "../runtime";

interface DeltaInput {
  /** The patch from synthPair().old to synthPair().new, base64 (the default codec, RANGE). */
  synthPatch?: string;
  /** The same patch with the DEFLATE codec. */
  synthDeflatePatch?: string;
  /** The same pair with codec 3 (format version 2). */
  synthLzPatch?: string;
  synthLzrPatch?: string;
  /** Firmware pairs for the bench: old image and patch, base64; the new image's SHA-256, hex. */
  pairs?: { name: string; old: string; patch: string; newSha256: string }[];
}

function input(): DeltaInput {
  const d = (globalThis as { __xsOtaDelta?: DeltaInput }).__xsOtaDelta;
  if (!d) throw new Error("no delta input: bundle a data module that sets globalThis.__xsOtaDelta");
  return d;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// XS finds a string's i-th character by scanning its UTF-8 from the start, so `s.charCodeAt(i)`
// over a 200 KB string is quadratic (~10^10 instructions on the device lane's M7): decode slices.
const SLICE = 256;

function fromBase64(s: string): Uint8Array {
  const map = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) map[B64.charCodeAt(i)] = i;
  const clean = s.replace(/=+$/, "");
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let at = 0; at < clean.length; at += SLICE) {
    const part = clean.slice(at, at + SLICE);
    for (let i = 0; i < part.length; i++) {
      const v = map[part.charCodeAt(i)];
      if (v < 0) throw new RangeError("bad base64");
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[o++] = (acc >>> bits) & 0xff;
      }
    }
  }
  return out;
}

/** The two slots of an install: Flash partitions whose cells a task can set and compare. */
export interface SlotPair {
  active: Flash & { readonly cells: Uint8Array };
  inactive: Flash & { readonly cells: Uint8Array };
}

function slots(size: number) {
  const blockLength = 4096;
  const slotSize = Math.max(blockLength, Math.ceil(size / blockLength) * blockLength);
  const chip = new NorFlash({ size: 2 * slotSize, blockLength, writeAlign: 32 });
  return { chip, active: chip.partition(0, slotSize), inactive: chip.partition(slotSize, slotSize) };
}

function feed(a: PatchApplier, patch: Uint8Array, chunk: number): void {
  for (let at = a.patchOffset; at < patch.length; at += chunk) a.update(patch.subarray(at, Math.min(at + chunk, patch.length)));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// The 1 MiB fixture: apply in 1460-byte chunks (a TCP segment), compare with the pair generated in XS.
task("apply-1mib", () => apply1MiB(input().synthPatch as string));
task("apply-1mib-deflate", () => apply1MiB(input().synthDeflatePatch as string));
task("apply-1mib-lz", () => apply1MiB(input().synthLzPatch as string));
task("apply-1mib-lzr", () => apply1MiB(input().synthLzrPatch as string));

function apply1MiB(patchBase64: string) {
  const pair = synthPair();
  const patch = fromBase64(patchBase64);
  const { active, inactive } = slots(pair.old.length + 64 * 1024);
  active.cells.set(pair.old);
  const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest });
  feed(a, patch, 1460);
  const r = a.finish();
  return { length: r.length, identical: sameBytes(inactive.cells.subarray(0, r.length), pair.new), workingMemory: a.workingMemory, patchLength: patch.length, codec: patch[5] };
}

// Power cuts inside XS: cut at a few points, resume from the journaled checkpoint, the result is exact.
task("powercut-1mib", () => {
  const pair = synthPair();
  const patch = fromBase64(input().synthPatch as string);
  const results: boolean[] = [];
  for (const cutAt of [3, 40, 157, 300]) {
    const { chip, active, inactive } = slots(pair.old.length + 64 * 1024);
    active.cells.set(pair.old);
    let journal: PatchCheckpoint | undefined;
    const options = { activeSlot: active, inactiveSlot: inactive, digest: softwareDigest, onBlock: (cp: PatchCheckpoint) => (journal = cp) };
    chip.rail.armCut(cutAt, cutAt % 2 ? "torn" : "clean");
    let cut = false;
    try {
      const a = new PatchApplier(options);
      feed(a, patch, 4096);
      a.finish();
    } catch (e) {
      if (!(e instanceof PowerCut)) throw e;
      cut = true;
    }
    chip.rail.restore();
    const a = journal ? PatchApplier.resume(options, journal) : new PatchApplier(options);
    feed(a, patch, 4096);
    a.finish();
    results.push(cut && sameBytes(inactive.cells.subarray(0, pair.new.length), pair.new));
  }
  return results;
});

/** What a pair task reports; `sections` only when the entry has an instruction counter (the device lane). */
export interface PairReply {
  name: string;
  length: number;
  ok: boolean;
  workingMemory: number;
  /** Instructions of the install's three parts: hash the old image, decode + write, hash the new image. */
  sections?: { hashOld: number; decode: number; hashNew: number };
}

/**
 * One task per firmware pair (`pair-<i>`). Without a counter: the whole install as
 * the patcher does it alone (it hashes the old and the new image itself). With
 * `instructions` (the device lane's counter): the install as the agent does it
 * (src/agent/sink.ts: the old image's hash known, the new image checked after),
 * each part timed on its own, so decode + write is measured, not inferred.
 */
export function registerPairTasks(digest: Digest, instructions?: () => number, makeSlots: (size: number) => SlotPair = slots): void {
  for (let i = 0; i < 16; i++) {
    task(`pair-${i}`, (): PairReply => {
      const p = (input().pairs ?? [])[i];
      if (!p) throw new Error(`no pair ${i}`);
      const old = fromBase64(p.old);
      const patch = fromBase64(p.patch);
      const { active, inactive } = makeSlots(old.length + 128 * 1024);
      active.cells.set(old);
      if (!instructions) {
        const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest });
        feed(a, patch, 4096);
        const r = a.finish();
        return { name: p.name, length: r.length, ok: toHex(r.sha256) === p.newSha256, workingMemory: a.workingMemory };
      }
      const t0 = instructions();
      const oldSha256 = hashSlot(active, old.length, digest);
      const t1 = instructions();
      const a = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest, knownOld: { length: old.length, sha256: oldSha256 }, deferNewCheck: true });
      feed(a, patch, 4096);
      const r = a.finish();
      const t2 = instructions();
      const newSha256 = hashSlot(inactive, r.length, digest);
      const t3 = instructions();
      return { name: p.name, length: r.length, ok: toHex(newSha256) === p.newSha256, workingMemory: a.workingMemory, sections: { hashOld: t1 - t0, decode: t2 - t1, hashNew: t3 - t2 } };
    });
  }
}
registerPairTasks(softwareDigest);

// Setup-only cost, subtracted by the bench: decode the inputs and load the old image.
for (let i = 0; i < 16; i++) {
  task(`pair-setup-${i}`, () => {
    const p = (input().pairs ?? [])[i];
    if (!p) throw new Error(`no pair ${i}`);
    const old = fromBase64(p.old);
    fromBase64(p.patch);
    const { active } = slots(old.length + 128 * 1024);
    active.cells.set(old);
    return old.length;
  });
}

// Baseline for the bench: SHA-256 of 1 MiB read from mock flash in 1 KiB reads (the patcher hashes
// the old image once and the new image once per install).
task("sha256-1mib", () => {
  const { active } = slots(1024 * 1024);
  const h = softwareDigest.sha256();
  for (let at = 0; at < 1024 * 1024; at += 1024) h.update(active.read(1024, at));
  return toHex(h.finish());
});

serve();
