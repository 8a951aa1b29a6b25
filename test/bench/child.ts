/**
 * The loopback servers the benchmarks call, each in its own process so it never shares an event loop with the
 * client being measured (`node test/bench/child.ts MODE …`). Once listening, each prints one JSON line on stdout
 * saying where, then serves until killed.
 *
 * - `upstream`: a REST API on 127.0.0.1 answering every request with the same small JSON (keep-alive).
 * - `json SOCKET FILE`: a bare `node:http` server on a Unix socket answering every request with the bytes of FILE
 *   as JSON (the ceiling of any HTTP server on a socket).
 * - `mcp`: the test suite's streamable HTTP MCP server (SDK) on 127.0.0.1, unauthenticated.
 */
import * as Fs from "node:fs"
import * as Http from "node:http"
import type * as Net from "node:net"
import { startStreamable } from "../support/mcp/HttpServers.ts"

const ready = (info: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(info)}\n`)

const fixed = (body: Buffer) =>
  Http.createServer((req, res) => {
    // Read (and drop) whatever the request carries before answering, as any real server does.
    req.resume()
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length })
      res.end(body)
    })
  })

const [mode, ...args] = process.argv.slice(2)

if (mode === "upstream") {
  const body = Buffer.from(
    JSON.stringify({
      ok: true,
      items: [
        { id: 1, name: "first" },
        { id: 2, name: "second" }
      ]
    })
  )
  const server = fixed(body)
  server.keepAliveTimeout = 60_000
  server.listen(0, "127.0.0.1", () => ready({ port: (server.address() as Net.AddressInfo).port }))
} else if (mode === "json") {
  const [socket, file] = args
  if (socket === undefined || file === undefined) throw new Error("usage: child.ts json SOCKET FILE")
  const server = fixed(Fs.readFileSync(file))
  server.keepAliveTimeout = 60_000
  Fs.rmSync(socket, { force: true })
  server.listen(socket, () => ready({ socket }))
} else if (mode === "mcp") {
  const server = await startStreamable()
  ready({ url: server.url })
} else {
  throw new Error(`unknown mode ${mode}`)
}
