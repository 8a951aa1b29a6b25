/**
 * A minimal entry point for the daemon alone, without the CLI: `node packages/daemon/src/main.ts [run|status|stop]`
 * with `--home DIR`, `--store sqlite|memory`, `--log-file FILE`, `--log-level LEVEL`, `--shutdown-timeout-ms N`.
 * `run` (the default) stays in the foreground until SIGTERM/SIGINT (exit 130) and exits 1 when it cannot start;
 * `status` prints JSON and exits 0 when a daemon runs, 3 when none does; `stop` exits 0, or 3 when none runs.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import type * as LogLevel from "effect/LogLevel"
import { parseArgs } from "node:util"
import * as Daemon from "./Daemon.ts"
import * as HeapTuning from "./HeapTuning.ts"

const levels: ReadonlyArray<LogLevel.LogLevel> = ["All", "Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"]

const usage = (message: string) =>
  Effect.andThen(
    Console.error(
      `${message}\nusage: main.ts [run|status|stop] [--home DIR] [--store sqlite|memory] [--log-file FILE]`
    ),
    Effect.sync(() => {
      process.exitCode = 2
    })
  )

const main = Effect.gen(function* () {
  const parsed = yield* Effect.try({
    try: () =>
      parseArgs({
        args: process.argv.slice(2),
        allowPositionals: true,
        options: {
          home: { type: "string" },
          store: { type: "string" },
          "log-file": { type: "string" },
          "log-level": { type: "string" },
          "shutdown-timeout-ms": { type: "string" }
        }
      }),
    catch: (error) => (error instanceof Error ? error.message : String(error))
  })
  const { values, positionals } = parsed
  const command = positionals[0] ?? "run"
  const paths = { home: values.home }
  if (command === "status") {
    const status = yield* Daemon.status(paths)
    yield* Console.log(JSON.stringify(status))
    process.exitCode = status.running ? 0 : 3
    return
  }
  if (command === "stop") {
    const stopped = yield* Daemon.stop(paths).pipe(
      Effect.catchTag("DaemonError", (error) =>
        Effect.andThen(Console.error(error.message), Effect.succeed({ pid: null, code: error.code }))
      )
    )
    yield* Console.log(JSON.stringify(stopped))
    process.exitCode = stopped.pid === null ? 3 : 0
    return
  }
  if (command !== "run") return yield* usage(`unknown command ${command}`)
  HeapTuning.applyDaemonFlags()
  const store = values.store ?? "sqlite"
  if (store !== "sqlite" && store !== "memory") return yield* usage(`--store must be sqlite or memory`)
  const level = levels.find((l) => l.toLowerCase() === (values["log-level"] ?? "info").toLowerCase())
  if (level === undefined) return yield* usage(`--log-level must be one of ${levels.join(", ")}`)
  const timeout = values["shutdown-timeout-ms"]
  yield* Daemon.runDaemon({
    ...paths,
    store,
    logFile: values["log-file"],
    logLevel: level,
    shutdownTimeout: timeout === undefined ? undefined : Number(timeout)
  }).pipe(
    // runDaemon has logged why; the exit code says it failed.
    Effect.catch(() =>
      Effect.sync(() => {
        process.exitCode = 1
      })
    )
  )
}).pipe(Effect.catch((message) => usage(message)))

NodeRuntime.runMain(main, { disableErrorReporting: true })
