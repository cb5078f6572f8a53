/**
 * The AT console under vitest: the portable suites (also run inside XS by
 * test/xs/at.test.ts) with the full 100,000-line random run, and the parser's
 * own checks.
 */
import { describe, expect, it } from "vitest";
import { registerSuite } from "../lib/vitest-suite";
import { allSuites } from "../xs/entries/at";
import { AtParser } from "../../src/at/parser";
import { parseCommandLine, renderReply } from "../../src/at/syntax";

for (const s of allSuites(100_000)) registerSuite(s);

describe("AT syntax", () => {
  it("parses the four V.250 forms case-insensitively", () => {
    expect(parseCommandLine("at+hearttm")).toEqual({ name: "HEARTTM", op: "exec", args: "" });
    expect(parseCommandLine("AT+HeartTm?")).toEqual({ name: "HEARTTM", op: "query", args: "" });
    expect(parseCommandLine("AT+HEARTTM=?")).toEqual({ name: "HEARTTM", op: "test", args: "" });
    expect(parseCommandLine("AT+OTASVR=Host.Example,1883")).toEqual({ name: "OTASVR", op: "set", args: "Host.Example,1883" });
    expect(parseCommandLine("AT")).toEqual({ name: "", op: "exec", args: "" });
    for (const bad of ["", "A", "AT+", "AT+=1", "XT+VER", "AT VER", "AT+VER ?", "AT+VER=?x"]) {
      if (bad === "AT+VER=?x") expect(parseCommandLine(bad)).toEqual({ name: "VER", op: "set", args: "?x" });
      else expect(parseCommandLine(bad), bad).toBeUndefined();
    }
  });
  it("frames replies as USR devices do", () => {
    expect(renderReply({ ok: true })).toBe("\r\n+OK\r\n");
    expect(renderReply({ ok: true, value: "1" })).toBe("\r\n+OK=1\r\n");
    expect(renderReply({ ok: true, value: "2", lines: ["+LOG=a", "+LOG=b"] })).toBe("\r\n+LOG=a\r\n+LOG=b\r\n+OK=2\r\n");
    expect(renderReply({ ok: false, error: -4 })).toBe("\r\n+ERR=-4\r\n");
    expect(renderReply({ ok: false, error: -5, reason: 307 })).toBe("\r\n+ERR=-5,307\r\n");
  });
});

describe("AT parser", () => {
  it("gives the same lines however the input is split in time", () => {
    const input = "AT+VER\rAT+HEARTTM=30\r\nAT+E?\n";
    const lines: string[] = [];
    const p = new AtParser({ send: () => {}, line: (t) => lines.push(t), data: () => {} }, {}, "command");
    for (let i = 0; i < input.length; i++) p.feed(input.charCodeAt(i), i);
    expect(lines).toEqual(["AT+VER", "AT+HEARTTM=30", "AT+E?"]);
  });
  it("checks its options", () => {
    const sink = { send: () => {}, line: () => {}, data: () => {} };
    expect(() => new AtParser(sink, { maxLine: 4 })).toThrow(RangeError);
    expect(() => new AtParser(sink, { guardMs: -1 })).toThrow(RangeError);
  });
  it("never holds more than maxLine + 3 bytes", () => {
    const p = new AtParser({ send: () => {}, line: () => {}, data: () => {} }, { maxLine: 16 }, "command");
    for (let i = 0; i < 1000; i++) p.feed(0x41, i);
    expect(p.heldBytes).toBe(16);
  });
});
