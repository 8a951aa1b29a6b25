/**
 * The command tree of `switchboard mcp` alone, which an MCP client starts on every session: `Run` picks it when
 * `mcp` is the command, so the process neither loads nor builds the other commands (the daemon's HTTP API and
 * pages, the probes, the key and auth commands). Its help and errors are those of the whole CLI's `mcp`.
 */
import { Command } from "effect/cli"
import { root } from "./Commands.ts"
import { mcp } from "./McpCommands.ts"
import * as Runner from "./Runner.ts"

export const cli = root.pipe(Command.withSubcommands([mcp]))

/** Run `switchboard … mcp …` on `argv`; succeeds with the process exit code. */
export const run = (argv: ReadonlyArray<string>) => Runner.run(cli, argv)
