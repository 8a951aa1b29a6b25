/**
 * The daemon's lifecycle: run in the foreground (`run` / `runDaemon`), report `status`, `stop` a running one,
 * or start one in the background (`spawnDetached`).
 *
 * Running: the data directory is created, the configuration read, the socket checked and bound (a live daemon
 * on it makes a second one fail with a clear message), then `daemon.pid` is written. When the effect is
 * interrupted (SIGTERM/SIGINT under `NodeRuntime.runMain`), the listener closes at once, in-flight requests get
 * the shutdown timeout to finish (then they are interrupted and answered 503), the store is closed, and the pid
 * file and socket are removed. Logs are JSON lines on stderr, or appended to a log file (0600).
 */
import { ApiKeyStore } from "@switchboard/core/ApiKeyStore"
import type { SealError, StoreError } from "@switchboard/core/Errors"
import type * as Switchboard from "@switchboard/core/Switchboard"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type HttpRouter, HttpServer } from "effect/http"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as References from "effect/References"
import * as Schedule from "effect/Schedule"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as ApiKeys from "./ApiKeys.ts"
import * as Client from "./Client.ts"
import * as Handlers from "./Handlers.ts"
import { DaemonError, errnoOf, io } from "./DaemonError.ts"
import * as Layers from "./Layers.ts"
import * as OAuthRoutes from "./OAuthRoutes.ts"
import * as ProxyRoute from "./ProxyRoute.ts"
import * as Server from "./Server.ts"
import * as TeamServer from "./TeamServer.ts"
import * as Web from "./web/Web.ts"

export interface DaemonOptions extends Layers.PathOptions {
  /** Where data lives: the sealed SQLite file of the data directory (default), or memory. */
  readonly store?: Layers.StoreKind | undefined
  /** Append JSON log lines to this file (created 0600) instead of stderr. */
  readonly logFile?: string | undefined
  /** The least level logged; `Info` by default. */
  readonly logLevel?: LogLevel.LogLevel | undefined
  /** How long shutdown waits for in-flight requests; `shutdown_timeout_ms` of config.json, else 10 s. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** Log one line per request; on by default. */
  readonly logRequests?: boolean | undefined
  /** More routes served next to the API (the upstream proxy, …). */
  readonly routes?: Layer.Layer<never, never, HttpRouter.HttpRouter | Switchboard.Switchboard> | undefined
  /** Record the proxy's and MCP tools' upstream traffic into cassettes, or replay it from them (`--record`/`--replay`). */
  readonly cassette?: Layers.CassetteOptions | undefined
  /** Also serve the API on TCP (`host:port`) behind API keys; `listen` of config.json when absent. */
  readonly listen?: string | undefined
}

export type RunError = DaemonError | StoreError | SealError

// ---------------------------------------------------------------------------------------------------------------
// Logs

const messageOf = (message: unknown): unknown => (Array.isArray(message) && message.length === 1 ? message[0] : message)

/**
 * A logger writing one JSON object per line: time, level, message, annotations, and the cause if any. `write`
 * also gets the level's name as `formatStructured` gives it (`INFO`, `ERROR`, …).
 */
export const jsonLogger = (write: (line: string, level: string) => void): Logger.Logger<unknown, void> =>
  Logger.map(Logger.formatStructured, (entry) => {
    const line: Record<string, unknown> = {
      time: entry.timestamp,
      level: entry.level.toLowerCase(),
      message: messageOf(entry.message),
      ...entry.annotations
    }
    if (entry.cause !== undefined && entry.cause !== "") line.cause = entry.cause
    write(`${JSON.stringify(line)}\n`, entry.level)
  })

/** The levels whose lines may wait for the next batch; a warning or an error is written at once. */
const batchedLevels: ReadonlySet<string> = new Set(["INFO", "DEBUG", "TRACE"])

/**
 * Log lines written in batches: the first info line logged in a turn of the event loop schedules one write of
 * every line logged until the next turn, so a busy daemon logging a line per request makes one system call per
 * batch rather than one per line. A warning or an error is written at once (with what is pending before it), so
 * it is in the log before the response it explains is sent. Whatever is pending is written when the scope closes
 * and when the process exits.
 */
export const batchedLines = (write: (chunk: string) => void) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let pending: Array<string> = []
      let scheduled: NodeJS.Immediate | undefined
      const flush = () => {
        scheduled = undefined
        if (pending.length === 0) return
        const chunk = pending.length === 1 ? (pending[0] as string) : pending.join("")
        pending = []
        write(chunk)
      }
      process.once("exit", flush)
      const append = (line: string, level: string) => {
        pending.push(line)
        if (!batchedLevels.has(level)) {
          if (scheduled !== undefined) clearImmediate(scheduled)
          flush()
          return
        }
        scheduled ??= setImmediate(flush).unref()
      }
      return { append, flush }
    }),
    ({ flush }) =>
      Effect.sync(() => {
        process.removeListener("exit", flush)
        flush()
      })
  )

/** JSON logs to stderr, or appended to `logFile` (created 0600), at `logLevel` and above. */
export const loggerLayer = (options: Pick<DaemonOptions, "logFile" | "logLevel">): Layer.Layer<never, DaemonError> => {
  const level = Layer.succeed(References.MinimumLogLevel, options.logLevel ?? "Info")
  const logFile = options.logFile
  if (logFile === undefined) {
    const stderrLogger = batchedLines((chunk) => process.stderr.write(chunk)).pipe(
      Effect.map((lines) => jsonLogger(lines.append))
    )
    return Layer.merge(Logger.layer([stderrLogger]), level)
  }
  const fileLogger = Effect.acquireRelease(
    Effect.try({
      try: () => Fs.openSync(logFile, "a", 0o600),
      catch: (cause) => io(`opening the log file ${logFile}`, cause)
    }),
    (fd) => Effect.sync(() => Fs.closeSync(fd))
  ).pipe(
    // Released first: the pending lines are written before the file is closed.
    Effect.flatMap((fd) => batchedLines((chunk) => Fs.writeSync(fd, chunk))),
    Effect.map((lines) => jsonLogger(lines.append))
  )
  return Layer.merge(Logger.layer([fileLogger]), level)
}

// ---------------------------------------------------------------------------------------------------------------
// Pid file

/** The pid in the pid file, if there is a readable one. */
export const readPid = (pidFile: string): number | undefined => {
  const text = Effect.runSync(
    Effect.try({ try: () => Fs.readFileSync(pidFile, "utf8"), catch: () => undefined }).pipe(
      Effect.orElseSucceed(() => undefined)
    )
  )
  const pid = text === undefined ? Number.NaN : Number.parseInt(text.trim(), 10)
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

/** Whether a process with this pid exists (it may belong to someone else). */
export const isAlive = (pid: number): boolean =>
  Effect.runSync(
    Effect.try({ try: () => process.kill(pid, 0), catch: (cause) => errnoOf(cause) === "EPERM" }).pipe(
      Effect.catch((alive) => Effect.succeed(alive))
    )
  )

const writePidFile = Effect.fn("Daemon.writePidFile")(function* (pidFile: string) {
  yield* Effect.try({
    try: () => {
      Fs.rmSync(pidFile, { force: true })
      Fs.writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600, flag: "wx" })
    },
    catch: (cause) => io(`writing the pid file ${pidFile}`, cause)
  })
})

/** The file holding the dashboard URL (with this start's secret) for `daemon status`; 0600 in the 0700 home. */
export const dashboardFile = (paths: Layers.Paths) => `${paths.home}/dashboard.url`

const writeDashboardFile = (paths: Layers.Paths, url: string | null) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        Fs.rmSync(dashboardFile(paths), { force: true })
        if (url !== null) Fs.writeFileSync(dashboardFile(paths), `${url}\n`, { mode: 0o600, flag: "wx" })
      },
      catch: (cause) => io(`writing ${dashboardFile(paths)}`, cause)
    }),
    () => Effect.sync(() => Fs.rmSync(dashboardFile(paths), { force: true }))
  )

const readDashboardFile = (paths: Layers.Paths): string | null =>
  Effect.runSync(
    Effect.try({ try: () => Fs.readFileSync(dashboardFile(paths), "utf8").trim(), catch: () => null }).pipe(
      Effect.orElseSucceed(() => null)
    )
  ) || null

/** The file holding the TCP address (`host:port`) of a team server's listener, for `daemon status`. */
export const tcpAddressFile = (paths: Layers.Paths) => `${paths.home}/tcp.address`

const writeTcpAddressFile = (paths: Layers.Paths, address: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => Fs.writeFileSync(tcpAddressFile(paths), `${address}\n`, { mode: 0o600 }),
      catch: (cause) => io(`writing ${tcpAddressFile(paths)}`, cause)
    }),
    () => Effect.sync(() => Fs.rmSync(tcpAddressFile(paths), { force: true }))
  )

const readTcpAddressFile = (paths: Layers.Paths): string | null =>
  Effect.runSync(
    Effect.try({ try: () => Fs.readFileSync(tcpAddressFile(paths), "utf8").trim(), catch: () => null }).pipe(
      Effect.orElseSucceed(() => null)
    )
  ) || null

// Only our own pid file: a second daemon that was refused must not remove the running one's.
const removePidFile = (pidFile: string) =>
  Effect.sync(() => {
    if (readPid(pidFile) === process.pid) Fs.rmSync(pidFile, { force: true })
  })

// ---------------------------------------------------------------------------------------------------------------
// Run

/**
 * Run the daemon until the effect is interrupted. Without a logger of its own; see `runDaemon`.
 * Fails when the daemon cannot start: another one runs, the socket directory is not private, the store or the
 * master key cannot be opened.
 */
export const run = (options: DaemonOptions = {}): Effect.Effect<never, RunError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const env = options.env ?? process.env
      const paths = Layers.resolvePaths(options)
      yield* Layers.ensureDataDir(paths)
      const config = yield* Layers.readConfig(paths, env)
      const principal = Layers.localPrincipal()
      const store = options.store ?? "sqlite"
      const listen = yield* listenAddressOf(options, config)
      if (config.publicUrl !== undefined && listen === undefined) {
        return yield* new DaemonError({
          reason: "config_invalid",
          message:
            "public_url needs the TCP listener that serves its OAuth callback: set listen (or --listen HOST:PORT)"
        })
      }
      // Refuse early, before the store is opened, when another daemon answers on the socket.
      yield* Server.prepareSocket(paths.socket)
      // Registered first, so it runs last: after the server has drained and the store is closed.
      let started = false
      yield* Effect.addFinalizer(() =>
        Effect.andThen(
          removePidFile(paths.pidFile),
          started ? Effect.logInfo("daemon stopped").pipe(Effect.annotateLogs({ pid: process.pid })) : Effect.void
        )
      )
      // OAuth: the Switchboard with the OAuth service (flows redirect to the browser listener started below).
      const callback: { url: string | undefined } = { url: undefined }
      const coreContext = yield* Layer.build(
        Layers.oauthSwitchboardLayer({
          kind: store,
          paths,
          env,
          storeUrl: config.storeUrl,
          allowPrivateNetwork: config.allowPrivateNetwork,
          redirectUri: () => callback.url,
          clientMetadataUrl: config.oauthClientMetadataUrl
        })
      )
      const core = Layer.succeedContext(coreContext)
      const apiKeys = Context.get(coreContext, ApiKeyStore)
      // No peer check on TCP: the listener only runs behind API keys, so there must be one to use.
      if (listen !== undefined && !(yield* ApiKeys.hasActiveKey.pipe(Effect.provideService(ApiKeyStore, apiKeys)))) {
        return yield* new DaemonError({
          reason: "config_invalid",
          message:
            `listening on ${TeamServer.formatAddress(listen)} needs API keys and there is none: create one first ` +
            "(switchboard apikey create --org ORG --workspace WS --user USER --role admin)"
        })
      }
      // The Switchboard with the proxy and MCP tools, built once: the API handlers and the proxy route share it
      // (one store, one rate limit and breaker per connection, one MCP session pool). Closed after the server.
      const services = Layer.succeedContext(
        yield* Layer.build(
          Layers.withCalls(core, { allowPrivateNetwork: config.allowPrivateNetwork, cassette: options.cassette })
        )
      )
      const browser = yield* Layer.build(
        OAuthRoutes.layer({ port: config.oauthCallbackPort, web: { principal } }).pipe(
          Layer.provide(Layer.merge(core, services))
        )
      ).pipe(Effect.map((context) => Context.get(context, OAuthRoutes.BrowserListener)))
      // A team server with a public_url takes callbacks on its TCP listener, at its public origin.
      const callbackUrl =
        config.publicUrl === undefined ? browser.callbackUrl : OAuthRoutes.publicCallbackUrl(config.publicUrl)
      callback.url = callbackUrl
      const proxyRoute = ProxyRoute.layer({ trustHeaders: config.trustHeaders, principal }).pipe(
        Layer.provide(services)
      )
      const server = Server.layer({
        socket: paths.socket,
        trustHeaders: config.trustHeaders,
        principal,
        shutdownTimeout: options.shutdownTimeout ?? Duration.millis(config.shutdownTimeoutMs),
        logRequests: options.logRequests,
        routes: options.routes === undefined ? proxyRoute : Layer.merge(options.routes, proxyRoute)
      }).pipe(Layer.provide(Layer.merge(services, Layer.succeed(Handlers.OAuthCallbackUrl, { url: callbackUrl }))))
      // Before the socket answers, so a healthy daemon's `status` always finds it.
      const dashboard = Web.dashboardUrl()
      yield* writeDashboardFile(paths, dashboard)
      yield* Layer.build(server)
      const tcp =
        listen === undefined
          ? undefined
          : yield* Layer.build(
              TeamServer.layer({
                address: listen,
                principal,
                shutdownTimeout: options.shutdownTimeout ?? Duration.millis(config.shutdownTimeoutMs),
                logRequests: options.logRequests,
                routes: options.routes === undefined ? proxyRoute : Layer.merge(options.routes, proxyRoute),
                publicUrl: config.publicUrl
              }).pipe(
                Layer.provide(
                  Layer.mergeAll(
                    services,
                    // The OAuth service, for the public_url callback.
                    core,
                    Layer.succeed(ApiKeyStore, apiKeys),
                    Layer.succeed(Handlers.OAuthCallbackUrl, { url: callbackUrl })
                  )
                )
              )
            ).pipe(Effect.map((context) => TeamServer.addressOf(Context.get(context, HttpServer.HttpServer))))
      if (tcp !== undefined) yield* writeTcpAddressFile(paths, tcp)
      else yield* Effect.sync(() => Fs.rmSync(tcpAddressFile(paths), { force: true }))
      yield* writePidFile(paths.pidFile)
      started = true
      yield* Effect.logInfo("daemon listening").pipe(
        Effect.annotateLogs({
          pid: process.pid,
          socket: paths.socket,
          home: paths.home,
          store: store === "sqlite" && config.storeUrl !== undefined ? "postgres" : store,
          ...(options.cassette === undefined ? {} : { [options.cassette.mode]: options.cassette.dir }),
          ...(tcp === undefined ? {} : { tcp }),
          trust_headers: config.trustHeaders,
          user: principal.user,
          oauth_callback: callbackUrl,
          dashboard
        })
      )
      yield* Effect.addFinalizer(() => Effect.logInfo("daemon stopping: draining in-flight requests"))
      return yield* Effect.never
    })
  )

/** The TCP address to serve on: `--listen`, else `listen` of config.json, else none. */
const listenAddressOf = (options: DaemonOptions, config: Layers.DaemonConfig) => {
  if (options.listen === undefined) return Effect.succeed(config.listen)
  const address = TeamServer.parseAddress(options.listen)
  return address === undefined
    ? Effect.fail(new DaemonError({ reason: "config_invalid", message: `--listen ${options.listen} is not host:port` }))
    : Effect.succeed(address)
}

/** What the CLI's `daemon start` calls: `run` with the JSON logger (stderr or `logFile`). */
export const runDaemon = (options: DaemonOptions = {}): Effect.Effect<never, RunError> =>
  run(options).pipe(
    Effect.tapError((error) =>
      Effect.logError(`daemon failed: ${error.message}`).pipe(Effect.annotateLogs({ code: error.code }))
    ),
    Effect.provide(loggerLayer(options))
  )

// ---------------------------------------------------------------------------------------------------------------
// Status and stop

export interface Status {
  /** A daemon answers on the socket, or its pid file names a live process. */
  readonly running: boolean
  /** It answered `/healthz`. */
  readonly healthy: boolean
  readonly pid: number | null
  readonly version: string | null
  readonly socket: string
  readonly home: string
  /** A pid file is left from a daemon that is gone. */
  readonly stale_pid_file: boolean
  /** Where the daemon takes OAuth callbacks (its browser listener), as its `/healthz` says. */
  readonly oauth_callback_url: string | null
  /** The dashboard with this start's secret (`?k=`), when the daemon answers. */
  readonly dashboard_url: string | null
  /** The `host:port` of the team server's TCP listener, when the daemon answers and listens on TCP. */
  readonly tcp_address: string | null
}

/** Read the pid file and probe `/healthz` (2 s at most). */
export const status = Effect.fn("Daemon.status")(function* (options: Layers.PathOptions = {}) {
  const paths = Layers.resolvePaths(options)
  const pid = readPid(paths.pidFile)
  const health = yield* Client.health(paths.socket).pipe(Effect.timeout("2 seconds"), Effect.option)
  const answered = health._tag === "Some" ? health.value : undefined
  const alive = pid !== undefined && isAlive(pid)
  return {
    running: answered !== undefined || alive,
    healthy: answered !== undefined,
    pid: answered?.pid ?? (alive ? pid : null),
    version: answered?.version ?? null,
    socket: paths.socket,
    home: paths.home,
    stale_pid_file: pid !== undefined && !alive,
    oauth_callback_url: answered?.oauth_callback_url ?? null,
    dashboard_url: answered === undefined ? null : readDashboardFile(paths),
    tcp_address: answered === undefined ? null : readTcpAddressFile(paths)
  } satisfies Status
})

/**
 * Stop the daemon: SIGTERM to the process that answers `/healthz` on the socket (never to a pid only read from
 * a file, which may have been reused), then wait until it is gone. Fails with `daemon_not_running`, or
 * `stop_timeout` when it is still there after `timeout` (default 30 s).
 */
export const stop = Effect.fn("Daemon.stop")(function* (
  options: Layers.PathOptions & { readonly timeout?: Duration.Input | undefined } = {}
) {
  const paths = Layers.resolvePaths(options)
  const health = yield* Client.health(paths.socket).pipe(Effect.timeout("2 seconds"), Effect.option)
  if (health._tag === "None") {
    return yield* new DaemonError({ reason: "daemon_not_running", message: `no daemon answers on ${paths.socket}` })
  }
  const pid = health.value.pid
  yield* Effect.try({
    try: () => process.kill(pid, "SIGTERM"),
    catch: (cause) => io(`signalling the daemon (pid ${pid})`, cause)
  })
  yield* Effect.sync(() => !isAlive(pid)).pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (gone) => gone }),
    Effect.timeoutOrElse({
      duration: options.timeout ?? "30 seconds",
      orElse: () =>
        Effect.fail(
          new DaemonError({ reason: "stop_timeout", message: `the daemon (pid ${pid}) is still running after SIGTERM` })
        )
    })
  )
  return { pid }
})

/**
 * Start a daemon in the background: `command args…` detached, its output appended to `logFile`, then wait until
 * it answers `/healthz` (or fail with what it logged). The caller chooses the command (the `switchboard` binary
 * with `daemon start`, or `node …/main.ts`).
 */
export const spawnDetached = Effect.fn("Daemon.spawnDetached")(function* (options: {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env?: Layers.Env | undefined
  readonly home?: string | undefined
  readonly logFile: string
  readonly timeout?: Duration.Input | undefined
}) {
  const env = options.env ?? process.env
  const paths = Layers.resolvePaths({ env, home: options.home })
  const fd = yield* Effect.try({
    try: () => Fs.openSync(options.logFile, "a", 0o600),
    catch: (cause) => io(`opening the log file ${options.logFile}`, cause)
  })
  const child = yield* Effect.try({
    try: () =>
      ChildProcess.spawn(options.command, [...options.args], {
        detached: true,
        stdio: ["ignore", fd, fd],
        env: { ...env }
      }),
    catch: (cause) => io(`starting ${options.command}`, cause)
  }).pipe(Effect.ensuring(Effect.sync(() => Fs.closeSync(fd))))
  child.unref()
  const exited = () => child.exitCode !== null || child.signalCode !== null
  const health = yield* Client.health(paths.socket).pipe(
    Effect.flatMap((h) =>
      h.pid === child.pid
        ? Effect.succeed(h)
        : Effect.fail(
            new DaemonError({
              reason: "daemon_running",
              message: `another daemon (pid ${h.pid}) answers on ${paths.socket}`
            })
          )
    ),
    Effect.retry({
      schedule: Schedule.spaced("100 millis"),
      while: (error) => error.reason === "daemon_not_running" && !exited()
    }),
    Effect.timeoutOrElse({
      duration: options.timeout ?? "30 seconds",
      orElse: () =>
        Effect.fail(
          new DaemonError({
            reason: "daemon_not_running",
            message: `the daemon did not answer in time; see ${options.logFile}`
          })
        )
    }),
    Effect.mapError((error) =>
      exited()
        ? new DaemonError({
            reason: "daemon_not_running",
            message: `the daemon exited (${child.exitCode ?? child.signalCode}); see ${options.logFile}`
          })
        : error
    ),
    // A child that did not become the daemon (another one answers, or it hangs) must not linger.
    Effect.tapError(() =>
      Effect.sync(() => {
        if (!exited()) child.kill("SIGTERM")
      })
    )
  )
  return { pid: health.pid, socket: paths.socket, logFile: options.logFile }
})
