/**
 * The event stream on the team server's TCP listener (in process, memory store and API keys): no key is a 401 in
 * the error shape; a key's principal decides what it hears (a viewer's key never hears of another user's personal
 * connection); and `Client.remoteToolsChanged` with a TCP target sends its key and hears the changes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import { McpUpstream } from "@switchboard/core/McpUpstream"
import * as Principal from "@switchboard/core/Principal"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { HttpClient, HttpServer } from "effect/http"
import * as ApiKeys from "../../src/ApiKeys.ts"
import * as Client from "../../src/Client.ts"
import type { DaemonError } from "../../src/DaemonError.ts"
import * as TeamServer from "../../src/TeamServer.ts"
import { mcpConnector, scriptedMcp, services } from "./support.ts"

const principal = (user: string, role: "admin" | "editor" | "viewer") =>
  ({ org: "acme", workspace: "main", user, role }) satisfies Principal.Principal

/** Wait (bounded) until `check` holds; the bound is a safety net, not a timing assertion. */
const until = (what: string, check: () => boolean) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(what))).pipe(
    Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 500 }),
    Effect.orDie
  )

/** A JSON request to the listener with an optional key. */
const request = (base: string, method: string, path: string, key?: string, body?: unknown) =>
  Effect.promise(async () => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
        ...(body === undefined ? {} : { "content-type": "application/json" })
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await res.text()
    return { status: res.status, text, json: text === "" ? undefined : JSON.parse(text) }
  })

describe("GET /v1/events on the team server's TCP listener", () => {
  it.live("needs a key; a key hears what its principal may read; the TCP client sends its key", () =>
    Effect.gen(function* () {
      const changed = yield* PubSub.unbounded<string>()
      const scripted = scriptedMcp()
      const mcp = Layer.effect(
        McpUpstream,
        Effect.map(Effect.service(McpUpstream), (inner) =>
          McpUpstream.of({ ...inner, toolsChanged: Stream.fromPubSub(changed) })
        )
      ).pipe(Layer.provide(scripted.layer))
      const calls = yield* Layer.build(services(mcp))
      const keyStore = yield* Layer.build(Memory.ApiKeyStore.layer)
      const keys = Layer.succeedContext(keyStore)
      const makeKey = (user: string, role: "admin" | "editor" | "viewer") =>
        Effect.map(
          ApiKeys.create({ principal: principal(user, role) }).pipe(Effect.provide(keys), Effect.orDie),
          (created) => Redacted.value(created.secret)
        )
      const admin = yield* makeKey("root", "admin")
      const alice = yield* makeKey("alice", "editor")
      const bob = yield* makeKey("bob", "viewer")
      // The listener's type asks for `OAuth` for the public_url callback route, which is not served without one.
      const listener = TeamServer.layer({
        address: { host: "127.0.0.1", port: 0 },
        principal: Principal.local("tester"),
        logRequests: false,
        shutdownTimeout: "1 second"
      }).pipe(Layer.provide(Layer.mergeAll(Layer.succeedContext(calls), keys))) as Layer.Layer<
        HttpServer.HttpServer,
        DaemonError
      >
      const server = yield* Layer.build(listener)
      const base = `http://${TeamServer.addressOf(Context.get(server, HttpServer.HttpServer))}`

      const anonymous = yield* request(base, "GET", "/v1/events")
      assert.strictEqual(anonymous.status, 401)
      assert.strictEqual(anonymous.json.error.code, "unauthorized")

      assert.strictEqual((yield* request(base, "POST", "/v1/connectors", admin, mcpConnector("tools"))).status, 201)
      const own = yield* request(base, "POST", "/v1/connectors/tools/connections", alice, { name: "alice own" })
      assert.strictEqual(own.status, 201, own.text)
      const shared = yield* request(base, "POST", "/v1/connectors/tools/connections", admin, {
        name: "shared",
        access_scope: "organizational"
      })
      assert.strictEqual(shared.status, 201, shared.text)
      const ownId = own.json.id as string
      const sharedId = shared.json.id as string

      // Bob's and alice's subscriptions, through the daemon client with a TCP target (the key as a bearer token).
      const subscribe = (key: string) =>
        Effect.gen(function* () {
          const target: Client.TcpTarget = { url: base, apiKey: Redacted.make(key) }
          const http = Context.get(yield* Layer.build(Client.httpClientLayer(target)), HttpClient.HttpClient)
          const heard: Array<string> = []
          yield* Client.remoteToolsChanged(target, http, Schedule.spaced("20 millis")).pipe(
            Stream.runForEach((id) => Effect.sync(() => heard.push(id))),
            Effect.forkScoped
          )
          return heard
        })
      const bobHeard = yield* subscribe(bob)
      const aliceHeard = yield* subscribe(alice)

      // Until both have heard of the shared connection, they may not have subscribed yet: announce it again.
      yield* until("both heard of the shared connection", () => {
        if (bobHeard.includes(sharedId) && aliceHeard.includes(sharedId)) return true
        PubSub.publishUnsafe(changed, sharedId)
        return false
      })
      const before = bobHeard.length
      yield* PubSub.publish(changed, ownId)
      yield* PubSub.publish(changed, sharedId)
      yield* until("bob heard the second announcement", () => bobHeard.length > before)
      yield* until("alice heard of her own connection", () => aliceHeard.includes(ownId))
      assert.notInclude(bobHeard, ownId, "bob's key never hears of alice's personal connection")
      assert.deepStrictEqual(bobHeard.slice(before), [sharedId])
    })
  )
})
