/**
 * Serve's rollout bookkeeping, in memory only (rebuilt from the reports log
 * at start): which releases each device has finished with, and which devices
 * are in an update now, so that
 *
 *  - a release a device reported a final outcome for is not offered to it
 *    again (the device would refuse it as MANIFEST_REPLAYED at every
 *    heartbeat) — unless the outcome's reason is one the device itself keeps
 *    retryable (`RETRYABLE`), and
 *  - at most `maxInFlight` devices update at once: a device takes a place
 *    when it is offered a release (or reports `offer-accepted` /
 *    `download-started`) and frees it with a final report, or when it has
 *    been silent for `timeoutSec` (a device that vanished mid-update).
 *
 * This class's count is one process's: serve passes maxInFlight 0 and takes
 * `--max-in-flight` places from the state every instance shares instead
 * (tools/serve/plans.ts, RolloutPlans' maxInFlight), so the bound is the
 * fleet's whatever the number of instances.
 */
import { existsSync, readFileSync } from "node:fs";
import { RETRYABLE_REASONS } from "../../src/agent/retry";

/**
 * Outcome reasons after which the device still accepts the same release: the
 * device's own list (src/agent/retry.ts), so serve re-offers exactly what the
 * agent would take again.
 */
export const RETRYABLE: readonly number[] = RETRYABLE_REASONS;

/** Report events that end an update attempt (the device's place is freed). */
export const FINAL_EVENTS: readonly string[] = Object.freeze(["committed", "rolled-back", "failed", "aborted", "offer-refused"]);
/** Report events that show the device is updating (it takes a place if it had none). */
export const STARTED_EVENTS: readonly string[] = Object.freeze(["offer-accepted", "download-started"]);

export interface RolloutOptions {
  /** Devices in an update at once; 0 = no bound. */
  readonly maxInFlight: number;
  /** A device silent this long (seconds) loses its place; an offer not taken up within it too. */
  readonly timeoutSec: number;
}

interface Place {
  release: string;
  /** Last sign of life (seconds). */
  last: number;
  /** Offered but not yet accepted: heartbeats do not keep the place. */
  offered: boolean;
}

export interface ReportLike {
  readonly deviceId: string;
  readonly event: string;
  readonly reason: number;
  /** Hex release id. */
  readonly release?: string;
}

export class Rollout {
  private readonly places = new Map<string, Place>();
  private readonly finished = new Map<string, Set<string>>();
  /** The release last offered to each device: a refusal without a release id (a manifest that did not verify) answers it. */
  private readonly lastOffer = new Map<string, string>();
  /** Offers withheld because every place was taken. */
  withheld = 0;
  /** Largest number of places taken at once. */
  peakInFlight = 0;
  /** Places freed by the silence timeout. */
  timedOut = 0;

  constructor(readonly o: RolloutOptions) {
    if (!Number.isInteger(o.maxInFlight) || o.maxInFlight < 0) throw new RangeError("Rollout: maxInFlight must be an integer >= 0");
    if (!(o.timeoutSec > 0)) throw new RangeError("Rollout: timeoutSec must be > 0");
  }

  /** Replay a reports log (JSON lines as serve writes them); unreadable lines are skipped. */
  rebuild(path: string): number {
    if (!existsSync(path)) return 0;
    let n = 0;
    for (const line of readFileSync(path, "utf8").split("\n")) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as ReportLike;
        if (typeof r.deviceId === "string" && typeof r.event === "string") {
          this.recordOutcome(r);
          n++;
        }
      } catch {
        // a torn last line (serve was killed mid-append): nothing to learn from it
      }
    }
    return n;
  }

  /** Has `deviceId` finished with `release` for good? */
  isFinished(deviceId: string, release: string): boolean {
    return this.finished.get(deviceId)?.has(release) ?? false;
  }

  /** Places taken now (after expiring silent devices). */
  inFlight(nowSec: number): number {
    this.expire(nowSec);
    return this.places.size;
  }

  /** Is `deviceId` holding a place? */
  holds(deviceId: string): boolean {
    return this.places.has(deviceId);
  }

  /**
   * May `deviceId` be offered `release` now? Takes a place when it may (the
   * device keeps its own place across re-offers); false when all are taken.
   */
  admit(deviceId: string, release: string, nowSec: number): boolean {
    this.expire(nowSec);
    this.lastOffer.set(deviceId, release);
    const held = this.places.get(deviceId);
    if (held) {
      // Offered again: the device is idle, so any earlier attempt is over; the place is this offer's now.
      if (!held.offered) held.last = nowSec;
      held.offered = true;
      held.release = release;
      return true;
    }
    if (this.o.maxInFlight > 0 && this.places.size >= this.o.maxInFlight) {
      this.withheld++;
      this.lastOffer.delete(deviceId);
      return false;
    }
    this.take(deviceId, release, nowSec, true);
    return true;
  }

  /** A heartbeat: keeps an accepted update's place. */
  seen(deviceId: string, nowSec: number): void {
    const p = this.places.get(deviceId);
    if (p && !p.offered) p.last = nowSec;
  }

  /** A status report. */
  report(r: ReportLike, nowSec: number): void {
    // The device could not read the release id of a manifest it could not verify: its refusal answers the last offer.
    if (r.event === "offer-refused" && !r.release && this.lastOffer.has(r.deviceId)) r = { ...r, release: this.lastOffer.get(r.deviceId) };
    if (STARTED_EVENTS.includes(r.event)) {
      const p = this.places.get(r.deviceId);
      if (p) {
        p.offered = false;
        p.last = nowSec;
        if (r.release) p.release = r.release;
      } else this.take(r.deviceId, r.release ?? "", nowSec, false);
    } else if (this.places.has(r.deviceId)) this.places.get(r.deviceId)!.last = nowSec;
    this.recordOutcome(r);
  }

  private recordOutcome(r: ReportLike): void {
    if (!FINAL_EVENTS.includes(r.event)) return;
    // A final report that reaches serve after the device was offered again (reports and heartbeats
    // travel on different topics, so their order is not kept) is about the earlier attempt: the place
    // now belongs to the new offer, which only the device's answer (accepted or refused) settles.
    const p = this.places.get(r.deviceId);
    if (p && (!p.offered || r.event === "offer-refused")) this.places.delete(r.deviceId);
    if (!r.release || RETRYABLE.includes(r.reason)) return;
    let s = this.finished.get(r.deviceId);
    if (!s) this.finished.set(r.deviceId, (s = new Set()));
    s.add(r.release);
  }

  private take(deviceId: string, release: string, nowSec: number, offered: boolean): void {
    this.places.set(deviceId, { release, last: nowSec, offered });
    this.peakInFlight = Math.max(this.peakInFlight, this.places.size);
  }

  private expire(nowSec: number): void {
    for (const [id, p] of this.places) {
      if (nowSec - p.last > this.o.timeoutSec) {
        this.places.delete(id);
        this.timedOut++;
      }
    }
  }
}
