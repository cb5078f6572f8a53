/**
 * Boot-time wiring of the console: mount the storage partition, load the
 * settings (the active set for this boot), open the audit log, and start the
 * console on the platform's serial port. The firmware entry calls this first,
 * then starts the update agent with the same `storage` (journal space),
 * `settings.active` and `audit`, and hands the agent to `console.update`
 * through the UpdateControl it passed (or sets it later with `attachUpdate`).
 */
import type { Platform } from "../../hal/types";
import { AuditLog } from "../store/audit";
import { DeviceIdentity } from "../store/identity";
import { openStorage, type Storage } from "../store/layout";
import { SettingsManager, type Settings } from "../store/settings";
import type { FirmwareInfo, UpdateControl } from "./commands";
import { Console, type ConsoleOptions } from "./console";

export interface StartOptions {
  /** Factory defaults (AT+RELD, and the first boot). */
  readonly factory: Settings;
  readonly firmware: FirmwareInfo;
  readonly update?: UpdateControl;
  readonly console?: ConsoleOptions;
  /**
   * The storage, when the firmware opened it already (the agent opens it with
   * its own journal spec). Open the partition once per boot: two record
   * stores over the same flash would corrupt each other.
   */
  readonly storage?: Storage;
}

export interface ConsoleRuntime {
  readonly storage: Storage;
  readonly settings: SettingsManager;
  readonly audit: AuditLog;
  readonly console: Console;
  /** The device key and certificate (AT+CSR, AT+CERT; presented by the agent's TLS). */
  readonly identity: DeviceIdentity;
}

/**
 * @throws OtaError STORE_GEOMETRY / STORE_CORRUPT / flash errors; PowerCut and resets propagate.
 */
export function startConsole(platform: Platform, options: StartOptions): ConsoleRuntime {
  const storage = options.storage ?? openStorage(platform.flash.storage);
  const settings = new SettingsManager(storage.settings, options.factory);
  const audit = new AuditLog(storage.audit);
  const identity = new DeviceIdentity(storage.identity, platform.random);
  const console = new Console(
    {
      serial: platform.serial,
      clock: platform.clock,
      reboot: () => platform.system.reboot(),
      settings,
      audit,
      update: options.update,
      firmware: options.firmware,
      identity,
    },
    options.console,
  );
  return Object.freeze({ storage, settings, audit, console, identity });
}
