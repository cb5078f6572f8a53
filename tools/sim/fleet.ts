/**
 * Virtual devices for `xs-ota sim`, run in real time: each device gets a
 * confirmed factory image in slot 0 (so the bootloader model boots it), and a
 * Node interval advances every device's virtual clock by the real time that
 * passed, so the console's guard times and timeouts work for a human.
 */
import type { ImageVersion } from "../../src/image/format";
import { VirtualDevice, type FirmwareEntry } from "../../targets/sim/device";
import { smallFlashMap, stm32h743FlashMap, slotLoadAddress, type FlashMapSpec } from "../../targets/sim/flashmap";
import { encodeImage } from "../image/encode";

export type MapName = "small" | "device";

export function flashMapOf(name: MapName): FlashMapSpec {
  return name === "device" ? stm32h743FlashMap : smallFlashMap();
}

/** Write a confirmed (image_ok) factory image into slot 0 of a device that was never powered. */
export function installFactoryImage(device: VirtualDevice, version: ImageVersion = { major: 1, minor: 0, revision: 0, build: 0 }): void {
  const body = new Uint8Array(4096);
  for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) & 0xff;
  const image = encodeImage({
    body,
    version,
    securityCounter: 0,
    loadAddr: slotLoadAddress(device.map, 0),
    pad: { slotSize: device.map.slots[0].size, writeAlign: device.map.geometry.writeAlign, confirm: true, eraseValue: device.map.geometry.eraseValue },
  });
  device.slots[0].cells.set(image);
}

export interface FleetOptions {
  readonly devices: number;
  readonly map: MapName;
  readonly firmware: FirmwareEntry;
  readonly seed?: number;
}

/** Real-time driver: one interval for the whole fleet. */
export class RealtimeFleet {
  readonly devices: VirtualDevice[] = [];
  private interval: NodeJS.Timeout | undefined;
  private last = 0;
  /** Errors that were not resets (bugs): the fleet stops the device and records them. */
  readonly failures: { device: number; error: unknown }[] = [];
  private readonly failed = new Set<number>();

  constructor(o: FleetOptions) {
    for (let k = 0; k < o.devices; k++) {
      const device = new VirtualDevice({ map: flashMapOf(o.map), seed: (o.seed ?? 1) + k, firmware: o.firmware });
      installFactoryImage(device);
      this.devices.push(device);
    }
  }

  /** Boot every device and start the clock. */
  start(tickMs = 10): void {
    for (let k = 0; k < this.devices.length; k++) this.step(k, 0);
    this.last = performance.now();
    this.interval = setInterval(() => {
      const now = performance.now();
      const dt = Math.floor(now - this.last);
      if (dt <= 0) return;
      this.last += dt;
      for (let k = 0; k < this.devices.length; k++) this.step(k, dt);
    }, tickMs);
  }

  stop(): void {
    if (this.interval) clearInterval(this.interval);
    this.interval = undefined;
  }

  private step(k: number, ms: number): void {
    if (this.failed.has(k)) return;
    try {
      // run() boots when needed and absorbs resets (AT+Z, watchdog, power cuts).
      this.devices[k].run(Math.max(ms, 1));
    } catch (error) {
      this.failed.add(k);
      this.failures.push({ device: k, error });
    }
  }
}
