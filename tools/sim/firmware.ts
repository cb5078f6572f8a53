/**
 * The simulator's firmware entry: what runs after the bootloader model chose
 * a slot. It opens the storage once, starts the AT console, logs the boot,
 * then starts the update agent when one is given (`startAgent`), and hands
 * the agent's control to the console. Without an agent the console answers
 * `AT+OTASTATE` with NONE and refuses check and abort (+ERR=-5,354).
 */
import type { Platform } from "../../hal/types";
import { updateControlOf, type AgentLike } from "../../src/at/commands";
import { startConsole, type ConsoleRuntime } from "../../src/at/start";
import type { ConsoleOptions } from "../../src/at/console";
import { formatVersion } from "../../src/image/format";
import { AuditEvent } from "../../src/store/audit";
import { openStorage, type Storage } from "../../src/store/layout";
import { defaultSettings, type Settings } from "../../src/store/settings";
import type { BootDecision } from "../../targets/sim/bootloader";
import type { FirmwareEntry, VirtualDevice } from "../../targets/sim/device";

export interface SimFirmwareOptions {
  /** The factory settings of a device (its id, the server it is shipped to). */
  readonly factory: (device: VirtualDevice) => Settings;
  readonly build?: string;
  readonly console?: ConsoleOptions;
  /**
   * Start the update agent with this boot's storage and active settings;
   * return it (anything shaped like src/agent's Agent) to give the console its control.
   */
  readonly startAgent?: (platform: Platform, runtime: ConsoleRuntime, boot: BootDecision, device: VirtualDevice) => AgentLike | undefined;
  /** Open the storage (the agent passes its own journal spec); the default layout otherwise. */
  readonly openStorage?: (platform: Platform) => Storage;
  /** Called after every boot with the console runtime (tests and the CLI watch it). */
  readonly onBoot?: (runtime: ConsoleRuntime, device: VirtualDevice) => void;
}

/** The factory settings `xs-ota sim` ships: id sim-NNNN, server 127.0.0.1:8883 with TLS. */
export function simFactory(index: number, overrides: Partial<Settings> = {}): Settings {
  return defaultSettings(`sim-${String(index).padStart(4, "0")}`, overrides);
}

export function simFirmware(o: SimFirmwareOptions): FirmwareEntry {
  return (platform, boot, device) => {
    const version = boot.info ? formatVersion(boot.info.header.version) : "0.0.0+0";
    const storage = o.openStorage ? o.openStorage(platform) : openStorage(platform.flash.storage);
    const runtime = startConsole(platform, {
      storage,
      factory: o.factory(device),
      firmware: { version, build: o.build ?? "sim" },
      console: o.console,
    });
    runtime.audit.append({
      uptimeMs: Math.floor(platform.clock.now()),
      unixS: 0,
      event: AuditEvent.BOOT,
      reason: 0,
      to: boot.info?.header.version,
    });
    const agent = o.startAgent?.(platform, runtime, boot, device);
    if (agent) runtime.console.attachUpdate(updateControlOf(agent));
    o.onBoot?.(runtime, device);
  };
}
