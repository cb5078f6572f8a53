/**
 * The agent's transition table: `{ state, event, handler, next }` rows,
 * frozen, evaluated in order (the first match wins; "*" matches any state;
 * "*" as next keeps the state). Handlers are the Agent's methods; a row
 * transitions only when its handler returns true.
 */
import { Reason, type ReasonCode } from "../errors";
import type { Agent } from "./agent";
import type { Table } from "./fsm";

export type AgentState =
  | "boot" | "idle" | "checking" | "downloading" | "verifying" | "staged" | "installing"
  | "trial" | "committed" | "rolled-back" | "failed";
export type AgentEvent =
  | "start" | "normal" | "resume-download" | "resume-staged" | "resume-install" | "trial-boot" | "reverted" | "confirmed"
  | "offer" | "accept" | "refuse" | "downloaded" | "verified" | "ready" | "ack" | "trial-timeout"
  | "fail" | "abort" | "done";

type Row = { state: AgentState | "*"; event: AgentEvent; handler: (a: Agent, data: unknown) => boolean; next: AgentState | "*" };

const yes = () => true;

/** The transition table. Order matters: the first matching row wins. */
export const TRANSITIONS: Table<AgentState, AgentEvent, Agent> = Object.freeze(
  (
    [
      { state: "boot", event: "start", handler: (a) => a.reconcile(), next: "*" },
      { state: "boot", event: "normal", handler: (a) => a.goOnline(), next: "idle" },
      { state: "boot", event: "resume-download", handler: (a) => a.resumeDownload(), next: "downloading" },
      { state: "boot", event: "resume-staged", handler: (a) => a.resumeStaged(), next: "staged" },
      { state: "boot", event: "resume-install", handler: (a) => a.resumeInstall(), next: "installing" },
      { state: "boot", event: "trial-boot", handler: (a) => a.beginTrial(), next: "trial" },
      { state: "boot", event: "reverted", handler: (a, d) => a.reportRollback(d as ReasonCode), next: "rolled-back" },
      { state: "boot", event: "confirmed", handler: (a) => a.finishCommit(), next: "committed" },
      { state: "idle", event: "offer", handler: (a, d) => a.checkOffer(d as Uint8Array), next: "checking" },
      { state: "checking", event: "accept", handler: (a) => a.startDownload(), next: "downloading" },
      { state: "checking", event: "refuse", handler: yes, next: "idle" },
      { state: "downloading", event: "downloaded", handler: (a) => a.verify(), next: "verifying" },
      { state: "verifying", event: "verified", handler: (a) => a.stage(), next: "staged" },
      { state: "staged", event: "ready", handler: (a) => a.install(), next: "installing" },
      { state: "trial", event: "ack", handler: (a) => a.commit(), next: "committed" },
      { state: "trial", event: "trial-timeout", handler: (a) => a.abandonTrial(), next: "failed" },
      { state: "downloading", event: "abort", handler: (a) => a.fail(Reason.ABORTED, "aborted by command"), next: "failed" },
      { state: "verifying", event: "abort", handler: (a) => a.fail(Reason.ABORTED, "aborted by command"), next: "failed" },
      { state: "staged", event: "abort", handler: (a) => a.fail(Reason.ABORTED, "aborted by command"), next: "failed" },
      { state: "*", event: "fail", handler: (a, d) => a.fail((d as { reason: ReasonCode }).reason, (d as { message: string }).message), next: "failed" },
      { state: "committed", event: "done", handler: (a) => a.forget(), next: "idle" },
      { state: "rolled-back", event: "done", handler: (a) => a.forget(), next: "idle" },
      { state: "failed", event: "done", handler: (a) => a.forget(), next: "idle" },
    ] as Row[]
  ).map((r) => Object.freeze(r)),
);

