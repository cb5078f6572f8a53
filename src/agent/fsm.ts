/**
 * A transition-table state machine (the shape of AWS's OTA agent table):
 * frozen rows `{ state, event, handler, next }`, evaluated in order; `"*"`
 * matches any state. A transition happens only when its handler returns
 * `true`; a handler returning `false` keeps the state (the handler already
 * recorded why). An unmatched (state, event) pair is logged and dropped.
 *
 * Events are queued and dispatched one at a time (a handler may post more
 * events; they run after it returns), with a bounded queue.
 */
export type Wildcard = "*";

export interface Row<S extends string, E extends string, C> {
  readonly state: S | Wildcard;
  readonly event: E;
  readonly handler: (ctx: C, data: unknown) => boolean;
  /** The next state; `"*"` keeps the current one. */
  readonly next: S | Wildcard;
}

export type Table<S extends string, E extends string, C> = readonly Row<S, E, C>[];

/** Events waiting to be dispatched at most; a storm past this is a bug. */
export const MAX_QUEUED_EVENTS = 64;

export interface FsmHooks<S extends string, E extends string> {
  /** Called before a state change is committed (the agent journals here); may throw to veto. */
  onTransition?(from: S, to: S, event: E): void;
  /** An unmatched pair, or a dropped event. */
  onDrop?(state: S, event: E, why: string): void;
}

export class StateMachine<S extends string, E extends string, C> {
  private queue: { event: E; data: unknown }[] = [];
  private running = false;
  state: S;

  constructor(
    private readonly table: Table<S, E, C>,
    initial: S,
    private readonly ctx: C,
    private readonly hooks: FsmHooks<S, E> = {},
  ) {
    if (!Object.isFrozen(table)) throw new TypeError("StateMachine: the transition table must be frozen");
    this.state = initial;
  }

  /** Queue an event; dispatches now unless a dispatch is already running. */
  post(event: E, data?: unknown): void {
    if (this.queue.length >= MAX_QUEUED_EVENTS) {
      this.hooks.onDrop?.(this.state, event, "event queue full");
      return;
    }
    this.queue.push({ event, data });
    if (this.running) return;
    this.running = true;
    try {
      for (let item = this.queue.shift(); item; item = this.queue.shift()) this.dispatch(item.event, item.data);
    } finally {
      this.running = false;
      // A reset or power cut unwinding through here leaves nothing half-queued.
      this.queue.length = 0;
    }
  }

  private dispatch(event: E, data: unknown): void {
    const row = this.table.find((r) => r.event === event && (r.state === "*" || r.state === this.state));
    if (!row) {
      this.hooks.onDrop?.(this.state, event, "no transition");
      return;
    }
    if (!row.handler(this.ctx, data)) return;
    const next = row.next === "*" ? this.state : row.next;
    if (next !== this.state) {
      this.hooks.onTransition?.(this.state, next, event);
      this.state = next;
    }
  }
}
