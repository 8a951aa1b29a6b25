/**
 * The `OAuthClient` port on the MCP SDK's client auth. REST connectors: the connector's fixed endpoints become
 * authorization server metadata for the SDK's `startAuthorization` (PKCE S256), `exchangeAuthorization` and
 * `refreshAuthorization`, which pick `client_secret_basic`, `client_secret_post` or `none`; with an `issuer`
 * configured, the callback's `iss` is checked against it and its metadata (RFC 9207). MCP servers: the
 * SDK's `auth()` with an `OAuthClientProvider` that holds one flow in memory: protected resource metadata (the
 * `resource_metadata` of the server's challenge, else the path-suffixed and root well-known URLs), authorization
 * server discovery (RFC 8414 and OpenID, path-insertion variants), then the client: pre-registered credentials,
 * a client ID metadata document when the server supports it, else dynamic registration, cached sealed in the
 * `OAuthStateStore`. Scopes: the caller's, else the challenge's, else `scopes_supported`, else none. The
 * registration and discovery a flow used travel with it as its `context`, so the callback and every refresh
 * use the same client, endpoints and `resource` (sent on refresh too).
 *
 * Every request goes through the SSRF guard (resolve once, check every address, connect to the checked one).
 * Errors name the step and the server's error code, never a token, code, verifier or client secret.
 */
import {
  auth,
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  exchangeAuthorization,
  extractWWWAuthenticateParams,
  type OAuthClientProvider,
  refreshAuthorization,
  startAuthorization
} from "@modelcontextprotocol/sdk/client/auth.js"
import type {
  AuthorizationServerMetadata,
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthProtectedResourceMetadata,
  OAuthTokens
} from "@modelcontextprotocol/sdk/shared/auth.js"
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import { OAuthError, UpstreamError } from "@switchboard/core/Errors"
import {
  type ClientCredentials,
  OAuthClient,
  type Target,
  type TokenEndpointAuthMethod,
  type TokenSet
} from "@switchboard/core/OAuthClient"
import { OAuthStateStore } from "@switchboard/core/OAuthStateStore"
import { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as Ssrf from "../http/Ssrf.ts"
import { makeAgents, pinnedFetch } from "../mcp/internal/fetch.ts"
import { MIN_SECRET_LENGTH, scrubberWith } from "../internal/scrub.ts"

export interface Options {
  /** The daemon-wide local-first switch: allow loopback and private endpoints for every flow. */
  readonly allowPrivateNetwork?: boolean | undefined
  /** The `client_name` dynamic registrations use. */
  readonly clientName?: string | undefined
  /** An https URL serving this client's metadata document (used where the server supports client ID documents). */
  readonly clientMetadataUrl?: string | undefined
  /** Limit on each protocol operation; 30 seconds by default. */
  readonly timeoutMillis?: number | undefined
  /** Replaces the guarded fetch (tests only). */
  readonly fetch?: FetchLike | undefined
}

type Network = { readonly allowPrivateNetwork: boolean }
type Reason = OAuthError["reason"]

/** What a flow and a token set carry for MCP servers: the client used and what discovery found. */
interface McpContext {
  readonly client_information: OAuthClientInformationMixed
  readonly authorization_server_url: string
  readonly authorization_server_metadata?: AuthorizationServerMetadata | undefined
  readonly resource_metadata?: OAuthProtectedResourceMetadata | undefined
  readonly resource_metadata_url?: string | undefined
}

const registrationKey = (connectorId: string, serverUrl: string) => `mcp-client:${connectorId}:${serverUrl}`

/** Replace every secret of an operation in a message by `[redacted]`. */
const makeScrub = (secrets: ReadonlyArray<string | undefined>) =>
  scrubberWith("[redacted]")(
    secrets.filter((secret): secret is string => secret !== undefined && secret.length >= MIN_SECRET_LENGTH)
  )

const chainOf = (error: unknown): ReadonlyArray<unknown> => {
  const out: Array<unknown> = []
  let next: unknown = error
  while (next !== undefined && next !== null && out.length < 8 && !out.includes(next)) {
    out.push(next)
    next = typeof next === "object" && "cause" in next ? next.cause : undefined
  }
  return out
}

const oauthCodeOf = (error: unknown): string | undefined => {
  const code = (error as { readonly errorCode?: unknown } | null)?.errorCode
  return typeof code === "string" ? code : undefined
}

/** Map whatever an SDK call threw to the port's error, scrubbed. */
const toError =
  (step: string, scrub: (text: string) => string, fallback: Reason = "oauth_token_error") =>
  (cause: unknown): OAuthError => {
    if (cause instanceof OAuthError) return cause
    const chain = chainOf(cause)
    const upstream = chain.find((e): e is UpstreamError => e instanceof UpstreamError)
    if (upstream !== undefined) {
      return new OAuthError({
        reason: "oauth_token_error",
        message: scrub(`${step} failed: ${upstream.message}`),
        details: { step, upstream: upstream.reason }
      })
    }
    const first = chain[0]
    const message = first instanceof Error ? first.message : String(first)
    if (first instanceof Error && first.name === "ZodError") {
      return new OAuthError({
        reason: "oauth_metadata_invalid",
        message: scrub(
          `${step} failed: the server's answer is malformed: ${message.replace(/\s+/gu, " ").slice(0, 300)}`
        ),
        details: { step }
      })
    }
    const code = oauthCodeOf(first)
    if (code === "invalid_grant") {
      return new OAuthError({
        reason: "oauth_reauthorization_required",
        message: scrub(`${step} failed: invalid_grant${message === "" ? "" : ` (${message.slice(0, 200)})`}`),
        details: { step, error: code }
      })
    }
    if (code !== undefined) {
      return new OAuthError({
        reason: fallback,
        message: scrub(
          `${step} failed: the server answered ${code}${message === "" ? "" : ` (${message.slice(0, 200)})`}`
        ),
        details: { step, error: code }
      })
    }
    const incompatible = message.startsWith("Incompatible auth server") || message.includes("does not match expected")
    const causeCode = chain
      .map((e) => (e as { readonly code?: unknown } | null)?.code)
      .find((c): c is string => typeof c === "string")
    return new OAuthError({
      reason: incompatible ? "oauth_metadata_invalid" : fallback,
      message: scrub(`${step} failed: ${message.slice(0, 300)}${causeCode === undefined ? "" : ` (${causeCode})`}`),
      details: { step, ...(causeCode === undefined ? {} : { code: causeCode }) }
    })
  }

const clientInformation = (client: ClientCredentials): OAuthClientInformationMixed => ({
  client_id: client.client_id,
  ...(client.client_secret === undefined ? {} : { client_secret: Redacted.value(client.client_secret) })
})

/** A REST connector's endpoints as the authorization server metadata the SDK helpers take. */
const restMetadata = (endpoints: Extract<Target, { _tag: "Rest" }>["endpoints"]): AuthorizationServerMetadata => ({
  issuer: new URL(endpoints.authorize_uri).origin,
  authorization_endpoint: endpoints.authorize_uri,
  token_endpoint: endpoints.token_uri,
  response_types_supported: ["code"],
  code_challenge_methods_supported: ["S256"],
  ...(endpoints.token_endpoint_auth_method === undefined
    ? {}
    : { token_endpoint_auth_methods_supported: [endpoints.token_endpoint_auth_method] }),
  ...(endpoints.revoke_uri === undefined ? {} : { revocation_endpoint: endpoints.revoke_uri })
})

/**
 * RFC 9207: the callback's `iss` against the authorization server's metadata. Required where the metadata says
 * `authorization_response_iss_parameter_supported`; when given, it must be the metadata's `issuer` exactly.
 */
export const checkIssuer = (
  metadata: AuthorizationServerMetadata | undefined,
  iss: string | undefined
): OAuthError | undefined => {
  if (metadata === undefined) return undefined
  const fields = metadata as Readonly<Record<string, unknown>>
  const required = fields["authorization_response_iss_parameter_supported"] === true
  if (iss === undefined) {
    return required
      ? new OAuthError({
          reason: "oauth_state_invalid",
          message:
            "the callback has no iss parameter, which this authorization server always sends (RFC 9207); " +
            "start the authorization again",
          details: { expected_issuer: metadata.issuer }
        })
      : undefined
  }
  if (iss === metadata.issuer) return undefined
  return new OAuthError({
    reason: "oauth_state_invalid",
    message:
      "the callback's iss is not the issuer of the authorization server this flow started with (RFC 9207 mix-up " +
      "protection); start the authorization again",
    details: { expected_issuer: metadata.issuer, iss: iss.replace(/[^\x20-\x7e]/gu, "?").slice(0, 200) }
  })
}

const toTokenSet = (tokens: OAuthTokens): TokenSet => ({
  access_token: Redacted.make(tokens.access_token),
  ...(tokens.refresh_token === undefined ? {} : { refresh_token: Redacted.make(tokens.refresh_token) }),
  ...(tokens.id_token === undefined ? {} : { id_token: Redacted.make(tokens.id_token) }),
  ...(tokens.token_type === undefined ? {} : { token_type: tokens.token_type }),
  ...(tokens.expires_in === undefined ? {} : { expires_in: tokens.expires_in }),
  ...(tokens.scope === undefined ? {} : { scope: tokens.scope })
})

/** The method the SDK would choose, for revocation requests (which the SDK does not make). */
const authMethodOf = (
  client: OAuthClientInformationMixed,
  supported: ReadonlyArray<string> | undefined
): TokenEndpointAuthMethod => {
  const hasSecret = client.client_secret !== undefined
  const list = supported ?? []
  if (list.length === 0) return hasSecret ? "client_secret_basic" : "none"
  if (hasSecret && list.includes("client_secret_basic")) return "client_secret_basic"
  if (hasSecret && list.includes("client_secret_post")) return "client_secret_post"
  return list.includes("none") || !hasSecret ? "none" : "client_secret_post"
}

const label = (info: unknown): string | undefined => {
  if (typeof info !== "object" || info === null) return undefined
  const record = info as Record<string, unknown>
  const nested = record["data"]
  if (typeof nested === "object" && nested !== null && !Array.isArray(nested)) {
    const inner = label(nested)
    if (inner !== undefined) return inner
  }
  for (const key of ["email", "preferred_username", "login", "username", "name", "sub", "id"]) {
    const value = record[key]
    if (typeof value === "string" && value !== "") return value.slice(0, 200)
    if (typeof value === "number") return String(value)
  }
  return undefined
}

const initializeBody = JSON.stringify({
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: {
    protocolVersion: "2025-11-25",
    capabilities: {},
    clientInfo: { name: "switchboard", version: "0.1.0" }
  }
})

/** Build the service; it captures the `Resolver` and the `OAuthStateStore`. */
export const make = (options: Options = {}) =>
  Effect.gen(function* () {
    const resolver = yield* Resolver
    const store = yield* OAuthStateStore
    const timeoutMillis = options.timeoutMillis ?? 30_000
    const clientName = options.clientName ?? "Switchboard"

    /** Run `f` with a guarded fetch whose sockets live as long as the operation. */
    const withFetch = <A>(
      network: Network,
      step: string,
      scrub: (text: string) => string,
      f: (fetch: FetchLike) => Promise<A>,
      fallback: Reason = "oauth_token_error"
    ): Effect.Effect<A, OAuthError> =>
      Effect.acquireUseRelease(
        Effect.sync(makeAgents),
        (agents) => {
          const base =
            options.fetch ??
            pinnedFetch({
              resolver,
              allowPrivateNetwork: network.allowPrivateNetwork || options.allowPrivateNetwork === true,
              agents
            })
          // The SDK posts URLSearchParams; the guarded fetch takes strings and bytes.
          const fetch: FetchLike = (input, init) =>
            base(input, init?.body instanceof URLSearchParams ? { ...init, body: init.body.toString() } : init)
          return Effect.tryPromise({ try: () => f(fetch), catch: toError(step, scrub, fallback) })
        },
        (agents) => Effect.sync(() => agents.destroy())
      ).pipe(
        Effect.timeoutOrElse({
          duration: timeoutMillis,
          orElse: () =>
            Effect.fail(
              new OAuthError({
                reason: "oauth_token_error",
                message: `${step} timed out after ${timeoutMillis} ms`,
                details: { step }
              })
            )
        })
      )

    const parseContext = (context: Redacted.Redacted<string> | undefined, step: string) =>
      Effect.try({
        try: () => (context === undefined ? undefined : (JSON.parse(Redacted.value(context)) as McpContext)),
        catch: () => new OAuthError({ reason: "oauth_token_error", message: `${step}: the stored flow is unreadable` })
      })

    const newSecret = Effect.sync(() => Redacted.make(randomBytes(32).toString("base64url")))

    // --- MCP ----------------------------------------------------------------------------------------------------

    const clientMetadata = (redirectUri: string): OAuthClientMetadata => ({
      client_name: clientName,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none"
    })

    /** What an MCP server answers a request (with a token or without): status and challenge. */
    const probe = (serverUrl: string, token: Redacted.Redacted<string> | undefined, network: Network) =>
      withFetch(
        network,
        "asking the MCP server for its challenge",
        makeScrub([token && Redacted.value(token)]),
        async (fetch) => {
          const headers: Record<string, string> = {
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
            "mcp-protocol-version": "2025-11-25"
          }
          if (token !== undefined) headers["authorization"] = `Bearer ${Redacted.value(token)}`
          const response = await fetch(serverUrl, { method: "POST", headers, body: initializeBody })
          await response.body?.cancel().catch(() => undefined)
          const challenge = extractWWWAuthenticateParams(response)
          return { status: response.status, ...challenge }
        }
      )

    const mcpAuthorize = Effect.fn("OAuthClient.mcpAuthorize")(function* (
      target: Extract<Target, { _tag: "Mcp" }>,
      request: Parameters<OAuthClient["Service"]["authorize"]>[1]
    ) {
      const network = { allowPrivateNetwork: request.allowPrivateNetwork }
      const scrub = makeScrub([
        request.state,
        target.client?.client_secret && Redacted.value(target.client.client_secret)
      ])
      const challenge = yield* probe(target.serverUrl, undefined, network)
      // RFC 9728: the challenge's resource_metadata, else the path-suffixed then root well-known URLs. A 404
      // everywhere is the 2025-03-26 revision: the server's origin is the authorization server.
      const resourceMetadataUrl = challenge.resourceMetadataUrl?.href
      const resourceMetadata = yield* withFetch(
        network,
        "reading the MCP server's protected resource metadata",
        scrub,
        (fetch) =>
          discoverOAuthProtectedResourceMetadata(
            target.serverUrl,
            resourceMetadataUrl === undefined ? {} : { resourceMetadataUrl },
            fetch
          ).catch((error: unknown) => {
            if (error instanceof Error && error.message.startsWith("Resource server does not implement"))
              return undefined
            throw error
          }),
        "oauth_metadata_invalid"
      )
      const authorizationServerUrl =
        resourceMetadata?.authorization_servers?.[0] ?? String(new URL("/", target.serverUrl))
      // The SDK builds the well-known URLs from this URL's origin, which drops user info: vet the URL itself here
      // (scheme, user info), or `http://a@127.0.0.1/` would reach loopback as `http://127.0.0.1/.well-known/…`.
      yield* Effect.fromResult(Ssrf.parseTarget(authorizationServerUrl)).pipe(
        Effect.mapError(toError("reading the authorization server named by the protected resource metadata", scrub))
      )
      const cached =
        target.client === undefined
          ? yield* store.getRecord(registrationKey(target.connectorId, target.serverUrl)).pipe(
              Effect.map(Option.map((r) => JSON.parse(Redacted.value(r)) as OAuthClientInformationMixed)),
              Effect.orElseSucceed(() => Option.none<OAuthClientInformationMixed>())
            )
          : Option.none<OAuthClientInformationMixed>()
      const captured: {
        client?: OAuthClientInformationMixed
        registered?: OAuthClientInformationMixed
        url?: URL
        verifier?: string
        metadata?: AuthorizationServerMetadata | undefined
      } = {}
      if (target.client !== undefined) captured.client = clientInformation(target.client)
      else if (Option.isSome(cached)) captured.client = cached.value
      const provider: OAuthClientProvider = {
        get redirectUrl() {
          return request.redirectUri
        },
        get clientMetadata() {
          return clientMetadata(request.redirectUri)
        },
        ...(options.clientMetadataUrl === undefined ? {} : { clientMetadataUrl: options.clientMetadataUrl }),
        state: () => request.state,
        clientInformation: () => captured.client,
        saveClientInformation: (info) => {
          captured.client = info
          captured.registered = info
        },
        tokens: () => undefined,
        saveTokens: () => undefined,
        redirectToAuthorization: (url) => {
          captured.url = url
        },
        saveCodeVerifier: (verifier) => {
          captured.verifier = verifier
        },
        codeVerifier: () => captured.verifier ?? "",
        invalidateCredentials: (scope) => {
          if (scope === "all" || scope === "client") {
            delete captured.client
            delete captured.registered
          }
        },
        discoveryState: () => ({
          authorizationServerUrl,
          ...(resourceMetadata === undefined ? {} : { resourceMetadata }),
          ...(resourceMetadataUrl === undefined ? {} : { resourceMetadataUrl })
        }),
        saveDiscoveryState: (state) => {
          captured.metadata = state.authorizationServerMetadata
        }
      }
      const scope = request.scopes.length > 0 ? request.scopes.join(" ") : challenge.scope
      const result = yield* withFetch(
        network,
        "starting the MCP authorization (discovery and client registration)",
        scrub,
        (fetch) =>
          auth(provider, {
            serverUrl: target.serverUrl,
            ...(scope === undefined ? {} : { scope }),
            ...(challenge.resourceMetadataUrl === undefined
              ? {}
              : { resourceMetadataUrl: challenge.resourceMetadataUrl }),
            fetchFn: fetch
          })
      )
      if (
        result !== "REDIRECT" ||
        captured.url === undefined ||
        captured.verifier === undefined ||
        captured.client === undefined
      ) {
        return yield* new OAuthError({
          reason: "oauth_metadata_invalid",
          message: "the MCP authorization did not produce an authorization URL",
          details: { step: "authorize" }
        })
      }
      if (captured.registered !== undefined && target.client === undefined) {
        yield* Effect.ignore(
          store.putRecord(
            registrationKey(target.connectorId, target.serverUrl),
            Redacted.make(JSON.stringify(captured.registered))
          )
        )
      }
      const context: McpContext = {
        client_information: captured.client,
        authorization_server_url: authorizationServerUrl,
        ...(captured.metadata === undefined ? {} : { authorization_server_metadata: captured.metadata }),
        ...(resourceMetadata === undefined ? {} : { resource_metadata: resourceMetadata }),
        ...(resourceMetadataUrl === undefined ? {} : { resource_metadata_url: resourceMetadataUrl })
      }
      const scopes = (captured.url.searchParams.get("scope") ?? "").split(" ").filter((s) => s !== "")
      return {
        url: captured.url.href,
        codeVerifier: Redacted.make(captured.verifier),
        scopes,
        context: Redacted.make(JSON.stringify(context))
      }
    })

    const mcpExchange = Effect.fn("OAuthClient.mcpExchange")(function* (
      target: Extract<Target, { _tag: "Mcp" }>,
      request: Parameters<OAuthClient["Service"]["exchange"]>[1]
    ) {
      const context = yield* parseContext(request.context, "completing the MCP authorization")
      if (context === undefined) {
        return yield* new OAuthError({ reason: "oauth_token_error", message: "the MCP flow has no registration" })
      }
      // RFC 9207: a server that says it names itself in authorization responses must have; a name is the issuer's.
      const metadata = yield* mcpMetadata(
        context,
        request,
        makeScrub([request.code, Redacted.value(request.codeVerifier), context.client_information.client_secret])
      )
      const issuerCheck = checkIssuer(metadata, request.iss)
      if (issuerCheck !== undefined) return yield* issuerCheck
      const captured: { tokens?: OAuthTokens; client: OAuthClientInformationMixed } = {
        client: context.client_information
      }
      const provider: OAuthClientProvider = {
        get redirectUrl() {
          return request.redirectUri
        },
        get clientMetadata() {
          return clientMetadata(request.redirectUri)
        },
        clientInformation: () => captured.client,
        saveClientInformation: (info) => {
          captured.client = info
        },
        tokens: () => undefined,
        saveTokens: (tokens) => {
          captured.tokens = tokens
        },
        redirectToAuthorization: () => undefined,
        saveCodeVerifier: () => undefined,
        codeVerifier: () => Redacted.value(request.codeVerifier),
        discoveryState: () => ({
          authorizationServerUrl: context.authorization_server_url,
          ...(context.authorization_server_metadata === undefined
            ? {}
            : { authorizationServerMetadata: context.authorization_server_metadata }),
          ...(context.resource_metadata === undefined ? {} : { resourceMetadata: context.resource_metadata }),
          ...(context.resource_metadata_url === undefined ? {} : { resourceMetadataUrl: context.resource_metadata_url })
        })
      }
      const scrub = makeScrub([request.code, Redacted.value(request.codeVerifier), captured.client.client_secret])
      yield* withFetch(
        request,
        "exchanging the authorization code with the MCP server's authorization server",
        scrub,
        (fetch) => auth(provider, { serverUrl: target.serverUrl, authorizationCode: request.code, fetchFn: fetch })
      )
      if (captured.tokens === undefined) {
        return yield* new OAuthError({ reason: "oauth_token_error", message: "the token endpoint returned no tokens" })
      }
      const kept: McpContext = { ...context, client_information: captured.client }
      return { tokens: toTokenSet(captured.tokens), context: Redacted.make(JSON.stringify(kept)) }
    })

    /** The resource indicator of an MCP flow: the metadata's `resource` verbatim (as `auth()` sends it). */
    const resourceOf = (context: McpContext) => context.resource_metadata?.resource

    const mcpMetadata = (context: McpContext, network: Network, scrub: (text: string) => string) =>
      context.authorization_server_metadata === undefined
        ? withFetch(
            network,
            "reading the authorization server metadata",
            scrub,
            (fetch) => discoverAuthorizationServerMetadata(context.authorization_server_url, { fetchFn: fetch }),
            "oauth_metadata_invalid"
          )
        : Effect.succeed(context.authorization_server_metadata)

    // --- the port ---------------------------------------------------------------------------------------------------

    const authorize: OAuthClient["Service"]["authorize"] = (target, request) => {
      if (target._tag === "Mcp") return mcpAuthorize(target, request)
      const scrub = makeScrub([
        request.state,
        target.client.client_secret && Redacted.value(target.client.client_secret)
      ])
      return Effect.tryPromise({
        try: () =>
          startAuthorization(target.endpoints.authorize_uri, {
            metadata: restMetadata(target.endpoints),
            clientInformation: clientInformation(target.client),
            redirectUrl: request.redirectUri,
            state: request.state,
            ...(request.scopes.length === 0 ? {} : { scope: request.scopes.join(" ") })
          }),
        catch: toError("building the authorization URL", scrub, "oauth_metadata_invalid")
      }).pipe(
        Effect.map(({ authorizationUrl, codeVerifier }) => ({
          url: authorizationUrl.href,
          codeVerifier: Redacted.make(codeVerifier),
          scopes: request.scopes
        }))
      )
    }

    /**
     * RFC 9207 for a REST connector with a configured `issuer`: its metadata (RFC 8414 or OpenID discovery, where the
     * server publishes one, and then naming that same issuer) says whether `iss` is always sent; a given `iss` must
     * be the issuer. Checked before the code is exchanged, so a refused callback exchanges nothing.
     */
    const restIssuerCheck = (
      endpoints: Extract<Target, { _tag: "Rest" }>["endpoints"],
      request: Parameters<OAuthClient["Service"]["exchange"]>[1],
      scrub: (text: string) => string
    ): Effect.Effect<void, OAuthError> => {
      const issuer = endpoints.issuer
      if (issuer === undefined) return Effect.void
      const step = "reading the authorization server metadata of the configured issuer"
      // As for MCP discovery: the well-known URLs are built from the origin, so vet the issuer URL itself first.
      return Effect.fromResult(Ssrf.parseTarget(issuer)).pipe(
        Effect.mapError(toError(step, scrub)),
        Effect.andThen(
          withFetch(
            request,
            step,
            scrub,
            (fetch) => discoverAuthorizationServerMetadata(issuer, { fetchFn: fetch }),
            "oauth_metadata_invalid"
          )
        ),
        Effect.flatMap((metadata) => {
          if (metadata !== undefined && metadata.issuer !== issuer) {
            return Effect.fail(
              new OAuthError({
                reason: "oauth_metadata_invalid",
                message:
                  "the authorization server's metadata names another issuer than the connector's oauth_config.issuer " +
                  "(RFC 8414); fix the connector's issuer",
                details: {
                  expected_issuer: issuer,
                  issuer: metadata.issuer.replace(/[^\x20-\x7e]/gu, "?").slice(0, 200)
                }
              })
            )
          }
          const refused = checkIssuer(metadata ?? { ...restMetadata(endpoints), issuer }, request.iss)
          return refused === undefined ? Effect.void : Effect.fail(refused)
        })
      )
    }

    const exchange: OAuthClient["Service"]["exchange"] = (target, request) => {
      if (target._tag === "Mcp") return mcpExchange(target, request)
      const scrub = makeScrub([
        request.code,
        Redacted.value(request.codeVerifier),
        target.client.client_secret && Redacted.value(target.client.client_secret)
      ])
      return restIssuerCheck(target.endpoints, request, scrub).pipe(
        Effect.andThen(
          withFetch(request, "exchanging the authorization code", scrub, (fetch) =>
            exchangeAuthorization(target.endpoints.authorize_uri, {
              metadata: restMetadata(target.endpoints),
              clientInformation: clientInformation(target.client),
              authorizationCode: request.code,
              codeVerifier: Redacted.value(request.codeVerifier),
              redirectUri: request.redirectUri,
              fetchFn: fetch
            })
          )
        ),
        Effect.map((tokens) => ({ tokens: toTokenSet(tokens) }))
      )
    }

    const refresh: OAuthClient["Service"]["refresh"] = Effect.fn("OAuthClient.refresh")(function* (target, request) {
      const refreshToken = Redacted.value(request.refreshToken)
      if (target._tag === "Rest") {
        const scrub = makeScrub([
          refreshToken,
          target.client.client_secret && Redacted.value(target.client.client_secret)
        ])
        const tokens = yield* withFetch(request, "refreshing the access token", scrub, (fetch) =>
          refreshAuthorization(target.endpoints.authorize_uri, {
            metadata: restMetadata(target.endpoints),
            clientInformation: clientInformation(target.client),
            refreshToken,
            fetchFn: fetch
          })
        )
        return toTokenSet(tokens)
      }
      const context = yield* parseContext(request.context, "refreshing the access token")
      if (context === undefined) {
        return yield* new OAuthError({
          reason: "oauth_reauthorization_required",
          message: "refreshing the access token failed: the registration these tokens were issued to is unknown"
        })
      }
      const scrub = makeScrub([refreshToken, context.client_information.client_secret])
      const metadata = yield* mcpMetadata(context, request, scrub)
      const resource = resourceOf(context)
      const tokens = yield* withFetch(request, "refreshing the access token", scrub, (fetch) =>
        refreshAuthorization(context.authorization_server_url, {
          ...(metadata === undefined ? {} : { metadata }),
          clientInformation: context.client_information,
          refreshToken,
          ...(resource === undefined ? {} : { resource }),
          fetchFn: fetch
        })
      )
      return toTokenSet(tokens)
    })

    const revoke: OAuthClient["Service"]["revoke"] = Effect.fn("OAuthClient.revoke")(function* (target, request) {
      let endpoint: string | undefined
      let client: OAuthClientInformationMixed
      let supported: ReadonlyArray<string> | undefined
      if (target._tag === "Rest") {
        endpoint = target.endpoints.revoke_uri
        client = clientInformation(target.client)
        supported =
          target.endpoints.token_endpoint_auth_method === undefined
            ? undefined
            : [target.endpoints.token_endpoint_auth_method]
      } else {
        const context = yield* parseContext(request.context, "revoking the token")
        if (context === undefined) return false
        const metadata = yield* mcpMetadata(context, request, makeScrub([Redacted.value(request.token)]))
        // OpenID metadata has no revocation members in the SDK's types; they are RFC 8414's, read as such.
        const fields = (metadata ?? {}) as Readonly<Record<string, unknown>>
        const listed = fields["revocation_endpoint_auth_methods_supported"]
        endpoint = typeof fields["revocation_endpoint"] === "string" ? fields["revocation_endpoint"] : undefined
        client = context.client_information
        supported = Array.isArray(listed)
          ? listed.filter((m): m is string => typeof m === "string")
          : metadata?.token_endpoint_auth_methods_supported
      }
      if (endpoint === undefined) return false
      const token = Redacted.value(request.token)
      const scrub = makeScrub([token, client.client_secret])
      const method = authMethodOf(client, supported)
      return yield* withFetch(request, "revoking the token", scrub, async (fetch) => {
        const params = new URLSearchParams({ token, token_type_hint: request.hint })
        const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" }
        if (method === "client_secret_basic") {
          headers["authorization"] = `Basic ${btoa(`${client.client_id}:${client.client_secret ?? ""}`)}`
        } else {
          params.set("client_id", client.client_id)
          if (method === "client_secret_post" && client.client_secret !== undefined) {
            params.set("client_secret", client.client_secret)
          }
        }
        const response = await fetch(endpoint, { method: "POST", headers, body: params.toString() })
        await response.body?.cancel().catch(() => undefined)
        // RFC 7009: 200 for a revoked or an unknown token alike.
        if (!response.ok) throw new Error(`the revocation endpoint answered HTTP ${response.status}`)
        return true
      })
    })

    const userInfo: OAuthClient["Service"]["userInfo"] = (url, accessToken, network) =>
      withFetch(
        network,
        "reading the account from user_info_uri",
        makeScrub([Redacted.value(accessToken)]),
        async (fetch) => {
          const response = await fetch(url, {
            headers: { authorization: `Bearer ${Redacted.value(accessToken)}`, accept: "application/json" }
          })
          if (!response.ok) {
            await response.body?.cancel().catch(() => undefined)
            throw new Error(`the user info endpoint answered HTTP ${response.status}`)
          }
          return Option.fromUndefinedOr(label(await response.json()))
        }
      )

    const challenge: OAuthClient["Service"]["challenge"] = (serverUrl, accessToken, network) =>
      Effect.map(probe(serverUrl, accessToken, network), (c) => ({
        status: c.status,
        ...(c.error === undefined ? {} : { error: c.error }),
        ...(c.scope === undefined ? {} : { scope: c.scope })
      }))

    return OAuthClient.of({ newSecret, authorize, exchange, refresh, revoke, userInfo, challenge })
  })

/** The OAuth client on the SDK; needs the `Resolver` (SSRF guard) and the `OAuthStateStore` (registrations). */
export const layer = (options: Options = {}): Layer.Layer<OAuthClient, never, Resolver | OAuthStateStore> =>
  Layer.effect(OAuthClient, make(options))
