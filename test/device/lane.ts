/**
 * The device lane's workloads, shared by the tests (test/device/device.test.ts)
 * and the bench (bench/device.bench.ts): which ELF runs which tasks in one
 * boot, the data the entries need (made on Node, bundled in front of the
 * entry as test/fixtures/firmware/xs-data.ts does for xsnap), and the table
 * of instructions and XS memory per workload.
 */
import { createHash } from "node:crypto";
import { Codec } from "../../src/delta/format";
import { makePatch } from "../../tools/delta/index";
import { parseVersion } from "../../src/image/format";
import { signImage } from "../../tools/image/sign";
import { signerFromSecret } from "../../tools/keys/signer";
import { sha256Of } from "../../src/crypto/hash";
import { softwareDigest } from "../../src/crypto/sha256";
import { fixturePairs } from "../fixtures/firmware/pairs";
import { deltaEntry } from "../fixtures/firmware/xs-data";
import { hashInput, type VerifyInput } from "./entries/verify-data";
import { buildDevice, runDevice, type DeviceRun, type DeviceTask, type Elf } from "./harness";
import { outDir, root } from "./build";
import { encEntry } from "../xs/enc-data";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const entry = (p: string) => `${root}/${p}`;
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const sha256Hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Bytes the SHA-256 workload hashes, and the size of the signed image the verify workload checks. */
export const HASH_LENGTH = 64 * 1024;
export const IMAGE_BODY = 64 * 1024;

export function verifyInput(): VerifyInput {
  const key = signerFromSecret(Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));
  const body = hashInput(IMAGE_BODY).map((b) => b ^ 0x5a);
  const image = signImage({ input: body, padHeader: true, headerSize: 0x200, version: parseVersion("2.0.0+1"), securityCounter: 4, signer: key });
  const digest = sha256Of(softwareDigest, hashInput(64));
  return { publicKey: hex(key.publicKey), digest: hex(digest), signature: hex(key.sign(digest)), image: hex(image), hashLength: HASH_LENGTH };
}

export interface PairInput {
  name: string;
  codec: "lz" | "lzr" | "range" | "deflate";
  old: string;
  patch: string;
  newSha256: string;
  newLength: number;
  oldLength: number;
  /** Its task in its codec's ELF: `pair-<index>` (test/xs/entries/delta.ts). */
  index: number;
  /** The boot that runs it. */
  boot: string;
}

/**
 * The firmware fixture pairs, each with codec 3 (format version 2, the default) and the two
 * version-1 codecs. One ELF per codec: the old images travel as base64 in the bundle, and all
 * eight do not fit the 2 MiB flash region beside XS (they overflow it by ~300 KB), while four do.
 */
export function pairInputs(): PairInput[] {
  const pairs = fixturePairs();
  const out: PairInput[] = [];
  const codecs = { lz: Codec.LZ, lzr: Codec.LZR, range: Codec.RANGE, deflate: Codec.DEFLATE } as const;
  for (const codec of ["lz", "lzr", "range", "deflate"] as const) {
    pairs.forEach((p, index) => {
      const patch = makePatch(p.old, p.new, { codec: codecs[codec] }).bytes;
      const boot = codec === "range" ? `delta-range-${index}` : `delta-${codec}`;
      out.push({ name: `${p.name} (${codec})`, codec, old: b64(p.old), patch: b64(patch), newSha256: sha256Hex(p.new), newLength: p.new.length, oldLength: p.old.length, index, boot });
    });
  }
  return out;
}

/** One QEMU boot: an ELF and the tasks it runs, in order. */
export interface Boot {
  id: string;
  elf: string;
  tasks: string[];
}

export interface Lane {
  elves: { [name: string]: Elf };
  pairs: PairInput[];
  flipped: PairInput;
  /** The boots of `npm run test:device`. */
  boots: Boot[];
  /** Boots only the bench runs (too long for the lane). */
  benchBoots: Boot[];
}

/** Build every ELF of the lane (XS objects once, then one link each). */
export async function buildLane(): Promise<Lane> {
  const pairs = pairInputs();
  // The version-bump pair (DEFLATE) with the expected image flipped in one byte: the lane must see it.
  const bump = pairs.find((p) => p.codec === "deflate")!;
  const wrongNew = Buffer.from(fixturePairs()[0].new);
  wrongNew[wrongNew.length >> 1] ^= 0x01;
  const flipped: PairInput = { ...bump, name: `${bump.name}, expected image flipped in one byte`, newSha256: sha256Hex(wrongNew) };
  const elves: { [name: string]: Elf } = {};
  const specs: [string, string][] = [
    ["foundation", entry("test/xs/entries/foundation.ts")],
    ["verify", deltaEntry(verifyInput(), entry("test/device/entries/verify.ts"))],
    ["delta-range", deltaEntry({ pairs: pairs.filter((p) => p.codec === "range") }, entry("test/device/entries/delta.ts"))],
    ["delta-deflate", deltaEntry({ pairs: pairs.filter((p) => p.codec === "deflate") }, entry("test/device/entries/delta.ts"))],
    ["delta-lz", deltaEntry({ pairs: pairs.filter((p) => p.codec === "lz") }, entry("test/device/entries/delta.ts"))],
    ["delta-lzr", deltaEntry({ pairs: pairs.filter((p) => p.codec === "lzr") }, entry("test/device/entries/delta.ts"))],
    ["delta-flipped", deltaEntry({ pairs: [flipped] }, entry("test/device/entries/delta.ts"))],
    ["at", entry("test/xs/entries/at.ts")],
    ["agent", entry("test/xs/entries/agent.ts")],
    ["strict-textencoder", entry("test/xs/entries/strict-textencoder.ts")],
    ["strict-frozen", entry("test/xs/entries/strict-frozen.ts")],
    ["enc", encEntry(entry("test/device/entries/enc.ts"))],
    ["trust", entry("test/xs/entries/trust.ts")],
    ["identity", entry("test/xs/entries/identity.ts")],
  ];
  // The encrypted-image ELF's bundle (the agent, the sim world, the encryptor and the Cipher suite) needs more
  // parser heap than the default split leaves (harness/device.ld): 12 MiB of PSRAM for the C heap, 4 MiB of arena
  // (its tasks peak below 3 MiB). A device does not parse: this is the lane's cost, not the device's.
  // The key-role and identity ELFs carry the agent and the sim world too: the same split.
  const bigParse = { XS_ARENA_SIZE: 4 * 1024 * 1024, C_HEAP_SIZE: 12 * 1024 * 1024 };
  const defsyms: { [name: string]: { [symbol: string]: number } } = { enc: bigParse, trust: bigParse, identity: bigParse };
  for (const [name, path] of specs) elves[name] = await buildDevice(name, path, defsyms[name]);
  const pairTasks = [0, 1, 2, 3].map((i) => `pair-${i}`);
  const boots: Boot[] = [
    { id: "foundation", elf: elves.foundation.path, tasks: ["@calibrate-long", "conformance", "powercut", "bootloader"] },
    { id: "throws", elf: elves.foundation.path, tasks: ["throws"] },
    { id: "verify", elf: elves.verify.path, tasks: ["ecdsa-verify", "ecdsa-verify", "ecdsa-verify-wrong-digest", "sha256", "sha256-native", "crc32-native", "typed-array-set", "image-setup", "verify-image", "verify-image-tampered"] },
    // The range-coded installs are the lane's longest work: one boot per pair, so two cores share them.
    ...[0, 1, 2, 3].map((i) => ({ id: `delta-range-${i}`, elf: elves["delta-range"].path, tasks: [`pair-${i}`] })),
    { id: "delta-deflate", elf: elves["delta-deflate"].path, tasks: pairTasks },
    { id: "delta-lz", elf: elves["delta-lz"].path, tasks: [...pairTasks, "native-flash-strict"] },
    { id: "delta-lzr", elf: elves["delta-lzr"].path, tasks: pairTasks },
    { id: "delta-flipped", elf: elves["delta-flipped"].path, tasks: ["pair-0"] },
    { id: "at", elf: elves.at.path, tasks: ["at-timing", "at-parse-cost"] },
    { id: "agent", elf: elves.agent.path, tasks: ["full-update"] },
    { id: "strict-textencoder", elf: elves["strict-textencoder"].path, tasks: ["encoded"] },
    { id: "strict-frozen", elf: elves["strict-frozen"].path, tasks: ["assign-error-name", "patch-builtin-prototype", "define-error-name", "realm"] },
    // encrypted images (issue 19): AES-CTR's cost, the key unwrap, the same full update plain and encrypted, and full + delta
    { id: "enc", elf: elves.enc.path, tasks: ["cipher-conformance", "aes-ctr-64k", "unwrap-timed", "install-plain-vs-enc"] },
    { id: "enc-updates", elf: elves.enc.path, tasks: ["enc-updates"] },
    // identity and trust (issue 16): the same tasks the XS lane runs, on the M7
    { id: "trust", elf: elves.trust.path, tasks: ["expired-replay", "retired-batch-key", "revocation-lockout", "keyset-decode"] },
    { id: "identity", elf: elves.identity.path, tasks: ["identity-suites", "identity-keygen-csr", "identity-cert-parse"] },
  ];
  // The AT command-table suites (18 sessions, each with PBKDF2 password checks) take ~1.3 × 10¹¹
  // instructions, over five minutes of QEMU: the bench runs them, the lane runs the scripted sessions.
  const benchBoots: Boot[] = [{ id: "at-table", elf: elves.at.path, tasks: ["at-table"] }];
  return { elves, pairs, flipped, boots, benchBoots };
}

/** Run boots two at a time (two cores), longest first; each resolves on its own. */
export function runBoots(boots: Boot[], timeoutMs = 540_000, width = 2): Map<string, Promise<DeviceRun>> {
  const logDir = join(outDir, "logs"); // each boot's console, as it runs: dist/device/logs/<boot>.log
  mkdirSync(logDir, { recursive: true });
  const out = new Map<string, Promise<DeviceRun>>();
  let running = 0;
  const queue: (() => void)[] = [];
  const slot = () => new Promise<void>((r) => (running < width ? (running++, r()) : queue.push(() => (running++, r()))));
  const release = () => {
    running--;
    queue.shift()?.();
  };
  for (const b of boots) {
    out.set(
      b.id,
      slot().then(() =>
        runDevice(b.elf, b.tasks, timeoutMs, join(logDir, `${b.id}.log`)).finally(release),
      ),
    );
  }
  return out;
}

/** The device budgets (design.md section 9). */
export const BUDGET = { installWorkingMemory: 64 * 1024, patchDecoder: 32 * 1024 };
/** An M7 at 400 MHz retiring one instruction per cycle (an assumption: the M7 can dual-issue, and waits on memory). */
export const CLOCK_HZ = 400e6;

export interface Row {
  workload: string;
  instructions: number;
  /** Bytes the workload produced or consumed, for instructions per byte. */
  bytes?: number;
  task: DeviceTask;
  /** Bytes written to flash (for the flash-time estimate). */
  flashBytes?: number;
}

/** Thousands separated by commas (not toLocaleString: SES, loaded by the XS harness, tames it). */
export const fmt = (n: number) => String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

export function tableHeader(): string[] {
  return [
    "| workload | instructions | instructions/byte | XS memory before (chunks+slots) | at peak | difference | time at 400 MHz (1 IPC) |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
}

export function tableLine(r: Row): string {
  const m = r.task.memory;
  const before = m.chunksBefore + m.slotsBefore;
  const peak = m.chunksPeak + m.slotsPeak;
  const perByte = r.bytes ? (r.instructions / r.bytes).toFixed(r.instructions / r.bytes < 100 ? 1 : 0) : "-";
  const ms = (r.instructions / CLOCK_HZ) * 1000;
  return `| ${r.workload} | ${fmt(r.instructions)} | ${perByte} | ${fmt(before)} | ${fmt(peak)} | ${fmt(peak - before)} | ${ms < 10 ? ms.toFixed(2) : fmt(ms)} ms |`;
}

/** A pair task's reply (test/xs/entries/delta.ts `PairReply`; the device entry times the sections). */
export interface PairValue {
  name: string;
  length: number;
  ok: boolean;
  workingMemory: number;
  sections: { hashOld: number; decode: number; hashNew: number };
}

/** A pair's install as the device runs it: each part's instructions, timed inside the task (none of the set-up). */
export function pairSections(run: DeviceRun, pair: PairInput): { task: DeviceTask<PairValue>; hashOld: number; decode: number; hashNew: number; install: number } {
  const task = run.tasks.find((t) => t.name === `pair-${pair.index}`) as DeviceTask<PairValue> | undefined;
  if (!task || !task.ok) throw new Error(`device: ${pair.name} did not run\n${task?.error ?? ""}\n${run.output.slice(-3000)}`);
  const s = task.value.sections;
  if (!s) throw new Error(`device: ${pair.name} reported no sections (not the device entry?)`);
  return { task, ...s, install: s.hashOld + s.decode + s.hashNew };
}

/** The whole install of a pair (hash the old image, decode + write, hash the new image; native SHA-256). */
export function pairRow(run: DeviceRun, pair: PairInput): Row {
  const p = pairSections(run, pair);
  return { workload: `install ${pair.name}`, instructions: p.install, bytes: pair.newLength, task: p.task, flashBytes: pair.newLength };
}

/** Decode + write alone (the patcher with the old hash known and the new image checked after, as the agent runs it). */
export function decodeRow(run: DeviceRun, pair: PairInput): Row {
  const p = pairSections(run, pair);
  return { workload: `decode + write ${pair.name}`, instructions: p.decode, bytes: pair.newLength, task: p.task };
}

/**
 * STM32H743 flash (the repo's flash map: targets/sim/flashmap.ts, 128 KiB sectors): sector erase
 * 1.1 s typical at x32 parallelism (ST, DS12110 "Flash memory programming", as quoted by ST on
 * community.st.com). Programming time is not included: the estimate is a lower bound.
 */
export const SECTOR_BYTES = 128 * 1024;
export const SECTOR_ERASE_MS = 1100;
export const flashMs = (bytes: number) => Math.ceil(bytes / SECTOR_BYTES) * SECTOR_ERASE_MS;
/** Milliseconds at CLOCK_HZ, one instruction per cycle. */
export const msAt400 = (instructions: number) => (instructions / CLOCK_HZ) * 1000;
