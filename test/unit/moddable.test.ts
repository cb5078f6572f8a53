/**
 * The root Moddable manifest against the code it builds (compiler settings
 * as tsconfig.moddable.json minus noEmit, the package modules the entries
 * reach mapped under the names XS resolves, the SDK modules they import
 * provided, native modules listed, creation sizes, config keys), the device
 * type-check and proof that it fails on a real error, and the adapters'
 * behaviour against fakes shaped like the SDK modules' sources (commit
 * 48ee02d): flash-zephyr, serial.c with mcdevicetree's provider, tcp.c,
 * tlssocket.js and the UDP DNS resolver.
 */
// The adapters under test import Moddable modules; their declarations, as tsconfig.moddable.json sees them.
/// <reference path="../../node_modules/@moddable/typings/timer.d.ts" />
/// <reference path="../../node_modules/@moddable/typings/embedded_io/_common.d.ts" />
/// <reference path="../../node_modules/@moddable/typings/embedded_io/socket/tcp.d.ts" />
/// <reference path="../../hal/moddable/sdk-typings.d.ts" />
/// <reference path="../../hal/moddable/moddable.d.ts" />
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { ModdableFlash } from "../../hal/moddable/flash";
import { isIPv4Literal, ModdableNetwork, SDK_SIGNS_P256_CLIENT_AUTH, type NameResolver } from "../../hal/moddable/network";
import { ModdableSerial, serialPort, type SerialIO } from "../../hal/moddable/serial";
import { OtaError, Reason } from "../../src/errors";
import { flashConformance } from "../conformance/flash";
import { registerSuite } from "../lib/vitest-suite";

/*
 * Fakes of the Moddable modules the adapters import, each shaped like the
 * module's SOURCE at SDK commit 48ee02d (not its typings): the constructor
 * arguments it reads, the errors it throws, the callbacks it makes.
 */
const fake = vi.hoisted(() => {
  /** timer (modules/base/timer): set(callback, delay, repeat?) → id, clear(id); fired by the test. */
  const timers = new Map<number, { callback: () => void; delay: number }>();
  let nextTimer = 1;
  const Timer = {
    set(callback: () => void, delay = 0) {
      const id = nextTimer++;
      timers.set(id, { callback, delay });
      return id;
    },
    repeat(callback: () => void, delay: number) {
      return Timer.set(callback, delay);
    },
    clear(id: number | undefined) {
      if (id !== undefined) timers.delete(id);
    },
  };

  /**
   * embedded:storage/flash on Zephyr (modules/io/flash/zephyr/flash-zephyr.js, .c)
   * over an STM32H7-like part: a partition found by label ("can't find
   * partition"), ArrayBuffer reads, a write over a programmed flash word refused
   * by the driver (flash_area_write < 0 → "write failed"), and xsLog's
   * "write returned %d" line on every write.
   */
  class ZephyrPartition {
    readonly log: string[] = [];
    readonly bytes: Uint8Array;
    readonly programmed: Uint8Array;
    closed = false;
    constructor(readonly size: number, readonly blockLength: number, readonly writeAlign: number, readonly readOnly: boolean) {
      this.bytes = new Uint8Array(size).fill(0xff);
      this.programmed = new Uint8Array(size / writeAlign);
    }
    status() {
      return { size: this.size, blockLength: this.blockLength, blocks: this.size / this.blockLength, writeAlign: this.writeAlign, eraseValue: 0xff };
    }
    read(byteLength: number, byteOffset: number): ArrayBuffer {
      if (byteOffset + byteLength > this.size) throw new Error("read failed");
      return this.bytes.slice(byteOffset, byteOffset + byteLength).buffer;
    }
    write(buffer: ArrayBuffer | ArrayBufferView, byteOffset: number): void {
      if (this.readOnly) throw new Error("read-only");
      const data = buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      let ret = 0;
      if (byteOffset % this.writeAlign !== 0 || data.length % this.writeAlign !== 0 || byteOffset + data.length > this.size) ret = -22;
      else for (let u = byteOffset / this.writeAlign; u < (byteOffset + data.length) / this.writeAlign; u++) if (this.programmed[u]) ret = -5;
      if (ret === 0) {
        this.bytes.set(data, byteOffset);
        this.programmed.fill(1, byteOffset / this.writeAlign, (byteOffset + data.length) / this.writeAlign);
      }
      this.log.push(`write returned ${ret}`);
      if (ret < 0) throw new Error("write failed");
    }
    eraseBlock(start: number, end?: number): void {
      if (this.readOnly) throw new Error("read-only");
      const stop = end ?? start + 1;
      if (start < 0 || stop * this.blockLength > this.size) throw new Error("erase failed");
      this.bytes.fill(0xff, start * this.blockLength, stop * this.blockLength);
      this.programmed.fill(0, (start * this.blockLength) / this.writeAlign, (stop * this.blockLength) / this.writeAlign);
    }
    close(): void {
      this.closed = true;
    }
  }
  const partitions = new Map<string, ZephyrPartition>();
  const opened: { path: string; mode?: string }[] = [];
  const flash = {
    open(options: { path: string; mode?: "r" | "r+" }) {
      if (!("path" in options)) throw new Error("no path");
      opened.push(options);
      const found = partitions.get(options.path);
      if (found === undefined) throw new Error("can't find partition");
      if (options.mode !== undefined && options.mode !== "r" && options.mode !== "r+") throw new Error("invalid mode");
      return found;
    },
  };

  /**
   * embedded:io/socket/tcp on Zephyr (modules/io/socket/zephyr/tcp.c): reads
   * `address` with net_addr_pton(AF_INET) ("invalid address"), never `host`;
   * onWritable reports free send space (2048-byte buffer less bytes in
   * flight); write beyond it throws "would block"; read(count) beyond what
   * arrived throws "invalid".
   */
  const sockets: FakeTCP[] = [];
  class FakeTCP {
    readonly options: Record<string, unknown>;
    readonly sent: Uint8Array[] = [];
    received: Uint8Array[] = [];
    inFlight = 0;
    closed = false;
    constructor(options: Record<string, unknown>) {
      const port = options.port as number;
      if (!(port >= 0 && port <= 65535)) throw new RangeError("invalid port");
      const address = String(options.address);
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) throw new RangeError("invalid address");
      this.options = options;
      sockets.push(this);
    }
    connect(): void {
      (this.options.onWritable as (n: number) => void)?.(2048 - this.inFlight);
    }
    arrive(data: Uint8Array): void {
      this.received.push(data);
      (this.options.onReadable as (n: number) => void)?.(this.received.reduce((n, d) => n + d.length, 0));
    }
    drain(): void {
      this.inFlight = 0;
      (this.options.onWritable as (n: number) => void)?.(2048);
    }
    error(): void {
      (this.options.onError as () => void)?.();
    }
    read(count: number): ArrayBuffer {
      const all = new Uint8Array(this.received.reduce((n, d) => n + d.length, 0));
      let at = 0;
      for (const d of this.received) {
        all.set(d, at);
        at += d.length;
      }
      if (count <= 0 || count > all.length) throw new Error("invalid");
      this.received = count < all.length ? [all.slice(count)] : [];
      return all.slice(0, count).buffer;
    }
    write(data: ArrayBuffer): number {
      if (data.byteLength > 2048 - this.inFlight) throw new Error("would block");
      this.sent.push(new Uint8Array(data.slice(0)));
      this.inFlight += data.byteLength;
      return 2048 - this.inFlight;
    }
    close(): void {
      this.closed = true;
    }
  }

  /**
   * embedded:io/socket/tcp/tls (examples/io/tcp/tlssocket/tlssocket.js): a
   * Session from {serverName: host, ...secure}, then
   * `new options.TCP.io({...options, onReadable, onWritable, onError})` —
   * without options.TCP that is a TypeError. Here the "handshake" completes
   * when the TCP socket first becomes writable, and records pass through.
   */
  const tlsSockets: FakeTLS[] = [];
  class FakeTLS {
    readonly options: Record<string, unknown>;
    readonly session: Record<string, unknown>;
    readonly tcp: FakeTCP;
    constructor(options: Record<string, unknown>) {
      this.options = options;
      this.session = { serverName: options.host, ...(options.secure as object), protocolVersion: 0x303 };
      const TCP = (options.TCP as { io: typeof FakeTCP }).io;
      this.tcp = new TCP({
        ...options,
        onReadable: (n: number) => (options.onReadable as (n: number) => void)?.(n),
        onWritable: (n: number) => (n > 96 ? (options.onWritable as (n: number) => void)?.(n - 96) : undefined),
        onError: () => (options.onError as () => void)?.(),
      });
      tlsSockets.push(this);
    }
    read(count: number): ArrayBuffer {
      return this.tcp.read(count);
    }
    write(data: ArrayBuffer): void {
      this.tcp.write(data);
    }
    close(): void {
      this.tcp.close();
    }
  }

  return { timers, Timer, partitions, opened, flash, ZephyrPartition, sockets, FakeTCP, tlsSockets, FakeTLS };
});

vi.mock("timer", () => ({ default: fake.Timer }));
vi.mock("embedded:storage/flash", () => ({ default: fake.flash }));
vi.mock("embedded:io/socket/tcp", () => ({ default: fake.FakeTCP }));
vi.mock("embedded:io/socket/tcp/tls", () => ({ default: fake.FakeTLS }));

const manifest = JSON.parse(readFileSync("manifest.json", "utf8"));
const tsconfig = JSON.parse(readFileSync("tsconfig.moddable.json", "utf8"));

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith(".ts") && !p.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** A manifest module path ("./x/*" or "./x/y") resolves to something on disk. */
function pathExists(path: string): boolean {
  const p = path.replace(/^\.\//, "");
  if (p.endsWith("/*")) return existsSync(p.slice(0, -2));
  return [".ts", ".js", ".c"].some((ext) => existsSync(p + ext));
}

/** The entries mcconfig builds: each target's app (zephyr), conformance on the device (zephyr) and in the simulator (lin). */
const entries = ["usr-n520", "usr-g771"].flatMap((t) => [`targets/${t}/main.ts`, `targets/${t}/conformance/main.ts`, `targets/${t}/conformance/sim.ts`]);

/** "…/node_modules/@noble/hashes/sha2.js" → "@noble/hashes/sha2", the name XS gives the module. */
function moduleName(file: string): string {
  const p = file.replaceAll("\\", "/");
  return p.slice(p.lastIndexOf("node_modules/") + "node_modules/".length).replace(/\.m?js$/, "");
}

/** A specifier as XS resolves it: a trailing .js / .mjs stripped. */
function xsName(specifier: string): string {
  return specifier.replace(/\.m?js$/, "");
}

/** The SDK modules the entries import, and what provides each in a zephyr build (checked against the SDK at 48ee02d by hand). */
const sdkModules: Record<string, string> = {
  timer: "device: build/devices/zephyr/manifest.json",
  time: "device: build/devices/zephyr/manifest.json",
  "mc/config": "mcconfig: generated",
  crypt: "root include: $(MODULES)/crypt/digest/manifest.json",
  "embedded:provider/builtin": "device: modules/io/manifests/zephyr → $(SUBPLATFORMDIRECTORY)/host/provider",
  "embedded:storage/flash": "include:$(MODDABLE)/modules/io/flash/manifest.json",
  "embedded:io/socket/tcp": "root:$(MODULES)/io/socket/zephyr/tcp",
  "embedded:io/socket/udp": "root:$(MODULES)/io/socket/zephyr/udp",
  "embedded:io/socket/tcp/tls": "include:$(MODDABLE)/examples/io/tcp/tlssocket/manifest.json",
  "embedded:network/dns/resolver/udp": "include:$(MODDABLE)/examples/io/udp/dns/manifest_dns.json",
  // hal/moddable/random.ts reseeds it; it comes with the TLS socket: tlssocket/manifest.json → crypt/tls_419.json → tls_common.json
  rng: "with embedded:io/socket/tcp/tls: $(MODULES)/crypt/tls_common.json",
};

describe("root manifest", () => {
  it("gives mcconfig's TypeScript step the compiler options CI checks with, without noEmit", () => {
    // mcconfig merges typescript.tsconfig into tsconfig-base.json, which every
    // per-file tsconfig extends: noEmit there means tsc writes no .js and xsc
    // then fails with "file not found" (tools/mcmanifest.js TSConfigFile).
    const { noEmit, ...rest } = tsconfig.compilerOptions;
    expect(noEmit).toBe(true);
    expect(manifest.typescript.tsconfig.compilerOptions).toEqual(rest);
    expect(JSON.stringify(manifest)).not.toMatch(/noEmit/);
  });

  it("adds hal/moddable/moddable.d.ts to mcconfig's types for zephyr builds, never the npm-only sdk-typings.d.ts", () => {
    // mcconfig's per-file tsconfigs list one file each; ambient declarations
    // reach them only through compilerOptions.types (resolved against the
    // manifest's directory, as the SDK's own manifests add theirs).
    expect(manifest.platforms["zephyr/*"].typescript.tsconfig.compilerOptions.types).toEqual(["./hal/moddable/moddable"]);
    expect(existsSync("hal/moddable/moddable.d.ts")).toBe(true);
    expect(JSON.stringify(manifest)).not.toMatch(/sdk-typings/);
    expect(tsconfig.files).toContain("hal/moddable/moddable.d.ts");
    expect(tsconfig.files).toContain("hal/moddable/sdk-typings.d.ts");
  });

  it("maps every src/ directory and hal/types, and every mapped path exists", () => {
    const dirs = readdirSync("src").filter((d) => statSync(join("src", d)).isDirectory());
    for (const d of dirs) expect(manifest.modules[`src/${d}/*`], `src/${d}`).toBe(`./src/${d}/*`);
    expect(manifest.modules["src/*"]).toBe("./src/*");
    expect(manifest.modules["hal/types"]).toBe("./hal/types");
    const all: string[] = [];
    const collect = (mods: Record<string, string | string[]>) => {
      for (const v of Object.values(mods)) all.push(...(Array.isArray(v) ? v : [v]));
    };
    collect(manifest.modules);
    for (const p of Object.values(manifest.platforms) as { modules?: Record<string, string | string[]> }[]) if (p.modules) collect(p.modules);
    // $(MODULES)/... and $(MODDABLE)/... are the SDK's; CI has no SDK to look in.
    for (const p of all.filter((x) => !x.startsWith("$("))) expect(pathExists(p), p).toBe(true);
  });

  it("maps exactly the package modules the entries reach, under the names XS looks them up by", async () => {
    // XS (xs/platforms/mc/xsHosts.c fxFindModule) strips a trailing .js/.mjs
    // from a specifier and resolves "./x" against the importer's module name,
    // so "@noble/hashes/sha2.js" and weierstrass's "./modular.js" are found
    // as "@noble/hashes/sha2" and "@noble/curves/abstract/modular".
    const reached = new Set<string>();
    const external = new Set<string>();
    for (const entry of entries) {
      const imports: { importer: string; path: string }[] = [];
      await esbuild.build({
        entryPoints: [entry],
        bundle: true,
        write: false,
        format: "esm",
        logLevel: "silent",
        plugins: [
          {
            name: "scan",
            setup(build) {
              build.onResolve({ filter: /.*/ }, (args) => {
                imports.push({ importer: args.importer, path: args.path });
                const bare = !args.path.startsWith(".") && !args.path.startsWith("/");
                if (bare && !args.path.startsWith("@noble/")) return { path: args.path, external: true };
                return undefined;
              });
              build.onLoad({ filter: /node_modules[\\/]@noble[\\/]/ }, (args) => {
                reached.add(moduleName(args.path));
                return undefined;
              });
            },
          },
        ],
      });
      for (const i of imports) {
        const bare = !i.path.startsWith(".") && !i.path.startsWith("/");
        if (!bare || i.path.startsWith("@noble/")) continue;
        external.add(i.path);
      }
      for (const i of imports.filter((x) => x.path.startsWith("@noble/"))) {
        expect(manifest.modules[xsName(i.path)], `${i.path} imported by ${i.importer}`).toBeDefined();
      }
    }
    const mapped = Object.keys(manifest.modules).filter((k) => k.startsWith("@noble/"));
    expect(mapped.filter((k) => /\.m?js$/.test(k)), "keys XS can never find").toEqual([]);
    expect([...mapped].sort()).toEqual([...reached].sort());
    for (const k of mapped) expect(manifest.modules[k]).toBe(`./node_modules/${k}`);
    // P-256 verification only: nist.js and what only it pulls in stay out.
    for (const k of mapped) expect(k).not.toMatch(/nist|frost|oprf|fft|hash-to-curve/);
    // Everything else the entries import is the SDK's, from a manifest the root (or the SDK's device manifest) brings in.
    expect([...external].sort()).toEqual(Object.keys(sdkModules).sort());
    const z = manifest.platforms["zephyr/*"];
    for (const [spec, from] of Object.entries(sdkModules)) {
      if (from.startsWith("root:")) expect(z.modules[spec], spec).toBe(from.slice(5));
      else if (from.startsWith("include:")) expect(z.include, spec).toContain(from.slice(8));
    }
  });

  it("lists the native C modules for zephyr builds only", () => {
    const natives = manifest.platforms["zephyr/*"].modules["*"] as string[];
    const onDisk = readdirSync("hal/moddable/native").filter((f) => f.endsWith(".c")).map((f) => `./hal/moddable/native/${f.slice(0, -2)}`).sort();
    expect([...natives].sort()).toEqual(onDisk);
    expect(manifest.platforms["zephyr/*"].modules["hal/moddable/*"]).toBe("./hal/moddable/*");
    for (const host of ["mac", "lin", "win"]) {
      expect(manifest.platforms[host].modules["hal/moddable/*"], host).toBeUndefined();
      expect(manifest.platforms[host].modules["hal/mock/*"], host).toBe("./hal/mock/*");
    }
  });

  it("sizes the XS machine for the device: one static block inside the 512 KiB AXI SRAM that the pools grow in", () => {
    const c = manifest.creation;
    expect(c.static).toBe(384 * 1024);
    expect(c.static).toBeLessThanOrEqual(512 * 1024 - 64 * 1024); // leaves AXI SRAM for Zephyr's heap and stacks
    // A fixed 64 KiB chunk heap aborts ("Chunk allocation: 65552 bytes failed
    // in fixed size heap", XS abort: memory full) on the first 64 KiB buffer.
    // The initial pools hold the lin conformance run with growth switched off
    // (the lin block below); on the device they may grow, bounded by static
    // (xs/platforms/mc/xsHosts.c fxAllocateChunks/fxAllocateSlots take both
    // pools from the one static block).
    expect(c.chunk.initial).toBe(128 * 1024);
    expect(c.chunk.incremental).toBeGreaterThan(0);
    expect(c.heap.initial).toBe(8192);
    expect(c.heap.incremental).toBeGreaterThan(0);
    expect(c.keys.incremental).toBe(0);
    const slot = 16; // sizeof(txSlot) on a 32-bit MCU
    expect(c.stack * slot).toBe(16 * 1024);
    // Initial pools plus stack leave a quarter of the block for growth (TLS, the install working set).
    expect(c.chunk.initial + c.heap.initial * slot + c.stack * slot).toBeLessThanOrEqual(c.static * 0.75);
    expect(manifest.platforms.lin.creation).toEqual({ chunk: { incremental: 0 }, heap: { incremental: 0 } });
    expect(manifest.strip).toBe("*");
  });

  it("defines every config key the device platform reads", () => {
    const platformSrc = readFileSync("hal/moddable/platform.ts", "utf8");
    const keys = [...platformSrc.matchAll(/need\("(\w+)"/g)].map((m) => m[1]);
    expect(keys.length).toBeGreaterThan(5);
    for (const k of keys) expect(manifest.config[k], k).toBeDefined();
    expect(manifest.config).toMatchObject({ partitionSlot0: "image-0", partitionSlot1: "image-1", partitionStorage: "storage" });
    expect(manifest.config.watchdogTimeoutMs).toBeLessThanOrEqual(32000);
  });
});

describe("device type-check (tsconfig.moddable.json against @moddable/typings)", () => {
  const tsc = (project: string) => spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", project, "--noEmit"], { encoding: "utf8", timeout: 120_000 });

  it("passes on the adapters and targets", () => {
    const r = tsc("tsconfig.moddable.json");
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("fails on a real error: a Moddable API the typings do not have", () => {
    const dir = mkdtempSync(join(tmpdir(), "xsota-moddable-"));
    try {
      const broken = join(dir, "broken.ts");
      writeFileSync(broken, 'import Timer from "timer";\nTimer.sett(() => {}, 10);\n');
      const cfg = join(dir, "tsconfig.json");
      writeFileSync(cfg, JSON.stringify({ extends: join(process.cwd(), "tsconfig.moddable.json"), include: [broken], files: tsconfig.files.map((f: string) => join(process.cwd(), f)) }));
      const r = tsc(cfg);
      expect(r.status).not.toBe(0);
      expect(r.stdout).toMatch(/Property 'sett' does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("ModdableFlash against a fake shaped like flash-zephyr.js/.c", () => {
  beforeEach(() => {
    fake.partitions.clear();
    fake.opened.length = 0;
    fake.partitions.set("storage", new fake.ZephyrPartition(4 * 8192, 8192, 32, false));
  });

  it("opens the partition by its devicetree label, read-write, and refuses an unknown one with FLASH_IO", () => {
    const f = new ModdableFlash("storage");
    expect(fake.opened).toEqual([{ path: "storage", mode: "r+" }]);
    expect(f.status()).toEqual({ size: 32768, blockLength: 8192, writeAlign: 32, eraseValue: 0xff });
    expect(() => new ModdableFlash("image-7")).toThrow(expect.objectContaining({ code: Reason.FLASH_IO, message: expect.stringMatching(/can't find partition/) }));
  });

  it("makes exactly one module write per HAL write (each logs a line on Zephyr) and none for zero bytes", () => {
    const f = new ModdableFlash("storage");
    const p = fake.partitions.get("storage")!;
    f.write(new Uint8Array(4096).fill(0x5a), 0);
    f.write(new Uint8Array(0), 4096);
    expect(p.log).toEqual(["write returned 0"]);
    expect(f.read(4, 4092)).toEqual(new Uint8Array([0x5a, 0x5a, 0x5a, 0x5a]));
  });

  it("checks alignment and bounds before the module sees them, and maps a driver refusal to FLASH_IO", () => {
    const f = new ModdableFlash("storage");
    const p = fake.partitions.get("storage")!;
    expect(() => f.write(new Uint8Array(32), 16)).toThrow(expect.objectContaining({ code: Reason.FLASH_ALIGN }));
    expect(() => f.write(new Uint8Array(32), 32768)).toThrow(expect.objectContaining({ code: Reason.FLASH_RANGE }));
    expect(() => f.read(4097, 0)).toThrow(expect.objectContaining({ code: Reason.FLASH_RANGE }));
    expect(p.log).toEqual([]);
    f.write(new Uint8Array(32), 0);
    expect(() => f.write(new Uint8Array(32), 0)).toThrow(expect.objectContaining({ code: Reason.FLASH_IO }));
    expect(() => f.eraseBlock(4)).toThrow(expect.objectContaining({ code: Reason.FLASH_RANGE }));
    f.eraseBlock(0);
    expect(f.read(32, 0)).toEqual(new Uint8Array(32).fill(0xff));
  });
});

registerSuite(
  flashConformance({
    name: "ModdableFlash over the flash-zephyr fake (STM32H7 geometry)",
    strict: false,
    make: () => {
      fake.partitions.set("storage", new fake.ZephyrPartition(4 * 8192, 8192, 32, false));
      return { flash: new ModdableFlash("storage") };
    },
  }),
);

describe("ModdableSerial against a fake shaped like serial.c and mcdevicetree's provider", () => {
  /** modules/io/serial/zephyr/serial.c: requires port and baud; onWritable(count) is the free ring space; write beyond it throws "output full". */
  class FakeSerial implements SerialIO {
    static last: FakeSerial | undefined;
    space = 64;
    readonly sent: number[] = [];
    rx: number[] = [];
    constructor(readonly options: { port: string; baud: number; format: string; onReadable(n: number): void; onWritable(n: number): void }) {
      if (options.port !== "usart3" && options.port !== "usart2") throw new Error("invalid port");
      if (!(options.baud > 0 && options.baud <= 20000000)) throw new RangeError("invalid baud");
      FakeSerial.last = this;
    }
    read(count?: number): ArrayBuffer | undefined {
      if (this.rx.length === 0) return undefined;
      const n = Math.min(count ?? this.rx.length, this.rx.length);
      return new Uint8Array(this.rx.splice(0, n)).buffer;
    }
    write(data: ArrayBuffer | ArrayBufferView | number): void {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array([data]);
      if (bytes.length > this.space) throw new Error("output full");
      this.space -= bytes.length;
      this.sent.push(...bytes);
    }
    close(): void {}
  }
  /** What tools/mcdevicetree.js generates: {io, port} (+ baud only with current-speed) per UART, the first as default. */
  const provider = {
    io: { Serial: FakeSerial },
    serial: {
      usart2: Object.freeze({ io: FakeSerial, port: "usart2", baud: 115200 }),
      usart3: Object.freeze({ io: FakeSerial, port: "usart3" }),
      default: undefined as unknown,
    },
  };
  provider.serial.default = provider.serial.usart2;

  it("opens the labelled UART (or the default) with the configured baud; the typings' device.Serial does not exist", () => {
    const s = new ModdableSerial(serialPort(provider, "usart3"), 115200);
    expect(s).toBeInstanceOf(ModdableSerial);
    expect(FakeSerial.last?.options).toMatchObject({ port: "usart3", baud: 115200, format: "buffer" });
    expect(serialPort(provider).port).toBe("usart2");
    expect(() => serialPort({ io: provider.io, Serial: { default: { port: "usart3" } } })).toThrow(TypeError);
    expect(() => serialPort(provider, "usart1")).toThrow(/device\.serial\.usart1/);
  });

  it("writes no more than the reported free space, queues the rest, and recovers from a stale count", () => {
    const s = new ModdableSerial(serialPort(provider, "usart3"), 115200);
    const io = FakeSerial.last!;
    s.write(new Uint8Array(100).fill(1));
    expect(io.sent.length).toBe(0); // nothing before the first onWritable
    io.options.onWritable(64);
    expect(io.sent.length).toBe(64);
    io.space = 10;
    io.options.onWritable(64); // stale: the ring has 10 bytes free, the module throws "output full"
    expect(io.sent.length).toBe(64);
    io.space = 64;
    io.options.onWritable(64);
    expect(io.sent.length).toBe(100);
    const got: number[] = [];
    s.onReceive((d) => got.push(...d));
    io.rx = [0x41, 0x54, 0x0d];
    io.options.onReadable(3);
    expect(got).toEqual([0x41, 0x54, 0x0d]);
  });
});

describe("ModdableNetwork against fakes shaped like tcp.c, tlssocket.js and the UDP DNS resolver", () => {
  beforeEach(() => {
    fake.sockets.length = 0;
    fake.tlsSockets.length = 0;
    fake.timers.clear();
  });

  class FakeResolver implements NameResolver {
    static made: FakeResolver[] = [];
    request: { host: string; onResolved(host: string, address: string): void; onError(host: string): void } | undefined;
    closed = false;
    constructor() {
      FakeResolver.made.push(this);
    }
    resolve(options: { host: string; onResolved(host: string, address: string): void; onError(host: string): void }) {
      this.request = options;
    }
    close() {
      this.closed = true;
    }
  }

  it("connects to an IPv4 literal by `address` (Zephyr TCP never reads `host`)", () => {
    const events: string[] = [];
    const net = new ModdableNetwork(1000);
    net.connect({ host: "192.0.2.7", port: 1883, tls: false }, { onConnect: () => events.push("connect") });
    expect(fake.sockets).toHaveLength(1);
    expect(fake.sockets[0].options).toMatchObject({ address: "192.0.2.7", port: 1883, format: "buffer" });
    expect(fake.sockets[0].options.host).toBeUndefined();
    fake.sockets[0].connect();
    expect(events).toEqual(["connect"]);
  });

  it("refuses a host name up front when no DNS server is configured", () => {
    const net = new ModdableNetwork(1000);
    expect(() => net.connect({ host: "mqtt.example.com", port: 1883, tls: false }, {})).toThrow(
      expect.objectContaining({ code: Reason.BAD_ARGUMENT, message: expect.stringMatching(/IPv4 literal/) }),
    );
    expect(fake.sockets).toHaveLength(0);
  });

  it("resolves a name first, then connects to the address; a failed lookup closes with SOCKET_REFUSED", () => {
    FakeResolver.made = [];
    const closes: number[] = [];
    const net = new ModdableNetwork(1000, () => new FakeResolver());
    net.connect({ host: "mqtt.example.com", port: 1883, tls: false }, { onClose: (r) => closes.push(r) });
    expect(fake.sockets).toHaveLength(0);
    const r = FakeResolver.made[0];
    expect(r.request?.host).toBe("mqtt.example.com");
    r.request?.onResolved("mqtt.example.com", "198.51.100.4");
    expect(r.closed).toBe(true);
    expect(fake.sockets[0].options).toMatchObject({ address: "198.51.100.4", port: 1883 });

    net.connect({ host: "nowhere.example", port: 1883, tls: false }, { onClose: (r) => closes.push(r) });
    FakeResolver.made[1].request?.onError("nowhere.example");
    expect(closes).toEqual([Reason.SOCKET_REFUSED]);
    expect(fake.sockets).toHaveLength(1);
  });

  it("gives TLSSocket the TCP class, the resolved address, the name for SNI and the DER CA", () => {
    FakeResolver.made = [];
    const ca = new Uint8Array([0x30, 0x82, 0x01, 0x0a]);
    const data: number[] = [];
    let connected = false;
    const net = new ModdableNetwork(1000, () => new FakeResolver());
    const sock = net.connect({ host: "broker.example.com", port: 8883, tls: true, ca }, { onConnect: () => (connected = true), onData: (d) => data.push(...d) });
    FakeResolver.made[0].request?.onResolved("broker.example.com", "203.0.113.9");
    const tls = fake.tlsSockets[0];
    expect(tls.options).toMatchObject({ host: "broker.example.com", address: "203.0.113.9", port: 8883, format: "buffer" });
    expect(tls.session).toMatchObject({ serverName: "broker.example.com" });
    expect(new Uint8Array(tls.session.certificate as ArrayBuffer)).toEqual(ca);
    expect(tls.tcp.options).toMatchObject({ address: "203.0.113.9", port: 8883 });
    tls.tcp.connect();
    expect(connected).toBe(true);
    // At most the reported space (2048 - 96) per write; the rest after the next onWritable.
    sock.write(new Uint8Array(3000).fill(7));
    expect(tls.tcp.sent.map((b) => b.length)).toEqual([1952]);
    tls.tcp.drain();
    expect(tls.tcp.sent.map((b) => b.length)).toEqual([1952, 1048]);
    tls.tcp.arrive(new Uint8Array([1, 2, 3]));
    expect(data).toEqual([1, 2, 3]);
  });

  it("times out a connection that never opens, resolution included, and closes the socket", () => {
    const closes: number[] = [];
    const net = new ModdableNetwork(500, () => new FakeResolver());
    net.connect({ host: "slow.example", port: 1883, tls: false }, { onClose: (r) => closes.push(r) });
    const [id, t] = [...fake.timers.entries()][0];
    expect(t.delay).toBe(500);
    fake.timers.delete(id);
    t.callback();
    expect(closes).toEqual([Reason.SOCKET_TIMEOUT]);
    expect(FakeResolver.made.at(-1)?.closed).toBe(true);
  });

  it("reports a TCP error before the connection as SOCKET_REFUSED, after it as SOCKET_CLOSED", () => {
    const closes: number[] = [];
    const net = new ModdableNetwork(1000);
    net.connect({ host: "192.0.2.1", port: 1, tls: false }, { onClose: (r) => closes.push(r) });
    fake.sockets[0].error();
    net.connect({ host: "192.0.2.1", port: 1, tls: false }, { onClose: (r) => closes.push(r) });
    fake.sockets[1].connect();
    fake.sockets[1].error();
    expect(closes).toEqual([Reason.SOCKET_REFUSED, Reason.SOCKET_CLOSED]);
    expect(fake.sockets.every((x) => x.closed)).toBe(true);
  });

  it("a pin reaches the TLS options; with no verdict from the stack (the SDK's ssl/cert) the handshake's end closes it with TLS_PIN_MISMATCH, before onConnect", () => {
    const closes: number[] = [];
    let connected = false;
    const net = new ModdableNetwork(1000);
    const pin = new Uint8Array(32).fill(3);
    net.connect({ host: "192.0.2.9", port: 8883, tls: true, caPin: pin }, { onConnect: () => (connected = true), onClose: (r) => closes.push(r) });
    const secure = fake.tlsSockets[0].options.secure as { xsOtaCaPin: Uint8Array; xsOtaVerdict: (r: number) => void };
    expect(Array.from(secure.xsOtaCaPin)).toEqual(Array.from(pin));
    fake.sockets[0].connect(); // handshake done, no verdict given
    expect(connected).toBe(false);
    expect(closes).toEqual([Reason.TLS_PIN_MISMATCH]);
    expect(fake.sockets[0].closed).toBe(true);
  });

  it("with the strict manager's verdict: OK connects; TLS_PIN_MISMATCH (the handshake fails at the certificate) is reported as such", () => {
    const net = new ModdableNetwork(1000);
    const pin = new Uint8Array(32).fill(3);
    let connected = false;
    net.connect({ host: "192.0.2.9", port: 8883, tls: true, caPin: pin }, { onConnect: () => (connected = true) });
    (fake.tlsSockets[0].options.secure as { xsOtaVerdict: (r: number) => void }).xsOtaVerdict(Reason.OK);
    fake.sockets[0].connect();
    expect(connected).toBe(true);
    const closes: number[] = [];
    net.connect({ host: "192.0.2.9", port: 8883, tls: true, caPin: pin }, { onClose: (r) => closes.push(r) });
    (fake.tlsSockets[1].options.secure as { xsOtaVerdict: (r: number) => void }).xsOtaVerdict(Reason.TLS_PIN_MISMATCH);
    fake.sockets[1].error(); // ssl_handshake throws "certificate: auth err"; tlssocket reports onError
    expect(closes).toEqual([Reason.TLS_PIN_MISMATCH]);
    // Without a pin, a failed chain stays SOCKET_TLS.
    const plain: number[] = [];
    net.connect({ host: "192.0.2.9", port: 8883, tls: true }, { onClose: (r) => plain.push(r) });
    (fake.tlsSockets[2].options.secure as { xsOtaVerdict: (r: number) => void }).xsOtaVerdict(Reason.SOCKET_TLS);
    fake.sockets[2].error();
    expect(plain).toEqual([Reason.SOCKET_TLS]);
  });

  it("fails closed on a client certificate the SDK cannot sign for: TLS_CLIENT_AUTH_UNSUPPORTED, no socket opened", () => {
    expect(SDK_SIGNS_P256_CLIENT_AUTH).toBe(false); // ssl_handshake.js certificateVerify: RSA only at SDK 48ee02d
    const closes: number[] = [];
    const net = new ModdableNetwork(1000);
    const clientIdentity = { certificate: new Uint8Array(300).fill(0x30), privateKey: new Uint8Array(32).fill(7) };
    net.connect({ host: "192.0.2.9", port: 8883, tls: true, clientIdentity }, { onClose: (r) => closes.push(r) });
    expect(closes).toEqual([]);
    for (const [id, t] of [...fake.timers.entries()].filter(([, t]) => t.delay === 0)) {
      fake.timers.delete(id);
      t.callback();
    }
    expect(closes).toEqual([Reason.TLS_CLIENT_AUTH_UNSUPPORTED]);
    expect(fake.sockets).toHaveLength(0);
    expect(fake.tlsSockets).toHaveLength(0);
    expect(fake.timers.size).toBe(0);
    // Plaintext carries no identity: it connects as before.
    net.connect({ host: "192.0.2.9", port: 1883, tls: false, clientIdentity }, {});
    expect(fake.sockets).toHaveLength(1);
  });

  it("recognises only dotted-quad IPv4 literals", () => {
    for (const ok of ["0.0.0.0", "10.1.2.3", "255.255.255.255"]) expect(isIPv4Literal(ok), ok).toBe(true);
    for (const bad of ["256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "::1", "host", "1.2.3.4 "]) expect(isIPv4Literal(bad), bad).toBe(false);
  });
});

describe("OtaError from the adapters", () => {
  it("is the project's typed error", () => {
    expect(() => new ModdableFlash("nope")).toThrow(OtaError);
  });
});
