/**
 * Record and replay through the library: the Switchboard service with `Proxy` and `Tools` over
 * `Cassette.layerRecord` (wrapping the real SSRF-guarded HTTP client and the SDK-based MCP client) against a REST
 * server and a streamable HTTP MCP server on 127.0.0.1, then over `Cassette.layerReplay` with both servers stopped
 * (their ports closed), wrong or no credentials, and no HTTP or MCP adapter in the stack at all. Covers matching
 * (query order, JSON key order, repeated requests in recorded order), recorded failures, `cassette_miss`, and
 * canaries that must appear nowhere in the cassettes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cassette from "@switchboard/adapters/cassette"
import * as HttpAdapter from "@switchboard/adapters/http"
import * as McpAdapter from "@switchboard/adapters/mcp"
import * as Memory from "@switchboard/adapters/memory"
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Tools from "@switchboard/core/Tools"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { HttpServers } from "../../support/mcp/index.ts"
import {
  CANARY_HEADER,
  CANARY_KEY,
  CANARY_MCP,
  CANARY_TOKEN,
  canariesIn,
  type EchoServer,
  filesUnder,
  startEchoServer
} from "./support.ts"

const calling = Layer.mergeAll(Proxy.layer, Tools.layer)
const store = () => Switchboard.layer.pipe(Layer.provideMerge(Memory.layer))

const recordStack = (dir: string) =>
  calling.pipe(
    Layer.provide(
      Cassette.layerRecord(dir).pipe(
        Layer.provide(
          Layer.mergeAll(HttpAdapter.Upstream.layerWith({}), McpAdapter.layer()).pipe(
            Layer.provide(HttpAdapter.Resolver.layer)
          )
        )
      )
    ),
    Layer.provideMerge(store())
  )

/** Nothing here can reach a network: no HTTP client, no MCP client, no resolver. */
const replayStack = (dir: string) => calling.pipe(Layer.provide(Cassette.layerReplay(dir)), Layer.provideMerge(store()))

type Services = Proxy.Proxy | Tools.Tools | Switchboard.Switchboard

const bearer = {
  type: "BEARER",
  display_name: "Token",
  fields: [{ field_name: "token", label: "Token", input_type: "password", required: true }]
}
const queryKey = {
  type: "API_KEY",
  display_name: "Key",
  api_key_query_param: "key",
  fields: [{ field_name: "api_key", label: "Key", input_type: "password", required: true }]
}

/** The same connectors and connections on each side; credentials differ (`null`: none at all). */
const setUp = (
  rest: string,
  mcp: string,
  credentials: { readonly token: string | null; readonly key: string | null; readonly mcp: string | null }
) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    yield* sb.createConnector({
      name: "echo-api",
      display_name: "Echo",
      proxy_url: `${rest}/api`,
      auth_patterns: [bearer]
    })
    yield* sb.createConnector({
      name: "keyed-api",
      display_name: "Keyed",
      proxy_url: `${rest}/v2`,
      auth_patterns: [queryKey]
    })
    yield* sb.createConnector({
      name: "tools",
      display_name: "Tools",
      kind: "mcp",
      proxy_url: mcp,
      auth_patterns: [{ ...bearer, is_mcp: true }]
    })
    yield* sb.createConnection("echo-api", {
      name: "echo",
      allow_private_network: true,
      headers: { "X-Secret": CANARY_HEADER },
      parameters: { header: { "X-Plain": "application/json" } },
      ...(credentials.token === null ? {} : { security: { token: credentials.token } })
    })
    yield* sb.createConnection("keyed-api", {
      name: "keyed",
      allow_private_network: true,
      ...(credentials.key === null ? {} : { security: { api_key: credentials.key } })
    })
    yield* sb.createConnection("tools", {
      name: "mcp-tools",
      allow_private_network: true,
      ...(credentials.mcp === null ? {} : { security: { token: credentials.mcp } })
    })
  })

const text = (body: Stream.Stream<Uint8Array, unknown>) =>
  Stream.runCollect(body).pipe(Effect.map((chunks) => Buffer.concat(chunks).toString("utf8")))

/** The calls an agent test would make, in order; the answers as plain data. */
const session = Effect.gen(function* () {
  const proxy = yield* Proxy.Proxy
  const tools = yield* Tools.Tools
  const get = (connection: string, path: string, query?: Record<string, string>) =>
    Effect.flatMap(proxy.request(connection, { method: "GET", path, query }), (r) =>
      Effect.map(text(r.body), (body) => ({
        status: r.status,
        body: JSON.parse(body) as Record<string, unknown>,
        headers: r.headers
      }))
    )
  const first = yield* get("echo", "/items", { a: "1", b: "2" })
  const second = yield* get("echo", "/items", { a: "1", b: "2" })
  const missing = yield* get("echo", "/missing")
  const posted = yield* Effect.flatMap(
    proxy.request("echo", {
      method: "POST",
      path: "/items",
      headers: { "content-type": "application/json" },
      body: Stream.make(new TextEncoder().encode(JSON.stringify({ name: "x", size: 2 })))
    }),
    (r) => Effect.map(text(r.body), (body) => ({ status: r.status, body: JSON.parse(body) as Record<string, unknown> }))
  )
  const keyed = yield* get("keyed", "/things")
  const listed = yield* tools.listTools("mcp-tools")
  const added = yield* tools.callTool("mcp-tools", "add", { a: 1, b: 2 })
  return { first, second, missing, posted, keyed, listed: listed.map((t) => t.name), added }
})

let dir = ""
const tmp = () => {
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-cassette-"))
  return dir
}

describe("record and replay (library)", () => {
  it.effect(
    "replays what was recorded with the servers stopped and without credentials; secrets never reach a cassette",
    () =>
      Effect.gen(function* () {
        const cassettes = Path.join(tmp(), "cassettes")
        const rest: EchoServer = yield* Effect.promise(startEchoServer)
        const mcp = yield* Effect.promise(() => HttpServers.startStreamable())

        // --- record
        const recorded = yield* Effect.gen(function* () {
          yield* setUp(rest.origin, mcp.url, { token: CANARY_TOKEN, key: CANARY_KEY, mcp: CANARY_MCP })
          const answers = yield* session
          // A secret echoed in a tool result is redacted in the cassette too.
          const echoed = yield* Effect.flatMap(Effect.service(Tools.Tools), (t) =>
            t.callTool("mcp-tools", "echo", { text: `my token is ${CANARY_MCP}` })
          )
          return { answers, echoed }
        }).pipe(Effect.provide(recordStack(cassettes)))
        assert.strictEqual(recorded.answers.first.body.authorization, `Bearer ${CANARY_TOKEN}`)
        assert.strictEqual(recorded.answers.keyed.body.key, CANARY_KEY)
        assert.deepStrictEqual(recorded.echoed.content, [{ type: "text", text: `my token is ${CANARY_MCP}` }])
        const hitsWhileRecording = rest.hits.length
        const mcpCallsWhileRecording = mcp.state.calls.length

        yield* Effect.promise(() => rest.stop())
        yield* Effect.promise(() => mcp.stop())

        // Nothing secret anywhere; the injected auth and the cookie are marked as redacted.
        assert.deepStrictEqual(canariesIn(cassettes), [])
        const names = filesUnder(cassettes)
          .map((f) => Path.basename(f.path))
          .sort()
        assert.deepStrictEqual(names, ["echo.json", "keyed.json", "mcp-tools.json"])
        const echoFile = JSON.parse(Fs.readFileSync(Path.join(cassettes, "echo.json"), "utf8"))
        assert.strictEqual(echoFile.connection, "echo")
        const firstExchange = echoFile.interactions[0]
        assert.strictEqual(firstExchange.request.headers.Authorization, "[REDACTED]")
        assert.strictEqual(firstExchange.request.headers["X-Secret"], "[REDACTED]")
        assert.strictEqual(firstExchange.response.headers["set-cookie"], "[REDACTED]")
        // a pre-filled header parameter is a plain value: neither redacted nor scrubbed from anything else
        assert.strictEqual(firstExchange.request.headers["X-Plain"], "application/json")
        assert.strictEqual(firstExchange.response.headers["content-type"], "application/json")
        assert.strictEqual(firstExchange.request.path, "/api/items")
        const keyedFile = JSON.parse(Fs.readFileSync(Path.join(cassettes, "keyed.json"), "utf8"))
        assert.deepStrictEqual(keyedFile.interactions[0].request.query, [["key", "[REDACTED]"]])

        // --- replay: wrong bearer tokens, no query key at all, servers gone
        const replayed = yield* Effect.gen(function* () {
          yield* setUp(rest.origin, mcp.url, { token: "wrong-token-123", key: null, mcp: null })
          const answers = yield* session
          const proxy = yield* Proxy.Proxy
          const tools = yield* Tools.Tools
          // the third identical request gets the last recorded answer again
          const third = yield* Effect.flatMap(
            proxy.request("echo", { method: "GET", path: "/items", query: { b: "2", a: "1" } }),
            (r) => Effect.map(text(r.body), (body) => JSON.parse(body) as Record<string, unknown>)
          )
          // JSON bodies match whatever their key order
          const reordered = yield* Effect.flatMap(
            proxy.request("echo", {
              method: "POST",
              path: "/items",
              headers: { "content-type": "application/json" },
              body: Stream.make(new TextEncoder().encode('{ "size": 2, "name": "x" }'))
            }),
            (r) => Effect.succeed(r.status)
          )
          const addedAgain = yield* tools.callTool("mcp-tools", "add", { b: 2, a: 1 })
          const restMiss = yield* Effect.flip(
            proxy.request("echo", { method: "GET", path: "/never", query: { q: "1" } })
          )
          const bodyMiss = yield* Effect.flip(
            proxy.request("echo", {
              method: "POST",
              path: "/items",
              headers: { "content-type": "application/json" },
              body: Stream.make(new TextEncoder().encode('{"name":"y"}'))
            })
          )
          const toolMiss = yield* Effect.flip(tools.callTool("mcp-tools", "add", { a: 5, b: 5 }))
          const unknownConnection = yield* Effect.gen(function* () {
            const sb = yield* Switchboard.Switchboard
            yield* sb.createConnection("echo-api", {
              name: "other",
              allow_private_network: true,
              security: { token: "t-0000" }
            })
            return yield* Effect.flip(proxy.request("other", { method: "GET", path: "/items" }))
          })
          return { answers, third, reordered, addedAgain, restMiss, bodyMiss, toolMiss, unknownConnection }
        }).pipe(Effect.provide(replayStack(cassettes)))

        // The servers saw nothing more: replay never connected.
        assert.strictEqual(rest.hits.length, hitsWhileRecording)
        assert.strictEqual(mcp.state.calls.length, mcpCallsWhileRecording)

        const { answers } = replayed
        assert.deepStrictEqual(answers.first.body, {
          ...recorded.answers.first.body,
          authorization: "[REDACTED]",
          secret_header: "[REDACTED]"
        })
        assert.strictEqual(answers.first.body.n, 1)
        assert.strictEqual(answers.second.body.n, 2)
        assert.strictEqual(replayed.third.n, 2)
        assert.strictEqual(answers.first.status, 200)
        assert.strictEqual(answers.missing.status, 404)
        assert.strictEqual(answers.posted.body.body, JSON.stringify({ name: "x", size: 2 }))
        assert.strictEqual(replayed.reordered, 200)
        assert.strictEqual(answers.keyed.body.key, "[REDACTED]")
        assert.deepStrictEqual(answers.listed, recorded.answers.listed)
        assert.deepStrictEqual(answers.added, recorded.answers.added)
        assert.deepStrictEqual(replayed.addedAgain, recorded.answers.added)
        assert.strictEqual(answers.first.headers["set-cookie"], undefined)

        for (const miss of [replayed.restMiss, replayed.bodyMiss, replayed.toolMiss, replayed.unknownConnection]) {
          assert.strictEqual(miss._tag, "UpstreamError")
          if (miss._tag !== "UpstreamError") continue
          assert.strictEqual(miss.code, "cassette_miss")
          assert.strictEqual(miss.status, 502)
        }
        assert.include(replayed.restMiss.message, "GET /api/never?q=1")
        assert.include(replayed.restMiss.message, "connection echo")
        assert.include(replayed.toolMiss.message, 'tools/call add {"a":5,"b":5}')
        assert.include(replayed.unknownConnection.message, "other.json does not exist")
      }).pipe(Effect.ensuring(Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))),
    60_000
  )

  it.effect("a cassette directory that holds something else is a clear error at start", () =>
    Effect.gen(function* () {
      const cassettes = tmp()
      Fs.writeFileSync(Path.join(cassettes, "broken.json"), '{"format":"something-else"}')
      const error = yield* Effect.flip(Effect.provide(Effect.void, replayStack(cassettes)))
      assert.strictEqual(error._tag, "CassetteError")
      if (error._tag === "CassetteError") assert.strictEqual(error.code, "cassette_invalid")
      const absent = yield* Effect.flip(Effect.provide(Effect.void, replayStack(Path.join(cassettes, "absent"))))
      assert.strictEqual(absent._tag === "CassetteError" ? absent.code : absent._tag, "cassette_unreadable")
    }).pipe(Effect.ensuring(Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))))
  )
})

export type { Services }
