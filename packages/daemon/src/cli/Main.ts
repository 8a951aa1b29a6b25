/**
 * The CLI entry: the whole command tree, and running it with failures reported in the one error shape and a
 * meaningful exit code (see `Runner`). `switchboard mcp` starts from `McpMain` instead, which loads only its own.
 */
import { Command } from "effect/cli"
import { apikey } from "./ApiKeyCommands.ts"
import { auth } from "./AuthCommands.ts"
import { beyondCommands, withAuditCommands } from "./BeyondCommands.ts"
import { bundleCommands } from "./BundleCommands.ts"
import { callCommands } from "./CallCommands.ts"
import { commands, root } from "./Commands.ts"
import { daemon } from "./DaemonCommands.ts"
import { demo } from "./DemoCommands.ts"
import { key } from "./KeyCommands.ts"
import { mcp } from "./McpCommands.ts"
import * as Runner from "./Runner.ts"
import { test } from "./TestCommands.ts"

export const version = Runner.version

export const cli = root.pipe(
  Command.withSubcommands([
    ...commands.slice(0, 4),
    withAuditCommands(commands[4]),
    ...callCommands,
    test,
    daemon,
    mcp,
    key,
    apikey,
    auth,
    demo,
    ...beyondCommands,
    ...bundleCommands
  ])
)

/** Run the CLI on `argv` (without the node and script paths); succeeds with the process exit code. */
export const run = (argv: ReadonlyArray<string>) => Runner.run(cli, argv)
