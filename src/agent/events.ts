/**
 * The agent's audit events (the 100..199 range of the audit log's event
 * codes), written through src/store's AuditLog with uptime and trusted time.
 */
import type { Clock, ResetCause } from "../../hal/types";
import { Reason, type ReasonCode } from "../errors";
import type { ImageVersion } from "../image/format";
import type { AuditLog } from "../store/audit";

export const AgentAuditEvent = Object.freeze({
  AGENT_BOOT: 100,
  OFFER_ACCEPTED: 101,
  OFFER_REFUSED: 102,
  DOWNLOAD_STARTED: 103,
  DOWNLOAD_RESUMED: 104,
  DOWNLOAD_DONE: 105,
  VERIFIED: 106,
  INSTALLED: 107,
  TRIAL_STARTED: 108,
  COMMITTED: 109,
  ROLLED_BACK: 110,
  FAILED: 111,
  ABORTED: 112,
  /** The software watchdog found an activity stuck; one code per activity names it. */
  STUCK_HEARTBEAT: 113,
  STUCK_DOWNLOAD: 114,
  STUCK_VERIFY: 115,
  STUCK_TRIAL: 116,
  REVOCATION_ACCEPTED: 117,
  REVOCATION_REFUSED: 118,
  RUNNING_REVOKED: 119,
  /** A newer key set was accepted and put in force (issue 16B: 130..139). */
  KEYSET_ACCEPTED: 130,
  KEYSET_REFUSED: 131,
  /** A time statement was refused (forged, wrong key, outside its key's window): logged once per reason in a row. */
  TIME_REFUSED: 132,
});
export type AgentAuditName = keyof typeof AgentAuditEvent;

const RESET_CAUSES: readonly ResetCause[] = Object.freeze(["power-on", "watchdog", "software", "pin", "brownout", "unknown"]);

/** The name of an agent audit event code, for the console and logs. */
export function agentEventName(code: number): string | undefined {
  for (const k of Object.keys(AgentAuditEvent) as AgentAuditName[]) if (AgentAuditEvent[k] === code) return k;
  return undefined;
}

export class AgentAudit {
  constructor(
    readonly log: AuditLog,
    private readonly clock: Clock,
    private readonly unixNow: () => number,
  ) {}

  event(name: AgentAuditName, reason: ReasonCode | number, from?: ImageVersion, to?: ImageVersion): void {
    this.log.append({ uptimeMs: this.clock.now(), unixS: this.unixNow(), event: AgentAuditEvent[name], reason, from, to });
  }

  /** The software watchdog's finding: the stuck activity is named by the event code. */
  stuck(activity: "heartbeat" | "download" | "verify" | "trial", running: ImageVersion): void {
    const name = `STUCK_${activity.toUpperCase()}` as AgentAuditName;
    this.event(name, Reason.ACTIVITY_STUCK, running, running);
  }

  /** A boot, with the reset cause as the reason detail (index into the cause list). */
  boot(running: ImageVersion, cause: ResetCause): void {
    this.log.append({ uptimeMs: this.clock.now(), unixS: this.unixNow(), event: AgentAuditEvent.AGENT_BOOT, reason: RESET_CAUSES.indexOf(cause), from: running, to: running });
  }
}
