/**
 * The daemon's event stream (`GET /v1/events`) through the real socket server (in process, memory store) over an
 * `McpUpstream` whose `toolsChanged` the test publishes on: the Server-Sent Events format with its connected
 * comment, filtering by principal (a viewer never hears of another user's personal connection, not even its id,
 * while its owner and an organizational connection's readers do), 500 `calls_unavailable` on a server without the
 * calling services, and the client side (`Client.remoteToolsChanged`) subscribing again when the daemon comes up
 * late and after it went away.
 */
import { assert, describe, it } from "@effect/vitest"
import { McpUpstream } from "@switchboard/core/McpUpstream"
import * as Principal from "@switchboard/core/Principal"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { HttpClient } from "effect/http"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterAll } from "vitest"
import * as Client from "../../src/Client.ts"
import * as Events from "../../src/Events.ts"
import * as Server from "../../src/Server.ts"
import { recorder, serverLayer as plainServerLayer, tempDir } from "../support.ts"
import { mcpConnector, scriptedMcp, serverLayer, services } from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0

/** The scripted upstream, with `toolsChanged` fed from `changed`. */
const announcingMcp = Effect.gen(function* () {
  const changed = yield* PubSub.unbounded<string>()
  const scripted = scriptedMcp()
  const layer = Layer.effect(
    McpUpstream,
    Effect.map(Effect.service(McpUpstream), (inner) =>
      McpUpstream.of({ ...inner, toolsChanged: Stream.fromPubSub(changed) })
    )
  ).pipe(Layer.provide(scripted.layer))
  return { changed, layer }
})

/** An open event stream: everything received so far, its status and type; closed with the test's scope. */
interface Listener {
  readonly status: number
  readonly type: string | undefined
  readonly text: () => string
  /** Whether the daemon ended the response. */
  readonly ended: () => boolean
  readonly close: () => void
}

const listen = (socket: string, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<Listener>((resolve, reject) => {
          let text = ""
          const req = Http.request(
            {
              socketPath: socket,
              method: "GET",
              path: "/v1/events",
              agent: false,
              headers: { host: "switchboard", accept: "text/event-stream", ...headers }
            },
            (res) => {
              let ended = false
              res.on("data", (c: Buffer) => (text += c.toString("utf8")))
              res.on("end", () => (ended = true))
              res.on("error", () => {})
              resolve({
                status: res.statusCode ?? 0,
                type: res.headers["content-type"],
                text: () => text,
                ended: () => ended,
                close: () => req.destroy()
              })
            }
          )
          req.on("error", reject)
          req.end()
        })
    ),
    (listener) => Effect.sync(() => listener.close())
  )

/** Wait (bounded) until `check` holds; the bound is a safety net, not a timing assertion. */
const until = (what: string, check: () => boolean) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(what))).pipe(
    Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 500 }),
    Effect.orDie
  )

const count = (text: string, needle: string) => text.split(needle).length - 1

const alice = { "x-switchboard-user": "alice", "x-switchboard-role": "editor" }
const bob = { "x-switchboard-user": "bob", "x-switchboard-role": "viewer" }

describe("GET /v1/events", () => {
  it.live("a viewer hears of the connections it may read, never of another user's personal one", () =>
    Effect.gen(function* () {
      const { changed, layer } = yield* announcingMcp
      const socket = Path.join(root, `t${n++}`, "sb.sock")
      yield* Layer.build(serverLayer(socket, { mcp: layer }))
      const raw = recorder(socket)
      assert.strictEqual((yield* raw.json("POST", "/v1/connectors", mcpConnector("tools"))).status, 201)
      const own = yield* raw.json("POST", "/v1/connectors/tools/connections", { name: "alice own" }, alice)
      assert.strictEqual(own.status, 201, own.text)
      assert.strictEqual(own.json.access_scope, "personal")
      const shared = yield* raw.json("POST", "/v1/connectors/tools/connections", {
        name: "shared",
        access_scope: "organizational"
      })
      assert.strictEqual(shared.status, 201, shared.text)
      const ownId = own.json.id as string
      const sharedId = shared.json.id as string

      const bobs = yield* listen(socket, bob)
      const alices = yield* listen(socket, alice)
      assert.strictEqual(bobs.status, 200)
      assert.strictEqual(bobs.type, "text/event-stream")
      yield* until("both streams are open", () => bobs.text().startsWith(Events.connectedComment))
      yield* until("both streams are open", () => alices.text().startsWith(Events.connectedComment))

      // Until both have heard of the shared connection, they may not have subscribed yet: announce it again.
      const sharedFrame = Events.toolsChangedFrame(sharedId)
      yield* until("both heard of the shared connection", () => {
        if (count(bobs.text(), sharedFrame) > 0 && count(alices.text(), sharedFrame) > 0) return true
        PubSub.publishUnsafe(changed, sharedId)
        return false
      })
      // Both are subscribed now: alice's personal connection, then the shared one again.
      const bobHeard = count(bobs.text(), sharedFrame)
      yield* PubSub.publish(changed, ownId)
      yield* PubSub.publish(changed, sharedId)
      yield* until("bob heard the second announcement", () => count(bobs.text(), sharedFrame) > bobHeard)
      yield* until("alice heard of her own connection", () => alices.text().includes(Events.toolsChangedFrame(ownId)))

      assert.notInclude(bobs.text(), ownId, "bob never hears of alice's personal connection, not even its id")
      assert.include(
        bobs.text(),
        `event: tools_changed\ndata: {"connection":"${sharedId}"}\n\n`,
        "the wire format: an SSE event named tools_changed, the connection as JSON data"
      )
      // Nothing but the connected comment and events (and keep-alive comments) is on the stream.
      const frames = bobs
        .text()
        .split("\n\n")
        .filter((f) => f !== "")
      for (const frame of frames) {
        assert.isTrue(frame.startsWith(": ") || frame.startsWith("event: tools_changed\ndata: "), frame)
      }
    })
  )

  it.live("an open stream does not hold up the daemon's graceful shutdown: it ends when the listener closes", () =>
    Effect.gen(function* () {
      const { layer } = yield* announcingMcp
      const socket = Path.join(root, `t${n++}`, "sb.sock")
      const context = yield* Layer.build(services(layer))
      const scope = yield* Scope.make()
      // A shutdown timeout longer than the test's: waiting it out would fail the test.
      yield* Layer.buildWithScope(
        Server.layer({
          socket,
          trustHeaders: true,
          principal: Principal.local("tester"),
          logRequests: false,
          shutdownTimeout: "10 minutes"
        }).pipe(Layer.provide(Layer.succeedContext(context))),
        scope
      )
      const open = yield* listen(socket)
      yield* until("the stream is open", () => open.text().startsWith(Events.connectedComment))
      yield* Scope.close(scope, Exit.void)
      yield* until("the daemon ended the stream", open.ended)
    })
  )

  it.live("untrusted principal headers are refused in the error shape", () =>
    Effect.gen(function* () {
      const { layer } = yield* announcingMcp
      const socket = Path.join(root, `t${n++}`, "sb.sock")
      yield* Layer.build(serverLayer(socket, { mcp: layer, trustHeaders: false }))
      const res = yield* recorder(socket).request("GET", "/v1/events", { headers: bob })
      assert.strictEqual(res.status, 400)
      assert.strictEqual(res.json.error.code, "invalid_parameter")
    })
  )

  it.live("is documented in openapi.json as a text/event-stream answer", () =>
    Effect.gen(function* () {
      const socket = Path.join(root, `t${n++}`, "sb.sock")
      yield* Layer.build(plainServerLayer(socket))
      const res = yield* recorder(socket).request("GET", "/openapi.json")
      assert.strictEqual(res.status, 200)
      const content = res.json.paths["/v1/events"].get.responses["200"].content
      assert.property(content, "text/event-stream", JSON.stringify(content))
    })
  )

  it.live("a server without the calling services answers 500 calls_unavailable", () =>
    Effect.gen(function* () {
      const socket = Path.join(root, `t${n++}`, "sb.sock")
      yield* Layer.build(plainServerLayer(socket))
      const res = yield* recorder(socket).request("GET", "/v1/events")
      assert.strictEqual(res.status, 500)
      assert.strictEqual(res.json.error.code, "calls_unavailable")
    })
  )
})

describe("Client.remoteToolsChanged", () => {
  it.live("subscribes once the daemon is up, and again after it went away and came back", () =>
    Effect.gen(function* () {
      const dir = Path.join(root, `t${n++}`)
      const socket = Path.join(dir, "sb.sock")
      // The client's HTTP pool lives as long as the test (as it does as long as `layerRemoteCalls` in the CLI).
      const http = Context.get(yield* Layer.build(Client.httpClientLayer(socket)), HttpClient.HttpClient)
      const heard: Array<string> = []
      // Retried quickly here; the default waits up to 30 s between attempts.
      const fiber = yield* Client.remoteToolsChanged(socket, http, Schedule.spaced("20 millis")).pipe(
        Stream.runForEach((id) => Effect.sync(() => heard.push(id))),
        Effect.forkScoped
      )

      // No daemon yet: the stream keeps trying (and emits nothing) until one answers.
      const serve = Effect.gen(function* () {
        const { changed, layer } = yield* announcingMcp
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(serverLayer(socket, { mcp: layer }), scope)
        return { changed, scope }
      })
      const first = yield* serve
      const raw = recorder(socket)
      assert.strictEqual((yield* raw.json("POST", "/v1/connectors", mcpConnector("tools"))).status, 201)
      const one = yield* raw.json("POST", "/v1/connectors/tools/connections", { name: "one" })
      yield* until("the client heard of the connection", () => {
        if (heard.includes(one.json.id)) return true
        PubSub.publishUnsafe(first.changed, one.json.id)
        return false
      })

      // The daemon stops (its stream ends) and another starts on the same socket: the client subscribes again.
      yield* Scope.close(first.scope, Exit.void)
      const second = yield* serve
      const raw2 = recorder(socket)
      assert.strictEqual((yield* raw2.json("POST", "/v1/connectors", mcpConnector("tools"))).status, 201)
      const two = yield* raw2.json("POST", "/v1/connectors/tools/connections", { name: "two" })
      yield* until("the client heard of the new daemon's connection", () => {
        if (heard.includes(two.json.id)) return true
        PubSub.publishUnsafe(second.changed, two.json.id)
        return false
      })
      assert.isUndefined(fiber.pollUnsafe(), "the stream never ends while it is consumed")
      yield* Fiber.interrupt(fiber)
      yield* Scope.close(second.scope, Exit.void)
    })
  )
})
