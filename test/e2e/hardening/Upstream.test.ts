/**
 * Upstream misbehaviour through the daemon process: an upstream that never answers, one that drips a byte at a
 * time, one that sends a gigantic body, and an MCP server that answers invalid JSON-RPC. Each ends in a timeout
 * or a clear error in the error shape (or, for the gigantic body, a stream the client can stop), and while they
 * hang a healthy connection through the same daemon keeps answering quickly.
 */
import * as Http from "node:http"
import { createServer, type Server } from "node:http"
import type * as Net from "node:net"
import type { AddressInfo } from "node:net"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { killAll, sandbox, startDaemon } from "../daemon/harness.ts"
import { isErrorShape, json, send } from "./support.ts"

const box = sandbox()
let upstream: Server
let base = ""
const open = new Set<Net.Socket>()

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const path = req.url ?? ""
    if (path.includes("/hang")) return // never answers
    if (path.includes("/drip")) {
      res.writeHead(200, { "content-type": "text/plain" })
      const timer = setInterval(() => res.write("x"), 200)
      res.on("close", () => clearInterval(timer))
      return
    }
    if (path.includes("/huge")) {
      res.writeHead(200, { "content-type": "application/octet-stream" })
      const chunk = Buffer.alloc(1024 * 1024, 0x61)
      let sent = 0
      const pump = () => {
        while (sent < 2048 && res.write(chunk)) sent++
        if (sent >= 2048) res.end()
        else res.once("drain", pump)
      }
      res.on("close", () => (sent = 4096))
      pump()
      return
    }
    if (path.includes("/mcp")) {
      res.writeHead(200, { "content-type": "application/json" })
      res.end('{"jsonrpc":"2.0","id":"not-yours","result":')
      return
    }
    res.writeHead(200, { "content-type": "application/json" })
    res.end('{"ok":true}')
  })
  upstream.on("connection", (s) => {
    open.add(s)
    s.on("close", () => open.delete(s))
  })
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  await startDaemon(box)
  const post = async (path: string, body: unknown) => {
    const res = await send(box.socket, { method: "POST", path, body: JSON.stringify(body) })
    assert.isBelow(res.status, 300, res.text)
    return json(res)
  }
  await post("/v1/connectors", {
    name: "rest",
    display_name: "Rest",
    auth_patterns: [],
    proxy_url: base,
    proxy_enabled: true
  })
  await post("/v1/connectors", {
    name: "tools",
    display_name: "Tools",
    kind: "mcp",
    auth_patterns: [],
    proxy_url: `${base}/mcp`
  })
  ids.slow = (
    await post("/v1/connectors/rest/connections", {
      name: "slow",
      allow_private_network: true,
      timeouts: { connect_ms: 1000, total_ms: 1500 }
    })
  ).id
  ids.fast = (await post("/v1/connectors/rest/connections", { name: "fast", allow_private_network: true })).id
  await post("/v1/connectors/tools/connections", {
    name: "tools",
    allow_private_network: true,
    timeouts: { total_ms: 2000 }
  })
}, 60_000)

const ids = { slow: "", fast: "" }

afterAll(() => {
  killAll()
  for (const s of open) s.destroy()
  upstream?.close()
  box.cleanup()
})

export const figures = { misbehaviours: 4, endedCleanly: 0, healthyDuring: 0 }

describe("upstream misbehaviour", () => {
  it("never-answering, dripping, gigantic and invalid JSON-RPC upstreams end cleanly; others keep being served", async () => {
    const started = Date.now()
    const hang = send(box.socket, { method: "GET", path: `/v1/connections/${ids.slow}/proxy/hang` }, 20_000)
    const drip = send(box.socket, { method: "GET", path: `/v1/connections/${ids.slow}/proxy/drip` }, 20_000).catch(
      (e: Error) => ({ status: -1, headers: {}, text: e.message })
    )
    const tools = send(box.socket, { method: "GET", path: "/v1/connectors/tools/tools" }, 20_000)
    // While those hang: the healthy connection answers, quickly, several times.
    for (let i = 0; i < 5; i++) {
      const t = Date.now()
      // oxlint-disable-next-line no-await-in-loop -- sequential timing
      const ok = await send(box.socket, { method: "GET", path: `/v1/connections/${ids.fast}/proxy/ok` })
      assert.strictEqual(ok.status, 200, ok.text)
      assert.isBelow(Date.now() - t, 1000)
      figures.healthyDuring++
    }
    const hung = await hang
    assert.strictEqual(hung.status, 504, hung.text)
    assert.isTrue(isErrorShape(hung))
    figures.endedCleanly++
    // A drip either fails with a timeout before headers, or its stream is cut at the total timeout.
    const dripped = await drip
    assert.isTrue(dripped.status === 504 || dripped.status === 200 || dripped.status === -1, dripped.text)
    assert.isBelow(Date.now() - started, 15_000)
    figures.endedCleanly++
    const badRpc = await tools
    assert.isTrue(
      badRpc.status >= 400 && badRpc.status < 600 && badRpc.status !== 500,
      `${badRpc.status} ${badRpc.text}`
    )
    assert.isTrue(isErrorShape(badRpc), badRpc.text)
    figures.endedCleanly++

    // A gigantic body streams through; a client that stops reading after 4 MiB ends it without harm.
    await new Promise<void>((resolve, reject) => {
      const req = Http.request(
        {
          socketPath: box.socket,
          path: `/v1/connections/${ids.fast}/proxy/huge`,
          headers: { host: "x" },
          agent: false
        },
        (res) => {
          let got = 0
          res.on("data", (c: Buffer) => {
            got += c.length
            if (got > 4 * 1024 * 1024) {
              req.destroy()
              resolve()
            }
          })
          res.on("end", () => resolve())
        }
      )
      req.on("error", (e) =>
        String(e).includes("aborted") || String(e).includes("socket hang up") ? resolve() : reject(e)
      )
      req.end()
    })
    figures.endedCleanly++
    const health = await send(box.socket, { method: "GET", path: "/healthz" })
    assert.strictEqual(health.status, 200)
    const after = await send(box.socket, { method: "GET", path: `/v1/connections/${ids.fast}/proxy/ok` })
    assert.strictEqual(after.status, 200)
  }, 40_000)
})
