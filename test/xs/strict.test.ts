/**
 * The XS lane is as strict as a Moddable device (issue 13): only Moddable's
 * globals, built-ins frozen (test/lib/moddable-realm). Each "fails" case is
 * also run in xsnap's own realm, where it passes: that is what the prelude
 * changes, so these tests would catch a prelude that stopped working.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APP_GLOBALS, MODDABLE_GLOBALS, XSNAP_ONLY_GLOBALS } from "../lib/moddable-realm";
import { startXs, type XsWorker } from "./harness";

const entry = (name: string) => new URL(`./entries/${name}.ts`, import.meta.url).pathname;

describe("XS lane: a module that reads a global Moddable lacks fails to load", () => {
  it("reading TextEncoder at import: ReferenceError in the Moddable realm, loads in xsnap's", async () => {
    await expect(startXs(entry("strict-textencoder"))).rejects.toThrow(/ReferenceError.*TextEncoder/);
    const loose = await startXs(entry("strict-textencoder"), { moddableRealm: false });
    try {
      expect((await loose.run<number[]>("encoded")).value).toEqual([120, 115, 45, 111, 116, 97]);
    } finally {
      await loose.close();
    }
  });

  it("importing @noble/curves/nist.js (what the agent did before src/crypto/p256) fails the same way", async () => {
    await expect(startXs(entry("strict-noble-nist"))).rejects.toThrow(/ReferenceError.*TextEncoder/);
  });
});

describe("XS lane: frozen built-ins", () => {
  let xs: XsWorker;
  let loose: XsWorker;
  beforeAll(async () => {
    [xs, loose] = await Promise.all([startXs(entry("strict-frozen")), startXs(entry("strict-frozen"), { moddableRealm: false })]);
  });
  afterAll(async () => {
    await xs?.close();
    await loose?.close();
  });

  it("an Error subclass that assigns this.name throws 'set name: not writable' (and does not in xsnap's realm)", async () => {
    await expect(xs.run("assign-error-name")).rejects.toThrow(/TypeError: .*set name: not writable/);
    expect((await loose.run("assign-error-name")).value).toBe("AssignedError: never");
  });

  it("an Error subclass that defines name on its prototype works: name, message, String(err), instanceof", async () => {
    expect((await xs.run("define-error-name")).value).toEqual({
      name: "DefinedError",
      message: "flash busy",
      code: 7,
      text: "DefinedError: flash busy",
      isError: true,
      isDefined: true,
    });
  });

  it("assignments to a built-in prototype, a built-in constructor, or over an inherited built-in property throw TypeError", async () => {
    for (const t of ["patch-builtin-prototype", "patch-builtin-constructor", "override-inherited"]) {
      await expect(xs.run(t), t).rejects.toThrow(/TypeError/);
      expect((await loose.run(t)).value, t).toBeDefined(); // fine in xsnap's realm: the prelude is what refuses
    }
  });

  it("the global object stays extensible: an app may add globals (Moddable aliases it into RAM)", async () => {
    expect((await xs.run("add-global")).value).toBe(42);
  });

  it("from inside: every checked built-in is frozen, and the globals are Moddable's (plus the command handler)", async () => {
    const { value } = await xs.run<{ globals: string[]; notFrozen: string[]; globalExtensible: boolean }>("realm");
    expect(value.notFrozen).toEqual([]);
    expect(value.globalExtensible).toBe(true);
    const extra = value.globals.filter((g) => !MODDABLE_GLOBALS.includes(g) && !APP_GLOBALS.includes(g));
    expect(extra).toEqual([]);
    for (const gone of Object.keys(XSNAP_ONLY_GLOBALS)) expect(value.globals).not.toContain(gone);
    for (const kept of ["trace", "Compartment", "globalThis", "eval", "Uint8Array", "BigInt", "handleCommand"]) expect(value.globals).toContain(kept);
  });

  it("xsnap's realm has exactly the extra globals XSNAP_ONLY_GLOBALS decides about (a new one fails here until listed)", async () => {
    const { value } = await loose.run<{ globals: string[]; notFrozen: string[] }>("realm");
    const extra = value.globals.filter((g) => !MODDABLE_GLOBALS.includes(g) && !APP_GLOBALS.includes(g)).sort();
    expect(extra).toEqual(Object.keys(XSNAP_ONLY_GLOBALS).sort());
    expect(value.notFrozen.length).toBeGreaterThan(10);
  });
});
