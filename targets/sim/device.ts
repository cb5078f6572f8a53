/**
 * The virtual device: one NOR flash chip cut into the flash map, the strict
 * mocks, and the MCUboot model. It can be reset at any moment (watchdog
 * expiry, power cut, reboot request); it then boots again through the model
 * with all flash contents kept, and starts the firmware the model chose.
 *
 * Resets travel as exceptions (`DeviceReset`, `PowerCut`) out of whatever the
 * device was doing. Every way into device code (its timers, its network and
 * serial callbacks) runs through `guard`, which catches them, takes the
 * device down, and schedules the next boot on the shared clock (after the
 * bootloader's start-up time, or after `powerOffMs` for a power cut). Many
 * devices can share one clock and one network (a fleet). Runs on Node and XS.
 */
import type { Flash, Network, Platform, Random, ResetCause, System } from "../../hal/types";
import { ClockView, VirtualClock } from "../../hal/mock/clock";
import { MockCounter } from "../../hal/mock/counter";
import { NorFlash, type FlashPartition } from "../../hal/mock/flash";
import { PowerCut, PowerRail } from "../../hal/mock/rail";
import { SerialPipe } from "../../hal/mock/serial";
import { MockNetwork } from "../../hal/mock/socket";
import { MockWatchdog } from "../../hal/mock/watchdog";
import { TestOnlySeededRandom } from "../../hal/mock/random";
import { softwareDigest } from "../../src/crypto/sha256";
import { bootSelect, TARGET_MCUBOOT, type BootDecision, type BootOptions, type McubootBuild } from "./bootloader";
import { guardedNetwork } from "./guarded-network";
import { meteredDigest, type CpuModel } from "../../hal/mock/cpu";
import { smallFlashMap, type FlashMapSpec } from "./flashmap";

/** Thrown to unwind the device's call stack on a reset. Never caught by the core. */
export class DeviceReset extends Error {
  constructor(readonly resetCause: ResetCause) {
    super(`device reset (${resetCause})`);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(DeviceReset.prototype, "name", { value: "DeviceReset", writable: true, configurable: true });

/**
 * What runs after the bootloader hands over: the firmware in the chosen slot.
 * It gets the platform and the boot decision and installs its timers and
 * handlers; it must return without blocking (everything else is timers).
 */
export type FirmwareEntry = (platform: Platform, boot: BootDecision, device: VirtualDevice) => void;

export interface VirtualDeviceOptions {
  map?: FlashMapSpec;
  seed?: number;
  millivolts?: number;
  /** Shared network (a fleet on one broker; or a real one, e.g. hal/node's, in the demo); a private MockNetwork by default. */
  network?: Network;
  clock?: VirtualClock;
  firmware?: FirmwareEntry;
  /** Extra boot checks (signature) for the bootloader model. */
  checkSignature?: BootOptions["checkSignature"];
  /** Time the power stays off after a cut before it comes back, ms. */
  powerOffMs?: number;
  /**
   * Start the hardware watchdog at every reset with this timeout (the STM32
   * IWDG "hardware mode" option byte): firmware must feed it from its first
   * moments, so a firmware that hangs before its agent runs is still reset.
   * 0 (default): the firmware starts the watchdog itself.
   */
  bootWatchdogMs?: number;
  /** Charge virtual CPU time for hashing (hal/mock/cpu.ts); absent: computation is free. */
  cpu?: CpuModel;
  /** The MCUboot build the bootloader model follows (default TARGET_MCUBOOT: the targets' mcuboot.conf). */
  mcuboot?: McubootBuild;
  /**
   * The device's random source (its key is made from it). Default: the
   * test-only seeded generator from `seed` (repeatable runs); hosts that make
   * real keys pass hal/node/random.ts.
   */
  random?: Random;
}

/** Time from reset to the firmware's start (MCUboot's checks), ms: also keeps a reboot loop from spinning. */
export const BOOT_TIME_MS = 50;

export class VirtualDevice {
  readonly map: FlashMapSpec;
  readonly rail: PowerRail;
  readonly chip: NorFlash;
  readonly bootloaderArea: FlashPartition;
  readonly slots: readonly [FlashPartition, FlashPartition];
  readonly storage: FlashPartition;
  /** The shared clock (time for the whole world). */
  readonly clock: VirtualClock;
  /** This device's view of it (its timers; cleared at reset). */
  readonly timers: ClockView;
  readonly counter: MockCounter;
  watchdog: MockWatchdog;
  readonly serial: SerialPipe;
  /** The shared network. */
  readonly net: Network;
  /** This device's connections through it (dropped at reset). */
  readonly link: ReturnType<typeof guardedNetwork>;
  readonly platform: Platform;
  firmware: FirmwareEntry | undefined;
  checkSignature: BootOptions["checkSignature"];
  powerOffMs: number;
  bootWatchdogMs: number;
  readonly mcuboot: McubootBuild;

  /** The cause the firmware will read after the next boot. */
  private pendingCause: ResetCause = "power-on";
  private cause: ResetCause = "power-on";
  /** The current boot's decision, or undefined while off, resetting or bricked. */
  lastBoot: BootDecision | undefined;
  /** Every boot so far, in order. */
  readonly boots: { at: number; cause: ResetCause; decision: BootDecision }[] = [];
  /** A boot is scheduled on the shared clock. */
  private bootPending = false;
  private watchdogGeneration = 0;

  constructor(options: VirtualDeviceOptions = {}) {
    this.map = options.map ?? smallFlashMap();
    this.rail = new PowerRail({ seed: options.seed ?? 1, millivolts: options.millivolts });
    this.chip = new NorFlash(this.map.geometry, this.rail);
    this.bootloaderArea = this.chip.partition(this.map.bootloader.offset, this.map.bootloader.size);
    this.slots = [
      this.chip.partition(this.map.slots[0].offset, this.map.slots[0].size),
      this.chip.partition(this.map.slots[1].offset, this.map.slots[1].size),
    ];
    this.storage = this.chip.partition(this.map.storage.offset, this.map.storage.size);
    this.clock = options.clock ?? new VirtualClock();
    this.timers = new ClockView(this.clock, (fn) => void this.guard(fn));
    this.counter = new MockCounter(this.rail);
    this.net = options.network ?? new MockNetwork(this.clock);
    this.link = guardedNetwork(this.net, this);
    this.serial = new SerialPipe(this.timers);
    this.firmware = options.firmware;
    this.checkSignature = options.checkSignature;
    this.powerOffMs = options.powerOffMs ?? 1000;
    this.bootWatchdogMs = options.bootWatchdogMs ?? 0;
    this.mcuboot = options.mcuboot ?? TARGET_MCUBOOT;
    this.watchdog = this.makeWatchdog();
    const device = this;
    const system: System = {
      resetCause: () => device.cause,
      reboot(): never {
        throw new DeviceReset("software");
      },
      runningSlot: () => {
        if (device.lastBoot?.slot === undefined) throw new Error("runningSlot: no firmware is running");
        return device.lastBoot.slot;
      },
    };
    this.platform = Object.freeze({
      flash: Object.freeze({ slots: this.slots as readonly [Flash, Flash], storage: this.storage as Flash }),
      // A reset disarms the watchdog: the object is replaced on every boot, so route through a getter.
      get watchdog() {
        return device.watchdog;
      },
      counter: this.counter,
      clock: this.timers,
      net: this.link,
      serial: this.serial,
      power: this.rail,
      digest: options.cpu ? meteredDigest(softwareDigest, (ms) => this.clock.consume(ms), options.cpu) : softwareDigest,
      system,
      random: options.random ?? new TestOnlySeededRandom(options.seed ?? 1),
    }) as Platform;
  }

  private makeWatchdog(): MockWatchdog {
    const generation = ++this.watchdogGeneration;
    return new MockWatchdog(this.timers, () => {
      if (generation === this.watchdogGeneration) throw new DeviceReset("watchdog");
    });
  }

  /** The running slot, or undefined. */
  get runningSlot(): 0 | 1 | undefined {
    return this.lastBoot?.slot;
  }

  /** True when the last boot found nothing to run. */
  get bricked(): boolean {
    return this.lastBoot !== undefined && this.lastBoot.slot === undefined;
  }

  /** Running firmware right now (not off, resetting or bricked). */
  get running(): boolean {
    return this.lastBoot?.slot !== undefined && !this.rail.isDown;
  }

  /**
   * Power on (or come out of reset) now: run the bootloader model and start
   * the firmware. A power cut during the boot itself (copy_done, a revert's
   * erase, the counter update) or a reset inside the firmware's start is
   * handled like any other (the next boot is scheduled).
   */
  boot(): BootDecision | undefined {
    this.bootPending = false;
    this.rail.restore();
    this.timers.clearAll();
    this.watchdog = this.makeWatchdog();
    this.cause = this.pendingCause;
    this.pendingCause = "power-on";
    this.lastBoot = undefined;
    let decision: BootDecision | undefined;
    this.guardBoot(() => {
      decision = bootSelect(this.slots, {
        digest: softwareDigest,
        counter: this.counter,
        checkSignature: this.checkSignature,
        build: this.mcuboot,
        slotOffsets: [this.map.slots[0].offset, this.map.slots[1].offset],
      });
      this.lastBoot = decision;
      this.boots.push({ at: this.clock.now(), cause: this.cause, decision });
      if (decision.slot === undefined) return;
      if (this.bootWatchdogMs > 0) this.watchdog.start(this.bootWatchdogMs);
      this.firmware?.(this.platform, decision, this);
    });
    return decision;
  }

  /**
   * Write a whole image into a slot, as a factory programmer does (erase the
   * slot, program the image padded to the write unit, skipping all-erased chunks).
   */
  program(slot: 0 | 1, image: Uint8Array): void {
    const f = this.slots[slot];
    const { size, blockLength, writeAlign, eraseValue } = f.status();
    if (image.length > size) throw new RangeError(`image of ${image.length} bytes does not fit slot ${slot}`);
    for (let b = 0; b < size / blockLength; b++) f.eraseBlock(b);
    const padded = new Uint8Array(Math.ceil(image.length / writeAlign) * writeAlign).fill(eraseValue);
    padded.set(image);
    for (let off = 0; off < padded.length; off += 1024) {
      const chunk = padded.subarray(off, Math.min(off + 1024, padded.length));
      if (!chunk.every((x) => x === eraseValue)) f.write(chunk, off);
    }
  }

  /** Press the reset button: the device reboots (cause "pin"). */
  pressReset(): void {
    this.takeDown("pin", BOOT_TIME_MS);
  }

  /** Cut the power now, between operations; it comes back after `powerOffMs`. */
  cutPower(): void {
    this.takeDown("power-on", this.powerOffMs, true);
  }

  /**
   * Let `ms` of virtual time pass on the shared clock (booting first if the
   * device never booted). Every device on the clock runs meanwhile.
   */
  run(ms: number): void {
    if (this.boots.length === 0 && !this.bootPending) this.boot();
    this.clock.advance(ms);
  }

  /**
   * Run `fn` as the device's CPU would (a timer, an interrupt, a host event).
   * A reset or power cut it causes takes the device down and schedules the
   * next boot; any other exception is a bug and propagates. Returns false when
   * the device was not running or `fn` was cut short.
   */
  guard(fn: () => void): boolean {
    if (!this.running) return false;
    return this.guardBoot(fn);
  }

  private guardBoot(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (e) {
      if (e instanceof DeviceReset) this.takeDown(e.resetCause, BOOT_TIME_MS);
      else if (e instanceof PowerCut) this.takeDown("power-on", this.powerOffMs, true);
      else throw e;
      return false;
    }
  }

  private takeDown(cause: ResetCause, offMs: number, powerLoss = false): void {
    this.pendingCause = cause;
    this.lastBoot = undefined;
    this.link.closeAll();
    this.timers.clearAll();
    if (powerLoss && !this.rail.isDown) {
      try {
        this.rail.cutNow();
      } catch {
        // cutNow always throws PowerCut: the rail is now down
      }
    }
    if (this.bootPending) return;
    this.bootPending = true;
    this.clock.setTimer(() => this.boot(), offMs);
  }
}
