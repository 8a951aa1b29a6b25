/**
 * The tools Switchboard offers an agent, whichever way it comes in (the MCP server, an agent framework): each
 * active MCP connection's upstream tools as `<connection>__<tool>`, one `<connection>__request` tool per REST
 * connection (an HTTP request through the credential-injecting proxy), named by `ToolNames` with the MCP server's
 * own tool names reserved, and calls routed back by name. Definitions and results are plain MCP-shaped JSON; a
 * framework integration maps them onto its own conventions.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { Base64 } from "effect/encoding"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Connection from "./Connection.ts"
import type * as Connector from "./Connector.ts"
import { SwitchboardError } from "./Errors.ts"
import type { CallOptions, McpTool, McpToolResult } from "./McpUpstream.ts"
import * as Proxy from "./Proxy.ts"
import * as Switchboard from "./Switchboard.ts"
import * as ToolNames from "./ToolNames.ts"
import * as Tools from "./Tools.ts"
import * as Validation from "./Validation.ts"

// ---------------------------------------------------------------------------------------------------------------
// Shapes and results

/** A tool as `tools/list` returns it; upstream schemas and annotations go through verbatim. */
export interface ToolDefinition {
  readonly name: string
  readonly title?: string | undefined
  readonly description?: string | undefined
  readonly inputSchema: Readonly<Record<string, unknown>>
  readonly outputSchema?: Readonly<Record<string, unknown>> | undefined
  readonly annotations?: Readonly<Record<string, unknown>> | undefined
}

/** A `tools/call` result. */
export type CallResult = McpToolResult

export const text = (value: string, isError = false): CallResult => ({
  content: [{ type: "text", text: value }],
  ...(isError ? { isError: true } : {})
})

/** A JSON result: the value as structured content, and its JSON text for clients that read only text. */
export const json = (value: Readonly<Record<string, unknown>>, isError = false): CallResult => ({
  content: [{ type: "text", text: JSON.stringify(value, null, 2) }],
  structuredContent: value,
  ...(isError ? { isError: true } : {})
})

const isSwitchboardError = Schema.is(SwitchboardError)

/** The error code and message of a typed failure; anything else is an internal error with no details. */
export const describeError = (error: unknown): { readonly code: string; readonly message: string } =>
  isSwitchboardError(error)
    ? { code: error.code, message: error.message }
    : { code: "internal_error", message: "an unexpected error; see the server's log (stderr)" }

/** A failure as a tool result the agent can read: `<message> (<code>)`. */
export const errorResult = (error: unknown): CallResult => {
  const { code, message } = describeError(error)
  return text(`${message} (${code})`, true)
}

/** The text parts of a result, joined by newlines. */
export const textOf = (result: CallResult): string =>
  result.content
    .filter((part) => part.type === "text" && typeof part.text === "string")
    .map((part) => part.text as string)
    .join("\n")

// ---------------------------------------------------------------------------------------------------------------
// The request tool of REST connections

/** The name of the tool each REST connection gets (before the connection prefix). */
export const REQUEST_TOOL = "request"

/** Bodies longer than this are cut (64 KiB by default). */
export const defaultMaxBodyBytes = 64 * 1024

const methods = [...Proxy.methods]

export const requestInputSchema = {
  type: "object",
  properties: {
    method: { type: "string", enum: methods, default: "GET", description: "The HTTP method" },
    path: {
      type: "string",
      description: "The path below the connection's base URL, e.g. /v1/items (it may carry a ?query)"
    },
    query: {
      type: "object",
      description: "Query parameters; a list repeats the parameter",
      additionalProperties: {
        anyOf: [{ type: ["string", "number", "boolean"] }, { type: "array", items: { type: "string" } }]
      }
    },
    headers: {
      type: "object",
      description: "Request headers. Credentials are added by Switchboard: never send your own",
      additionalProperties: { type: "string" }
    },
    body: { description: "The request body: a string is sent as it is, any other JSON value as JSON" }
  },
  required: ["path"],
  additionalProperties: false
} as const

export const requestOutputSchema = {
  type: "object",
  properties: {
    status: { type: "integer", description: "The upstream's HTTP status" },
    headers: { type: "object", additionalProperties: { type: "string" } },
    body: { description: "Parsed JSON, text, or base64 (see body_encoding)" },
    body_encoding: { type: "string", enum: ["json", "text", "base64", "none"] },
    truncated: { type: "boolean", description: "Whether the body was cut at the size limit" },
    note: { type: "string" }
  },
  required: ["status", "headers", "body_encoding", "truncated"]
} as const

/** The request tool's definition for a connection, under the name it is offered with. */
export const requestDefinition = (
  name: string,
  connection: Connection.Connection,
  connector: Connector.Connector
): ToolDefinition => {
  const about = connector.description === undefined || connector.description === "" ? "" : ` ${connector.description}`
  const base = connector.proxy_url === undefined ? "" : ` Base URL: ${connector.proxy_url}.`
  return {
    name,
    title: `${connection.name}: HTTP request`,
    description:
      `Send an HTTP request to ${connector.display_name} through the connection "${connection.name}"; ` +
      `Switchboard adds the credentials.${base}${about}`,
    inputSchema: requestInputSchema,
    outputSchema: requestOutputSchema,
    annotations: { title: `${connection.name}: HTTP request`, openWorldHint: true }
  }
}

const Scalar = Schema.Union([Schema.String, Schema.Finite, Schema.Boolean])

const RequestArgs = Schema.Struct({
  method: Schema.optionalKey(Schema.Literals(methods)),
  path: Schema.String,
  query: Schema.optionalKey(Schema.Record(Schema.String, Schema.Union([Scalar, Schema.Array(Schema.String)]))),
  headers: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  body: Schema.optionalKey(Schema.Unknown)
})

const encoder = new TextEncoder()

const hasHeader = (headers: Readonly<Record<string, string>>, name: string) =>
  Object.keys(headers).some((k) => k.toLowerCase() === name)

const isJson = (contentType: string) => /[/+]json\b/iu.test(contentType)
const isText = (contentType: string) =>
  contentType === "" ||
  /^text\//iu.test(contentType) ||
  isJson(contentType) ||
  /\b(xml|javascript|x-www-form-urlencoded|yaml|csv|graphql)\b/iu.test(contentType)

const headerOf = (headers: Readonly<Record<string, string>>, name: string): string => {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v
  return ""
}

/** The first `limit` bytes of a body, and whether there were more. */
const readUpTo = <E>(body: Stream.Stream<Uint8Array, E>, limit: number) =>
  Effect.gen(function* () {
    const chunks: Array<Uint8Array> = []
    let size = 0
    let truncated = false
    yield* Stream.runForEachWhile(body, (chunk) =>
      Effect.sync(() => {
        const room = limit - size
        if (chunk.length > room) {
          chunks.push(chunk.subarray(0, room))
          size = limit
          truncated = true
          return false
        }
        chunks.push(chunk)
        size += chunk.length
        return true
      })
    )
    const bytes = new Uint8Array(size)
    let offset = 0
    for (const chunk of chunks) {
      bytes.set(chunk, offset)
      offset += chunk.length
    }
    return { bytes, truncated }
  })

/** A response as the request tool's structured result (an `isError` result for a status of 400 or more). */
export const renderResponse = (
  status: number,
  headers: Readonly<Record<string, string>>,
  bytes: Uint8Array,
  truncated: boolean,
  limit: number
): CallResult => {
  const contentType = headerOf(headers, "content-type")
  let body: unknown = null
  let encoding: "json" | "text" | "base64" | "none" = "none"
  if (bytes.length > 0 || truncated) {
    if (isText(contentType)) {
      const decoded = new TextDecoder("utf-8", { fatal: false }).decode(bytes)
      encoding = "text"
      body = decoded
      if (isJson(contentType) && !truncated) {
        const parsed = Result.try(() => JSON.parse(decoded) as unknown)
        if (Result.isSuccess(parsed)) {
          body = parsed.success
          encoding = "json"
        }
      }
    } else {
      body = Base64.encode(bytes)
      encoding = "base64"
    }
  }
  const note = truncated
    ? `the body was longer than ${limit} bytes: only the first ${limit} are shown; ask for less (a range, a page, a filter)`
    : undefined
  return json(
    {
      status,
      headers,
      body,
      body_encoding: encoding,
      truncated,
      ...(note === undefined ? {} : { note })
    },
    status >= 400
  )
}

/** Send a request tool's arguments through the proxy and render the response. Failures are left to the caller. */
export const request = Effect.fn("Toolset.request")(function* (
  proxy: Proxy.Proxy["Service"],
  connectionId: string,
  args: unknown,
  maxBodyBytes: number = defaultMaxBodyBytes
) {
  const input = yield* Validation.decode(RequestArgs, "arguments of the request tool")(args)
  const headers: Record<string, string> = { ...input.headers }
  let body: Uint8Array | undefined
  if (input.body !== undefined) {
    if (typeof input.body === "string") body = encoder.encode(input.body)
    else {
      body = encoder.encode(JSON.stringify(input.body))
      if (!hasHeader(headers, "content-type")) headers["content-type"] = "application/json"
    }
  }
  const query: Record<string, string | ReadonlyArray<string>> = {}
  for (const [k, v] of Object.entries(input.query ?? {})) query[k] = Array.isArray(v) ? v : String(v)
  const response = yield* proxy.request(connectionId, {
    method: input.method ?? "GET",
    path: input.path,
    query,
    headers,
    ...(body === undefined ? {} : { body: Stream.succeed(body) })
  })
  const { bytes, truncated } = yield* readUpTo(response.body, maxBodyBytes)
  return renderResponse(response.status, response.headers, bytes, truncated, maxBodyBytes)
})

// ---------------------------------------------------------------------------------------------------------------
// Entries, names and definitions

/** The names of the MCP server's own tools (listing connectors and connections, authorizing): never given away. */
export const MANAGEMENT_NAMES: ReadonlyArray<string> = [
  "switchboard__list_connectors",
  "switchboard__list_connections",
  "switchboard__auth_link"
]

/** Whether a connector is called through the request tool. */
export const isRest = (connector: Connector.Connector): boolean =>
  (connector.kind === "http" || (connector.kind as string) === "rest_api") && connector.proxy_enabled !== false

/** A matcher for tool allow-lists: exact names, `*` matching any run of characters, commas separating. */
export const allowList = (patterns: ReadonlyArray<string>): ((name: string) => boolean) => {
  const parts = patterns
    .flatMap((p) => p.split(","))
    .map((p) => p.trim())
    .filter((p) => p !== "")
  if (parts.length === 0) return () => true
  const regexes = parts.map(
    (p) =>
      new RegExp(
        `^${p
          .split("*")
          .map((s) => s.replace(/[.*+?^${}()|[\]\\]/gu, "\\$&"))
          .join(".*")}$`,
        "u"
      )
  )
  return (name) => regexes.some((r) => r.test(name))
}

/** One offered tool: an upstream MCP tool, or the request tool of a REST connection. */
export interface Entry extends ToolNames.ToolRef {
  readonly kind: "upstream" | "request"
  readonly connection: Connection.Connection
  readonly connector: Connector.Connector
  /** The upstream's definition (upstream tools only). */
  readonly definition: McpTool | undefined
}

/** The entries of one connection: its upstream tools (MCP), or its request tool (REST). */
export const entriesOf = (
  connection: Connection.Connection,
  connector: Connector.Connector,
  upstreamTools: ReadonlyArray<McpTool> = []
): ReadonlyArray<Entry> => {
  const base = { connectionId: connection.id, connectionName: connection.name, connection, connector }
  if (connector.kind === "mcp") {
    return upstreamTools.map((tool) => ({ ...base, tool: tool.name, kind: "upstream", definition: tool }))
  }
  return isRest(connector) ? [{ ...base, tool: REQUEST_TOOL, kind: "request", definition: undefined }] : []
}

/** Name the entries as the MCP server does (its own tools' names reserved). */
export const assign = (entries: Iterable<Entry>): ToolNames.ToolNames<Entry> =>
  ToolNames.assign(entries, { reserved: MANAGEMENT_NAMES })

/** An entry's definition under the name it is offered with. */
export const definitionOf = (name: string, entry: Entry): ToolDefinition =>
  entry.kind === "request" || entry.definition === undefined
    ? requestDefinition(name, entry.connection, entry.connector)
    : { ...entry.definition, name }

/** Call an entry: the upstream tool through `Tools`, or the request tool through `Proxy`. Interrupting cancels it. */
export const callEntry = (
  services: { readonly tools: Tools.Tools["Service"]; readonly proxy: Proxy.Proxy["Service"] },
  entry: Entry,
  args: Readonly<Record<string, unknown>>,
  options: CallOptions & { readonly maxBodyBytes?: number | undefined } = {}
): Effect.Effect<CallResult, SwitchboardError> => {
  if (entry.kind === "request") return request(services.proxy, entry.connectionId, args, options.maxBodyBytes)
  const { maxBodyBytes: _, ...callOptions } = options
  return services.tools.callTool(entry.connectionId, entry.tool, args, callOptions)
}

/** Every page of a keyset-paged list. */
export const allPages = <A, E>(
  page: (cursor: string | undefined) => Effect.Effect<Switchboard.Page<A>, E>
): Effect.Effect<ReadonlyArray<A>, E> =>
  Effect.gen(function* () {
    const out: Array<A> = []
    let cursor: string | undefined
    for (let i = 0; i < 1000; i++) {
      const p = yield* page(cursor)
      out.push(...p.data)
      if (!p.has_more || p.next_cursor === null) break
      cursor = p.next_cursor
    }
    return out
  })

// ---------------------------------------------------------------------------------------------------------------
// A toolset for direct callers (agent frameworks)

export interface Options {
  /** Offer only these connections (names or ids); all when empty. */
  readonly connections?: ReadonlyArray<string> | undefined
  /** Offer only tools whose name matches one of these (`*` is a wildcard); all when empty. */
  readonly tools?: ReadonlyArray<string> | undefined
  /** The response body size the request tools return at most. */
  readonly maxBodyBytes?: number | undefined
}

/** A connection whose tools could not be listed, and why. */
export interface Unavailable {
  readonly connection: string
  readonly code: string
  readonly message: string
}

/** The tools on offer at one moment, and how to call them. */
export interface Toolset {
  readonly tools: ReadonlyArray<{ readonly definition: ToolDefinition; readonly entry: Entry }>
  /** MCP connections whose tool list failed; their tools are left out. */
  readonly unavailable: ReadonlyArray<Unavailable>
  /** Call a tool by its offered name. `isError` results are results; interrupting cancels the call upstream. */
  readonly call: (
    name: string,
    args: Readonly<Record<string, unknown>>,
    options?: CallOptions
  ) => Effect.Effect<CallResult, SwitchboardError>
}

/**
 * List the tools of the active connections (MCP lists fetched concurrently; one that fails is reported in
 * `unavailable`, not a failure), named exactly as the MCP server names them for the same connections.
 */
export const make = Effect.fn("Toolset.make")(function* (options: Options = {}) {
  const sb = yield* Switchboard.Switchboard
  const proxy = yield* Proxy.Proxy
  const tools = yield* Tools.Tools
  const selected = new Set(options.connections ?? [])
  const allowed = allowList(options.tools ?? [])
  const [connections, connectors] = yield* Effect.all(
    [
      allPages((cursor) => sb.listConnections({ limit: 100, ...(cursor === undefined ? {} : { cursor }) })),
      allPages((cursor) => sb.listConnectors({ limit: 100, ...(cursor === undefined ? {} : { cursor }) }))
    ],
    { concurrency: 2 }
  )
  const byId = new Map(connectors.map((c) => [c.id, c] as const))
  const active = connections.filter(
    (c) => c.status === "active" && (selected.size === 0 || selected.has(c.name) || selected.has(c.id))
  )
  const unavailable: Array<Unavailable> = []
  const lists = yield* Effect.forEach(
    active,
    (connection) =>
      Effect.gen(function* () {
        const connector = byId.get(connection.connector_id)
        if (connector === undefined) return []
        if (connector.kind !== "mcp") return entriesOf(connection, connector)
        const listed = yield* Effect.exit(tools.listTools(connection.id))
        if (Exit.isSuccess(listed)) return entriesOf(connection, connector, listed.value)
        const error = Cause.findErrorOption(listed.cause)
        unavailable.push({ connection: connection.name, ...describeError(Option.getOrUndefined(error)) })
        return []
      }),
    { concurrency: "unbounded" }
  )
  const names = assign(lists.flat())
  const offered = names.entries
    .map(({ name, ref }) => ({ definition: definitionOf(name, ref), entry: ref }))
    .filter(({ definition }) => allowed(definition.name))
  const byName = new Map(offered.map((t) => [t.definition.name, t.entry] as const))
  const call = (name: string, args: Readonly<Record<string, unknown>>, callOptions: CallOptions = {}) => {
    const entry = byName.get(name)
    if (entry === undefined) {
      return Effect.succeed(text(`unknown tool ${name}: it is not offered here`, true))
    }
    return callEntry({ tools, proxy }, entry, args, { ...callOptions, maxBodyBytes: options.maxBodyBytes })
  }
  return { tools: offered, unavailable, call } satisfies Toolset
})
