/**
 * The embedded hub's Promise facade (`createHub`) end to end: the Switchboard methods, proxy requests to a REST
 * server on 127.0.0.1, MCP tools (list, call, pins, approve) against an SDK streamable HTTP server on 127.0.0.1,
 * connection tests and explain, all over the real adapters; failures reject with the typed error and its `code`;
 * a canary secret never shows in what the facade returns. A hub on a data directory keeps what it stored.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import * as Errors from "@switchboard/core/Errors"
import type { PinsView } from "@switchboard/core/ToolPins"
import { createHub } from "@switchboard/daemon"
import * as Fs from "node:fs"
import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { HttpServers } from "../support/mcp/index.ts"

const CANARY = "sb-canary-hub-J7wq2Xe5Nc"

interface Echo {
  readonly method: string
  readonly url: string
  readonly authorization: string | undefined
  readonly body: string
}

/** A REST server on 127.0.0.1 answering every request with what it received. */
const startEcho = async (): Promise<{ readonly url: string; readonly server: Server }> => {
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      let body = ""
      req.on("data", (c: Buffer) => (body += c.toString("utf8")))
      req.once("end", () => resolve(body))
      req.once("error", reject)
    })
  const server = createServer((req, res) => {
    void read(req).then((body) => {
      const echo: Echo = {
        method: req.method ?? "",
        url: req.url ?? "",
        authorization: req.headers.authorization,
        body
      }
      res.writeHead(200, { "content-type": "application/json", "x-upstream": "echo" }).end(JSON.stringify(echo))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`, server }
}

const stop = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    () => assert.fail("expected a rejection"),
    (e: unknown) => e
  )

describe("createHub", () => {
  it("proxies, tests and explains REST calls with Promises; failures reject with typed errors", async () => {
    const echo = await startEcho()
    const hub = createHub({ layer: Memory.layer })
    try {
      await hub.createConnector({
        name: "echo-api",
        display_name: "Echo API",
        auth_patterns: [{ type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] }],
        proxy_url: echo.url,
        proxy_enabled: true
      })
      await hub.createConnection("echo-api", {
        name: "Echo",
        allow_private_network: true,
        security: { token: CANARY }
      })

      const response = await hub.proxy("Echo", {
        method: "post",
        path: "/items",
        query: { q: "a b" },
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ n: 1 })
      })
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers["x-upstream"], "echo")
      const seen = response.json() as Echo
      assert.deepStrictEqual(seen, {
        method: "POST",
        url: "/api/items?q=a+b",
        authorization: `Bearer ${CANARY}`,
        body: '{"n":1}'
      })
      assert.strictEqual(JSON.parse(response.text()).method, "POST")

      const tested = await hub.test("Echo")
      assert.isTrue(tested.test.ok, tested.test.detail)
      assert.strictEqual(tested.test.strategy, "http")
      assert.strictEqual(tested.status, "active")

      const explained = await hub.explain("Echo", { method: "GET", path: "/items" })
      const explainedText = JSON.stringify(explained)
      assert.include(explainedText, "127.0.0.1")

      for (const text of [JSON.stringify(tested), explainedText, JSON.stringify(await hub.listConnections())]) {
        assert.notInclude(text, CANARY)
      }

      const missing = await rejection(hub.proxy("nope", { path: "/" }))
      assert.instanceOf(missing, Errors.ConnectionNotFound)
      assert.strictEqual(missing.code, "connection_not_found")
      const missingTest = await rejection(hub.test("nope"))
      assert.strictEqual((missingTest as Errors.ConnectionNotFound).code, "connection_not_found")
      const badPath = await rejection(hub.proxy("Echo", { path: "/../../etc" }))
      assert.instanceOf(badPath, Errors.InvalidRequest)

      const viewer = hub.as({ org: "local", workspace: "default", user: "v", role: "viewer" })
      assert.strictEqual(viewer.principal.role, "viewer")
      const denied = await rejection(viewer.test("Echo"))
      assert.instanceOf(denied, Errors.Forbidden)
      assert.strictEqual(denied.code, "forbidden")
    } finally {
      await hub.dispose()
      await stop(echo.server)
    }
  })

  it("lists and calls MCP tools, shows and approves pins", async () => {
    const mcp = await HttpServers.startStreamable()
    const hub = createHub({ layer: Memory.layer })
    try {
      await hub.createConnector({ name: "tools", display_name: "Tools", kind: "mcp", proxy_url: mcp.url })
      await hub.createConnection("tools", { name: "Mcp", allow_private_network: true })

      const tools = await hub.tools.list("Mcp")
      assert.includeMembers(
        tools.map((t) => t.name),
        ["echo", "add"]
      )
      const echoed = await hub.tools.call("Mcp", "echo", { text: "hello hub" })
      assert.deepStrictEqual(echoed.content, [{ type: "text", text: "hello hub" }])
      const sum = await hub.tools.call("Mcp", "add", { a: 2, b: 3 })
      assert.isNotTrue(sum.isError)

      const pins = await hub.tools.pins("Mcp")
      assert.deepStrictEqual(pins.changes, [])
      assert.includeMembers(
        pins.pinned.map((p) => p.name),
        ["echo", "add"]
      )
      await mcp.addTool("extra")
      // The server announces the change (list_changed); poll until the hub has seen it (bounded: a safety net).
      const seen = async (tries: number): Promise<PinsView> => {
        const view = await hub.tools.pins("Mcp")
        if (view.current_hash !== view.pinned_hash || tries === 0) return view
        await new Promise((resolve) => setTimeout(resolve, 20))
        return seen(tries - 1)
      }
      const changed = await seen(250)
      assert.notStrictEqual(changed.current_hash, changed.pinned_hash)
      assert.deepStrictEqual(
        changed.changes.map((c) => c.tool),
        ["extra"]
      )
      const approved = await hub.tools.approve("Mcp", { hash: changed.current_hash })
      assert.strictEqual(approved.pinned_hash, changed.current_hash)
      assert.deepStrictEqual(approved.changes, [])

      const invalid = await rejection(hub.tools.call("Mcp", "add", { a: "two" }))
      assert.instanceOf(invalid, Errors.ValidationFailed)
      assert.strictEqual(invalid.code, "validation_failed")
      const stale = await rejection(hub.tools.approve("Mcp", { hash: "0".repeat(64) }))
      assert.strictEqual((stale as { readonly code: string }).code, "version_conflict")
    } finally {
      await hub.dispose()
      await mcp.stop()
    }
  })

  it("on a data directory, keeps what it stored for the next hub", async () => {
    const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-hub-"))
    const env = { SWITCHBOARD_HOME: home }
    try {
      const first = createHub({ env })
      await first.createConnector({ name: "kept", display_name: "Kept", proxy_url: "https://api.example.com" })
      await first.dispose()
      const second = createHub({ env })
      try {
        assert.strictEqual((await second.getConnector("kept")).name, "kept")
        assert.isTrue(Fs.existsSync(Path.join(home, "switchboard.db")))
      } finally {
        await second.dispose()
      }
    } finally {
      Fs.rmSync(home, { recursive: true, force: true })
    }
  })
})
