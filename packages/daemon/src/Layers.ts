/**
 * The one place where real layers are wired: where the data directory and the socket are, what the daemon's
 * configuration says, which master key seals the store, which store holds the data, and the `Switchboard`
 * service on top. The daemon, the CLI (embedded) and the MCP server all build their Switchboard from here.
 *
 * Data directory: `$SWITCHBOARD_HOME`, else `$XDG_DATA_HOME/switchboard`, else `~/.local/share/switchboard`
 * (created 0700), holding `switchboard.db`, `master.key`, `config.json` and `daemon.pid`. Socket:
 * `$SWITCHBOARD_SOCKET`, else `$XDG_RUNTIME_DIR/switchboard/switchboard.sock`, else `<data dir>/switchboard.sock`.
 */
import * as Http from "@switchboard/adapters/http"
import * as Mcp from "@switchboard/adapters/mcp"
import * as OAuthAdapter from "@switchboard/adapters/oauth"
import * as Probes from "@switchboard/adapters/probes"
import * as Memory from "@switchboard/adapters/memory"
import * as Sodium from "@switchboard/adapters/sodium"
import * as Sqlite from "@switchboard/adapters/sqlite"
import type { SealError, StoreError } from "@switchboard/core/Errors"
import type { StoreServices } from "@switchboard/core/Facade"
import * as OAuth from "@switchboard/core/OAuth"
import type { OAuthStateStore } from "@switchboard/core/OAuthStateStore"
import * as Principal from "@switchboard/core/Principal"
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Testing from "@switchboard/core/Testing"
import * as Tools from "@switchboard/core/Tools"
import * as Explain from "@switchboard/core/Explain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { DaemonError, errnoOf, io } from "./DaemonError.ts"
import * as KeyRotation from "./KeyRotation.ts"

export type Env = Readonly<Record<string, string | undefined>>

export const DATABASE_FILE = "switchboard.db"
export const CONFIG_FILE = "config.json"
export const PID_FILE = "daemon.pid"
export const SOCKET_FILE = "switchboard.sock"

/** Where everything lives. */
export interface Paths {
  /** The data directory. */
  readonly home: string
  readonly database: string
  readonly config: string
  readonly pidFile: string
  /** The directory holding the socket: private to this user (0700). */
  readonly socketDir: string
  readonly socket: string
}

export interface PathOptions {
  /** The environment; `process.env` when absent. */
  readonly env?: Env | undefined
  /** A data directory given explicitly (`--home`); wins over the environment. */
  readonly home?: string | undefined
  /** The user's home directory; `os.homedir()` when absent. */
  readonly homedir?: string | undefined
}

const nonEmpty = (value: string | undefined): string | undefined =>
  value === undefined || value === "" ? undefined : value

// The XDG base directory spec: a relative path in these variables is invalid and must be ignored.
const absolute = (value: string | undefined): string | undefined => {
  const v = nonEmpty(value)
  return v !== undefined && Path.isAbsolute(v) ? v : undefined
}

/** The data directory: `home`, else `$SWITCHBOARD_HOME`, else `$XDG_DATA_HOME/switchboard`, else `~/.local/share/switchboard`. */
export const dataDir = (options: PathOptions = {}): string => {
  const env = options.env ?? process.env
  const explicit = nonEmpty(options.home) ?? nonEmpty(env.SWITCHBOARD_HOME)
  if (explicit !== undefined) return Path.resolve(explicit)
  const xdg = absolute(env.XDG_DATA_HOME)
  if (xdg !== undefined) return Path.join(xdg, "switchboard")
  return Path.join(options.homedir ?? Os.homedir(), ".local", "share", "switchboard")
}

/** Every path of one installation. */
export const resolvePaths = (options: PathOptions = {}): Paths => {
  const env = options.env ?? process.env
  const home = dataDir(options)
  const explicitSocket = nonEmpty(env.SWITCHBOARD_SOCKET)
  const runtime = absolute(env.XDG_RUNTIME_DIR)
  const socket =
    explicitSocket !== undefined
      ? Path.resolve(explicitSocket)
      : runtime !== undefined
        ? Path.join(runtime, "switchboard", SOCKET_FILE)
        : Path.join(home, SOCKET_FILE)
  return {
    home,
    database: Path.join(home, DATABASE_FILE),
    config: Path.join(home, CONFIG_FILE),
    pidFile: Path.join(home, PID_FILE),
    socketDir: Path.dirname(socket),
    socket
  }
}

/** Create the data directory (0700) when it is missing. An existing one is left as it is. */
export const ensureDataDir = Effect.fn("Layers.ensureDataDir")(function* (paths: Paths) {
  yield* Effect.try({
    try: () => Fs.mkdirSync(paths.home, { recursive: true, mode: 0o700 }),
    catch: (cause) => io(`creating the data directory ${paths.home}`, cause)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Configuration

/** `config.json` in the data directory. Unknown keys are left for newer versions. */
export const ConfigFile = Schema.Struct({
  /** Trust the `X-Switchboard-Org/-Workspace/-User/-Role` headers (for services embedding the daemon). */
  trust_headers: Schema.optionalKey(Schema.Boolean),
  /** How long shutdown waits for in-flight requests, in milliseconds. */
  shutdown_timeout_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 600_000 }))),
  /**
   * Allow loopback and private-network upstreams for every connection (the local-first switch). Cloud
   * metadata addresses stay refused.
   */
  allow_private_network: Schema.optionalKey(Schema.Boolean),
  /** The 127.0.0.1 port of the browser-facing listener (the OAuth callback); an ephemeral one when absent. */
  oauth_callback_port: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65_535 }))),
  /** An https URL serving this client's OAuth metadata document (used where servers support client ID documents). */
  oauth_client_metadata_url: Schema.optionalKey(Schema.String)
})
export type ConfigFile = typeof ConfigFile.Type

export interface DaemonConfig {
  readonly trustHeaders: boolean
  readonly shutdownTimeoutMs: number
  readonly allowPrivateNetwork: boolean
  readonly oauthCallbackPort?: number | undefined
  readonly oauthClientMetadataUrl?: string | undefined
}

export const defaultShutdownTimeoutMs = 10_000

const parseFlag = (value: string): boolean | undefined => {
  const v = value.trim().toLowerCase()
  if (["1", "true", "yes", "on"].includes(v)) return true
  if (["0", "false", "no", "off", ""].includes(v)) return false
  return undefined
}

/** The daemon configuration: `config.json` (optional), then `SWITCHBOARD_TRUST_HEADERS` over it. */
export const readConfig = Effect.fn("Layers.readConfig")(function* (paths: Paths, env: Env = process.env) {
  const text = yield* Effect.try({
    try: () => Fs.readFileSync(paths.config, "utf8"),
    catch: (cause) => cause
  }).pipe(
    Effect.catch((cause) =>
      errnoOf(cause) === "ENOENT" ? Effect.succeed(undefined) : Effect.fail(io(`reading ${paths.config}`, cause))
    )
  )
  let file: ConfigFile = {}
  if (text !== undefined) {
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: () => new DaemonError({ reason: "config_invalid", message: `${paths.config} is not valid JSON` })
    })
    file = yield* Schema.decodeUnknownEffect(ConfigFile)(json, { errors: "all" }).pipe(
      Effect.mapError(
        (error) =>
          new DaemonError({ reason: "config_invalid", message: `${paths.config} is invalid: ${error.message}` })
      )
    )
  }
  let trustHeaders = file.trust_headers ?? false
  const fromEnv = env.SWITCHBOARD_TRUST_HEADERS
  if (fromEnv !== undefined) {
    const flag = parseFlag(fromEnv)
    if (flag === undefined) {
      return yield* new DaemonError({
        reason: "config_invalid",
        message: "SWITCHBOARD_TRUST_HEADERS must be 1 or 0 (true/false)"
      })
    }
    trustHeaders = flag
  }
  return {
    trustHeaders,
    shutdownTimeoutMs: file.shutdown_timeout_ms ?? defaultShutdownTimeoutMs,
    allowPrivateNetwork: file.allow_private_network ?? false,
    ...(file.oauth_callback_port === undefined ? {} : { oauthCallbackPort: file.oauth_callback_port }),
    ...(file.oauth_client_metadata_url === undefined ? {} : { oauthClientMetadataUrl: file.oauth_client_metadata_url })
  } satisfies DaemonConfig
})

// ---------------------------------------------------------------------------------------------------------------
// Principal

/**
 * The principal of this machine's user: admin of org `local`, workspace `default`, named after the OS user
 * (`local` when the name is not a valid identifier). The embedded CLI and the daemon agree on it, so what one
 * creates the other sees as the same owner.
 */
export const localPrincipal = (username: string = safeUsername()): Principal.Principal => {
  const valid = Schema.is(Principal.Principal)(Principal.local(username))
  return Principal.local(valid ? username : "local")
}

const safeUsername = (): string => {
  // userInfo throws when the uid has no passwd entry (containers); fall back to the environment.
  const fromOs = Effect.runSync(
    Effect.try({ try: () => Os.userInfo().username, catch: () => undefined }).pipe(
      Effect.orElseSucceed(() => undefined)
    )
  )
  return fromOs ?? nonEmpty(process.env.USER) ?? "local"
}

// ---------------------------------------------------------------------------------------------------------------
// Store and service

export type StoreKind = "sqlite" | "memory"

export interface StoreOptions {
  readonly kind: StoreKind
  readonly paths: Paths
  readonly env?: Env | undefined
}

/**
 * The master key (`SWITCHBOARD_MASTER_KEY`, `SWITCHBOARD_PASSPHRASE`, or `<home>/master.key`) and the sealer on it;
 * a key rotation interrupted in this data directory is finished or undone first (`KeyRotation.configOf`).
 */
export const sealerLayer = (paths: Paths, env: Env = process.env) =>
  Sodium.Sealer.layer.pipe(Layer.provide(Sodium.KeyProvider.layerConfig(KeyRotation.configOf({ paths }, env))))

/** The four store ports: the sealed SQLite file of the data directory, or memory (tests, throwaway runs). */
export const storeLayer = (options: StoreOptions): Layer.Layer<StoreServices, StoreError | SealError> =>
  options.kind === "memory"
    ? Memory.layer
    : Sqlite.layer({ filename: options.paths.database }).pipe(Layer.provide(sealerLayer(options.paths, options.env)))

/** The Switchboard service on the chosen store. */
export const switchboardLayer = (options: StoreOptions): Layer.Layer<Switchboard.Switchboard, StoreError | SealError> =>
  Switchboard.layer.pipe(Layer.provide(storeLayer(options)))

/** The outbound adapters: system DNS, the SSRF-guarded HTTP client and the pooled MCP client. */
export const upstreamLayer = (options: { readonly allowPrivateNetwork: boolean }) =>
  Layer.mergeAll(
    Http.Upstream.layerWith({ allowPrivateNetwork: options.allowPrivateNetwork }),
    Mcp.layer({ allowPrivateNetwork: options.allowPrivateNetwork })
  ).pipe(Layer.provide(Http.Resolver.layer))

/** What every way in uses: the Switchboard service plus calling upstreams (the proxy and MCP tools). */
export type Services = Switchboard.Switchboard | Proxy.Proxy | Tools.Tools

/**
 * Connection tests over the `Switchboard`: the real probes (system DNS, the SSRF guard, the guarded HTTP client for
 * the HTTP-based checks) and `ConnectionTests` (100 tests per 60 s per tenant; the default `Resilience`, which the
 * proxy shares when both are built together, so a connection has one circuit breaker).
 */
export const testingLayer = (options: { readonly allowPrivateNetwork: boolean }) =>
  Testing.layer.pipe(
    Layer.provide(Probes.Probes.layerWith({ allowPrivateNetwork: options.allowPrivateNetwork })),
    Layer.provide(Http.Upstream.layerWith({ allowPrivateNetwork: options.allowPrivateNetwork })),
    Layer.provide(Http.Resolver.layer)
  )

/** Explain (dry runs) on the proxy's `Resilience` and the SSRF guard over system DNS; it never connects. */
export const explainLayer = (options: { readonly allowPrivateNetwork: boolean }) =>
  Explain.layer.pipe(
    Layer.provide(Http.DestinationGuard.layer({ allowPrivateNetwork: options.allowPrivateNetwork })),
    Layer.provide(Http.Resolver.layer)
  )

/**
 * The Switchboard with its calling services, over the given Switchboard layer. Its context also holds
 * `ConnectionTests` (found with `Effect.serviceOption` by the API handlers and the CLI's `test`).
 */
export const withCalls = <E, R>(
  switchboard: Layer.Layer<Switchboard.Switchboard, E, R>,
  options: { readonly allowPrivateNetwork: boolean }
): Layer.Layer<Services, E, R> =>
  Layer.mergeAll(Proxy.layer, Tools.layer, testingLayer(options), explainLayer(options)).pipe(
    Layer.provide(upstreamLayer(options)),
    Layer.provideMerge(switchboard)
  )

/**
 * The embedded Switchboard on a data directory (what the CLI uses when no daemon runs): the directory is created
 * (0700) first.
 */
export const embedded = (
  options: PathOptions & { readonly store?: StoreKind | undefined } = {}
): Layer.Layer<Switchboard.Switchboard, StoreError | SealError | DaemonError> => {
  const paths = resolvePaths(options)
  return Layer.unwrap(
    Effect.as(
      ensureDataDir(paths),
      switchboardLayer({ kind: options.store ?? "sqlite", paths, env: options.env ?? process.env })
    )
  )
}

// ---------------------------------------------------------------------------------------------------------------
// OAuth

export interface OAuthOptions {
  readonly allowPrivateNetwork: boolean
  /** The redirect URI of flows (the browser listener's callback), read when a flow starts. */
  readonly redirectUri?: (() => string | undefined) | undefined
  /** An https URL serving this client's metadata document, for servers that support client ID documents. */
  readonly clientMetadataUrl?: string | undefined
}

/** The four store ports and the OAuth state store beside them (the same SQLite file, sealed with the same key). */
export const oauthStoreLayer = (
  options: StoreOptions
): Layer.Layer<StoreServices | OAuthStateStore, StoreError | SealError> => {
  if (options.kind === "memory") return Layer.merge(Memory.layer, OAuthAdapter.StateStore.layerMemory)
  const database = Sqlite.Database.layer({
    filename: options.paths.database,
    schemaVersion: Sqlite.Migrations.latestVersion
  })
  return Layer.mergeAll(Sqlite.Store.layerFromDatabase(), OAuthAdapter.StateStore.layerSqlite).pipe(
    Layer.provide(Layer.merge(database, sealerLayer(options.paths, options.env)))
  )
}

/**
 * The Switchboard with OAuth: the service on the stores, the `OAuth` service (its state store, the SDK-based client
 * through the SSRF guard) and the refresh hook the proxy and MCP tools pick up when built on top (`withCalls`).
 */
export const oauthSwitchboardLayer = (options: StoreOptions & OAuthOptions) => {
  const client = OAuthAdapter.Client.layer({
    allowPrivateNetwork: options.allowPrivateNetwork,
    clientMetadataUrl: options.clientMetadataUrl
  }).pipe(Layer.provide(Http.Resolver.layer))
  const base = Switchboard.layer.pipe(Layer.provideMerge(oauthStoreLayer(options)))
  const oauth = OAuth.layer({ redirectUri: options.redirectUri }).pipe(Layer.provide(client), Layer.provideMerge(base))
  return OAuth.refresherLayer.pipe(Layer.provideMerge(oauth))
}
