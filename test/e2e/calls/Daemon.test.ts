/**
 * Calling upstreams through the daemon as `Daemon.run` wires it (in process, memory store, `Layers.withCalls` with
 * the real SSRF-guarded HTTP client and the SDK-based MCP client), against a recording HTTP upstream and an MCP
 * server built with the SDK, both on 127.0.0.1: the proxy route, the tool endpoints (list, call, `isError`, the
 * SDK's argument validation as 422, streamed progress), and the remote `Proxy` and `Tools` services with
 * cancellation reaching the MCP server. A canary credential appears in no response and no log line.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Progress } from "@switchboard/core/McpUpstream"
import * as Proxy from "@switchboard/core/Proxy"
import * as Tools from "@switchboard/core/Tools"
import { Daemon } from "@switchboard/daemon"
import * as Client from "@switchboard/daemon/client"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { HttpServers } from "../../support/mcp/index.ts"
import { received, recordingServer } from "../proxy/support.ts"

const CANARY = "sb-canary-calls-e2e-Hq4Vn8Xw"

const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbc-"))
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0

interface Raw {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly text: string
  readonly json: any
}

/** A daemon in this process on its own data directory and socket; its log lines are kept. */
const daemon = Effect.gen(function* () {
  const home = Path.join(root, `h${n++}`)
  const socket = Path.join(home, "run", "sb.sock")
  Fs.mkdirSync(home, { recursive: true, mode: 0o700 })
  const logs: Array<string> = []
  yield* Effect.forkScoped(
    Daemon.run({ home, store: "memory", env: { SWITCHBOARD_SOCKET: socket }, logRequests: false }).pipe(
      Effect.provide(Logger.layer([Daemon.jsonLogger((line) => logs.push(line))]))
    )
  )
  yield* Client.health(socket).pipe(Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 }))
  const seen: Array<Raw> = []
  const request = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    Effect.promise(
      () =>
        new Promise<Raw>((resolve, reject) => {
          const text = body === undefined ? undefined : JSON.stringify(body)
          const req = Http.request(
            {
              socketPath: socket,
              method,
              path,
              agent: false,
              headers: {
                host: "switchboard",
                ...(text === undefined ? {} : { "content-type": "application/json" }),
                ...headers
              }
            },
            (res) => {
              let out = ""
              res.on("data", (c: Buffer) => (out += c.toString("utf8")))
              res.on("end", () => {
                let json: unknown
                try {
                  json = JSON.parse(out)
                } catch {
                  json = undefined
                }
                const raw = { status: res.statusCode ?? 0, headers: res.headers, text: out, json }
                seen.push(raw)
                resolve(raw)
              })
            }
          )
          req.on("error", reject)
          req.end(text)
        })
    )
  const texts = () => [...seen.flatMap((r) => [JSON.stringify(r.headers), r.text]), ...logs]
  return { home, socket, logs, request, texts }
})

const setup = Effect.gen(function* () {
  const d = yield* daemon
  const up = yield* recordingServer
  const mcp = yield* HttpServers.scoped(() => HttpServers.startStreamable())
  yield* d.request("POST", "/v1/connectors", {
    name: "rest",
    display_name: "REST",
    auth_patterns: [
      {
        type: "BEARER",
        fields: [{ field_name: "token", input_type: "password", required: true }]
      }
    ],
    proxy_url: `${up.origin}/v2`,
    proxy_enabled: true
  })
  yield* d.request("POST", "/v1/connectors", {
    name: "tools",
    display_name: "Tools",
    kind: "mcp",
    proxy_url: mcp.url,
    auth_patterns: [
      {
        type: "BEARER",
        fields: [{ field_name: "token", input_type: "password", required: true }],
        is_mcp: true
      }
    ]
  })
  const rest = yield* d.request("POST", "/v1/connectors/rest/connections", {
    name: "api",
    security: { token: CANARY },
    allow_private_network: true
  })
  const tools = yield* d.request("POST", "/v1/connectors/tools/connections", {
    name: "mcp",
    security: { token: CANARY },
    allow_private_network: true
  })
  assert.strictEqual(rest.status, 201, rest.text)
  assert.strictEqual(tools.status, 201, tools.text)
  return { ...d, up, mcp, rest: rest.json.id as string, tools: tools.json.id as string }
})

const noCanary = (texts: ReadonlyArray<string>) => {
  for (const text of texts) assert.notInclude(text, CANARY)
}

describe("the daemon's calling routes", () => {
  it.live("proxy: credential injected, caller's Authorization dropped, upstream 500 passed through, 403 refused", () =>
    Effect.gen(function* () {
      const { request, up, rest, texts } = yield* setup
      const ok = yield* request("GET", `/v1/connections/${rest}/proxy/users?limit=3`, undefined, {
        authorization: "Bearer caller",
        "x-trace": "abc"
      })
      assert.strictEqual(ok.status, 200, ok.text)
      assert.strictEqual(ok.text, "upstream says ok")
      assert.strictEqual(ok.headers["x-switchboard-upstream"], "1")
      assert.isUndefined(ok.headers["set-cookie"])
      const seen = up.seen.at(-1)
      assert.strictEqual(seen?.url, "/v2/users?limit=3")
      assert.deepStrictEqual(received(seen, "authorization"), [`Bearer ${CANARY}`])
      assert.deepStrictEqual(received(seen, "x-trace"), ["abc"])

      const failed = yield* request("POST", `/v1/connections/${rest}/proxy/status/500`, { a: 1 })
      assert.strictEqual(failed.status, 500)
      assert.strictEqual(failed.text, "upstream says ok")

      const closed = yield* request("POST", "/v1/connectors/rest/connections", {
        name: "closed",
        security: { token: CANARY }
      })
      const refused = yield* request("GET", `/v1/connections/${closed.json.id}/proxy/x`)
      assert.strictEqual(refused.status, 403)
      assert.strictEqual(refused.json.error.code, "destination_refused")
      noCanary(texts())
    })
  )

  it.live("tools: list and call through the SDK server; isError is 200; bad arguments are 422; NDJSON progress", () =>
    Effect.gen(function* () {
      const { request, mcp, tools, texts } = yield* setup
      const list = yield* request("GET", "/v1/connectors/tools/tools")
      assert.strictEqual(list.status, 200, list.text)
      assert.strictEqual(list.json.connection, tools)
      assert.deepStrictEqual(
        list.json.data.map((t: { name: string }) => t.name),
        ["echo", "add", "slow", "fail", "weather"]
      )
      const added = yield* request("POST", "/v1/connectors/tools/tools/add/call", { arguments: { a: 2, b: 40 } })
      assert.deepStrictEqual(added.json, { content: [{ type: "text", text: "42" }], isError: false })
      const weather = yield* request("POST", "/v1/connectors/tools/tools/weather/call", {
        arguments: { city: "Oslo" },
        connection: "mcp"
      })
      assert.deepStrictEqual(weather.json.structuredContent, { city: "Oslo", temperature: 21 })
      const failed = yield* request("POST", "/v1/connectors/tools/tools/fail/call", {})
      assert.strictEqual(failed.status, 200)
      assert.isTrue(failed.json.isError)
      const calls = mcp.state.calls.length
      const invalid = yield* request("POST", "/v1/connectors/tools/tools/add/call", { arguments: { a: "two" } })
      assert.strictEqual(invalid.status, 422)
      assert.strictEqual(invalid.json.error.code, "validation_failed")
      assert.strictEqual(mcp.state.calls.length, calls, "nothing was sent")
      assert.deepStrictEqual(
        mcp.requests.filter((r) => r.method === "POST").map((r) => r.headers.authorization)[0],
        `Bearer ${CANARY}`
      )

      const streamed = yield* request(
        "POST",
        "/v1/connectors/tools/tools/slow/call",
        { arguments: { steps: 3, delay_ms: 1 } },
        { accept: "application/x-ndjson" }
      )
      const lines = streamed.text
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l))
      assert.deepStrictEqual(
        lines.slice(0, 3).map((l) => l.progress.progress),
        [1, 2, 3]
      )
      assert.deepStrictEqual(lines[3], {
        result: { content: [{ type: "text", text: "done after 3 steps" }], isError: false }
      })
      noCanary(texts())
    })
  )

  it.live("remote Proxy and Tools: streamed bodies, progress, and cancellation that reaches the MCP server", () =>
    Effect.gen(function* () {
      const { socket, rest, tools, mcp, texts } = yield* setup
      const context = yield* Layer.build(Client.layerRemoteCalls(socket))
      const proxy = yield* Effect.provideContext(Effect.service(Proxy.Proxy), context)
      const remote = yield* Effect.provideContext(Effect.service(Tools.Tools), context)

      const body = Buffer.alloc(2 * 1024 * 1024, 7)
      const piped = yield* proxy.request(rest, {
        method: "POST",
        path: "/pipe",
        headers: { "content-type": "application/octet-stream" },
        body: Stream.make(new Uint8Array(body))
      })
      const back = Buffer.concat([...(yield* Stream.runCollect(piped.body))])
      assert.strictEqual(back.length, body.length)
      assert.isTrue(back.equals(body))

      const progress: Array<Progress> = []
      const result = yield* remote.callTool(
        tools,
        "slow",
        { steps: 2, delay_ms: 1 },
        {
          onProgress: (p) => progress.push(p)
        }
      )
      assert.strictEqual(result.content[0]?.text, "done after 2 steps")
      assert.deepStrictEqual(
        progress.map((p) => p.progress),
        [1, 2]
      )

      const fiber = yield* Effect.forkChild(
        remote.callTool(tools, "slow", { steps: 100, delay_ms: 100 }, { onProgress: () => {} })
      )
      const before = mcp.state.progressTokens.length
      yield* Effect.sync(() => mcp.state.progressTokens.length > before).pipe(
        Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (started) => started })
      )
      yield* Fiber.interrupt(fiber)
      yield* Effect.sync(() => mcp.state.cancelled.length > 0).pipe(
        Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (cancelled) => cancelled })
      )
      noCanary(texts())
    })
  )
})
