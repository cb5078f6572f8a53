/**
 * Builds the device Platform from Moddable modules, the native drivers and
 * the build's `mc/config` (defaults in the root manifest.json).
 */
import config from "mc/config";
import type { Platform } from "../types";
import { ModdableClock } from "./clock";
import { ZephyrCounter } from "./counter";
import { nativeDigest } from "./digest";
import { ModdableFlash } from "./flash";
import { ModdableNetwork } from "./network";
import { NominalPower } from "./power";
import { ModdableSerial } from "./serial";
import { ZephyrSystem } from "./system";
import { ZephyrWatchdog } from "./watchdog";

/** The device configuration this module reads from `mc/config`. */
export interface DeviceConfig {
  readonly partitionSlot0: string;
  readonly partitionSlot1: string;
  readonly partitionStorage: string;
  readonly imageSlot: 0 | 1;
  readonly serialBaud: number;
  readonly connectTimeoutMs: number;
  readonly supplyNominalMv: number;
}

function need(name: string, kind: "string" | "number"): string | number {
  const value: unknown = config[name];
  if (typeof value !== kind) throw new TypeError(`mc/config.${name} must be a ${kind}`);
  return value as string | number;
}

/** @throws TypeError when the build's config lacks a key; OtaError FLASH_IO when a partition is missing. */
export function readDeviceConfig(): DeviceConfig {
  const slot = need("imageSlot", "number");
  if (slot !== 0 && slot !== 1) throw new TypeError("mc/config.imageSlot must be 0 or 1");
  return Object.freeze({
    partitionSlot0: need("partitionSlot0", "string") as string,
    partitionSlot1: need("partitionSlot1", "string") as string,
    partitionStorage: need("partitionStorage", "string") as string,
    imageSlot: slot,
    serialBaud: need("serialBaud", "number") as number,
    connectTimeoutMs: need("connectTimeoutMs", "number") as number,
    supplyNominalMv: need("supplyNominalMv", "number") as number,
  });
}

export function devicePlatform(c: DeviceConfig): Platform {
  return Object.freeze({
    flash: Object.freeze({
      slots: Object.freeze([new ModdableFlash(c.partitionSlot0), new ModdableFlash(c.partitionSlot1)]) as readonly [ModdableFlash, ModdableFlash],
      storage: new ModdableFlash(c.partitionStorage),
    }),
    watchdog: new ZephyrWatchdog(),
    counter: new ZephyrCounter(),
    clock: new ModdableClock(),
    net: new ModdableNetwork(c.connectTimeoutMs),
    serial: new ModdableSerial(c.serialBaud),
    power: new NominalPower(c.supplyNominalMv),
    digest: nativeDigest,
    system: new ZephyrSystem(c.imageSlot),
  });
}
