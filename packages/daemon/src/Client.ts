/**
 * Clients of a running daemon, over its Unix socket (undici with `connect.socketPath`).
 *
 * - `DaemonClient`: the typed client derived from the same `HttpApi` the daemon serves, for TypeScript tools
 *   (`client.connectors.list({ query: { limit: 10 } })`); errors are the API's error classes, by status.
 * - `layerRemote`: the `Switchboard` service implemented by calling the daemon, failing with the same typed errors
 *   as the embedded service (mapped back by error code), so the CLI and the MCP server work the same embedded or
 *   through the daemon. Calls that hand secrets back (`resolveCall`) or only the daemon itself makes (`audit`,
 *   `setConnectionStatus`) are not offered over the socket.
 */
import { NodeHttpClient } from "@effect/platform-node"
import * as Api from "@switchboard/core/Api"
import * as Errors from "@switchboard/core/Errors"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Validation from "@switchboard/core/Validation"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { HttpClient, HttpClientError, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { DaemonError } from "./DaemonError.ts"

/** The host every request names; the socket decides where it goes. */
export const BASE_URL = "http://switchboard"

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

/** An `HttpClient` whose connections go to the socket. */
export const httpClientLayer = (socketPath: string): Layer.Layer<HttpClient.HttpClient> =>
  NodeHttpClient.layerUndiciOptions({ connect: { socketPath } })

const principalHeaders = (principal: Principal.Principal): Record<string, string> => ({
  [Api.principalHeaders.org]: principal.org,
  [Api.principalHeaders.workspace]: principal.workspace,
  [Api.principalHeaders.user]: principal.user,
  [Api.principalHeaders.role]: principal.role
})

/** Build the typed client on the provided `HttpClient`. */
export const make = (options: ClientOptions = {}) =>
  HttpApiClient.make(Api.Api, {
    baseUrl: BASE_URL,
    transformClient: (client) => {
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
  })

/** The typed client over the socket. */
export const layer = (socketPath: string, options: ClientOptions = {}): Layer.Layer<DaemonClient> =>
  Layer.effect(DaemonClient, make(options)).pipe(Layer.provide(httpClientLayer(socketPath)))

/** `/healthz`, or a `daemon_not_running` error saying why not. */
export const health = (socketPath: string): Effect.Effect<Api.Health, DaemonError> =>
  Effect.flatMap(HttpApiClient.make(Api.Api, { baseUrl: BASE_URL }), (client) => client.health()).pipe(
    Effect.mapError(
      (error) =>
        new DaemonError({
          reason: "daemon_not_running",
          message: `no daemon answers on ${socketPath}: ${describe(error)}`,
          cause: error
        })
    ),
    Effect.provide(httpClientLayer(socketPath))
  )

/** Whether a daemon answers `/healthz` on the socket within a second (for choosing embedded or daemon mode). */
export const isRunning = (socketPath: string): Effect.Effect<boolean> =>
  health(socketPath).pipe(
    Effect.timeout("1 second"),
    Effect.as(true),
    Effect.orElseSucceed(() => false)
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

const unreachable = (socketPath: string, error: unknown) =>
  new Errors.StoreError({
    message: `cannot reach the Switchboard daemon on ${socketPath}: ${describe(error)}`,
    details: { socket: socketPath },
    cause: error
  })

/** Map whatever a client call failed with to the typed error the embedded service would give. */
const toServiceError =
  (socketPath: string) =>
  (error: unknown): Errors.SwitchboardError => {
    for (const Class of Api.errorClasses) {
      if (error instanceof Class) return Api.toSwitchboardError(Api.statusOf(error), error.error)
    }
    if (Schema.isSchemaError(error)) {
      // Requests are checked before they are sent (see `jsonInput`), so this is a response this client cannot read.
      return new Errors.StoreError({
        message: `unexpected response from the Switchboard daemon on ${socketPath}: ${error.message}`,
        cause: error
      })
    }
    return unreachable(socketPath, error)
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
export const makeRemote = (socketPath: string) =>
  Effect.gen(function* () {
    const client = yield* DaemonClient
    const mapError = toServiceError(socketPath)
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
 * The `Switchboard` service through the daemon on `socketPath`: the same methods and typed errors as the
 * embedded one. A daemon that cannot be reached is a `StoreError` naming the socket.
 */
export const layerRemote = (
  socketPath: string,
  options: ClientOptions = {}
): Layer.Layer<Switchboard.Switchboard | DaemonClient> =>
  Layer.effect(Switchboard.Switchboard, makeRemote(socketPath)).pipe(Layer.provideMerge(layer(socketPath, options)))
