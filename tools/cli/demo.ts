/** `xs-ota demo`: the simulator demo that `npm start` runs. */
import type { Command } from "./command";
import { intOption, io, parse, usageError } from "./command";
import { runDemo } from "../demo/demo";

const usage = `usage: xs-ota demo [--speed N] [--step-timeout S] [--keep]

Runs the whole product on this machine with embedded defaults: signs a factory
image and three releases, starts xs-ota serve (embedded MQTT broker, throwaway
CA, TLS) and one virtual USR-N520 running the real agent over real TLS sockets,
then performs a full update, a delta update, and a bad release that is rolled
back. Prints progress and a summary; exits 0 only if all three ended as expected.

  --speed N          the device's virtual clock runs N times real time (default 20)
  --step-timeout S   real seconds each step may take (default 120)
  --keep             keep the working directory (key, releases, server reports)
`;

export const command: Command = {
  summary: "run the simulator demo: full update, delta update, rollback (npm start)",
  usage,
  async run(argv) {
    const { values } = parse(argv, { speed: { type: "string" }, "step-timeout": { type: "string" }, keep: { type: "boolean" } }, false);
    const speed = intOption(values.speed, "speed", 20);
    if (speed < 1 || speed > 1000) throw usageError(`--speed must be 1..1000, got ${speed}`);
    const stepTimeoutS = intOption(values["step-timeout"], "step-timeout", 120);
    if (stepTimeoutS < 1 || stepTimeoutS > 86400) throw usageError(`--step-timeout must be 1..86400 seconds, got ${stepTimeoutS}`);
    const ok = await runDemo({
      speed,
      stepTimeoutS,
      keep: values.keep ?? false,
      out: (line) => io.say(line),
    });
    return ok ? 0 : 1;
  },
};
