/**
 * `xs-ota`: the host CLI. Dispatches to the subcommands in tools/cli/registry.ts.
 */
import { CliError, describeError, io } from "./cli/command";
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
  let [name, ...rest] = argv;
  if (name === "help" && rest.length > 0) {
    // `xs-ota help sign` = `xs-ota sign --help`
    name = rest[0];
    rest = ["--help"];
  }
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
  const ownArgs = rest.indexOf("--");
  const flags = ownArgs < 0 ? rest : rest.slice(0, ownArgs);
  if (flags.includes("--help") || flags.includes("-h")) {
    process.stdout.write(cmd.usage.trimEnd() + "\n");
    return 0;
  }
  // --quiet and --json are the CLI's, not the command's.
  io.quiet = flags.includes("--quiet") || flags.includes("-q");
  io.json = cmd.json === true && flags.includes("--json");
  io.value = undefined;
  const args = rest.filter((a, i) => (ownArgs >= 0 && i >= ownArgs) || !(a === "--quiet" || a === "-q" || (io.json && a === "--json")));
  let code: number;
  try {
    code = await cmd.run(args);
  } catch (e) {
    code = e instanceof CliError ? e.exitCode : 1;
    const message = describeError(e);
    process.stderr.write(`xs-ota ${name}: error: ${message}${code === 2 ? ` (see xs-ota ${name} --help)` : ""}\n`);
    if (process.env.XS_OTA_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    if (io.json) io.result({ ok: false, exitCode: code, error: message });
  }
  if (io.json && io.value !== undefined) process.stdout.write(JSON.stringify(io.value, null, 2) + "\n");
  return code;
}
