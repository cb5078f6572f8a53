/**
 * The realm a Moddable device gives our code, as a script that makes an XS
 * worker look like it: evaluated before the bundle in the xsnap lane
 * (test/xs/harness.ts) and in the emulated Cortex-M7 (test/device).
 *
 * Two things differ between xsnap and a Moddable build, and both hid real
 * start-up failures (issue 13):
 *
 * 1. Globals. xsnap's worker (xsnap-native/xsnap/sources/xsnap-worker.c,
 *    xsBuildAgent) adds TextEncoder/TextDecoder, Base64, setImmediate, print,
 *    gc, performance, harden and its metering and command functions. A
 *    Moddable build has only what XS itself defines, plus what the app's
 *    own modules install. The prelude deletes every global that is not in
 *    MODDABLE_GLOBALS.
 *
 * 2. Frozen built-ins. Moddable's linker (xs/tools/xsl.c, on every build with
 *    "strip" or "preload", i.e. every mcconfig build: examples/manifest_base.json
 *    sets "strip": "*") calls fxFreezeBuiltIns (xsl.c) and then fxPrepareHeap
 *    (xs/tools/xslSlot.c), which together make every built-in function
 *    (constructors included) and every built-in prototype frozen, and freeze
 *    Atomics, JSON, Math, Reflect and Array.prototype[@@unscopables]. The
 *    global object is not frozen: it is aliased into RAM, so an app can still
 *    add globals (handleCommand below is one). documentation/xs/preload.md,
 *    "Automatic Freezing of Built-ins", says the same. The prelude freezes
 *    everything reachable from the allowed globals and from the hidden
 *    intrinsics in HIDDEN_INTRINSICS, except the global object itself.
 *
 * Moddable sources cited: SDK commit 48ee02d8 (/work/sdk/moddable).
 */

/**
 * The globals of a Moddable build. XS's own (xs/sources/xsCommon.h: the ids
 * from _AggregateError up to _AsyncFunction, which xsAPI.c fxCreateMachine
 * installs on the global object, then `global` and `globalThis`), with
 * xsCommon.h's Moddable defaults: mxECMAScript2025 (Iterator) and mxFloat16
 * (Float16Array) on, mxExplicitResourceManagement and mxModuleStuff off,
 * mxNative on (Native, native).
 *
 * `trace` is XS's (xsGlobal.c fxBuildGlobal), the console of a device.
 *
 * Not here, though a Moddable app may have them:
 * - `device` and `System`, installed by modules/io/system/system.js when the
 *   io manifest is included: the platform's, reached only by hal/moddable,
 *   never by src/ or the mocks the lanes run.
 * - `screen`, `backlight` (build/devices/* /setup): displays; we have none.
 * - `harden`, `lockdown`: XS has them (xsLockdown.c) but only the xst test
 *   tool installs them (xs/tools/xst.c); no Moddable build does.
 * - `setTimeout`, `setInterval`, `queueMicrotask`, `structuredClone`,
 *   `console`, `TextEncoder`, `TextDecoder`, `atob`, `btoa`: none is a
 *   global on Moddable (timers and structuredClone are modules under
 *   modules/base; there is no queueMicrotask anywhere in the SDK).
 *
 * xsnap's XS (an older XS) lacks Iterator, Float16Array, Native and native;
 * the lane cannot add them, and our code must not use them.
 */
export const MODDABLE_GLOBALS: readonly string[] = Object.freeze([
  // xsCommon.h, _AggregateError … _unescape (installed non-enumerable)
  "AggregateError", "Array", "ArrayBuffer", "Atomics", "BigInt", "BigInt64Array", "BigUint64Array",
  "Boolean", "DataView", "Date", "Error", "EvalError", "FinalizationRegistry", "Float32Array",
  "Float64Array", "Int16Array", "Int32Array", "Int8Array", "JSON", "Map", "Math", "ModuleSource",
  "Number", "Object", "Promise", "Proxy", "RangeError", "ReferenceError", "Reflect", "RegExp", "Set",
  "SharedArrayBuffer", "String", "Symbol", "SyntaxError", "TypeError", "TypedArray", "URIError",
  "Uint16Array", "Uint32Array", "Uint8Array", "Uint8ClampedArray", "WeakMap", "WeakRef", "WeakSet",
  "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "isFinite", "isNaN",
  "parseFloat", "parseInt", "trace", "unescape",
  // #if mxECMAScript2025, #if mxFloat16 (both default to 1 in xsCommon.h)
  "Iterator", "Float16Array",
  // _Infinity, _NaN, _undefined (read-only), _Compartment, _Function
  "Infinity", "NaN", "undefined", "Compartment", "Function",
  // #if mxNative (defaults to 1)
  "Native", "native",
  // _eval; then xsAPI.c adds _global and _globalThis
  "eval", "global", "globalThis",
]);

/**
 * The globals an app installs itself, which the prelude therefore leaves
 * alone if present: `handleCommand` is how xsnap's worker delivers a command
 * (xsnap-worker.c calls the global by name); our test/xs/runtime.ts installs
 * it after the prelude ran. On a device the entry point plays this part.
 */
export const APP_GLOBALS: readonly string[] = Object.freeze(["handleCommand"]);

/**
 * What xsnap adds (xsnap-worker.c xsBuildAgent) and the prelude deletes, with
 * why each must go. Kept as data so test/xs/strict.test.ts can check that the
 * worker has nothing else: a new xsnap global fails that test until it is
 * listed here (and so decided).
 */
export const XSNAP_ONLY_GLOBALS: Readonly<Record<string, string>> = Object.freeze({
  TextEncoder: "no TextEncoder on Moddable: @noble's utf8ToBytes failed at import (issue 13)",
  TextDecoder: "no TextDecoder on Moddable",
  Base64: "xsnap's base64 object; Moddable has a base64 module, not a global",
  setImmediate: "no timers as globals on Moddable (modules/base/timer is a module)",
  print: "Moddable's console is trace()",
  gc: "not a global on Moddable",
  performance: "not on Moddable (no performance.now)",
  harden: "only XS's xst test tool installs harden; no Moddable build does",
  currentMeterLimit: "xsnap's metering; the harness reads the meter from the worker's reply, not from JS",
  resetMeter: "xsnap's metering; not used by the lane",
  issueCommand:
    "xsnap's way for JS to call out to the host; our runtime answers commands by returning from " +
    "handleCommand instead, so the lane works without it (test/xs/strict.test.ts runs every task after deleting it)",
});

/**
 * Built-ins no global leads to, and how the prelude reaches them: the
 * prototypes fxFreezeBuiltIns (xsl.c) lists that are not some constructor's
 * `prototype`. Each is an expression in the prelude (ES2020, strict).
 * Not reachable from a script, so not here (nor writable by our code):
 * %AsyncFromSyncIteratorPrototype%, XS's enumerator (for-in), Transfer,
 * Host and Module prototypes.
 */
export const HIDDEN_INTRINSICS: Readonly<Record<string, string>> = Object.freeze({
  "%ArrayIteratorPrototype% (→ %IteratorPrototype%)": "Object.getPrototypeOf([][Symbol.iterator]())",
  "%MapIteratorPrototype%": "Object.getPrototypeOf(new Map()[Symbol.iterator]())",
  "%SetIteratorPrototype%": "Object.getPrototypeOf(new Set()[Symbol.iterator]())",
  "%StringIteratorPrototype%": 'Object.getPrototypeOf(""[Symbol.iterator]())',
  "%RegExpStringIteratorPrototype%": 'Object.getPrototypeOf(/./[Symbol.matchAll](""))',
  "%GeneratorFunction.prototype% (→ %GeneratorFunction%, %GeneratorPrototype%)": "Object.getPrototypeOf(function* () {})",
  "%AsyncFunction.prototype% (→ %AsyncFunction%)": "Object.getPrototypeOf(async function () {})",
  "%AsyncGeneratorFunction.prototype% (→ %AsyncGeneratorPrototype%, %AsyncIteratorPrototype%)": "Object.getPrototypeOf(async function* () {})",
  "XS's sloppy arguments prototype": 'Object.getPrototypeOf(Function("return arguments")())',
  "XS's strict arguments prototype": "Object.getPrototypeOf((function () { return arguments; })())",
  "%ThrowTypeError% (also reached through Function.prototype's caller/arguments)": '(function () { try { return Object.getOwnPropertyDescriptor(Function.prototype, "caller").get; } catch (e) { return undefined; } })()',
});

/**
 * The prelude: a plain ES2020 script, run once before any project code. Its
 * completion value is `{ deleted, frozen }` (the names of the globals it
 * deleted, the number of objects it froze); it adds no global of its own.
 */
export const moddableRealmPrelude = `(function (allowed, appGlobals, hidden) {
  "use strict";
  var g = globalThis;
  var deleted = [];
  var names = Object.getOwnPropertyNames(g);
  for (var i = 0; i < names.length; i++) {
    var name = names[i];
    if (allowed.indexOf(name) >= 0 || appGlobals.indexOf(name) >= 0) continue;
    if (!delete g[name]) throw new TypeError("moddable realm: cannot delete global " + name);
    deleted.push(name);
  }
  var seen = new WeakSet();
  var stack = [];
  var frozen = 0;
  function reach(v) {
    if ((typeof v === "object" && v !== null) || typeof v === "function") stack.push(v);
  }
  for (var j = 0; j < allowed.length; j++) if (Object.prototype.hasOwnProperty.call(g, allowed[j])) reach(g[allowed[j]]);
  for (var k = 0; k < hidden.length; k++) reach(hidden[k]);
  while (stack.length > 0) {
    var o = stack.pop();
    if (o === g || seen.has(o)) continue;
    seen.add(o);
    Object.freeze(o);
    frozen++;
    var keys = Reflect.ownKeys(o);
    for (var m = 0; m < keys.length; m++) {
      var d = Reflect.getOwnPropertyDescriptor(o, keys[m]);
      if (!d) continue;
      if ("value" in d) reach(d.value);
      else { reach(d.get); reach(d.set); }
    }
    reach(Object.getPrototypeOf(o));
  }
  return { deleted: deleted, frozen: frozen };
})(${JSON.stringify(MODDABLE_GLOBALS)}, ${JSON.stringify(APP_GLOBALS)}, [
${Object.entries(HIDDEN_INTRINSICS)
  .map(([what, expr]) => `  /* ${what} */ ${expr},`)
  .join("\n")}
]);
`;
