/**
 * The credential-injecting HTTP proxy for REST connectors: `request(connection, {method, path, query, headers,
 * body})` resolves what the connection sends, joins the caller's path below the connection's base URL (never
 * above it), merges the query (connection pre-filled, then the caller's, then the auth parameters, which win),
 * forwards the caller's end-to-end headers but never its own credentials or hop-by-hop headers, adds the
 * connection's headers and the auth headers, and calls the upstream through the connection's rate limit,
 * circuit breaker and retry policy. Upstream `Set-Cookie` and hop-by-hop headers are dropped; bodies stream
 * both ways. Every call is audited: who, connection, connector, method, path (never the query), status,
 * duration and outcome; never bodies or secrets. OAuth connections go through the `TokenRefresher` hook: tokens
 * about to expire are refreshed first, and a 401 refreshes once and is retried when the request has no body.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { InvalidRequest, type SwitchboardError, type UpstreamError } from "./Errors.ts"
import { TokenRefresher } from "./OAuthRefresher.ts"
import * as Resilience from "./Resilience.ts"
import { type ResolvedCall, Switchboard } from "./Switchboard.ts"
import { Upstream, type UpstreamResponse } from "./Upstream.ts"

/** What a caller asks the proxy to send. `path` is below the connection's base URL and may carry a query. */
export interface ProxyRequest {
  readonly method: string
  readonly path: string
  readonly query?: Readonly<Record<string, string | ReadonlyArray<string>>> | undefined
  readonly headers?: Readonly<Record<string, string | ReadonlyArray<string> | undefined>> | undefined
  readonly body?: Stream.Stream<Uint8Array, UpstreamError> | undefined
}

/** Timeouts of a connection that sets none. */
export const defaultTimeouts = { connect_ms: 10_000, total_ms: 60_000 } as const

/** The methods the proxy forwards. TRACE would echo the injected credentials back; CONNECT is a tunnel. */
export const methods: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

/** Meaningful for one hop only (RFC 9110 §7.6.1), plus `Host` (set from the upstream URL) and `Expect`. */
export const hopByHop: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "expect"
])

/** The caller's own credentials are never forwarded: the connection's auth replaces them. */
const callerCredentials: ReadonlySet<string> = new Set(["authorization", "cookie", "proxy-authorization"])

const upstreamCookies: ReadonlySet<string> = new Set(["set-cookie", "set-cookie2"])

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/u
const BAD_VALUE = /[\r\n\0]/u
const hasControl = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x20 || code === 0x7f) return true
  }
  return false
}
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/u

const invalid = (message: string, details: Record<string, unknown>) =>
  new InvalidRequest({ reason: "invalid_parameter", message, details })

/** The header names a `Connection` header lists: hop-by-hop for this message too. */
const connectionTokens = (value: string | ReadonlyArray<string> | undefined): ReadonlySet<string> => {
  const text = typeof value === "string" ? value : value === undefined ? "" : value.join(",")
  return new Set(
    text
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== "")
  )
}

const isHopByHop = (lower: string, listed: ReadonlySet<string>) =>
  hopByHop.has(lower) || lower.startsWith("proxy-") || listed.has(lower)

const headerValue = (headers: Readonly<Record<string, unknown>>, name: string) => {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return v as string | ReadonlyArray<string> | undefined
  }
  return undefined
}

/**
 * The request head sent upstream: the caller's end-to-end headers, then the connection's headers, then the
 * auth headers (later ones replace earlier ones of the same name, whatever their case). Secrets stay
 * `Redacted` until the adapter writes them.
 */
export const requestHeaders = (
  caller: NonNullable<ProxyRequest["headers"]>,
  call: Pick<ResolvedCall, "headers" | "auth">,
  hasBody: boolean
): Result.Result<Record<string, string | Redacted.Redacted<string>>, InvalidRequest> => {
  const listed = connectionTokens(headerValue(caller, "connection"))
  const out = new Map<string, readonly [string, string | Redacted.Redacted<string>]>()
  for (const [name, raw] of Object.entries(caller)) {
    if (raw === undefined) continue
    const lower = name.toLowerCase()
    if (isHopByHop(lower, listed) || callerCredentials.has(lower)) continue
    if (lower === "content-length" && !hasBody) continue
    if (!TOKEN.test(name))
      return Result.fail(invalid("a header name is not a valid HTTP token", { parameter: "headers" }))
    const value = typeof raw === "string" ? raw : raw.join(", ")
    if (BAD_VALUE.test(value)) {
      return Result.fail(invalid(`header ${name} has an invalid value`, { parameter: "headers", header: name }))
    }
    out.set(lower, [name, value])
  }
  for (const [name, value] of Object.entries(call.headers)) out.set(name.toLowerCase(), [name, value])
  for (const [name, value] of Object.entries(call.auth.headers)) out.set(name.toLowerCase(), [name, value])
  return Result.succeed(Object.fromEntries(out.values()))
}

/** The response head returned to the caller: no cookies for the caller to keep, no hop-by-hop headers. */
export const responseHeaders = (upstream: Readonly<Record<string, string>>): Record<string, string> => {
  const listed = connectionTokens(headerValue(upstream, "connection"))
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(upstream)) {
    const lower = name.toLowerCase()
    if (isHopByHop(lower, listed) || upstreamCookies.has(lower)) continue
    out[name] = value
  }
  return out
}

/**
 * Decode the ASCII percent-escapes of a segment: enough to see dots, slashes, backslashes and semicolons
 * however they are written, and total (a malformed escape stays as it is).
 */
const decodeAscii = (segment: string): string =>
  segment.replace(/%([0-7][0-9A-Fa-f])/gu, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))

/** Overlong UTF-8 forms of ASCII (`%c0%ae` is a dot to some decoders). */
const OVERLONG = /%c[01]|%e0%[89]|%f0%8/iu

/**
 * Normalise the caller's path (without query) to segments below the base: `.` is dropped, `..` pops a segment
 * of the caller's own path and may never climb above the base path. Dot segments are recognised encoded too
 * (`%2e%2e`), and a segment that decodes to a climb through an encoded slash or a `;` parameter is refused
 * outright: an upstream may decode it either way.
 */
export const normalisePath = (path: string): Result.Result<string, InvalidRequest> => {
  const refuse = (why: string) => Result.fail(invalid(`refused the path: ${why}`, { parameter: "path" }))
  if (SCHEME.test(path)) return refuse("it is an absolute URL; give a path below the connection's base URL")
  if (path.startsWith("//")) return refuse("it starts with //, which would name another host")
  if (path.includes("\\")) return refuse("it contains a backslash")
  if (hasControl(path)) return refuse("it contains control characters")
  const segments: Array<string> = []
  const parts = path.split("/")
  if (parts[0] === "") parts.shift()
  for (const [i, segment] of parts.entries()) {
    if (OVERLONG.test(segment)) return refuse("it contains an overlong UTF-8 escape")
    const decoded = decodeAscii(segment)
    const last = i === parts.length - 1
    if (decoded === "." || decoded === "..") {
      if (decoded === "..") {
        if (segments.length === 0) return refuse("it climbs above the connection's base path")
        segments.pop()
      }
      if (last) segments.push("")
      continue
    }
    const pieces = decoded.split(/[/\\]/u).map((p) => p.split(";")[0])
    if (pieces.some((p) => p === ".." || p === ".")) return refuse("it hides a dot segment behind encoding")
    segments.push(segment)
  }
  return Result.succeed(segments.length === 0 ? "" : `/${segments.join("/")}`)
}

/** Where a call goes: the upstream URL (with the auth query, so never logged) and the path for the audit. */
export interface Target {
  readonly url: string
  readonly path: string
}

const setValues = (into: Map<string, Array<string>>, name: string, values: ReadonlyArray<string>) => {
  into.set(name, [...values])
}

/** Join the caller's path below the base URL and merge the query: pre-filled, then the caller's, then auth. */
export const target = (
  base: URL,
  req: Pick<ProxyRequest, "path" | "query">,
  prefilled: Readonly<Record<string, string>>,
  authQuery: Readonly<Record<string, Redacted.Redacted<string>>>
): Result.Result<Target, InvalidRequest> => {
  const hash = req.path.indexOf("#")
  const withoutHash = hash === -1 ? req.path : req.path.slice(0, hash)
  const question = withoutHash.indexOf("?")
  const rawPath = question === -1 ? withoutHash : withoutHash.slice(0, question)
  const normalised = normalisePath(rawPath)
  if (Result.isFailure(normalised)) return Result.fail(normalised.failure)
  const path = normalised.success
  const basePath = base.pathname.replace(/\/+$/u, "")
  const url = new URL(base.href)
  url.hash = ""
  url.pathname = path === "" ? base.pathname : `${basePath}${path}`

  const caller = new Map<string, Array<string>>()
  if (question !== -1) {
    for (const [k, v] of new URLSearchParams(withoutHash.slice(question + 1))) {
      caller.set(k, [...(caller.get(k) ?? []), v])
    }
  }
  for (const [k, v] of Object.entries(req.query ?? {})) setValues(caller, k, typeof v === "string" ? [v] : v)
  const merged = new Map<string, Array<string>>()
  for (const [k, v] of Object.entries(prefilled)) setValues(merged, k, [v])
  for (const [k, v] of caller) setValues(merged, k, v)
  for (const [k, v] of Object.entries(authQuery)) setValues(merged, k, [Redacted.value(v)])
  if (merged.size > 0) {
    const params = url.searchParams
    for (const [k, values] of merged) {
      params.delete(k)
      for (const v of values) params.append(k, v)
    }
  }
  // Belt and braces: whatever the URL parser made of it, the result stays on the base origin and path.
  if (url.origin !== base.origin || (url.pathname !== basePath && !url.pathname.startsWith(`${basePath}/`))) {
    return Result.fail(invalid("refused the path: it leaves the connection's base URL", { parameter: "path" }))
  }
  return Result.succeed({ url: url.href, path: path || "/" })
}

/** The base URL of a proxy-capable connector, or why the connector cannot be proxied. */
export const baseUrl = (call: Pick<ResolvedCall, "connector" | "baseUrl">): Result.Result<URL, InvalidRequest> => {
  const { connector } = call
  const details = { connector: connector.name, kind: connector.kind }
  if (connector.kind === "mcp") {
    return Result.fail(
      invalid(`connector ${connector.name} is an MCP server: list and call its tools instead of proxying HTTP`, details)
    )
  }
  if (connector.kind !== "http" && connector.kind !== "rest_api") {
    return Result.fail(
      invalid(`connector ${connector.name} is a ${connector.kind} connector, not an HTTP API`, details)
    )
  }
  if (connector.proxy_enabled === false) {
    return Result.fail(invalid(`proxying is disabled for connector ${connector.name}`, details))
  }
  const configured = connector.config?.url
  const raw = call.baseUrl ?? (typeof configured === "string" ? configured : undefined)
  if (raw === undefined) return Result.fail(invalid(`connector ${connector.name} has no proxy_url`, details))
  // The URL may hold rendered credential values: it is never echoed.
  if (!URL.canParse(raw)) return Result.fail(invalid(`the base URL of connector ${connector.name} is invalid`, details))
  const url = new URL(raw)
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Result.fail(invalid(`the base URL of connector ${connector.name} is not http or https`, details))
  }
  return Result.succeed(url)
}

export class Proxy extends Context.Service<
  Proxy,
  {
    readonly request: (connection: string, req: ProxyRequest) => Effect.Effect<UpstreamResponse, SwitchboardError>
  }
>()("@switchboard/core/Proxy") {}

const errorCode = (cause: Cause.Cause<SwitchboardError>): string => {
  const error = Cause.findErrorOption(cause)
  return error._tag === "Some" ? error.value.code : Cause.hasInterruptsOnly(cause) ? "interrupted" : "internal_error"
}

export const make = Effect.gen(function* () {
  const switchboard = yield* Switchboard
  const upstream = yield* Upstream
  const resilience = yield* Resilience.Resilience
  const refresher = yield* TokenRefresher

  // The per-call path is plain functions over a few Effects (no `Effect.fn` span or call-site capture, no
  // generator per step): it runs on every proxied request.
  const request = (connectionRef: string, req: ProxyRequest): Effect.Effect<UpstreamResponse, SwitchboardError> =>
    Effect.flatMap(switchboard.resolveCall(connectionRef), (resolved) =>
      // OAuth: an access token about to expire is refreshed first (single-flight).
      Effect.flatMap(refresher.beforeCall(resolved), (call) =>
        Effect.clockWith((clock) => {
          const { connection } = call
          const method = req.method.toUpperCase()
          const started = clock.currentTimeMillisUnsafe()
          let auditPath: string | undefined
          const rateLimit = Resilience.rateLimitOf(connection.rate_limit)
          const send = (call: ResolvedCall): Effect.Effect<UpstreamResponse, SwitchboardError> => {
            const base = baseUrl(call)
            if (Result.isFailure(base)) return Effect.fail(base.failure)
            const where = target(base.success, req, call.query, call.auth.query)
            if (Result.isFailure(where)) return Effect.fail(where.failure)
            auditPath = where.success.path
            const headers = requestHeaders(req.headers ?? {}, call, req.body !== undefined)
            if (Result.isFailure(headers)) return Effect.fail(headers.failure)
            const url = where.success.url
            return resilience.http({ key: connection.id, method, body: req.body, rateLimit }, (body) =>
              upstream.request({
                method,
                url,
                headers: headers.success,
                body,
                allowPrivateNetwork: call.connection.allow_private_network,
                key: call.connection.id,
                connectTimeoutMillis: call.connection.timeouts?.connect_ms ?? defaultTimeouts.connect_ms,
                totalTimeoutMillis: call.connection.timeouts?.total_ms ?? defaultTimeouts.total_ms
              })
            )
          }
          const filter = (response: UpstreamResponse): UpstreamResponse => ({
            ...response,
            headers: responseHeaders(response.headers)
          })
          const exchange: Effect.Effect<UpstreamResponse, SwitchboardError> = !methods.has(method)
            ? Effect.fail(
                invalid(`method ${method.slice(0, 16)} cannot be proxied`, {
                  parameter: "method",
                  allowed: [...methods]
                })
              )
            : Effect.flatMap(send(call), (response) =>
                response.status !== 401
                  ? Effect.succeed(filter(response))
                  : // OAuth: refresh once (unless someone else just did) and, when the request can be sent again, retry.
                    Effect.flatMap(refresher.afterUnauthorized(call), (retry) =>
                      Option.isSome(retry) && req.body === undefined
                        ? Effect.andThen(
                            Effect.ignore(Stream.runDrain(response.body)),
                            Effect.map(send(retry.value), filter)
                          )
                        : Effect.succeed(filter(response))
                    )
              )
          return Effect.flatMap(Effect.exit(exchange), (exit) =>
            Effect.andThen(
              switchboard.audit({
                action: "connection.proxy",
                outcome: Exit.isSuccess(exit) ? "success" : "failure",
                connector_id: call.connector.id,
                connection_id: connection.id,
                target: connection.name,
                method: method.slice(0, 16),
                ...(auditPath === undefined ? {} : { path: auditPath.slice(0, 2048) }),
                ...(Exit.isSuccess(exit) ? { status: exit.value.status } : { error_code: errorCode(exit.cause) }),
                duration_ms: clock.currentTimeMillisUnsafe() - started
              }),
              exit
            )
          )
        })
      )
    )

  return Proxy.of({ request })
})

/** The proxy over a given `Resilience` (share one with the MCP caller so a connection has one policy). */
export const layerNoDeps = Layer.effect(Proxy, make)

/** The proxy with its own default `Resilience`; needs `Switchboard` and `Upstream`. */
export const layer = layerNoDeps.pipe(Layer.provide(Resilience.layer))
