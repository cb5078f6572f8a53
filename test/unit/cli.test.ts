import { describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";

describe("xs-ota CLI", () => {
  it("--help lists the commands and exits 0", () => {
    const r = xsOta(["--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/usage: xs-ota <command>/);
  });
  it("an unknown command is one line on stderr and exit 2", () => {
    const r = xsOta(["frobnicate"]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
  });
});
