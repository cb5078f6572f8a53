/**
 * A tiny portable test vocabulary, so that one suite runs under vitest on
 * Node and inside the XS engine (test/xs). No Node API here.
 */
export type TestFn = () => void | Promise<void>;

export interface Spec {
  readonly name: string;
  readonly run: TestFn;
}

export interface Suite {
  readonly name: string;
  readonly specs: readonly Spec[];
}

/** Define a suite: `suite("flash", (it) => { it("reads", () => …) })`. */
export function suite(name: string, define: (it: (name: string, run: TestFn) => void) => void): Suite {
  const specs: Spec[] = [];
  define((n, run) => specs.push({ name: n, run }));
  return { name, specs };
}

export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(AssertionError.prototype, "name", { value: "AssertionError", writable: true, configurable: true });

function show(v: unknown): string {
  if (v instanceof Uint8Array) {
    const head = Array.from(v.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
    return `Uint8Array(${v.length})[${head}${v.length > 16 ? "…" : ""}]`;
  }
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

export interface Assert {
  ok(value: unknown, message?: string): asserts value;
  equal<T>(actual: T, expected: T, message?: string): void;
  bytes(actual: Uint8Array, expected: Uint8Array, message?: string): void;
  throws(fn: () => unknown, check?: (e: unknown) => boolean, message?: string): unknown;
}

export const assert: Assert = {
  ok(value: unknown, message = "expected a truthy value"): asserts value {
    if (!value) throw new AssertionError(message);
  },
  equal<T>(actual: T, expected: T, message = ""): void {
    if (actual !== expected) throw new AssertionError(`${message ? message + ": " : ""}expected ${show(expected)}, got ${show(actual)}`);
  },
  bytes(actual: Uint8Array, expected: Uint8Array, message = ""): void {
    if (actual.length !== expected.length) {
      throw new AssertionError(`${message ? message + ": " : ""}length ${actual.length} != ${expected.length}`);
    }
    for (let i = 0; i < actual.length; i++) {
      if (actual[i] !== expected[i]) {
        throw new AssertionError(`${message ? message + ": " : ""}byte ${i}: 0x${actual[i].toString(16)} != 0x${expected[i].toString(16)}`);
      }
    }
  },
  /** `fn` throws; when `check` is given it must accept the error. Returns the error. */
  throws(fn: () => unknown, check?: (e: unknown) => boolean, message = "expected a throw"): unknown {
    try {
      fn();
    } catch (e) {
      if (check && !check(e)) throw new AssertionError(`${message}: wrong error ${String((e as Error)?.message ?? e)}`);
      return e;
    }
    throw new AssertionError(message);
  },
};

export interface RunReport {
  passed: number;
  failed: { name: string; error: string }[];
}

/** Run suites sequentially (used by the XS lane). */
export async function runSuites(suites: readonly Suite[]): Promise<RunReport> {
  const report: RunReport = { passed: 0, failed: [] };
  for (const s of suites) {
    for (const spec of s.specs) {
      try {
        await spec.run();
        report.passed++;
      } catch (e) {
        const err = e as Error;
        report.failed.push({ name: `${s.name} > ${spec.name}`, error: `${err?.name ?? "Error"}: ${err?.message ?? String(e)}` });
      }
    }
  }
  return report;
}
