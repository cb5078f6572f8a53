/**
 * The subcommands of `xs-ota`, one line each. Each issue adds its own.
 * Keep the list sorted by name.
 */
import type { Command } from "./command";

export const commands: { [name: string]: () => Promise<Command> } = {
  apply: async () => (await import("./apply")).command,
  ca: async () => (await import("./ca")).command,
  demo: async () => (await import("./demo")).command,
  diff: async () => (await import("./diff")).command,
  getpub: async () => (await import("./getpub")).command,
  inspect: async () => (await import("./inspect")).command,
  keygen: async () => (await import("./keygen")).command,
  keyset: async () => (await import("./keyset")).command,
  release: async () => (await import("./release")).command,
  revoke: async () => (await import("./revoke")).command,
  rollout: async () => (await import("./rollout")).command,
  serve: async () => (await import("./serve")).command,
  sign: async () => (await import("./sign")).command,
  sim: async () => (await import("./sim")).command,
  verify: async () => (await import("./verify")).command,
  watch: async () => (await import("./watch")).command,
};
