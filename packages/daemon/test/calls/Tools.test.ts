/**
 * The MCP tool endpoints through the real socket server (in process, memory store) over a scripted `McpUpstream`:
 * which connection a request goes through (named, the only one, or 422 `connection_required` naming the
 * candidates), arguments and credentials reaching the upstream, `isError` results as 200 results, validation
 * failures as 422, the streamed (NDJSON) answer with progress, and cancellation when the client goes away.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { recorder, responseTexts, tempDir } from "../support.ts"
import { CANARY, mcpConnector, restConnector, scriptedMcp, serverLayer } from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0

const setup = Effect.gen(function* () {
  const mcp = scriptedMcp()
  const socket = Path.join(root, `t${n++}`, "sb.sock")
  yield* Layer.build(serverLayer(socket, { mcp: mcp.layer }))
  const raw = recorder(socket)
  const connect = (connector: string, name: string, token = CANARY) =>
    Effect.map(
      raw.json("POST", `/v1/connectors/${connector}/connections`, { name, security: { token } }),
      (r) => r.json.id as string
    )
  yield* raw.json("POST", "/v1/connectors", mcpConnector("tools"))
  return { mcp, socket, raw, connect }
})

/** A streamed call: every NDJSON line, parsed. */
const streamed = (socket: string, path: string, body: unknown) =>
  Effect.promise(
    () =>
      new Promise<{ status: number; type: string | undefined; lines: Array<any> }>((resolve, reject) => {
        const text = JSON.stringify(body)
        const req = Http.request(
          {
            socketPath: socket,
            method: "POST",
            path,
            agent: false,
            headers: {
              host: "switchboard",
              accept: "application/x-ndjson",
              "content-type": "application/json",
              "content-length": String(Buffer.byteLength(text))
            }
          },
          (res) => {
            let out = ""
            res.on("data", (c: Buffer) => (out += c.toString("utf8")))
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                type: res.headers["content-type"],
                lines: out
                  .split("\n")
                  .filter((l) => l !== "")
                  .map((l) => JSON.parse(l))
              })
            )
          }
        )
        req.on("error", reject)
        req.end(text)
      })
  )

describe("choosing the connection", () => {
  it.live("the only connection, a named one, or 422 connection_required naming the candidates", () =>
    Effect.gen(function* () {
      const { raw, connect } = yield* setup
      const none = yield* raw.request("GET", "/v1/connectors/tools/tools")
      assert.strictEqual(none.status, 422)
      assert.strictEqual(none.json.error.code, "connection_required")
      assert.deepStrictEqual(none.json.error.details.candidates, [])
      assert.include(none.json.error.message, "switchboard connect tools")

      const first = yield* connect("tools", "first")
      const only = yield* raw.request("GET", "/v1/connectors/tools/tools")
      assert.strictEqual(only.status, 200, only.text)
      assert.strictEqual(only.json.connection, first)
      assert.deepStrictEqual(
        only.json.data.map((t: { name: string }) => t.name),
        ["echo", "add", "fail", "slow"]
      )
      assert.deepStrictEqual(only.json.data[0].inputSchema.required, ["text"])

      const second = yield* connect("tools", "second")
      const several = yield* raw.request("GET", "/v1/connectors/tools/tools")
      assert.strictEqual(several.status, 422)
      assert.strictEqual(several.json.error.code, "connection_required")
      assert.include(several.json.error.message, "first, second")
      assert.deepStrictEqual(
        several.json.error.details.candidates.map((c: { id: string }) => c.id),
        [first, second]
      )
      const named = yield* raw.request("GET", "/v1/connectors/tools/tools?connection=second")
      assert.strictEqual(named.json.connection, second)
      const byBody = yield* raw.json("POST", "/v1/connectors/tools/tools/echo/call", {
        arguments: { text: "hi" },
        connection: first
      })
      assert.strictEqual(byBody.status, 200)
      const ambiguous = yield* raw.json("POST", "/v1/connectors/tools/tools/echo/call", { arguments: { text: "hi" } })
      assert.strictEqual(ambiguous.status, 422)
      assert.strictEqual(ambiguous.json.error.code, "connection_required")

      yield* raw.json("POST", "/v1/connectors", restConnector("rest", "http://127.0.0.1:9"))
      const rest = yield* Effect.map(
        raw.json("POST", "/v1/connectors/rest/connections", { name: "rest-conn", security: { api_key: "k" } }),
        (r) => r.json.id as string
      )
      const wrong = yield* raw.request("GET", `/v1/connectors/tools/tools?connection=${rest}`)
      assert.strictEqual(wrong.status, 400)
      assert.strictEqual(wrong.json.error.code, "invalid_parameter")
      const notMcp = yield* raw.request("GET", "/v1/connectors/rest/tools")
      assert.strictEqual(notMcp.status, 400)
      assert.include(notMcp.json.error.message, "not an MCP server")
      const missing = yield* raw.request("GET", "/v1/connectors/nope/tools")
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(missing.json.error.code, "connector_not_found")
      const gone = yield* raw.request("GET", "/v1/connectors/tools/tools?connection=conn_nope")
      assert.strictEqual(gone.status, 404)
      assert.strictEqual(gone.json.error.code, "connection_not_found")
    })
  )

  it.live("another user's personal connection is not a candidate", () =>
    Effect.gen(function* () {
      const { raw, connect } = yield* setup
      yield* connect("tools", "mine")
      const asOther = { "x-switchboard-user": "mallory", "x-switchboard-role": "editor" }
      const theirs = yield* raw.request("GET", "/v1/connectors/tools/tools", { headers: asOther })
      assert.strictEqual(theirs.status, 422)
      assert.deepStrictEqual(theirs.json.error.details.candidates, [])
    })
  )
})

describe("calling a tool", () => {
  it.live("arguments and credential reach the upstream; isError is a result; validation is 422", () =>
    Effect.gen(function* () {
      const { raw, connect, mcp } = yield* setup
      const id = yield* connect("tools", "main")
      const echoed = yield* raw.json("POST", "/v1/connectors/tools/tools/echo/call", { arguments: { text: "hello" } })
      assert.strictEqual(echoed.status, 200, echoed.text)
      assert.deepStrictEqual(echoed.json, { content: [{ type: "text", text: "hello" }] })
      assert.deepStrictEqual(mcp.state.calls.at(-1), {
        key: id,
        tool: "echo",
        args: { text: "hello" },
        authorization: `Bearer ${CANARY}`
      })

      const failed = yield* raw.json("POST", "/v1/connectors/tools/tools/fail/call", {})
      assert.strictEqual(failed.status, 200)
      assert.isTrue(failed.json.isError)
      assert.strictEqual(failed.json.content[0].text, "the tool failed on purpose")

      const invalid = yield* raw.json("POST", "/v1/connectors/tools/tools/add/call", { arguments: { a: "1", b: 2 } })
      assert.strictEqual(invalid.status, 422)
      assert.strictEqual(invalid.json.error.code, "validation_failed")
      assert.deepStrictEqual(invalid.json.error.details.issues, [{ path: "a", message: "Expected number" }])

      const badBody = yield* raw.json("POST", "/v1/connectors/tools/tools/add/call", { arguments: [1], extra: true })
      assert.strictEqual(badBody.status, 422)
      assert.strictEqual(badBody.json.error.code, "validation_failed")
      assert.sameMembers(
        badBody.json.error.details.issues.map((i: { path: string }) => i.path),
        ["arguments", "extra"]
      )
      const notJson = yield* raw.request("POST", "/v1/connectors/tools/tools/add/call", { body: "{" })
      assert.strictEqual(notJson.status, 422)

      const audit = yield* raw.request("GET", "/v1/audit?action=tool.call")
      assert.deepStrictEqual(
        audit.json.data.map((r: { tool: string; outcome: string }) => [r.tool, r.outcome]),
        [
          ["add", "failure"],
          ["fail", "failure"],
          ["echo", "success"]
        ]
      )
      for (const text of responseTexts(raw.seen)) assert.notInclude(text, CANARY)
    })
  )

  it.live("streams progress and the result as NDJSON; errors end the stream with their status", () =>
    Effect.gen(function* () {
      const { socket, connect } = yield* setup
      yield* connect("tools", "main")
      const ok = yield* streamed(socket, "/v1/connectors/tools/tools/slow/call", { arguments: { steps: 3 } })
      assert.strictEqual(ok.status, 200)
      assert.strictEqual(ok.type, "application/x-ndjson")
      assert.deepStrictEqual(ok.lines, [
        { progress: { progress: 1, total: 3, message: "step 1" } },
        { progress: { progress: 2, total: 3, message: "step 2" } },
        { progress: { progress: 3, total: 3, message: "step 3" } },
        { result: { content: [{ type: "text", text: "done after 3 steps" }] } }
      ])
      const bad = yield* streamed(socket, "/v1/connectors/tools/tools/add/call", { arguments: {} })
      assert.strictEqual(bad.status, 200)
      assert.strictEqual(bad.lines.length, 1)
      assert.strictEqual(bad.lines[0].status, 422)
      assert.strictEqual(bad.lines[0].error.code, "validation_failed")
      // choosing the connection fails before anything streams
      yield* connect("tools", "other")
      const ambiguous = yield* streamed(socket, "/v1/connectors/tools/tools/echo/call", {}).pipe(
        Effect.catchDefect(() => Effect.succeed({ status: 0, type: "", lines: [] }))
      )
      assert.strictEqual(ambiguous.status, 422)
    })
  )

  it.live("closing the connection cancels the call upstream", () =>
    Effect.gen(function* () {
      const { socket, connect, mcp, raw } = yield* setup
      const id = yield* connect("tools", "main")
      const req = Http.request({
        socketPath: socket,
        method: "POST",
        path: "/v1/connectors/tools/tools/slow/call",
        agent: false,
        headers: { host: "switchboard", accept: "application/x-ndjson", "content-type": "application/json" }
      })
      req.on("error", () => {})
      req.end(JSON.stringify({ arguments: { steps: 1, forever: true } }))
      yield* Effect.sync(() => mcp.state.started.includes(id)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (started) => started })
      )
      req.destroy()
      yield* Effect.sync(() => mcp.state.cancelled.includes(id)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (cancelled) => cancelled })
      )
      const audit = yield* Effect.sync(() => undefined).pipe(
        Effect.andThen(raw.request("GET", "/v1/audit?action=tool.call")),
        Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (r) => r.json.data.length > 0 })
      )
      assert.deepInclude(audit.json.data[0], { tool: "slow", outcome: "failure", error_code: "cancelled" })
    })
  )
})
