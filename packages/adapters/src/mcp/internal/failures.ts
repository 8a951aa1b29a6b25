/**
 * What went wrong talking to an MCP server, classified: the `UpstreamError` reason, whether the session can
 * go on (the server answered with a JSON-RPC error) and whether the request certainly never reached the
 * server (refused connection, unknown session), which makes one retry on a fresh session safe even for a
 * tool call. Messages are scrubbed of the target's secrets before they leave.
 */
import { SseError } from "@modelcontextprotocol/sdk/client/sse.js"
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js"
import { UpstreamError } from "@switchboard/core/Errors"
import * as Data from "effect/Data"

/** A failure inside the adapter, before it is handed out as its `error`. */
export class SessionFailure extends Data.TaggedError("SessionFailure")<{
  readonly error: UpstreamError
  /** Opening the session failed, or a request on an open session. */
  readonly phase: "connect" | "session"
  /** The session may be used again. */
  readonly healthy: boolean
  /** The request never reached the server: retrying on a fresh session cannot run a tool twice. */
  readonly notSent: boolean
}> {}

/** Both transports of the HTTP fallback failed. */
export class FallbackFailed extends Error {
  constructor(streamable: unknown, sse: unknown) {
    super(`streamable HTTP: ${describe(streamable)}; legacy SSE: ${describe(sse)}`, { cause: sse })
    this.name = "FallbackFailed"
  }
}

const chainOf = (error: unknown): ReadonlyArray<unknown> => {
  const out: Array<unknown> = []
  const queue: Array<unknown> = [error]
  while (queue.length > 0 && out.length < 16) {
    const next = queue.shift()
    if (next === undefined || next === null || out.includes(next)) continue
    out.push(next)
    if (typeof next === "object") {
      if ("cause" in next) queue.push(next.cause)
      if (next instanceof AggregateError) queue.push(...next.errors)
    }
  }
  return out
}

const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : ""

/** The messages of an error and its causes, joined; `fetch failed: connect ECONNREFUSED 127.0.0.1:9`. */
export const describe = (error: unknown): string => {
  const messages: Array<string> = []
  for (const item of chainOf(error)) {
    const message = messageOf(item).trim()
    if (message !== "" && !messages.some((m) => m.includes(message))) messages.push(message)
  }
  return messages.length === 0 ? "unknown error" : messages.join(": ")
}

const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

/** Errors of a connection that was never made: nothing reached the server. */
const notConnected = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"])

const unreachableCodes = new Set([
  ...notConnected,
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOENT",
  "EACCES",
  "EPERM",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED"
])

export interface Context {
  /** What was being done: `connecting to the MCP server`, `tools/call add`, … */
  readonly operation: string
  readonly phase: "connect" | "session"
  readonly scrub: (text: string) => string
  /** Captured stderr of a local program, already scrubbed. */
  readonly stderr?: string | undefined
}

// ErrorCode is an enum; the codes on errors are plain numbers.
const REQUEST_TIMEOUT: number = ErrorCode.RequestTimeout
const CONNECTION_CLOSED: number = ErrorCode.ConnectionClosed

const make = (
  context: Context,
  reason: UpstreamError["reason"],
  cause: unknown,
  flags: { readonly healthy: boolean; readonly notSent: boolean },
  details: Record<string, unknown> = {}
): SessionFailure => {
  const stderr = context.stderr === undefined || context.stderr === "" ? "" : `; stderr: ${context.stderr}`
  return new SessionFailure({
    error: new UpstreamError({
      reason,
      message: context.scrub(`${context.operation} failed: ${describe(cause)}${stderr}`),
      details: { operation: context.scrub(context.operation), ...details }
    }),
    phase: context.phase,
    ...flags
  })
}

/** Classify any failure of the SDK, the transports or the network. */
export const classify = (cause: unknown, context: Context): SessionFailure => {
  const chain = chainOf(cause)
  // The SSRF guard refused the destination or could not resolve it: nothing was sent.
  const guard = chain.find((e): e is UpstreamError => e instanceof UpstreamError)
  if (guard !== undefined) {
    const details = typeof guard.details === "object" && guard.details !== null ? { ...guard.details } : {}
    return make(context, guard.reason, guard, { healthy: false, notSent: true }, details)
  }
  const mcp = chain.find((e): e is McpError => e instanceof McpError)
  if (mcp !== undefined) {
    if (mcp.code === REQUEST_TIMEOUT) {
      return make(context, "upstream_timeout", mcp, { healthy: false, notSent: false })
    }
    if (mcp.code === CONNECTION_CLOSED) {
      return make(context, "upstream_unreachable", mcp, { healthy: false, notSent: false })
    }
    // The server answered with a JSON-RPC error: the session itself is fine.
    return make(context, "upstream_protocol_error", mcp, { healthy: true, notSent: false }, { mcp_code: mcp.code })
  }
  const http = chain.find(
    (e): e is StreamableHTTPError | SseError => e instanceof StreamableHTTPError || e instanceof SseError
  )
  if (http !== undefined && http.code !== undefined && http.code > 0) {
    const status = http.code
    // 404 to a request carrying a session id: the server forgot the session before handling anything.
    const sessionGone = status === 404 && context.phase === "session"
    return make(
      context,
      status >= 500 ? "upstream_unreachable" : "upstream_protocol_error",
      http,
      { healthy: false, notSent: sessionGone },
      { http_status: status }
    )
  }
  const code = chain.map(codeOf).find((c) => c !== undefined && unreachableCodes.has(c))
  if (code !== undefined) {
    return make(context, "upstream_unreachable", cause, { healthy: false, notSent: notConnected.has(code) })
  }
  if (chain.some((e) => messageOf(e) === "Not connected")) {
    return make(context, "upstream_unreachable", cause, { healthy: false, notSent: true })
  }
  if (chain.some((e) => e instanceof TypeError && messageOf(e) === "fetch failed")) {
    return make(context, "upstream_unreachable", cause, { healthy: false, notSent: false })
  }
  return make(context, context.phase === "connect" ? "upstream_unreachable" : "upstream_protocol_error", cause, {
    healthy: false,
    notSent: false
  })
}
