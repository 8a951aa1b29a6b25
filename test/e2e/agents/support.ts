/**
 * The stack the agent-framework tests run on: the embedded Switchboard (in-memory store, the real proxy with its
 * SSRF guard, the SDK-based MCP client) on a ManagedRuntime, a streamable HTTP MCP server on 127.0.0.1 (its
 * connection is `tools`), and a REST upstream on 127.0.0.1 that checks the API key Switchboard injects (its
 * connection is `api`). Also the MCP server's own tool list for the same data, to compare names and schemas.
 */
import * as Memory from "@switchboard/adapters/memory"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Gateway from "@switchboard/daemon/mcp/Gateway"
import * as Layers from "@switchboard/daemon/Layers"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { HttpServers } from "../../support/mcp/index.ts"
import type { HttpMcpServer } from "../../support/mcp/HttpServers.ts"

export const API_KEY = "sk-agents-test-7Qw2"

/** A REST upstream: `GET /api/items` answers a JSON list when the key is right, anything else a JSON error. */
export interface RestUpstream {
  readonly origin: string
  readonly seen: Array<{ readonly method: string; readonly url: string; readonly key: string | undefined }>
  readonly stop: () => Promise<void>
}

export const startRest = (): Promise<RestUpstream> =>
  new Promise((resolve) => {
    const seen: RestUpstream["seen"] = []
    const server: Server = createServer((req, res) => {
      const key = req.headers["x-api-key"]
      seen.push({ method: req.method ?? "", url: req.url ?? "", key: typeof key === "string" ? key : undefined })
      const send = (status: number, body: unknown) =>
        void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
      if (key !== API_KEY) return send(401, { error: "bad key" })
      if (req.method === "GET" && req.url?.startsWith("/api/items") === true) {
        return send(200, {
          items: [
            { id: 1, name: "first" },
            { id: 2, name: "second" }
          ]
        })
      }
      return send(404, { error: `no route ${req.method} ${req.url}` })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolve({
        origin: `http://127.0.0.1:${port}`,
        seen,
        stop: () =>
          new Promise<void>((done) => {
            server.closeAllConnections()
            server.close(() => done())
          })
      })
    })
  })

/** The connections `tools` (the MCP server) and `api` (the REST upstream, with its API key as a credential). */
export const seed = (
  runtime: ManagedRuntime.ManagedRuntime<Switchboard.Switchboard, unknown>,
  mcp: HttpMcpServer,
  rest: RestUpstream
): Promise<void> =>
  runtime.runPromise(
    Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      yield* sb.createConnector({
        name: "test-tools",
        display_name: "Test tools",
        kind: "mcp",
        proxy_url: mcp.url,
        auth_patterns: []
      })
      yield* sb.createConnection("test-tools", { name: "tools", allow_private_network: true })
      yield* sb.createConnector({
        name: "items-api",
        display_name: "Items API",
        description: "A list of items.",
        auth_patterns: [
          {
            type: "API_KEY",
            fields: [{ field_name: "api_key", input_type: "password" }],
            auth_header_key_override: "X-API-Key"
          }
        ],
        proxy_url: `${rest.origin}/api`,
        proxy_enabled: true
      })
      yield* sb.setCredential("items-api", "user", { values: { api_key: API_KEY } })
      yield* sb.createConnection("items-api", { name: "api", allow_private_network: true })
    })
  )

export interface Fixture {
  readonly runtime: ManagedRuntime.ManagedRuntime<Layers.Services, unknown>
  readonly mcp: HttpMcpServer
  readonly rest: RestUpstream
  /** The tools `switchboard mcp` lists for the same data (without its management tools). */
  readonly mcpServerTools: () => Promise<ReadonlyArray<{ readonly name: string; readonly inputSchema: unknown }>>
  readonly close: () => Promise<void>
}

/** Start both upstreams and the embedded stack, with the connections `tools` (MCP) and `api` (REST). */
export const start = async (): Promise<Fixture> => {
  const mcp = await HttpServers.startStreamable()
  const rest = await startRest()
  const runtime = ManagedRuntime.make(
    Layers.withCalls(Switchboard.layer.pipe(Layer.provide(Memory.layer)), { allowPrivateNetwork: true })
  ) as ManagedRuntime.ManagedRuntime<Layers.Services, unknown>
  await seed(runtime, mcp, rest)
  const mcpServerTools = () =>
    runtime.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const gateway = yield* Gateway.make({})
          const listed = yield* gateway.listTools
          return listed.filter((t) => !t.name.startsWith("switchboard__"))
        })
      )
    )
  return {
    runtime,
    mcp,
    rest,
    mcpServerTools,
    close: async () => {
      await runtime.dispose()
      await Promise.all([mcp.stop().catch(() => {}), rest.stop()])
    }
  }
}

/** Wait until `check` holds (polling every 20 ms), or fail after `ms`. */
export const eventually = async (check: () => boolean, ms = 5000): Promise<void> => {
  const until = performance.now() + ms
  while (!check()) {
    if (performance.now() > until) throw new Error("timed out waiting for a condition")
    // oxlint-disable-next-line no-await-in-loop -- polling
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const usage = {
  inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 1, text: 1, reasoning: undefined }
}

/**
 * The two turns of a scripted agent loop, for the AI SDK's mock language models (Mastra runs on them too):
 * first the given tool calls, then the answer "done".
 */
export const scriptedTurns = (calls: ReadonlyArray<{ readonly name: string; readonly input: unknown }>) => [
  {
    content: calls.map((c, i) => ({
      type: "tool-call" as const,
      toolCallId: `call-${i}`,
      toolName: c.name,
      input: JSON.stringify(c.input)
    })),
    finishReason: { unified: "tool-calls" as const, raw: undefined },
    usage,
    warnings: []
  },
  {
    content: [{ type: "text" as const, text: "done" }],
    finishReason: { unified: "stop" as const, raw: undefined },
    usage,
    warnings: []
  }
]
