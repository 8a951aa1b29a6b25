/**
 * The handlers of the REST API: each endpoint calls the `Switchboard` service with the raw JSON body (the
 * service is the one place bodies are validated) and maps its typed errors to the API's error responses, each
 * with its own status. A defect becomes a 500 `internal_error` in the same shape and is logged, never shown.
 */
import * as Api from "@switchboard/core/Api"
import type { SwitchboardError } from "@switchboard/core/Errors"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { HttpApiBuilder } from "effect/http-api"

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
    return handlers.handleAll({
      list: ({ params }) =>
        run(sb.listCredentials(params.id_or_name, params.scope)).pipe(Effect.map((data) => ({ data }))),
      set: ({ params, payload }) => run(sb.setCredential(params.id_or_name, params.scope, payload)),
      remove: ({ params }) => run(sb.deleteCredential(params.id_or_name, params.scope, params.name))
    })
  })
)

export const ConnectionsLive = HttpApiBuilder.group(
  Api.Api,
  "connections",
  Effect.fn(function* (handlers) {
    const sb = yield* Switchboard.Switchboard
    return handlers.handleAll({
      create: ({ params, payload }) => run(sb.createConnection(params.id_or_name, payload)),
      list: ({ query }) => run(sb.listConnections(query)),
      get: ({ params }) => run(sb.getConnection(params.id)),
      remove: ({ params }) => run(sb.deleteConnection(params.id))
    })
  })
)

/** Extension point: the handlers of `POST /v1/connections/{id}/test` go here. */
export const CallsLive = HttpApiBuilder.group(Api.Api, "calls", (handlers) => handlers)

/** Extension point: the handlers of the MCP tool endpoints go here. */
export const ToolsLive = HttpApiBuilder.group(Api.Api, "tools", (handlers) => handlers)

/** Extension point: the handler of `GET /v1/connectors/{id_or_name}/auth_url` goes here. */
export const OAuthLive = HttpApiBuilder.group(Api.Api, "oauth", (handlers) => handlers)

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

export const SystemLive = HttpApiBuilder.group(Api.Api, "system", (handlers) =>
  handlers.handleAll({
    health: () => Effect.succeed({ ok: true, version: Api.version, pid: process.pid })
  })
)

/** Every group's handlers; they need the `Switchboard` service. */
export const layer = Layer.mergeAll(
  ConnectorsLive,
  CredentialsLive,
  ConnectionsLive,
  CallsLive,
  ToolsLive,
  OAuthLive,
  AuditLive,
  SystemLive
)
