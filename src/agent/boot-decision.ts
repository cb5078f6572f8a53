/**
 * What this boot is, from the journal and what the bootloader booted: the
 * reconciliation that makes every reset converge. Pure: a table of cases.
 *
 *   journal phase   running image          decision
 *   ─────────────   ─────────────────────  ─────────────────────────────────────
 *   idle            any                    normal
 *   downloading     any                    resume-download
 *   staged          any                    resume-staged
 *   trial-pending   the new one, image_ok  confirmed (finish the commit)
 *   trial-pending   the new one            trial-boot
 *   trial-pending   the old one, install   resume-install (trailer written, header unit not yet:
 *                   cut before the header  program it and reboot)
 *   trial-pending   the old one            reverted (reason: see rollbackReason)
 *   confirmed       the new one            confirmed (raise the counter, close)
 *   confirmed       the old one            reverted (image_ok never landed)
 *   trial-failed    the old one            reverted (the reason the trial journaled)
 *   trial-failed    the new one, image_ok  confirmed
 *   trial-failed    the new one            trial-boot (its second boot: gives up at once)
 */
import type { ResetCause } from "../../hal/types";
import { Reason, type ReasonCode } from "../errors";
import { Phase, type Session } from "./journal";

export type BootEvent = "normal" | "resume-download" | "resume-staged" | "resume-install" | "trial-boot" | "reverted" | "confirmed";

export interface BootFacts {
  readonly session: Session;
  /** The running image is the release the session is about (its slot and version). */
  readonly runningIsNew: boolean;
  /** The running slot's trailer says image_ok. */
  readonly imageOk: boolean;
  readonly resetCause: ResetCause;
  /**
   * The old image runs and the inactive slot shows an install cut short:
   * trailer magic good, never tried, header unit still erased, header journaled.
   */
  readonly installCut?: boolean;
}

/**
 * Why a trial was reverted: the reason the trial journaled if any; a hang
 * (watchdog) or a crash (software reset) fails the release; a power loss or
 * the reset button says nothing against it (ROLLED_BACK: it may be offered again).
 */
export function rollbackReason(session: Session, cause: ResetCause): ReasonCode {
  if (session.lastReason && session.lastReason !== Reason.OK) return session.lastReason as ReasonCode;
  return cause === "watchdog" || cause === "software" ? Reason.TRIAL_FAILED : Reason.ROLLED_BACK;
}

export function decideBoot(f: BootFacts): { event: BootEvent; reason?: ReasonCode } {
  const s = f.session;
  switch (s.phase) {
    case Phase.DOWNLOADING:
      return { event: "resume-download" };
    case Phase.STAGED:
      return { event: "resume-staged" };
    case Phase.TRIAL_PENDING:
    case Phase.CONFIRMED:
    case Phase.TRIAL_FAILED:
      if (!f.runningIsNew && f.installCut && s.phase === Phase.TRIAL_PENDING) return { event: "resume-install" };
      if (!f.runningIsNew) return { event: "reverted", reason: rollbackReason(s, f.resetCause) };
      if (f.imageOk || s.phase === Phase.CONFIRMED) return { event: "confirmed" };
      return { event: "trial-boot" };
    default:
      return { event: "normal" };
  }
}
