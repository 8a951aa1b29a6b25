/**
 * The two upstreams `switchboard demo` talks to, both on 127.0.0.1 with ephemeral ports: a small notes REST API
 * that answers only with the right `X-API-Key`, and an MCP server (built with the SDK, streamable HTTP, stateless)
 * with calculator tools that answers only with the right bearer token. Each records whether the credential it
 * received was right, so the demo can show that Switchboard injected it.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { z } from "zod"

export interface Upstream {
  /** `127.0.0.1:PORT`, what the connectors' `{{host}}` template takes. */
  readonly host: string
  /** Requests that came with the right credential, and with a wrong or missing one. */
  readonly seen: { authorized: number; refused: number }
}

const listen = (server: Http.Server) =>
  Effect.acquireRelease(
    Effect.callback<string>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(`127.0.0.1:${(server.address() as AddressInfo).port}`)))
    }),
    () =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

const json = (res: Http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json" })
  res.end(JSON.stringify(body))
}

/** The notes REST API: `GET /v1/notes`, `POST /v1/notes` (JSON `{text}`), all behind `X-API-Key`. */
export const notesApi = (apiKey: string) =>
  Effect.gen(function* () {
    const seen = { authorized: 0, refused: 0 }
    const notes: Array<{ id: number; text: string }> = [
      { id: 1, text: "Switchboard keeps the keys; agents get the work done." }
    ]
    const server = Http.createServer((req, res) => {
      if (req.headers["x-api-key"] !== apiKey) {
        seen.refused++
        return json(res, 401, { error: "missing or wrong X-API-Key" })
      }
      seen.authorized++
      const path = new URL(req.url ?? "/", "http://localhost").pathname
      if (path === "/v1/notes" && req.method === "GET") return json(res, 200, { notes })
      if (path === "/v1/notes" && req.method === "POST") {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { text?: unknown }
          const note = { id: notes.length + 1, text: typeof body.text === "string" ? body.text : "" }
          notes.push(note)
          json(res, 201, note)
        })
        return
      }
      if (req.method === "HEAD") {
        res.writeHead(200)
        return res.end()
      }
      return json(res, 404, { error: "no such route" })
    })
    const host = yield* listen(server)
    return { host, seen } satisfies Upstream
  })

const calculator = () => {
  const server = new McpServer({ name: "demo-calculator", version: "1.0.0" })
  server.registerTool(
    "add",
    { description: "Add two numbers", inputSchema: { a: z.number(), b: z.number() } },
    ({ a, b }) => ({ content: [{ type: "text", text: String(a + b) }] })
  )
  server.registerTool(
    "multiply",
    { description: "Multiply two numbers", inputSchema: { a: z.number(), b: z.number() } },
    ({ a, b }) => ({ content: [{ type: "text", text: String(a * b) }] })
  )
  return server
}

/** The calculator MCP server on `/mcp` (stateless streamable HTTP), behind a bearer token. */
export const calculatorMcp = (token: string) =>
  Effect.gen(function* () {
    const seen = { authorized: 0, refused: 0 }
    const server = Http.createServer((req, res) => {
      if (req.headers.authorization !== `Bearer ${token}`) {
        seen.refused++
        return json(res, 401, { error: "missing or wrong bearer token" })
      }
      seen.authorized++
      if (new URL(req.url ?? "/", "http://localhost").pathname !== "/mcp") return json(res, 404, { error: "not found" })
      // Stateless: a fresh server and transport per request, as the SDK documents for stateless servers.
      const mcp = calculator()
      const transport = new StreamableHTTPServerTransport({})
      res.on("close", () => {
        void transport.close()
        void mcp.close()
      })
      mcp
        .connect(transport)
        .then(() => transport.handleRequest(req, res))
        .catch(() => json(res, 500, { error: "internal error" }))
    })
    const host = yield* listen(server)
    return { host, seen } satisfies Upstream
  })
