/**
 * The `Upstream` port on `node:http`: every call goes through the SSRF guard (resolve once, check every
 * address, connect to the checked address and nowhere else), streams the request body from an Effect Stream
 * and the response body back as one, times out (connect, and total including the body), and follows redirects
 * only for GET and HEAD without a body, at most 5, re-checking every hop. `Redacted` header values are revealed
 * only while the request head is written; on a redirect to another origin they are not sent at all.
 *
 * Why node:http and not `effect/http`'s HttpClient: pinning needs control of the socket itself (the checked
 * IP, with the URL's host only as TLS server name and `Host` header), and so does the connect timeout. The
 * socket comes from `connect`, which tests replace to count (and confine) connection attempts.
 *
 * Connections are kept alive and reused for idempotent requests without a body (GET, HEAD, OPTIONS, DELETE,
 * PUT): one keep-alive pool per checked address, port, scheme and TLS server name, so a socket is only ever
 * reused for the very target it was opened (and its certificate verified) for, and a name that resolves
 * elsewhere next time gets another pool. A reused socket the server closed meanwhile fails before any answer,
 * which the caller's retry of idempotent requests covers. Requests with a body, or not idempotent, still get a
 * fresh connection of their own, closed after the answer: their body cannot be replayed.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import { UpstreamError } from "@switchboard/core/Errors"
import { idempotentMethods } from "@switchboard/core/Resilience"
import { Resolver } from "@switchboard/core/Resolver"
import { Upstream, type UpstreamRequest, type UpstreamResponse } from "@switchboard/core/Upstream"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Http from "node:http"
import * as Net from "node:net"
import { pipeline } from "node:stream"
import * as Tls from "node:tls"
import * as Ssrf from "./Ssrf.ts"

/** Where a connection goes: always a checked IP address; `hostname` is only the TLS server name. */
export interface ConnectOptions {
  readonly address: string
  readonly family: 4 | 6
  readonly port: number
  readonly hostname: string
  readonly tls: boolean
}

/** Opens the socket of one connection attempt (TCP, or TLS for https). */
export type Connect = (options: ConnectOptions) => Net.Socket

export interface Options {
  /** The daemon-wide local-first switch: allow loopback and private targets for every request. */
  readonly allowPrivateNetwork?: boolean | undefined
  /** Replaces how sockets are opened (tests count attempts through it). */
  readonly connect?: Connect | undefined
  /** Extra trusted CA certificates for https upstreams. */
  readonly ca?: Tls.ConnectionOptions["ca"] | undefined
  readonly connectTimeoutMillis?: number | undefined
  readonly totalTimeoutMillis?: number | undefined
  readonly maxRedirects?: number | undefined
  /** Reuse connections for idempotent requests without a body; on by default. */
  readonly keepAlive?: boolean | undefined
  /** How long an idle kept-alive connection stays open (a server's `Keep-Alive: timeout` hint may shorten it). */
  readonly idleTimeoutMillis?: number | undefined
}

export const defaults = {
  connectTimeoutMillis: 10_000,
  totalTimeoutMillis: 60_000,
  maxRedirects: 5,
  // Below the 5 s idle timeout of node's own servers, so a pooled socket is rarely closed under a request.
  idleTimeoutMillis: 4_000
} as const

/** Idle connections kept per target, and targets with a pool (the least recently used pool goes first). */
const MAX_IDLE_PER_TARGET = 32
const MAX_POOLS = 256

/** A lookup that always fails: sockets are opened to checked IP addresses, so a lookup here would be a bug. */
const noLookup: Net.LookupFunction = (hostname, _options, callback) => {
  callback(new Error(`refused a DNS lookup of ${hostname} after the SSRF check`), "", 4)
}

/** The default `Connect`: TCP to the checked address; TLS verifies the certificate against the URL's host. */
export const makeConnect =
  (ca?: Tls.ConnectionOptions["ca"]): Connect =>
  (o) =>
    o.tls
      ? Tls.connect({
          host: o.address,
          port: o.port,
          // SNI carries names only; for an IP literal the certificate is checked against the IP itself.
          ...(Net.isIP(o.hostname) === 0 ? { servername: o.hostname } : {}),
          ...(ca === undefined ? {} : { ca }),
          ALPNProtocols: ["http/1.1"],
          lookup: noLookup
        })
      : Net.connect({ host: o.address, port: o.port, lookup: noLookup })

const codeOf = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : "ECONNRESET"

const TLS_CODE = /CERT|^ERR_TLS_|^ERR_SSL_|^UNABLE_TO_|^EPROTO$/u

/** What the error of one exchange needs to say where it happened. Never the URL: it may carry secrets. */
interface Exchange {
  readonly host: string
  readonly endpoint: string
  readonly connectMillis: number
  readonly totalMillis: number
  timedOut: "connect" | "total" | undefined
  response: Http.IncomingMessage | undefined
}

/**
 * Arm the connect and total deadlines of one exchange. On expiry the exchange is marked (so `failure` can say
 * which deadline passed) and the response, or before there is one `carrier` (the request or its socket), is
 * destroyed. The total deadline also covers the body, which is read after the request effect has completed.
 * Both timers clear when `carrier` closes; the connect timer is returned for the caller to clear on connect.
 */
const armDeadlines = (
  x: Exchange,
  remainingMillis: number,
  carrier: { destroy(error?: Error): unknown; once(event: "close", listener: () => void): unknown }
): NodeJS.Timeout => {
  const kill = (why: "connect" | "total") => {
    x.timedOut = why
    const error = new Error(`${why} timeout`)
    if (x.response === undefined) carrier.destroy(error)
    else x.response.destroy(error)
  }
  const connectTimer = setTimeout(() => kill("connect"), x.connectMillis)
  const totalTimer = setTimeout(() => kill("total"), remainingMillis)
  totalTimer.unref()
  carrier.once("close", () => {
    clearTimeout(connectTimer)
    clearTimeout(totalTimer)
  })
  return connectTimer
}

const failure = (cause: unknown, x: Exchange, during: "request" | "body"): UpstreamError => {
  if (cause instanceof UpstreamError) return cause
  const details = { host: x.host, endpoint: x.endpoint }
  if (x.timedOut === "connect") {
    return new UpstreamError({
      reason: "upstream_timeout",
      message: `connecting to ${x.host} (${x.endpoint}) timed out after ${x.connectMillis} ms`,
      details: { ...details, timeout: "connect", timeout_ms: x.connectMillis }
    })
  }
  if (x.timedOut === "total") return totalTimeout(x.host, x.totalMillis)
  const code = codeOf(cause)
  if (code.startsWith("HPE_")) {
    return new UpstreamError({
      reason: "upstream_protocol_error",
      message: `${x.host} sent an invalid HTTP response (${code})`,
      details: { ...details, code }
    })
  }
  if (TLS_CODE.test(code)) {
    return new UpstreamError({
      reason: "upstream_protocol_error",
      message: `TLS with ${x.host} (${x.endpoint}) failed (${code})`,
      details: { ...details, code }
    })
  }
  return new UpstreamError({
    reason: "upstream_unreachable",
    message:
      during === "body"
        ? `the connection to ${x.host} (${x.endpoint}) broke while reading the response body (${code})`
        : `could not reach ${x.host} (${x.endpoint}): ${code}`,
    details: { ...details, code }
  })
}

const totalTimeout = (host: string, millis: number) =>
  new UpstreamError({
    reason: "upstream_timeout",
    message: `the call to ${host} timed out after ${millis} ms`,
    details: { host, timeout: "total", timeout_ms: millis }
  })

const protocolError = (host: string, message: string, details: Record<string, unknown> = {}) =>
  new UpstreamError({ reason: "upstream_protocol_error", message, details: { host, ...details } })

/**
 * The request head as node writes it: `Host` from the URL, secrets revealed here and only here. A body of
 * unknown length is sent chunked whatever the method (node would send a GET body unframed).
 */
const nodeHeaders = (url: URL, headers: UpstreamRequest["headers"], hasBody: boolean): Record<string, string> => {
  const out: Record<string, string> = { Host: url.host }
  let framed = false
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase()
    if (lower === "host" || lower === "transfer-encoding") continue
    if (lower === "content-length") framed = true
    out[name] = Redacted.isRedacted(value) ? Redacted.value(value) : value
  }
  if (hasBody && !framed) out["Transfer-Encoding"] = "chunked"
  return out
}

const flattenHeaders = (headers: Http.IncomingHttpHeaders): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return out
}

/** Credentials (the `Redacted` values) stay with the origin they were configured for. */
const withoutSecrets = (headers: UpstreamRequest["headers"]): UpstreamRequest["headers"] =>
  Object.fromEntries(Object.entries(headers).filter(([, value]) => !Redacted.isRedacted(value)))

const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308])

/** Build the service; it captures the `Resolver`, so the service itself needs nothing. */
export const make = (options: Options = {}) =>
  Effect.gen(function* () {
    const resolver = yield* Resolver
    const connect = options.connect ?? makeConnect(options.ca)
    const maxRedirects = options.maxRedirects ?? defaults.maxRedirects
    const keepAlive = options.keepAlive !== false

    // One keep-alive pool per checked target. The key holds everything the socket was opened and verified for.
    const pools = new Map<string, Http.Agent>()
    // Sockets whose connect (or TLS handshake) completed: a reused one needs no connect timeout.
    const connected = new WeakSet<Net.Socket>()
    // Pools let go of (evicted, or the layer closed): their idle sockets are closed, busy ones once answered.
    const retired = new WeakSet<Http.Agent>()
    const retire = (agent: Http.Agent) => {
      retired.add(agent)
      for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy()
    }
    const poolFor = (pinned: Ssrf.Pinned): Http.Agent => {
      // Neither an address nor a port holds a space; the host name comes last, so the key is unambiguous.
      const key = `${pinned.secure ? "https" : "http"} ${pinned.address.address} ${pinned.port} ${pinned.hostname}`
      const existing = pools.get(key)
      if (existing !== undefined) {
        pools.delete(key)
        pools.set(key, existing)
        return existing
      }
      const oldest = pools.entries().next()
      if (pools.size >= MAX_POOLS && oldest.done !== true) {
        retire(oldest.value[1])
        pools.delete(oldest.value[0])
      }
      const agent = new Http.Agent({
        keepAlive: true,
        maxFreeSockets: MAX_IDLE_PER_TARGET,
        timeout: options.idleTimeoutMillis ?? defaults.idleTimeoutMillis,
        scheduling: "lifo"
      })
      const keepSocketAlive = agent.keepSocketAlive.bind(agent)
      agent.keepSocketAlive = (socket) => !retired.has(agent) && keepSocketAlive(socket)
      const target: ConnectOptions = {
        address: pinned.address.address,
        family: pinned.address.family,
        port: pinned.port,
        hostname: pinned.hostname,
        tls: pinned.secure
      }
      // A connect that throws (the tests' confinement) fails the request like a refused connection.
      agent.createConnection = ((_: unknown, done: (error: Error | null, socket?: Net.Socket) => void) => {
        let socket: Net.Socket
        try {
          socket = connect(target)
        } catch (cause) {
          done(cause instanceof Error ? cause : new Error(String(cause)))
          return undefined
        }
        socket.once(target.tls ? "secureConnect" : "connect", () => connected.add(socket))
        return socket
      }) as unknown as Http.Agent["createConnection"]
      pools.set(key, agent)
      return agent
    }
    // Closing the layer closes idle connections; a body still being read finishes on its own.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const agent of pools.values()) retire(agent)
        pools.clear()
      })
    )

    /**
     * One exchange on a pooled connection (idempotent, no body): the agent opens a socket through `connect` or
     * reuses an idle one to the same target. Timers end with the request (response read or destroyed).
     */
    const sendPooled = (
      pinned: Ssrf.Pinned,
      method: string,
      headers: UpstreamRequest["headers"],
      x: Exchange,
      remainingMillis: number
    ) =>
      Effect.callback<Http.IncomingMessage, UpstreamError>((resume) => {
        let done = false
        const finish = (effect: Effect.Effect<Http.IncomingMessage, UpstreamError>) => {
          if (done) return
          done = true
          resume(effect)
        }
        let request: Http.ClientRequest
        try {
          request = Http.request({
            method,
            host: pinned.address.address,
            port: pinned.port,
            path: `${pinned.url.pathname}${pinned.url.search}`,
            headers: nodeHeaders(pinned.url, headers, false),
            setHost: false,
            agent: poolFor(pinned)
          })
        } catch (cause) {
          finish(
            Effect.fail(protocolError(x.host, "the request has an invalid method or header", { code: codeOf(cause) }))
          )
          return
        }
        const connectTimer = armDeadlines(x, remainingMillis, request)
        request.once("socket", (socket: Net.Socket) => {
          if (connected.has(socket)) clearTimeout(connectTimer)
          else socket.once(pinned.secure ? "secureConnect" : "connect", () => clearTimeout(connectTimer))
        })
        request.once("error", (cause) => finish(Effect.fail(failure(cause, x, "request"))))
        request.once("response", (response) => {
          clearTimeout(connectTimer)
          x.response = response
          finish(Effect.succeed(response))
        })
        request.end()
        return Effect.sync(() => {
          if (!done) request.destroy()
        })
      })

    /** One exchange with one pinned address: resolves with the response head, the body still unread. */
    const send = (
      pinned: Ssrf.Pinned,
      method: string,
      headers: UpstreamRequest["headers"],
      body: UpstreamRequest["body"],
      x: Exchange,
      remainingMillis: number
    ) =>
      Effect.callback<Http.IncomingMessage, UpstreamError>((resume) => {
        let done = false
        const finish = (effect: Effect.Effect<Http.IncomingMessage, UpstreamError>) => {
          if (done) return
          done = true
          resume(effect)
        }
        let socket: Net.Socket
        try {
          socket = connect({
            address: pinned.address.address,
            family: pinned.address.family,
            port: pinned.port,
            hostname: pinned.hostname,
            tls: pinned.secure
          })
        } catch (cause) {
          finish(Effect.fail(failure(cause, x, "request")))
          return
        }
        const connectTimer = armDeadlines(x, remainingMillis, socket)
        let request: Http.ClientRequest
        try {
          request = Http.request({
            method,
            host: pinned.address.address,
            port: pinned.port,
            path: `${pinned.url.pathname}${pinned.url.search}`,
            headers: nodeHeaders(pinned.url, headers, body !== undefined),
            setHost: false,
            createConnection: () => socket
          })
        } catch (cause) {
          // Node validates the head: an invalid header name or value, never echoed (it may be a secret).
          socket.destroy()
          finish(
            Effect.fail(protocolError(x.host, "the request has an invalid method or header", { code: codeOf(cause) }))
          )
          return
        }
        // The body starts flowing only once connected, so a failed connect leaves it unread (and retryable).
        socket.once(pinned.secure ? "secureConnect" : "connect", () => {
          clearTimeout(connectTimer)
          if (body !== undefined) pipeline(NodeStream.toReadableNever(body), request, () => {})
        })
        request.once("error", (cause) => finish(Effect.fail(failure(cause, x, "request"))))
        request.once("response", (response) => {
          clearTimeout(connectTimer)
          x.response = response
          finish(Effect.succeed(response))
        })
        if (body === undefined) request.end()
        return Effect.sync(() => {
          if (!done) request.destroy()
        })
      })

    const request = Effect.fnUntraced(function* (req: UpstreamRequest) {
      const method = req.method.toUpperCase()
      const connectMillis = req.connectTimeoutMillis ?? options.connectTimeoutMillis ?? defaults.connectTimeoutMillis
      const totalMillis = req.totalTimeoutMillis ?? options.totalTimeoutMillis ?? defaults.totalTimeoutMillis
      const allowPrivateNetwork = req.allowPrivateNetwork || options.allowPrivateNetwork === true
      const deadline = (yield* Clock.currentTimeMillis) + totalMillis
      const follow = (method === "GET" || method === "HEAD") && req.body === undefined

      let currentHost = "the upstream"
      const exchange = Effect.gen(function* () {
        let url = req.url
        let headers = req.headers
        for (let hop = 0; ; hop++) {
          // The URL is parsed once; an IP literal is checked synchronously, a name is looked up within the deadline.
          const parsed = Ssrf.parseTarget(url)
          const literal: Result.Result<Ssrf.Pinned, UpstreamError> | undefined = Result.isFailure(parsed)
            ? Result.fail(parsed.failure)
            : Ssrf.pinLiteral(parsed.success, { allowPrivateNetwork })
          const pinned = yield* (
            literal !== undefined
              ? Effect.fromResult(literal)
              : Effect.timeoutOrElse(
                  Ssrf.resolveName((parsed as Result.Success<Ssrf.Target, UpstreamError>).success, {
                    allowPrivateNetwork
                  }).pipe(Effect.provideService(Resolver, resolver)),
                  {
                    duration: Math.max(1, deadline - (yield* Clock.currentTimeMillis)),
                    orElse: () => Effect.fail(totalTimeout(currentHost, totalMillis))
                  }
                )
          ).pipe(
            Effect.mapError((e) =>
              hop === 0 || e.reason !== "destination_refused"
                ? e
                : new UpstreamError({
                    reason: e.reason,
                    message: `${e.message} (redirect ${hop})`,
                    details: { ...(e.details as object), redirect: hop }
                  })
            )
          )
          currentHost = pinned.hostname
          const endpoint =
            pinned.address.family === 6
              ? `[${pinned.address.address}]:${pinned.port}`
              : `${pinned.address.address}:${pinned.port}`
          const x: Exchange = {
            host: pinned.hostname,
            endpoint,
            connectMillis,
            totalMillis,
            timedOut: undefined,
            response: undefined
          }
          const remaining = Math.max(1, deadline - (yield* Clock.currentTimeMillis))
          const response =
            keepAlive && req.body === undefined && idempotentMethods.has(method)
              ? yield* sendPooled(pinned, method, headers, x, remaining)
              : yield* send(pinned, method, headers, req.body, x, remaining)
          const status = response.statusCode ?? 0
          const location = response.headers.location
          if (!follow || !REDIRECTS.has(status) || location === undefined) return { response, x }
          response.destroy()
          if (hop >= maxRedirects) {
            return yield* protocolError(x.host, `too many redirects (more than ${maxRedirects})`, {
              max_redirects: maxRedirects
            })
          }
          if (!URL.canParse(location, pinned.url.href)) {
            return yield* protocolError(x.host, `${x.host} redirected to an invalid URL`, { status })
          }
          const next = new URL(location, pinned.url)
          if (next.origin !== pinned.url.origin) headers = withoutSecrets(headers)
          url = next.href
        }
      })

      // The total deadline: a name lookup is bounded by the time left, and every exchange arms its own timers for
      // the time left (`armDeadlines`), body included. No race of the whole exchange against a timer fiber.
      const { response, x } = yield* exchange
      const result: UpstreamResponse = {
        status: response.statusCode ?? 0,
        headers: flattenHeaders(response.headers),
        body: NodeStream.fromReadable<Uint8Array, UpstreamError>({
          evaluate: () => response,
          onError: (cause) => failure(cause, x, "body"),
          closeOnDone: true
        })
      }
      return result
    })

    return Upstream.of({ request })
  })

/** The guarded client, with the default options. */
export const layer = Layer.effect(Upstream, make())

/** The guarded client with options (daemon-wide `allowPrivateNetwork`, a `connect` hook, extra CAs, …). */
export const layerWith = (options: Options) => Layer.effect(Upstream, make(options))
