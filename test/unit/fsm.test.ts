import { describe, expect, it } from "vitest";
import { MAX_QUEUED_EVENTS, StateMachine, type Table } from "../../src/agent/fsm";

type S = "idle" | "busy" | "done";
type E = "go" | "finish" | "fail" | "reset";
interface Ctx {
  log: string[];
  allow: boolean;
  sm?: StateMachine<S, E, Ctx>;
}

const table: Table<S, E, Ctx> = Object.freeze([
  { state: "idle", event: "go", handler: (c: Ctx) => (c.log.push("go"), c.allow), next: "busy" },
  { state: "busy", event: "finish", handler: (c: Ctx) => (c.log.push("finish"), true), next: "done" },
  { state: "busy", event: "fail", handler: (c: Ctx) => (c.sm!.post("reset"), true), next: "*" },
  { state: "*", event: "reset", handler: (c: Ctx) => (c.log.push("reset"), true), next: "idle" },
] as const);

describe("transition-table state machine", () => {
  it("transitions only when the handler succeeds", () => {
    const ctx: Ctx = { log: [], allow: false };
    const sm = new StateMachine(table, "idle", ctx);
    sm.post("go");
    expect(sm.state).toBe("idle");
    ctx.allow = true;
    sm.post("go");
    expect(sm.state).toBe("busy");
    sm.post("finish");
    expect(sm.state).toBe("done");
  });
  it("drops and reports an unmatched pair", () => {
    const drops: string[] = [];
    const sm = new StateMachine(table, "idle", { log: [], allow: true }, { onDrop: (s, e, why) => drops.push(`${s}/${e}/${why}`) });
    sm.post("finish");
    expect(sm.state).toBe("idle");
    expect(drops).toEqual(["idle/finish/no transition"]);
  });
  it("wildcard rows match any state; events posted by a handler run after it", () => {
    const ctx: Ctx = { log: [], allow: true };
    const seen: string[] = [];
    const sm = new StateMachine(table, "idle", ctx, { onTransition: (a, b) => seen.push(`${a}->${b}`) });
    ctx.sm = sm;
    sm.post("go");
    sm.post("fail");
    expect(sm.state).toBe("idle");
    expect(seen).toEqual(["idle->busy", "busy->idle"]);
  });
  it("a journal failure in onTransition vetoes the state change", () => {
    const sm = new StateMachine(table, "idle", { log: [], allow: true }, {
      onTransition: () => {
        throw new Error("flash full");
      },
    });
    expect(() => sm.post("go")).toThrow("flash full");
    expect(sm.state).toBe("idle");
  });
  it("refuses an unfrozen table and bounds the queue", () => {
    expect(() => new StateMachine([...table], "idle", { log: [], allow: true })).toThrow(TypeError);
    let drops = 0;
    const storm: Table<S, E, Ctx> = Object.freeze([
      { state: "*", event: "go", handler: (c: Ctx) => { for (let i = 0; i < 100; i++) c.sm!.post("reset"); return true; }, next: "*" },
      { state: "*", event: "reset", handler: () => true, next: "*" },
    ] as const);
    const ctx: Ctx = { log: [], allow: true };
    const sm = new StateMachine(storm, "idle", ctx, { onDrop: () => drops++ });
    ctx.sm = sm;
    sm.post("go");
    expect(drops).toBe(100 - (MAX_QUEUED_EVENTS - 0));
  });
});
