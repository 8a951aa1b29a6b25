/**
 * The HTTP proxy route of the daemon: `ANY /v1/connections/{id}/proxy/{path…}` hands the method, the path below
 * the connection's base URL, the query, the caller's headers and the request body (streamed, never buffered) to
 * `Proxy.request`, and streams the upstream's answer back with its status and filtered headers, whatever the
 * status: an upstream 500 is a response, not an error. Upstream answers carry `X-Switchboard-Upstream: 1`, so a
 * client can tell them from the daemon's own errors, which come in the one JSON error shape with their status
 * (`destination_refused` 403, `rate_limited` 429 and `circuit_open` 503 with `Retry-After`, …).
 *
 * It is a raw router route rather than an HttpApi endpoint because both bodies stream. Who calls is decided as
 * for the API (the daemon's local user, or the trusted `X-Switchboard-*` headers); those headers are for the
 * daemon and never go upstream, and an upstream cannot send its own.
 */
import * as Api from "@switchboard/core/Api"
import { UpstreamError } from "@switchboard/core/Errors"
import * as Principal from "@switchboard/core/Principal"
import * as Proxy from "@switchboard/core/Proxy"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Server from "./Server.ts"

/** The route, for the router: the connection, then any path below its base URL. */
export const path = "/v1/connections/:id/proxy/*"

/** The value of `Api.upstreamHeader` on every upstream answer. */
export const upstreamMarker = "1"

const RAW = /^\/+v1\/+connections\/+[^/?#]+\/+proxy(?=$|[/?#])([^?#]*)(?:\?([^#]*))?/u

/**
 * The path (with its raw query) a request asks for below the connection's base URL, as the client encoded it
 * (empty for the base URL itself): the proxy normalises it and refuses any climb above the base.
 */
export const remainderOf = (url: string): string => {
  const match = RAW.exec(url)
  const rest = match?.[1] ?? ""
  const query = match?.[2]
  return `${rest}${query === undefined || query === "" ? "" : `?${query}`}`
}

const isOurs = (name: string) => name.toLowerCase().startsWith("x-switchboard-")

/** The caller's headers to forward: all but the daemon's own (`Proxy.request` drops credentials and hop-by-hop). */
export const forwardedHeaders = (headers: Readonly<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) if (!isOurs(name) && name !== "host") out[name] = value
  return out
}

const hasBody = (headers: Readonly<Record<string, string>>) =>
  headers["transfer-encoding"] !== undefined ||
  (headers["content-length"] !== undefined && headers["content-length"].trim() !== "0")

const unreadable = () =>
  new UpstreamError({ reason: "upstream_protocol_error", message: "the request body could not be read" })

/** `Retry-After` for the refusals that say when to come back. */
const retryAfterOf = (details: unknown): Record<string, string> => {
  const seconds = (details as { readonly retry_after_seconds?: unknown } | undefined)?.retry_after_seconds
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds >= 0
    ? { "retry-after": String(Math.ceil(seconds)) }
    : {}
}

/** The one error shape, with `Retry-After` when the error says when to retry. */
export const errorResponse = (error: Api.ApiError): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(
    { error: error.error },
    { status: Api.statusOf(error), headers: retryAfterOf(error.error.details) }
  )

/** Forward one request through `proxy` and answer with the upstream's response or the error. */
export const handle = (
  proxy: Proxy.Proxy["Service"],
  options: Pick<Server.Options, "trustHeaders" | "principal">,
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpRouter.RouteContext> =>
  Effect.gen(function* () {
    const principal = yield* Server.principalOf(request.headers, options)
    const params = yield* HttpRouter.params
    const connection = params.id ?? ""
    const headers = request.headers
    const body = hasBody(headers) ? request.stream.pipe(Stream.mapError(unreadable)) : undefined
    const response = yield* proxy
      .request(connection, {
        method: request.method,
        path: remainderOf(request.url),
        headers: forwardedHeaders(headers),
        body
      })
      .pipe(Effect.provideService(Principal.CurrentPrincipal, principal), Effect.mapError(Api.fromSwitchboardError))
    const upstreamHeaders: Record<string, string> = {}
    for (const [name, value] of Object.entries(response.headers)) if (!isOurs(name)) upstreamHeaders[name] = value
    upstreamHeaders[Api.upstreamHeader] = upstreamMarker
    return HttpServerResponse.stream(response.body, { status: response.status, headers: upstreamHeaders })
  }).pipe(
    Effect.catch((error) => Effect.succeed(errorResponse(error))),
    Effect.catchDefect((defect) =>
      Effect.as(
        Effect.logError("a proxied request failed with a defect", Cause.die(defect)),
        errorResponse(Api.makeError(500, "internal_error", "internal error; see the daemon log"))
      )
    )
  )

/** The proxy route over the `Proxy` service (taken when the layer is built), for `Server.Options.routes`. */
export const layer = (
  options: Pick<Server.Options, "trustHeaders" | "principal">
): Layer.Layer<never, never, HttpRouter.HttpRouter | Proxy.Proxy> =>
  Layer.unwrap(
    Effect.map(Effect.service(Proxy.Proxy), (proxy) =>
      HttpRouter.add("*", path, (request) => handle(proxy, options, request))
    )
  )
