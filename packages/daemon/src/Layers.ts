/**
 * The one place where real layers are wired: where the data directory and the socket are, what the daemon's
 * configuration says, which master key seals the store, which store holds the data, and the `Switchboard`
 * service on top. The daemon, the CLI (embedded) and the MCP server all build their Switchboard from here.
 *
 * Data directory: `$SWITCHBOARD_HOME`, else `$XDG_DATA_HOME/switchboard`, else `~/.local/share/switchboard`
 * (created 0700), holding `switchboard.db`, `master.key`, `config.json` and `daemon.pid`. Socket:
 * `$SWITCHBOARD_SOCKET`, else `$XDG_RUNTIME_DIR/switchboard/switchboard.sock`, else `<data dir>/switchboard.sock`.
 */
import * as Cassette from "@switchboard/adapters/cassette"
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
import type { ApiKeyStore } from "@switchboard/core/ApiKeyStore"
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
import * as TeamServer from "./TeamServer.ts"

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
  oauth_client_metadata_url: Schema.optionalKey(Schema.String),
  /** Also serve the API on TCP at `host:port`, behind API keys (a team server); `--listen` wins over it. */
  listen: Schema.optionalKey(TeamServer.ListenAddress),
  /**
   * A team server's public origin (`https://switchboard.example.com`, or http on loopback): OAuth flows redirect to
   * `<public_url>/v1/oauth/callback`, served on the TCP listener (`listen`), instead of the loopback browser listener.
   */
  public_url: Schema.optionalKey(Schema.String),
  /** Where the data lives: `postgres://…` for a shared PostgreSQL; the data directory's SQLite file when absent. */
  store_url: Schema.optionalKey(
    Schema.String.check(Schema.isPattern(/^postgres(ql)?:\/\//u, { message: "expected a postgres:// URL" }))
  )
})
export type ConfigFile = typeof ConfigFile.Type

export interface DaemonConfig {
  readonly trustHeaders: boolean
  readonly shutdownTimeoutMs: number
  readonly allowPrivateNetwork: boolean
  readonly oauthCallbackPort?: number | undefined
  readonly oauthClientMetadataUrl?: string | undefined
  /** The TCP address of the team server's listener (`listen`). */
  readonly listen?: TeamServer.Address | undefined
  /** `store_url` of config.json, or `SWITCHBOARD_STORE_URL` over it. */
  readonly storeUrl?: string | undefined
  /** `public_url` of config.json: the team server's origin, without a trailing slash. */
  readonly publicUrl?: string | undefined
}

/**
 * A `public_url`: an origin (no path, query, fragment or user info), https, or http on loopback only (the rule
 * for OAuth redirect URIs); without its trailing slash. A message saying what is wrong otherwise.
 */
export const checkPublicUrl = (text: string): { readonly url: string } | { readonly error: string } => {
  if (!URL.canParse(text)) return { error: "public_url is not an absolute URL" }
  const url = new URL(text)
  const loopback = url.hostname === "127.0.0.1" || url.hostname === "[::1]" || url.hostname === "localhost"
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    return { error: "public_url must be https (plain http only on loopback)" }
  }
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    return { error: "public_url must be an origin only (https://host[:port]), without path, query or user info" }
  }
  return { url: url.origin }
}

export const defaultShutdownTimeoutMs = 10_000

const parseFlag = (value: string): boolean | undefined => {
  const v = value.trim().toLowerCase()
  if (["1", "true", "yes", "on"].includes(v)) return true
  if (["0", "false", "no", "off", ""].includes(v)) return false
  return undefined
}

const storeUrlOf = (file: ConfigFile, env: Env): { readonly storeUrl?: string } => {
  const url = nonEmpty(env.SWITCHBOARD_STORE_URL) ?? file.store_url
  return url === undefined ? {} : { storeUrl: url }
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
  let publicUrl: string | undefined
  if (file.public_url !== undefined) {
    const checked = checkPublicUrl(file.public_url)
    if ("error" in checked) {
      return yield* new DaemonError({ reason: "config_invalid", message: `${paths.config}: ${checked.error}` })
    }
    publicUrl = checked.url
  }
  return {
    trustHeaders,
    shutdownTimeoutMs: file.shutdown_timeout_ms ?? defaultShutdownTimeoutMs,
    allowPrivateNetwork: file.allow_private_network ?? false,
    ...(file.oauth_callback_port === undefined ? {} : { oauthCallbackPort: file.oauth_callback_port }),
    ...(file.oauth_client_metadata_url === undefined ? {} : { oauthClientMetadataUrl: file.oauth_client_metadata_url }),
    ...(file.listen === undefined ? {} : { listen: TeamServer.parseAddress(file.listen) }),
    ...(publicUrl === undefined ? {} : { publicUrl }),
    ...storeUrlOf(file, env)
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
  /** A `postgres://…` URL (`store_url`): the shared PostgreSQL store instead of the SQLite file (not memory). */
  readonly storeUrl?: string | undefined
}

const postgresUrlOf = (options: StoreOptions): string | undefined =>
  options.kind === "sqlite" ? options.storeUrl : undefined

// The PostgreSQL adapter (and its driver) is loaded only by a process configured for it, not by every CLI start.
const loadPostgres = Effect.promise(() => import("@switchboard/adapters/postgres"))

/**
 * The master key (`SWITCHBOARD_MASTER_KEY`, `SWITCHBOARD_PASSPHRASE`, or `<home>/master.key`) and the sealer on it;
 * a key rotation interrupted in this data directory is finished or undone first (`KeyRotation.configOf`).
 */
export const sealerLayer = (paths: Paths, env: Env = process.env) =>
  Sodium.Sealer.layer.pipe(Layer.provide(Sodium.KeyProvider.layerConfig(KeyRotation.configOf({ paths }, env))))

/** The four store ports: the sealed SQLite file of the data directory, or memory (tests, throwaway runs). */
export const storeLayer = (options: StoreOptions): Layer.Layer<StoreServices, StoreError | SealError> => {
  const url = postgresUrlOf(options)
  if (url !== undefined) {
    return Layer.unwrap(
      Effect.map(loadPostgres, (Postgres) =>
        // With its `ToolPins` on the same pool, like the SQLite store's (tool-manifest pinning on a team server).
        Layer.merge(Postgres.layerFromDatabase(), Postgres.ToolPins.layer).pipe(
          Layer.provide(Layer.merge(Postgres.Database.layer({ url }), sealerLayer(options.paths, options.env)))
        )
      )
    )
  }
  return options.kind === "memory"
    ? Memory.layer
    : Sqlite.layer({ filename: options.paths.database }).pipe(Layer.provide(sealerLayer(options.paths, options.env)))
}

/**
 * The bundle store (`switchboard export` / `import`) on the data directory's database, sealed with its master key;
 * the database is opened, its key proved and migrated like the other stores'. With `store_url` (given, or read from
 * config.json and `SWITCHBOARD_STORE_URL` when absent), the team server's PostgreSQL database instead.
 */
export const bundleStoreLayer = (options: Omit<StoreOptions, "kind">) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const url = options.storeUrl ?? (yield* readConfig(options.paths, options.env ?? process.env)).storeUrl
      if (url !== undefined) {
        const Postgres = yield* loadPostgres
        return Postgres.BundleStore.layer.pipe(
          Layer.provide(Layer.merge(Postgres.Database.layer({ url }), sealerLayer(options.paths, options.env)))
        )
      }
      return Sqlite.BundleStore.layer.pipe(
        Layer.provide(
          Layer.merge(
            Sqlite.Database.layer({
              filename: options.paths.database,
              schemaVersion: Sqlite.Migrations.latestVersion
            }),
            sealerLayer(options.paths, options.env)
          )
        )
      )
    })
  )

/** The Switchboard service on the chosen store. */
// The store ports stay in the context (provideMerge): the calling services built on top (`withCalls`) find the
// optional ones there, e.g. `ToolPins` for tool-manifest pinning.
export const switchboardLayer = (options: StoreOptions): Layer.Layer<Switchboard.Switchboard, StoreError | SealError> =>
  Switchboard.layer.pipe(Layer.provideMerge(storeLayer(options)))

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
  options: { readonly allowPrivateNetwork: boolean; readonly cassette?: CassetteOptions | undefined }
): Layer.Layer<Services, E | DaemonError, R> =>
  Layer.mergeAll(
    Layer.mergeAll(Proxy.layer, Tools.layer).pipe(Layer.provide(callingUpstreamLayer(options))),
    testingLayer(options),
    explainLayer(options)
  ).pipe(Layer.provideMerge(switchboard))

/** `--record <dir>` / `--replay <dir>`: the proxy's and MCP tools' traffic recorded into, or replayed from, cassettes. */
export interface CassetteOptions {
  readonly mode: "record" | "replay"
  readonly dir: string
}

/**
 * The upstreams of the proxy and MCP tools: the real adapters, the real ones recorded, or cassettes replayed (no
 * network, DNS or credentials). Connection tests and explain keep the real adapters.
 */
const callingUpstreamLayer = (options: {
  readonly allowPrivateNetwork: boolean
  readonly cassette?: CassetteOptions | undefined
}) => {
  const cassette = options.cassette
  if (cassette === undefined) return upstreamLayer(options)
  const dir = Path.resolve(cassette.dir)
  const layer =
    cassette.mode === "record"
      ? Cassette.layerRecord(dir).pipe(Layer.provide(upstreamLayer(options)))
      : Cassette.layerReplay(dir)
  return layer.pipe(
    Layer.catchTag("CassetteError", (error) =>
      Layer.effectContext(
        Effect.fail(
          new DaemonError({
            reason: error.reason === "cassette_unwritable" ? "io_error" : "config_invalid",
            message: error.message,
            cause: error.cause
          })
        )
      )
    )
  )
}

/**
 * The embedded Switchboard on a data directory (what the CLI uses when no daemon runs): the directory is created
 * (0700) first; the store is the one the daemon would use (`store_url` of config.json when set).
 */
export const embedded = (
  options: PathOptions & { readonly store?: StoreKind | undefined } = {}
): Layer.Layer<Switchboard.Switchboard, StoreError | SealError | DaemonError> => {
  const paths = resolvePaths(options)
  const env = options.env ?? process.env
  // The store the daemon would use: `store_url` (a team server's PostgreSQL) when configured.
  return Layer.unwrap(
    Effect.andThen(ensureDataDir(paths), readConfig(paths, env)).pipe(
      Effect.map((config) =>
        switchboardLayer({ kind: options.store ?? "sqlite", paths, env, storeUrl: config.storeUrl })
      )
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

/**
 * The four store ports, the OAuth state store and the API keys beside them (the same SQLite file, sealed with
 * the same key).
 */
export const oauthStoreLayer = (
  options: StoreOptions
): Layer.Layer<StoreServices | OAuthStateStore | ApiKeyStore, StoreError | SealError> => {
  if (options.kind === "memory") {
    return Layer.mergeAll(Memory.layer, OAuthAdapter.StateStore.layerMemory, Memory.ApiKeyStore.layer)
  }
  const url = postgresUrlOf(options)
  if (url !== undefined) {
    return Layer.unwrap(
      Effect.map(loadPostgres, (Postgres) =>
        Layer.mergeAll(Postgres.layerFromDatabase(), Postgres.ApiKeyStore.layer, Postgres.ToolPins.layer).pipe(
          Layer.provide(Layer.merge(Postgres.Database.layer({ url }), sealerLayer(options.paths, options.env)))
        )
      )
    )
  }
  const database = Sqlite.Database.layer({
    filename: options.paths.database,
    schemaVersion: Sqlite.Migrations.latestVersion
  })
  return Layer.mergeAll(
    Sqlite.Store.layerFromDatabase(),
    OAuthAdapter.StateStore.layerSqlite,
    Sqlite.ApiKeyStore.layerSqlite
  ).pipe(Layer.provide(Layer.merge(database, sealerLayer(options.paths, options.env))))
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
