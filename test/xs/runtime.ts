/**
 * The XS side of the XS lane: named tasks that the Node side runs one per
 * command, so each command's `meterUsage.compute` is that task's cost.
 * Portable: runs inside xsnap (no setTimeout, no Node, no console).
 *
 * A task returns a JSON-able value, or throws: the error (name, message,
 * stack when XS gives one) goes back to Node and fails the test.
 */
import { utf8Decode, utf8Encode } from "../../src/util/bytes";

type Task = () => unknown | Promise<unknown>;

const tasks: { [name: string]: Task } = {};

/** Register a task under a name (call at module top level). */
export function task(name: string, fn: Task): void {
  tasks[name] = fn;
}

function utf8(s: string): ArrayBuffer {
  return utf8Encode(s).buffer as ArrayBuffer;
}

/** Install the command handler xsnap calls: the message is the task name. */
export function serve(): void {
  (globalThis as { handleCommand?: unknown }).handleCommand = (message: ArrayBuffer) => {
    const name = utf8Decode(new Uint8Array(message)) ?? "";
    const reply: { result?: ArrayBuffer } = {};
    const done = (payload: unknown) => {
      reply.result = utf8(JSON.stringify(payload));
    };
    const fn = tasks[name];
    if (!fn) {
      done({ ok: false, error: `no task named ${name}; have ${Object.keys(tasks).join(", ")}` });
      return reply;
    }
    try {
      Promise.resolve(fn()).then(
        (value) => done({ ok: true, value: value === undefined ? null : value }),
        (e: Error) => done({ ok: false, error: `${e?.name}: ${e?.message}`, stack: String(e?.stack ?? "") }),
      );
    } catch (e) {
      const err = e as Error;
      done({ ok: false, error: `${err?.name}: ${err?.message}`, stack: String(err?.stack ?? "") });
    }
    return reply;
  };
}
