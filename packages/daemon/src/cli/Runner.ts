/**
 * Running a command tree on `argv`, with failures reported in the one error shape and a meaningful exit code (see
 * `Output.exitCodeOf`): shared by the whole CLI (`Main`) and the lean tree of `switchboard mcp` (`McpMain`), and
 * telling which of the two an `argv` needs (`isMcp`).
 */
import * as Effect from "effect/Effect"
import { CliError, Command } from "effect/cli"
import * as Output from "./Output.ts"

export const version = "0.1.0"

const wantsJson = (argv: ReadonlyArray<string>) => argv.includes("--json")

/** Run `cli` on `argv` (without the node and script paths); succeeds with the process exit code. */
export const run = <const Name extends string, I, C, E, R>(
  cli: Command.Command<Name, I, C, E, R>,
  argv: ReadonlyArray<string>
) =>
  Command.runWith(cli, { version })(argv).pipe(
    Effect.as(0),
    Effect.catch((error) =>
      CliError.isCliError(error) ? Effect.succeed(2) : Output.reportFailure(wantsJson(argv), error)
    )
  )

/** The root flags that take a value as the next word (besides `--flag=VALUE`). */
const valued = new Set(["--home", "--via", "--log-level"])
/** The root flags that take none. */
const bare = new Set(["--json"])

/**
 * The command words of `argv` (`["daemon", "start"]`, `["mcp"]`): after any root flags (and their values), the words
 * up to the next flag. Anything else before the first word (`--help`, `--completions`, an unknown flag) leaves no
 * words, and every decision to the whole CLI.
 */
export const commandWords = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const words: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string
    if (!word.startsWith("-")) {
      words.push(word)
      continue
    }
    if (words.length > 0) break
    const name = word.split("=", 1)[0] as string
    if (valued.has(name)) {
      if (!word.includes("=")) i++
    } else if (!bare.has(name)) return []
  }
  return words
}

/** Whether `argv` runs the `mcp` command, which `Run` starts from its own lean command tree. */
export const isMcp = (argv: ReadonlyArray<string>): boolean => commandWords(argv)[0] === "mcp"

/** Whether `argv` runs the daemon in this process: `daemon start` without `--detach` (which spawns the one that does). */
export const isDaemonStart = (argv: ReadonlyArray<string>): boolean => {
  const [first, second] = commandWords(argv)
  return first === "daemon" && second === "start" && !argv.includes("--detach")
}
