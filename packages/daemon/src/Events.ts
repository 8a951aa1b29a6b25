/**
 * The daemon's event stream, `GET /v1/events` (Server-Sent Events): `event: tools_changed` with
 * `data: {"connection": id}` each time an upstream MCP server announces a new tool list
 * (`notifications/tools/list_changed`, heard on the daemon's session with it: `Tools.toolsChanged`), so a client of
 * the daemon (`switchboard mcp --via daemon`) can pass it on to its own client.
 *
 * It is an `HttpApi` endpoint (authenticated like every route: the socket's caller or trusted headers, the API key
 * on TCP; errors in the one shape), declared as `StreamSse` for the schema and the OpenAPI document, but the handler
 * answers with the raw stream, because the encoder of `StreamSse` writes events only and the stream also carries a
 * `: keep-alive` comment every `keepAliveInterval` (and `: connected` at once, so the client knows the
 * stream is open), which keeps idle proxies from closing it and lets a client notice a dead daemon.
 *
 * A stream would hold the daemon's graceful shutdown for its whole timeout (it never finishes by itself), so it ends
 * as soon as the listener it came in on stops listening (checked every `closingCheckInterval`); the client then
 * subscribes again, to the next daemon.
 *
 * A caller only hears of connections it may read: each change is checked with `getConnection` as the caller, so
 * another user's personal connection (reported as absent to them) never shows up, not even its id.
 */
import * as Api from "@switchboard/core/Api"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Tools from "@switchboard/core/Tools"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"

/** How often an idle stream carries a keep-alive comment. */
export const keepAliveInterval: Duration.Input = "15 seconds"

/** How often an open stream checks whether its listener has started shutting down. */
export const closingCheckInterval: Duration.Input = "250 millis"

const encoder = new TextEncoder()

/** The first bytes of every stream: a comment saying it is open (the subscription to changes starts with it). */
export const connectedComment = ": connected\n\n"

/** A keep-alive comment (ignored by SSE parsers). */
export const keepAliveComment = ": keep-alive\n\n"

/** One `tools_changed` event as it goes on the wire. */
export const toolsChangedFrame = (connection: string): string =>
  `event: ${Api.toolsChangedEvent}\ndata: ${JSON.stringify({ connection } satisfies Api.ToolsChanged)}\n\n`

const shuttingDown = Api.makeError(503, "unavailable", "the daemon is shutting down")

const callsUnavailable = Api.makeError(
  500,
  "calls_unavailable",
  "this server was built without the calling services (Layers.withCalls)"
)

/**
 * The event stream of one caller: the connected comment, then the changes of the connections `principal` may read
 * and keep-alive comments, until the client goes away (which interrupts it).
 */
export const eventsOf = (
  sb: Switchboard.Switchboard["Service"],
  tools: Tools.Tools["Service"],
  principal: Principal.Principal,
  options: {
    readonly keepAlive?: Duration.Input | undefined
    /** Completes when the stream must end (the server is shutting down). */
    readonly until?: Effect.Effect<void> | undefined
  } = {}
): Stream.Stream<Uint8Array> => {
  const readable = (connection: string) =>
    sb.getConnection(connection).pipe(
      Effect.as(true),
      Effect.catch(() => Effect.succeed(false)),
      Effect.provideService(Principal.CurrentPrincipal, principal)
    )
  const changes = tools.toolsChanged.pipe(Stream.filterEffect(readable), Stream.map(toolsChangedFrame))
  // `tick` emits at once: that first tick is the connected comment.
  const keepAlive = Stream.tick(options.keepAlive ?? keepAliveInterval).pipe(
    Stream.mapAccum(
      () => false,
      (started, _) => [true, [started ? keepAliveComment : connectedComment]] as const
    )
  )
  const events = Stream.merge(changes, keepAlive).pipe(Stream.map((text) => encoder.encode(text)))
  return options.until === undefined ? events : Stream.interruptWhen(events, options.until)
}

/** The Node server a request came in on, when there is one (`net.Socket.server`). */
const nodeServerOf = (request: HttpServerRequest.HttpServerRequest): { readonly listening: boolean } | undefined => {
  const server = (request.source as { readonly socket?: { readonly server?: unknown } }).socket?.server
  return typeof server === "object" &&
    server !== null &&
    typeof (server as { listening?: unknown }).listening === "boolean"
    ? (server as { readonly listening: boolean })
    : undefined
}

/** Completes once the server `request` came in on no longer listens (it is shutting down); never without one. */
export const serverClosing = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<void> => {
  const server = nodeServerOf(request)
  if (server === undefined) return Effect.never
  return Effect.sync(() => server.listening).pipe(
    Effect.repeat({ schedule: Schedule.spaced(closingCheckInterval), while: (listening) => listening }),
    Effect.asVoid
  )
}

/**
 * The response: the stream, not cached nor buffered by proxies, on a connection closed when it ends (so a client
 * never sends its next request over a connection to a daemon that is shutting down).
 */
export const response = (events: Stream.Stream<Uint8Array>): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.stream(events, {
    contentType: Api.eventStream,
    headers: { "cache-control": "no-store", "x-accel-buffering": "no", connection: "close" }
  })

/**
 * The handler of `GET /v1/events`. `Tools` comes from the server's context (`Layers.withCalls`); a server built
 * with the `Switchboard` service alone answers 500 `calls_unavailable`.
 */
export const EventsLive = HttpApiBuilder.group(
  Api.Api,
  "events",
  Effect.fn(function* (handlers) {
    const sb = yield* Switchboard.Switchboard
    const found = yield* Effect.serviceOption(Tools.Tools)
    return handlers.handleAll({
      stream: ({ request }) =>
        Option.match(found, {
          onNone: () => Effect.fail(callsUnavailable),
          onSome: (tools) =>
            Effect.gen(function* () {
              // The stream runs after the handler returns: the caller's principal is carried over explicitly.
              const principal = yield* Principal.CurrentPrincipal
              // A request on a connection kept from before the listener closed: come back to the next daemon.
              if (nodeServerOf(request)?.listening === false) return yield* Effect.fail(shuttingDown)
              return response(eventsOf(sb, tools, principal, { until: serverClosing(request) }))
            })
        })
    })
  })
)
