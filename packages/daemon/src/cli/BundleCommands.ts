/**
 * Sealed bundles from the command line: moving connectors, credentials and connections to another machine with
 * nothing readable in transit.
 *
 * - `switchboard key recipient` prints this machine's bundle recipient key (`sbrk1_…`, public), made on first use;
 *   its secret half is kept in the database sealed under the master key (so it is as safe as every other secret,
 *   is backed up with them, and `key rotate` re-seals it).
 * - `switchboard export --to <recipient> [--out file] [--connector name …]` seals this organization's connectors
 *   (every version), their credentials (every scope) and connections (with their write-only security and headers)
 *   to that recipient: to stdout, or to a new file (0600).
 * - `switchboard import <file|-> [--on-conflict fail|skip|replace|rename]` opens a bundle with this machine's key
 *   and restores it in one transaction: a wrong recipient, a modified byte or a conflict (with `fail`, the default)
 *   writes nothing.
 *
 * All three work on the data directory itself (like `key rotate`), never through the daemon; a running daemon
 * shares the database file and sees an import at once. With `store_url` (a team server), on that PostgreSQL
 * database.
 */
import * as Sodium from "@switchboard/adapters/sodium"
import * as Bundle from "@switchboard/core/Bundle"
import { ValidationFailed } from "@switchboard/core/Errors"
import * as Principal from "@switchboard/core/Principal"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { Argument, Command, Flag } from "effect/cli"
import * as Fs from "node:fs"
import { io } from "../DaemonError.ts"
import * as Layers from "../Layers.ts"
import { root } from "./Commands.ts"
import * as Output from "./Output.ts"

const invalid = (message: string, path: string) =>
  new ValidationFailed({ message, details: { issues: [{ path, message }] } })

/** Run `f` with the data directory's bundle store (the directory is created, 0700, when missing). */
const withBundleStore = <A, E, R>(f: (store: Bundle.BundleStore["Service"]) => Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const flags = yield* root
    if (flags.via === "daemon") {
      return yield* invalid("bundles work on the data directory itself, never through the daemon", "--via")
    }
    const paths = Layers.resolvePaths({ home: Option.getOrUndefined(flags.home) })
    yield* Layers.ensureDataDir(paths)
    return yield* Effect.flatMap(Effect.service(Bundle.BundleStore), f).pipe(
      Effect.provide(Layers.bundleStoreLayer({ paths, env: process.env }))
    )
  })

/**
 * Bundle errors in the one error shape, with the exit code of their status (2 for a wrong recipient or a modified
 * bundle, 4 for a conflict). They are not `SwitchboardError`s (no REST route answers with them), so they are
 * reported here rather than by `Main`.
 */
const reportingBundleErrors = <A, E, R>(effect: Effect.Effect<A, E | Bundle.BundleError, R>) =>
  Effect.catchIf(
    effect,
    (error): error is Bundle.BundleError => error instanceof Bundle.BundleError,
    (error) =>
      Effect.gen(function* () {
        const flags = yield* root
        const body = {
          error: {
            code: error.code,
            message: error.message,
            ...(error.details === undefined ? {} : { details: error.details })
          }
        }
        yield* Console.error(flags.json ? JSON.stringify(body, null, 2) : Output.renderFailure(body))
        yield* Effect.sync(() => void (process.exitCode = Output.exitCodeOf(error.status)))
      })
  )

// ------------------------------------------------------------------------------------------------- key recipient

/** `switchboard key recipient`: added to `key` by `KeyCommands`. */
export const recipient = Command.make(
  "recipient",
  {},
  Effect.fn(function* () {
    const flags = yield* root
    const own = yield* withBundleStore(Sodium.Bundle.ownRecipient)
    const shown = { recipient: own.text, fingerprint: own.fingerprint }
    yield* Output.print(flags.json, shown, () => own.text)
  })
).pipe(
  Command.withDescription(
    "Print this machine's bundle recipient key (public): give it to `switchboard export --to` on the other machine"
  )
)

// ------------------------------------------------------------------------------------------------- export

const writeBundle = (out: string, text: string) =>
  Effect.try({
    try: () => {
      // A new file only: an existing one (perhaps another bundle, perhaps not) is never overwritten.
      Fs.writeFileSync(out, text, { mode: 0o600, flag: "wx" })
    },
    catch: (cause) =>
      (cause as NodeJS.ErrnoException).code === "EEXIST"
        ? invalid(`${out} exists: choose another --out, or remove it first`, "--out")
        : io(`writing ${out}`, cause)
  })

export const exportCommand = Command.make(
  "export",
  {
    to: Flag.String("to").pipe(
      Flag.withDescription(
        "The recipient key of the machine that will import (what `switchboard key recipient` prints there)"
      )
    ),
    out: Flag.String("out").pipe(
      Flag.withDescription("Write the bundle to this new file (mode 0600) instead of stdout"),
      Flag.optional
    ),
    connector: Flag.String("connector").pipe(
      Flag.withDescription("Only this connector, with its credentials and connections (repeatable)"),
      Flag.atLeast(0)
    )
  },
  Effect.fn(function* (input) {
    const flags = yield* root
    const to = yield* Sodium.Bundle.parseRecipient(input.to)
    const principal = yield* Principal.CurrentPrincipal
    const gathered = yield* withBundleStore((store) => store.gather(principal.org, { connectors: input.connector }))
    const contents: Bundle.Contents = {
      contents_version: Bundle.CONTENTS_VERSION,
      exported_at: new Date(yield* Clock.currentTimeMillis).toISOString(),
      source: { org: principal.org, workspace: principal.workspace, user: principal.user },
      ...gathered
    }
    const text = yield* Sodium.Bundle.seal(contents, to)
    const counts = Bundle.countsOf(gathered)
    const summary = { recipient: to.fingerprint, ...counts, out: Option.getOrNull(input.out) }
    const human =
      `sealed ${counts.connectors} connector(s) (${counts.connector_versions} version(s)), ${counts.credentials} ` +
      `credential(s) and ${counts.connections} connection(s) to recipient ${to.fingerprint}`
    if (Option.isSome(input.out)) {
      yield* writeBundle(input.out.value, text)
      yield* Output.print(flags.json, summary, () => `${human}: ${input.out.pipe(Option.getOrElse(() => ""))}`)
    } else {
      // The bundle is the output; what was sealed goes to stderr.
      yield* Console.log(text.trimEnd())
      yield* Console.error(flags.json ? JSON.stringify(summary) : human)
    }
  }, reportingBundleErrors)
).pipe(
  Command.withDescription(
    "Seal connectors (every version), their credentials and connections to another machine's recipient key"
  ),
  Command.withExamples([
    {
      command: "switchboard export --to sbrk1_… --out laptop.sbundle",
      description: "Everything, for the machine whose `switchboard key recipient` printed sbrk1_…"
    },
    { command: "switchboard export --to sbrk1_… --connector github > github.sbundle", description: "One connector" }
  ])
)

// ------------------------------------------------------------------------------------------------- import

const readBundle = (file: string) =>
  file === "-"
    ? Effect.flatMap(Effect.service(Stdio.Stdio), (stdio) => stdio.stdin.pipe(Stream.decodeText(), Stream.mkString))
    : Effect.try({
        try: () => Fs.readFileSync(file, "utf8"),
        catch: () => invalid(`cannot read ${file}`, "file")
      })

export const importCommand = Command.make(
  "import",
  {
    file: Argument.String("file").pipe(Argument.withDescription("The bundle file, or - for stdin")),
    onConflict: Flag.Literals("on-conflict", Bundle.OnConflict.literals).pipe(
      Flag.withDescription(
        "When a connector, credential or connection exists here: fail (import nothing), skip it, replace it, " +
          "or rename the imported one (name-2)"
      ),
      Flag.withDefault("fail" as const)
    )
  },
  Effect.fn(function* (input) {
    const flags = yield* root
    const text = yield* readBundle(input.file)
    const principal = yield* Principal.CurrentPrincipal
    const report = yield* withBundleStore((store) =>
      Effect.gen(function* () {
        const own = yield* Sodium.Bundle.ownRecipient(store)
        const contents = yield* Sodium.Bundle.open(text, own)
        return yield* store.restore(contents, principal, input.onConflict)
      })
    )
    const summary = Bundle.summaryOf(report)
    yield* Output.print(flags.json, { summary, items: report }, () =>
      [
        ...report.map(
          (line) =>
            `${line.outcome.padEnd(8)}  ${line.kind.padEnd(10)}  ${line.name}${line.as === undefined ? "" : ` as ${line.as}`}`
        ),
        (["connector", "credential", "connection"] as const)
          .map((kind) => `${summary[kind].imported + summary[kind].replaced + summary[kind].renamed} ${kind}(s)`)
          .join(", ") + " restored"
      ].join("\n")
    )
  }, reportingBundleErrors)
).pipe(
  Command.withDescription(
    "Open a bundle sealed to this machine and restore it in one transaction (nothing is written on any failure)"
  ),
  Command.withExamples([
    { command: "switchboard import laptop.sbundle", description: "Refuses if anything exists here already" },
    { command: "switchboard import laptop.sbundle --on-conflict rename", description: "Keep both: github-2, …" }
  ])
)

/** The top-level commands of this module, for `Main.ts`. */
export const bundleCommands = [exportCommand, importCommand] as const
