/**
 * The tools of MCP connections: resolve what a connection sends (credential, headers, server), turn it into
 * an `McpTarget` for the `McpUpstream` port, and audit every tool call (tool name, outcome, duration; never
 * arguments or results). Remote servers get the auth headers and connection headers; local programs get
 * credentials only through their `command.env` templates, never through argv. Tool errors (`isError`) are
 * results; protocol failures are typed `UpstreamError`s. OAuth connections go through the `TokenRefresher` hook:
 * refresh ahead of expiry, once after a 401 (then the operation runs again), step-up after a 403.
 *
 * With a `ToolPins` store in context, every listing is checked against the connection's pinned tool manifest (see
 * `ToolPins`): a change is audited (`tools.changed`, once per process and pending manifest) and logged; under the
 * `block` policy new and changed tools are left out of listings and calls to them fail with `tool_not_approved`.
 * `layer` also provides `ToolPinning` (show and approve pins) over the same state.
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
import {
  InvalidRequest,
  StoreError,
  type SwitchboardError,
  type TemplateError,
  ToolNotApproved,
  type UpstreamError,
  VersionConflict
} from "./Errors.ts"
import { type CallOptions, type McpTarget, type McpTool, type McpToolResult, McpUpstream } from "./McpUpstream.ts"
import { TokenRefresher } from "./OAuthRefresher.ts"
import * as Principal from "./Principal.ts"
import * as Resilience from "./Resilience.ts"
import { type ResolvedCall, Switchboard } from "./Switchboard.ts"
import * as Template from "./Template.ts"
import * as ToolPins from "./ToolPins.ts"

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

/** Both services over one state: `Tools`, and `ToolPinning` for showing and approving pins. */
export const makeWithPinning = Effect.gen(function* () {
  const sb = yield* Switchboard
  const upstream = yield* McpUpstream
  const refresher = yield* TokenRefresher
  const resilience = yield* Resilience.Resilience
  const pins = yield* Effect.serviceOption(ToolPins.ToolPins)

  const resolve = Effect.fnUntraced(function* (connection: string) {
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

  // --- pinning ------------------------------------------------------------------------------------------------

  /** Pending manifests already audited by this process: `<connection>|<version>|<pinned hash>|<current hash>`. */
  const audited = new Set<string>()

  /**
   * The connection's pin (made from the current tools on first use, or carried over from the previous connector
   * version) and what the current tools change; a change not seen before is audited and logged.
   */
  const checkPins = Effect.fn("Tools.checkPins")(function* (
    store: ToolPins.ToolPins["Service"],
    call: ResolvedCall,
    current: ReadonlyArray<McpTool>
  ) {
    const { connection, connector } = call
    const policy = ToolPins.policyOf(connector)
    const found = yield* store.get(connection.org, connection.id, connector.version)
    let pinned: ToolPins.Manifest
    if (Option.isSome(found)) pinned = found.value
    else {
      const earlier = yield* store.latest(connection.org, connection.id)
      const now = new Date(yield* Clock.currentTimeMillis).toISOString()
      const tools = Option.isSome(earlier) ? earlier.value.tools : current.map(ToolPins.definitionOf)
      const stored = yield* store.pin({
        org: connection.org,
        connection_id: connection.id,
        connector_id: connector.id,
        connector_version: connector.version,
        hash: ToolPins.manifestHash(tools, store.digest),
        tools,
        pinned_at: Option.isSome(earlier) ? earlier.value.pinned_at : now,
        pinned_by: Option.isSome(earlier) ? earlier.value.pinned_by : ToolPins.FIRST_USE
      })
      pinned = stored
      if (Option.isNone(earlier)) {
        yield* sb.audit({
          action: "tools.pin",
          outcome: "success",
          connector_id: connector.id,
          connection_id: connection.id,
          target: connection.name
        })
      }
    }
    const changes = ToolPins.diff(pinned.tools, current, store.digest)
    const key = `${connection.id}|${connector.version}|${pinned.hash}|${ToolPins.manifestHash(current, store.digest)}`
    if (changes.length > 0 && !audited.has(key)) {
      audited.add(key)
      yield* Effect.logWarning(
        `the tools of ${connection.name} changed since they were pinned (${changes
          .map((c) => `${c.tool} ${c.change}`)
          .join(", ")}): ${policy === "block" ? "withheld" : "passed"} until approved; ` +
          `see: switchboard tools diff ${connection.name}`
      )
      yield* Effect.forEach(
        changes,
        (change) =>
          sb.audit({
            action: "tools.changed",
            // under `block` the change is refused (withheld); under `warn` it passes
            outcome: policy === "block" ? "failure" : "success",
            connector_id: connector.id,
            connection_id: connection.id,
            target: connection.name,
            tool: change.tool,
            error_code: `tool_${change.change}`
          }),
        { discard: true }
      )
    }
    return { pin: pinned, policy, approved: ToolPins.approvedNames(pinned.tools, current, store.digest) }
  })

  /** The server's tools, unfiltered, with the resolved call. */
  const listUpstream = Effect.fnUntraced(function* (connection: string) {
    const { call, target } = yield* resolve(connection)
    const tools = yield* withOAuth(call, target, (t) => upstream.listTools(t))
    return { call, target, tools }
  })

  const listTools = Effect.fn("Tools.listTools")(function* (connection: string) {
    const { call, tools } = yield* listUpstream(connection)
    if (Option.isNone(pins)) return tools
    const checked = yield* checkPins(pins.value, call, tools)
    return checked.policy === "block" ? tools.filter((t) => checked.approved.has(t.name)) : tools
  })

  const callTool = Effect.fnUntraced(function* (
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
    // Under `block`, only a tool that matches its pin may be called (its definition from the cached list).
    if (Option.isSome(pins) && ToolPins.policyOf(call.connector) === "block") {
      const current = yield* withOAuth(call, target, (t) => upstream.listTools(t)).pipe(
        Effect.tapError((error) => Effect.ignore(record("failure", error.code)))
      )
      const checked = yield* checkPins(pins.value, call, current)
      if (!checked.approved.has(tool)) {
        const known = current.some((t) => t.name === tool)
        yield* Effect.ignore(record("failure", "tool_not_approved"))
        return yield* new ToolNotApproved({
          message: known
            ? `tool ${tool} of ${call.connection.name} changed since it was approved (or is new); review it with ` +
              `switchboard tools diff ${call.connection.name}, then approve it with ` +
              `switchboard tools approve ${call.connection.name} --tool ${tool}`
            : `tool ${tool} is not among the approved tools of ${call.connection.name}`,
          details: { connection: call.connection.id, tool, policy: "block" }
        })
      }
    }
    // On the failure paths the call's own error matters more than a failed audit append.
    // Each attempt goes through the connection's rate limit and circuit breaker, the proxy's for a connection.
    const guardOptions = { rateLimit: Resilience.rateLimitOf(call.connection.rate_limit) }
    const result = yield* withOAuth(call, target, (t) =>
      resilience.guard(call.connection.id, upstream.callTool(t, tool, args, options), guardOptions)
    ).pipe(
      Effect.tapError((error) => Effect.ignore(record("failure", error.code))),
      Effect.onInterrupt(() => Effect.ignore(record("failure", "cancelled")))
    )
    yield* result.isError === true ? record("failure", "tool_error") : record("success")
    return result
  })

  // --- showing and approving pins ---------------------------------------------------------------------------

  const requireStore = Option.match(pins, {
    onNone: () =>
      Effect.fail(new StoreError({ message: "this Switchboard keeps no tool pins (no ToolPins store configured)" })),
    onSome: (store) => Effect.succeed(store)
  })

  const show = Effect.fn("ToolPinning.show")(function* (connection: string) {
    const store = yield* requireStore
    const { call, tools } = yield* listUpstream(connection)
    const checked = yield* checkPins(store, call, tools)
    return ToolPins.viewOf(call.connection, checked.pin, tools, checked.policy, store.digest)
  })

  const approve = Effect.fn("ToolPinning.approve")(function* (connection: string, input: ToolPins.ApproveInput = {}) {
    const { tool, hash } = input
    const store = yield* requireStore
    const principal = yield* Principal.guard("connection:write")
    const { call, tools } = yield* listUpstream(connection)
    const checked = yield* checkPins(store, call, tools)
    if (tool !== undefined && !tools.some((t) => t.name === tool) && !checked.pin.tools.some((t) => t.name === tool)) {
      return yield* new InvalidRequest({
        reason: "invalid_parameter",
        message: `${call.connection.name} has no tool ${tool}, pinned or offered`,
        details: { parameter: "tool", connection: call.connection.id, tool }
      })
    }
    if (hash !== undefined) {
      const offered = tools.find((t) => t.name === tool)
      const now =
        tool === undefined
          ? ToolPins.manifestHash(tools, store.digest)
          : offered === undefined
            ? null
            : ToolPins.toolHash(offered, store.digest)
      if (now !== hash) {
        return yield* new VersionConflict({
          message: `the tools of ${call.connection.name} changed since the reviewed hash ${hash.slice(0, 12)}…; review them again`,
          details: {
            connection: call.connection.id,
            expected_hash: hash,
            current_hash: now,
            ...(tool === undefined ? {} : { tool })
          }
        })
      }
    }
    const next = (tool === undefined ? tools : ToolPins.approveOne(checked.pin.tools, tools, tool)).map(
      ToolPins.definitionOf
    )
    const manifest: ToolPins.Manifest = {
      ...checked.pin,
      connector_id: call.connector.id,
      connector_version: call.connector.version,
      hash: ToolPins.manifestHash(next, store.digest),
      tools: next,
      pinned_at: new Date(yield* Clock.currentTimeMillis).toISOString(),
      pinned_by: principal.user
    }
    yield* store.replace(manifest)
    yield* sb.audit({
      action: "tools.approve",
      outcome: "success",
      connector_id: call.connector.id,
      connection_id: call.connection.id,
      target: call.connection.name,
      ...(tool === undefined ? {} : { tool })
    })
    return ToolPins.viewOf(call.connection, manifest, tools, checked.policy, store.digest)
  })

  return {
    tools: Tools.of({
      listTools,
      callTool,
      toolsChanged: upstream.toolsChanged
    }),
    pinning: ToolPins.ToolPinning.of({ show, approve })
  }
})

export const make = Effect.map(makeWithPinning, (services) => services.tools)

/**
 * Tools over the Switchboard service and an `McpUpstream` adapter, with `ToolPinning` beside it (pins are kept
 * when a `ToolPins` store is in context).
 */
/** `Tools` and `ToolPinning` over a given `Resilience` (share the proxy's, so a connection has one policy). */
export const layerNoDeps = Layer.effectContext(
  Effect.map(makeWithPinning, (services) =>
    Context.make(Tools, services.tools).pipe(Context.add(ToolPins.ToolPinning, services.pinning))
  )
)

/** `Tools` and `ToolPinning` with the default `Resilience` (the proxy's too, when built in one layer graph). */
export const layer = layerNoDeps.pipe(Layer.provide(Resilience.layer))
