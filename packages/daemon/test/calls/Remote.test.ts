/**
 * The calling services through the daemon (`Client.layerRemoteCalls`) and the typed client's tool endpoints: the
 * remote `Proxy` streams both bodies and gives an upstream error status as a response, the daemon's refusals come
 * back as the same typed errors as embedded (`destination_refused`, `rate_limited` with its retry time); the remote
 * `Tools` lists, calls, passes progress through and cancels upstream when interrupted.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Api from "@switchboard/core/Api"
import type { Progress } from "@switchboard/core/McpUpstream"
import * as Proxy from "@switchboard/core/Proxy"
import * as Tools from "@switchboard/core/Tools"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import * as Client from "../../src/Client.ts"
import { recorder, tempDir } from "../support.ts"
import {
  CANARY,
  header,
  mcpConnector,
  pattern,
  restConnector,
  scriptedMcp,
  serverLayer,
  sha256,
  upstream
} from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0

const setup = Effect.gen(function* () {
  const mcp = scriptedMcp()
  const up = yield* upstream
  const socket = Path.join(root, `r${n++}`, "sb.sock")
  yield* Layer.build(serverLayer(socket, { mcp: mcp.layer }))
  const raw = recorder(socket)
  yield* raw.json("POST", "/v1/connectors", restConnector("rest", up.origin))
  yield* raw.json("POST", "/v1/connectors", mcpConnector("tools"))
  const rest = (yield* raw.json("POST", "/v1/connectors/rest/connections", {
    name: "rest-conn",
    security: { api_key: CANARY },
    allow_private_network: true
  })).json.id as string
  const tools = (yield* raw.json("POST", "/v1/connectors/tools/connections", {
    name: "tools-conn",
    security: { token: CANARY }
  })).json.id as string
  const remote = yield* Layer.build(Client.layerRemoteCalls(socket))
  const proxy = yield* Effect.provideContext(Effect.service(Proxy.Proxy), remote)
  const remoteTools = yield* Effect.provideContext(Effect.service(Tools.Tools), remote)
  const client = yield* Effect.provideContext(Effect.service(Client.DaemonClient), remote)
  return { mcp, up, raw, rest, tools, proxy, remoteTools, client }
})

const collect = (body: Stream.Stream<Uint8Array, unknown>) =>
  Effect.map(Stream.runCollect(body), (chunks) => Buffer.concat([...chunks]))

describe("Proxy through the daemon", () => {
  it.live("forwards query and headers, streams both bodies, passes an upstream 500 through", () =>
    Effect.gen(function* () {
      const { up, rest, proxy } = yield* setup
      const got = yield* proxy.request(rest, {
        method: "GET",
        path: "/items?sort=asc",
        query: { page: "2", tag: ["a", "b"] },
        headers: { "X-Trace": "t-1", Authorization: "Bearer mine", Connection: "close" }
      })
      assert.strictEqual(got.status, 200)
      assert.strictEqual(got.headers["x-kept"], "yes")
      assert.isUndefined(got.headers["x-switchboard-upstream"])
      assert.isUndefined(got.headers["set-cookie"])
      assert.deepStrictEqual(JSON.parse((yield* collect(got.body)).toString()), {
        ok: true,
        method: "GET",
        path: "/api/items"
      })
      const seen = up.seen.at(-1)
      assert.strictEqual(seen?.url, "/api/items?sort=asc&page=2&tag=a&tag=b")
      assert.deepStrictEqual(header(seen, "x-trace"), ["t-1"])
      assert.deepStrictEqual(header(seen, "x-api-key"), [CANARY])
      assert.deepStrictEqual(header(seen, "authorization"), [])

      const size = 3 * 1024 * 1024 + 7
      const data = pattern(size)
      const chunks = Array.from({ length: Math.ceil(size / 65536) }, (_, i) =>
        data.subarray(i * 65536, (i + 1) * 65536)
      )
      const piped = yield* proxy.request(rest, {
        method: "POST",
        path: "/pipe",
        headers: { "content-type": "application/octet-stream" },
        body: Stream.fromIterable(chunks)
      })
      assert.strictEqual(piped.status, 200)
      const back = yield* collect(piped.body)
      assert.strictEqual(back.length, size)
      assert.strictEqual(sha256(back), sha256(data))

      const failed = yield* proxy.request(rest, { method: "GET", path: "/status/500" })
      assert.strictEqual(failed.status, 500)
      assert.strictEqual((yield* collect(failed.body)).toString(), "upstream answered 500")
    })
  )

  it.live("streams duplex: the first chunk comes back before the second is sent", () =>
    Effect.gen(function* () {
      const { rest, proxy } = yield* setup
      const gate = yield* Deferred.make<void>()
      const first = pattern(128 * 1024)
      const body = Stream.concat(
        Stream.make(new Uint8Array(first)),
        Stream.fromEffect(Effect.as(Deferred.await(gate), new TextEncoder().encode("tail")))
      )
      const response = yield* proxy.request(rest, { method: "POST", path: "/pipe", body })
      let received = 0
      const back = yield* response.body.pipe(
        Stream.tap((chunk) =>
          Effect.suspend(() => {
            received += chunk.length
            return received >= first.length ? Deferred.succeed(gate, undefined) : Effect.void
          })
        ),
        Stream.runCollect,
        Effect.timeout("20 seconds")
      )
      assert.strictEqual(
        Buffer.concat([...back])
          .toString("latin1")
          .slice(-4),
        "tail"
      )
      assert.strictEqual(received, first.length + 4)
    })
  )

  it.live("the daemon's refusals are the typed errors of the embedded proxy", () =>
    Effect.gen(function* () {
      const { raw, proxy } = yield* setup
      const closed = (yield* raw.json("POST", "/v1/connectors/rest/connections", {
        name: "closed",
        security: { api_key: CANARY }
      })).json.id as string
      const refused = yield* Effect.flip(proxy.request(closed, { method: "GET", path: "/x" }))
      assert.strictEqual(refused._tag, "UpstreamError")
      assert.strictEqual(refused.code, "destination_refused")
      assert.strictEqual(refused.status, 403)

      const limited = (yield* raw.json("POST", "/v1/connectors/rest/connections", {
        name: "limited",
        security: { api_key: CANARY },
        allow_private_network: true,
        rate_limit: { requests_per_second: 0.01, burst: 1 }
      })).json.id as string
      const first = yield* proxy.request(limited, { method: "GET", path: "/a" })
      yield* collect(first.body)
      const second = yield* Effect.flip(proxy.request(limited, { method: "GET", path: "/a" }))
      assert.strictEqual(second.code, "rate_limited")
      assert.isAbove((second.details as { retry_after_seconds: number }).retry_after_seconds, 0)

      const missing = yield* Effect.flip(proxy.request("nope", { method: "GET", path: "/" }))
      assert.strictEqual(missing._tag, "ConnectionNotFound")
      const climb = yield* Effect.flip(proxy.request(limited, { method: "GET", path: "/a/../../../connectors" }))
      assert.strictEqual(climb.code, "invalid_parameter")
    })
  )

  it.live("a daemon that is gone is a StoreError naming the socket", () =>
    Effect.gen(function* () {
      const socket = Path.join(root, "absent.sock")
      const proxy = yield* Effect.service(Proxy.Proxy).pipe(Effect.provide(Client.layerRemoteCalls(socket)))
      const error = yield* Effect.flip(proxy.request("c", { method: "GET", path: "/" }))
      assert.strictEqual(error._tag, "StoreError")
      assert.include(error.message, socket)
    })
  )
})

describe("Tools through the daemon", () => {
  it.live("lists, calls with progress, returns isError results, fails with ValidationFailed", () =>
    Effect.gen(function* () {
      const { tools, remoteTools, mcp } = yield* setup
      const list = yield* remoteTools.listTools("tools-conn")
      assert.deepStrictEqual(
        list.map((t) => t.name),
        ["echo", "add", "fail", "slow"]
      )
      const progress: Array<Progress> = []
      const result = yield* remoteTools.callTool(
        tools,
        "slow",
        { steps: 2 },
        {
          onProgress: (p) => progress.push(p)
        }
      )
      assert.deepStrictEqual(result, { content: [{ type: "text", text: "done after 2 steps" }] })
      assert.deepStrictEqual(progress, [
        { progress: 1, total: 2, message: "step 1" },
        { progress: 2, total: 2, message: "step 2" }
      ])
      assert.strictEqual(mcp.state.calls.at(-1)?.key, tools)

      const toolError = yield* remoteTools.callTool(tools, "fail")
      assert.isTrue(toolError.isError)
      const invalid = yield* Effect.flip(remoteTools.callTool(tools, "add", { a: 1 }))
      assert.strictEqual(invalid._tag, "ValidationFailed")
      assert.deepStrictEqual((invalid.details as { issues: unknown }).issues, [
        { path: "b", message: "Expected number" }
      ])
      const notFound = yield* Effect.flip(remoteTools.listTools("nope"))
      assert.strictEqual(notFound._tag, "ConnectionNotFound")
    })
  )

  it.live("interrupting a call cancels it upstream", () =>
    Effect.gen(function* () {
      const { tools, remoteTools, mcp } = yield* setup
      const fiber = yield* Effect.forkChild(remoteTools.callTool(tools, "slow", { steps: 1, forever: true }))
      yield* Effect.sync(() => mcp.state.started.includes(tools)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (started) => started })
      )
      yield* Fiber.interrupt(fiber)
      yield* Effect.sync(() => mcp.state.cancelled.includes(tools)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (cancelled) => cancelled })
      )
    })
  )

  it.live("the typed client: tools.list and tools.call, connection_required as Unprocessable", () =>
    Effect.gen(function* () {
      const { client, raw } = yield* setup
      const list = yield* client.tools.list({ params: { id_or_name: "tools" }, query: {} })
      assert.strictEqual(list.data.length, 4)
      const result = yield* client.tools.call({
        params: { id_or_name: "tools", tool: "echo" },
        payload: { arguments: { text: "typed" } }
      })
      assert.deepStrictEqual(result.content, [{ type: "text", text: "typed" }])
      yield* raw.json("POST", "/v1/connectors/tools/connections", { name: "second", security: { token: "t" } })
      const ambiguous = yield* Effect.flip(client.tools.list({ params: { id_or_name: "tools" }, query: {} }))
      assert.instanceOf(ambiguous, Api.Unprocessable)
      assert.strictEqual(ambiguous.error.code, "connection_required")
    })
  )
})
