/**
 * The release being handled and its journaled session: the phase record
 * (with the signed envelope, so a reset can pick the release up again), the
 * trial boot count, and the closing of a release — remembered for replay
 * defence when final, its outcome kept in the journal until the cloud has
 * acknowledged the report (at least once, whatever reset falls in between).
 */
import type { Digest } from "../../hal/types";
import { Reason, reasonName, type ReasonCode } from "../errors";
import type { SignerLookup } from "../crypto/keyring";
import type { ImageVersion } from "../image/format";
import { parseSignedManifest } from "../update/manifest";
import { rememberRelease } from "../update/policy";
import type { AcceptedManifest } from "../update/types";
import type { CloudLink } from "./cloud";
import { OUTCOME_EVENTS, Phase, type Journal, type PhaseCode, type Session } from "./journal";

export type OutcomeEvent = (typeof OUTCOME_EVENTS)[number];

export class ReleaseSession {
  /** The journaled session, as last written or read. */
  session: Session;
  /** The release in hand (from the offer, or the journal after a reset). */
  current: AcceptedManifest | undefined;
  private envelope: Uint8Array = new Uint8Array(0);

  constructor(
    private readonly journal: Journal,
    private readonly cloud: CloudLink,
    private readonly log: (line: string) => void,
  ) {
    this.session = journal.session();
  }

  /** A new release was accepted. */
  begin(accepted: AcceptedManifest, envelope: Uint8Array): void {
    this.current = accepted;
    this.envelope = envelope.slice();
  }

  /**
   * Take up the journaled release again (its envelope re-verified). An
   * envelope that no longer verifies (the keys changed) closes the session.
   */
  restore(keyring: SignerLookup, digest: Digest): AcceptedManifest | undefined {
    const r = parseSignedManifest(this.session.envelope, keyring, digest);
    if (!r.ok) {
      this.log(`journaled manifest no longer verifies: ${reasonName(r.reason)}`);
      this.journal.setSession({ ...this.session, phase: Phase.IDLE, envelope: new Uint8Array(0) });
      this.session = this.journal.session();
      return undefined;
    }
    this.begin(r.accepted, this.session.envelope);
    return r.accepted;
  }

  /** Journal a phase change of the current release. */
  setPhase(phase: PhaseCode, reason: ReasonCode): void {
    const trialBoots = phase === Phase.TRIAL_PENDING ? 0 : this.session.trialBoots;
    this.write({ phase, lastReason: reason, trialBoots, envelope: this.envelope });
  }

  /** Count a boot of the trial image. */
  countTrialBoot(): void {
    this.write({ ...this.session, trialBoots: this.session.trialBoots + 1 });
  }

  /**
   * End the release: remember it (replay defence) when `final`, go idle, and
   * report the outcome, kept in the journal until acknowledged.
   */
  close(reason: ReasonCode, final: boolean, event: OutcomeEvent, running: ImageVersion): void {
    const m = this.current;
    if (final && m) {
      const p = this.journal.policy();
      this.journal.setPolicy({ newestIssuedAt: p.newestIssuedAt, handled: rememberRelease(p.handled, m.releaseId) });
    }
    const outcome = m ? { event: OUTCOME_EVENTS.indexOf(event), reason, target: m.manifest.version, releaseId: m.releaseId } : undefined;
    this.write({ phase: Phase.IDLE, lastReason: reason, trialBoots: 0, envelope: new Uint8Array(0), outcome });
    this.sendOutcome(running);
  }

  /** Report the journaled outcome; forget it once the broker acknowledged it. */
  sendOutcome(running: ImageVersion): void {
    const o = this.session.outcome;
    if (!o) return;
    const sent = this.session;
    this.cloud.report({ event: OUTCOME_EVENTS[o.event], version: running, target: o.target, reason: o.reason, releaseId: o.releaseId }, (code) => {
      if (code !== Reason.OK || this.session !== sent) return;
      this.write({ ...sent, outcome: undefined });
    });
  }

  /** The release is finished with: nothing is current any more. */
  forget(): void {
    this.current = undefined;
    this.envelope = new Uint8Array(0);
  }

  private write(s: Session): void {
    this.journal.setSession(s);
    this.session = this.journal.session();
  }
}
