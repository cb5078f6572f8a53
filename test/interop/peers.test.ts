/**
 * The interop lane needs real peers from Debian packages (.ci/run installs
 * them). A missing peer fails the lane: it is never skipped.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const peers: [string, string[]][] = [
  ["mosquitto", ["-h"]],
  ["mosquitto_sub", ["--help"]],
  ["mosquitto_pub", ["--help"]],
  ["bsdiff", []],
  ["bspatch", []],
  ["xdelta3", ["-V"]],
  ["openssl", ["version"]],
  ["arm-none-eabi-gcc", ["--version"]],
  ["socat", ["-V"]],
];

describe("interop peers are installed", () => {
  for (const [cmd, args] of peers) {
    it(`${cmd} runs`, () => {
      const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 20_000 });
      expect(r.error, `${cmd} is missing: run .ci/run or apt-get install it`).toBeUndefined();
    });
  }
});
