/**
 * The simulator's firmware for `xs-ota sim`: targets/sim's firmware (console
 * and, when configured, the update agent) with the factory settings a
 * simulated fleet ships with.
 */
import type { ConsoleOptions } from "../../src/at/console";
import type { ConsoleRuntime } from "../../src/at/start";
import { defaultSettings, type Settings } from "../../src/store/settings";
import type { FirmwareEntry, VirtualDevice } from "../../targets/sim/device";
import { agentFirmware, type AgentFirmwareOptions } from "../../targets/sim/firmware";

export interface SimFirmwareOptions {
  /** The factory settings of a device (its id, the server it is shipped to). */
  readonly factory: (device: VirtualDevice) => Settings;
  readonly build?: string;
  readonly console?: ConsoleOptions;
  /** Run the update agent with this shipped configuration (see AgentFirmwareOptions.config). */
  readonly agent?: AgentFirmwareOptions["config"];
  readonly onAgent?: AgentFirmwareOptions["onAgent"];
  /** Called after every boot with the console runtime (tests and the CLI watch it). */
  readonly onBoot?: (runtime: ConsoleRuntime, device: VirtualDevice) => void;
}

/** The factory settings `xs-ota sim` ships: id sim-NNNN, server 127.0.0.1:8883 with TLS. */
export function simFactory(index: number, overrides: Partial<Settings> = {}): Settings {
  return defaultSettings(`sim-${String(index).padStart(4, "0")}`, overrides);
}

export function simFirmware(o: SimFirmwareOptions): FirmwareEntry {
  return agentFirmware({
    factory: o.factory,
    config: o.agent,
    build: o.build,
    console: o.console,
    onAgent: o.onAgent,
    onBoot: (runtime, device) => o.onBoot?.(runtime, device),
  });
}
