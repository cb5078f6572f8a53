/**
 * Builds the device Platform from Moddable modules, the native drivers and
 * the build's `mc/config` (defaults in the root manifest.json): the console
 * UART from the host provider (`embedded:provider/builtin`, the target's
 * host/provider module), names resolved by Moddable's UDP DNS resolver
 * against `config.dnsServers`.
 */
import UDP from "embedded:io/socket/udp";
import Resolver from "embedded:network/dns/resolver/udp";
import device from "embedded:provider/builtin";
import config from "mc/config";
import type { Platform } from "../types";
import { ModdableClock } from "./clock";
import { ZephyrCounter } from "./counter";
import { nativeDigest } from "./digest";
import { ModdableFlash } from "./flash";
import { isIPv4Literal, ModdableNetwork, type NameResolver } from "./network";
import { NominalPower } from "./power";
import { ModdableSerial, serialPort } from "./serial";
import { ZephyrSystem } from "./system";
import { seedModdableTlsRng, ZephyrRandom } from "./random";
import { ZephyrWatchdog } from "./watchdog";

/** The device configuration this module reads from `mc/config`. */
export interface DeviceConfig {
  readonly partitionSlot0: string;
  readonly partitionSlot1: string;
  readonly partitionStorage: string;
  readonly imageSlot: 0 | 1;
  readonly serialBaud: number;
  /** The console UART's devicetree label; undefined: the provider's default UART. */
  readonly serialPort: string | undefined;
  readonly connectTimeoutMs: number;
  readonly supplyNominalMv: number;
  /** DNS servers (IPv4 literals) for host names; empty: the broker must be given as an IPv4 literal. */
  readonly dnsServers: readonly string[];
}

function need(name: string, kind: "string" | "number"): string | number {
  const value: unknown = config[name];
  if (typeof value !== kind) throw new TypeError(`mc/config.${name} must be a ${kind}`);
  return value as string | number;
}

function optionalText(name: string): string | undefined {
  const value: unknown = config[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0) throw new TypeError(`mc/config.${name} must be a non-empty string`);
  return value;
}

function servers(): readonly string[] {
  const value: unknown = config.dnsServers;
  if (value === undefined) return Object.freeze([]);
  if (!Array.isArray(value) || value.length > 4 || !value.every((s) => typeof s === "string" && isIPv4Literal(s))) {
    throw new TypeError("mc/config.dnsServers must be at most 4 IPv4 literals");
  }
  return Object.freeze(value.slice() as string[]);
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
    serialPort: optionalText("serialPort"),
    connectTimeoutMs: need("connectTimeoutMs", "number") as number,
    supplyNominalMv: need("supplyNominalMv", "number") as number,
    dnsServers: servers(),
  });
}

/** A fresh resolver per connection (Moddable's examples/io/udp/dns/dns.js: `{servers, socket: {io: UDP}}`). */
function resolverFactory(dnsServers: readonly string[]): (() => NameResolver) | undefined {
  if (dnsServers.length === 0) return undefined;
  return () => new Resolver({ servers: dnsServers.slice(), socket: { io: UDP } }) as unknown as NameResolver;
}

/**
 * The device Platform. Also reseeds Moddable's TLS random generator from the
 * hardware RNG before any connection (see random.ts: otherwise it repeats
 * across boots). @throws OtaError IDENTITY_NO_RANDOM when the RNG fails.
 */
export function devicePlatform(c: DeviceConfig): Platform {
  const random = new ZephyrRandom();
  seedModdableTlsRng(random);
  return Object.freeze({
    flash: Object.freeze({
      slots: Object.freeze([new ModdableFlash(c.partitionSlot0), new ModdableFlash(c.partitionSlot1)]) as readonly [ModdableFlash, ModdableFlash],
      storage: new ModdableFlash(c.partitionStorage),
    }),
    watchdog: new ZephyrWatchdog(),
    counter: new ZephyrCounter(),
    clock: new ModdableClock(),
    net: new ModdableNetwork(c.connectTimeoutMs, resolverFactory(c.dnsServers)),
    serial: new ModdableSerial(serialPort(device, c.serialPort), c.serialBaud),
    power: new NominalPower(c.supplyNominalMv),
    digest: nativeDigest,
    system: new ZephyrSystem(c.imageSlot),
    random,
  });
}
