/**
 * `switchboard daemon start|stop|status`: the daemon in the foreground (or detached, waiting until it answers),
 * its status from the pid file and `/healthz`, and a graceful stop.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Command, Flag } from "effect/cli"
import * as Path from "node:path"
import * as Daemon from "../Daemon.ts"
import * as Layers from "../Layers.ts"
import * as CassetteFlags from "./CassetteFlags.ts"
import { root } from "./Commands.ts"
import * as Output from "./Output.ts"

const binPath = Path.join(import.meta.dirname, "..", "bin.ts")

const start = Command.make(
  "start",
  {
    detach: Flag.Boolean("detach").pipe(
      Flag.withDescription("Run in the background and return once it answers"),
      Flag.withDefault(false)
    ),
    logFile: Flag.String("log-file").pipe(
      Flag.withDescription("Append JSON logs here instead of stderr"),
      Flag.optional
    ),
    store: Flag.Literals("store", ["sqlite", "memory"]).pipe(
      Flag.withDescription("memory keeps nothing after the daemon stops"),
      Flag.withDefault("sqlite")
    ),
    listen: Flag.String("listen").pipe(
      Flag.withDescription("Also serve the API on TCP at host:port, behind API keys (a team server; TLS by a proxy)"),
      Flag.optional
    ),
    record: CassetteFlags.record,
    replay: CassetteFlags.replay
  },
  Effect.fn(function* ({ detach, logFile, store, listen, record, replay }) {
    const flags = yield* root
    const cassette = yield* CassetteFlags.cassetteOf({ record, replay })
    const home = Option.getOrUndefined(flags.home)
    if (detach) {
      const paths = Layers.resolvePaths({ home })
      yield* Layers.ensureDataDir(paths)
      const log = Option.getOrElse(logFile, () => Path.join(paths.home, "daemon.log"))
      const args = [
        binPath,
        ...(home === undefined ? [] : ["--home", home]),
        "daemon",
        "start",
        "--store",
        store,
        ...(Option.isSome(listen) ? ["--listen", listen.value] : []),
        ...CassetteFlags.argsOf(cassette)
      ]
      const health = yield* Daemon.spawnDetached({ command: process.execPath, args, home, logFile: log })
      const { dashboard_url } = yield* Daemon.status({ home })
      yield* Output.print(
        flags.json,
        { ...health, socket: paths.socket, log_file: log, dashboard_url },
        () =>
          `daemon running (pid ${health.pid}) on ${paths.socket}; logs: ${log}` +
          (dashboard_url === null ? "" : `\nDashboard: ${dashboard_url}`)
      )
      return
    }
    return yield* Daemon.runDaemon({
      home,
      store,
      logFile: Option.getOrUndefined(logFile),
      listen: Option.getOrUndefined(listen),
      cassette
    })
  })
).pipe(Command.withDescription("Start the daemon (foreground unless --detach)"))

const status = Command.make(
  "status",
  {},
  Effect.fn(function* () {
    const flags = yield* root
    const s = yield* Daemon.status({ home: Option.getOrUndefined(flags.home) })
    yield* Output.print(flags.json, s, () =>
      s.healthy
        ? `running (pid ${s.pid}, version ${s.version}) on ${s.socket}` +
          (s.tcp_address === null ? "" : `\nTCP (API keys): http://${s.tcp_address}`) +
          (s.oauth_callback_url === null ? "" : `\nOAuth callback: ${s.oauth_callback_url}`) +
          (s.dashboard_url === null ? "" : `\nDashboard: ${s.dashboard_url}`)
        : s.running
          ? `a daemon process (pid ${s.pid}) exists but does not answer on ${s.socket}`
          : `not running${s.stale_pid_file ? " (stale pid file)" : ""}; data directory ${s.home}`
    )
    if (!s.healthy) yield* Effect.sync(() => (process.exitCode = 3))
  })
).pipe(Command.withDescription("Is a daemon running, and where"))

const stop = Command.make(
  "stop",
  {},
  Effect.fn(function* () {
    const flags = yield* root
    const { pid } = yield* Daemon.stop({ home: Option.getOrUndefined(flags.home) })
    yield* flags.json ? Output.printJson({ stopped: pid }) : Console.log(`stopped the daemon (pid ${pid})`)
  })
).pipe(Command.withDescription("Stop the daemon gracefully (in-flight requests finish)"))

export const daemon = Command.make("daemon").pipe(
  Command.withDescription("Run the local daemon: the REST API on a Unix socket"),
  Command.withSubcommands([start, status, stop])
)
