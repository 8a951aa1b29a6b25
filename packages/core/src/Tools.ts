/**
 * The tools of MCP connections: resolve what a connection sends (credential, headers, server), turn it into
 * an `McpTarget` for the `McpUpstream` port, and audit every tool call (tool name, outcome, duration; never
 * arguments or results). Remote servers get the auth headers and connection headers; local programs get
 * credentials only through their `command.env` templates, never through argv. Tool errors (`isError`) are
 * results; protocol failures are typed `UpstreamError`s. OAuth connections go through the `TokenRefresher` hook:
 * refresh ahead of expiry, once after a 401 (then the operation runs again), step-up after a 403.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import type * as Stream from "effect/Stream"
import * as AuthPattern from "./AuthPattern.ts"
import { InvalidRequest, type SwitchboardError, type TemplateError, type UpstreamError } from "./Errors.ts"
import { type CallOptions, type McpTarget, type McpTool, type McpToolResult, McpUpstream } from "./McpUpstream.ts"
import { TokenRefresher } from "./OAuthRefresher.ts"
import { type ResolvedCall, Switchboard } from "./Switchboard.ts"
import * as Template from "./Template.ts"

export class Tools extends Context.Service<
  Tools,
  {
    /** Every tool the connection's MCP server offers. */
    readonly listTools: (connection: string) => Effect.Effect<ReadonlyArray<McpTool>, SwitchboardError>
    /** Call one tool through the connection; `isError` results are results. Interrupting cancels upstream. */
    readonly callTool: (
      connection: string,
      tool: string,
      args?: Readonly<Record<string, unknown>>,
      options?: CallOptions
    ) => Effect.Effect<McpToolResult, SwitchboardError>
    /** Ids of connections whose server announced that its tool list changed. */
    readonly toolsChanged: Stream.Stream<string>
  }
>()("@switchboard/core/Tools") {}

/** `url` with `query` appended (before any fragment), percent-encoded. */
const withQuery = (url: string, query: Readonly<Record<string, string>>): string => {
  const pairs = Object.entries(query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
  if (pairs.length === 0) return url
  const hash = url.indexOf("#")
  const base = hash === -1 ? url : url.slice(0, hash)
  const fragment = hash === -1 ? "" : url.slice(hash)
  const separator = !base.includes("?") ? "?" : base.endsWith("?") || base.endsWith("&") ? "" : "&"
  return `${base}${separator}${pairs.join("&")}${fragment}`
}

/** Connection headers, then the auth headers, which win over a connection header of the same name. */
const mergeHeaders = (
  connection: Readonly<Record<string, Redacted.Redacted<string>>>,
  auth: Readonly<Record<string, Redacted.Redacted<string>>>
): Record<string, Redacted.Redacted<string>> => {
  const authNames = new Set(Object.keys(auth).map((name) => name.toLowerCase()))
  const out: Record<string, Redacted.Redacted<string>> = {}
  for (const [name, value] of Object.entries(connection)) {
    if (!authNames.has(name.toLowerCase())) out[name] = value
  }
  return Object.assign(out, auth)
}

/** The credential values of secret fields (by the pattern's declaration, else by the field's name). */
const secretValues = (call: ResolvedCall): ReadonlyArray<Redacted.Redacted<string>> => {
  const specs = [...(call.pattern?.fields ?? []), ...(call.pattern?.account_fields ?? [])]
  return Object.entries(call.values)
    .filter(([name]) => AuthPattern.isSecretField(specs.find((s) => s.field_name === name) ?? { field_name: name }))
    .map(([, value]) => value)
}

const notMcp = (call: ResolvedCall, why: string) =>
  new InvalidRequest({
    reason: "invalid_parameter",
    message: `connection ${call.connection.name} ${why}`,
    details: { connection: call.connection.id, connector: call.connector.name, kind: call.connector.kind }
  })

/**
 * How to reach the MCP server of a resolved call. A connector with a `command` runs as a local program (its
 * `env` templates rendered with the credential values); any other MCP connector is reached over HTTP at the
 * resolved base URL.
 */
export const targetOf = (call: ResolvedCall): Result.Result<McpTarget, InvalidRequest | TemplateError> => {
  const { connection, connector } = call
  if (connector.kind !== "mcp") {
    return Result.fail(notMcp(call, `uses connector ${connector.name} of kind ${connector.kind}, not an MCP server`))
  }
  if (connector.command !== undefined) {
    const values: Record<string, string> = {}
    for (const [name, value] of Object.entries(call.values)) values[name] = Redacted.value(value)
    const env: Record<string, Redacted.Redacted<string>> = {}
    for (const [name, template] of Object.entries(connector.command.env ?? {})) {
      const rendered = Template.renderString(template, values)
      if (Result.isFailure(rendered)) return Result.fail(rendered.failure)
      env[name] = Redacted.make(rendered.success)
    }
    return Result.succeed({
      _tag: "Stdio",
      key: connection.id,
      program: connector.command.program,
      args: connector.command.args ?? [],
      env,
      secrets: secretValues(call)
    })
  }
  if (call.baseUrl === undefined) return Result.fail(notMcp(call, "has no MCP server URL or command"))
  return Result.succeed({
    _tag: "Http",
    key: connection.id,
    url: withQuery(call.baseUrl, call.query),
    headers: mergeHeaders(call.headers, call.auth.headers),
    query: call.auth.query,
    allowPrivateNetwork: connection.allow_private_network,
    secrets: secretValues(call)
  })
}

/** The HTTP status an MCP server answered with, when that is why the call failed. */
const httpStatusOf = (error: UpstreamError): number | undefined => {
  const status = (error.details as { readonly http_status?: unknown } | undefined)?.http_status
  return status === 401 || status === 403 ? status : undefined
}

export const make = Effect.gen(function* () {
  const sb = yield* Switchboard
  const upstream = yield* McpUpstream
  const refresher = yield* TokenRefresher

  const resolve = Effect.fn("Tools.resolve")(function* (connection: string) {
    // OAuth: an access token about to expire is refreshed first (single-flight).
    const call = yield* refresher.beforeCall(yield* sb.resolveCall(connection))
    const target = yield* Effect.fromResult(targetOf(call))
    return { call, target }
  })

  /**
   * OAuth: after a 401 the tokens are refreshed once (unless someone else just did) and `use` runs again with the
   * new target; after a 403 the server may ask for more scope (step-up), which fails with the URL to authorize.
   */
  const withOAuth = <A, E extends SwitchboardError>(
    call: ResolvedCall,
    target: McpTarget,
    use: (target: McpTarget) => Effect.Effect<A, E>
  ): Effect.Effect<A, E | SwitchboardError> =>
    use(target).pipe(
      Effect.catchIf(
        (error): error is E & UpstreamError => error._tag === "UpstreamError" && httpStatusOf(error) !== undefined,
        (error) =>
          Effect.gen(function* () {
            if (httpStatusOf(error) === 403) {
              yield* refresher.afterForbidden(call)
              return yield* Effect.fail(error)
            }
            if (httpStatusOf(error) !== 401) return yield* Effect.fail(error)
            const retry = yield* refresher.afterUnauthorized(call)
            if (Option.isNone(retry)) return yield* Effect.fail(error)
            return yield* use(yield* Effect.fromResult(targetOf(retry.value)))
          })
      )
    )

  const listTools = Effect.fn("Tools.listTools")(function* (connection: string) {
    const { call, target } = yield* resolve(connection)
    return yield* withOAuth(call, target, (t) => upstream.listTools(t))
  })

  const callTool = Effect.fn("Tools.callTool")(function* (
    connection: string,
    tool: string,
    args: Readonly<Record<string, unknown>> = {},
    options?: CallOptions
  ) {
    const { call, target } = yield* resolve(connection)
    const started = yield* Clock.currentTimeMillis
    const record = (outcome: "success" | "failure", errorCode?: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        sb.audit({
          action: "tool.call",
          outcome,
          connector_id: call.connector.id,
          connection_id: call.connection.id,
          target: call.connection.name,
          tool,
          duration_ms: Math.max(0, now - started),
          ...(errorCode === undefined ? {} : { error_code: errorCode })
        })
      )
    // On the failure paths the call's own error matters more than a failed audit append.
    const result = yield* withOAuth(call, target, (t) => upstream.callTool(t, tool, args, options)).pipe(
      Effect.tapError((error) => Effect.ignore(record("failure", error.code))),
      Effect.onInterrupt(() => Effect.ignore(record("failure", "cancelled")))
    )
    yield* result.isError === true ? record("failure", "tool_error") : record("success")
    return result
  })

  return Tools.of({
    listTools,
    callTool,
    toolsChanged: upstream.toolsChanged
  })
})

/** Tools over the Switchboard service and an `McpUpstream` adapter. */
export const layer = Layer.effect(Tools, make)
