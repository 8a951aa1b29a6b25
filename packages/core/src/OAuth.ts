/**
 * OAuth for connections: the authorization URL of a connector (PKCE S256 always, a random single-use `state`
 * that expires after 10 minutes, sealed with the code verifier), the callback that validates the state,
 * exchanges the code and stores the tokens as the connection's OAUTH credential (at the scope its binding
 * resolves to), labels the connection with the account from `user_info_uri` and marks it active; and keeping
 * tokens usable: refresh ahead of expiry and once after a 401, single-flight per credential in this process
 * (a semaphore, re-reading under it) and across processes sharing the store (a lease row, re-reading after it),
 * rotating refresh tokens written atomically with the new access token, an omitted refresh token kept;
 * `invalid_grant` moves the connection to `pending_auth` and drops the dead refresh token, so nothing retries.
 *
 * The protocol itself (URLs, token requests, MCP discovery and registration) is the `OAuthClient` port's; the
 * flows, leases and sealed records are the `OAuthStateStore` port's. Tokens and secrets stay `Redacted`; no
 * error, audit record or log line carries one.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import type * as AuthPattern from "./AuthPattern.ts"
import * as Connection from "./Connection.ts"
import { ConnectionStore } from "./ConnectionStore.ts"
import type * as Connector from "./Connector.ts"
import * as Credential from "./Credential.ts"
import { CredentialVault } from "./CredentialVault.ts"
import { OAuthError, type SwitchboardError, ValidationFailed } from "./Errors.ts"
import * as Ids from "./Ids.ts"
import { type ClientCredentials, OAuthClient, type Target, type TokenSet } from "./OAuthClient.ts"
import { OAuthStateStore } from "./OAuthStateStore.ts"
import * as OAuthRefresher from "./OAuthRefresher.ts"
import * as Principal from "./Principal.ts"
import { type ResolvedCall, Switchboard } from "./Switchboard.ts"
import * as Template from "./Template.ts"

/** How long an authorization request (its state and code verifier) stays valid. */
export const stateLifetimeMillis = 10 * 60 * 1000
/** Tokens are refreshed this long before they expire. */
export const refreshSkewMillis = 60 * 1000
/** How long one process may hold a credential's refresh lease before others may take it. */
export const leaseMillis = 30 * 1000
/** How long a refresh waits for another process's lease before giving up. */
export const leaseWaitMillis = 30 * 1000
/** How often a waiting process looks at the credential and the lease again. */
export const leasePollMillis = 25
/** Step-up authorizations asked for one connection within `stepUpWindowMillis` before giving up. */
export const stepUpLimit = 2
export const stepUpWindowMillis = 10 * 60 * 1000

// ---------------------------------------------------------------------------------------------------------------
// Pure rules

/** Where a connection's tokens are stored: the credential its binding resolves to first. */
export interface TokenTarget {
  readonly scope: Credential.Scope
  readonly owner: Credential.Owner
  readonly name: string
}

/**
 * The credential the tokens of an authorization go to: the connection's named credential; else, for a service
 * account, the connection's workspace; else the acting user's own (the owner of a personal connection, the caller
 * of an organizational one). Without a connection: the caller's own `default`.
 */
export const tokenTarget = (
  connection:
    | Pick<Connection.Connection, "org" | "workspace" | "owner" | "access_scope" | "is_service_account" | "credential">
    | undefined,
  principal: Principal.Principal
): TokenTarget => {
  if (connection === undefined) {
    return { scope: "user", owner: Credential.ownerFor("user", principal), name: "default" }
  }
  const actingUser = connection.access_scope === "personal" ? connection.owner : principal.user
  const who = { org: connection.org, workspace: connection.workspace, user: actingUser }
  if (connection.credential !== null) {
    const { scope, name } = connection.credential
    return { scope, owner: Credential.ownerFor(scope, who), name }
  }
  if (connection.is_service_account)
    return { scope: "workspace", owner: Credential.ownerFor("workspace", who), name: "default" }
  return { scope: "user", owner: Credential.ownerFor("user", who), name: "default" }
}

/** The OAUTH pattern of a connector, if it has one. */
export const oauthPattern = (
  connector: Pick<Connector.Connector, "auth_patterns">
): AuthPattern.AuthPattern | undefined => connector.auth_patterns.find((p) => p.type === "OAUTH")

/**
 * The scopes to ask for: every required scope of the pattern, then the requested ones (which must be among its
 * `available_scopes` when it lists any), without duplicates.
 */
export const scopesFor = (
  pattern: AuthPattern.AuthPattern,
  requested: ReadonlyArray<string>
): Result.Result<ReadonlyArray<string>, ValidationFailed> => {
  const available = pattern.oauth_config?.available_scopes ?? []
  const unknown = available.length === 0 ? [] : requested.filter((s) => !available.some((a) => a.scope === s))
  if (unknown.length > 0) {
    return Result.fail(
      new ValidationFailed({
        message: `unknown scope ${unknown.join(", ")}; this connector offers ${available.map((a) => a.scope).join(", ")}`,
        details: { issues: [{ path: "scopes", message: `unknown scope ${unknown.join(", ")}` }] }
      })
    )
  }
  const required = available.filter((a) => a.required === true).map((a) => a.scope)
  return Result.succeed([...new Set([...required, ...requested])])
}

/** Split a space-separated scope string. */
export const splitScopes = (scope: string | undefined): ReadonlyArray<string> =>
  (scope ?? "").split(/\s+/u).filter((s) => s !== "")

/**
 * The credential values of a token response: the new access token, the new refresh token or else the previous
 * one (a response may omit it), `expires_at` from `expires_in`, and the token type and scope (previous ones kept
 * when omitted).
 */
export const tokenValues = (
  tokens: TokenSet,
  nowMillis: number,
  previous: Credential.Values = {}
): Credential.Values => {
  const out: Record<string, Redacted.Redacted<string>> = { access_token: tokens.access_token }
  const refresh = tokens.refresh_token ?? previous["refresh_token"]
  if (refresh !== undefined) out["refresh_token"] = refresh
  if (tokens.expires_in !== undefined && Number.isFinite(tokens.expires_in) && tokens.expires_in > 0) {
    out["expires_at"] = Redacted.make(new Date(nowMillis + Math.floor(tokens.expires_in * 1000)).toISOString())
  }
  const type =
    tokens.token_type ?? (previous["token_type"] === undefined ? undefined : Redacted.value(previous["token_type"]))
  if (type !== undefined) out["token_type"] = Redacted.make(type)
  const scope = tokens.scope ?? (previous["scope"] === undefined ? undefined : Redacted.value(previous["scope"]))
  if (scope !== undefined) out["scope"] = Redacted.make(scope)
  const id = tokens.id_token ?? previous["id_token"]
  if (id !== undefined) out["id_token"] = id
  // Account fields given with the credential earlier stay.
  for (const [name, value] of Object.entries(previous)) {
    if (!Credential.oauthTokenFields.includes(name)) out[name] = value
  }
  return out
}

/** When the access token expires (epoch millis), if known. */
export const expiresAt = (values: Credential.Values): number | undefined => {
  const raw = values["expires_at"]
  if (raw === undefined) return undefined
  const millis = Date.parse(Redacted.value(raw))
  return Number.isNaN(millis) ? undefined : millis
}

/** Whether a token set should be refreshed now: it has a refresh token and expires within the skew. */
export const needsRefresh = (values: Credential.Values, nowMillis: number, skewMillis = refreshSkewMillis): boolean => {
  const at = expiresAt(values)
  return values["refresh_token"] !== undefined && at !== undefined && at - skewMillis <= nowMillis
}

/** The `state` parameter: the flow id and its secret, so a flow is found by id and proven by the secret. */
export const stateParam = (id: string, secret: Redacted.Redacted<string>): string => `${id}.${Redacted.value(secret)}`

/** The flow id and secret of a `state` parameter, if it has that form. */
export const parseState = (
  state: string | undefined
): Option.Option<{ readonly id: string; readonly secret: string }> => {
  if (state === undefined || state.length > 256) return Option.none()
  const dot = state.indexOf(".")
  if (dot === -1) return Option.none()
  const id = state.slice(0, dot)
  const secret = state.slice(dot + 1)
  return Ids.is("ost", id) && /^[A-Za-z0-9_-]{16,128}$/u.test(secret) ? Option.some({ id, secret }) : Option.none()
}

/** Compare two strings without stopping at the first difference. */
export const sameSecret = (a: string, b: string): boolean => {
  let diff = a.length ^ b.length
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0)
  return diff === 0
}

/** An error code or description from a callback, safe to show: printable ASCII, at most `max` characters. */
export const sanitize = (text: string | undefined, max: number): string | undefined =>
  text === undefined ? undefined : text.replace(/[^\x20-\x7e]/gu, "?").slice(0, max)

/** A redirect URI we accept: http(s), no fragment, no user info; plain http only to loopback. */
export const checkRedirectUri = (uri: string): Result.Result<string, ValidationFailed> => {
  const bad = (message: string) =>
    Result.fail(new ValidationFailed({ message, details: { issues: [{ path: "redirect_uri", message }] } }))
  if (!URL.canParse(uri)) return bad("the redirect URI is not an absolute URL")
  const url = new URL(uri)
  if (url.protocol !== "https:" && url.protocol !== "http:") return bad("the redirect URI must be http or https")
  if (url.hash !== "" || url.username !== "" || url.password !== "") {
    return bad("the redirect URI must have no fragment and no user info")
  }
  const loopback = url.hostname === "127.0.0.1" || url.hostname === "[::1]" || url.hostname === "localhost"
  if (url.protocol === "http:" && !loopback) return bad("a plain http redirect URI must be on the loopback interface")
  return Result.succeed(url.href)
}

// ---------------------------------------------------------------------------------------------------------------
// Flows

const FlowBody = Schema.Struct({
  secret: Schema.String,
  code_verifier: Schema.String,
  context: Schema.optionalKey(Schema.String),
  principal: Principal.Principal,
  connector_id: Schema.String,
  connection_id: Schema.NullOr(Schema.String),
  target: Schema.Struct({ scope: Credential.Scope, owner: Credential.Owner, name: Schema.String }),
  redirect_uri: Schema.String,
  scopes: Schema.Array(Schema.String),
  created_at: Schema.String,
  expires_at: Schema.String
})
type FlowBody = typeof FlowBody.Type
const FlowJson = Schema.fromJsonString(FlowBody)

const stateInvalid = (message: string, details?: Record<string, unknown>) =>
  new OAuthError({ reason: "oauth_state_invalid", message, ...(details === undefined ? {} : { details }) })

// ---------------------------------------------------------------------------------------------------------------
// Service

export interface AuthorizationUrlOptions {
  /** The connection (id or name) the tokens are for; without one, the caller's own `default` credential. */
  readonly connection?: string | undefined
  /** Scopes to ask for besides the required ones. */
  readonly scopes?: ReadonlyArray<string> | undefined
  /** Where the browser comes back to; the configured (daemon loopback) callback by default. */
  readonly redirect_uri?: string | undefined
}

export interface AuthorizationUrl {
  readonly url: string
  readonly state_expires_at: string
}

/** The query of a callback request. */
export interface CallbackParams {
  readonly state?: string | undefined
  readonly code?: string | undefined
  readonly error?: string | undefined
  readonly error_description?: string | undefined
  /** RFC 9207: the issuer the authorization response names; required where the server's metadata says it sends it. */
  readonly iss?: string | undefined
}

export interface Completed {
  readonly connector: string
  readonly connection: Connection.Connection | null
  readonly account_label: string | null
  readonly scope: string | null
  readonly credential: { readonly scope: Credential.Scope; readonly name: string }
}

/**
 * `createConnection` with the OAuth answer for connections that still need an authorization: the authorization
 * URL when one could be made (`auth_url` is null without a callback listener, or when the connector is not ready,
 * e.g. without its OAuth app credential; `message` says why and what to run), and the CLI command that authorizes
 * the connection in any case.
 */
export type Connected =
  | { readonly status: "created"; readonly connection: Connection.Connection }
  | {
      readonly status: "oauth2_required"
      readonly connection: Connection.Connection
      readonly auth_url: string | null
      readonly state_expires_at: string | null
      readonly login_command: string
      readonly message: string
    }

/** The CLI command that authorizes a connection. */
export const loginCommand = (connector: string, connection: string): string =>
  `switchboard auth login ${connector} --connection ${connection}`

export class OAuth extends Context.Service<
  OAuth,
  {
    readonly authorizationUrl: (
      connector: string,
      options?: AuthorizationUrlOptions
    ) => Effect.Effect<AuthorizationUrl, SwitchboardError>
    /** Complete a flow from its callback; runs as the principal that started it. */
    readonly complete: (params: CallbackParams) => Effect.Effect<Completed, SwitchboardError>
    /**
     * Create a connection; an OAuth one without tokens answers `oauth2_required` with its authorization URL (null,
     * with a message saying what to run instead, when no URL can be made here).
     */
    readonly connect: (
      connector: string,
      input: unknown,
      options?: Omit<AuthorizationUrlOptions, "connection">
    ) => Effect.Effect<Connected, SwitchboardError>
    /** Refresh a connection's tokens now (single-flight); false when there was nothing to refresh with. */
    readonly refresh: (connection: string) => Effect.Effect<boolean, SwitchboardError>
    /** Revoke (where the server supports it) and delete the tokens a connection uses; it goes back to `pending_auth`. */
    readonly disconnect: (connection: string) => Effect.Effect<{ readonly revoked: boolean }, SwitchboardError>
    /**
     * Delete a connection. An OAuth connection's tokens are revoked first where the server supports it (a failure
     * is logged and the delete still happens) and then deleted, unless another connection uses the same credential.
     */
    readonly deleteConnection: (connection: string) => Effect.Effect<{ readonly revoked: boolean }, SwitchboardError>
    /** Delete a credential, revoking its tokens first where the server supports it. */
    readonly deleteCredential: (
      connector: string,
      scope: Credential.Scope,
      name: string
    ) => Effect.Effect<{ readonly revoked: boolean }, SwitchboardError>
    readonly refresher: OAuthRefresher.TokenRefresherShape
  }
>()("@switchboard/core/OAuth") {}

export interface Options {
  /**
   * The redirect URI flows use unless a caller gives one (the daemon's loopback callback); a function is read when
   * a flow starts (the listener's port may be known only later).
   */
  readonly redirectUri?: string | (() => string | undefined) | undefined
}

const isoOf = (millis: number) => new Date(millis).toISOString()

const notOAuth = (connector: Connector.Connector) =>
  new OAuthError({
    reason: "oauth_not_supported",
    message: `connector ${connector.name} has no OAUTH auth pattern`,
    details: { connector: connector.name }
  })

export const make = (options: Options = {}) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard
    const vault = yield* CredentialVault
    const connections = yield* ConnectionStore
    const store = yield* OAuthStateStore
    const client = yield* OAuthClient
    // Names this process's leases; never shown.
    const holder = Redacted.value(yield* client.newSecret)
    const locks = new Map<string, Semaphore.Semaphore>()
    const lockOf = (key: string) => {
      let lock = locks.get(key)
      if (lock === undefined) {
        lock = Semaphore.makeUnsafe(1)
        locks.set(key, lock)
      }
      return lock
    }
    const stepUps = new Map<string, Array<number>>()

    /** The connector version a connection uses (pinned or latest), and its OAUTH pattern. */
    const connectorOf = Effect.fn("OAuth.connectorOf")(function* (
      connectorRef: string,
      connection: Connection.Connection | undefined
    ) {
      const latest = yield* sb.getConnector(connectorRef)
      if (connection !== undefined && connection.connector_id !== latest.id) {
        return yield* new ValidationFailed({
          message: `connection ${connection.name} does not use connector ${latest.name}`,
          details: { issues: [{ path: "connection", message: `connection ${connection.name} uses another connector` }] }
        })
      }
      const connector =
        connection?.connector_version === null || connection?.connector_version === undefined
          ? latest
          : yield* sb.getConnectorVersion(latest.id, connection.connector_version)
      const pattern = oauthPattern(connector)
      if (pattern === undefined) return yield* notOAuth(connector)
      return { connector, pattern }
    })

    /** The connector's `oauth_client` credential: workspace first, then organization. */
    const oauthClientOf = Effect.fn("OAuth.oauthClientOf")(function* (
      connector: Connector.Connector,
      where: { readonly org: string; readonly workspace: string }
    ) {
      for (const scope of ["workspace", "organization"] as const) {
        const found = yield* vault.get({
          connectorId: connector.id,
          scope,
          owner: Credential.ownerFor(scope, { ...where, user: "" }),
          name: Credential.oauthClientName
        })
        const id = Option.isSome(found) ? found.value.values["client_id"] : undefined
        if (Option.isSome(found) && id !== undefined) {
          const secret = found.value.values["client_secret"]
          const credentials: ClientCredentials = {
            client_id: Redacted.value(id),
            ...(secret === undefined || Redacted.value(secret) === "" ? {} : { client_secret: secret })
          }
          return Option.some(credentials)
        }
      }
      return Option.none<ClientCredentials>()
    })

    const serverUrlOf = (connector: Connector.Connector, connection: Connection.Connection | undefined) => {
      const override = connection?.servers[0]?.url
      if (override !== undefined) return Effect.succeed(override)
      if (connector.proxy_url === undefined) {
        return Effect.fail(
          new ValidationFailed({
            message: `MCP connector ${connector.name} has no server URL`,
            details: { issues: [{ path: "proxy_url", message: "the MCP server URL is missing" }] }
          })
        )
      }
      return Effect.fromResult(Template.render(connector.proxy_url, connection?.parameters.path ?? {}))
    }

    /** Who the protocol talks to for a connector and pattern. */
    const targetOf = Effect.fn("OAuth.targetOf")(function* (
      connector: Connector.Connector,
      pattern: AuthPattern.AuthPattern,
      where: { readonly org: string; readonly workspace: string },
      serverUrl: () => Effect.Effect<string, SwitchboardError>
    ) {
      const registered = yield* oauthClientOf(connector, where)
      if (pattern.is_mcp === true) {
        const target: Target = {
          _tag: "Mcp",
          connectorId: connector.id,
          serverUrl: yield* serverUrl(),
          ...(Option.isSome(registered) ? { client: registered.value } : {})
        }
        return target
      }
      const config = pattern.oauth_config ?? {}
      if (Option.isNone(registered)) {
        return yield* new OAuthError({
          reason: "oauth_client_missing",
          message:
            `connector ${connector.name} has no OAuth app credential: set an organization (or workspace) credential ` +
            `named ${Credential.oauthClientName} with client_id and client_secret`,
          details: { connector: connector.name, credential: Credential.oauthClientName }
        })
      }
      if (config.authorize_uri === undefined || config.token_uri === undefined) return yield* notOAuth(connector)
      const target: Target = {
        _tag: "Rest",
        endpoints: {
          authorize_uri: config.authorize_uri,
          token_uri: config.token_uri,
          ...(config.revoke_uri === undefined ? {} : { revoke_uri: config.revoke_uri }),
          ...(config.issuer === undefined ? {} : { issuer: config.issuer }),
          ...(config.token_endpoint_auth_method === undefined
            ? {}
            : { token_endpoint_auth_method: config.token_endpoint_auth_method })
        },
        client: registered.value
      }
      return target
    })

    const audit = (entry: Parameters<Switchboard["Service"]["audit"]>[0]) => Effect.ignore(sb.audit(entry))

    // --- authorization URL ---------------------------------------------------------------------------------------

    const authorizationUrl = Effect.fn("OAuth.authorizationUrl")(function* (
      connectorRef: string,
      opts: AuthorizationUrlOptions = {}
    ) {
      const principal = yield* Principal.CurrentPrincipal
      const connection = opts.connection === undefined ? undefined : yield* sb.getConnection(opts.connection)
      const { connector, pattern } = yield* connectorOf(connectorRef, connection)
      const target = tokenTarget(connection, principal)
      yield* Principal.guard("credential:write", { scope: target.scope, owner: target.owner.user ?? principal.user })
      const scopes = yield* Effect.fromResult(scopesFor(pattern, opts.scopes ?? []))
      const redirect =
        opts.redirect_uri ?? (typeof options.redirectUri === "function" ? options.redirectUri() : options.redirectUri)
      if (redirect === undefined) {
        return yield* new ValidationFailed({
          message: "no redirect URI: no callback listener is running; give redirect_uri",
          details: { issues: [{ path: "redirect_uri", message: "required without a callback listener" }] }
        })
      }
      const redirectUri = yield* Effect.fromResult(checkRedirectUri(redirect))
      const where = connection ?? { org: principal.org, workspace: principal.workspace }
      const protocol = yield* targetOf(connector, pattern, where, () => serverUrlOf(connector, connection))
      const id = yield* Ids.make("ost")
      const secret = yield* client.newSecret
      const network = { allowPrivateNetwork: connection?.allow_private_network ?? false }
      const authorization = yield* client.authorize(protocol, {
        ...network,
        redirectUri,
        scopes,
        state: stateParam(id, secret)
      })
      const now = yield* Clock.currentTimeMillis
      const expires = isoOf(now + stateLifetimeMillis)
      const body: FlowBody = {
        secret: Redacted.value(secret),
        code_verifier: Redacted.value(authorization.codeVerifier),
        ...(authorization.context === undefined ? {} : { context: Redacted.value(authorization.context) }),
        principal,
        connector_id: connector.id,
        connection_id: connection?.id ?? null,
        target,
        redirect_uri: redirectUri,
        scopes: [...authorization.scopes],
        created_at: isoOf(now),
        expires_at: expires
      }
      const json = yield* Schema.encodeEffect(FlowJson)(body).pipe(Effect.orDie)
      yield* store.deleteExpiredFlows(isoOf(now))
      yield* store.putFlow({ id, expires_at: expires, body: Redacted.make(json) })
      yield* audit({
        action: "oauth.authorize",
        outcome: "success",
        connector_id: connector.id,
        ...(connection === undefined ? {} : { connection_id: connection.id }),
        target: `${target.scope}/${target.name}`
      })
      return { url: authorization.url, state_expires_at: expires } satisfies AuthorizationUrl
    })

    // --- callback -------------------------------------------------------------------------------------------------

    /** Find, prove and consume the flow of a state; nothing changes when any check fails. */
    const takeFlow = Effect.fn("OAuth.takeFlow")(function* (state: string | undefined) {
      const parsed = parseState(state)
      if (Option.isNone(parsed)) {
        return yield* stateInvalid("the callback has no valid state parameter; start the authorization again")
      }
      const stored = yield* store.getFlow(parsed.value.id)
      if (Option.isNone(stored)) {
        return yield* stateInvalid("unknown or already used state; start the authorization again")
      }
      const body = yield* Schema.decodeEffect(FlowJson)(Redacted.value(stored.value.body)).pipe(
        Effect.mapError(() => stateInvalid("the stored authorization request is unreadable; start again"))
      )
      if (!sameSecret(body.secret, parsed.value.secret)) {
        return yield* stateInvalid("unknown or already used state; start the authorization again")
      }
      const now = yield* Clock.currentTimeMillis
      if (Date.parse(body.expires_at) <= now) {
        yield* store.deleteFlow(parsed.value.id)
        return yield* stateInvalid(
          "the authorization request expired (they last 10 minutes); start the authorization again",
          { expired_at: body.expires_at }
        )
      }
      if (!(yield* store.deleteFlow(parsed.value.id))) {
        return yield* stateInvalid("unknown or already used state; start the authorization again")
      }
      return body
    })

    const complete = Effect.fn("OAuth.complete")(function* (params: CallbackParams) {
      const flow = yield* takeFlow(params.state)
      return yield* finish(flow, params).pipe(Effect.provideService(Principal.CurrentPrincipal, flow.principal))
    })

    const finish = Effect.fn("OAuth.finish")(function* (flow: FlowBody, params: CallbackParams) {
      const connection =
        flow.connection_id === null
          ? undefined
          : Option.getOrUndefined(yield* connections.get(flow.principal.org, flow.connection_id))
      if (flow.connection_id !== null && connection === undefined) {
        return yield* stateInvalid("the connection this authorization was for no longer exists")
      }
      const { connector, pattern } = yield* connectorOf(flow.connector_id, connection)
      const auditBase = {
        connector_id: connector.id,
        ...(connection === undefined ? {} : { connection_id: connection.id }),
        target: `${flow.target.scope}/${flow.target.name}`
      }
      if (params.error !== undefined || params.code === undefined || params.code === "") {
        const code = sanitize(params.error, 64) ?? "no_code"
        const description = sanitize(params.error_description, 200)
        yield* audit({
          action: "oauth.callback",
          outcome: "failure",
          error_code: "oauth_authorization_denied",
          ...auditBase
        })
        return yield* new OAuthError({
          reason: "oauth_authorization_denied",
          message:
            params.error === undefined
              ? "the callback carries no authorization code"
              : `the authorization server refused: ${code}${description === undefined ? "" : ` (${description})`}`,
          details: { error: code, ...(description === undefined ? {} : { error_description: description }) }
        })
      }
      const network = { allowPrivateNetwork: connection?.allow_private_network ?? false }
      const where = connection ?? flow.principal
      const protocol = yield* targetOf(connector, pattern, where, () => serverUrlOf(connector, connection))
      const exchanged = yield* client
        .exchange(protocol, {
          ...network,
          code: params.code,
          codeVerifier: Redacted.make(flow.code_verifier),
          redirectUri: flow.redirect_uri,
          ...(params.iss === undefined ? {} : { iss: params.iss }),
          ...(flow.context === undefined ? {} : { context: Redacted.make(flow.context) })
        })
        .pipe(
          Effect.tapError((error) =>
            Effect.andThen(
              audit({ action: "oauth.callback", outcome: "failure", error_code: error.code, ...auditBase }),
              connection === undefined
                ? Effect.void
                : Effect.ignore(
                    Effect.flatMap(Clock.currentTimeMillis, (now) =>
                      connections.setStatus(connection.org, connection.id, {
                        status: connection.status,
                        last_error: `authorization failed: ${error.message}`.slice(0, 500),
                        updated_at: isoOf(now)
                      })
                    )
                  )
            )
          )
        )
      const now = yield* Clock.currentTimeMillis
      const key = {
        connectorId: connector.id,
        scope: flow.target.scope,
        owner: flow.target.owner,
        name: flow.target.name
      }
      const previous = yield* vault.get(key)
      const stored = yield* vault.put({
        id: Option.isSome(previous) ? previous.value.id : yield* Ids.make("cred"),
        connector_id: connector.id,
        scope: flow.target.scope,
        owner: flow.target.owner,
        name: flow.target.name,
        auth_type: "OAUTH",
        // A new authorization starts a new token set: an old refresh token is not carried over.
        values: tokenValues(exchanged.tokens, now, Option.isSome(previous) ? withoutTokens(previous.value.values) : {}),
        created_at: isoOf(now),
        updated_at: isoOf(now)
      })
      if (exchanged.context !== undefined) yield* store.putRecord(contextKey(stored.id), exchanged.context)
      else yield* store.deleteRecord(contextKey(stored.id))
      const userInfoUri = pattern.oauth_config?.user_info_uri
      const label =
        userInfoUri === undefined
          ? null
          : Option.getOrNull(
              yield* client
                .userInfo(userInfoUri, exchanged.tokens.access_token, network)
                .pipe(Effect.orElseSucceed(() => Option.none<string>()))
            )
      let updated: Connection.Connection | null = null
      if (connection !== undefined) {
        const set = yield* connections.setStatus(connection.org, connection.id, {
          status: "active",
          last_error: null,
          ...(label === null ? {} : { account_label: label }),
          updated_at: isoOf(now)
        })
        updated = Option.getOrNull(set)
      }
      yield* audit({ action: "oauth.callback", outcome: "success", ...auditBase })
      const completed: Completed = {
        connector: connector.name,
        connection: updated,
        account_label: label,
        scope: exchanged.tokens.scope ?? (flow.scopes.length === 0 ? null : flow.scopes.join(" ")),
        credential: { scope: flow.target.scope, name: flow.target.name }
      }
      return completed
    })

    // --- connect --------------------------------------------------------------------------------------------------

    const connect = Effect.fn("OAuth.connect")(function* (
      connectorRef: string,
      input: unknown,
      opts: Omit<AuthorizationUrlOptions, "connection"> = {}
    ) {
      const connection = yield* sb.createConnection(connectorRef, input)
      if (connection.status !== "pending_auth" || connection.auth_type !== "OAUTH") {
        return { status: "created", connection } satisfies Connected
      }
      const connector = yield* sb.getConnector(connection.connector_id)
      const login_command = loginCommand(connector.name, connection.name)
      const redirect =
        opts.redirect_uri ?? (typeof options.redirectUri === "function" ? options.redirectUri() : options.redirectUri)
      // No authorization URL now: the connection waits for a login, and the answer says how to do it.
      const withoutUrl = (message: string) =>
        ({
          status: "oauth2_required",
          connection,
          auth_url: null,
          state_expires_at: null,
          login_command,
          message
        }) satisfies Connected
      if (redirect === undefined) {
        return withoutUrl(
          `no browser listener takes OAuth callbacks here; authorize the connection with: ${login_command}`
        )
      }
      // The connection exists now: an authorization URL that cannot be made yet is said, not failed.
      const url = yield* authorizationUrl(connection.connector_id, { ...opts, connection: connection.id }).pipe(
        Effect.result
      )
      if (Result.isFailure(url)) {
        return withoutUrl(`${url.failure.message}; then authorize the connection with: ${login_command}`)
      }
      return {
        status: "oauth2_required",
        connection,
        auth_url: url.success.url,
        state_expires_at: url.success.state_expires_at,
        login_command,
        message: `open auth_url in a browser to authorize the connection, or run: ${login_command}`
      } satisfies Connected
    })

    // --- refresh --------------------------------------------------------------------------------------------------

    /** The stored credential a resolved OAuth call uses, with its key. */
    const credentialOf = Effect.fn("OAuth.credentialOf")(function* (call: ResolvedCall) {
      if (call.pattern?.type !== "OAUTH" || call.source._tag !== "Stored") return Option.none()
      const source = call.source
      const principal = yield* Principal.CurrentPrincipal
      const chain = yield* Effect.fromResult(Credential.resolutionChain(Connection.binding(call.connection), principal))
      const lookup = chain.find((l) => l.scope === source.scope && l.name === source.name)
      if (lookup === undefined) return Option.none()
      return Option.some({
        connectorId: call.connector.id,
        scope: lookup.scope,
        owner: lookup.owner,
        name: lookup.name
      })
    })

    const invalidGrant = Effect.fn("OAuth.invalidGrant")(function* (
      call: ResolvedCall,
      current: Credential.Credential,
      error: OAuthError
    ) {
      const now = yield* Clock.currentTimeMillis
      // The refresh token is dead: dropping it means nothing tries it again.
      const values = { ...current.values }
      delete values["refresh_token"]
      yield* vault.put({ ...current, values, updated_at: isoOf(now) })
      const message =
        `the authorization of connection ${call.connection.name} expired or was revoked (invalid_grant); ` +
        `authorize again: switchboard auth login ${call.connector.name} --connection ${call.connection.name}`
      yield* connections.setStatus(call.connection.org, call.connection.id, {
        status: "pending_auth",
        last_error: message,
        updated_at: isoOf(now)
      })
      yield* audit({
        action: "oauth.refresh",
        outcome: "failure",
        error_code: "oauth_reauthorization_required",
        connector_id: call.connector.id,
        connection_id: call.connection.id,
        target: `${current.scope}/${current.name}`
      })
      return yield* new OAuthError({
        reason: "oauth_reauthorization_required",
        message,
        details: { connection: call.connection.id, connector: call.connector.name, ...errorDetails(error) }
      })
    })

    /** Wait for another process's lease: true once it is ours, false when the token changed meanwhile. */
    const leaseFor = Effect.fn("OAuth.leaseFor")(function* (
      credentialId: string,
      key: Parameters<CredentialVault["Service"]["get"]>[0],
      seen: string
    ) {
      const started = yield* Clock.currentTimeMillis
      for (;;) {
        const now = yield* Clock.currentTimeMillis
        if (yield* store.acquireLease(leaseKey(credentialId), holder, now, now + leaseMillis)) return true
        if (now - started > leaseWaitMillis) {
          return yield* new OAuthError({
            reason: "oauth_token_error",
            message: "another process has been refreshing this credential for too long; try again",
            details: { credential: credentialId }
          })
        }
        yield* Effect.sleep(leasePollMillis)
        const again = yield* vault.get(key)
        if (Option.isNone(again) || accessTokenOf(again.value) !== seen) return false
      }
    })

    /**
     * Refresh the credential of a call unless someone else did since `seen` was read: in-process under the
     * credential's semaphore, across processes under its lease, re-reading the credential after each.
     */
    const refreshCredential = Effect.fn("OAuth.refreshCredential")(function* (
      call: ResolvedCall,
      mode: "expiring" | "unauthorized" | "forced"
    ) {
      const found = yield* credentialOf(call)
      if (Option.isNone(found)) return "unrefreshable"
      const key = found.value
      const seenValue = call.values["access_token"]
      const seen = seenValue === undefined ? "" : Redacted.value(seenValue)
      const first = yield* vault.get(key)
      if (Option.isNone(first)) return "unrefreshable"
      const credentialId = first.value.id
      const attempt = Effect.gen(function* () {
        const current = yield* vault.get(key)
        if (Option.isNone(current)) return "unrefreshable"
        if (mode !== "forced" && accessTokenOf(current.value) !== seen) return "rotated"
        const now = yield* Clock.currentTimeMillis
        if (mode === "expiring" && !needsRefresh(current.value.values, now)) return "fresh"
        if (current.value.values["refresh_token"] === undefined) return "unrefreshable"
        if (!(yield* leaseFor(credentialId, key, accessTokenOf(current.value)))) return "rotated"
        return yield* Effect.gen(function* () {
          // Another process may have refreshed between our read and our lease.
          const leased = yield* vault.get(key)
          if (Option.isNone(leased)) return "unrefreshable"
          if (accessTokenOf(leased.value) !== accessTokenOf(current.value)) return "rotated"
          const refreshToken = leased.value.values["refresh_token"]
          if (refreshToken === undefined) return "unrefreshable"
          const protocol = yield* targetOf(
            call.connector,
            call.pattern as AuthPattern.AuthPattern,
            call.connection,
            () =>
              call.baseUrl === undefined ? serverUrlOf(call.connector, call.connection) : Effect.succeed(call.baseUrl)
          )
          const context = yield* store.getRecord(contextKey(leased.value.id))
          const tokens = yield* client
            .refresh(protocol, {
              allowPrivateNetwork: call.connection.allow_private_network,
              refreshToken,
              ...(Option.isSome(context) ? { context: context.value } : {})
            })
            .pipe(
              Effect.catchIf(
                (e) => e.reason === "oauth_reauthorization_required",
                (e) => invalidGrant(call, leased.value, e)
              ),
              Effect.tapError((e) =>
                audit({
                  action: "oauth.refresh",
                  outcome: "failure",
                  error_code: e.code,
                  connector_id: call.connector.id,
                  connection_id: call.connection.id,
                  target: `${leased.value.scope}/${leased.value.name}`
                })
              )
            )
          const at = yield* Clock.currentTimeMillis
          // One sealed value: the rotated refresh token is written in the same transaction as the access token.
          yield* vault.put({
            ...leased.value,
            values: tokenValues(tokens, at, leased.value.values),
            updated_at: isoOf(at)
          })
          yield* audit({
            action: "oauth.refresh",
            outcome: "success",
            connector_id: call.connector.id,
            connection_id: call.connection.id,
            target: `${leased.value.scope}/${leased.value.name}`
          })
          return "refreshed"
        }).pipe(Effect.ensuring(Effect.ignore(store.releaseLease(leaseKey(credentialId), holder))))
      })
      return yield* lockOf(credentialId).withPermits(1)(attempt)
    })

    const beforeCall = Effect.fn("OAuth.beforeCall")(function* (call: ResolvedCall) {
      if (call.pattern?.type !== "OAUTH" || call.source._tag !== "Stored") return call
      const now = yield* Clock.currentTimeMillis
      if (!needsRefresh(call.values, now)) return call
      const outcome = yield* refreshCredential(call, "expiring")
      return outcome === "refreshed" || outcome === "rotated" ? yield* sb.resolveCall(call.connection.id) : call
    })

    const afterUnauthorized = Effect.fn("OAuth.afterUnauthorized")(function* (call: ResolvedCall) {
      if (call.pattern?.type !== "OAUTH" || call.source._tag !== "Stored") return Option.none<ResolvedCall>()
      const outcome = yield* refreshCredential(call, "unauthorized")
      return outcome === "refreshed" || outcome === "rotated"
        ? Option.some(yield* sb.resolveCall(call.connection.id))
        : Option.none<ResolvedCall>()
    })

    const afterForbidden = Effect.fn("OAuth.afterForbidden")(function* (call: ResolvedCall) {
      if (call.pattern?.type !== "OAUTH" || call.pattern.is_mcp !== true || call.baseUrl === undefined) return
      const token = call.values["access_token"]
      if (token === undefined) return
      const challenge = yield* client
        .challenge(call.baseUrl, token, { allowPrivateNetwork: call.connection.allow_private_network })
        .pipe(Effect.option)
      if (Option.isNone(challenge) || challenge.value.status !== 403 || challenge.value.error !== "insufficient_scope")
        return
      const now = yield* Clock.currentTimeMillis
      const recent = (stepUps.get(call.connection.id) ?? []).filter((t) => now - t < stepUpWindowMillis)
      const granted = splitScopes(call.values["scope"] === undefined ? undefined : Redacted.value(call.values["scope"]))
      const required = splitScopes(challenge.value.scope)
      const scopes = [...new Set([...granted, ...required])]
      if (recent.length >= stepUpLimit) {
        return yield* new OAuthError({
          reason: "oauth_insufficient_scope",
          message:
            `the MCP server still refuses connection ${call.connection.name} for lack of scope after ` +
            `${recent.length} step-up authorizations; check what the account may grant`,
          details: { connection: call.connection.id, required_scope: required.join(" ") }
        })
      }
      stepUps.set(call.connection.id, [...recent, now])
      const url = yield* authorizationUrl(call.connector.id, { connection: call.connection.id, scopes })
      return yield* new OAuthError({
        reason: "oauth_insufficient_scope",
        message:
          `the MCP server needs more scope for connection ${call.connection.name} (${required.join(" ") || "unspecified"}); ` +
          "authorize again at details.auth_url",
        details: {
          connection: call.connection.id,
          required_scope: required.join(" "),
          auth_url: url.url,
          state_expires_at: url.state_expires_at
        }
      })
    })

    const refresh = Effect.fn("OAuth.refresh")(function* (connectionRef: string) {
      const call = yield* sb.resolveCall(connectionRef)
      const outcome = yield* refreshCredential(call, "forced")
      return outcome === "refreshed"
    })

    // --- revocation -----------------------------------------------------------------------------------------------

    /** Revoke a token set's tokens where the server supports it; failures only make it false. */
    const revokeValues = Effect.fn("OAuth.revokeValues")(function* (
      connector: Connector.Connector,
      pattern: AuthPattern.AuthPattern,
      credential: Credential.Credential,
      connection: Connection.Connection | undefined,
      where: { readonly org: string; readonly workspace: string }
    ) {
      const context = yield* store.getRecord(contextKey(credential.id))
      const protocol = yield* targetOf(connector, pattern, where, () => serverUrlOf(connector, connection)).pipe(
        Effect.tapError((error) => revocationFailed(connector, error)),
        Effect.option
      )
      if (Option.isNone(protocol)) return false
      const network = { allowPrivateNetwork: connection?.allow_private_network ?? false }
      let revoked = false
      for (const hint of ["refresh_token", "access_token"] as const) {
        const token = credential.values[hint]
        if (token === undefined) continue
        const done = yield* client
          .revoke(protocol.value, {
            ...network,
            token,
            hint,
            ...(Option.isSome(context) ? { context: context.value } : {})
          })
          .pipe(
            Effect.catch((error) => Effect.as(revocationFailed(connector, error, hint), false)),
            Effect.catchDefect((defect) => Effect.as(revocationFailed(connector, defect, hint), false))
          )
        revoked = revoked || done
      }
      yield* store.deleteRecord(contextKey(credential.id))
      return revoked
    })

    const deleteCredential = Effect.fn("OAuth.deleteCredential")(function* (
      connectorRef: string,
      scope: Credential.Scope,
      name: string
    ) {
      const principal = yield* Principal.guard("credential:write", {
        scope,
        owner: (yield* Principal.CurrentPrincipal).user
      })
      const connector = yield* sb.getConnector(connectorRef)
      const pattern = oauthPattern(connector)
      let revoked = false
      if (pattern !== undefined && name !== Credential.oauthClientName) {
        const found = yield* vault.get({
          connectorId: connector.id,
          scope,
          owner: Credential.ownerFor(scope, principal),
          name
        })
        if (Option.isSome(found)) {
          // A connection using the credential gives the server URL (MCP) and whether private networks are allowed.
          const users = yield* connectionsUsing(connector.id, {
            scope,
            owner: Credential.ownerFor(scope, principal),
            name
          }).pipe(Effect.orElseSucceed(() => []))
          const via = users.find((c) => c.allow_private_network) ?? users[0]
          revoked = yield* revokeValues(connector, pattern, found.value, via, via ?? principal)
        }
      }
      yield* sb.deleteCredential(connectorRef, scope, name)
      return { revoked }
    })

    const deleteConnection = Effect.fn("OAuth.deleteConnection")(function* (connectionRef: string) {
      const principal = yield* Principal.guard("connection:write")
      const connection = yield* sb.getConnection(connectionRef)
      let revoked = false
      const found =
        connection.auth_type === "OAUTH"
          ? yield* Effect.option(connectorOf(connection.connector_id, connection))
          : Option.none()
      if (Option.isSome(found)) {
        const { connector, pattern } = found.value
        const target = tokenTarget(connection, principal)
        const allowed = Principal.authorize(principal, "credential:write", {
          scope: target.scope,
          owner: target.owner.user ?? principal.user
        }).allowed
        // Tokens another connection still uses are neither revoked nor deleted.
        const shared = allowed
          ? (yield* connectionsUsing(connection.connector_id, target, connection.id)).length > 0
          : true
        const key = { connectorId: connector.id, scope: target.scope, owner: target.owner, name: target.name }
        const stored = shared ? Option.none<Credential.Credential>() : yield* vault.get(key)
        if (Option.isSome(stored) && stored.value.auth_type === "OAUTH") {
          revoked = yield* revokeValues(connector, pattern, stored.value, connection, connection)
          yield* vault.delete(key)
        }
      }
      yield* sb.deleteConnection(connection.id)
      return { revoked }
    })

    /** The connections of a connector (but `except`) that resolve their tokens to the credential `target`. */
    const connectionsUsing = Effect.fn("OAuth.connectionsUsing")(function* (
      connectorId: string,
      target: TokenTarget,
      except?: string
    ) {
      const principal = yield* Principal.CurrentPrincipal
      const out: Array<Connection.Connection> = []
      let cursor: string | undefined
      for (;;) {
        const page = yield* sb.listConnections({
          connector: connectorId,
          limit: 100,
          ...(cursor === undefined ? {} : { cursor })
        })
        for (const other of page.data) {
          if (other.id === except) continue
          const t = tokenTarget(other, principal)
          const sameOwner =
            t.owner.org === target.owner.org &&
            t.owner.workspace === target.owner.workspace &&
            t.owner.user === target.owner.user
          if (sameOwner && t.scope === target.scope && t.name === target.name) out.push(other)
        }
        const next = page.next_cursor
        if (next === null || next === undefined) return out
        cursor = next
      }
    })

    const disconnect = Effect.fn("OAuth.disconnect")(function* (connectionRef: string) {
      const principal = yield* Principal.CurrentPrincipal
      const connection = yield* sb.getConnection(connectionRef)
      const { connector, pattern } = yield* connectorOf(connection.connector_id, connection)
      const target = tokenTarget(connection, principal)
      yield* Principal.guard("credential:write", { scope: target.scope, owner: target.owner.user ?? principal.user })
      const key = { connectorId: connector.id, scope: target.scope, owner: target.owner, name: target.name }
      const found = yield* vault.get(key)
      let revoked = false
      if (Option.isSome(found)) {
        revoked = yield* revokeValues(connector, pattern, found.value, connection, connection)
        yield* vault.delete(key)
      }
      const now = yield* Clock.currentTimeMillis
      yield* connections.setStatus(connection.org, connection.id, {
        status: "pending_auth",
        last_error: null,
        account_label: null,
        updated_at: isoOf(now)
      })
      yield* audit({
        action: "oauth.disconnect",
        outcome: "success",
        connector_id: connector.id,
        connection_id: connection.id,
        target: `${target.scope}/${target.name}`
      })
      return { revoked }
    })

    return OAuth.of({
      authorizationUrl,
      complete,
      connect,
      refresh,
      disconnect,
      deleteConnection,
      deleteCredential,
      refresher: { beforeCall, afterUnauthorized, afterForbidden }
    })
  })

const contextKey = (credentialId: string) => `token:${credentialId}`

/** Log a failed revocation: the step's error (scrubbed of tokens by the client), never a token. */
const revocationFailed = (connector: Connector.Connector, error: unknown, hint?: string) =>
  Effect.logWarning("revoking OAuth tokens failed; deleting them anyway").pipe(
    Effect.annotateLogs({
      connector: connector.name,
      ...(hint === undefined ? {} : { token_type_hint: hint }),
      error:
        error instanceof OAuthError || error instanceof ValidationFailed
          ? `${error.code}: ${error.message}`
          : "unexpected failure"
    })
  )
const leaseKey = (credentialId: string) => `refresh:${credentialId}`

const accessTokenOf = (credential: Credential.Credential): string => {
  const token = credential.values["access_token"]
  return token === undefined ? "" : Redacted.value(token)
}

const withoutTokens = (values: Credential.Values): Credential.Values =>
  Object.fromEntries(Object.entries(values).filter(([name]) => !Credential.oauthTokenFields.includes(name)))

const errorDetails = (error: OAuthError): Record<string, unknown> =>
  typeof error.details === "object" && error.details !== null ? { ...(error.details as Record<string, unknown>) } : {}

/** The OAuth service; needs the Switchboard, its stores, the `OAuthStateStore` and an `OAuthClient`. */
export const layer = (options: Options = {}) => Layer.effect(OAuth, make(options))

/** The refresh hook of the `OAuth` service, for the upstream callers' layers. */
export const refresherLayer = Layer.effect(
  OAuthRefresher.TokenRefresher,
  Effect.map(Effect.service(OAuth), (oauth) => oauth.refresher)
)
