/**
 * XS entry: what a Moddable device's frozen built-ins allow and refuse
 * (Moddable's linker freezes every built-in prototype and function; see
 * test/lib/moddable-realm). Tasks that must fail and tasks that must pass,
 * run by test/xs/strict.test.ts (and reusable by the device lane):
 *
 * - `assign-error-name`: an Error subclass that does `this.name = …` → TypeError
 *   "set name: not writable" (Error.prototype.name is read-only).
 * - `define-error-name`: the project's way (Object.defineProperty on the
 *   subclass's prototype) → works, with the name in err.name and String(err).
 * - `patch-builtin-prototype`: a polyfill-style `Uint8Array.prototype.x = …` → TypeError.
 * - `patch-builtin-constructor`: `Error.captureStackTrace = …` → TypeError.
 * - `override-inherited`: `obj.toString = …` on a plain object → TypeError
 *   (the "override mistake": Object.prototype.toString is read-only).
 * - `add-global`: a new global → works (the global object is not frozen).
 * - `realm`: what the realm looks like from inside: the global names, the
 *   built-ins that are not frozen (none expected), whether the global object is extensible.
 */
import { serve, task } from "../runtime";

type Loose = Record<string, unknown>;

task("assign-error-name", () => {
  class AssignedError extends Error {
    constructor(message: string) {
      super(message);
      this.name = "AssignedError";
    }
  }
  return String(new AssignedError("never"));
});

class DefinedError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}
Object.defineProperty(DefinedError.prototype, "name", { value: "DefinedError", writable: true, configurable: true });

task("define-error-name", () => {
  try {
    throw new DefinedError("flash busy", 7);
  } catch (e) {
    const err = e as DefinedError;
    return { name: err.name, message: err.message, code: err.code, text: String(err), isError: err instanceof Error, isDefined: err instanceof DefinedError };
  }
});

task("patch-builtin-prototype", () => {
  (Uint8Array.prototype as unknown as Loose).toHexString = function () {
    return "";
  };
  return "patched";
});

task("patch-builtin-constructor", () => {
  (Error as unknown as Loose).captureStackTrace = () => undefined;
  return "patched";
});

task("override-inherited", () => {
  const o: Loose = {};
  o.toString = () => "mine";
  return String(o);
});

task("add-global", () => {
  (globalThis as unknown as Loose).xsOtaProbe = 42;
  const v = (globalThis as unknown as Loose).xsOtaProbe;
  delete (globalThis as unknown as Loose).xsOtaProbe;
  return v;
});

/** The built-ins to check, by name: what fxFreezeBuiltIns lists, reached from a script. */
function intrinsics(): Record<string, unknown> {
  const g = globalThis as unknown as Loose;
  const iterProto = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));
  const out: Record<string, unknown> = {
    "%IteratorPrototype%": iterProto,
    "%ArrayIteratorPrototype%": Object.getPrototypeOf([][Symbol.iterator]()),
    "%MapIteratorPrototype%": Object.getPrototypeOf(new Map()[Symbol.iterator]()),
    "%TypedArray%": Object.getPrototypeOf(Uint8Array),
    "%TypedArray%.prototype": Object.getPrototypeOf(Uint8Array.prototype),
    "%GeneratorPrototype%": Object.getPrototypeOf(function* () {}).prototype,
    "%AsyncFunction%": Object.getPrototypeOf(async function () {}).constructor,
    "Array.prototype[@@unscopables]": (Array.prototype as unknown as Loose)[Symbol.unscopables as unknown as string],
    "Uint8Array.prototype.set": Uint8Array.prototype.set,
    "Error.prototype.toString": Error.prototype.toString,
    "Math.max": Math.max,
  };
  for (const name of ["Object", "Function", "Array", "Error", "TypeError", "Promise", "Uint8Array", "DataView", "Map", "Symbol", "BigInt", "JSON", "Math", "Reflect", "Atomics"]) {
    out[name] = g[name];
    const proto = (g[name] as Loose)?.prototype;
    if (proto) out[`${name}.prototype`] = proto;
  }
  return out;
}

task("realm", () => {
  const notFrozen = Object.entries(intrinsics())
    .filter(([, v]) => !Object.isFrozen(v))
    .map(([k]) => k);
  return { globals: Object.getOwnPropertyNames(globalThis).sort(), notFrozen, globalExtensible: Object.isExtensible(globalThis) };
});

serve();
