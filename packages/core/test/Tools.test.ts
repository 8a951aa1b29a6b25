/**
 * Tools: how a resolved call becomes an MCP target (HTTP headers and query, stdio env from templates and
 * never argv, non-MCP connectors refused) and what the service records — one audit entry per tool call with
 * tool, outcome and duration, for successes, tool errors, failures and cancellations.
 */
import { assert, describe, it } from "@effect/vitest"
import type { AuditRecord } from "../src/AuditLog.ts"
import type * as Connection from "../src/Connection.ts"
import type * as Connector from "../src/Connector.ts"
import { UpstreamError, ValidationFailed } from "../src/Errors.ts"
import * as FieldMutation from "../src/FieldMutation.ts"
import { type McpTarget, type McpToolResult, McpUpstream } from "../src/McpUpstream.ts"
import { type ResolvedCall, Switchboard } from "../src/Switchboard.ts"
import * as Tools from "../src/Tools.ts"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"

const connection: Connection.Connection = {
  id: "conn_01",
  name: "Docs",
  connector_id: "ctr_01",
  connector_version: null,
  org: "local",
  workspace: "default",
  owner: "local",
  access_scope: "personal",
  is_service_account: false,
  auth_type: "BEARER",
  credential: null,
  parameters: {},
  servers: [],
  allow_private_network: false,
  has_security: true,
  header_names: [],
  status: "active",
  account_label: null,
  last_tested_at: null,
  last_error: null,
  created_at: "2025-01-01T00:00:00.000Z",
  updated_at: "2025-01-01T00:00:00.000Z"
}

const connector = (overrides: Partial<Connector.Connector> = {}): Connector.Connector => ({
  id: "ctr_01",
  name: "docs",
  display_name: "Docs",
  kind: "mcp",
  proxy_url: "https://mcp.example.com/mcp",
  auth_patterns: [],
  visibility: "private",
  version: 1,
  created_at: "2025-01-01T00:00:00.000Z",
  updated_at: "2025-01-01T00:00:00.000Z",
  ...overrides
})

/** A connector that runs a local program instead of having a URL. */
const local = (command: Connector.McpCommand): Connector.Connector => {
  const { proxy_url: _url, ...rest } = connector()
  return { ...rest, command }
}

const resolved = (overrides: Partial<ResolvedCall> = {}): ResolvedCall => ({
  connection,
  connector: connector(),
  pattern: undefined,
  baseUrl: "https://mcp.example.com/mcp",
  auth: FieldMutation.none,
  headers: {},
  query: {},
  values: {},
  source: { _tag: "Inline" },
  ...overrides
})

const reveal = (values: Readonly<Record<string, Redacted.Redacted<string>>> | undefined) =>
  Object.fromEntries(Object.entries(values ?? {}).map(([k, v]) => [k, Redacted.value(v)]))

const target = (call: ResolvedCall): McpTarget => {
  const result = Tools.targetOf(call)
  if (Result.isFailure(result)) assert.fail(`expected a target, got ${result.failure.message}`)
  return result.success
}

describe("targetOf", () => {
  it("HTTP: the base URL with plain query parameters; auth headers win over connection headers", () => {
    const t = target(
      resolved({
        baseUrl: "https://mcp.example.com/mcp?v=1#frag",
        query: { team: "a b" },
        headers: { "X-Team": Redacted.make("blue"), authorization: Redacted.make("Bearer connection") },
        auth: {
          headers: { Authorization: Redacted.make("Bearer secret") },
          query: { key: Redacted.make("query-secret") }
        },
        connection: { ...connection, allow_private_network: true }
      })
    )
    assert.strictEqual(t._tag, "Http")
    if (t._tag !== "Http") return
    assert.strictEqual(t.key, "conn_01")
    assert.strictEqual(t.url, "https://mcp.example.com/mcp?v=1&team=a%20b#frag")
    assert.deepStrictEqual(reveal(t.headers), { "X-Team": "blue", Authorization: "Bearer secret" })
    assert.deepStrictEqual(reveal(t.query), { key: "query-secret" })
    assert.notInclude(t.url, "query-secret")
    assert.strictEqual(t.allowPrivateNetwork, true)
  })

  it("stdio: program and args as given; env templates rendered with the credential values", () => {
    const t = target(
      resolved({
        baseUrl: undefined,
        connector: local({
          program: "github-mcp",
          args: ["--read-only", "{{token}}"],
          env: { GITHUB_TOKEN: "{{token}}", AUTH: "Bearer {{token}}", MODE: "fixed" }
        }),
        values: { token: Redacted.make("ghp_secret") }
      })
    )
    assert.strictEqual(t._tag, "Stdio")
    if (t._tag !== "Stdio") return
    assert.strictEqual(t.program, "github-mcp")
    assert.deepStrictEqual(t.args, ["--read-only", "{{token}}"], "argv is never templated")
    assert.deepStrictEqual(reveal(t.env), { GITHUB_TOKEN: "ghp_secret", AUTH: "Bearer ghp_secret", MODE: "fixed" })
  })

  it("names the secret credential values, by the pattern's declaration or the field's name", () => {
    const t = target(
      resolved({
        pattern: {
          type: "API_KEY",
          fields: [{ field_name: "api_key" }, { field_name: "pin", input_type: "password" }],
          account_fields: [{ field_name: "domain", input_type: "text" }]
        },
        values: {
          api_key: Redacted.make("k-1"),
          pin: Redacted.make("p-2"),
          domain: Redacted.make("acme"),
          password: Redacted.make("undeclared-3")
        }
      })
    )
    assert.deepStrictEqual(
      (t.secrets ?? []).map((v) => Redacted.value(v)),
      ["k-1", "p-2", "undeclared-3"]
    )
  })

  it("stdio: a template naming a missing value fails without echoing anything", () => {
    const result = Tools.targetOf(
      resolved({
        connector: local({ program: "x", env: { T: "{{token}}" } }),
        values: {}
      })
    )
    assert.isTrue(Result.isFailure(result))
    if (Result.isSuccess(result)) return
    assert.strictEqual(result.failure.code, "template_value_missing")
  })

  it("refuses connectors that are not MCP servers, and MCP connectors without a URL or command", () => {
    const rest = Tools.targetOf(resolved({ connector: connector({ kind: "http", name: "rest" }) }))
    assert.isTrue(Result.isFailure(rest))
    if (Result.isSuccess(rest)) return
    assert.strictEqual(rest.failure._tag, "InvalidRequest")
    assert.include(rest.failure.message, "of kind http, not an MCP server")
    const { proxy_url: _url, ...noUrl } = connector()
    const nowhere = Tools.targetOf(resolved({ baseUrl: undefined, connector: noUrl }))
    assert.isTrue(Result.isFailure(nowhere))
  })
})

describe("Tools service", () => {
  const make = (callTool: McpUpstream["Service"]["callTool"], call: ResolvedCall = resolved()) => {
    type Entry = Omit<AuditRecord, "id" | "at" | "org" | "workspace" | "actor">
    const audit: Array<Entry> = []
    const targets: Array<McpTarget> = []
    const switchboard = Layer.succeed(
      Switchboard,
      Switchboard.of({
        resolveCall: () => Effect.succeed(call),
        audit: (entry: Entry) => Effect.sync(() => void audit.push(entry))
      } as unknown as Switchboard["Service"])
    )
    const upstream = Layer.succeed(
      McpUpstream,
      McpUpstream.of({
        listTools: (t) => Effect.sync(() => (targets.push(t), [])),
        callTool: (t, ...rest) => Effect.suspend(() => (targets.push(t), callTool(t, ...rest))),
        toolsChanged: Stream.make("conn_01")
      })
    )
    return { audit, targets, layer: Tools.layer.pipe(Layer.provide(Layer.mergeAll(switchboard, upstream))) }
  }

  const ok: McpToolResult = { content: [{ type: "text", text: "result-text" }] }

  it.effect("audits a call with tool, outcome and duration, not arguments or results", () => {
    const env = make(() => Effect.as(Effect.sleep("1500 millis"), ok))
    return Effect.gen(function* () {
      const tools = yield* Tools.Tools
      const fiber = yield* Effect.forkChild(tools.callTool("Docs", "search", { q: "argument-text" }))
      yield* TestClock.adjust("1500 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), ok)
      assert.deepStrictEqual(env.audit, [
        {
          action: "tool.call",
          outcome: "success",
          connector_id: "ctr_01",
          connection_id: "conn_01",
          target: "Docs",
          tool: "search",
          duration_ms: 1500
        }
      ])
      assert.strictEqual(env.targets[0]?._tag, "Http")
    }).pipe(Effect.provide(env.layer))
  })

  it.effect("a tool error is a result, audited as a failure", () => {
    const env = make(() => Effect.succeed({ ...ok, isError: true }))
    return Effect.gen(function* () {
      const result = yield* Tools.Tools.use((t) => t.callTool("Docs", "search"))
      assert.strictEqual(result.isError, true)
      assert.strictEqual(env.audit[0]?.outcome, "failure")
      assert.strictEqual(env.audit[0]?.error_code, "tool_error")
    }).pipe(Effect.provide(env.layer))
  })

  it.effect("an upstream failure keeps its typed error and is audited with its code", () => {
    const env = make(() =>
      Effect.fail(new UpstreamError({ reason: "upstream_unreachable", message: "connection refused" }))
    )
    return Effect.gen(function* () {
      const error = yield* Effect.flip(Tools.Tools.use((t) => t.callTool("Docs", "search")))
      assert.strictEqual(error.code, "upstream_unreachable")
      assert.strictEqual(env.audit[0]?.error_code, "upstream_unreachable")
    }).pipe(Effect.provide(env.layer))
  })

  it.effect("a cancelled call is audited as cancelled", () => {
    const env = make(() => Effect.never)
    return Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(Tools.Tools.use((t) => t.callTool("Docs", "search")))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(env.audit[0]?.error_code, "cancelled")
    }).pipe(Effect.provide(env.layer))
  })

  it.effect("a non-MCP connection fails before anything is called or audited", () => {
    const env = make(() => Effect.succeed(ok), resolved({ connector: connector({ kind: "http" }) }))
    return Effect.gen(function* () {
      const error = yield* Effect.flip(Tools.Tools.use((t) => t.callTool("Docs", "search")))
      assert.strictEqual(error._tag, "InvalidRequest")
      assert.deepStrictEqual(env.targets, [])
      assert.deepStrictEqual(env.audit, [])
    }).pipe(Effect.provide(env.layer))
  })

  it.effect(
    "calls go through the connection's circuit breaker: 5 upstream failures open it, then nothing is sent",
    () => {
      let sent = 0
      const env = make(() =>
        Effect.suspend(() => {
          sent++
          return Effect.fail(new UpstreamError({ reason: "upstream_unreachable", message: "connection refused" }))
        })
      )
      return Effect.gen(function* () {
        const tools = yield* Tools.Tools
        for (let i = 0; i < 5; i++) yield* Effect.flip(tools.callTool("Docs", "search"))
        const error = yield* Effect.flip(tools.callTool("Docs", "search"))
        assert.strictEqual(error.code, "circuit_open")
        assert.strictEqual(sent, 5)
        assert.strictEqual(env.audit[5]?.error_code, "circuit_open")
      }).pipe(Effect.provide(env.layer))
    }
  )

  it.effect("arguments refused before sending do not count against the upstream's health", () => {
    let calls = 0
    const env = make((_t, _name, args) =>
      Effect.suspend(() => {
        calls++
        return args["bad"] === true
          ? Effect.fail(new ValidationFailed({ message: "arguments do not match the tool's input schema" }))
          : Effect.succeed(ok)
      })
    )
    return Effect.gen(function* () {
      const tools = yield* Tools.Tools
      for (let i = 0; i < 6; i++) {
        const error = yield* Effect.flip(tools.callTool("Docs", "search", { bad: true }))
        assert.strictEqual(error._tag, "ValidationFailed")
      }
      assert.deepStrictEqual(yield* tools.callTool("Docs", "search"), ok)
      assert.strictEqual(calls, 7)
    }).pipe(Effect.provide(env.layer))
  })

  it.effect("calls take the connection's own rate limit", () => {
    let sent = 0
    const env = make(
      () => Effect.sync(() => (sent++, ok)),
      resolved({ connection: { ...connection, rate_limit: { requests_per_second: 1, burst: 2 } } })
    )
    return Effect.gen(function* () {
      const tools = yield* Tools.Tools
      yield* tools.callTool("Docs", "search")
      yield* tools.callTool("Docs", "search")
      const error = yield* Effect.flip(tools.callTool("Docs", "search"))
      assert.strictEqual(error.code, "rate_limited")
      assert.strictEqual(sent, 2)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* tools.callTool("Docs", "search"), ok)
    }).pipe(Effect.provide(env.layer))
  })

  it.effect("passes the upstream's tool-list changes through", () => {
    const env = make(() => Effect.succeed(ok))
    return Effect.gen(function* () {
      const changed = yield* Tools.Tools.use((t) => Stream.runCollect(t.toolsChanged))
      assert.deepStrictEqual(changed, ["conn_01"])
    }).pipe(Effect.provide(env.layer))
  })
})
