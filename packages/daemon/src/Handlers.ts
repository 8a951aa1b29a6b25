/**
 * The handlers of the REST API: each endpoint calls the `Switchboard` service with the raw JSON body (the
 * service is the one place bodies are validated) and maps its typed errors to the API's error responses, each
 * with its own status. A defect becomes a 500 `internal_error` in the same shape and is logged, never shown.
 */
import * as Api from "@switchboard/core/Api"
import * as Explain from "@switchboard/core/Explain"
import * as OAuth from "@switchboard/core/OAuth"
import type { SwitchboardError } from "@switchboard/core/Errors"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { HttpApiBuilder } from "effect/http-api"
// Tools (calls)
import type * as Connection from "@switchboard/core/Connection"
import type { CallOptions, McpTool, McpToolResult } from "@switchboard/core/McpUpstream"
import * as Principal from "@switchboard/core/Principal"
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Tools from "@switchboard/core/Tools"
import * as Validation from "@switchboard/core/Validation"
import { HttpEffect, HttpServerResponse } from "effect/http"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
// Connection tests
import * as Testing from "@switchboard/core/Testing"
import * as Schema from "effect/Schema"
import * as ApiKeys from "./ApiKeys.ts"
import { EventsLive } from "./Events.ts"
import * as Web from "./web/Web.ts"

/** Run a service call for a handler: typed errors → API errors, defects → 500 `internal_error`. */
export const run = <A, R>(effect: Effect.Effect<A, SwitchboardError, R>): Effect.Effect<A, Api.ApiError, R> =>
  effect.pipe(
    Effect.mapError(Api.fromSwitchboardError),
    Effect.catchDefect((defect) =>
      Effect.logError("request failed with a defect", Cause.die(defect)).pipe(
        Effect.andThen(Effect.fail(Api.makeError(500, "internal_error", "internal error; see the daemon log")))
      )
    )
  )

export const ConnectorsLive = HttpApiBuilder.group(
  Api.Api,
  "connectors",
  Effect.fn(function* (handlers) {
    const sb = yield* Switchboard.Switchboard
    return handlers.handleAll({
      list: ({ query }) => run(sb.listConnectors(query)),
      create: ({ payload }) => run(sb.createConnector(payload)),
      get: ({ params }) => run(sb.getConnector(params.id_or_name)),
      update: ({ params, payload }) => run(sb.updateConnector(params.id, payload)),
      remove: ({ params }) => run(sb.deleteConnector(params.id)),
      authenticationMethods: ({ params }) => run(sb.authenticationMethods(params.id_or_name)),
      getVersion: ({ params }) => run(sb.getConnectorVersion(params.id_or_name, params.version))
    })
  })
)

export const CredentialsLive = HttpApiBuilder.group(
  Api.Api,
  "credentials",
  Effect.fn(function* (handlers) {
    const sb = yield* Switchboard.Switchboard
    // With OAuth, deleting a credential revokes its tokens first where the server supports it.
    const oauth = yield* Effect.serviceOption(OAuth.OAuth)
    return handlers.handleAll({
      list: ({ params }) =>
        run(sb.listCredentials(params.id_or_name, params.scope)).pipe(Effect.map((data) => ({ data }))),
      set: ({ params, payload }) => run(sb.setCredential(params.id_or_name, params.scope, payload)),
      remove: ({ params }) =>
        run(
          Option.match(oauth, {
            onNone: () => sb.deleteCredential(params.id_or_name, params.scope, params.name),
            onSome: (o) => Effect.asVoid(o.deleteCredential(params.id_or_name, params.scope, params.name))
          })
        )
    })
  })
)

/**
 * The API's answer to a created connection: the connection, with `oauth` when it needs an authorization. `pages`
 * false (a caller on the TCP listener): no connector page URL, which is on this host's loopback and carries its
 * dashboard secret; remote callers open `auth_url`.
 */
export const createdView = (
  connected: OAuth.Connected,
  options: { readonly pages?: boolean } = {}
): Api.CreatedConnection =>
  connected.status === "created"
    ? connected.connection
    : {
        ...connected.connection,
        oauth: {
          status: "oauth2_required",
          auth_url: connected.auth_url,
          state_expires_at: connected.state_expires_at,
          // The daemon's connect page for this connection; null where no browser listener serves pages.
          connector_page_url: options.pages === false ? null : Web.connectorPageUrl(connected.connection.id),
          login_command: connected.login_command,
          message: connected.message
        }
      }

export const ConnectionsLive = HttpApiBuilder.group(
  Api.Api,
  "connections",
  Effect.fn(function* (handlers) {
    const sb = yield* Switchboard.Switchboard
    // With OAuth: a connection that needs an authorization says so, and deleting one revokes its tokens first.
    const oauth = yield* Effect.serviceOption(OAuth.OAuth)
    return handlers.handleAll({
      create: ({ params, payload }) =>
        run(
          Option.match(oauth, {
            onNone: () => sb.createConnection(params.id_or_name, payload),
            onSome: (o) =>
              Effect.flatMap(o.connect(params.id_or_name, payload), (connected) =>
                Effect.map(ApiKeys.Authenticated, (key) => createdView(connected, { pages: key === undefined }))
              )
          })
        ),
      list: ({ query }) => run(sb.listConnections(query)),
      get: ({ params }) => run(sb.getConnection(params.id)),
      remove: ({ params }) =>
        run(
          Option.match(oauth, {
            onNone: () => sb.deleteConnection(params.id),
            onSome: (o) => Effect.asVoid(o.deleteConnection(params.id))
          })
        )
    })
  })
)

// ---------------------------------------------------------------------------------------------------------------
// Connection tests

/** A 429 or 503 that says when to come back (`details.retry_after_seconds`) also says it as `Retry-After`. */
export const withRetryAfter = <A, R>(effect: Effect.Effect<A, Api.ApiError, R>) =>
  Effect.tapError(effect, (error) => {
    const details = error.error.details
    const wait =
      typeof details === "object" && details !== null && "retry_after_seconds" in details
        ? details.retry_after_seconds
        : undefined
    return typeof wait === "number"
      ? HttpEffect.appendPreResponseHandler((_request, response) =>
          Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", String(wait)))
        )
      : Effect.void
  })

const testsUnavailable = Api.makeError(
  500,
  "calls_unavailable",
  "this server was built without connection tests (Layers.withCalls)"
)

const isTestRequest = Schema.is(Api.TestRequest)

/**
 * `POST /v1/connections/{id}/test` and the seed-compatible `POST /v1/connectors/test` (`{"id": …}`; without a
 * usable id, 400 `invalid_parameter`). `ConnectionTests` comes from the server's context, which `Daemon.run` builds
 * with `Layers.withCalls`; without it the endpoints answer 500 `calls_unavailable`.
 */
export const CallsLive = HttpApiBuilder.group(
  Api.Api,
  "calls",
  Effect.fn(function* (handlers) {
    const found = yield* Effect.serviceOption(Testing.ConnectionTests)
    const test = (ref: string) =>
      Option.match(found, {
        onNone: () => Effect.fail(testsUnavailable),
        onSome: (tests) => run(tests.test(ref))
      }).pipe(withRetryAfter)
    return handlers.handleAll({
      test: ({ params }) => test(params.id),
      testById: ({ payload }) =>
        isTestRequest(payload) && payload.id !== ""
          ? test(payload.id)
          : Effect.fail(
              Api.makeError(400, "invalid_parameter", 'give the connection to test as {"id": "conn_…"}', {
                parameter: "id"
              })
            )
    })
  })
)

// ---------------------------------------------------------------------------------------------------------------
// Tools

type Defined<A> = { [K in keyof A]: Exclude<A[K], undefined> }

/** Optional members without `undefined` values, so the response schemas (exact optional keys) accept them. */
const defined = <A extends object>(value: A): Defined<A> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Defined<A>

const toolView = (tool: McpTool): Api.ToolSchema => defined({ ...tool })
const resultView = (result: McpToolResult): Api.ToolResult => defined({ ...result })

/** Every connection the caller can see, page by page (the list endpoint caps a page at 100). */
const allConnections = Effect.fn("Handlers.allConnections")(function* (
  sb: Switchboard.Switchboard["Service"],
  connectorId: string
) {
  const out: Array<Connection.Connection> = []
  let cursor: string | undefined
  do {
    const page = yield* sb.listConnections({ connector: connectorId, limit: 100, ...(cursor ? { cursor } : {}) })
    out.push(...page.data)
    cursor = page.next_cursor ?? undefined
  } while (cursor !== undefined)
  return out
})

/**
 * The connection a tool request goes through: the one named (it must be a connection to this connector), else the
 * caller's only connection to the connector; with none or several, 422 `connection_required` naming the candidates.
 */
export const chooseConnection = (
  sb: Switchboard.Switchboard["Service"],
  connectorRef: string,
  given: string | undefined
): Effect.Effect<Connection.Connection, Api.ApiError> =>
  Effect.gen(function* () {
    const connector = yield* run(sb.getConnector(connectorRef))
    if (given !== undefined) {
      const connection = yield* run(sb.getConnection(given))
      if (connection.connector_id !== connector.id) {
        return yield* Api.makeError(
          400,
          "invalid_parameter",
          `connection ${connection.name} is not a connection to connector ${connector.name}`,
          { parameter: "connection", connector: connector.name, connection: connection.id }
        )
      }
      return connection
    }
    const candidates = yield* run(allConnections(sb, connector.id))
    const only = candidates.length === 1 ? candidates[0] : undefined
    if (only !== undefined) return only
    const names = candidates.map((c) => ({ id: c.id, name: c.name, status: c.status }))
    return yield* Api.makeError(
      422,
      "connection_required",
      candidates.length === 0
        ? `you have no connection to connector ${connector.name}; create one (switchboard connect ${connector.name} --name …)`
        : `you have ${candidates.length} connections to connector ${connector.name}; say which with connection: ${candidates
            .map((c) => c.name)
            .join(", ")}`,
      { connector: connector.name, candidates: names }
    )
  })

const callsUnavailable = Api.makeError(
  500,
  "calls_unavailable",
  "this server was built without the calling services (Layers.withCalls)"
)

const ndjsonLine = (event: Api.ToolCallEvent): Uint8Array => new TextEncoder().encode(`${JSON.stringify(event)}\n`)

/** The last line of a streamed call that failed: the error body and its status. */
const errorEvent = (cause: Cause.Cause<SwitchboardError>): Effect.Effect<Api.ToolCallEvent> => {
  const error = Cause.findErrorOption(cause)
  if (error._tag === "Some") {
    return Effect.succeed({ error: Api.fromSwitchboardError(error.value).error, status: error.value.status })
  }
  return Effect.as(Effect.logError("a streamed tool call failed with a defect", cause), {
    error: { code: "internal_error", message: "internal error; see the daemon log" },
    status: 500
  })
}

/**
 * A tool call answered as NDJSON: each progress notification as it arrives, then the result or the error. The call
 * runs while the response streams, so the caller's principal is carried over explicitly; when the client goes away
 * the stream is interrupted and so is the call, which cancels it upstream.
 */
const streamedCall = (
  tools: Tools.Tools["Service"],
  connection: string,
  tool: string,
  args: Readonly<Record<string, unknown>>,
  options: CallOptions,
  principal: Principal.Principal
) =>
  HttpServerResponse.stream(
    Stream.callback<Uint8Array>((queue) =>
      tools
        .callTool(connection, tool, args, {
          ...options,
          onProgress: (p) => {
            Queue.offerUnsafe(queue, ndjsonLine({ progress: defined({ ...p }) }))
          }
        })
        .pipe(
          Effect.matchCauseEffect({
            onSuccess: (result) => Effect.succeed<Api.ToolCallEvent>({ result: resultView(result) }),
            onFailure: errorEvent
          }),
          Effect.flatMap((last) => Queue.offer(queue, ndjsonLine(last))),
          Effect.andThen(Queue.end(queue)),
          Effect.provideService(Principal.CurrentPrincipal, principal)
        )
    ),
    { contentType: Api.ndjson, headers: { "cache-control": "no-store" } }
  )

/**
 * The MCP tool endpoints. `Tools` comes from the server's context, which `Daemon.run` builds with
 * `Layers.withCalls`; a server built with the `Switchboard` service alone answers 500 `calls_unavailable`.
 */
export const ToolsLive = HttpApiBuilder.group(
  Api.Api,
  "tools",
  Effect.fn(function* (handlers) {
    const sb = yield* Switchboard.Switchboard
    const found = yield* Effect.serviceOption(Tools.Tools)
    const tools = Option.match(found, { onNone: () => Effect.fail(callsUnavailable), onSome: Effect.succeed })
    return handlers.handleAll({
      list: ({ params, query }) =>
        Effect.gen(function* () {
          const t = yield* tools
          const connection = yield* chooseConnection(sb, params.id_or_name, query.connection)
          const data = yield* run(t.listTools(connection.id))
          return { connection: connection.id, data: data.map(toolView) }
        }),
      call: ({ params, payload, request }) =>
        Effect.gen(function* () {
          const t = yield* tools
          const input = yield* run(Validation.decode(Api.ToolCallInput, "tool call")(payload))
          const connection = yield* chooseConnection(sb, params.id_or_name, input.connection)
          const options: CallOptions = {
            ...(input.timeout_ms === undefined ? {} : { timeoutMillis: input.timeout_ms }),
            ...(input.max_total_timeout_ms === undefined ? {} : { maxTotalTimeoutMillis: input.max_total_timeout_ms })
          }
          const args = input.arguments ?? {}
          if ((request.headers.accept ?? "").includes(Api.ndjson)) {
            const principal = yield* Principal.CurrentPrincipal
            return streamedCall(t, connection.id, params.tool, args, options, principal)
          }
          return resultView(yield* run(t.callTool(connection.id, params.tool, args, options)))
        })
    })
  })
)

/**
 * Tool-manifest pinning: `ToolPinning` comes with `Tools` (`Layers.withCalls`); without it the endpoints answer 500
 * `calls_unavailable`.
 */
export const ToolPinsLive = HttpApiBuilder.group(
  Api.Api,
  "toolPins",
  Effect.fn(function* (handlers) {
    const found = yield* Effect.serviceOption(ToolPins.ToolPinning)
    const pinning = Option.match(found, { onNone: () => Effect.fail(callsUnavailable), onSome: Effect.succeed })
    return handlers.handleAll({
      show: ({ params }) => Effect.flatMap(pinning, (p) => run(p.show(params.id))),
      approve: ({ params, payload }) =>
        Effect.gen(function* () {
          const p = yield* pinning
          const input = yield* run(Validation.decode(ToolPins.ApproveInput, "approval")(payload))
          return yield* run(p.approve(params.id, input))
        })
    })
  })
)

const oauthUnavailable = Api.makeError(
  500,
  "oauth_unavailable",
  "this server was built without OAuth (Layers.oauthSwitchboardLayer)"
)

/**
 * `GET /v1/connectors/{id_or_name}/auth_url`. `OAuth` comes from the server's context, which `Daemon.run` builds
 * with `Layers.oauthSwitchboardLayer`; without it the endpoint answers 500 `oauth_unavailable`.
 */
export const OAuthLive = HttpApiBuilder.group(
  Api.Api,
  "oauth",
  Effect.fn(function* (handlers) {
    const found = yield* Effect.serviceOption(OAuth.OAuth)
    return handlers.handleAll({
      authUrl: ({ params, query }) =>
        Option.match(found, {
          onNone: () => Effect.fail(oauthUnavailable),
          onSome: (oauth) =>
            run(
              oauth.authorizationUrl(params.id_or_name, {
                connection: query.connection,
                scopes: OAuth.splitScopes(query.scopes),
                redirect_uri: query.redirect_uri
              })
            )
        })
    })
  })
)

export const AuditLive = HttpApiBuilder.group(
  Api.Api,
  "audit",
  Effect.fn(function* (handlers) {
    const sb = yield* Switchboard.Switchboard
    return handlers.handleAll({
      list: ({ query }) => run(sb.listAudit(query))
    })
  })
)

/** Explain needs the calling services' `Explainer` (built by `Layers.withCalls`); without them it says so. */
export const ExplainLive = HttpApiBuilder.group(
  Api.Api,
  "explain",
  Effect.fn(function* (handlers) {
    const found = yield* Effect.serviceOption(Explain.Explainer)
    return handlers.handleAll({
      explain: ({ params, query }) =>
        Option.match(found, {
          onNone: () =>
            Effect.fail(
              Api.makeError(500, "calls_unavailable", "this server was built without explain (Layers.withCalls)")
            ),
          onSome: (explainer) => run(explainer.explain(params.id, query))
        })
    })
  })
)

/** Where the daemon's browser-facing listener takes OAuth callbacks; `/healthz` reports it when present. */
export class OAuthCallbackUrl extends Context.Service<OAuthCallbackUrl, { readonly url: string }>()(
  "@switchboard/daemon/Handlers/OAuthCallbackUrl"
) {}

export const SystemLive = HttpApiBuilder.group(
  Api.Api,
  "system",
  Effect.fn(function* (handlers) {
    const callback = yield* Effect.serviceOption(OAuthCallbackUrl)
    return handlers.handleAll({
      health: () =>
        Effect.succeed({
          ok: true,
          version: Api.version,
          pid: process.pid,
          ...(Option.isSome(callback) ? { oauth_callback_url: callback.value.url } : {})
        })
    })
  })
)

/** Every group's handlers; they need the `Switchboard` service. */
export const layer = Layer.mergeAll(
  ConnectorsLive,
  CredentialsLive,
  ConnectionsLive,
  CallsLive,
  ToolsLive,
  ToolPinsLive,
  OAuthLive,
  AuditLive,
  ExplainLive,
  EventsLive,
  SystemLive
)
