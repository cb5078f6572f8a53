/**
 * The simulated firmware: what runs on the virtual device after the
 * bootloader model chose a slot — what a real image's main does. It reads
 * the behaviour marker of the booted image (targets/sim/behaviour.ts), opens
 * the storage partition once, starts the AT console (settings, audit log),
 * and starts the real agent with a configuration built from the console's
 * active settings, handing the agent's control to the console. Or it
 * misbehaves as the marker says, so every rollback path runs with real
 * signed images.
 */
import type { Network, Platform } from "../../hal/types";
import type { Agent } from "../../src/agent/agent";
import type { AgentConfig } from "../../src/agent/config";
import type { ConsoleOptions } from "../../src/at/console";
import type { ConsoleRuntime } from "../../src/at/start";
import { Reason } from "../../src/errors";
import { startFirmware } from "../../src/firmware";
import { formatVersion } from "../../src/image/format";
import { AuditEvent } from "../../src/store/audit";
import { defaultSettings, type Settings } from "../../src/store/settings";
import { readBehaviour } from "./behaviour";
import type { BootDecision } from "./bootloader";
import type { FirmwareEntry, VirtualDevice } from "./device";

/** A crash-looping image reboots itself this long after every boot. */
export const CRASH_AFTER_MS = 2000;

/** A network whose every connection fails (a firmware whose modem driver is broken). */
export function deadNetwork(platform: Platform): Network {
  return {
    connect(_options, handlers) {
      platform.clock.setTimer(() => handlers.onClose?.(Reason.SOCKET_REFUSED), 100);
      return { write() {}, close() {} };
    },
  };
}

export interface AgentFirmwareOptions {
  /**
   * The agent's configuration as shipped: its device id, server, keys,
   * heartbeat, supply floor and window are the factory settings (what the
   * console shows and AT+RELD restores); the console's active settings
   * override them at every boot; the rest (hardware id, CA, bounds) is fixed.
   * Absent: the firmware runs the console only.
   */
  readonly config?: AgentConfig | ((device: VirtualDevice) => AgentConfig);
  /** Factory settings when there is no agent config. */
  readonly factory?: (device: VirtualDevice) => Settings;
  /** Firmware build id the console reports (AT+VER). */
  readonly build?: string;
  readonly console?: ConsoleOptions;
  /** Called with each new agent (a test or the demo watches it). */
  readonly onAgent?: (agent: Agent, device: VirtualDevice) => void;
  /** Called after every boot with the console runtime. */
  readonly onBoot?: (runtime: ConsoleRuntime, device: VirtualDevice, boot: BootDecision) => void;
  /** Wrap the platform (e.g. the simulator's guarded real network). */
  readonly platform?: (platform: Platform, device: VirtualDevice) => Platform;
}

/** The factory settings a shipped agent configuration stands for. */
export function settingsFromConfig(c: AgentConfig): Settings {
  return defaultSettings(c.deviceId, {
    serverHost: c.server.host,
    serverPort: c.server.port,
    tls: c.server.tls,
    trustedKeys: c.trustedKeys,
    ...(c.heartbeatIntervalS !== undefined ? { heartbeatIntervalS: c.heartbeatIntervalS } : {}),
    ...(c.heartbeatEnabled !== undefined ? { heartbeatEnabled: c.heartbeatEnabled } : {}),
    ...(c.minSupplyMv !== undefined ? { minSupplyMv: c.minSupplyMv } : {}),
    ...(c.maintenanceWindow ? { window: { always: false, ...c.maintenanceWindow } } : {}),
  });
}

/** The firmware entry for `VirtualDevice.firmware`. */
export function agentFirmware(o: AgentFirmwareOptions): FirmwareEntry {
  return (base, boot, device) => {
    const behaviour = readBehaviour(base.flash.slots[boot.slot!]);
    if (behaviour === "hang") return; // never feeds the watchdog the hardware started
    if (behaviour === "crash-loop") {
      base.clock.setTimer(() => base.system.reboot(), CRASH_AFTER_MS);
      return;
    }
    let platform = o.platform ? o.platform(base, device) : base;
    if (behaviour === "no-cloud") platform = { ...platform, net: deadNetwork(platform), watchdog: base.watchdog, flash: base.flash };
    const shipped = typeof o.config === "function" ? o.config(device) : o.config;
    const factory = shipped ? settingsFromConfig(shipped) : o.factory ? o.factory(device) : defaultSettings("sim-device");
    let fixed: (Partial<AgentConfig> & { hardwareId: string; ca?: string | Uint8Array }) | undefined;
    if (shipped) {
      // what the settings carry comes from the console's active set; the rest is fixed by the image
      const { deviceId: _d, server, trustedKeys: _k, heartbeatIntervalS: _h, heartbeatEnabled: _e, minSupplyMv: _m, maintenanceWindow: _w, ...rest } = shipped;
      fixed = { ...rest, ca: server.ca };
    }
    const { console: runtime, agent } = startFirmware(platform, {
      factory,
      firmware: { version: boot.info ? formatVersion(boot.info.header.version) : "0.0.0+0", build: o.build ?? "sim" },
      console: o.console,
      agent: fixed,
      log: shipped?.log,
    });
    if (!agent) {
      if (!shipped) runtime.audit.append({ uptimeMs: platform.clock.now(), unixS: 0, event: AuditEvent.BOOT, reason: 0, to: boot.info?.header.version });
      o.onBoot?.(runtime, device, boot);
      return;
    }
    o.onAgent?.(agent, device);
    o.onBoot?.(runtime, device, boot);
    agent.start();
  };
}
