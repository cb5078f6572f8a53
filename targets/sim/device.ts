/**
 * The virtual device: one NOR flash chip cut into the flash map, the strict
 * mocks, and the MCUboot model. It can be reset at any moment (watchdog
 * expiry, power cut, reboot request); it then boots again through the model
 * with all flash contents kept, and starts the firmware the model chose.
 *
 * Resets travel as exceptions (`DeviceReset`, `PowerCut`) out of whatever the
 * device was doing, up to `run()`, which reboots the device and goes on with
 * virtual time. Runs on Node and on XS alike.
 */
import type { Flash, Platform, ResetCause, System } from "../../hal/types";
import { VirtualClock } from "../../hal/mock/clock";
import { MockCounter } from "../../hal/mock/counter";
import { NorFlash, type FlashPartition } from "../../hal/mock/flash";
import { PowerCut, PowerRail } from "../../hal/mock/rail";
import { SerialPipe } from "../../hal/mock/serial";
import { MockNetwork } from "../../hal/mock/socket";
import { MockWatchdog } from "../../hal/mock/watchdog";
import { softwareDigest } from "../../src/crypto/sha256";
import { bootSelect, type BootDecision, type BootOptions } from "./bootloader";
import { smallFlashMap, type FlashMapSpec } from "./flashmap";

/** Thrown to unwind the device's call stack on a reset. Never caught by the core. */
export class DeviceReset extends Error {
  constructor(readonly resetCause: ResetCause) {
    super(`device reset (${resetCause})`);
    this.name = "DeviceReset";
  }
}

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
  /** Shared network (a fleet on one broker); a private one by default. */
  network?: MockNetwork;
  clock?: VirtualClock;
  firmware?: FirmwareEntry;
  /** Extra boot checks (signature) for the bootloader model. */
  checkSignature?: BootOptions["checkSignature"];
  /** Time the power stays off after a cut before it comes back, ms. */
  powerOffMs?: number;
}

/** Bound on boots per `run()` call: a crash loop is reported, not spun forever. */
export const MAX_BOOTS_PER_RUN = 64;

export class VirtualDevice {
  readonly map: FlashMapSpec;
  readonly rail: PowerRail;
  readonly chip: NorFlash;
  readonly bootloaderArea: FlashPartition;
  readonly slots: readonly [FlashPartition, FlashPartition];
  readonly storage: FlashPartition;
  readonly clock: VirtualClock;
  readonly counter: MockCounter;
  readonly watchdog: MockWatchdog;
  readonly serial: SerialPipe;
  readonly net: MockNetwork;
  readonly platform: Platform;
  firmware: FirmwareEntry | undefined;
  checkSignature: BootOptions["checkSignature"];
  powerOffMs: number;

  /** The cause the firmware will read after the next boot. */
  private pendingCause: ResetCause = "power-on";
  private cause: ResetCause = "power-on";
  /** The current boot's decision, or undefined while off or bricked. */
  lastBoot: BootDecision | undefined;
  /** Every boot so far, in order. */
  readonly boots: { at: number; cause: ResetCause; decision: BootDecision }[] = [];
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
    this.counter = new MockCounter(this.rail);
    this.net = options.network ?? new MockNetwork(this.clock);
    this.serial = new SerialPipe(this.clock);
    this.firmware = options.firmware;
    this.checkSignature = options.checkSignature;
    this.powerOffMs = options.powerOffMs ?? 1000;
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
      // The watchdog object is replaced on every boot (a reset disarms it); route through a getter.
      get watchdog() {
        return device.watchdog;
      },
      counter: this.counter,
      clock: this.clock,
      net: this.net,
      serial: this.serial,
      power: this.rail,
      digest: softwareDigest,
      system,
    }) as Platform;
  }

  private makeWatchdog(): MockWatchdog {
    const generation = ++this.watchdogGeneration;
    return new MockWatchdog(this.clock, () => {
      if (generation === this.watchdogGeneration) throw new DeviceReset("watchdog");
    });
  }

  /** The running slot, or undefined. */
  get runningSlot(): 0 | 1 | undefined {
    return this.lastBoot?.slot;
  }

  /**
   * Power on (or come out of reset): run the bootloader model and start the
   * firmware. Power cuts during the boot itself (copy_done, revert erase,
   * counter update) propagate as PowerCut.
   */
  boot(): BootDecision {
    this.rail.restore();
    this.clock.clearAll();
    (this as { watchdog: MockWatchdog }).watchdog = this.makeWatchdog();
    this.cause = this.pendingCause;
    this.pendingCause = "power-on";
    this.lastBoot = undefined;
    const decision = bootSelect(this.slots, { digest: softwareDigest, counter: this.counter, checkSignature: this.checkSignature });
    this.lastBoot = decision;
    this.boots.push({ at: this.clock.now(), cause: this.cause, decision });
    if (decision.slot !== undefined && this.firmware) this.firmware(this.platform, decision, this);
    return decision;
  }

  /** True when the last boot found nothing to run. */
  get bricked(): boolean {
    return this.lastBoot !== undefined && this.lastBoot.slot === undefined;
  }

  /**
   * Let `ms` of virtual time pass, handling every reset on the way: a reset
   * reboots at once (a power cut after `powerOffMs`). Returns the number of
   * boots that happened. Stops early when the device is bricked or boots more
   * than MAX_BOOTS_PER_RUN times.
   */
  run(ms: number): number {
    const end = this.clock.now() + ms;
    let boots = 0;
    while (this.clock.now() < end) {
      try {
        if (this.lastBoot === undefined) {
          boots++;
          this.boot();
        }
        this.clock.advance(end - this.clock.now());
      } catch (e) {
        if (!this.absorbReset(e)) throw e;
        if (boots >= MAX_BOOTS_PER_RUN) break;
      }
      if (this.bricked) break;
    }
    return boots;
  }

  /**
   * Run `fn` as the device's CPU would from an interrupt or a host event (a
   * real socket's data, a real serial byte): a reset it causes is absorbed
   * and the device boots again. Returns false when `fn` was cut short.
   */
  guard(fn: () => void): boolean {
    if (this.lastBoot === undefined || this.rail.isDown) return false;
    try {
      fn();
      return true;
    } catch (e) {
      if (!this.absorbReset(e)) throw e;
      try {
        this.boot();
      } catch (e2) {
        if (!this.absorbReset(e2)) throw e2;
      }
      return false;
    }
  }

  /**
   * Turn an exception that is a reset into the device's next state. Returns
   * false for any other exception (a bug: the caller rethrows it).
   */
  absorbReset(e: unknown): boolean {
    if (e instanceof DeviceReset) {
      this.pendingCause = e.resetCause;
      this.lastBoot = undefined;
      this.net.dropAll();
      return true;
    }
    if (e instanceof PowerCut) {
      this.pendingCause = "power-on";
      this.lastBoot = undefined;
      this.net.dropAll();
      this.clock.clearAll();
      this.clock.advance(this.powerOffMs);
      return true;
    }
    return false;
  }
}
