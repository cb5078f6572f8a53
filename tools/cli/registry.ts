/**
 * The subcommands of `xs-ota`, one line each. Each issue adds its own.
 * Keep the list sorted by name.
 */
import type { Command } from "./command";

export const commands: { [name: string]: () => Promise<Command> } = {
};
