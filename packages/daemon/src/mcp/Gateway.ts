/**
 * What `switchboard mcp` offers, independent of the transport: one tool list assembled from every active
 * connection (each MCP connection's upstream tools as `<connection>__<tool>`, one `<connection>__request` tool
 * per REST connection, and the management tools), and calls routed back by name.
 *
 * - Upstream lists are fetched concurrently and awaited up to a deadline. An upstream that fails is reported
 *   (in the connections tool and its description, and on stderr) instead of failing the list; one still
 *   loading at the deadline keeps loading, and when it finishes the client is told to list again.
 * - Nothing contacts an upstream before the first `tools/list` (or a call).
 * - `changes` emits when the client should list again: an upstream announced `tools/list_changed`, a slow
 *   upstream finished, or the set of connections changed (polled cheaply, only once the client has listed).
 *   At most one emission per listing.
 * - Calls never fail: errors become `isError` results carrying the error's code and message, which
 *   Switchboard keeps free of secrets.
 */
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import type { SwitchboardError } from "@switchboard/core/Errors"
import type { McpTool } from "@switchboard/core/McpUpstream"
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as ToolNames from "@switchboard/core/ToolNames"
import * as Tools from "@switchboard/core/Tools"
import * as Toolset from "@switchboard/core/Toolset"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Management from "./Management.ts"
import {
  type CallOptions,
  type CallResult,
  defectResult,
  describeError,
  errorResult,
  text,
  type ToolDefinition
} from "./Protocol.ts"
import * as RequestTool from "./RequestTool.ts"

export interface Options {
  /** Offer only these connections (names or ids); all when empty. */
  readonly connections?: ReadonlyArray<string> | undefined
  /** Offer only tools whose name matches one of these (`*` is a wildcard; commas separate); all when empty. */
  readonly tools?: ReadonlyArray<string> | undefined
  /** How long `tools/list` waits for upstreams; 5 seconds by default. */
  readonly listDeadline?: Duration.Input | undefined
  /** How often the connection list is checked for changes once the client has listed; 2 seconds by default. */
  readonly pollInterval?: Duration.Input | undefined
  /** The response body size the request tools return at most. */
  readonly maxBodyBytes?: number | undefined
}

export interface Gateway {
  /** The tools on offer now. Never fails: what cannot be listed is reported in the management tools. */
  readonly listTools: Effect.Effect<ReadonlyArray<ToolDefinition>>
  /** Call a tool by its offered name. Never fails: failures are `isError` results. Interrupting cancels it. */
  readonly callTool: (
    name: string,
    args: Readonly<Record<string, unknown>>,
    options?: CallOptions
  ) => Effect.Effect<CallResult>
  /** One element each time the client should list the tools again. */
  readonly changes: Stream.Stream<void>
}

type Entry = Toolset.Entry

type UpstreamState =
  | { readonly _tag: "Ready"; readonly tools: ReadonlyArray<McpTool> }
  | { readonly _tag: "Failed"; readonly code: string; readonly message: string }
  | { readonly _tag: "Loading" }

const loading: UpstreamState = { _tag: "Loading" }

/** What a `tools/list` saw and offered. */
interface Listing {
  readonly names: ToolNames.ToolNames<Entry>
  readonly offered: ReadonlySet<string>
  readonly tools: ReadonlyArray<ToolDefinition>
  /** The MCP connections it listed (for `toolsChanged`). */
  readonly mcpConnections: ReadonlySet<string>
  readonly signature: string
}

/** What the data says right now: the selected connections and every connector by id. */
interface Snapshot {
  readonly connections: ReadonlyArray<Connection.Connection>
  readonly connectors: ReadonlyMap<string, Connector.Connector>
}

const isRest = Toolset.isRest

/** A matcher for `--tools` patterns: exact names, `*` matching any run of characters. */
export const allowList = Toolset.allowList

const one = (message: string, limit = 160) => {
  const line = message.replace(/\s+/gu, " ").trim()
  return line.length > limit ? `${line.slice(0, limit - 1)}…` : line
}

const allPages = Toolset.allPages

export const make = (
  options: Options = {}
): Effect.Effect<Gateway, never, Switchboard.Switchboard | Proxy.Proxy | Tools.Tools | Scope.Scope> =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const proxy = yield* Proxy.Proxy
    const tools = yield* Tools.Tools
    const scope = yield* Effect.scope
    const deadline = Duration.fromInputUnsafe(options.listDeadline ?? "5 seconds")
    const pollInterval = Duration.fromInputUnsafe(options.pollInterval ?? "2 seconds")
    const maxBodyBytes = options.maxBodyBytes ?? RequestTool.defaultMaxBodyBytes
    const selected = new Set(options.connections ?? [])
    const allowed = allowList(options.tools ?? [])

    const changes = yield* Queue.unbounded<void>()
    let listing: Listing | undefined
    /** A change was announced and the client has not listed since. */
    let announced = false
    const states = new Map<string, UpstreamState>()
    const inflight = new Map<string, Deferred.Deferred<ReadonlyArray<McpTool>, SwitchboardError>>()
    /** Connections reported as still loading: when their list arrives, the client should list again. */
    const reportedLoading = new Set<string>()

    const announce = (why: string) =>
      Effect.suspend(() => {
        if (listing === undefined || announced) return Effect.void
        announced = true
        return Effect.andThen(Effect.logDebug(`tools changed: ${why}`), Queue.offer(changes, undefined))
      })

    const isSelected = (c: Connection.Connection) => selected.size === 0 || selected.has(c.name) || selected.has(c.id)

    const snapshot: Effect.Effect<Snapshot, SwitchboardError> = Effect.gen(function* () {
      const [connections, connectors] = yield* Effect.all(
        [
          allPages((cursor) => sb.listConnections({ limit: 100, ...(cursor === undefined ? {} : { cursor }) })),
          allPages((cursor) => sb.listConnectors({ limit: 100, ...(cursor === undefined ? {} : { cursor }) }))
        ],
        { concurrency: 2 }
      )
      return {
        connections: connections.filter(isSelected),
        connectors: new Map(connectors.map((c) => [c.id, c] as const))
      }
    })

    const signatureOf = (s: Snapshot) =>
      s.connections
        .map((c) => {
          const connector = s.connectors.get(c.connector_id)
          return [c.id, c.name, c.status, c.connector_version, connector?.kind, connector?.proxy_enabled].join("|")
        })
        .sort()
        .join("\n")

    /**
     * The connection's tool list, fetched once at a time. A fetch outlives the deadline of the listing that
     * started it; when it finishes after a listing reported it as loading, the client is told to list again.
     */
    const fetchTools = Effect.fn("Gateway.fetchTools")(function* (connection: Connection.Connection) {
      const id = connection.id
      let pending = inflight.get(id)
      if (pending === undefined) {
        const deferred = yield* Deferred.make<ReadonlyArray<McpTool>, SwitchboardError>()
        pending = deferred
        inflight.set(id, deferred)
        yield* tools.listTools(id).pipe(
          Effect.exit,
          Effect.flatMap((exit) =>
            Effect.gen(function* () {
              if (inflight.get(id) === deferred) inflight.delete(id)
              // done before the state is set: a listing that sees it not done sets "loading" before this
              yield* Deferred.done(deferred, exit)
              states.set(id, stateOf(exit))
              if (reportedLoading.delete(id)) yield* announce(`${connection.name} finished listing`)
            })
          ),
          Effect.forkIn(scope)
        )
      }
      const waited = yield* Deferred.await(pending).pipe(Effect.exit, Effect.timeoutOption(deadline))
      let exit: Exit.Exit<ReadonlyArray<McpTool>, SwitchboardError>
      if (Option.isSome(waited)) exit = waited.value
      else if (Deferred.isDoneUnsafe(pending)) exit = yield* Effect.exit(Deferred.await(pending))
      else {
        reportedLoading.add(id)
        states.set(id, loading)
        return loading
      }
      const state = stateOf(exit)
      states.set(id, state)
      return state
    })

    const stateOf = (exit: Exit.Exit<ReadonlyArray<McpTool>, SwitchboardError>): UpstreamState => {
      if (Exit.isSuccess(exit)) return { _tag: "Ready", tools: exit.value }
      const error = Cause.findErrorOption(exit.cause)
      const { code, message } = describeError(Option.isSome(error) ? error.value : undefined)
      return { _tag: "Failed", code, message }
    }

    const toolsStateOf = (
      connection: Connection.Connection,
      connector: Connector.Connector | undefined,
      names: ToolNames.ToolNames<Entry> | undefined,
      offered: ReadonlySet<string>
    ): Management.ToolsState => {
      if (connector === undefined) return { state: "none", message: "its connector could not be read" }
      if (connector.kind !== "mcp" && !isRest(connector)) {
        return { state: "none", message: `a ${connector.kind} connector offers no tools here` }
      }
      if (connection.status !== "active") {
        return {
          state: "inactive",
          message: `status ${connection.status}: use ${Management.AUTH_LINK} to see how to authorize it`
        }
      }
      const own = (names?.entries ?? [])
        .filter((e) => e.ref.connectionId === connection.id && offered.has(e.name))
        .map((e) => e.name)
      if (connector.kind !== "mcp") return { state: "ready", tools: own }
      // The last answer counts; a connection that never answered is still loading.
      const state = states.get(connection.id) ?? loading
      switch (state._tag) {
        case "Ready":
          return { state: "ready", tools: own }
        case "Failed":
          return { state: "unavailable", code: state.code, message: state.message }
        case "Loading":
          return { state: "loading", message: "the server has not answered yet; its tools appear when it does" }
      }
    }

    const noteOf = (connection: Connection.Connection, state: Management.ToolsState): string | undefined => {
      switch (state.state) {
        case "loading":
          return `${connection.name} is still loading`
        case "unavailable":
          return `${connection.name} is unavailable (${state.code}: ${one(state.message)})`
        case "inactive":
          return `${connection.name} needs authorization (${connection.status})`
        case "ready":
        case "none":
          return undefined
      }
    }

    /** Assemble the tool list. */
    const assemble = Effect.gen(function* () {
      const data = yield* Effect.exit(snapshot)
      if (Exit.isFailure(data)) {
        const error = Cause.findErrorOption(data.cause)
        const { code, message } = describeError(Option.isSome(error) ? error.value : undefined)
        yield* Effect.logError(`cannot read the connections: ${message} (${code})`)
        const defs = Management.definitions([`the connections cannot be read (${code}: ${one(message)})`])
        const offered = defs.filter((d) => allowed(d.name))
        return {
          names: ToolNames.assign<Entry>([]),
          offered: new Set(offered.map((d) => d.name)),
          tools: offered,
          mcpConnections: new Set<string>(),
          signature: ""
        } satisfies Listing
      }
      const { connections, connectors } = data.value
      const active = connections.filter((c) => c.status === "active")
      const mcp = active.filter((c) => connectors.get(c.connector_id)?.kind === "mcp")
      const rest = active.filter((c) => {
        const connector = connectors.get(c.connector_id)
        return connector !== undefined && isRest(connector)
      })
      const fetched = yield* Effect.forEach(mcp, (c) => Effect.map(fetchTools(c), (s) => [c, s] as const), {
        concurrency: "unbounded"
      })
      const entries: Array<Entry> = []
      for (const [connection, state] of fetched) {
        const connector = connectors.get(connection.connector_id)
        if (state._tag !== "Ready" || connector === undefined) continue
        entries.push(...Toolset.entriesOf(connection, connector, state.tools))
      }
      for (const connection of rest) {
        const connector = connectors.get(connection.connector_id)
        if (connector === undefined) continue
        entries.push(...Toolset.entriesOf(connection, connector))
      }
      const names = Toolset.assign(entries)
      const upstreamDefs: Array<ToolDefinition> = names.entries.map(({ name, ref }) => Toolset.definitionOf(name, ref))
      const offeredUpstream = upstreamDefs.filter((d) => allowed(d.name))
      const offered = new Set(offeredUpstream.map((d) => d.name))
      const notes: Array<string> = []
      for (const connection of connections) {
        const state = toolsStateOf(connection, connectors.get(connection.connector_id), names, offered)
        const note = noteOf(connection, state)
        if (note !== undefined) notes.push(note)
        if (state.state === "unavailable") {
          yield* Effect.logWarning(`the tools of ${connection.name} are unavailable: ${state.message} (${state.code})`)
        }
      }
      const management = Management.definitions(notes).filter((d) => allowed(d.name))
      for (const d of management) offered.add(d.name)
      return {
        names,
        offered,
        tools: [...offeredUpstream, ...management],
        mcpConnections: new Set(mcp.map((c) => c.id)),
        signature: signatureOf(data.value)
      } satisfies Listing
    })

    let polling = false
    const poll = Effect.gen(function* () {
      for (;;) {
        yield* Effect.sleep(pollInterval)
        const current = listing
        if (current === undefined || announced) continue
        const data = yield* Effect.exit(snapshot)
        if (Exit.isSuccess(data) && signatureOf(data.value) !== current.signature) {
          yield* announce("the connections changed")
        }
      }
    })

    const refresh = Effect.gen(function* () {
      announced = false
      const next = yield* assemble
      listing = next
      if (!polling) {
        polling = true
        yield* Effect.forkIn(poll, scope)
      }
      return next
    })

    // Upstreams that announce a new tool list: only the ones on offer matter.
    yield* Stream.runForEach(tools.toolsChanged, (connectionId) =>
      listing?.mcpConnections.has(connectionId) === true ? announce("an upstream's tools changed") : Effect.void
    ).pipe(Effect.forkIn(scope))

    const listTools = Effect.map(refresh, (l) => l.tools)

    const snapshotRows = Effect.gen(function* () {
      const data = yield* snapshot
      const current = listing
      return data.connections.map(
        (connection): Management.ConnectionRow => ({
          connection,
          connector: data.connectors.get(connection.connector_id),
          tools: toolsStateOf(
            connection,
            data.connectors.get(connection.connector_id),
            current?.names,
            current?.offered ?? new Set()
          )
        })
      )
    })

    const management = Effect.fn("Gateway.management")(function* (
      name: string,
      args: Readonly<Record<string, unknown>>
    ) {
      if (name === Management.LIST_CONNECTORS) {
        const all = yield* allPages((cursor) =>
          sb.listConnectors({ limit: 100, ...(cursor === undefined ? {} : { cursor }) })
        )
        const kind = typeof args.kind === "string" ? args.kind : undefined
        return Management.connectorsResult(kind === undefined ? all : all.filter((c) => c.kind === kind))
      }
      if (name === Management.LIST_CONNECTIONS) {
        if (listing === undefined) yield* refresh
        return Management.connectionsResult(yield* snapshotRows)
      }
      const ref = args.connection
      if (typeof ref !== "string" || ref === "") {
        return text("give the connection's name or id as `connection`", true)
      }
      const connection = yield* sb.getConnection(ref)
      if (!isSelected(connection)) return text(`connection ${ref} is not offered by this server`, true)
      const connector = yield* sb.getConnector(connection.connector_id)
      return Management.authResult(connection, connector)
    })

    const resolve = Effect.fnUntraced(function* (name: string) {
      const find = (l: Listing | undefined) =>
        l !== undefined && l.offered.has(name) ? l.names.resolve(name) : Option.none()
      const found = find(listing)
      if (Option.isSome(found)) return found
      // Not in the last list (or nothing listed yet): the client may know of a newer one.
      return find(yield* refresh)
    })

    const callTool = Effect.fnUntraced(
      function* (name: string, args: Readonly<Record<string, unknown>>, callOptions: CallOptions = {}) {
        if (Management.isManagement(name) && allowed(name)) return yield* management(name, args)
        const found = yield* resolve(name)
        if (Option.isNone(found)) {
          return text(`unknown tool ${name}: it is not (or no longer) offered; list the tools again`, true)
        }
        const onProgress = callOptions.onProgress
        const result = yield* Toolset.callEntry({ tools, proxy }, found.value, args, {
          maxBodyBytes,
          ...(onProgress === undefined ? {} : { onProgress })
        })
        return result satisfies CallResult
      },
      Effect.catch((error) => Effect.succeed(errorResult(error))),
      Effect.catchDefect((defect) =>
        Effect.as(Effect.logError("a tool call failed unexpectedly", Cause.pretty(Cause.die(defect))), defectResult)
      )
    )

    return {
      listTools,
      callTool,
      changes: Stream.fromQueue(changes)
    } satisfies Gateway
  })
