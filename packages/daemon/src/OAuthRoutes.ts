/**
 * The browser-facing listener: a browser cannot reach the Unix socket, so the daemon (and `switchboard auth login`
 * without a daemon) also listens on 127.0.0.1, on a configured port or an ephemeral one, for the OAuth redirect
 * target `http://127.0.0.1:PORT/v1/oauth/callback` only. Requests whose `Host` header is not this listener's own
 * loopback address and port are refused (421), which defeats DNS rebinding: a page on another origin that rebinds
 * its name to 127.0.0.1 still sends its own name as `Host`. Pages are static HTML with a strict CSP, never cached,
 * never referring; they show the connector and account or the error, never a token.
 */
import { NodeHttpServer } from "@effect/platform-node"
import type { SwitchboardError } from "@switchboard/core/Errors"
import * as OAuth from "@switchboard/core/OAuth"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import { io } from "./DaemonError.ts"

export const callbackPath = "/v1/oauth/callback"

/** Where the listener is: its port, origin and callback URL. */
export class BrowserListener extends Context.Service<
  BrowserListener,
  { readonly port: number; readonly origin: string; readonly callbackUrl: string }
>()("@switchboard/daemon/OAuthRoutes/BrowserListener") {}

/** Whether a `Host` header names this listener (127.0.0.1, localhost or [::1], with its port). */
export const hostAllowed = (host: string | undefined, port: number): boolean =>
  host !== undefined && [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(host.toLowerCase())

const escape = (text: string) =>
  text.replace(/[&<>"']/gu, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c)

const securityHeaders = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff"
}

/** A small static page. */
export const page = (status: number, title: string, message: string) =>
  HttpServerResponse.text(
    `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>` +
      `<body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>${escape(title)}</h1>` +
      `<p>${escape(message)}</p></body></html>`,
    { status, contentType: "text/html; charset=utf-8", headers: securityHeaders }
  )

export interface ListenerOptions {
  /** The port on 127.0.0.1; an ephemeral one when absent or 0. */
  readonly port?: number | undefined
  /** Called with the outcome of every callback (`switchboard auth login` waits on it). */
  readonly onCallback?: ((outcome: Exit.Exit<OAuth.Completed, SwitchboardError>) => Effect.Effect<void>) | undefined
}

const param = (url: URL, name: string) => url.searchParams.get(name) ?? undefined

const routes = (cell: { port: number | undefined }, options: ListenerOptions) =>
  Layer.mergeAll(
    HttpRouter.add("GET", callbackPath, (request) =>
      Effect.gen(function* () {
        if (cell.port === undefined || !hostAllowed(request.headers["host"], cell.port)) {
          return page(421, "Wrong address", "This page is served only at its own loopback address.")
        }
        const url = new URL(request.url, "http://127.0.0.1")
        const oauth = yield* OAuth.OAuth
        const exit = yield* Effect.exit(
          oauth.complete({
            state: param(url, "state"),
            code: param(url, "code"),
            error: param(url, "error"),
            error_description: param(url, "error_description")
          })
        )
        if (options.onCallback !== undefined) yield* options.onCallback(exit)
        if (Exit.isSuccess(exit)) {
          const { connector, account_label } = exit.value
          return page(
            200,
            "Connected",
            `Switchboard is connected to ${connector}${account_label === null ? "" : ` as ${account_label}`}. ` +
              "You can close this window."
          )
        }
        const error = Cause.findErrorOption(exit.cause)
        if (error._tag === "Some") return page(error.value.status, "Authorization failed", error.value.message)
        yield* Effect.logError("the OAuth callback failed with a defect", exit.cause)
        return page(500, "Authorization failed", "Internal error; see the log.")
      })
    ),
    HttpRouter.add("*", "*", (request) =>
      Effect.succeed(
        cell.port !== undefined && hostAllowed(request.headers["host"], cell.port)
          ? page(404, "Not found", "Nothing here.")
          : page(421, "Wrong address", "This page is served only at its own loopback address.")
      )
    )
  )

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
