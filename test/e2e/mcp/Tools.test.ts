/**
 * MCP tools through the whole stack — the in-memory store, the Switchboard service, `Tools` and the SDK-based
 * `McpUpstream` adapter — against real servers: a streamable HTTP server and a legacy SSE server on
 * 127.0.0.1, a stdio test program, and `@modelcontextprotocol/server-everything` over stdio. Covers listing
 * (paginated, cached, refreshed on list_changed), calls, argument validation before sending, progress,
 * cancellation, timeouts, dead and restarted servers, credentials per auth pattern, the network rule, audit
 * records, and a canary secret that must never show up in results, errors, audit records or stderr.
 */
import { assert, describe, it } from "@effect/vitest"
import { getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js"
import * as HttpAdapter from "@switchboard/adapters/http"
import * as McpAdapter from "@switchboard/adapters/mcp"
import * as Memory from "@switchboard/adapters/memory"
import type { SwitchboardError } from "@switchboard/core/Errors"
import type { McpToolResult, Progress } from "@switchboard/core/McpUpstream"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Tools from "@switchboard/core/Tools"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { HttpServers, Programs } from "../../support/mcp/index.ts"

const CANARY = "sb-canary-Q9xv7Lw2Rk4tZ8"

const stack = (options: McpAdapter.McpUpstream.Options = {}) =>
  Tools.layer.pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        Switchboard.layer.pipe(Layer.provide(Memory.layer)),
        McpAdapter.layer({ connectTimeout: "20 seconds", ...options }).pipe(Layer.provide(HttpAdapter.Resolver.layer))
      )
    )
  )

type Env = Tools.Tools | Switchboard.Switchboard

const run = <A, E>(effect: Effect.Effect<A, E, Env | Scope.Scope>, options?: McpAdapter.McpUpstream.Options) =>
  Effect.scoped(effect).pipe(Effect.provide(stack(options)))

const bearer = [
  {
    type: "BEARER",
    display_name: "Token",
    fields: [{ field_name: "token", label: "Token", input_type: "password", required: true }],
    is_mcp: true
  }
]

let counter = 0
const unique = (prefix: string) => `${prefix}-${++counter}`

/** An MCP connector at `url` and a connection to it (loopback allowed unless told otherwise). */
const httpConnection = (
  url: string,
  options: {
    readonly patterns?: ReadonlyArray<unknown>
    readonly connection?: Record<string, unknown>
  } = {}
) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const name = unique("mcp")
    yield* sb.createConnector({
      name,
      display_name: name,
      kind: "mcp",
      proxy_url: url,
      auth_patterns: options.patterns ?? []
    })
    const connection = yield* sb.createConnection(name, {
      name: unique("conn"),
      allow_private_network: true,
      ...options.connection
    })
    return connection.id
  })

/** A local-program MCP connector and a connection with an inline token. */
const stdioConnection = (
  command: { readonly program: string; readonly args: ReadonlyArray<string> },
  env: Record<string, string>,
  token: string
) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const name = unique("local")
    yield* sb.createConnector({
      name,
      display_name: name,
      kind: "mcp",
      command: { program: command.program, args: [...command.args], env },
      auth_patterns: bearer
    })
    const connection = yield* sb.createConnection(name, { name: unique("conn"), security: { token } })
    return connection.id
  })

const textOf = (result: McpToolResult) =>
  result.content.map((c) => (c.type === "text" ? String(c.text) : `[${String(c.type)}]`)).join("\n")

const failure = <A>(effect: Effect.Effect<A, SwitchboardError, Env>) => Effect.flip(effect)

/** Poll until `check` holds (bounded; the bound is a safety net, not an assertion about time). */
const eventually = (what: string, check: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 500; i++) {
      if (check()) return
      yield* Effect.sleep("20 millis")
    }
    assert.fail(`timed out waiting until ${what}`)
  })

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex")

describe("MCP tools over streamable HTTP", () => {
  it.live("lists every page of tools and caches the list per session", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable({ pageSize: 2 }))
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        const listed = yield* tools.listTools(connection)
        assert.deepStrictEqual(
          listed.map((t) => t.name),
          ["echo", "add", "slow", "fail", "weather"]
        )
        assert.strictEqual(server.state.counts.list, 3)
        const add = listed.find((t) => t.name === "add")
        assert.deepStrictEqual(add?.inputSchema.required, ["a", "b"])
        assert.deepStrictEqual(listed.find((t) => t.name === "weather")?.outputSchema?.required, [
          "city",
          "temperature"
        ])
        yield* tools.listTools(connection)
        assert.strictEqual(server.state.counts.list, 3, "the second list comes from the cache")
        assert.strictEqual(server.state.counts.sessions, 1)
      })
    )
  )

  it.live("calls tools: text, tool errors as results, structured content", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        assert.strictEqual(textOf(yield* tools.callTool(connection, "echo", { text: "hello" })), "hello")
        assert.strictEqual(textOf(yield* tools.callTool(connection, "add", { a: 2, b: 3 })), "5")
        const failed = yield* tools.callTool(connection, "fail")
        assert.strictEqual(failed.isError, true)
        assert.strictEqual(textOf(failed), "the tool failed on purpose")
        const weather = yield* tools.callTool(connection, "weather", { city: "Oslo" })
        assert.deepStrictEqual(weather.structuredContent, { city: "Oslo", temperature: 21 })
        assert.strictEqual(server.state.counts.sessions, 1, "one pooled session for all calls")
      })
    )
  )

  it.live("checks arguments against the input schema before sending anything", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        const wrongType = yield* failure(tools.callTool(connection, "add", { a: "two", b: 3 }))
        assert.strictEqual(wrongType._tag, "ValidationFailed")
        assert.strictEqual(wrongType.code, "validation_failed")
        assert.include(wrongType.message, "a: must be number")
        assert.notInclude(wrongType.message, "two")
        const missing = yield* failure(tools.callTool(connection, "add", { a: 1 }))
        assert.deepStrictEqual(missing.details, { issues: [{ path: "b", message: "is required" }] })
        const extra = yield* failure(tools.callTool(connection, "add", { a: 1, b: 2, c: 3 }))
        assert.include(extra.message, "must NOT have additional properties")
        const unknown = yield* failure(tools.callTool(connection, "nope", {}))
        assert.strictEqual(unknown._tag, "ValidationFailed")
        assert.include(unknown.message, 'no tool named "nope"')
        assert.deepStrictEqual(server.state.calls, [], "the server received no tools/call")
        assert.strictEqual(textOf(yield* tools.callTool(connection, "add", { a: 1, b: 2 })), "3")
        assert.strictEqual(server.state.calls.length, 1)
      })
    )
  )

  it.live("passes progress notifications through", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        const seen: Array<Progress> = []
        const result = yield* tools.callTool(
          connection,
          "slow",
          { steps: 3, delay_ms: 10 },
          { onProgress: (p) => seen.push(p) }
        )
        assert.strictEqual(textOf(result), "done after 3 steps")
        assert.deepStrictEqual(seen, [
          { progress: 1, total: 3, message: "step 1" },
          { progress: 2, total: 3, message: "step 2" },
          { progress: 3, total: 3, message: "step 3" }
        ])
        // without a progress callback no progress token is sent
        yield* tools.callTool(connection, "slow", { steps: 1, delay_ms: 0 })
        assert.strictEqual(server.state.progressTokens.length, 1)
      })
    )
  )

  it.live("interrupting a call cancels it on the server", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        const fiber = yield* Effect.forkChild(tools.callTool(connection, "slow", { steps: 100, delay_ms: 100 }))
        yield* eventually("the server started the call", () => server.state.calls.length === 1)
        yield* Fiber.interrupt(fiber)
        yield* eventually("the server saw the cancellation", () => server.state.cancelled.length === 1)
        // the session survives a cancelled call
        assert.strictEqual(textOf(yield* tools.callTool(connection, "echo", { text: "still here" })), "still here")
        assert.strictEqual(server.state.counts.sessions, 1)
      })
    )
  )

  it.live("times out, cancelling upstream; progress restarts the timeout", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        const error = yield* failure(
          tools.callTool(connection, "slow", { steps: 100, delay_ms: 100 }, { timeoutMillis: 150 })
        )
        assert.strictEqual(error._tag, "UpstreamError")
        assert.strictEqual(error.code, "upstream_timeout")
        assert.strictEqual(error.status, 504)
        yield* eventually("the server saw the cancellation", () => server.state.cancelled.length === 1)
        // five steps of 100 ms take longer than 400 ms, but each progress notification restarts the timeout
        const result = yield* tools.callTool(
          connection,
          "slow",
          { steps: 5, delay_ms: 100 },
          { timeoutMillis: 400, onProgress: () => {} }
        )
        assert.strictEqual(textOf(result), "done after 5 steps")
      })
    )
  )

  it.live("refreshes the cached list on notifications/tools/list_changed and says so", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        assert.strictEqual((yield* tools.listTools(connection)).length, 5)
        const changed = yield* Effect.forkChild(Stream.runHead(tools.toolsChanged))
        yield* Effect.sleep("50 millis")
        yield* Effect.promise(() => server.addTool("late_tool"))
        const key = yield* Fiber.join(changed)
        assert.deepStrictEqual(key, Option.some(connection))
        const names = (yield* tools.listTools(connection)).map((t) => t.name)
        assert.include(names, "late_tool")
        assert.strictEqual(textOf(yield* tools.callTool(connection, "late_tool", {})), "late_tool ran")
      })
    )
  )

  it.live("a dead server is upstream_unreachable at once", () =>
    run(
      Effect.gen(function* () {
        const port = yield* Effect.promise(HttpServers.closedPort)
        const connection = yield* httpConnection(`http://127.0.0.1:${port}/mcp`)
        const tools = yield* Tools.Tools
        const listed = yield* failure(tools.listTools(connection))
        assert.strictEqual(listed._tag, "UpstreamError")
        assert.strictEqual(listed.code, "upstream_unreachable")
        assert.include(listed.message, "ECONNREFUSED")
        const called = yield* failure(tools.callTool(connection, "echo", { text: "x" }))
        assert.strictEqual(called.code, "upstream_unreachable")
      })
    )
  )

  it.live("a server that dies mid-session: the next call reconnects", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        assert.strictEqual(textOf(yield* tools.callTool(connection, "echo", { text: "one" })), "one")
        // down: the call fails (nothing listens), and the broken session is dropped
        yield* Effect.promise(() => server.stop())
        const down = yield* failure(tools.callTool(connection, "echo", { text: "two" }))
        assert.strictEqual(down.code, "upstream_unreachable")
        // back up with no sessions: the next call opens a new one
        yield* Effect.promise(() => server.restart())
        assert.strictEqual(textOf(yield* tools.callTool(connection, "echo", { text: "three" })), "three")
        // the server forgot the session: its id gets a 404, which proves the call was not run, so the call is
        // retried on a new session
        yield* Effect.promise(() => server.expireSessions())
        assert.strictEqual(textOf(yield* tools.callTool(connection, "echo", { text: "four" })), "four")
        assert.strictEqual(server.state.counts.sessions, 3)
        assert.deepStrictEqual(
          server.state.calls.map((c) => c.args),
          [{ text: "one" }, { text: "three" }, { text: "four" }]
        )
      })
    )
  )

  it.live("closes a session after it has been idle", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        yield* tools.callTool(connection, "echo", { text: "x" })
        yield* eventually("the idle session was terminated", () => server.requests.some((r) => r.method === "DELETE"))
        yield* tools.callTool(connection, "echo", { text: "y" })
        assert.strictEqual(server.state.counts.sessions, 2)
      }),
      { idleTimeToLive: "200 millis" }
    )
  )

  it.live("refuses loopback targets unless the connection allows the private network", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url, { connection: { allow_private_network: false } })
        const tools = yield* Tools.Tools
        const error = yield* failure(tools.listTools(connection))
        assert.strictEqual(error.code, "destination_refused")
        assert.strictEqual(error.status, 403)
        assert.include(error.message, "refused 127.0.0.1 (loopback")
        const viaName = yield* httpConnection(server.url.replace("127.0.0.1", "localhost"), {
          connection: { allow_private_network: false }
        })
        assert.strictEqual((yield* failure(tools.callTool(viaName, "echo", { text: "x" }))).code, "destination_refused")
        assert.strictEqual(server.requests.length, 0, "nothing reached the server")
      })
    )
  )
})

describe("MCP tools over legacy SSE", () => {
  it.live("falls back to SSE when the server answers the streamable POST with a 4xx", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startSse())
        const connection = yield* httpConnection(server.url, {
          patterns: bearer,
          connection: { security: { token: CANARY } }
        })
        const tools = yield* Tools.Tools
        const names = (yield* tools.listTools(connection)).map((t) => t.name)
        assert.include(names, "echo")
        assert.strictEqual(textOf(yield* tools.callTool(connection, "echo", { text: "over sse" })), "over sse")
        const seen = server.requests.map((r) => `${r.method} ${r.path}`)
        assert.strictEqual(seen[0], "POST /sse")
        assert.strictEqual(seen[1], "GET /sse")
        assert.include(seen, "POST /messages")
        for (const request of server.requests) {
          assert.strictEqual(request.headers.authorization, `Bearer ${CANARY}`)
        }
      })
    )
  )
})

describe("credentials", () => {
  it.live("BEARER: the Authorization header and connection headers reach the server; secrets never come back", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url, {
          patterns: bearer,
          connection: { security: { token: CANARY }, headers: { "X-Team": "blue", Authorization: "Bearer loser" } }
        })
        const tools = yield* Tools.Tools
        const sb = yield* Switchboard.Switchboard
        const seen: Array<unknown> = []
        seen.push(yield* tools.listTools(connection))
        seen.push(yield* tools.callTool(connection, "echo", { text: "hi" }))
        seen.push(yield* tools.callTool(connection, "fail"))
        seen.push(yield* failure(tools.callTool(connection, "add", { a: "x" })))
        seen.push(
          yield* failure(tools.callTool(connection, "slow", { steps: 50, delay_ms: 100 }, { timeoutMillis: 50 }))
        )
        for (const request of server.requests) {
          assert.strictEqual(request.headers.authorization, `Bearer ${CANARY}`)
          assert.strictEqual(request.headers["x-team"], "blue")
        }
        const audit = yield* sb.listAudit({ action: "tool.call" })
        seen.push(audit)
        const everything = JSON.stringify(seen) + seen.map(String).join("")
        assert.notInclude(everything, CANARY)
      })
    )
  )

  it.live("API_KEY: the key goes in the overriding header, or in the query", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const apiKey = (extra: Record<string, unknown>) => [
          {
            type: "API_KEY",
            display_name: "Key",
            fields: [{ field_name: "api_key", label: "Key", input_type: "password", required: true }],
            is_mcp: true,
            ...extra
          }
        ]
        const tools = yield* Tools.Tools
        const inHeader = yield* httpConnection(server.url, {
          patterns: apiKey({ auth_header_key_override: "X-Api-Key" }),
          connection: { security: { api_key: "key-in-header-123" } }
        })
        yield* tools.callTool(inHeader, "echo", { text: "a" })
        const headerRequests = server.requests.splice(0)
        assert.isAbove(headerRequests.length, 0)
        for (const request of headerRequests) {
          assert.strictEqual(request.headers["x-api-key"], "key-in-header-123")
          assert.isUndefined(request.headers.authorization)
        }
        const inQuery = yield* httpConnection(server.url, {
          patterns: apiKey({ api_key_query_param: "key" }),
          connection: { security: { api_key: "key in query&=" }, parameters: { query: { team: "blue" } } }
        })
        yield* tools.callTool(inQuery, "echo", { text: "b" })
        assert.isAbove(server.requests.length, 0)
        for (const request of server.requests) {
          assert.deepStrictEqual(request.query, { team: "blue", key: "key in query&=" })
        }
      })
    )
  )

  it.live("a secret in the server URL's path stays out of error messages", () =>
    run(
      Effect.gen(function* () {
        const port = yield* Effect.promise(HttpServers.closedPort)
        const connection = yield* httpConnection(`http://127.0.0.1:${port}/s/{{api_key}}/mcp`, {
          patterns: [
            {
              type: "API_KEY",
              fields: [{ field_name: "api_key", label: "Key", input_type: "password", required: true }],
              is_mcp: true
            }
          ],
          connection: { security: { api_key: CANARY } }
        })
        const tools = yield* Tools.Tools
        const error = yield* failure(tools.listTools(connection))
        assert.strictEqual(error.code, "upstream_unreachable")
        assert.include(error.message, `http://127.0.0.1:${port}/s/<redacted>/mcp`)
        assert.notInclude(JSON.stringify(error) + error.message, CANARY)
      })
    )
  )

  it.live("a rotated credential gets a new session", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const sb = yield* Switchboard.Switchboard
        const tools = yield* Tools.Tools
        const connection = yield* httpConnection(server.url, { patterns: bearer })
        const connector = (yield* sb.getConnection(connection)).connector_id
        yield* sb.setCredential(connector, "user", { values: { token: "first-token" } })
        yield* tools.callTool(connection, "echo", { text: "1" })
        yield* sb.setCredential(connector, "user", { values: { token: "second-token" } })
        yield* tools.callTool(connection, "echo", { text: "2" })
        const tokens = [...new Set(server.requests.map((r) => r.headers.authorization))]
        assert.deepStrictEqual(tokens, ["Bearer first-token", "Bearer second-token"])
        assert.strictEqual(server.state.counts.sessions, 2)
      })
    )
  )
})

describe("local MCP programs on stdio", () => {
  it.live("credentials reach the program through env only; its environment is otherwise minimal", () =>
    run(
      Effect.gen(function* () {
        process.env.SB_PARENT_ONLY = "parent-secret"
        const connection = yield* stdioConnection(
          Programs.testProgram(["--flag", "plain-arg"]),
          { SB_TEST_TOKEN: "{{token}}", SB_TEST_HEADER: "Bearer {{token}}" },
          CANARY
        )
        const tools = yield* Tools.Tools
        const names = (yield* tools.listTools(connection)).map((t) => t.name)
        assert.deepStrictEqual(names, ["whoami", "leak", "crash", "echo"])
        const result = yield* tools.callTool(connection, "whoami", { name: "SB_TEST_TOKEN" })
        const report = JSON.parse(textOf(result)) as {
          argv: Array<string>
          env_names: Array<string>
          sha256: string
        }
        assert.strictEqual(report.sha256, sha256(CANARY))
        assert.deepStrictEqual(report.argv.slice(2), ["--flag", "plain-arg"])
        assert.notInclude(JSON.stringify(report.argv), CANARY)
        const allowed = new Set([...Object.keys(getDefaultEnvironment()), "SB_TEST_TOKEN", "SB_TEST_HEADER"])
        assert.deepStrictEqual(
          report.env_names.filter((n) => !allowed.has(n)),
          [],
          "only the default environment and the credential env"
        )
        const header = yield* tools.callTool(connection, "whoami", { name: "SB_TEST_HEADER" })
        assert.strictEqual((JSON.parse(textOf(header)) as { sha256: string }).sha256, sha256(`Bearer ${CANARY}`))
      })
    )
  )

  it.live("a program that dies: a typed error with its scrubbed stderr, then a new process", () =>
    run(
      Effect.gen(function* () {
        const connection = yield* stdioConnection(Programs.testProgram(), { SB_TEST_TOKEN: "{{token}}" }, CANARY)
        const tools = yield* Tools.Tools
        const sb = yield* Switchboard.Switchboard
        yield* tools.callTool(connection, "leak", { name: "SB_TEST_TOKEN" })
        const error = yield* failure(tools.callTool(connection, "crash", {}))
        assert.strictEqual(error._tag, "UpstreamError")
        assert.strictEqual(error.code, "upstream_unreachable")
        assert.include(error.message, "fatal: crashing on request, token was <redacted>")
        assert.include(error.message, "debug: SB_TEST_TOKEN=<redacted>")
        assert.notInclude(JSON.stringify(error) + String(error) + error.message, CANARY)
        assert.strictEqual(textOf(yield* tools.callTool(connection, "echo", { text: "back" })), "back")
        const audit = yield* sb.listAudit({ action: "tool.call" })
        assert.deepStrictEqual(audit.data.map((r) => [r.tool, r.outcome, r.error_code ?? null]).reverse(), [
          ["leak", "success", null],
          ["crash", "failure", "upstream_unreachable"],
          ["echo", "success", null]
        ])
        assert.notInclude(JSON.stringify(audit), CANARY)
      })
    )
  )

  it.live("a program that cannot start is upstream_unreachable", () =>
    run(
      Effect.gen(function* () {
        const connection = yield* stdioConnection(
          { program: "/nonexistent/switchboard-mcp-program", args: [] },
          { SB_TEST_TOKEN: "{{token}}" },
          CANARY
        )
        const tools = yield* Tools.Tools
        const error = yield* failure(tools.listTools(connection))
        assert.strictEqual(error.code, "upstream_unreachable")
        assert.include(error.message, "ENOENT")
      })
    )
  )

  it.live("@modelcontextprotocol/server-everything: list, call, progress, env", () =>
    run(
      Effect.gen(function* () {
        const connection = yield* stdioConnection(
          Programs.everything(),
          { SB_EVERYTHING_TOKEN: "{{token}}" },
          "everything-token-42"
        )
        const tools = yield* Tools.Tools
        const names = (yield* tools.listTools(connection)).map((t) => t.name)
        for (const name of ["echo", "get-sum", "trigger-long-running-operation", "get-env"]) assert.include(names, name)
        assert.strictEqual(textOf(yield* tools.callTool(connection, "echo", { message: "hi" })), "Echo: hi")
        assert.strictEqual(
          textOf(yield* tools.callTool(connection, "get-sum", { a: 2, b: 3 })),
          "The sum of 2 and 3 is 5."
        )
        const invalid = yield* failure(tools.callTool(connection, "get-sum", { a: "2", b: 3 }))
        assert.strictEqual(invalid._tag, "ValidationFailed")
        const progress: Array<number> = []
        yield* tools.callTool(
          connection,
          "trigger-long-running-operation",
          { duration: 0.3, steps: 3 },
          { onProgress: (p) => progress.push(p.progress) }
        )
        assert.deepStrictEqual(progress, [1, 2, 3])
        const env = JSON.parse(textOf(yield* tools.callTool(connection, "get-env", {}))) as Record<string, string>
        assert.strictEqual(env.SB_EVERYTHING_TOKEN, "everything-token-42")
      })
    )
  )
})

describe("Tools", () => {
  it.live("refuses connections whose connector is not an MCP server", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector({ name: "rest", display_name: "REST", proxy_url: "https://api.example.com" })
        const connection = yield* sb.createConnection("rest", { name: "rest-conn" })
        const tools = yield* Tools.Tools
        const error = yield* failure(tools.listTools(connection.id))
        assert.strictEqual(error._tag, "InvalidRequest")
        assert.include(error.message, "not an MCP server")
      })
    )
  )

  it.live("audits tool calls with tool, outcome and duration, never arguments or results", () =>
    run(
      Effect.gen(function* () {
        const server = yield* HttpServers.scoped(() => HttpServers.startStreamable())
        const connection = yield* httpConnection(server.url)
        const tools = yield* Tools.Tools
        const sb = yield* Switchboard.Switchboard
        yield* tools.callTool(connection, "echo", { text: "argument-marker" })
        yield* tools.callTool(connection, "fail")
        yield* failure(tools.callTool(connection, "add", { a: "argument-marker-2" }))
        const audit = (yield* sb.listAudit({ action: "tool.call" })).data.slice().reverse()
        assert.deepStrictEqual(
          audit.map((r) => [r.tool, r.outcome, r.error_code ?? null, r.connection_id]),
          [
            ["echo", "success", null, connection],
            ["fail", "failure", "tool_error", connection],
            ["add", "failure", "validation_failed", connection]
          ]
        )
        for (const record of audit) assert.isAtLeast(record.duration_ms ?? -1, 0)
        const text = JSON.stringify(audit)
        assert.notInclude(text, "argument-marker")
        assert.notInclude(text, "the tool failed on purpose")
      })
    )
  )
})
