/**
 * An upstream MCP server's own `notifications/tools/list_changed` reaches the IDE through the daemon: a streamable
 * HTTP MCP server on loopback (the SDK's) adds a tool at runtime and announces it; the daemon hears it on its
 * upstream session and streams it on `GET /v1/events`; `switchboard mcp --via daemon`, driven by the SDK's stdio
 * client, subscribes there and sends list_changed, and the new tool is listed and callable.
 *
 * The stdio server's own poll for connection changes is set to an hour, so the only way list_changed can reach
 * the client here is the daemon's event stream.
 */
import { getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js"
import * as Effect from "effect/Effect"
import { spawnSync } from "node:child_process"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { HttpServers } from "../../support/mcp/index.ts"
import { binPath, type DataDir, dataDir, eventually, listUntil, type Session, start, textOf } from "./harness.ts"

describe("switchboard mcp --via daemon: an upstream's list_changed", () => {
  let data: DataDir
  let upstream: HttpServers.HttpMcpServer
  let session: Session | undefined
  let daemonStarted = false
  const env = { ...getDefaultEnvironment() }
  const daemon = (...args: Array<string>) =>
    spawnSync(process.execPath, [binPath, "--home", data.home, "daemon", ...args], { env, encoding: "utf8" })

  beforeAll(async () => {
    data = dataDir()
    upstream = await HttpServers.startStreamable()
    await data.use((sb) =>
      Effect.gen(function* () {
        yield* sb.createConnector({ name: "srv", display_name: "Server", kind: "mcp", proxy_url: upstream.url })
        yield* sb.createConnection("srv", { name: "watched", allow_private_network: true })
      })
    )
    const started = daemon("start", "--detach")
    assert.strictEqual(started.status, 0, started.stderr)
    daemonStarted = true
    session = await start(data.home, ["--poll-interval-ms", "3600000"], { global: ["--via", "daemon"] })
  }, 60_000)

  afterAll(async () => {
    await session?.close()
    if (daemonStarted) {
      const stopped = daemon("stop")
      assert.strictEqual(stopped.status, 0, stopped.stderr)
    }
    await upstream?.stop()
    data?.cleanup()
  })

  it("the upstream adds a tool: list_changed reaches the client, then the new tool is listed and callable", async () => {
    const s = session as Session
    const first = (await listUntil(s, (n) => n.includes("watched__echo"))).map((t) => t.name)
    assert.notInclude(first, "watched__brand_new")
    const before = s.listChanged()
    await upstream.addTool("brand_new")
    await eventually("list_changed arrived through the daemon", () => s.listChanged() > before)
    const names = (await s.list()).map((t) => t.name)
    assert.include(names, "watched__brand_new")
    assert.strictEqual(textOf(await s.call("watched__brand_new")), "brand_new ran")
    assert.deepStrictEqual(
      s.errors.map((e) => e.message),
      [],
      "no transport errors"
    )
  }, 60_000)
})
