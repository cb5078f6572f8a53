/**
 * The software watchdog over the hardware one. Every long-running activity
 * of the agent (heartbeat loop, download, verify, trial) registers with a
 * deadline and checks in as it makes progress; the supervisor feeds the
 * hardware watchdog only while every registered activity is on time.
 *
 * A stuck activity is reported once (`onStuck`: the agent writes the audit
 * log), then feeding stops and the hardware watchdog resets the device, so
 * the reset cause after boot reads "watchdog" — never a direct reboot, which
 * would hide what happened.
 *
 * Bounds: at most MAX_ACTIVITIES registered; one periodic timer.
 */
import type { Clock, TimerId, Watchdog } from "../../hal/types";

export const ACTIVITIES = Object.freeze(["heartbeat", "download", "verify", "trial"] as const);
export type ActivityName = (typeof ACTIVITIES)[number];

export const MAX_ACTIVITIES = 8;

export interface Activity {
  readonly name: ActivityName;
  /** Progress: the deadline starts again. */
  checkIn(): void;
  /** The activity is over (or paused): no longer supervised. Idempotent. */
  end(): void;
}

export interface SupervisorOptions {
  /** How often the supervisor checks and feeds, ms (well under the hardware timeout). */
  readonly feedEveryMs: number;
  /** Called once when an activity misses its deadline; feeding stops right after. */
  readonly onStuck: (name: ActivityName, overdueMs: number) => void;
}

interface Entry {
  name: ActivityName;
  deadlineMs: number;
  last: number;
}

export class Supervisor {
  private readonly entries = new Set<Entry>();
  private timer: TimerId | undefined;
  /** The activity found stuck, once one is: the watchdog is starved from then on. */
  stuck: ActivityName | undefined;
  /** Longest time any activity went between check-ins (for the bench and tests). */
  longestGapMs = 0;

  constructor(
    private readonly clock: Clock,
    private readonly watchdog: Watchdog,
    private readonly o: SupervisorOptions,
  ) {
    if (!Number.isInteger(o.feedEveryMs) || o.feedEveryMs < 10) throw new RangeError("Supervisor: feedEveryMs must be an integer >= 10");
  }

  /** Arm the hardware watchdog and start checking. */
  start(watchdogTimeoutMs: number): void {
    if (this.o.feedEveryMs * 2 > watchdogTimeoutMs) throw new RangeError("Supervisor: feed at least twice per watchdog timeout");
    this.watchdog.start(watchdogTimeoutMs);
    if (this.timer === undefined) this.timer = this.clock.setTimer(() => this.check(), this.o.feedEveryMs, this.o.feedEveryMs);
  }

  /**
   * Supervise an activity: it must check in at least every `deadlineMs`.
   * @throws RangeError beyond MAX_ACTIVITIES or for a bad deadline.
   */
  register(name: ActivityName, deadlineMs: number): Activity {
    if (!Number.isInteger(deadlineMs) || deadlineMs < 1) throw new RangeError(`Supervisor: deadline of ${name} must be a positive integer`);
    if (this.entries.size >= MAX_ACTIVITIES) throw new RangeError(`Supervisor: more than ${MAX_ACTIVITIES} activities`);
    const e: Entry = { name, deadlineMs, last: this.clock.now() };
    this.entries.add(e);
    return {
      name,
      checkIn: () => {
        const now = this.clock.now();
        if (this.entries.has(e)) this.longestGapMs = Math.max(this.longestGapMs, now - e.last);
        e.last = now;
      },
      end: () => void this.entries.delete(e),
    };
  }

  /** Activities currently supervised. */
  get active(): readonly ActivityName[] {
    return Array.from(this.entries, (e) => e.name);
  }

  /** Check every deadline; feed the hardware watchdog when all are met. */
  check(): void {
    if (this.stuck) return; // starving on purpose: the hardware watchdog will reset us
    const now = this.clock.now();
    for (const e of this.entries) {
      if (now - e.last > e.deadlineMs) {
        this.stuck = e.name;
        this.o.onStuck(e.name, now - e.last - e.deadlineMs);
        return;
      }
    }
    this.watchdog.feed();
  }
}
