/**
 * The CLI entry: the command tree, and running it with failures reported in the one error shape and a
 * meaningful exit code (see `Output.exitCodeOf`).
 */
import * as Effect from "effect/Effect"
import { CliError, Command } from "effect/cli"
import { auth } from "./AuthCommands.ts"
import { beyondCommands, withAuditCommands } from "./BeyondCommands.ts"
import { callCommands } from "./CallCommands.ts"
import { commands, root } from "./Commands.ts"
import { daemon } from "./DaemonCommands.ts"
import { demo } from "./DemoCommands.ts"
import { key } from "./KeyCommands.ts"
import { mcp } from "./McpCommands.ts"
import * as Output from "./Output.ts"
import { test } from "./TestCommands.ts"

export const version = "0.1.0"

export const cli = root.pipe(
  Command.withSubcommands([
    ...commands.slice(0, 4),
    withAuditCommands(commands[4]),
    ...callCommands,
    test,
    daemon,
    mcp,
    key,
    auth,
    demo,
    ...beyondCommands
  ])
)

const wantsJson = (argv: ReadonlyArray<string>) => argv.includes("--json")

/** Run the CLI on `argv` (without the node and script paths); succeeds with the process exit code. */
export const run = (argv: ReadonlyArray<string>) =>
  Command.runWith(cli, { version })(argv).pipe(
    Effect.as(0),
    Effect.catch((error) =>
      CliError.isCliError(error) ? Effect.succeed(2) : Output.reportFailure(wantsJson(argv), error)
    )
  )
