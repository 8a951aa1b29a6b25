/**
 * `switchboard key rotate`: re-seal the data directory under a new master key (see `KeyRotation`). It works on
 * the data directory itself, never through the daemon, and refuses while a daemon runs there: the daemon's store
 * keeps the old key open. A new key or passphrase comes from the environment, stdin or a hidden prompt, never
 * from argv; no key is ever printed except the one `--generate` makes, once.
 */
import * as Sodium from "@switchboard/adapters/sodium"
import { ValidationFailed } from "@switchboard/core/Errors"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { Command, Flag, Prompt } from "effect/cli"
import * as Daemon from "../Daemon.ts"
import { DaemonError } from "../DaemonError.ts"
import * as KeyRotation from "../KeyRotation.ts"
import * as Layers from "../Layers.ts"
import { root } from "./Commands.ts"
import { recipient } from "./BundleCommands.ts"
import * as Output from "./Output.ts"

const { ENV_MASTER_KEY, ENV_PASSPHRASE } = Sodium.KeyProvider

const invalid = (message: string, path: string, rule: string) =>
  new ValidationFailed({ message, details: { issues: [{ path, message: rule }] } })

const readStdin = Effect.gen(function* () {
  const stdio = yield* Stdio.Stdio
  return yield* stdio.stdin.pipe(Stream.decodeText(), Stream.mkString)
})

const isInteractive = Effect.flatMap(Effect.service(Stdio.Stdio), (stdio) => stdio.stdinIsTerminal)

/** The new passphrase: stdin (one trailing newline dropped), else typed twice at a hidden prompt. */
const newPassphrase = (fromStdin: boolean) =>
  Effect.gen(function* () {
    if (fromStdin) return Redacted.make((yield* readStdin).replace(/\r?\n$/u, ""))
    if (!(yield* isInteractive)) {
      return yield* invalid(
        `the master key comes from ${ENV_PASSPHRASE}: run in a terminal to be prompted for the new passphrase, ` +
          "or pass --new-passphrase-stdin",
        "--new-passphrase-stdin",
        "required without a terminal"
      )
    }
    const first = yield* Prompt.run(Prompt.Password({ message: "new passphrase:" }))
    const again = yield* Prompt.run(Prompt.Password({ message: "the new passphrase again:" }))
    if (Redacted.value(first) !== Redacted.value(again)) {
      return yield* invalid("the two passphrases differ; nothing was changed", "new passphrase", "typed twice the same")
    }
    return first
  })

// The key `--generate` made: on stdout, once, before the database commits to it (lost output would lose the data).
const announce = (json: boolean) => (key: Redacted.Redacted<string>) =>
  Effect.andThen(
    Console.error(
      "warning: the new master key follows on stdout, shown this once. Store it now (a password manager or secret " +
        `store) and set ${ENV_MASTER_KEY} to it: from now on only it opens this data directory, and anyone who ` +
        "has it can open every secret in it"
    ),
    Console.log(json ? JSON.stringify({ new_master_key: Redacted.value(key) }) : Redacted.value(key))
  )

interface RotateInput {
  readonly newKeyFromEnv: Option.Option<string>
  readonly generate: boolean
  readonly newPassphraseStdin: boolean
}

const newKeyOf = (input: RotateInput, provider: KeyRotation.Provider, json: boolean) =>
  Effect.gen(function* () {
    const given = [Option.isSome(input.newKeyFromEnv), input.generate, input.newPassphraseStdin].filter(Boolean)
    if (given.length > 1) {
      return yield* invalid(
        "give only one of --new-key-from-env, --generate and --new-passphrase-stdin",
        "new key",
        "one source only"
      )
    }
    if (Option.isSome(input.newKeyFromEnv)) {
      return { _tag: "FromEnv", name: input.newKeyFromEnv.value } satisfies KeyRotation.NewKey
    }
    if (input.generate) return { _tag: "Generate", announce: announce(json) } satisfies KeyRotation.NewKey
    if (input.newPassphraseStdin || provider === "passphrase") {
      const passphrase = yield* newPassphrase(input.newPassphraseStdin)
      return { _tag: "Passphrase", passphrase } satisfies KeyRotation.NewKey
    }
    return { _tag: "Unspecified" } satisfies KeyRotation.NewKey
  })

const nextSteps = (result: KeyRotation.Rotated, newKey: KeyRotation.NewKey, home: string): string => {
  switch (result.provider) {
    case "file":
      return `the key file ${home}/${Sodium.KeyProvider.KEY_FILE} now holds the new key`
    case "passphrase":
      return (
        `now set ${ENV_PASSPHRASE} to the new passphrase wherever Switchboard runs on this data directory ` +
        "(the old one no longer opens it)"
      )
    case "env":
      return `now set ${ENV_MASTER_KEY} to the new key (${
        newKey._tag === "FromEnv" ? `the value of ${newKey.name}` : "printed above"
      }) wherever Switchboard runs on this data directory (the old key no longer opens it)`
  }
}

const rotate = Command.make(
  "rotate",
  {
    newKeyFromEnv: Flag.String("new-key-from-env").pipe(
      Flag.withDescription(
        `With ${ENV_MASTER_KEY}: the environment variable that holds the new key (32 bytes, base64)`
      ),
      Flag.optional
    ),
    generate: Flag.Boolean("generate").pipe(
      Flag.withDescription(`With ${ENV_MASTER_KEY}: generate the new key and print it, once, to stdout`),
      Flag.withDefault(false)
    ),
    newPassphraseStdin: Flag.Boolean("new-passphrase-stdin").pipe(
      Flag.withDescription(`With ${ENV_PASSPHRASE}: read the new passphrase from stdin instead of a prompt`),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function* (input) {
    const flags = yield* root
    if (flags.via === "daemon") {
      return yield* invalid(
        "key rotate works on the data directory itself, never through the daemon",
        "--via",
        "not daemon"
      )
    }
    const env = process.env
    const home = Option.getOrUndefined(flags.home)
    const paths = Layers.resolvePaths({ home, env })
    const status = yield* Daemon.status({ home, env })
    if (status.running) {
      return yield* new DaemonError({
        reason: "daemon_running",
        message:
          `a daemon${status.pid === null ? "" : ` (pid ${status.pid})`} is running on ${paths.home} and keeps the ` +
          "current key open: stop it first (switchboard daemon stop), rotate, then start it again"
      })
    }
    const provider = Sodium.KeyProvider.sourceOf(env)
    const newKey = yield* newKeyOf(input, provider, flags.json)
    const result = yield* KeyRotation.rotate({
      paths,
      env,
      newKey,
      passphrase: yield* KeyRotation.PassphraseCost
    })
    const next = nextSteps(result, newKey, paths.home)
    if (flags.json) {
      yield* Output.printJson(result)
      if (result.provider !== "file") yield* Console.error(next)
      return
    }
    yield* Console.log(
      `re-sealed ${result.rotated} ${result.rotated === 1 ? "value" : "values"} under the new master key ` +
        `${result.key_id_new} (was ${result.key_id_old}); ${next}`
    )
  })
).pipe(
  Command.withDescription("Re-seal every secret under a new master key, in one transaction"),
  Command.withExamples([
    { command: "switchboard key rotate", description: "Key file: makes a new master.key" },
    {
      command: "NEW_KEY=$(openssl rand -base64 32) switchboard key rotate --new-key-from-env NEW_KEY",
      description: `${ENV_MASTER_KEY}: the new key from another variable`
    },
    { command: "switchboard key rotate", description: `${ENV_PASSPHRASE}: prompts for the new passphrase twice` }
  ])
)

export const key = Command.make("key").pipe(
  Command.withDescription("Manage the master key that seals every secret, and this machine's bundle recipient key"),
  Command.withSubcommands([rotate, recipient])
)
