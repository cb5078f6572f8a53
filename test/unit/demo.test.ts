/** `npm start` runs `xs-ota demo`: all three steps must end as expected, judged from the server's reports. */
import { describe, expect, it } from "vitest";
import { xsOta } from "../lib/cli";

describe("xs-ota demo (npm start)", () => {
  it("full update, delta update and a rolled-back bad release, over real TLS to xs-ota serve", () => {
    const r = xsOta(["demo", "--step-timeout", "90"], { timeoutMs: 300_000 });
    expect(r.status, r.stdout.slice(-3000) + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/✔ committed; running 1\.1\.0\+2 in slot 1/);
    expect(r.stdout).toMatch(/✔ committed; running 1\.2\.0\+3 in slot 0/);
    expect(r.stdout).toMatch(/✔ rolled-back \(TRIAL_NO_CLOUD(?:_RETRY)?\); running 1\.2\.0\+3 in slot 0/);
    expect(r.stdout).toMatch(/all three ended as expected/);
    // Progress with bytes, and the steps in the order they happen.
    expect(r.stdout).toMatch(/device: downloading \[#{20}\] 100% \([\d,]+ of [\d,]+ bytes\); installing \[#{20}\] ([\d,]+) of \1 bytes of the new image/);
    // The delta's payload is far smaller than the image it installs: the two counts differ.
    const delta = /downloading \[#{20}\] 100% \(([\d,]+) of [\d,]+ bytes\); installing \[#{20}\] ([\d,]+) of/g;
    const pairs = [...r.stdout.matchAll(delta)].map((m) => [Number(m[1].replace(/,/g, "")), Number(m[2].replace(/,/g, ""))]);
    expect(pairs.some(([payload, image]) => payload * 10 < image)).toBe(true);
    const at = (s: string) => r.stdout.indexOf(s);
    expect(at("staged -ready-> installing")).toBeGreaterThan(0);
    expect(at("staged -ready-> installing")).toBeLessThan(at("rebooting into 1.1.0+2"));
    expect(at("100% (")).toBeLessThan(at("-downloaded-> verifying"));
  }, 320_000);
});
