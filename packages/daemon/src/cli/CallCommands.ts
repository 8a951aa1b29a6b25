/**
 * Calling upstreams from the command line, embedded or through the daemon (see `Access.calls`):
 *
 * - `switchboard request <connection> <METHOD> <path> [--query k=v] [--header k=v] [--data @file|-|text]
 *   [--include]` sends one request through the connection's proxy and prints the upstream's body as it streams in
 *   (after the status line and headers with `--include`; as `{"status", "headers", "body"}` with `--json`).
 * - `switchboard tools list <connection>` and `switchboard tools call <connection> <tool> [--args JSON|@file|-]`
 *   list a connection's MCP tools and call one, printing the result's content; progress goes to stderr, and
 *   Ctrl-C cancels the call upstream.
 *
 * Exit codes: those of every command (`Output.exitCodeOf`: 2 invalid input, 3 not found, 5 refused, 6 upstream
 * unreachable or timed out, 7 rate limited, …) when Switchboard itself fails, and for an upstream that answered:
 * 0 for 1xx–3xx, 8 for a 4xx answer or a tool result with `isError`, 9 for a 5xx answer.
 */
import { UpstreamError, ValidationFailed } from "@switchboard/core/Errors"
import type { McpTool, McpToolResult, Progress } from "@switchboard/core/McpUpstream"
import * as Proxy from "@switchboard/core/Proxy"
import * as Tools from "@switchboard/core/Tools"
import type * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Fiber from "effect/Fiber"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { Argument, Command, Flag } from "effect/cli"
import type { CassetteOptions } from "../Layers.ts"
import * as CassetteFlags from "./CassetteFlags.ts"
import { root } from "./Commands.ts"
import * as Output from "./Output.ts"
import { callsLayer } from "./WithCalls.ts"
import { pinCommands } from "./ToolsCommands.ts"

/** The exit code of an upstream's answer: 8 for 4xx, 9 for 5xx, else 0. */
export const exitCodeOfStatus = (status: number): number => (status >= 500 ? 9 : status >= 400 ? 8 : 0)

/** The exit code of a tool result that reports an error. */
export const toolErrorExitCode = 8

const setExitCode = (code: number) =>
  Effect.sync(() => {
    if (code !== 0) process.exitCode = code
  })

const invalid = (message: string, path = "") =>
  new ValidationFailed({ message, details: { issues: [{ path, message }] } })

/** Run `f` with the calling services the root flags point at; everything `f` streams is read inside. */
const withCalls = <A, E, R>(
  f: (services: {
    readonly proxy: Proxy.Proxy["Service"]
    readonly tools: Tools.Tools["Service"]
  }) => Effect.Effect<A, E, R>,
  cassette?: CassetteOptions
) =>
  Effect.gen(function* () {
    const calls = yield* callsLayer(cassette)
    const services = Effect.all({ proxy: Effect.service(Proxy.Proxy), tools: Effect.service(Tools.Tools) })
    return yield* Effect.flatMap(services, f).pipe(
      Effect.provide(calls),
      // Warnings (e.g. a tool-pin change seen while listing) go to stderr: stdout is the answer (`--json`).
      Effect.provideService(Logger.LogToStderr, true)
    )
  })

const unreadable = (what: string) => () =>
  new UpstreamError({ reason: "upstream_protocol_error", message: `reading ${what} failed` })

/** A request body from `--data`: `@file` (streamed, with its length), `-` (stdin, streamed) or the text itself. */
const bodyOf = (data: string) =>
  Effect.gen(function* () {
    if (data === "-") {
      const stdio = yield* Stdio.Stdio
      return { body: stdio.stdin.pipe(Stream.mapError(unreadable("stdin"))), length: undefined }
    }
    if (data.startsWith("@")) {
      const path = data.slice(1)
      const fs = yield* FileSystem.FileSystem
      const info = yield* fs.stat(path).pipe(Effect.mapError(() => invalid(`cannot read ${path}`, "data")))
      if (info.type !== "File") return yield* invalid(`${path} is not a file`, "data")
      return { body: fs.stream(path).pipe(Stream.mapError(unreadable(path))), length: Number(info.size) }
    }
    const bytes = new TextEncoder().encode(data)
    return { body: Stream.make(bytes), length: bytes.length }
  })

const hasHeader = (headers: Readonly<Record<string, string>>, name: string) =>
  Object.keys(headers).some((k) => k.toLowerCase() === name)

const request = Command.make(
  "request",
  {
    connection: Argument.String("connection").pipe(Argument.withDescription("Connection id or name")),
    method: Argument.String("method").pipe(Argument.withDescription("GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS")),
    path: Argument.String("path").pipe(Argument.withDescription("The path below the connection's base URL")),
    query: Flag.KeyValuePair("query").pipe(Flag.withDescription("A query parameter k=v (repeatable)"), Flag.optional),
    header: Flag.KeyValuePair("header").pipe(Flag.withDescription("A request header k=v (repeatable)"), Flag.optional),
    data: Flag.String("data").pipe(
      Flag.withDescription(
        "The body: @file, - for stdin, or the text itself (content-type application/json unless set)"
      ),
      Flag.optional
    ),
    include: Flag.Boolean("include").pipe(
      Flag.withDescription("Print the status line and the response headers before the body"),
      Flag.withDefault(false)
    ),
    record: CassetteFlags.record,
    replay: CassetteFlags.replay
  },
  Effect.fn(function* (input) {
    const flags = yield* root
    const cassette = yield* CassetteFlags.cassetteOf(input)
    const headers: Record<string, string> = { ...Option.getOrElse(input.header, () => ({})) }
    let body: Stream.Stream<Uint8Array, UpstreamError> | undefined
    if (Option.isSome(input.data)) {
      const given = yield* bodyOf(input.data.value)
      body = given.body
      if (given.length !== undefined && !hasHeader(headers, "content-length")) {
        headers["content-length"] = String(given.length)
      }
      if (!hasHeader(headers, "content-type")) headers["content-type"] = "application/json"
    }
    const stdio = yield* Stdio.Stdio
    const status = yield* withCalls(
      ({ proxy }) =>
        Effect.gen(function* () {
          const response = yield* proxy.request(input.connection, {
            method: input.method.toUpperCase(),
            path: input.path,
            query: Option.getOrElse(input.query, () => ({})),
            headers,
            body
          })
          if (flags.json) {
            const chunks = yield* Stream.runCollect(response.body)
            const text = new TextDecoder().decode(Buffer.concat([...chunks]))
            yield* Output.printJson({ status: response.status, headers: response.headers, body: text })
            return response.status
          }
          const head = input.include
            ? `HTTP ${response.status}\n${Object.entries(response.headers)
                .map(([k, v]) => `${k}: ${v}`)
                .join("\n")}\n\n`
            : ""
          const out =
            head === "" ? response.body : Stream.concat(Stream.make(new TextEncoder().encode(head)), response.body)
          yield* Stream.run(out, stdio.stdout({ endOnDone: false }))
          return response.status
        }),
      cassette
    )
    yield* setExitCode(exitCodeOfStatus(status))
  })
).pipe(
  Command.withDescription(
    "Send a request through a connection's proxy and print the upstream's body (exit 8 on 4xx, 9 on 5xx)"
  ),
  Command.withExamples([
    { command: "switchboard request github GET /user/repos --query per_page=5", description: "List repositories" },
    {
      command: 'switchboard request acme POST /items --data \'{"name":"x"}\' --include',
      description: "Create an item, showing the status and headers"
    }
  ])
)

// ------------------------------------------------------------------------------------------------------- tools

const firstLine = (text: string | undefined) => (text ?? "").split("\n")[0]?.slice(0, 80)

const argumentsOf = (tool: McpTool): string => {
  const properties = Object.keys((tool.inputSchema.properties as Record<string, unknown> | undefined) ?? {})
  const required = new Set((tool.inputSchema.required as ReadonlyArray<string> | undefined) ?? [])
  return properties.map((p) => (required.has(p) ? `${p}*` : p)).join(" ")
}

const toolsList = Command.make(
  "list",
  {
    connection: Argument.String("connection").pipe(Argument.withDescription("Connection id or name")),
    record: CassetteFlags.record,
    replay: CassetteFlags.replay
  },
  Effect.fn(function* ({ connection, record, replay }) {
    const flags = yield* root
    const cassette = yield* CassetteFlags.cassetteOf({ record, replay })
    const data = yield* withCalls(({ tools }) => tools.listTools(connection), cassette)
    yield* Output.print(flags.json, { data }, () =>
      Output.table(data, [
        { header: "name", get: (t) => t.name },
        { header: "arguments", get: argumentsOf },
        { header: "description", get: (t) => firstLine(t.description ?? t.title) }
      ])
    )
  })
).pipe(Command.withDescription("List the tools of a connection to an MCP server (* marks required arguments)"))

const parseArguments = (text: string, what: string) =>
  Effect.gen(function* () {
    const parsed = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: () => invalid(`${what} is not valid JSON`, "args")
    })
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return yield* invalid(`${what} must be a JSON object of the tool's arguments`, "args")
    }
    return parsed as Record<string, unknown>
  })

/** The tool's arguments from `--args`: JSON text, `@file`, or `-` for stdin. */
const readArguments = (args: string) =>
  Effect.gen(function* () {
    if (args === "-") {
      const stdio = yield* Stdio.Stdio
      const text = yield* stdio.stdin.pipe(
        Stream.decodeText(),
        Stream.mkString,
        Effect.mapError(() => invalid("cannot read stdin", "args"))
      )
      return yield* parseArguments(text, "stdin")
    }
    if (args.startsWith("@")) {
      const path = args.slice(1)
      const fs = yield* FileSystem.FileSystem
      const text = yield* fs.readFileString(path).pipe(Effect.mapError(() => invalid(`cannot read ${path}`, "args")))
      return yield* parseArguments(text, path)
    }
    return yield* parseArguments(args, "--args")
  })

const str = (value: unknown): string => (typeof value === "string" ? value : "")

/** How a content item reads on a terminal. */
const renderContent = (item: Readonly<Record<string, unknown>>): string => {
  if (item.type === "text" && typeof item.text === "string") return item.text
  if ((item.type === "image" || item.type === "audio") && typeof item.data === "string") {
    return `[${item.type} ${str(item.mimeType)}, ${item.data.length} base64 characters]`
  }
  const resource = item.resource as Readonly<Record<string, unknown>> | undefined
  if (item.type === "resource" && resource !== undefined) {
    return typeof resource.text === "string" ? resource.text : `[resource ${str(resource.uri)}]`
  }
  if (item.type === "resource_link") return `[resource ${str(item.uri)}]`
  return JSON.stringify(item)
}

export const renderResult = (result: McpToolResult): string => {
  const parts = result.content.map(renderContent)
  if (parts.length === 0 && result.structuredContent !== undefined) {
    parts.push(JSON.stringify(result.structuredContent, null, 2))
  }
  return parts.join("\n")
}

const renderProgress = (p: Progress) =>
  `progress ${p.progress}${p.total === undefined ? "" : `/${p.total}`}${p.message === undefined ? "" : ` ${p.message}`}`

const toolsCall = Command.make(
  "call",
  {
    connection: Argument.String("connection").pipe(Argument.withDescription("Connection id or name")),
    tool: Argument.String("tool").pipe(Argument.withDescription("The tool's name")),
    args: Flag.String("args").pipe(
      Flag.withDescription("The arguments: a JSON object, @file, or - for stdin"),
      Flag.withDefault("{}")
    ),
    timeout: Flag.Int("timeout-ms").pipe(
      Flag.withDescription("Time without an answer or progress before the call fails (default 60000)"),
      Flag.optional
    ),
    record: CassetteFlags.record,
    replay: CassetteFlags.replay
  },
  Effect.fn(function* ({ connection, tool, args, timeout, record, replay }) {
    const flags = yield* root
    const cassette = yield* CassetteFlags.cassetteOf({ record, replay })
    const parsed = yield* readArguments(args)
    const progress = yield* Queue.unbounded<Progress, Cause.Done>()
    // Progress arrives on the caller's callback; one fiber prints it in order.
    const printer = yield* Stream.fromQueue(progress).pipe(
      Stream.runForEach((p) => Console.error(renderProgress(p))),
      Effect.forkChild
    )
    const result = yield* withCalls(
      ({ tools }) =>
        tools.callTool(connection, tool, parsed, {
          onProgress: (p) => {
            Queue.offerUnsafe(progress, p)
          },
          ...(Option.isSome(timeout) ? { timeoutMillis: timeout.value } : {})
        }),
      cassette
    ).pipe(
      Effect.ensuring(Effect.andThen(Queue.end(progress), Fiber.join(printer))),
      Effect.onInterrupt(() => Console.error("cancelled: the call was cancelled upstream"))
    )
    yield* Output.print(flags.json, result, () => renderResult(result))
    if (result.isError === true) {
      if (!flags.json) yield* Console.error(`error: tool ${tool} reported an error`)
      yield* setExitCode(toolErrorExitCode)
    }
  })
).pipe(
  Command.withDescription(
    "Call a tool and print its result; progress goes to stderr, Ctrl-C cancels (exit 8 on isError)"
  ),
  Command.withExamples([
    {
      command: 'switchboard tools call github create_issue --args \'{"repo":"a/b","title":"Hi"}\'',
      description: "Create an issue"
    },
    { command: "switchboard tools call github search --args @query.json", description: "Arguments from a file" }
  ])
)

const tools = Command.make("tools").pipe(
  Command.withDescription("List and call the tools of connections to MCP servers; review and approve their pins"),
  Command.withSubcommands([toolsList, toolsCall, ...pinCommands])
)

/** The commands of this module, for `Main`. */
export const callCommands = [request, tools] as const
