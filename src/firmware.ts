/**
 * What a firmware image's main does after boot, on a device or in the
 * simulator: open the storage partition once, start the AT console (settings,
 * audit log), and start the update agent with a configuration built from the
 * console's active settings, handing the agent's control to the console.
 * Settings that cannot run an agent yet (no trusted key provisioned) leave the
 * console running alone, so the device can be provisioned over its serial port.
 *
 * The agent's network carries the settings' CA pin (AT+OTATLS) on every TLS
 * connection (the broker and HTTPS downloads); the socket adapter enforces it.
 * It also carries the device identity (AT+CSR / AT+CERT) when a certificate
 * for the active device id is installed: the adapter presents it when the
 * server asks for a client certificate (mutual TLS).
 */
import type { Network, Platform } from "../hal/types";
import { Agent } from "./agent/agent";
import { configFromSettings, type AgentConfig } from "./agent/config";
import { updateControlOf, type FirmwareInfo } from "./at/commands";
import type { ConsoleOptions } from "./at/console";
import { startConsole, type ConsoleRuntime } from "./at/start";
import { isOtaError, Reason } from "./errors";
import { AuditEvent, type AuditLog } from "./store/audit";
import type { TlsIdentity } from "./store/identity";
import { openStorage } from "./store/layout";
import type { Settings } from "./store/settings";

export interface FirmwareOptions {
  /** Factory settings (first boot, AT+RELD). */
  readonly factory: Settings;
  readonly firmware: FirmwareInfo;
  readonly console?: ConsoleOptions;
  /**
   * What the image fixes beside the settings: the hardware id, the CA the
   * socket adapter verifies the broker against, bounds. Absent: no agent.
   */
  readonly agent?: { readonly hardwareId: string; readonly ca?: string | Uint8Array } & Partial<AgentConfig>;
  readonly log?: (line: string) => void;
}

export interface FirmwareRuntime {
  readonly console: ConsoleRuntime;
  /** The agent, or undefined when the settings cannot run one yet. */
  readonly agent: Agent | undefined;
  /** Why there is no agent (a config error), when there is none. */
  readonly noAgentReason?: string;
}

/**
 * `net` with the CA pin added to every TLS connection, and a connection the pin
 * refused (onClose with TLS_PIN_MISMATCH) reported to `refused` — once until a
 * connection succeeds, so a link that keeps retrying cannot flood the audit
 * ring. Without a pin, `net` itself.
 */
export function pinnedNetwork(net: Network, pin: Uint8Array | undefined, refused: (reason: number) => void): Network {
  if (!pin) return net;
  let report = true;
  const pinned: Network = {
    connect(options, handlers) {
      return net.connect(options.tls ? { ...options, caPin: pin } : options, {
        onConnect() {
          report = true;
          handlers.onConnect?.();
        },
        onData(data) {
          handlers.onData?.(data);
        },
        onClose(reason) {
          if (reason === Reason.TLS_PIN_MISMATCH && report) {
            report = false;
            refused(reason);
          }
          handlers.onClose?.(reason);
        },
      });
    },
  };
  return Object.freeze(pinned);
}

/** `net` with the device's client certificate and key on every TLS connection; without an identity, `net` itself. */
export function identityNetwork(net: Network, identity: TlsIdentity | undefined): Network {
  if (!identity) return net;
  return Object.freeze({
    connect: (options, handlers) => net.connect(options.tls ? { ...options, clientIdentity: identity } : options, handlers),
  } satisfies Network);
}

function auditPinRefusal(platform: Platform, audit: AuditLog): (reason: number) => void {
  return (reason) => {
    try {
      audit.append({ uptimeMs: platform.clock.now(), unixS: 0, event: AuditEvent.TLS_PIN_REFUSED, reason });
    } catch (e) {
      if (!isOtaError(e)) throw e; // a flash failure loses the entry, not the link
    }
  };
}

/**
 * Start the console and (when it can run) the agent; returns both. The agent is
 * constructed but not started: call `agent.start()` once the caller is ready.
 * @throws OtaError from the storage (geometry, flash); PowerCut and resets propagate.
 */
export function startFirmware(platform: Platform, o: FirmwareOptions): FirmwareRuntime {
  const runtime = startConsole(platform, { storage: openStorage(platform.flash.storage), factory: o.factory, firmware: o.firmware, console: o.console });
  if (!o.agent) return { console: runtime, agent: undefined, noAgentReason: "no agent in this image" };
  let config: AgentConfig;
  try {
    config = configFromSettings(runtime.settings.active, { log: o.log, ...o.agent });
  } catch (e) {
    if (!(isOtaError(e) || e instanceof TypeError || e instanceof RangeError)) throw e;
    o.log?.(`[firmware] no update agent: ${e.message}`);
    return { console: runtime, agent: undefined, noAgentReason: e.message };
  }
  const withIdentity = identityNetwork(platform.net, runtime.identity.tlsIdentity(runtime.settings.active.deviceId));
  const net = pinnedNetwork(withIdentity, runtime.settings.active.caFingerprint, auditPinRefusal(platform, runtime.audit));
  const agent = new Agent(net === platform.net ? platform : { ...platform, net }, config, runtime.storage, runtime.audit);
  runtime.console.attachUpdate(updateControlOf(agent));
  return { console: runtime, agent };
}
