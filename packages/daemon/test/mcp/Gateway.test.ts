/**
 * The MCP gateway in process, on the memory store with scripted `Tools` and `Proxy` services: naming and
 * collisions, what is offered and what is reported instead (inactive, dead and slow upstreams), filters,
 * routing calls, errors as `isError` results, progress and cancellation, the request tool's rendering, and
 * when the client is told to list again. The real binary against real servers is in test/e2e/mcp-server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import { type SwitchboardError, UpstreamError } from "@switchboard/core/Errors"
import type { McpTool, Progress } from "@switchboard/core/McpUpstream"
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as ToolNames from "@switchboard/core/ToolNames"
import * as Tools from "@switchboard/core/Tools"
import type { UpstreamResponse } from "@switchboard/core/Upstream"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as References from "effect/References"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Gateway from "../../src/mcp/Gateway.ts"
import * as Management from "../../src/mcp/Management.ts"
import type { CallResult, ToolDefinition } from "../../src/mcp/Protocol.ts"

const tool = (name: string, extra: Partial<McpTool> = {}): McpTool => ({
  name,
  description: `the ${name} tool`,
  inputSchema: { type: "object", properties: {} },
  ...extra
})

const textOf = (result: CallResult) => result.content.map((c) => String(c.text)).join("\n")

/** What the scripted upstreams do, by connection name, and what they saw. */
class Script {
  readonly lists = new Map<string, Effect.Effect<ReadonlyArray<McpTool>, SwitchboardError>>()
  readonly listed: Array<string> = []
  readonly calls: Array<{ readonly connection: string; readonly tool: string; readonly args: unknown }> = []
  readonly cancelled: Array<string> = []
  readonly requests: Array<{ readonly connection: string; readonly req: Proxy.ProxyRequest; readonly body: string }> =
    []
  readonly changed = Effect.runSync(PubSub.unbounded<string>())
}

const bytes = (text: string) => new TextEncoder().encode(text)

const response = (status: number, headers: Record<string, string>, body: string): UpstreamResponse => ({
  status,
  headers,
  body: Stream.make(bytes(body))
})

const scripted = (script: Script) =>
  Layer.effect(
    Tools.Tools,
    Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      const nameOf = (id: string) => Effect.map(Effect.orDie(sb.getConnection(id)), (c) => c.name)
      return Tools.Tools.of({
        listTools: (id) =>
          Effect.gen(function* () {
            const name = yield* nameOf(id)
            script.listed.push(name)
            return yield* script.lists.get(name) ?? Effect.succeed([tool("echo")])
          }),
        callTool: (id, name, args = {}, options) =>
          Effect.gen(function* () {
            const connection = yield* nameOf(id)
            script.calls.push({ connection, tool: name, args })
            switch (name) {
              case "boom":
                return yield* new UpstreamError({
                  reason: "upstream_unreachable",
                  message: "connecting to MCP server http://127.0.0.1:1/mcp failed: ECONNREFUSED"
                })
              case "fail":
                return { content: [{ type: "text", text: "failed on purpose" }], isError: true }
              case "progress": {
                for (let i = 1; i <= 3; i++) options?.onProgress?.({ progress: i, total: 3, message: `step ${i}` })
                return { content: [{ type: "text", text: "done" }] }
              }
              case "hang":
                return yield* Effect.never.pipe(
                  Effect.onInterrupt(() => Effect.sync(() => script.cancelled.push(connection)))
                )
              case "die":
                return yield* Effect.die(new Error("kaboom"))
              default:
                return { content: [{ type: "text", text: `${connection}/${name}: ${JSON.stringify(args)}` }] }
            }
          }),
        toolsChanged: Stream.fromPubSub(script.changed)
      })
    })
  )

const proxy = (script: Script) =>
  Layer.effect(
    Proxy.Proxy,
    Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      return Proxy.Proxy.of({
        request: (id, req) =>
          Effect.gen(function* () {
            const connection = (yield* sb.getConnection(id)).name
            const chunks = req.body === undefined ? [] : yield* Effect.orDie(Stream.runCollect(req.body))
            const body = new TextDecoder().decode(Buffer.concat(chunks))
            script.requests.push({ connection, req, body })
            switch (req.path) {
              case "/json":
                return response(200, { "content-type": "application/json" }, '{"items":[1,2,3]}')
              case "/big":
                return response(200, { "content-type": "text/plain" }, "x".repeat(200))
              case "/missing":
                return response(404, { "content-type": "application/json" }, '{"error":"not found"}')
              case "/binary":
                return response(200, { "content-type": "application/octet-stream" }, "\u0001\u0002")
              default:
                return response(200, { "content-type": "text/plain" }, `echo ${body}`)
            }
          })
      })
    })
  )

const stack = (script: Script) => {
  const sb = Switchboard.layer.pipe(Layer.provide(Memory.layer))
  return Layer.mergeAll(scripted(script), proxy(script)).pipe(Layer.provideMerge(sb))
}

type Env = Switchboard.Switchboard | Tools.Tools | Proxy.Proxy | Scope.Scope

const run = <A, E>(script: Script, effect: Effect.Effect<A, E, Env>) =>
  Effect.scoped(effect).pipe(Effect.provide(stack(script)), Effect.provideService(References.MinimumLogLevel, "None"))

const mcpConnector = (name: string, patterns: ReadonlyArray<unknown> = []) =>
  Effect.flatMap(Effect.service(Switchboard.Switchboard), (sb) =>
    sb.createConnector({
      name,
      display_name: name,
      kind: "mcp",
      proxy_url: `https://${name}.example.com/mcp`,
      auth_patterns: patterns
    })
  )

const connect = (connector: string, name: string, extra: Record<string, unknown> = {}) =>
  Effect.flatMap(Effect.service(Switchboard.Switchboard), (sb) => sb.createConnection(connector, { name, ...extra }))

const restConnector = (name: string) =>
  Effect.flatMap(Effect.service(Switchboard.Switchboard), (sb) =>
    sb.createConnector({
      name,
      display_name: "Acme API",
      description: "The Acme REST API",
      proxy_url: "https://api.acme.example/v1"
    })
  )

const names = (tools: ReadonlyArray<ToolDefinition>) => tools.map((t) => t.name)

const byName = (tools: ReadonlyArray<ToolDefinition>, name: string) => {
  const found = tools.find((t) => t.name === name)
  assert.isDefined(found, `${name} is offered`)
  return found
}

const connectionsOf = (result: CallResult) =>
  (result.structuredContent as { connections: Array<{ name: string; status: string; tools: any }> }).connections

/** Wait for the next `changes` element, bounded (the bound is a safety net, not a timing assertion). */
const nextChange = (gateway: Gateway.Gateway) =>
  Stream.runHead(gateway.changes).pipe(
    Effect.timeoutOption("10 seconds"),
    Effect.map((o) => Option.isSome(o))
  )

describe("tools/list", () => {
  it.live("offers each active MCP connection's tools as <connection>__<tool>, verbatim otherwise", () => {
    const script = new Script()
    const weather = tool("get_weather", {
      title: "Weather",
      description: "Current weather for a city",
      inputSchema: {
        type: "object",
        properties: { city: { type: "string", minLength: 1 } },
        required: ["city"],
        additionalProperties: false
      },
      outputSchema: { type: "object", properties: { temperature: { type: "number" } }, required: ["temperature"] },
      annotations: { readOnlyHint: true, openWorldHint: true }
    })
    script.lists.set("weather", Effect.succeed([weather, tool("echo")]))
    return run(
      script,
      Effect.gen(function* () {
        yield* mcpConnector("weather-mcp")
        yield* connect("weather-mcp", "weather")
        const gateway = yield* Gateway.make()
        const listed = yield* gateway.listTools
        assert.deepStrictEqual(names(listed), ["weather__get_weather", "weather__echo", ...Management.names])
        assert.deepStrictEqual(byName(listed, "weather__get_weather"), { ...weather, name: "weather__get_weather" })
      })
    )
  })

  it.live("offers one request tool per REST connection and none for inactive connections", () => {
    const script = new Script()
    return run(
      script,
      Effect.gen(function* () {
        yield* restConnector("acme")
        yield* connect("acme", "Acme Prod")
        yield* mcpConnector("needs-token", [
          {
            type: "BEARER",
            display_name: "Token",
            fields: [{ field_name: "token", label: "Token", input_type: "password", required: true }]
          }
        ])
        const pending = yield* connect("needs-token", "pending one")
        assert.strictEqual(pending.status, "pending_auth")
        const gateway = yield* Gateway.make()
        const listed = yield* gateway.listTools
        const request = byName(listed, "Acme_Prod__request")
        assert.deepStrictEqual(request.inputSchema.required, ["path"])
        assert.include(request.description ?? "", "Acme API")
        assert.include(request.description ?? "", "https://api.acme.example/v1")
        assert.isFalse(names(listed).some((n) => n.startsWith("pending")))
        assert.deepStrictEqual(script.listed, [], "no upstream listed for a pending or REST connection")
        const connections = byName(listed, Management.LIST_CONNECTIONS)
        assert.include(connections.description ?? "", "pending one needs authorization (pending_auth)")
        const auth = yield* gateway.callTool(Management.AUTH_LINK, { connection: "pending one" })
        assert.include(textOf(auth), "switchboard cred set needs-token")
        assert.strictEqual((auth.structuredContent as { authorized: boolean }).authorized, false)
      })
    )
  })

  it.live("an OAuth connection waiting for a login: the auth tool gives the command that opens the browser", () =>
    run(
      new Script(),
      Effect.gen(function* () {
        yield* mcpConnector("oauth-mcp", [{ type: "OAUTH", oauth_config: { pkce_enabled: true }, is_mcp: true }])
        const pending = yield* connect("oauth-mcp", "my oauth")
        assert.strictEqual(pending.status, "pending_auth")
        const gateway = yield* Gateway.make()
        const auth = yield* gateway.callTool(Management.AUTH_LINK, { connection: pending.id })
        assert.strictEqual(
          (auth.structuredContent as { command: string }).command,
          'switchboard auth login oauth-mcp --connection "my oauth"'
        )
        assert.include(textOf(auth), "opens the sign-in page")
      })
    )
  )

  it.live("a dead upstream is reported, not fatal; the others are listed", () => {
    const script = new Script()
    script.lists.set(
      "dead",
      Effect.fail(
        new UpstreamError({
          reason: "upstream_unreachable",
          message: "connecting to MCP server http://127.0.0.1:9/mcp failed: ECONNREFUSED"
        })
      )
    )
    return run(
      script,
      Effect.gen(function* () {
        yield* mcpConnector("srv")
        yield* connect("srv", "dead")
        yield* connect("srv", "alive")
        const gateway = yield* Gateway.make()
        const listed = yield* gateway.listTools
        assert.include(names(listed), "alive__echo")
        assert.isFalse(names(listed).some((n) => n.startsWith("dead")))
        assert.include(
          byName(listed, Management.LIST_CONNECTIONS).description ?? "",
          "dead is unavailable (upstream_unreachable: connecting to MCP server http://127.0.0.1:9/mcp failed"
        )
        const rows = connectionsOf(yield* gateway.callTool(Management.LIST_CONNECTIONS, {}))
        const dead = rows.find((r) => r.name === "dead")
        assert.strictEqual(dead?.tools.state, "unavailable")
        assert.strictEqual(dead?.tools.code, "upstream_unreachable")
        assert.deepStrictEqual(rows.find((r) => r.name === "alive")?.tools, { state: "ready", tools: ["alive__echo"] })
      })
    )
  })

  it.live("a slow upstream does not hold the list up; when it answers the client is told to list again", () => {
    const script = new Script()
    const release = Effect.runSync(Deferred.make<void>())
    script.lists.set("slow", Effect.as(Deferred.await(release), [tool("late")]))
    return run(
      script,
      Effect.gen(function* () {
        yield* mcpConnector("srv")
        yield* connect("srv", "slow")
        yield* connect("srv", "fast")
        const gateway = yield* Gateway.make({ listDeadline: "100 millis", pollInterval: "1 hour" })
        const first = yield* gateway.listTools
        assert.include(names(first), "fast__echo")
        assert.isFalse(names(first).includes("slow__late"))
        assert.include(byName(first, Management.LIST_CONNECTIONS).description ?? "", "slow is still loading")
        // a second list while it still loads does not start another fetch
        yield* gateway.listTools
        assert.strictEqual(script.listed.filter((n) => n === "slow").length, 1)
        const change = yield* Effect.forkChild(nextChange(gateway))
        yield* Deferred.succeed(release, undefined)
        assert.isTrue(yield* Fiber.join(change))
        assert.include(names(yield* gateway.listTools), "slow__late")
      })
    )
  })

  it.live("nothing is contacted before the first list", () => {
    const script = new Script()
    return run(
      script,
      Effect.gen(function* () {
        yield* mcpConnector("srv")
        yield* connect("srv", "one")
        const gateway = yield* Gateway.make({ pollInterval: "10 millis" })
        yield* Effect.sleep("50 millis")
        assert.deepStrictEqual(script.listed, [])
        yield* gateway.listTools
        assert.deepStrictEqual(script.listed, ["one"])
      })
    )
  })

  it.live("colliding names get stable hash suffixes and route to the right connection", () => {
    const script = new Script()
    script.lists.set("team a", Effect.succeed([tool("search")]))
    script.lists.set("team.a", Effect.succeed([tool("search")]))
    script.lists.set("switchboard", Effect.succeed([tool("list_connections")]))
    return run(
      script,
      Effect.gen(function* () {
        yield* mcpConnector("srv")
        const a = yield* connect("srv", "team a")
        const b = yield* connect("srv", "team.a")
        const s = yield* connect("srv", "switchboard")
        const gateway = yield* Gateway.make()
        const listed = names(yield* gateway.listTools)
        const nameA = `team_a__search_${ToolNames.shortHash(`${a.id}\u0000search`)}`
        const nameB = `team_a__search_${ToolNames.shortHash(`${b.id}\u0000search`)}`
        const nameS = `switchboard__list_connections_${ToolNames.shortHash(`${s.id}\u0000list_connections`)}`
        for (const n of [nameA, nameB, nameS, Management.LIST_CONNECTIONS]) assert.include(listed, n)
        assert.strictEqual(textOf(yield* gateway.callTool(nameA, { q: 1 })), 'team a/search: {"q":1}')
        assert.strictEqual(textOf(yield* gateway.callTool(nameB, { q: 2 })), 'team.a/search: {"q":2}')
        assert.strictEqual(textOf(yield* gateway.callTool(nameS, {})), "switchboard/list_connections: {}")
      })
    )
  })
})

describe("filters", () => {
  it.live("--connection offers only the named connections (by name or id); --tools is an allow-list", () => {
    const script = new Script()
    script.lists.set("one", Effect.succeed([tool("read_issue"), tool("create_issue"), tool("delete_repo")]))
    return run(
      script,
      Effect.gen(function* () {
        yield* mcpConnector("srv")
        yield* connect("srv", "one")
        const two = yield* connect("srv", "two")
        yield* connect("srv", "three")
        const byConnection = yield* Gateway.make({ connections: ["one", two.id] })
        const listed = names(yield* byConnection.listTools)
        assert.include(listed, "one__read_issue")
        assert.include(listed, "two__echo")
        assert.isFalse(listed.some((n) => n.startsWith("three")))
        assert.deepStrictEqual(
          connectionsOf(yield* byConnection.callTool(Management.LIST_CONNECTIONS, {}))
            .map((r) => r.name)
            .sort(),
          ["one", "two"]
        )
        assert.isTrue((yield* byConnection.callTool("three__echo", {})).isError)
        assert.isTrue((yield* byConnection.callTool(Management.AUTH_LINK, { connection: "three" })).isError)

        const allowed = yield* Gateway.make({ tools: ["one__*_issue", "switchboard__list_connections"] })
        assert.deepStrictEqual(names(yield* allowed.listTools).sort(), [
          "one__create_issue",
          "one__read_issue",
          "switchboard__list_connections"
        ])
        const refused = yield* allowed.callTool("one__delete_repo", {})
        assert.isTrue(refused.isError)
        assert.include(textOf(refused), "unknown tool one__delete_repo")
        assert.isTrue((yield* allowed.callTool(Management.LIST_CONNECTORS, {})).isError)
        assert.isFalse(script.calls.some((c) => c.tool === "delete_repo"))
      })
    )
  })

  it("allowList splits on commas and matches * anywhere", () => {
    const allowed = Gateway.allowList(["a__*, b__x", "*__request"])
    assert.isTrue(allowed("a__anything"))
    assert.isTrue(allowed("b__x"))
    assert.isFalse(allowed("b__xy"))
    assert.isTrue(allowed("rest__request"))
    assert.isFalse(allowed("a.b"))
    assert.isTrue(Gateway.allowList([])("whatever"))
  })
})

describe("tools/call", () => {
  it.live("forwards calls, progress and cancellation; failures become isError results", () => {
    const script = new Script()
    script.lists.set("one", Effect.succeed(["echo", "boom", "fail", "progress", "hang", "die"].map((n) => tool(n))))
    return run(
      script,
      Effect.gen(function* () {
        yield* mcpConnector("srv")
        yield* connect("srv", "one")
        const gateway = yield* Gateway.make()
        // a call before any list works: the gateway lists first
        assert.strictEqual(textOf(yield* gateway.callTool("one__echo", { text: "hi" })), 'one/echo: {"text":"hi"}')

        const boom = yield* gateway.callTool("one__boom", {})
        assert.strictEqual(boom.isError, true)
        assert.strictEqual(
          textOf(boom),
          "connecting to MCP server http://127.0.0.1:1/mcp failed: ECONNREFUSED (upstream_unreachable)"
        )
        assert.deepStrictEqual(yield* gateway.callTool("one__fail", {}), {
          content: [{ type: "text", text: "failed on purpose" }],
          isError: true
        })
        const died = yield* gateway.callTool("one__die", {})
        assert.strictEqual(died.isError, true)
        assert.notInclude(textOf(died), "kaboom")

        const seen: Array<Progress> = []
        assert.strictEqual(
          textOf(yield* gateway.callTool("one__progress", {}, { onProgress: (p) => seen.push(p) })),
          "done"
        )
        assert.deepStrictEqual(
          seen.map((p) => p.progress),
          [1, 2, 3]
        )

        const fiber = yield* Effect.forkChild(gateway.callTool("one__hang", {}))
        for (let i = 0; i < 500 && !script.calls.some((c) => c.tool === "hang"); i++) yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(script.cancelled, ["one"])

        const unknown = yield* gateway.callTool("nope__nothing", {})
        assert.strictEqual(unknown.isError, true)
        assert.include(textOf(unknown), "unknown tool nope__nothing")
      })
    )
  })

  it.live("the request tool goes through the proxy and renders the response", () => {
    const script = new Script()
    return run(
      script,
      Effect.gen(function* () {
        yield* restConnector("acme")
        yield* connect("acme", "acme")
        const gateway = yield* Gateway.make({ maxBodyBytes: 50 })
        yield* gateway.listTools

        const json = yield* gateway.callTool("acme__request", { path: "/json", query: { limit: 10, tag: ["a", "b"] } })
        assert.isUndefined(json.isError)
        assert.deepStrictEqual(json.structuredContent, {
          status: 200,
          headers: { "content-type": "application/json" },
          body: { items: [1, 2, 3] },
          body_encoding: "json",
          truncated: false
        })
        assert.deepStrictEqual(JSON.parse(textOf(json)), json.structuredContent)
        const sent = script.requests[0]
        assert.strictEqual(sent?.req.method, "GET")
        assert.deepStrictEqual(sent?.req.query, { limit: "10", tag: ["a", "b"] })

        const posted = yield* gateway.callTool("acme__request", { method: "POST", path: "/echo", body: { a: 1 } })
        assert.strictEqual((posted.structuredContent as { body: string }).body, 'echo {"a":1}')
        assert.strictEqual(script.requests[1]?.req.headers?.["content-type"], "application/json")

        const big = (yield* gateway.callTool("acme__request", { path: "/big" })).structuredContent as any
        assert.strictEqual(big.body, "x".repeat(50))
        assert.strictEqual(big.truncated, true)
        assert.include(big.note, "longer than 50 bytes")

        const missing = yield* gateway.callTool("acme__request", { path: "/missing" })
        assert.strictEqual(missing.isError, true)
        assert.strictEqual((missing.structuredContent as { status: number }).status, 404)

        const binary = (yield* gateway.callTool("acme__request", { path: "/binary" })).structuredContent as any
        assert.deepStrictEqual([binary.body_encoding, binary.body], ["base64", "AQI="])

        const invalid = yield* gateway.callTool("acme__request", { method: "TRACE", path: "/x", extra: 1 })
        assert.strictEqual(invalid.isError, true)
        assert.include(textOf(invalid), "(validation_failed)")
        assert.include(textOf(invalid), "extra")
        assert.strictEqual(script.requests.length, 5, "an invalid request is not sent")
      })
    )
  })
})

describe("changes", () => {
  it.live("a new connection or an upstream's new tool list tells the client to list again, once per listing", () => {
    const script = new Script()
    return run(
      script,
      Effect.gen(function* () {
        yield* mcpConnector("srv")
        const one = yield* connect("srv", "one")
        const gateway = yield* Gateway.make({ pollInterval: "20 millis" })
        yield* gateway.listTools

        // an upstream that is not offered does not count
        const unrelated = yield* Effect.forkChild(
          Stream.runHead(gateway.changes).pipe(Effect.timeoutOption("200 millis"))
        )
        yield* PubSub.publish(script.changed, "conn_not_offered")
        assert.isTrue(Option.isNone(yield* Fiber.join(unrelated)))

        const upstream = yield* Effect.forkChild(nextChange(gateway))
        yield* Effect.sleep("20 millis")
        yield* PubSub.publish(script.changed, one.id)
        assert.isTrue(yield* Fiber.join(upstream))
        // not again until the client has listed
        const quiet = yield* Effect.forkChild(Stream.runHead(gateway.changes).pipe(Effect.timeoutOption("200 millis")))
        yield* PubSub.publish(script.changed, one.id)
        assert.isTrue(Option.isNone(yield* Fiber.join(quiet)))

        yield* gateway.listTools
        const added = yield* Effect.forkChild(nextChange(gateway))
        yield* connect("srv", "two")
        assert.isTrue(yield* Fiber.join(added))
        assert.include(names(yield* gateway.listTools), "two__echo")
      })
    )
  })
})
