/**
 * The team server's TCP listener answers and logs like the socket server (`Server.responseMiddleware`, no platform
 * logger middleware): one line per request with the method, the path (never the query) and the status sent,
 * the key check's 401 and an unroutable path included; every error in the one JSON shape; nothing logged per
 * request with `logRequests: false`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { HttpServer } from "effect/http"
import * as ApiKeys from "../src/ApiKeys.ts"
import * as Daemon from "../src/Daemon.ts"
import type { DaemonError } from "../src/DaemonError.ts"
import * as TeamServer from "../src/TeamServer.ts"

/** A TCP listener (memory store, one admin key) whose log lines are collected (parsed). */
const serving = (logRequests: boolean) =>
  Effect.gen(function* () {
    const lines: Array<Record<string, unknown>> = []
    const logger = Logger.layer([Daemon.jsonLogger((line) => lines.push(JSON.parse(line)))])
    const keys = Layer.succeedContext(yield* Layer.build(Memory.ApiKeyStore.layer))
    const created = yield* ApiKeys.create({
      principal: { org: "acme", workspace: "main", user: "root", role: "admin" }
    }).pipe(Effect.provide(keys), Effect.orDie)
    // The listener's type asks for `OAuth` for the public_url callback route, which is not served without one.
    const listener = TeamServer.layer({
      address: { host: "127.0.0.1", port: 0 },
      principal: Principal.local("tester"),
      logRequests,
      shutdownTimeout: "1 second"
    }).pipe(
      Layer.provide(Layer.mergeAll(Switchboard.layer.pipe(Layer.provide(Layer.fresh(Memory.layer))), keys)),
      Layer.provide(logger)
    ) as Layer.Layer<HttpServer.HttpServer, DaemonError>
    const server = yield* Layer.build(listener)
    const base = `http://${TeamServer.addressOf(Context.get(server, HttpServer.HttpServer))}`
    const key = Redacted.value(created.secret)
    const request = (path: string, withKey: boolean) =>
      Effect.promise(async () => {
        const res = await fetch(`${base}${path}`, withKey ? { headers: { authorization: `Bearer ${key}` } } : {})
        return {
          status: res.status,
          type: res.headers.get("content-type"),
          json: (await res.json()) as { readonly error?: { readonly code?: string } }
        }
      })
    return { lines, request, key }
  })

const requestLines = (lines: ReadonlyArray<Record<string, unknown>>) => lines.filter((l) => "http.status" in l)

describe("the team server's request log", () => {
  it.live("one line per request, the 401 and an unroutable path included; errors in the one shape", () =>
    Effect.gen(function* () {
      const { lines, request, key } = yield* serving(true)
      const ok = yield* request("/v1/connectors?limit=5", true)
      assert.strictEqual(ok.status, 200)
      const anonymous = yield* request("/v1/connectors", false)
      assert.strictEqual(anonymous.status, 401)
      assert.strictEqual(anonymous.json.error?.code, "unauthorized")
      const missing = yield* request("/v1/connectors/ctr_nope", true)
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(missing.json.error?.code, "connector_not_found")
      const unroutable = yield* request("/v1/connectors/%", true)
      assert.strictEqual(unroutable.status, 404)
      assert.strictEqual(unroutable.type, "application/json")
      assert.strictEqual(unroutable.json.error?.code, "route_not_found")
      const logged = requestLines(lines)
      assert.deepStrictEqual(
        logged.map((l) => [l["http.method"], l["http.url"], l["http.status"]]),
        [
          ["GET", "/v1/connectors", 200],
          ["GET", "/v1/connectors", 401],
          ["GET", "/v1/connectors/ctr_nope", 404],
          ["GET", "/v1/connectors/%", 404]
        ]
      )
      assert.strictEqual(logged[0]?.message, "Sent HTTP response")
      assert.strictEqual(logged[1]?.message, "Sent HTTP response")
      // A request that failed before any route ran is logged with why.
      assert.notStrictEqual(logged[3]?.message, "Sent HTTP response")
      // The key never reaches the log.
      assert.notInclude(JSON.stringify(lines), key)
      assert.notInclude(JSON.stringify(lines), key.slice(-20))
    }).pipe(Effect.scoped)
  )

  it.live("nothing is logged per request with logRequests: false; errors keep their shape", () =>
    Effect.gen(function* () {
      const { lines, request } = yield* serving(false)
      assert.strictEqual((yield* request("/v1/connectors", true)).status, 200)
      assert.strictEqual((yield* request("/v1/connectors", false)).json.error?.code, "unauthorized")
      assert.strictEqual((yield* request("/v1/connectors/%", true)).json.error?.code, "route_not_found")
      assert.deepStrictEqual(requestLines(lines), [])
    }).pipe(Effect.scoped)
  )
})
