import { describe, expect, it } from "vitest";
import { decideBoot, rollbackReason } from "../../src/agent/boot-decision";
import { IDLE_SESSION, Phase, type PhaseCode } from "../../src/agent/journal";
import { Reason } from "../../src/errors";

const session = (phase: PhaseCode, lastReason = 0) => ({ ...IDLE_SESSION, phase, lastReason, envelope: Uint8Array.of(1) });

describe("boot decision: every journal phase against what the bootloader booted", () => {
  const cases: [string, PhaseCode, boolean, boolean, string, number?][] = [
    ["idle", Phase.IDLE, false, false, "normal"],
    ["downloading", Phase.DOWNLOADING, false, false, "resume-download"],
    ["staged", Phase.STAGED, false, false, "resume-staged"],
    ["trial-pending, new image booted", Phase.TRIAL_PENDING, true, false, "trial-boot"],
    ["trial-pending, new image already confirmed", Phase.TRIAL_PENDING, true, true, "confirmed"],
    ["trial-pending, old image booted (revert)", Phase.TRIAL_PENDING, false, false, "reverted", Reason.ROLLED_BACK],
    ["confirmed, new image", Phase.CONFIRMED, true, false, "confirmed"],
    ["confirmed, old image (image_ok never landed)", Phase.CONFIRMED, false, false, "reverted", Reason.ROLLED_BACK],
    ["trial-failed, old image", Phase.TRIAL_FAILED, false, false, "reverted", Reason.TRIAL_NO_CLOUD],
    ["trial-failed, new image confirmed after all", Phase.TRIAL_FAILED, true, true, "confirmed"],
    ["trial-failed, new image booted again", Phase.TRIAL_FAILED, true, false, "trial-boot"],
  ];
  for (const [name, phase, runningIsNew, imageOk, event, reason] of cases) {
    it(name, () => {
      const s = session(phase, phase === Phase.TRIAL_FAILED ? Reason.TRIAL_NO_CLOUD : 0);
      const d = decideBoot({ session: s, runningIsNew, imageOk, resetCause: "power-on" });
      expect(d.event).toBe(event);
      if (reason !== undefined) expect(d.reason).toBe(reason);
    });
  }
  it("trial-pending, old image, an install cut before the header unit: resume-install (only for trial-pending)", () => {
    expect(decideBoot({ session: session(Phase.TRIAL_PENDING), runningIsNew: false, imageOk: false, resetCause: "power-on", installCut: true }).event).toBe("resume-install");
    expect(decideBoot({ session: session(Phase.CONFIRMED), runningIsNew: false, imageOk: false, resetCause: "power-on", installCut: true }).event).toBe("reverted");
    expect(decideBoot({ session: session(Phase.TRIAL_PENDING), runningIsNew: true, imageOk: false, resetCause: "power-on", installCut: true }).event).toBe("trial-boot");
  });
  it("rollback reasons: the firmware's own resets fail the release; power loss and the reset pin do not", () => {
    const s = session(Phase.TRIAL_PENDING);
    expect(rollbackReason(s, "watchdog")).toBe(Reason.TRIAL_FAILED);
    expect(rollbackReason(s, "software")).toBe(Reason.TRIAL_FAILED);
    expect(rollbackReason(s, "power-on")).toBe(Reason.ROLLED_BACK);
    expect(rollbackReason(s, "pin")).toBe(Reason.ROLLED_BACK);
    expect(rollbackReason(session(Phase.TRIAL_PENDING, Reason.TRIAL_NO_CLOUD), "watchdog")).toBe(Reason.TRIAL_NO_CLOUD);
  });
});
