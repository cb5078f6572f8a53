/**
 * The device lane (`npm run test:device`): the portable code on the real XS
 * engine cross-compiled for a Cortex-M7, bare metal on QEMU's mps2-an500,
 * behind the Moddable realm prelude. See test/device/harness.ts for the memory
 * map, the arena, how instructions are counted and what differs from a device.
 * Each workload is an assertion; each prints its line of the table that
 * `npm run bench -- device` prints.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { checkPeers, okTask, taskOf, type DeviceRun } from "./harness";
import { buildLane, decodeRow, flashMs, HASH_LENGTH, msAt400, pairRow, pairSections, runBoots, tableHeader, tableLine, type Lane, type Row } from "./lane";
import { hashInput } from "./entries/verify-data";
import { Reason } from "../../src/errors";

let lane: Lane;
let boots: Map<string, Promise<DeviceRun>>;
const boot = (id: string) => boots.get(id)!;

beforeAll(async () => {
  checkPeers(); // a missing arm-none-eabi-gcc or qemu-system-arm fails the lane here, with the package to install
  lane = await buildLane();
  // DEVICE_BOOTS=trust,identity runs only those boots (with -t selecting their tests): for iterating on one workload.
  const only = process.env.DEVICE_BOOTS?.split(",");
  boots = runBoots(only ? lane.boots.filter((b) => only.includes(b.id)) : lane.boots);
  console.log(`[device] XS engine .text ${lane.elves.foundation.xsText} B; flash image (text) per ELF: ${Object.entries(lane.elves).map(([k, e]) => `${k} ${e.size.text} B (bundle ${e.bundleBytes} B)`).join(", ")}`);
  console.log(tableHeader().join("\n"));
});

/** Print a table line and check the run's memory stayed inside the arena. */
function report(row: Row): void {
  console.log(tableLine(row));
  expect(row.task.memory.arenaReserved).toBeLessThanOrEqual(row.task.memory.arenaSize);
}

function expectClean(run: DeviceRun): void {
  expect(run.errors, run.output.slice(-3000)).toEqual([]);
  expect(run.abort).toBeUndefined();
  expect(run.fault).toBeUndefined();
  expect(run.timedOut).toBe(false);
  expect(run.exitCode, run.output.slice(-3000)).toBe(0);
}

describe("device lane: the emulated Cortex-M7", () => {
  it("counts instructions exactly (calibration loops, across SysTick wraps) and boots behind the Moddable realm prelude", async () => {
    const run = await boot("foundation");
    expectClean(run);
    const runs = run.calibration.flatMap((c) => c.runs).filter((r) => r.loops >= 1_000_000);
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...runs.map((r) => r.measured))).toBeGreaterThan(40 * 0x1000000); // one run spans a 24-bit wrap
    for (const r of runs) expect(Math.abs(r.measured - r.expected)).toBeLessThanOrEqual(Math.max(200, r.expected * 1e-4));
    // XS core has only Moddable's globals: the prelude finds nothing to delete, and freezes the built-ins.
    expect(run.prelude?.deleted).toEqual([]);
    expect(run.prelude?.frozen).toBeGreaterThan(100);
    const load = run.load!;
    console.log(`[device] foundation boot: load ${load.loadInstructions} instructions, XS memory after load ${load.memory.chunksBefore + load.memory.slotsBefore} B, parser C heap ${load.cHeapAfterParse} B`);
  });

  it("HAL conformance suites, power cuts and the boot model pass inside the M7", async () => {
    const run = await boot("foundation");
    for (const name of ["conformance", "powercut", "bootloader"]) {
      const t = okTask<{ passed: number; failed: unknown[] }>(run, name);
      expect(t.value.failed).toEqual([]);
      expect(t.value.passed).toBeGreaterThan(0);
      report({ workload: `HAL ${name} suite (${t.value.passed} tests)`, instructions: t.instructions, task: t });
    }
  });

  it("fails when project code throws inside the M7: the message comes out and the exit status is non-zero", async () => {
    const run = await boot("throws");
    const t = taskOf(run, "throws");
    expect(t.ok).toBe(false);
    expect(t.error).toMatch(/RangeError: deliberate failure inside XS/);
    expect(run.done?.failed).toBe(true);
    expect(run.exitCode).toBe(1);
  });
});

describe("device lane: signed updates", () => {
  it("verifies ECDSA P-256 (first and later call), refuses a wrong digest, and hashes SHA-256 like node:crypto", async () => {
    const run = await boot("verify");
    expectClean(run);
    const calls = run.tasks.filter((t) => t.name === "ecdsa-verify");
    expect(calls.map((t) => t.value)).toEqual(["OK", "OK"]);
    report({ workload: "ECDSA P-256 verify, first call", instructions: calls[0].instructions, task: calls[0] });
    report({ workload: "ECDSA P-256 verify, later call", instructions: calls[1].instructions, task: calls[1] });
    // No base-point table (src/crypto/p256.ts): the first call costs what a later one does, and
    // leaves nothing behind on the XS heap (noble's default table: 8.6e9 instructions, ~676 KB kept).
    expect(calls[0].instructions).toBeLessThan(calls[1].instructions * 1.25);
    const kept = (t: (typeof calls)[number]) => t.memory.chunksBefore + t.memory.slotsBefore;
    expect(kept(calls[1]) - kept(calls[0])).toBeLessThan(16 * 1024);
    expect(okTask(run, "ecdsa-verify-wrong-digest").value).toBe("SIGNATURE_INVALID");
    const sha = okTask<string>(run, "sha256");
    expect(sha.value).toBe(createHash("sha256").update(hashInput(HASH_LENGTH)).digest("hex"));
    report({ workload: `SHA-256 (JS digest), ${HASH_LENGTH / 1024} KiB in 1 KiB updates`, instructions: sha.instructions, bytes: HASH_LENGTH, task: sha });
    // The native digest (the lane's C SHA-256 behind hal/moddable/digest.ts, unchanged): same bytes, split unevenly too.
    const native = okTask<{ whole: string; uneven: string; empty: string; instructions: number; misuse: string[] }>(run, "sha256-native");
    expect(native.value.whole).toBe(sha.value);
    expect(native.value.uneven).toBe(sha.value);
    expect(native.value.empty).toBe(createHash("sha256").digest("hex"));
    expect(native.value.misuse).toEqual(["Error: sha256: update after finish", "Error: sha256: finish called twice"]);
    expect(native.value.instructions).toBeLessThan(sha.instructions / 20);
    report({ workload: `SHA-256 (native digest), ${HASH_LENGTH / 1024} KiB in 1 KiB updates (hashing alone)`, instructions: native.value.instructions, bytes: HASH_LENGTH, task: native });
    // The native CRC-32 (hal/moddable/native/crc32.c under hal/moddable/digest.ts, unchanged): the patch blocks' check.
    type Crc = { whole: number; js: number; reference: number; uneven: number; viewReference: number; empty: number; instructions: number; jsInstructions: number; refusals: string[] };
    const crc = okTask<Crc>(run, "crc32-native");
    expect(crc.value.whole).toBe(crc.value.reference);
    expect(crc.value.js).toBe(crc.value.reference);
    expect(crc.value.uneven).toBe(crc.value.viewReference);
    expect(crc.value.empty).toBe(0x1234);
    expect(crc.value.refusals).toEqual(["RangeError", "RangeError", "RangeError", "TypeError"]);
    expect(crc.value.instructions).toBeLessThan(crc.value.jsInstructions / 20);
    report({ workload: `CRC-32 (native), ${HASH_LENGTH / 1024} KiB in 1 KiB steps`, instructions: crc.value.instructions, bytes: HASH_LENGTH, task: crc });
    report({ workload: `CRC-32 (JS, src/delta/crc.ts), ${HASH_LENGTH / 1024} KiB in 1 KiB steps`, instructions: crc.value.jsInstructions, bytes: HASH_LENGTH, task: crc });
    // TypedArray.prototype.set between two Uint8Arrays is a memcpy, as in the SDK's XS (build.ts, SET_AS_SDK).
    const set = okTask<{ length: number; whole: number; pieces: number; same: boolean }>(run, "typed-array-set");
    expect(set.value.same).toBe(true);
    expect(set.value.whole / set.value.length).toBeLessThan(2);
    report({ workload: `Uint8Array set, ${HASH_LENGTH / 1024} KiB in one call`, instructions: set.value.whole, bytes: HASH_LENGTH, task: set });
    report({ workload: `Uint8Array set, ${HASH_LENGTH / 1024} KiB in 64-byte calls`, instructions: set.value.pieces, bytes: HASH_LENGTH, task: set });
  });

  it("verifies a signed image streaming from mock flash, and refuses it with one flipped bit", async () => {
    const run = await boot("verify");
    const v = okTask<{ ok: boolean; reason: string; totalLength: number }>(run, "verify-image");
    expect(v.value.ok).toBe(true);
    expect(v.value.reason).toBe("OK");
    report({ workload: `verify signed image (${v.value.totalLength} B: hash + TLVs + ECDSA)`, instructions: v.instructions, bytes: v.value.totalLength, task: v });
    expect(okTask(run, "verify-image-tampered").value).toEqual({ ok: false, reason: "IMAGE_HASH_MISMATCH" });
  });
});

describe("device lane: the patcher on the firmware fixtures", () => {
  /** Decode + write instructions per output byte, by codec and pair index (filled by the tests below). */
  const perByte: { [codec: string]: number[] } = {};
  for (const codec of ["lz", "lzr", "range", "deflate"] as const) {
    const v2 = codec === "lz" || codec === "lzr";
    it(`applies every fixture pair byte-exact with the ${codec} codec (SHA-256 by the native digest, each part timed)`, async () => {
      for (const pair of lane.pairs.filter((p) => p.codec === codec)) {
        const run = await boot(pair.boot);
        expectClean(run);
        const p = pairSections(run, pair);
        const t = p.task;
        expect(t.value.name).toBe(pair.name);
        expect(t.value.length).toBe(pair.newLength);
        expect(t.value.ok, `${pair.name}: SHA-256 of the image the device wrote`).toBe(true);
        expect(t.value.workingMemory).toBeLessThanOrEqual(64 * 1024);
        // Codecs 3 and 4 keep to the patch decoder's own budget (design.md section 9).
        if (v2) expect(t.value.workingMemory).toBeLessThanOrEqual(32 * 1024);
        // Every part ran and was counted; the install is the sum of its parts.
        for (const part of [p.hashOld, p.decode, p.hashNew]) expect(part).toBeGreaterThan(0);
        expect(p.install).toBeLessThanOrEqual(t.instructions);
        // The native digest: two passes cost a small part of the install (the JS digest costs ~16,700 a byte a pass).
        expect((p.hashOld + p.hashNew) / (pair.oldLength + pair.newLength)).toBeLessThan(1000);
        (perByte[codec] ??= [])[pair.index] = p.decode / pair.newLength;
        report(pairRow(run, pair));
        report(decodeRow(run, pair));
        console.log(`[device] ${pair.name}: install ${msAt400(p.install).toFixed(0)} ms at 400 MHz, flash erase of ${pair.newLength} B ${flashMs(pair.newLength)} ms (lower bound), decoder memory ${t.value.workingMemory} B`);
        // Codec 3 keeps pace with the flash (design.md section 9): the whole install at 400 MHz, one instruction a
        // cycle, within the erase of the sectors it writes. (Instruction counts are deterministic: an assertion, not a
        // timing.) Codec 4, the smallest, does not (README, "Delta updates"): serve offers it where the link is slow.
        if (codec === "lz") expect(msAt400(p.install), `${pair.name}: install vs flash erase`).toBeLessThanOrEqual(flashMs(pair.newLength));
      }
    });
  }

  it("codec 3 decodes within 2x of DEFLATE's instructions per output byte on every pair (deterministic counts, same lane run); codec 4's printed beside", async () => {
    for (const codec of ["lz", "lzr", "deflate"]) for (const pair of lane.pairs.filter((p) => p.codec === codec)) (perByte[codec] ??= [])[pair.index] ??= pairSections(await boot(pair.boot), pair).decode / pair.newLength;
    for (const [codec, label] of [["lz", "codec 3"], ["lzr", "codec 4"]]) {
      expect(perByte[codec].length).toBe(4);
      perByte[codec].forEach((v, i) => {
        const deflate = perByte.deflate[i];
        console.log(`[device] pair ${i}: decode + write ${v.toFixed(0)} (${label}) vs ${deflate.toFixed(0)} (DEFLATE) instructions/byte: ${(v / deflate).toFixed(2)}x`);
        if (codec === "lz") expect(v, `pair ${i}: ${label} ${v.toFixed(0)} vs DEFLATE ${deflate.toFixed(0)} instructions per byte`).toBeLessThanOrEqual(2 * deflate);
      });
    }
  });

  it("the installs' flash (checks in C, as a driver does) refuses what the mock flash refuses, with the same reasons", async () => {
    const t = okTask<{ reasons: string[]; readBack: number[] }>(await boot("delta-lz"), "native-flash-strict");
    expect(t.value.reasons).toEqual(["OK", "FLASH_NOT_ERASED", "FLASH_ALIGN", "FLASH_RANGE", "FLASH_RANGE", "OK", "OK"]);
    expect(t.value.readBack).toEqual([0x5a, 0x5a]);
  });

  it("detects an output that differs from the expected image by one byte", async () => {
    const run = await boot("delta-flipped");
    const t = okTask<{ ok: boolean; length: number }>(run, "pair-0");
    expect(t.value.length).toBe(lane.flipped.newLength);
    expect(t.value.ok).toBe(false);
  });
});

describe("device lane: console and agent", () => {
  it("the AT console's scripted sessions pass inside the M7", async () => {
    const run = await boot("at");
    expectClean(run);
    const t = okTask<{ passed: number; failed: unknown[] }>(run, "at-timing");
    expect(t.value.failed).toEqual([]);
    expect(t.value.passed).toBeGreaterThan(0);
    report({ workload: `AT console, scripted sessions with +++ timing (${t.value.passed})`, instructions: t.instructions, task: t });
    const lines = okTask<{ replies: number }>(run, "at-parse-cost");
    expect(lines.value.replies).toBe(1000);
    report({ workload: "AT console, 1000 query lines", instructions: lines.instructions, task: lines });
  });

  it("a whole update through the agent on the mock platform: offer, download, verify, trial, commit", async () => {
    const run = await boot("agent");
    expectClean(run);
    const t = okTask<{ events: string[]; slot: number; version: string; counter: number; log: string[] }>(run, "full-update");
    expect(t.value.events, t.value.log.join("\n")).toEqual(["offer-accepted", "download-started", "download-done", "verified", "committed"]);
    expect(t.value.slot).toBe(1);
    expect(t.value.version).toBe("1.1.0+2");
    expect(t.value.counter).toBe(2);
    report({ workload: "whole update through the agent (sim world)", instructions: t.instructions, task: t });
  });
});

describe("device lane: encrypted images (issue 19)", () => {
  it("the Cipher conformance suite passes inside the M7; AES-CTR, the key unwrap and a whole install with and without encryption are counted", async () => {
    const run = await boot("enc");
    expectClean(run);
    const conf = okTask<{ passed: number; failed: unknown[] }>(run, "cipher-conformance");
    expect(conf.value.failed).toEqual([]);
    expect(conf.value.passed).toBeGreaterThan(10);
    const aes = okTask<number>(run, "aes-ctr-64k");
    report({ workload: "AES-256-CTR (JS), 64 KiB in 1 KiB calls", instructions: aes.instructions, bytes: 64 * 1024, task: aes });
    const unwrap = okTask<{ ok: boolean; instructions: number }>(run, "unwrap-timed");
    expect(unwrap.value.ok).toBe(true);
    report({ workload: "key unwrap: ECDH P-256 + HKDF + HMAC + AES (counted inside the task)", instructions: unwrap.value.instructions, task: unwrap });
    type Side = { events: string[]; version: string; instructions: number; bytes: number };
    const both = okTask<{ plain: Side; enc: Side }>(run, "install-plain-vs-enc");
    for (const side of [both.value.plain, both.value.enc]) {
      expect(side.events).toEqual(["offer-accepted", "download-started", "download-done", "verified", "committed"]);
      expect(side.version).toBe("1.1.0+2");
    }
    report({ workload: "whole update through the agent, plain (device run counted, sim world)", instructions: both.value.plain.instructions, bytes: both.value.plain.bytes, task: both });
    report({ workload: "the same update encrypted (AES-256; device run counted)", instructions: both.value.enc.instructions, bytes: both.value.enc.bytes, task: both });
  });

  it("an encrypted full release then an encrypted delta install and commit through the agent inside the M7", async () => {
    const run = await boot("enc-updates");
    expectClean(run);
    const t = okTask<{ events: string[]; slot: number; version: string; log: string[] }>(run, "enc-updates");
    expect(t.value.events, t.value.log.join("\n")).toEqual([
      "offer-accepted", "download-started", "download-done", "verified", "committed",
      "offer-accepted", "download-started", "download-done", "verified", "committed",
    ]);
    expect(t.value.slot).toBe(0);
    expect(t.value.version).toBe("1.2.0+3");
    report({ workload: "encrypted full + encrypted delta update through the agent (sim world, incl. building the releases)", instructions: t.instructions, task: t });
  });
});

describe("device lane: identity and trust (issue 16)", () => {
  it("key roles and trusted time inside the M7: the rewound-ack replay, a retired batch key, the revocation lockout", async () => {
    const run = await boot("trust");
    expectClean(run);
    const replay = okTask<{ refused: number[]; accepted: number; untouched: boolean; log: string[] }>(run, "expired-replay");
    expect(replay.value.refused, replay.value.log.join("\n")).toEqual([Reason.MANIFEST_EXPIRED, Reason.MANIFEST_EXPIRED, Reason.MANIFEST_EXPIRED]);
    expect(replay.value.accepted).toBe(0);
    expect(replay.value.untouched).toBe(true);
    const rotated = okTask<{ keySet: unknown; refused: number[]; committed: number; version: string; log: string[] }>(run, "retired-batch-key");
    expect(rotated.value.keySet).toEqual({ epoch: 0, sequence: 2 });
    expect(rotated.value.refused, rotated.value.log.join("\n")).toEqual([Reason.KEY_RETIRED]);
    expect(rotated.value.committed).toBe(1);
    report({ workload: "key set rotation, the retired key's release refused, the new key's installed (sim world)", instructions: rotated.instructions, task: rotated });
    const lockout = okTask<{ afterLockout: number | null; keySet: unknown; revocation: number[] }>(run, "revocation-lockout");
    expect(lockout.value.afterLockout).toBeNull();
    expect(lockout.value.keySet).toEqual({ epoch: 1, sequence: 1 });
    expect(lockout.value.revocation).toEqual([1, 1]);
    const decode = okTask<{ ok: boolean; keys: number; jump: number; forged: number; expected: number[] }>(run, "keyset-decode");
    expect(decode.value.ok).toBe(true);
    expect([decode.value.jump, decode.value.forged]).toEqual(decode.value.expected);
  });

  it("device key, CSR, identity records and AT+CSR / AT+CERT inside the M7", async () => {
    const run = await boot("identity");
    expectClean(run);
    const suites = okTask<{ passed: number; failed: unknown[] }>(run, "identity-suites");
    expect(suites.value.failed).toEqual([]);
    expect(suites.value.passed).toBeGreaterThanOrEqual(18);
    const csr = okTask<number>(run, "identity-keygen-csr");
    expect(csr.value).toBeGreaterThan(200);
    report({ workload: `first AT+CSR: device key from the generator, public point, signed CSR (${csr.value} B)`, instructions: csr.instructions, task: csr });
    expect(okTask<string>(run, "identity-cert-parse").value).toBe("sim-0001");
  });
});

describe("device lane: only what Moddable provides", () => {
  it("a module that reads TextEncoder at import fails to load", async () => {
    const run = await boot("strict-textencoder");
    expect(run.load?.ok).toBe(false);
    expect(run.errors.map((e) => e.message).join("\n")).toMatch(/ReferenceError: get TextEncoder/);
    expect(run.tasks).toEqual([]);
    expect(run.exitCode).toBe(2);
  });

  it("an assignment to a frozen built-in's property throws; defineProperty on one's own prototype works", async () => {
    const run = await boot("strict-frozen");
    expect(run.exitCode).toBe(1);
    const assign = taskOf(run, "assign-error-name");
    expect(assign.ok).toBe(false);
    expect(assign.error).toMatch(/TypeError: .*not writable/);
    expect(taskOf(run, "patch-builtin-prototype").ok).toBe(false);
    expect(okTask<{ name: string }>(run, "define-error-name").value.name).toBe("DefinedError");
    const realm = okTask<{ globals: string[]; notFrozen: string[] }>(run, "realm");
    expect(realm.value.notFrozen).toEqual([]);
    for (const absent of ["TextEncoder", "TextDecoder", "setTimeout", "atob", "btoa", "print", "structuredClone"]) expect(realm.value.globals).not.toContain(absent);
    expect(realm.value.globals).toContain("trace");
  });
});
