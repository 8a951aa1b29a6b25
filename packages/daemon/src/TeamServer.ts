/**
 * The REST API on TCP, for a team server: the same routes as the Unix socket, behind API-key authentication
 * (`ApiKeys.middleware`: no key, a wrong or revoked one is a 401; the key's role decides the rest). There is no
 * peer check on TCP, so the listener never runs without it, and the principal headers are never trusted here.
 * Plain HTTP: TLS is the job of a fronting proxy (nginx, Caddy, a cloud load balancer). With a `public_url`, the
 * OAuth callback is served here too, without a key (`OAuthRoutes.publicCallbackRoute`).
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as Principal from "@switchboard/core/Principal"
import type * as Switchboard from "@switchboard/core/Switchboard"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as Layer from "effect/Layer"
import * as NetAddress from "effect/net/NetAddress"
import * as Schema from "effect/Schema"
import { createServer } from "node:http"
import * as ApiKeys from "./ApiKeys.ts"
import { DaemonError, errnoOf, io } from "./DaemonError.ts"
import * as OAuthRoutes from "./OAuthRoutes.ts"
import * as Server from "./Server.ts"

/** A TCP address to listen on. */
export interface Address {
  readonly host: string
  readonly port: number
}

/** `host:port` (`[::1]:8080` for IPv6; port 0 picks a free one). */
export const ListenAddress = Schema.String.check(
  Schema.isPattern(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/u, { message: "expected host:port" })
)

/** Parse `host:port`; undefined when it is not one. */
export const parseAddress = (text: string): Address | undefined => {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/u.exec(text.trim())
  if (match === null) return undefined
  const port = Number(match[3])
  if (port > 65_535) return undefined
  return { host: (match[1] ?? match[2]) as string, port }
}

/** The `host:port` a server listens on (its port chosen when 0 was asked). */
export const addressOf = (server: HttpServer.HttpServer["Service"]): string =>
  server.address._tag === "UnixPathAddress" ? server.address.path : NetAddress.formatInet(server.address)

export const formatAddress = (address: Address): string =>
  address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`

export interface Options {
  readonly address: Address
  /** Who calls when nothing else says: never used on TCP, where every request has a key's principal. */
  readonly principal: Principal.Principal
  readonly shutdownTimeout?: Duration.Input | undefined
  readonly logRequests?: boolean | undefined
  readonly routes?: Layer.Layer<never, never, HttpRouter.HttpRouter | Switchboard.Switchboard> | undefined
  /** `public_url`: serve its OAuth callback here (no key; needs the `OAuth` service). */
  readonly publicUrl?: string | undefined
}

const listen = (options: Pick<Options, "address" | "shutdownTimeout">) =>
  Layer.mergeAll(
    Layer.effect(
      HttpServer.HttpServer,
      NodeHttpServer.make(() => createServer().on("clientError", Server.answerClientError), {
        host: options.address.host,
        port: options.address.port,
        gracefulShutdownTimeout: options.shutdownTimeout ?? "10 seconds"
      }).pipe(
        Effect.mapError((error) =>
          errnoOf(error.cause) === "EADDRINUSE"
            ? new DaemonError({
                reason: "daemon_running",
                message: `${formatAddress(options.address)} is already in use`,
                cause: error.cause
              })
            : io(`listening on ${formatAddress(options.address)}`, error.cause)
        )
      )
    ),
    NodeHttpServer.layerHttpServices
  )

/**
 * The API on TCP, behind API keys. Needs the `Switchboard` service and the `ApiKeyStore`; exposes the
 * `HttpServer`, whose `address` has the port chosen when 0 was asked.
 */
export const layer = (options: Options) =>
  HttpRouter.serve(
    Layer.mergeAll(
      Server.routes({ trustHeaders: false, principal: options.principal, routes: options.routes }),
      options.publicUrl === undefined ? Layer.empty : OAuthRoutes.publicCallbackRoute(options.publicUrl),
      ApiKeys.middlewareWith({
        open: options.publicUrl === undefined ? undefined : new Set([OAuthRoutes.callbackPath])
      })
    ).pipe(
      // Registered first, the response middleware is the outermost: a 401 from the key check is logged too.
      Layer.provide(Server.responseMiddleware(options))
    ),
    // As on the socket: no platform logger middleware, so requests take the platform's fast path.
    { disableLogger: true, disableListenLog: true }
  ).pipe(Layer.provideMerge(listen(options)))
