/**
 * `xs-ota`: the host CLI. Dispatches to the subcommands in tools/cli/registry.ts.
 */
import { CliError, describeError } from "./cli/command";
import { commands } from "./cli/registry";

const VERSION = "0.1.0";

function help(): string {
  return [
    "usage: xs-ota <command> [options]",
    "",
    "Host tools for xs-ota: signed MCUboot images and release manifests, delta",
    "patches, the update server, and the device simulator.",
    "",
    "commands:",
    ...Object.keys(commands)
      .sort()
      .map((name) => `  ${name.padEnd(10)} ${summaries[name] ?? ""}`),
    "",
    "Run `xs-ota <command> --help` for a command's options.",
  ].join("\n");
}

// Filled lazily so `--help` does not load every command's dependencies.
const summaries: { [name: string]: string } = {};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    for (const n of Object.keys(commands)) summaries[n] = (await commands[n]()).summary;
    process.stdout.write(help() + "\n");
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(`xs-ota ${VERSION}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`xs-ota: error: unknown command "${name}" (see xs-ota --help)\n`);
    return 2;
  }
  const cmd = await load();
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(cmd.usage.trimEnd() + "\n");
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    const code = e instanceof CliError ? e.exitCode : 1;
    process.stderr.write(`xs-ota ${name}: error: ${describeError(e)}\n`);
    if (process.env.XS_OTA_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return code;
  }
}
