/**
 * The socket server's request log and its batched log writer:
 * - one line per request with the method, the path (never the query) and the status actually sent, routed or not
 *   (an unroutable path is answered 404 in the error shape and logged with its cause; a body over the limit, 413,
 *   is logged too), nothing with
 *   `logRequests: false`;
 * - `batchedLines`: info lines wait for the next turn of the event loop and leave in one write; a warning or an
 *   error is written at once with what is pending before it; closing the scope writes what is left.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import * as Daemon from "../src/Daemon.ts"
import * as Server from "../src/Server.ts"
import { rawRequest, tempDir } from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0
const socketIn = () => {
  const dir = Path.join(root, `t${n++}`)
  Fs.mkdirSync(dir, { mode: 0o700 })
  return Path.join(dir, "sb.sock")
}

/** A server on a fresh socket whose log lines are collected (parsed). */
const serving = (logRequests: boolean) =>
  Effect.gen(function* () {
    const socket = socketIn()
    const lines: Array<Record<string, unknown>> = []
    const logger = Logger.layer([Daemon.jsonLogger((line) => lines.push(JSON.parse(line)))])
    yield* Layer.build(
      Server.layer({ socket, trustHeaders: false, principal: Principal.local("tester"), logRequests }).pipe(
        Layer.provide(Switchboard.layer),
        Layer.provide(Layer.fresh(Memory.layer)),
        Layer.provide(logger)
      )
    )
    return { socket, lines }
  })

const requestLines = (lines: ReadonlyArray<Record<string, unknown>>) => lines.filter((l) => "http.status" in l)

describe("request log", () => {
  it.live("one line per request, routed or not, with the status sent and the path without its query", () =>
    Effect.gen(function* () {
      const { socket, lines } = yield* serving(true)
      const ok = yield* Effect.promise(() => rawRequest(socket, "GET", "/v1/connectors?limit=5"))
      assert.strictEqual(ok.status, 200)
      const missing = yield* Effect.promise(() => rawRequest(socket, "GET", "/v1/connectors/ctr_nope"))
      assert.strictEqual(missing.status, 404)
      const unroutable = yield* Effect.promise(() => rawRequest(socket, "GET", "/v1/connectors/%"))
      assert.strictEqual(unroutable.status, 404)
      assert.strictEqual(unroutable.json.error.code, "route_not_found")
      const tooLarge = yield* Effect.promise(() =>
        rawRequest(socket, "POST", "/v1/connectors", { body: JSON.stringify({ pad: "x".repeat(2 * 1024 * 1024) }) })
      )
      assert.strictEqual(tooLarge.status, 413)
      const logged = requestLines(lines)
      assert.deepStrictEqual(
        logged.map((l) => [l["http.method"], l["http.url"], l["http.status"]]),
        [
          ["GET", "/v1/connectors", 200],
          ["GET", "/v1/connectors/ctr_nope", 404],
          ["GET", "/v1/connectors/%", 404],
          ["POST", "/v1/connectors", 413]
        ]
      )
      assert.strictEqual(logged[0]?.message, "Sent HTTP response")
      assert.strictEqual(logged[1]?.message, "Sent HTTP response")
      // A request that failed before any route ran is logged with why.
      assert.notStrictEqual(logged[2]?.message, "Sent HTTP response")
      assert.strictEqual(logged[2]?.level, "info")
    }).pipe(Effect.scoped)
  )

  it.live("nothing is logged per request with logRequests: false; errors keep their shape", () =>
    Effect.gen(function* () {
      const { socket, lines } = yield* serving(false)
      const ok = yield* Effect.promise(() => rawRequest(socket, "GET", "/v1/connectors"))
      assert.strictEqual(ok.status, 200)
      const unroutable = yield* Effect.promise(() => rawRequest(socket, "GET", "/v1/connectors/%"))
      assert.strictEqual(unroutable.json.error.code, "route_not_found")
      assert.deepStrictEqual(requestLines(lines), [])
    }).pipe(Effect.scoped)
  )
})

describe("batchedLines", () => {
  const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

  it.live("info lines leave together on the next turn; a warning leaves at once; closing writes the rest", () =>
    Effect.gen(function* () {
      const writes: Array<string> = []
      const scope = yield* Scope.make()
      const lines = yield* Daemon.batchedLines((chunk) => writes.push(chunk)).pipe(Scope.provide(scope))
      lines.append("a\n", "INFO")
      lines.append("b\n", "DEBUG")
      assert.deepStrictEqual(writes, [])
      yield* nextTurn
      assert.deepStrictEqual(writes, ["a\nb\n"])
      lines.append("c\n", "INFO")
      lines.append("d\n", "ERROR")
      assert.deepStrictEqual(writes, ["a\nb\n", "c\nd\n"])
      lines.append("e\n", "WARN")
      assert.deepStrictEqual(writes, ["a\nb\n", "c\nd\n", "e\n"])
      lines.append("f\n", "INFO")
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(writes, ["a\nb\n", "c\nd\n", "e\n", "f\n"])
      // Nothing is written twice by a flush scheduled before the close.
      yield* nextTurn
      assert.strictEqual(writes.length, 4)
    })
  )
})
