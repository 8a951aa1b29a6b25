/**
 * `switchboard auth login <connector> [--connection X]`: start an OAuth authorization, print its URL and open it in
 * the browser (http and https URLs only, with `xdg-open` or `open` spawned without a shell and the URL as one argv
 * element; `--no-open` only prints), wait for the callback with a spinner on stderr, and print the connected
 * account. Through a running daemon, the daemon's loopback listener takes the callback and the CLI watches the
 * connection (or the credential) change; through a team server (`SWITCHBOARD_URL` + `SWITCHBOARD_API_KEY`) the
 * same, its `public_url` callback taking the browser's redirect; without either, the CLI opens its own short-lived
 * loopback listener and completes the flow on the data directory itself. `switchboard auth logout` revokes (where the server supports it)
 * and deletes the tokens of a connection.
 */
import * as Api from "@switchboard/core/Api"
import * as Errors from "@switchboard/core/Errors"
import * as OAuth from "@switchboard/core/OAuth"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Argument, Command, Flag } from "effect/cli"
import * as ChildProcess from "node:child_process"
import * as Client from "../Client.ts"
import { DaemonError } from "../DaemonError.ts"
import * as Layers from "../Layers.ts"
import * as OAuthRoutes from "../OAuthRoutes.ts"
import { root } from "./Commands.ts"
import * as Output from "./Output.ts"

/** The opener of each platform: none on Windows (whose openers go through a shell), so the URL is only printed. */
export const openCommand = (platform: NodeJS.Platform): string | undefined =>
  platform === "darwin" ? "open" : platform === "win32" ? undefined : "xdg-open"

export interface OpenOptions {
  readonly platform?: NodeJS.Platform | undefined
  readonly spawn?:
    | ((command: string, args: ReadonlyArray<string>, options: ChildProcess.SpawnOptions) => ChildProcess.ChildProcess)
    | undefined
}

/**
 * Open a URL in the browser: only an http(s) URL, only through the platform's opener spawned without a shell, the
 * URL as a single argument. True when an opener was started (it may still fail on its own, which only means the
 * user opens the printed URL by hand).
 */
export const openUrl = (url: string, options: OpenOptions = {}): Effect.Effect<boolean> => {
  if (!URL.canParse(url)) return Effect.succeed(false)
  const parsed = new URL(url)
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return Effect.succeed(false)
  const command = openCommand(options.platform ?? process.platform)
  if (command === undefined) return Effect.succeed(false)
  const spawn = options.spawn ?? ChildProcess.spawn
  return Effect.try({
    try: () => {
      // The parsed form: percent-encoded, so no opener sees spaces or quotes.
      const child = spawn(command, [parsed.href], { stdio: "ignore", detached: true, shell: false })
      child.once("error", () => undefined)
      child.unref()
      return true
    },
    catch: () => false
  }).pipe(Effect.orElseSucceed(() => false))
}

const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

/** Run `effect` with a spinner on stderr (a terminal), or one line saying what it waits for (anything else). */
const withSpinner = <A, E, R>(label: string, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    if (!process.stderr.isTTY) {
      yield* Effect.sync(() => process.stderr.write(`${label}\n`))
      return yield* effect
    }
    let i = 0
    const spin = Effect.sync(() => process.stderr.write(`\r${frames[i++ % frames.length]} ${label}`)).pipe(
      Effect.andThen(Effect.sleep("100 millis")),
      Effect.forever
    )
    const fiber = yield* Effect.forkChild(spin)
    return yield* effect.pipe(
      Effect.ensuring(
        Effect.andThen(
          Fiber.interrupt(fiber),
          Effect.sync(() => process.stderr.write("\r\u001b[2K"))
        )
      )
    )
  })

const notCompleted = (seconds: number) =>
  new Errors.OAuthError({
    reason: "oauth_state_invalid",
    message: `the authorization was not completed within ${seconds} s; run the command again`
  })

/** Print the URL, open it unless told not to. */
const announce = (url: string, connector: string, json: boolean, noOpen: boolean) =>
  Effect.gen(function* () {
    if (json) yield* Effect.sync(() => process.stderr.write(`${url}\n`))
    else
      yield* Effect.sync(() =>
        process.stdout.write(`Open this URL in your browser to authorize ${connector}:\n${url}\n`)
      )
    if (!noOpen && !(yield* openUrl(url))) {
      yield* Effect.sync(() => process.stderr.write("(could not open a browser; open the URL above yourself)\n"))
    }
  })

const describeResult = (result: {
  readonly connector: string
  readonly account_label: string | null
  readonly connection: string | null
}) =>
  `connected ${result.connector}${result.account_label === null ? "" : ` as ${result.account_label}`}` +
  (result.connection === null ? "" : ` (connection ${result.connection})`)

/** Map an error of the typed daemon client to the service's typed error. */
const fromClient =
  (target: Client.Target) =>
  (error: unknown): Errors.SwitchboardError | DaemonError => {
    for (const Class of Api.errorClasses) {
      if (error instanceof Class) return Api.toSwitchboardError(Api.statusOf(error), error.error)
    }
    return new DaemonError({
      reason: "daemon_not_running",
      message: `cannot reach the Switchboard daemon ${Client.describeTarget(target)}`,
      cause: error
    })
  }

interface LoginArgs {
  readonly connector: string
  readonly connection: Option.Option<string>
  readonly scopes: Option.Option<string>
  readonly noOpen: boolean
  readonly port: Option.Option<number>
  readonly timeout: number
}

/** Without a daemon: our own loopback listener takes the callback and completes the flow on the data directory. */
const loginEmbedded = (args: LoginArgs, flags: { readonly json: boolean; readonly home: string | undefined }) =>
  Effect.gen(function* () {
    const paths = Layers.resolvePaths({ home: flags.home })
    yield* Layers.ensureDataDir(paths)
    const config = yield* Layers.readConfig(paths)
    const done = yield* Deferred.make<OAuth.Completed, Errors.SwitchboardError>()
    const onCallback = (exit: Exit.Exit<OAuth.Completed, Errors.SwitchboardError>) => {
      if (Exit.isSuccess(exit)) return Effect.asVoid(Deferred.succeed(done, exit.value))
      const error = Exit.findErrorOption(exit)
      // A stray request with no valid state: keep waiting for the real callback.
      if (Option.isSome(error) && error.value.code === "oauth_state_invalid") return Effect.void
      return Effect.asVoid(Deferred.failCause(done, exit.cause))
    }
    const services = OAuthRoutes.layer({ port: Option.getOrUndefined(args.port), onCallback }).pipe(
      Layer.provideMerge(
        Layers.oauthSwitchboardLayer({
          kind: "sqlite",
          paths,
          allowPrivateNetwork: config.allowPrivateNetwork,
          clientMetadataUrl: config.oauthClientMetadataUrl
        })
      )
    )
    return yield* Effect.gen(function* () {
      const listener = yield* OAuthRoutes.BrowserListener
      const oauth = yield* OAuth.OAuth
      const started = yield* oauth.authorizationUrl(args.connector, {
        connection: Option.getOrUndefined(args.connection),
        scopes: OAuth.splitScopes(Option.getOrUndefined(args.scopes)),
        redirect_uri: listener.callbackUrl
      })
      yield* announce(started.url, args.connector, flags.json, args.noOpen)
      const completed = yield* withSpinner(
        "waiting for the authorization in the browser…",
        Deferred.await(done).pipe(
          Effect.timeoutOrElse({
            duration: `${args.timeout} seconds`,
            orElse: () => Effect.fail(notCompleted(args.timeout))
          })
        )
      )
      return {
        connector: completed.connector,
        connection: completed.connection?.name ?? null,
        account_label: completed.account_label,
        credential: completed.credential
      }
    }).pipe(Effect.provide(services))
  })

/**
 * Through the daemon (on the socket, or a team server on TCP): its listener (a team server's `public_url`
 * callback) takes the callback; the CLI polls the connection (or credential) until it changes. A change is an
 * `updated_at` past the one read before the flow started, the daemon's own clock on both sides (a team server's
 * clock need not agree with this machine's).
 */
const loginDaemon = (args: LoginArgs, flags: { readonly json: boolean }, target: Client.Target) =>
  Effect.gen(function* () {
    const client = yield* Client.DaemonClient
    const sb = yield* Switchboard.Switchboard
    const connection = Option.getOrUndefined(args.connection)
    const scopes = Option.getOrUndefined(args.scopes)
    const started = yield* client.oauth
      .authUrl({
        params: { id_or_name: args.connector },
        query: { ...(connection === undefined ? {} : { connection }), ...(scopes === undefined ? {} : { scopes }) }
      })
      .pipe(Effect.mapError(fromClient(target)))
    const connector = yield* sb.getConnector(args.connector)
    const defaultCredential = Effect.map(sb.listCredentials(connector.id, "user"), (list) =>
      list.find((c) => c.name === "default" && c.auth_type === "OAUTH")
    )
    // Read before the URL is shown, so before any callback can arrive.
    const since =
      connection === undefined
        ? ((yield* defaultCredential)?.updated_at ?? "")
        : (yield* sb.getConnection(connection)).updated_at
    yield* announce(started.url, args.connector, flags.json, args.noOpen)
    interface Done {
      readonly connector: string
      readonly connection: string | null
      readonly account_label: string | null
      readonly credential: { readonly scope: string; readonly name: string } | null
    }
    const check = Effect.gen(function* () {
      if (connection !== undefined) {
        const current = yield* sb.getConnection(connection)
        if (current.updated_at <= since) return Option.none<Done>()
        if (current.status === "active") {
          return Option.some<Done>({
            connector: connector.name,
            connection: current.name,
            account_label: current.account_label,
            credential: null
          })
        }
        if (current.last_error !== null) {
          return yield* new Errors.OAuthError({ reason: "oauth_token_error", message: current.last_error })
        }
        return Option.none<Done>()
      }
      const credential = yield* defaultCredential
      const fresh = credential !== undefined && credential.updated_at > since ? credential : undefined
      return fresh === undefined
        ? Option.none<Done>()
        : Option.some<Done>({
            connector: connector.name,
            connection: null,
            account_label: null,
            credential: { scope: fresh.scope, name: fresh.name }
          })
    })
    const wait = Effect.gen(function* () {
      for (;;) {
        const found = yield* check
        if (Option.isSome(found)) return found.value
        yield* Effect.sleep("300 millis")
      }
    })
    return yield* withSpinner(
      "waiting for the authorization in the browser…",
      wait.pipe(
        Effect.timeoutOrElse({
          duration: `${args.timeout} seconds`,
          orElse: () => Effect.fail(notCompleted(args.timeout))
        })
      )
    )
  }).pipe(Effect.provide(Client.layerRemote(target)))

const login = Command.make(
  "login",
  {
    connector: Argument.String("connector").pipe(Argument.withDescription("The connector (id or name)")),
    connection: Flag.String("connection").pipe(
      Flag.withDescription("The connection the tokens are for (id or name); else your own default credential"),
      Flag.optional
    ),
    scopes: Flag.String("scopes").pipe(
      Flag.withDescription("Scopes to ask for besides the required ones (space-separated)"),
      Flag.optional
    ),
    noOpen: Flag.Boolean("no-open").pipe(Flag.withDescription("Only print the URL"), Flag.withDefault(false)),
    port: Flag.Int("port").pipe(
      Flag.withDescription("Without a daemon: the 127.0.0.1 port to take the callback on (default: any free one)"),
      Flag.optional
    ),
    timeout: Flag.Int("timeout").pipe(
      Flag.withDescription("Seconds to wait for the authorization (default 600, the life of its state)"),
      Flag.withDefault(600)
    )
  },
  Effect.fn(function* (args) {
    const flags = yield* root
    const home = Option.getOrUndefined(flags.home)
    const paths = Layers.resolvePaths({ home })
    // A team server named by SWITCHBOARD_URL is never silently replaced by the local data directory.
    const tcp = flags.via === "embedded" ? undefined : yield* Client.tcpTargetOf()
    const running = tcp !== undefined || (flags.via !== "embedded" && (yield* Client.isRunning(paths.socket)))
    if (flags.via === "daemon" && !running) {
      return yield* new DaemonError({
        reason: "daemon_not_running",
        message: `no daemon answers on ${paths.socket}; start one with: switchboard daemon start --detach`
      })
    }
    const result = running
      ? yield* loginDaemon(args, flags, tcp ?? paths.socket)
      : yield* loginEmbedded(args, { json: flags.json, home })
    yield* Output.print(flags.json, result, () => describeResult(result))
  })
).pipe(Command.withDescription("Authorize a connector with OAuth in the browser and store the tokens"))

const logout = Command.make(
  "logout",
  {
    connection: Argument.String("connection").pipe(Argument.withDescription("The connection (id or name)"))
  },
  Effect.fn(function* ({ connection }) {
    const flags = yield* root
    const paths = Layers.resolvePaths({ home: Option.getOrUndefined(flags.home) })
    const config = yield* Layers.readConfig(paths)
    const { revoked } = yield* Effect.flatMap(Effect.service(OAuth.OAuth), (oauth) =>
      oauth.disconnect(connection)
    ).pipe(
      Effect.provide(
        Layers.oauthSwitchboardLayer({ kind: "sqlite", paths, allowPrivateNetwork: config.allowPrivateNetwork })
      )
    )
    yield* Output.print(
      flags.json,
      { connection, revoked },
      () =>
        `signed out of ${connection}${revoked ? " (tokens revoked at the server)" : ""}; it waits for a new authorization`
    )
  })
).pipe(Command.withDescription("Revoke and delete the OAuth tokens of a connection"))

export const auth = Command.make("auth").pipe(
  Command.withDescription("OAuth: authorize connectors in the browser, sign connections out"),
  Command.withSubcommands([login, logout])
)
