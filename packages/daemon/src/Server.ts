/**
 * Serves the REST API on a Unix socket that only this user can reach.
 *
 * Socket security: the socket's directory is created 0700 and checked with lstat (a directory, not a symlink,
 * owned by this uid, no group or other permission bits), and the socket itself is chmod 0600 once bound. Node
 * does not expose the peer's credentials (SO_PEERCRED / getpeereid) on Linux or macOS, so no per-connection uid
 * check is possible from JavaScript: the private directory and the 0600 socket are the guard, since connecting to
 * a Unix socket needs search permission on its directory and write permission on the socket.
 *
 * A socket file left by a daemon that died is replaced (connecting to it is refused); one a live daemon answers
 * on is not, and a second daemon fails with "a daemon is already listening on …".
 *
 * Who calls: the local user, admin of org `local` and workspace `default`; when the configuration trusts them,
 * the `X-Switchboard-Org`, `-Workspace`, `-User` and `-Role` headers of a service embedding the daemon.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Api from "@switchboard/core/Api"
import * as Principal from "@switchboard/core/Principal"
import type * as Switchboard from "@switchboard/core/Switchboard"
import * as Validation from "@switchboard/core/Validation"
import type * as Duration from "effect/Duration"
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as ByteSize from "effect/ByteSize"
import {
  HttpEffect,
  HttpIncomingMessage,
  HttpRouter,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import { HttpApiBuilder, HttpApiMiddleware } from "effect/http-api"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import { createServer } from "node:http"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import * as Path from "node:path"
import * as ApiKeys from "./ApiKeys.ts"
import { DaemonError, errnoOf, io } from "./DaemonError.ts"
import * as Handlers from "./Handlers.ts"

export interface Options {
  /** The socket path. */
  readonly socket: string
  /** Trust the `X-Switchboard-*` principal headers. */
  readonly trustHeaders: boolean
  /** Who calls when no trusted header says otherwise. */
  readonly principal: Principal.Principal
  /** How long shutdown waits for in-flight requests (then they are interrupted and answered 503). */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** Log one line per request (method, path, status); on by default. */
  readonly logRequests?: boolean | undefined
  /** More routes served next to the API (the upstream proxy, …). */
  readonly routes?: Layer.Layer<never, never, HttpRouter.HttpRouter | Switchboard.Switchboard> | undefined
}

// Linux: sun_path holds 108 bytes including the terminating NUL (macOS: 104).
const MAX_SOCKET_PATH = process.platform === "darwin" ? 103 : 107

const insecure = (message: string) => new DaemonError({ reason: "socket_insecure", message })

/**
 * Create the socket directory (0700) when missing, then refuse it unless it is a real directory owned by this
 * user that nobody else can enter.
 */
export const ensurePrivateDirectory = Effect.fn("Server.ensurePrivateDirectory")(function* (dir: string) {
  yield* Effect.try({
    try: () => Fs.mkdirSync(dir, { recursive: true, mode: 0o700 }),
    catch: (cause) => io(`creating the socket directory ${dir}`, cause)
  })
  const stat = yield* Effect.try({
    try: () => Fs.lstatSync(dir),
    catch: (cause) => io(`checking the socket directory ${dir}`, cause)
  })
  if (stat.isSymbolicLink()) {
    return yield* insecure(`the socket directory ${dir} is a symbolic link; it must be a real directory`)
  }
  if (!stat.isDirectory()) return yield* insecure(`the socket directory ${dir} is not a directory`)
  const uid = process.getuid?.()
  if (uid !== undefined && stat.uid !== uid) {
    return yield* insecure(`the socket directory ${dir} is owned by uid ${stat.uid}, not by this user (uid ${uid})`)
  }
  const mode = stat.mode & 0o777
  if (process.platform !== "win32" && (mode & 0o077) !== 0) {
    return yield* insecure(
      `the socket directory ${dir} has mode 0${mode.toString(8)}, which lets other users reach the socket; ` +
        `it must be 0700 (run: chmod 700 ${dir})`
    )
  }
})

/** Whether something answers on the socket: "live", "stale" (a dead daemon's file) or "absent". */
export const probeSocket = (socket: string): Effect.Effect<"live" | "stale" | "absent", DaemonError> =>
  Effect.callback<"live" | "stale" | "absent", DaemonError>((resume) => {
    const connection = Net.createConnection({ path: socket })
    const timer = setTimeout(() => {
      connection.destroy()
      // Accepting takes no time; a socket that neither accepts nor refuses is held by a stuck process.
      resume(Effect.succeed("live"))
    }, 2000)
    connection.once("connect", () => {
      clearTimeout(timer)
      connection.destroy()
      resume(Effect.succeed("live"))
    })
    connection.once("error", (error) => {
      clearTimeout(timer)
      const code = errnoOf(error)
      if (code === "ECONNREFUSED") resume(Effect.succeed("stale"))
      else if (code === "ENOENT") resume(Effect.succeed("absent"))
      else resume(Effect.fail(io(`connecting to ${socket}`, error)))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      connection.destroy()
    })
  })

const alreadyRunning = (socket: string) =>
  new DaemonError({
    reason: "daemon_running",
    message: `a daemon is already listening on ${socket}; stop it first (switchboard daemon stop)`
  })

/** Make the socket path free: absent, or a stale socket removed. A live daemon's socket is left alone. */
export const clearStaleSocket = Effect.fn("Server.clearStaleSocket")(function* (socket: string) {
  const stat = yield* Effect.try({ try: () => Fs.lstatSync(socket), catch: (cause) => cause }).pipe(
    Effect.catch((cause) =>
      errnoOf(cause) === "ENOENT" ? Effect.succeed(undefined) : Effect.fail(io(`checking ${socket}`, cause))
    )
  )
  if (stat === undefined) return
  if (!stat.isSocket()) {
    return yield* insecure(`${socket} exists and is not a socket; move it away and start again`)
  }
  const state = yield* probeSocket(socket)
  if (state === "live") return yield* alreadyRunning(socket)
  if (state === "stale") {
    yield* Effect.logInfo("removing the stale socket of a daemon that is gone").pipe(Effect.annotateLogs({ socket }))
    yield* Effect.try({ try: () => Fs.unlinkSync(socket), catch: (cause) => cause }).pipe(
      Effect.catch((cause) =>
        errnoOf(cause) === "ENOENT" ? Effect.void : Effect.fail(io(`removing the stale socket ${socket}`, cause))
      )
    )
  }
})

/** Everything that must hold before listening: a short enough path, a private directory, no live daemon. */
export const prepareSocket = Effect.fn("Server.prepareSocket")(function* (socket: string) {
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    return yield* new DaemonError({
      reason: "io_error",
      message: `the socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes; set XDG_RUNTIME_DIR or SWITCHBOARD_SOCKET to a shorter place`
    })
  }
  yield* ensurePrivateDirectory(Path.dirname(socket))
  yield* clearStaleSocket(socket)
})

/** After binding: the socket is 0600 and ours. */
const secureSocket = Effect.fn("Server.secureSocket")(function* (socket: string) {
  yield* Effect.try({
    try: () => Fs.chmodSync(socket, 0o600),
    catch: (cause) => io(`restricting the socket ${socket} to 0600`, cause)
  })
  const stat = yield* Effect.try({ try: () => Fs.lstatSync(socket), catch: (cause) => io(`checking ${socket}`, cause) })
  const uid = process.getuid?.()
  if (!stat.isSocket() || (uid !== undefined && stat.uid !== uid)) {
    return yield* insecure(`${socket} is not this daemon's socket after binding`)
  }
})

// ---------------------------------------------------------------------------------------------------------------
// Middleware

const headerIssues = (error: Schema.SchemaError) =>
  Validation.issuesOf(error).map((issue) => ({
    path: issue.path === "" ? "" : `x-switchboard-${issue.path}`,
    message: issue.message
  }))

const badRequest = (message: string, issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>) =>
  new Api.BadRequest({
    error:
      issues === undefined
        ? { code: "invalid_parameter", message }
        : { code: "invalid_parameter", message, details: { issues: issues.map((i) => ({ ...i })) } }
  })

/**
 * The principal of a request: the API key's on the TCP listener (where the principal headers are never trusted),
 * else from the trusted headers when the configuration allows them.
 */
export const principalOf = (
  headers: Readonly<Record<string, string | undefined>>,
  options: Pick<Options, "trustHeaders" | "principal">
): Effect.Effect<Principal.Principal, Api.BadRequest> =>
  Effect.flatMap(ApiKeys.Authenticated, (authenticated) => {
    if (authenticated === undefined) return principalOfHeaders(headers, options)
    const sent = Object.values(Api.principalHeaders).filter((name) => headers[name] !== undefined)
    return sent.length === 0
      ? Effect.succeed(authenticated)
      : Effect.fail(
          badRequest(
            "X-Switchboard-* headers are not accepted with an API key: the key's principal is the caller",
            sent.map((path) => ({ path, message: "not accepted on the TCP listener" }))
          )
        )
  })

const principalOfHeaders = (
  headers: Readonly<Record<string, string | undefined>>,
  options: Pick<Options, "trustHeaders" | "principal">
): Effect.Effect<Principal.Principal, Api.BadRequest> => {
  const given = {
    org: headers[Api.principalHeaders.org],
    workspace: headers[Api.principalHeaders.workspace],
    user: headers[Api.principalHeaders.user],
    role: headers[Api.principalHeaders.role]
  }
  const present = Object.values(given).some((v) => v !== undefined)
  if (!present) return Effect.succeed(options.principal)
  if (!options.trustHeaders) {
    return Effect.fail(
      badRequest(
        "this daemon does not trust X-Switchboard-* headers; enable trust_headers in config.json or SWITCHBOARD_TRUST_HEADERS=1"
      )
    )
  }
  if (given.user === undefined) {
    return Effect.fail(
      badRequest("X-Switchboard-User is required with the other X-Switchboard-* headers", [
        { path: Api.principalHeaders.user, message: "Missing key" }
      ])
    )
  }
  // Trusted callers name the user; what they leave out is the least: the local org, default workspace, viewer.
  const candidate = {
    org: given.org ?? options.principal.org,
    workspace: given.workspace ?? options.principal.workspace,
    user: given.user,
    role: given.role ?? "viewer"
  }
  return Schema.decodeUnknownEffect(Principal.Principal)(candidate, { errors: "all" }).pipe(
    Effect.mapError((error) => {
      const issues = headerIssues(error)
      return badRequest(
        `invalid X-Switchboard-* headers: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
        issues
      )
    })
  )
}

/** The `Caller` middleware: provides `CurrentPrincipal` to every handler. */
export const callerLayer = (options: Pick<Options, "trustHeaders" | "principal">) =>
  Layer.succeed(
    Api.Caller,
    Api.Caller.of((httpEffect) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const principal = yield* principalOf(request.headers, options)
        return yield* Effect.provideService(httpEffect, Principal.CurrentPrincipal, principal)
      })
    )
  )

/**
 * Request decode failures in the one error shape: a path segment that does not fit (an unknown credential scope,
 * a version that is not a number) is a 404 `route_not_found`; a bad query, header or body (malformed JSON) is a
 * 422 `validation_failed` listing each issue, like the service's own validation.
 */
export const requestErrorsLayer = HttpApiMiddleware.layerSchemaErrorTransform(Api.RequestErrors, (error) =>
  Effect.gen(function* () {
    const issues = Validation.issuesOf(error.cause)
    if (error.kind === "Params") {
      const request = yield* HttpServerRequest.HttpServerRequest
      const why = issues.map((i) => (i.path === "" ? i.message : `${i.path}: ${i.message}`)).join("; ")
      return yield* Api.makeError(404, "route_not_found", `no route ${request.method} ${pathOf(request.url)}: ${why}`, {
        issues
      })
    }
    if (error.kind === "ResponseHeaders") {
      return yield* Api.makeError(500, "internal_error", "the response could not be encoded")
    }
    const what = error.kind === "Body" || error.kind === "Payload" ? "payload" : error.kind.toLowerCase()
    const failed = Validation.validationFailed(`request ${what}`, issues)
    return yield* Api.makeError(422, failed.code, failed.message, failed.details)
  })
)

const pathOf = (url: string): string => url.split("?")[0] ?? url

// ---------------------------------------------------------------------------------------------------------------
// Routes and server

/** Unknown routes answer 404 `route_not_found` in the error shape instead of an empty 404. */
export const notFoundRoute = HttpRouter.add("*", "*", (request) =>
  HttpServerResponse.json(
    { error: { code: "route_not_found", message: `no route ${request.method} ${pathOf(request.url)}` } },
    { status: 404 }
  )
)

const codeByStatus: Readonly<Record<number, readonly [code: string, message: string]>> = {
  400: ["invalid_parameter", "the request could not be read"],
  404: ["route_not_found", "no such route"],
  405: ["route_not_found", "no such route for this method"],
  413: ["payload_too_large", "the request body is too large"],
  415: ["unsupported_media_type", "send the body as JSON with content-type: application/json"],
  500: ["internal_error", "internal error; see the daemon log"],
  503: ["unavailable", "the daemon is shutting down"]
}

/**
 * An error response that is not JSON (the platform's own 415 for a body that is not JSON, an empty 413, …)
 * becomes the one error shape, keeping its status and headers. The proxy's upstream answers (`Api.upstreamHeader`)
 * and HTML pages pass as they are.
 */
export const ensureErrorShape = (
  response: HttpServerResponse.HttpServerResponse
): HttpServerResponse.HttpServerResponse => {
  if (response.status < 400 || (response.headers["content-type"] ?? "").startsWith("application/json")) return response
  if (response.headers[Api.upstreamHeader] !== undefined) return response
  // The OAuth callback's result pages (the team server's `public_url` callback): for a browser, as they are.
  if ((response.headers["content-type"] ?? "").startsWith("text/html")) return response
  const [code, message] = codeByStatus[response.status] ?? [`http_${response.status}`, `HTTP ${response.status}`]
  const { "content-type": _type, "content-length": _length, ...headers } = response.headers
  return HttpServerResponse.jsonUnsafe({ error: { code, message } }, { status: response.status, headers })
}

/** The largest API request body (the proxy route streams its bodies upstream and has no such limit). */
export const maxApiBodyBytes = 1024 * 1024

const proxyPath = /^\/v1\/connections\/[^/]+\/proxy(\/|$)/

/** platform-node's `MaxBytesError`, the cause of a body read cut off at `MaxBodySize`. */
const isMaxBytes = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && (cause as { readonly _tag?: unknown })._tag === "MaxBytesError"

const tooLarge = () =>
  HttpServerResponse.jsonUnsafe(
    {
      error: {
        code: "payload_too_large",
        message: `the request body is larger than ${maxApiBodyBytes} bytes`
      }
    },
    { status: 413 }
  )

/**
 * API bodies are at most `maxApiBodyBytes`: a larger declared `content-length` is answered 413 before the body is
 * read, and a chunked body is cut off at the limit (its read fails, answered 413). The proxy route is exempt.
 */
export const bodyLimitMiddleware = HttpRouter.middleware(
  (httpEffect) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      // A request without a body (every GET) goes straight on: no generator, no path test.
      if ((request.method === "GET" || request.method === "HEAD") && request.headers["content-length"] === undefined) {
        return httpEffect
      }
      return limitBody(request, httpEffect)
    }),
  { global: true }
)

const limitBody = <E, R>(
  request: HttpServerRequest.HttpServerRequest,
  httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.gen(function* () {
    if (proxyPath.test(pathOf(request.url))) return yield* httpEffect
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > maxApiBodyBytes) return tooLarge()
    if (request.method === "GET" || request.method === "HEAD") return yield* httpEffect
    // The body is read (and cached for the handler) here, with the limit: a chunked body that goes past it
    // fails the read. Other read failures (the client went away) are left to the handler as they were.
    const overflow = yield* request.arrayBuffer.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxApiBodyBytes)),
      Effect.map(() => false),
      Effect.catch((error) => Effect.succeed(isMaxBytes(error.cause)))
    )
    if (overflow) return tooLarge()
    return yield* httpEffect
  })

/** Applies `ensureErrorShape` to every route. */
export const errorShapeMiddleware = HttpRouter.middleware((httpEffect) => Effect.map(httpEffect, ensureErrorShape), {
  global: true
})

/** The API routes (with `/openapi.json`) and the catch-all; they need the `Switchboard` service. */
export const routes = (options: Pick<Options, "trustHeaders" | "principal" | "routes">) => {
  const api = HttpApiBuilder.layer(Api.Api, { openapiPath: "/openapi.json" }).pipe(
    Layer.provide(Handlers.layer),
    Layer.provide([callerLayer(options), requestErrorsLayer])
  )
  return options.routes === undefined
    ? Layer.mergeAll(api, notFoundRoute, errorShapeMiddleware, bodyLimitMiddleware)
    : Layer.mergeAll(api, options.routes, notFoundRoute, errorShapeMiddleware, bodyLimitMiddleware)
}

/**
 * A request Node's HTTP parser refuses before any route sees it (a request line or headers over Node's 16 KiB
 * limit, a malformed request line or chunk) is answered in the error shape, not Node's bare `400 Bad Request`.
 */
export const answerClientError = (error: Error & { readonly code?: string }, socket: Duplex) => {
  // Like Node's own handler: only a connection that has not been answered yet gets a response.
  if (error.code === "ECONNRESET" || !socket.writable || (socket as Net.Socket).bytesWritten > 0) {
    socket.destroy()
    return
  }
  const [status, reason, code, message] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large", "headers_too_large", "the request line or headers are too large"]
      : [400, "Bad Request", "invalid_parameter", "the request could not be parsed as HTTP"]
  const body = JSON.stringify({ error: { code, message } })
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  )
}

/** Listen on the socket (checked and freed first) and make it 0600. */
export const listen = (options: Pick<Options, "socket" | "shutdownTimeout">) =>
  Layer.mergeAll(
    Layer.effect(
      HttpServer.HttpServer,
      Effect.gen(function* () {
        yield* prepareSocket(options.socket)
        const server = yield* NodeHttpServer.make(() => createServer().on("clientError", answerClientError), {
          path: options.socket,
          gracefulShutdownTimeout: options.shutdownTimeout ?? "10 seconds"
        }).pipe(
          Effect.mapError((error) =>
            errnoOf(error.cause) === "EADDRINUSE"
              ? alreadyRunning(options.socket)
              : io(`listening on ${options.socket}`, error.cause)
          )
        )
        yield* secureSocket(options.socket)
        return server
      })
    ),
    NodeHttpServer.layerHttpServices
  )

/**
 * Requests the router cannot even look up (a malformed percent-encoding such as `/v1/connectors/%`, a path
 * parameter longer than the router's limit) fail before any route or route middleware runs and were answered
 * with an empty 404; a pre-response handler puts those in the error shape too.
 */
export const shapeUnroutedErrors = <E, R>(
  httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  HttpEffect.withPreResponseHandler(httpEffect, (_request, response) => Effect.succeed(ensureErrorShape(response)))

/** Whether a failure is only the client going away (logged as a plain response, like the platform's logger). */
const isClientAbortOnly = (cause: Cause.Cause<unknown>): boolean =>
  cause.reasons.every(
    (reason) => reason._tag === "Interrupt" && reason.annotations.has(HttpServerError.ClientAbort.key)
  )

/** The request log line: what the platform's `HttpMiddleware.logger` writes, with the status actually sent. */
const logResponse = (
  request: HttpServerRequest.HttpServerRequest,
  status: number,
  failure: Cause.Cause<unknown> | undefined
) => {
  const stripped = failure === undefined ? undefined : HttpServerError.causeResponseStripped(failure)[1]
  const message =
    stripped !== undefined && Option.isSome(stripped) && !isClientAbortOnly(stripped.value)
      ? stripped.value
      : "Sent HTTP response"
  return Effect.annotateLogs(Effect.log(message), {
    "http.method": request.method,
    "http.url": pathOf(request.url),
    "http.status": status
  })
}

/**
 * Every response of the socket server, routed or not, in the error shape (`ensureErrorShape`) and, unless
 * `logRequests` is false, logged in one line. A global route middleware wraps the router's lookup too, and its
 * pre-response handler sees every response, the ones made from a failure included; done here rather than as the
 * server's `middleware` (and the platform's logger middleware), the request runs on the platform's fast path: no
 * per-request server span (nothing exports spans), no extra continuations.
 */
export const responseMiddleware = (options: Pick<Options, "logRequests">) =>
  HttpRouter.middleware(
    (httpEffect) => {
      if (options.logRequests === false) {
        return HttpEffect.withPreResponseHandler(httpEffect, (_request, response) =>
          Effect.succeed(ensureErrorShape(response))
        )
      }
      // The middleware wraps the router once; what one request failed with is kept per request.
      return Effect.suspend(() => {
        let failure: Cause.Cause<unknown> | undefined
        return HttpEffect.withPreResponseHandler(
          Effect.onError(httpEffect, (cause) =>
            Effect.sync(() => {
              failure = cause
            })
          ),
          (request, response) => {
            const shaped = ensureErrorShape(response)
            return Effect.as(logResponse(request, shaped.status, failure), shaped)
          }
        )
      })
    },
    { global: true }
  )

/** The whole server: the API on the socket. Needs the `Switchboard` service; its scope's end is a graceful stop. */
export const layer = (options: Options): Layer.Layer<never, DaemonError, Switchboard.Switchboard> =>
  // Registered first, the response middleware is the outermost, so even the body limit's 413 is logged.
  HttpRouter.serve(routes(options).pipe(Layer.provide(responseMiddleware(options))), {
    disableLogger: true,
    disableListenLog: true
  }).pipe(Layer.provide(listen(options)))
