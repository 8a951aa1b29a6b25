/**
 * The browser-facing listener: a browser cannot reach the Unix socket, so the daemon (and `switchboard auth login`
 * without a daemon) also listens on 127.0.0.1, on a configured port or an ephemeral one, for the OAuth redirect
 * target `http://127.0.0.1:PORT/v1/oauth/callback` and, in the daemon, the connect page and dashboard (`web/Web.ts`).
 * Requests whose `Host` header is not this listener's own loopback address and port are refused (421), which
 * defeats DNS rebinding: a page on another origin that rebinds its name to 127.0.0.1 still sends its own name as
 * `Host`. Pages are server-rendered HTML with a strict CSP and no
 * script, never cached; the callback's result page shows the connector and account or the error, never a token.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type { SwitchboardError } from "@switchboard/core/Errors"
import * as OAuth from "@switchboard/core/OAuth"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { HttpRouter, HttpServer } from "effect/http"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import { io } from "./DaemonError.ts"
import * as Pages from "./web/Pages.ts"
import * as Security from "./web/Security.ts"
import * as Web from "./web/Web.ts"

export const callbackPath = "/v1/oauth/callback"

/** Where the listener is: its port, origin and callback URL. */
export class BrowserListener extends Context.Service<
  BrowserListener,
  { readonly port: number; readonly origin: string; readonly callbackUrl: string }
>()("@switchboard/daemon/OAuthRoutes/BrowserListener") {}

/** Whether a `Host` header names this listener (127.0.0.1, localhost or [::1], with its port). */
export const hostAllowed = Security.hostAllowed

/** A short page (refusals, not found), styled like the others. */
export const page = (status: number, title: string, message: string) =>
  Web.respond(status, Pages.message(title, message))

export interface ListenerOptions {
  /** The port on 127.0.0.1; an ephemeral one when absent or 0. */
  readonly port?: number | undefined
  /** Called with the outcome of every callback (`switchboard auth login` waits on it). */
  readonly onCallback?: ((outcome: Exit.Exit<OAuth.Completed, SwitchboardError>) => Effect.Effect<void>) | undefined
  /** Also serve the connect page and the dashboard (`web/Web.ts`) as this principal; the daemon does. */
  readonly web?: Web.WebOptions | undefined
}

const param = (url: URL, name: string) => url.searchParams.get(name) ?? undefined

/** Complete the flow the callback's query names (its single-use state authenticates it); the result page. */
const completeCallback = (
  request: { readonly url: string },
  onCallback: ListenerOptions["onCallback"]
): Effect.Effect<ReturnType<typeof page>, never, OAuth.OAuth> =>
  Effect.gen(function* () {
    const url = new URL(request.url, "http://127.0.0.1")
    const oauth = yield* OAuth.OAuth
    const exit = yield* Effect.exit(
      oauth.complete({
        state: param(url, "state"),
        code: param(url, "code"),
        error: param(url, "error"),
        error_description: param(url, "error_description"),
        iss: param(url, "iss")
      })
    )
    if (onCallback !== undefined) yield* onCallback(exit)
    if (Exit.isSuccess(exit)) {
      const { connector, account_label } = exit.value
      return Web.respond(200, Pages.resultPage({ ok: true, connector, account: account_label }))
    }
    const error = Cause.findErrorOption(exit.cause)
    if (error._tag === "Some") {
      return Web.respond(
        error.value.status,
        Pages.resultPage({ ok: false, message: error.value.message, code: error.value.code })
      )
    }
    yield* Effect.logError("the OAuth callback failed with a defect", exit.cause)
    return Web.respond(500, Pages.resultPage({ ok: false, message: "Internal error; see the log." }))
  })

const routes = (cell: { port: number | undefined }, options: ListenerOptions) =>
  Layer.mergeAll(
    HttpRouter.add("GET", callbackPath, (request) =>
      cell.port === undefined || !hostAllowed(request.headers["host"], cell.port)
        ? Effect.succeed(page(421, "Wrong address", "This page is served only at its own loopback address."))
        : completeCallback(request, options.onCallback)
    ),
    Web.styleRoute(cell),
    options.web === undefined ? Layer.empty : Web.routes(cell, options.web),
    HttpRouter.add("*", "*", (request) =>
      Effect.succeed(
        cell.port !== undefined && hostAllowed(request.headers["host"], cell.port)
          ? page(404, "Not found", "Nothing here.")
          : page(421, "Wrong address", "This page is served only at its own loopback address.")
      )
    )
  )

/**
 * The OAuth redirect URI of a team server with a `public_url` (`https://switchboard.example.com`): its callback path.
 */
export const publicCallbackUrl = (publicUrl: string): string => `${publicUrl}${callbackPath}`

/**
 * The OAuth callback on a team server's TCP listener, for `public_url`: served without an API key (the single-use
 * state in the query authenticates it; `ApiKeys.middlewareWith` lets this one GET path through) and only for a
 * `Host` that is `public_url`'s own, as a fronting proxy passes it on (421 otherwise, against DNS rebinding). Needs
 * the `OAuth` service.
 */
export const publicCallbackRoute = (publicUrl: string) => {
  const own = new URL(publicUrl).host.toLowerCase()
  return HttpRouter.add("GET", callbackPath, (request) =>
    request.headers["host"]?.toLowerCase() === own
      ? completeCallback(request, undefined)
      : Effect.succeed(page(421, "Wrong address", `This page is served only at ${publicUrl}.`))
  )
}

/**
 * Listen on 127.0.0.1 for the OAuth callback while the layer lives; provides where it listens. Needs the `OAuth`
 * service.
 */
export const layer = (options: ListenerOptions = {}) => {
  const cell: { port: number | undefined } = { port: undefined }
  const server = Layer.mergeAll(
    Layer.effect(
      HttpServer.HttpServer,
      NodeHttpServer.make(() => createServer(), { port: options.port ?? 0, host: "127.0.0.1" }).pipe(
        Effect.mapError((error) => io(`listening on 127.0.0.1:${options.port ?? 0} for OAuth callbacks`, error.cause))
      )
    ),
    NodeHttpServer.layerHttpServices
  )
  const listener = Layer.effect(
    BrowserListener,
    Effect.gen(function* () {
      const http = yield* HttpServer.HttpServer
      const address = http.address
      if (address._tag === "UnixPathAddress") return yield* Effect.die(new Error("the callback listener is not on TCP"))
      cell.port = address.port
      const origin = `http://127.0.0.1:${address.port}`
      return { port: address.port, origin, callbackUrl: `${origin}${callbackPath}` }
    })
  )
  const app = HttpRouter.serve(routes(cell, options), { disableLogger: true, disableListenLog: true })
  return Layer.merge(listener, app).pipe(Layer.provide(server))
}
