/**
 * The simulated firmware: what runs on the virtual device after the
 * bootloader model chose a slot. It reads the behaviour marker of the booted
 * image (targets/sim/behaviour.ts) and then runs the real agent over the
 * device's Platform, or misbehaves as the marker says, so that every
 * rollback path runs with real signed images.
 */
import type { Network, Platform } from "../../hal/types";
import { Agent } from "../../src/agent/agent";
import type { AgentConfig } from "../../src/agent/config";
import { AGENT_JOURNAL_SPACE } from "../../src/agent/journal";
import { Reason } from "../../src/errors";
import { openStorage } from "../../src/store/layout";
import { readBehaviour } from "./behaviour";
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
  /** The agent's configuration (what the device's settings say). */
  readonly config: AgentConfig | ((device: VirtualDevice) => AgentConfig);
  /** Called with each new agent (a test or the demo watches it). */
  readonly onAgent?: (agent: Agent, device: VirtualDevice) => void;
  /** Wrap the platform (e.g. the simulator's guarded real network). */
  readonly platform?: (platform: Platform, device: VirtualDevice) => Platform;
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
    const storage = openStorage(platform.flash.storage, undefined, AGENT_JOURNAL_SPACE);
    const config = typeof o.config === "function" ? o.config(device) : o.config;
    const agent = new Agent(platform, config, storage);
    o.onAgent?.(agent, device);
    agent.start();
  };
}
