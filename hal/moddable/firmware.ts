/**
 * The device firmware's start (both targets): the Platform from the Moddable
 * adapters, factory settings from the build's mc/config, then src/firmware's
 * console and agent. A firmware that cannot run the agent still feeds the
 * hardware watchdog for its console (and never confirms an image, so MCUboot
 * reverts a trial of it).
 */
import config from "mc/config";
import Timer from "timer";
import { startFirmware } from "../../src/firmware";
import { parseDecodeCost, type DecodeCost } from "../../src/protocol/messages";
import { defaultSettings } from "../../src/store/settings";
import { base64Decode } from "../../src/util/base64";
import { devicePlatform, readDeviceConfig } from "./platform";

function text(name: string, fallback: string): string {
  const v: unknown = config[name];
  return typeof v === "string" ? v : fallback;
}

function number(name: string, fallback: number): number {
  const v: unknown = config[name];
  return typeof v === "number" ? v : fallback;
}

/**
 * The broker's CA from `mc/config.brokerCa` (the DER certificate, base64), when
 * the build gives one: the anchor of hal/moddable/cert-manager.ts (builds with
 * hal/moddable/tls/manifest.json trust nothing else). Absent: the TLS stack's
 * own list (the SDK's ssl/cert only).
 */
function brokerCa(): { ca?: Uint8Array } {
  const v: unknown = config.brokerCa;
  if (v === undefined) return {};
  const der = typeof v === "string" ? base64Decode(v) : undefined;
  if (!der || der.length === 0) throw new TypeError("mc/config.brokerCa must be a DER certificate in base64");
  return { ca: der };
}

/**
 * The patch codecs this build announces and their cost, from `mc/config.decodeCost`
 * ("codec:instructionsPerByte,…") and `mc/config.decodeMhz`, when the build sets them
 * (a board faster or slower than the lane's 400 MHz M7); absent: the agent's default
 * (src/agent/config.ts DEVICE_DECODE_COST).
 */
function decodeCost(): { decodeCost?: DecodeCost } {
  if (config.decodeCost === undefined && config.decodeMhz === undefined) return {};
  const d = parseDecodeCost(config.decodeCost, config.decodeMhz);
  if (!d) throw new TypeError('mc/config.decodeCost must be "codec:instructionsPerByte,…" (e.g. "3:4211,1:3698") with decodeMhz');
  return { decodeCost: d };
}

/** Start the firmware for a hardware class ("usr-n520", "usr-g771"). */
export function startDevice(hardwareId: string): void {
  const platform = devicePlatform(readDeviceConfig());
  const watchdogMs = number("watchdogTimeoutMs", 8000);
  const factory = defaultSettings(text("deviceId", "unprovisioned"), {
    serverHost: text("brokerHost", "127.0.0.1"),
    serverPort: number("brokerPort", 8883),
    heartbeatIntervalS: number("heartbeatIntervalS", 300),
  });
  const { agent, noAgentReason } = startFirmware(platform, {
    factory,
    firmware: { version: text("version", "0.0.0"), build: text("build", "device") },
    agent: { hardwareId, watchdogTimeoutMs: watchdogMs, ...brokerCa(), ...decodeCost() },
    log: (line) => trace(`${line}\n`),
  });
  trace(`xs-ota: slot ${platform.system.runningSlot()}, reset cause ${platform.system.resetCause()}, counter ${platform.counter.read()}\n`);
  if (agent) {
    agent.start();
    return;
  }
  trace(`xs-ota: console only (${noAgentReason})\n`);
  platform.watchdog.start(watchdogMs);
  // Feed at a third of the timeout: two missed ticks still leave margin.
  Timer.repeat(() => platform.watchdog.feed(), Math.max(1, Math.floor(watchdogMs / 3)));
}
