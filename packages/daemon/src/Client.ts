/**
 * Clients of a running daemon, over its Unix socket (undici with `connect.socketPath`), or over TCP to a team
 * server with an API key (`Target`: a socket path, or `{ url, apiKey }`; `targetOf` reads `SWITCHBOARD_URL` and
 * `SWITCHBOARD_API_KEY`). The key stays `Redacted` until it is set as the `Authorization` header of a request.
 *
 * - `DaemonClient`: the typed client derived from the same `HttpApi` the daemon serves, for TypeScript tools
 *   (`client.connectors.list({ query: { limit: 10 } })`); errors are the API's error classes, by status.
 * - `layerRemote`: the `Switchboard` service implemented by calling the daemon, failing with the same typed errors
 *   as the embedded service (mapped back by error code), so the CLI and the MCP server work the same embedded or
 *   through the daemon. Calls that hand secrets back (`resolveCall`) or only the daemon itself makes (`audit`,
 *   `setConnectionStatus`) are not offered over the socket.
 * - `layerRemoteCalls`: the `Proxy` and `Tools` services through the daemon's proxy route and tool endpoints; bodies,
 *   progress and cancellation stream over the socket, and upstreams' tool-list changes come from `GET /v1/events`.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Api from "@switchboard/core/Api"
import * as Errors from "@switchboard/core/Errors"
import * as Explain from "@switchboard/core/Explain"
import * as Principal from "@switchboard/core/Principal"
import type { CallOptions, McpTool, McpToolResult } from "@switchboard/core/McpUpstream"
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Tools from "@switchboard/core/Tools"
import type { UpstreamResponse } from "@switchboard/core/Upstream"
import * as Validation from "@switchboard/core/Validation"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { HttpClient, HttpClientError, HttpClientRequest, type HttpClientResponse, type HttpMethod } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Sse from "effect/encoding/Sse"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import { DaemonError } from "./DaemonError.ts"

/** The host every request names; the socket decides where it goes. */
export const BASE_URL = "http://switchboard"

/** A team server on TCP: its base URL (`http://host:port`, or https behind a proxy) and an API key (`sbk_…`). */
export interface TcpTarget {
  readonly url: string
  readonly apiKey: Redacted.Redacted<string>
}

/** Where the daemon is: the path of its Unix socket, or a team server on TCP. */
export type Target = string | TcpTarget

const isTcp = (target: Target): target is TcpTarget => typeof target !== "string"

/** The base URL requests name: the placeholder host over the socket, the server's URL over TCP. */
export const baseUrlOf = (target: Target): string => (isTcp(target) ? target.url : BASE_URL)

/** "on /run/…/switchboard.sock" or "at http://host:port", for messages (never the key). */
export const describeTarget = (target: Target): string => (isTcp(target) ? `at ${target.url}` : `on ${target}`)

/**
 * The team server named by the environment: `SWITCHBOARD_URL` (an http(s) URL; a path prefix is kept) with
 * `SWITCHBOARD_API_KEY`, or undefined when `SWITCHBOARD_URL` is unset. A URL without a key, or one that is not
 * http(s), fails with `config_invalid`.
 */
export const tcpTargetOf = (
  env: Readonly<Record<string, string | undefined>> = process.env
): Effect.Effect<TcpTarget | undefined, DaemonError> =>
  Effect.suspend(() => {
    const raw = env.SWITCHBOARD_URL?.trim() ?? ""
    if (raw === "") return Effect.succeed(undefined)
    const invalid = (message: string) => Effect.fail(new DaemonError({ reason: "config_invalid", message }))
    let parsed: URL
    try {
      parsed = new URL(raw)
    } catch {
      return invalid("SWITCHBOARD_URL is not a URL (expected http://host:port)")
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      return invalid("SWITCHBOARD_URL must be an http:// or https:// URL")
    }
    if (parsed.username !== "" || parsed.password !== "" || parsed.search !== "" || parsed.hash !== "") {
      return invalid(
        "SWITCHBOARD_URL must hold no credentials, query or fragment (the key goes in SWITCHBOARD_API_KEY)"
      )
    }
    const key = env.SWITCHBOARD_API_KEY?.trim() ?? ""
    if (key === "") {
      return invalid("SWITCHBOARD_URL names a team server, which needs an API key: set SWITCHBOARD_API_KEY (sbk_…)")
    }
    const url = `${parsed.origin}${parsed.pathname.replace(/\/+$/u, "")}`
    return Effect.succeed({ url, apiKey: Redacted.make(key) })
  })

export interface ClientOptions {
  /** Headers sent with every request. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /**
   * Send the calling fiber's `CurrentPrincipal` as the `X-Switchboard-*` headers (for services embedding the
   * daemon; it must trust them). Off by default: the daemon's local user is the principal.
   */
  readonly forwardPrincipal?: boolean | undefined
}

/** The typed client of the REST API. */
export class DaemonClient extends Context.Service<DaemonClient, HttpApiClient.ForApi<typeof Api.Api>>()(
  "@switchboard/daemon/Client/DaemonClient"
) {}

/**
 * An `HttpClient` whose connections go to the socket, or to a team server with its API key on every request (the
 * `Authorization` header, redacted wherever headers are shown).
 */
export const httpClientLayer = (target: Target): Layer.Layer<HttpClient.HttpClient> =>
  isTcp(target)
    ? Layer.effect(
        HttpClient.HttpClient,
        Effect.map(Effect.service(HttpClient.HttpClient), (client) =>
          HttpClient.mapRequest(client, HttpClientRequest.bearerToken(target.apiKey))
        )
      ).pipe(Layer.provide(NodeHttpClient.layerUndici))
    : NodeHttpClient.layerUndiciOptions({ connect: { socketPath: target } })

const principalHeaders = (principal: Principal.Principal): Record<string, string> => ({
  [Api.principalHeaders.org]: principal.org,
  [Api.principalHeaders.workspace]: principal.workspace,
  [Api.principalHeaders.user]: principal.user,
  [Api.principalHeaders.role]: principal.role
})

/** The client's headers, and the calling fiber's principal when `forwardPrincipal` says so. */
const configure =
  (options: ClientOptions) =>
  (client: HttpClient.HttpClient): HttpClient.HttpClient => {
    const withHeaders =
      options.headers === undefined
        ? client
        : HttpClient.mapRequest(client, HttpClientRequest.setHeaders(options.headers))
    return options.forwardPrincipal === true
      ? HttpClient.mapRequestEffect(withHeaders, (request) =>
          Effect.map(Effect.service(Principal.CurrentPrincipal), (principal) =>
            HttpClientRequest.setHeaders(request, principalHeaders(principal))
          )
        )
      : withHeaders
  }

/** Build the typed client on the provided `HttpClient` (requests to `baseUrl`, the socket's placeholder by default). */
export const make = (options: ClientOptions = {}, baseUrl: string = BASE_URL) =>
  HttpApiClient.make(Api.Api, {
    baseUrl,
    transformClient: configure(options)
  })

/** The typed client over the socket, or over TCP to a team server. */
export const layer = (target: Target, options: ClientOptions = {}): Layer.Layer<DaemonClient> =>
  Layer.effect(DaemonClient, make(options, baseUrlOf(target))).pipe(Layer.provide(httpClientLayer(target)))

/** The status of a response a client call failed on (an undeclared one, such as the TCP listener's 401). */
const responseStatusOf = (error: unknown): number | undefined => {
  if (!HttpClientError.isHttpClientError(error)) return undefined
  const response = (error.reason as { readonly response?: { readonly status?: unknown } }).response
  return typeof response?.status === "number" ? response.status : undefined
}

/** Whether the failure is the team server refusing the API key (401): `unauthorized`, not "not running". */
const refusedKey = (target: Target, error: unknown): DaemonError | undefined =>
  isTcp(target) && responseStatusOf(error) === 401
    ? new DaemonError({
        reason: "unauthorized",
        message: `the Switchboard server ${describeTarget(target)} refused the API key (HTTP 401): check SWITCHBOARD_API_KEY (a key may have been revoked)`
      })
    : undefined

/**
 * `/healthz`, or a `daemon_not_running` error saying why not; over TCP, a refused API key is `unauthorized`
 * (the team server checks the key on every route, `/healthz` included).
 */
export const health = (target: Target): Effect.Effect<Api.Health, DaemonError> =>
  Effect.flatMap(HttpApiClient.make(Api.Api, { baseUrl: baseUrlOf(target) }), (client) => client.health()).pipe(
    Effect.mapError(
      (error) =>
        refusedKey(target, error) ??
        new DaemonError({
          reason: "daemon_not_running",
          message: `no daemon answers ${describeTarget(target)}: ${describe(error)}`,
          cause: error
        })
    ),
    Effect.provide(httpClientLayer(target))
  )

/**
 * Whether a daemon answers `/healthz` on the socket within a second (for choosing embedded or daemon mode). No
 * socket file, no daemon: answered without loading the HTTP client, which an embedded command may never need.
 */
export const isRunning = (target: Target): Effect.Effect<boolean> =>
  Effect.suspend(() =>
    isTcp(target) || Fs.existsSync(target)
      ? health(target).pipe(
          Effect.timeout("1 second"),
          Effect.as(true),
          Effect.orElseSucceed(() => false)
        )
      : Effect.succeed(false)
  )

const describe = (error: unknown): string => {
  if (HttpClientError.isHttpClientError(error)) {
    const cause = (error.reason as { readonly cause?: unknown }).cause
    const code = (cause as { readonly code?: unknown } | undefined)?.code
    return typeof code === "string" ? code : error.message
  }
  return error instanceof Error ? error.message : String(error)
}

// ---------------------------------------------------------------------------------------------------------------
// The Switchboard service through the daemon

const unreachable = (target: Target, error: unknown) => {
  const refused = refusedKey(target, error)
  return new Errors.StoreError({
    message:
      refused === undefined
        ? `cannot reach the Switchboard daemon ${describeTarget(target)}: ${describe(error)}`
        : refused.message,
    details: isTcp(target) ? { url: target.url } : { socket: target },
    cause: error
  })
}

/** Map whatever a client call failed with to the typed error the embedded service would give. */
const toServiceError =
  (target: Target) =>
  (error: unknown): Errors.SwitchboardError => {
    for (const Class of Api.errorClasses) {
      if (error instanceof Class) return Api.toSwitchboardError(Api.statusOf(error), error.error)
    }
    if (Schema.isSchemaError(error)) {
      // Requests are checked before they are sent (see `jsonInput`), so this is a response this client cannot read.
      return new Errors.StoreError({
        message: `unexpected response from the Switchboard daemon ${describeTarget(target)}: ${error.message}`,
        cause: error
      })
    }
    return unreachable(target, error)
  }

/** A body as it goes on the wire: JSON. Input that JSON cannot carry fails like an invalid payload. */
const toJson = (what: string, input: unknown): Effect.Effect<unknown, Errors.ValidationFailed> =>
  Effect.try({
    try: () => {
      const text = JSON.stringify(input)
      return text === undefined ? undefined : (JSON.parse(text) as unknown)
    },
    catch: () => Validation.validationFailed(what, [{ path: "", message: "expected a JSON value" }])
  })

const notOverSocket = (method: string, why: string) =>
  Effect.fail(
    new Errors.InvalidRequest({
      reason: "invalid_parameter",
      message: `${method} is not available through the daemon: ${why}`
    })
  )

/** The Switchboard service backed by a `DaemonClient`. */
export const makeRemote = (target: Target) =>
  Effect.gen(function* () {
    const client = yield* DaemonClient
    const mapError = toServiceError(target)
    const call = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, Errors.SwitchboardError> =>
      Effect.mapError(effect, mapError)

    const version = (idOrName: string, value: number) =>
      Number.isInteger(value) && value >= 1
        ? Effect.void
        : Effect.fail(new Errors.ConnectorVersionNotFound({ message: `connector ${idOrName} has no version ${value}` }))

    return Switchboard.Switchboard.of({
      createConnector: (input) =>
        Effect.flatMap(toJson("connector", input), (payload) =>
          call(client.connectors.create({ payload: payload as never }))
        ),
      listConnectors: (query = {}) =>
        Effect.flatMap(Validation.decode(Switchboard.ListConnectorsQuery, "query")(query), (q) =>
          call(client.connectors.list({ query: q }))
        ),
      getConnector: (idOrName) => call(client.connectors.get({ params: { id_or_name: idOrName } })),
      getConnectorVersion: (idOrName, value) =>
        Effect.andThen(
          version(idOrName, value),
          call(client.connectors.getVersion({ params: { id_or_name: idOrName, version: value } }))
        ),
      updateConnector: (idOrName, patch) =>
        Effect.flatMap(toJson("connector update", patch), (payload) =>
          call(client.connectors.update({ params: { id: idOrName }, payload: payload as never }))
        ),
      deleteConnector: (idOrName) => call(client.connectors.remove({ params: { id: idOrName } })),
      authenticationMethods: (idOrName) =>
        call(client.connectors.authenticationMethods({ params: { id_or_name: idOrName } })),
      setCredential: (connector, scope, input) =>
        Effect.flatMap(toJson("credential", input), (payload) =>
          call(client.credentials.set({ params: { id_or_name: connector, scope }, payload: payload as never }))
        ),
      listCredentials: (connector, scope) =>
        Effect.map(call(client.credentials.list({ params: { id_or_name: connector, scope } })), (list) => list.data),
      deleteCredential: (connector, scope, name) =>
        call(client.credentials.remove({ params: { id_or_name: connector, scope, name } })),
      createConnection: (connector, input) =>
        Effect.flatMap(toJson("connection", input), (payload) =>
          call(client.connections.create({ params: { id_or_name: connector }, payload: payload as never }))
        ),
      listConnections: (query = {}) =>
        Effect.flatMap(Validation.decode(Switchboard.ListConnectionsQuery, "query")(query), (q) =>
          call(client.connections.list({ query: q }))
        ),
      getConnection: (idOrName) => call(client.connections.get({ params: { id: idOrName } })),
      deleteConnection: (idOrName) => call(client.connections.remove({ params: { id: idOrName } })),
      setConnectionStatus: () => notOverSocket("setConnectionStatus", "the daemon sets statuses when it tests"),
      resolveCall: () =>
        notOverSocket(
          "resolveCall",
          "secrets never leave the daemon; call upstreams through its proxy and tool routes"
        ),
      audit: () => notOverSocket("audit", "the daemon records its own audit entries"),
      listAudit: (query = {}) =>
        Effect.flatMap(Validation.decode(Switchboard.ListAuditQuery, "query")(query), (q) =>
          call(client.audit.list({ query: q }))
        )
    })
  })

/**
 * The `Switchboard` service through the daemon at `target`: the same methods and typed errors as the
 * embedded one. A daemon that cannot be reached is a `StoreError` naming the socket.
 */
export const layerRemote = (
  target: Target,
  options: ClientOptions = {}
): Layer.Layer<Switchboard.Switchboard | DaemonClient> =>
  Layer.effect(Switchboard.Switchboard, makeRemote(target)).pipe(Layer.provideMerge(layer(target, options)))

// ---------------------------------------------------------------------------------------------------------------
// Calling upstreams through the daemon

/** Meaningful for one hop only, or set by the client itself: never sent to the daemon on the caller's behalf. */
const notForwarded: ReadonlySet<string> = new Set([...Proxy.hopByHop, "content-length"])

const forwardable = (headers: Proxy.ProxyRequest["headers"]): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase()
    if (value === undefined || notForwarded.has(lower) || lower.startsWith("x-switchboard-")) continue
    out[lower] = typeof value === "string" ? value : value.join(", ")
  }
  return out
}

const contentLengthOf = (headers: Proxy.ProxyRequest["headers"]): number | undefined => {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.toLowerCase() !== "content-length" || typeof value !== "string") continue
    const n = Number(value)
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined
  }
  return undefined
}

/** The daemon answered with its own error (JSON in the one error shape), or with something this client cannot read. */
const daemonError = (target: Target, response: HttpClientResponse.HttpClientResponse) =>
  response.json.pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(Schema.Struct({ error: Api.ErrorDetail }))),
    Effect.map((body) => Api.toSwitchboardError(response.status, body.error)),
    Effect.catch((cause) =>
      Effect.succeed(
        new Errors.StoreError({
          message: `unexpected answer (HTTP ${response.status}) from the Switchboard daemon ${describeTarget(target)}`,
          cause
        })
      )
    ),
    Effect.flatMap(Effect.fail)
  )

const brokenOff = (what: string) => () =>
  new Errors.UpstreamError({
    reason: "upstream_unreachable",
    message: `the daemon's answer broke off while streaming ${what}`
  })

/** `Proxy` through the daemon: the request body and the upstream's answer both stream over the socket. */
export const makeRemoteProxy = (target: Target, options: ClientOptions = {}) =>
  Effect.gen(function* () {
    const http = configure(options)(yield* HttpClient.HttpClient)
    const failWith = toServiceError(target)

    const request = Effect.fn("RemoteProxy.request")(function* (connection: string, req: Proxy.ProxyRequest) {
      // Dot segments are resolved here as the embedded proxy does: a URL parser would otherwise resolve them
      // against the daemon's own routes.
      const hash = req.path.indexOf("#")
      const withoutHash = hash === -1 ? req.path : req.path.slice(0, hash)
      const question = withoutHash.indexOf("?")
      const rawPath = question === -1 ? withoutHash : withoutHash.slice(0, question)
      const path = yield* Effect.fromResult(Proxy.normalisePath(rawPath))
      const search = question === -1 ? "" : withoutHash.slice(question)
      const url = `${baseUrlOf(target)}/v1/connections/${encodeURIComponent(connection)}/proxy${path === "" ? "/" : path}${search}`
      const query: Array<[string, string]> = []
      for (const [k, v] of Object.entries(req.query ?? {})) {
        for (const value of typeof v === "string" ? [v] : v) query.push([k, value])
      }
      let outgoing = HttpClientRequest.make(req.method.toUpperCase() as HttpMethod.HttpMethod)(url, {
        headers: forwardable(req.headers),
        urlParams: query
      })
      if (req.body !== undefined) {
        const contentLength = contentLengthOf(req.headers)
        outgoing = HttpClientRequest.bodyStream(outgoing, req.body, {
          contentType: forwardable(req.headers)["content-type"] ?? "application/octet-stream",
          ...(contentLength === undefined ? {} : { contentLength })
        })
      }
      const response = yield* http.execute(outgoing).pipe(Effect.mapError(failWith))
      if (response.headers[Api.upstreamHeader] === undefined) return yield* daemonError(target, response)
      const { [Api.upstreamHeader]: _marker, ...headers } = response.headers
      const answer: UpstreamResponse = {
        status: response.status,
        headers,
        body: response.stream.pipe(Stream.mapError(brokenOff("the upstream's body")))
      }
      return answer
    })

    return Proxy.Proxy.of({ request })
  })

const decodeEvent = Schema.decodeUnknownEffect(Schema.fromJsonString(Api.ToolCallEvent))

const decodeToolsChanged = Schema.decodeUnknownOption(Schema.fromJsonString(Api.ToolsChanged))

/**
 * How long to wait before subscribing to the daemon's events again after the stream dropped (or could not be
 * opened): 250 ms doubling, at most 30 s apart, jittered; back to the start once a stream is open again.
 */
export const eventsRetrySchedule = Schedule.min([
  Schedule.exponential("250 millis"),
  Schedule.spaced("30 seconds")
]).pipe(Schedule.jittered)

/**
 * The daemon's `tools_changed` events (`GET /v1/events`), as connection ids, for as long as it is consumed: when the
 * stream drops or the daemon is gone, it subscribes again after `eventsRetrySchedule` (never in a busy loop), and a
 * daemon that answers with an error (a revoked API key) is retried the same way. Changes while it was away are
 * lost, as they would be embedded across a lost upstream session.
 */
export const remoteToolsChanged = (
  target: Target,
  http: HttpClient.HttpClient,
  schedule: Schedule.Schedule<unknown, unknown> = eventsRetrySchedule
): Stream.Stream<string> => {
  const failWith = toServiceError(target)
  const url = `${baseUrlOf(target)}/v1/events`
  // `undefined` marks an open stream: it passes `retry`, which then starts its schedule over.
  const once: Stream.Stream<string | undefined, Errors.SwitchboardError> = Stream.unwrap(
    Effect.gen(function* () {
      const response = yield* http
        .execute(HttpClientRequest.get(url, { accept: Api.eventStream }))
        .pipe(Effect.mapError(failWith))
      if (response.status !== 200 || !(response.headers["content-type"] ?? "").startsWith(Api.eventStream)) {
        return yield* daemonError(target, response)
      }
      const events = response.stream.pipe(
        Stream.decodeText(),
        Stream.pipeThroughChannel(Sse.decode()),
        Stream.mapError(brokenOff("its events")),
        // Other events (and data this client cannot read) are for newer clients: skipped.
        Stream.filter((event) => event.event === Api.toolsChangedEvent),
        Stream.map((event) => decodeToolsChanged(event.data)),
        Stream.filter(Option.isSome),
        Stream.map((data) => data.value.connection)
      )
      return Stream.concat(Stream.succeed<string | undefined>(undefined), events)
    })
  ).pipe(
    // The daemon ending the stream (it stopped) is a drop like any other.
    Stream.concat(Stream.fail(brokenOff("its events")())),
    Stream.tapError((error) =>
      Effect.logDebug(`the daemon's event stream ${describeTarget(target)} dropped; subscribing again`, error.message)
    )
  )
  return once.pipe(
    Stream.retry(schedule),
    Stream.filter((id): id is string => id !== undefined),
    Stream.catch(() => Stream.empty)
  )
}

/**
 * `Tools` through the daemon. A call streams (NDJSON): progress reaches `onProgress` as it happens, and
 * interrupting the call closes the request, which makes the daemon cancel it upstream. `toolsChanged` subscribes to
 * the daemon's event stream (`remoteToolsChanged`), so an upstream's list_changed reaches the MCP server here too.
 */
export const makeRemoteTools = (target: Target, options: ClientOptions = {}) =>
  Effect.gen(function* () {
    const client = yield* DaemonClient
    const http = configure(options)(yield* HttpClient.HttpClient)
    const failWith = toServiceError(target)
    const call = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, Errors.SwitchboardError> =>
      Effect.mapError(effect, failWith)
    const connectionOf = (ref: string) => call(client.connections.get({ params: { id: ref } }))

    const listTools = Effect.fn("RemoteTools.listTools")(function* (connection: string) {
      const c = yield* connectionOf(connection)
      const list = yield* call(
        client.tools.list({ params: { id_or_name: c.connector_id }, query: { connection: c.id } })
      )
      const tools: ReadonlyArray<McpTool> = list.data
      return tools
    })

    const callTool = Effect.fn("RemoteTools.callTool")(function* (
      connection: string,
      tool: string,
      args: Readonly<Record<string, unknown>> = {},
      callOptions?: CallOptions
    ) {
      const c = yield* connectionOf(connection)
      const payload = yield* toJson("tool arguments", {
        arguments: args,
        connection: c.id,
        ...(callOptions?.timeoutMillis === undefined ? {} : { timeout_ms: callOptions.timeoutMillis }),
        ...(callOptions?.maxTotalTimeoutMillis === undefined
          ? {}
          : { max_total_timeout_ms: callOptions.maxTotalTimeoutMillis })
      })
      const url = `${baseUrlOf(target)}/v1/connectors/${encodeURIComponent(c.connector_id)}/tools/${encodeURIComponent(tool)}/call`
      const outgoing = HttpClientRequest.post(url, { accept: Api.ndjson }).pipe(
        HttpClientRequest.bodyJsonUnsafe(payload)
      )
      const response = yield* http.execute(outgoing).pipe(Effect.mapError(failWith))
      if (response.status !== 200 || !(response.headers["content-type"] ?? "").startsWith(Api.ndjson)) {
        return yield* daemonError(target, response)
      }
      let last: Api.ToolCallEvent | undefined
      yield* response.stream.pipe(
        Stream.decodeText(),
        Stream.splitLines,
        Stream.filter((line) => line.trim() !== ""),
        Stream.mapError(brokenOff("a tool call")),
        Stream.runForEach((line) =>
          decodeEvent(line).pipe(
            Effect.mapError(
              (cause) =>
                new Errors.StoreError({
                  message: `unexpected line in a streamed tool call from the daemon ${describeTarget(target)}`,
                  cause
                })
            ),
            Effect.map((event) => {
              if ("progress" in event) callOptions?.onProgress?.(event.progress)
              else last = event
            })
          )
        )
      )
      const end = last
      if (end !== undefined && "result" in end) {
        const result: McpToolResult = end.result
        return result
      }
      if (end !== undefined && "error" in end) return yield* Api.toSwitchboardError(end.status, end.error)
      return yield* new Errors.UpstreamError({
        reason: "upstream_protocol_error",
        message: "the daemon ended the tool call without a result"
      })
    })

    return Tools.Tools.of({ listTools, callTool, toolsChanged: remoteToolsChanged(target, http) })
  })

/** `Explainer` through the daemon's explain route: the dry run uses the daemon's breaker state and DNS. */
export const makeRemoteExplainer = (target: Target) =>
  Effect.map(Effect.service(DaemonClient), (client) =>
    Explain.Explainer.of({
      explain: (connection, query = {}) =>
        Effect.flatMap(Validation.decode(Explain.ExplainQuery, "query")(query), (q) =>
          Effect.mapError(client.explain.explain({ params: { id: connection }, query: q }), toServiceError(target))
        )
    })
  )

/** `ToolPinning` through the daemon's pin routes: the daemon lists, pins and approves. */
export const makeRemotePinning = (target: Target) =>
  Effect.map(Effect.service(DaemonClient), (client) =>
    ToolPins.ToolPinning.of({
      show: (connection) =>
        Effect.mapError(client.toolPins.show({ params: { id: connection } }), toServiceError(target)),
      approve: (connection, input = {}) =>
        Effect.mapError(client.toolPins.approve({ params: { id: connection }, payload: input }), toServiceError(target))
    })
  )

/**
 * The calling services through the daemon at `target`: `Proxy` (bodies stream both ways) and `Tools` (progress
 * and cancellation pass through), failing with the same typed errors as the embedded ones. With `layerRemote`, the
 * CLI and the MCP server work the same embedded or through the daemon.
 */
export const layerRemoteCalls = (
  target: Target,
  options: ClientOptions = {}
): Layer.Layer<Proxy.Proxy | Tools.Tools | DaemonClient> =>
  Layer.mergeAll(
    Layer.effect(Proxy.Proxy, makeRemoteProxy(target, options)),
    Layer.effect(Tools.Tools, makeRemoteTools(target, options)),
    Layer.effect(Explain.Explainer, makeRemoteExplainer(target)),
    Layer.effect(ToolPins.ToolPinning, makeRemotePinning(target))
  ).pipe(
    Layer.provideMerge(Layer.effect(DaemonClient, make(options, baseUrlOf(target)))),
    Layer.provide(httpClientLayer(target))
  )
