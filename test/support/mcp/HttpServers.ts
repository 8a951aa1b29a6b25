/**
 * Test MCP servers over HTTP on 127.0.0.1: a streamable HTTP server (stateful sessions, 404 for an unknown
 * session as the spec says) and a legacy SSE-only server (GET /sse + POST /messages; a POST to /sse gets 405,
 * which is what makes a client fall back). Both record every HTTP request with its headers and query, and
 * can be restarted on the same port to play a server that died.
 */
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type Server as NodeServer, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { addTool, makeServer, makeState, type ToolServerState } from "./ToolServer.ts"

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly query: Readonly<Record<string, string>>
  readonly headers: Readonly<Record<string, string>>
}

export interface HttpMcpServer {
  readonly kind: "streamable" | "sse"
  /** The URL a client connects to. */
  readonly url: string
  readonly port: number
  readonly state: ToolServerState
  readonly requests: Array<RecordedRequest>
  /** Add a tool and send list_changed to every session. */
  readonly addTool: (name: string) => Promise<void>
  /** Stop listening and drop every connection and session. */
  readonly stop: () => Promise<void>
  /** Listen again on the same port with no sessions (a restarted server); tools and records are kept. */
  readonly restart: () => Promise<void>
  /** Forget every session but keep listening (sessions expired): old session ids get 404. */
  readonly expireSessions: () => Promise<void>
}

const record = (requests: Array<RecordedRequest>, req: IncomingMessage, url: URL) => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value
  }
  requests.push({
    method: req.method ?? "",
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers
  })
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>

const listen = (server: NodeServer, port: number) =>
  new Promise<number>((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port))
  })

const serve = async (
  kind: "streamable" | "sse",
  path: string,
  state: ToolServerState,
  makeHandler: () => { readonly handle: Handler; readonly closeAll: () => Promise<void> }
): Promise<HttpMcpServer> => {
  const requests: Array<RecordedRequest> = []
  let current = makeHandler()
  const http = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    record(requests, req, url)
    current.handle(req, res, url).catch(() => {
      if (!res.headersSent) res.writeHead(500).end()
    })
  })
  let port = await listen(http, 0)
  const stop = async () => {
    await current.closeAll()
    http.closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
  }
  return {
    kind,
    url: `http://127.0.0.1:${port}${path}`,
    get port() {
      return port
    },
    state,
    requests,
    addTool: (name) => addTool(state, name),
    stop,
    restart: async () => {
      current = makeHandler()
      port = await listen(http, port)
    },
    expireSessions: () => current.closeAll()
  }
}

const sessionNotFound = (res: ServerResponse): void =>
  void res
    .writeHead(404, { "content-type": "application/json" })
    .end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null }))

/** A streamable HTTP MCP server at `/mcp`. */
export const startStreamable = (options: { readonly pageSize?: number | undefined } = {}) => {
  const state = makeState(options)
  return serve("streamable", "/mcp", state, () => {
    const sessions = new Map<string, StreamableHTTPServerTransport>()
    const handle: Handler = async (req, res, url) => {
      if (url.pathname !== "/mcp") return void res.writeHead(404).end()
      const id = req.headers["mcp-session-id"]
      if (typeof id === "string") {
        const transport = sessions.get(id)
        if (transport === undefined) return sessionNotFound(res)
        return transport.handleRequest(req, res)
      }
      if (req.method !== "POST") return void res.writeHead(400).end()
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (sessionId) => {
          sessions.set(sessionId, transport)
        }
      })
      // oxlint-disable-next-line unicorn/prefer-add-event-listener -- the SDK's callbacks are properties
      transport.onclose = () => {
        if (transport.sessionId !== undefined) sessions.delete(transport.sessionId)
      }
      await makeServer(state).connect(transport)
      await transport.handleRequest(req, res)
    }
    const closeAll = async () => {
      const open = [...sessions.values()]
      sessions.clear()
      await Promise.all(open.map((t) => t.close().catch(() => {})))
    }
    return { handle, closeAll }
  })
}

/** A legacy SSE-only MCP server: the event stream at `/sse`, messages at `/messages`. */
export const startSse = () => {
  const state = makeState()
  return serve("sse", "/sse", state, () => {
    const sessions = new Map<string, SSEServerTransport>()
    const handle: Handler = async (req, res, url) => {
      if (url.pathname === "/sse" && req.method === "GET") {
        const transport = new SSEServerTransport("/messages", res)
        sessions.set(transport.sessionId, transport)
        // oxlint-disable-next-line unicorn/prefer-add-event-listener -- the SDK's callbacks are properties
        transport.onclose = () => sessions.delete(transport.sessionId)
        await makeServer(state).connect(transport)
        return
      }
      if (url.pathname === "/messages" && req.method === "POST") {
        const transport = sessions.get(url.searchParams.get("sessionId") ?? "")
        if (transport === undefined) return void res.writeHead(404).end("unknown session")
        return transport.handlePostMessage(req, res)
      }
      if (url.pathname === "/sse") return void res.writeHead(405, { allow: "GET" }).end()
      res.writeHead(404).end()
    }
    const closeAll = async () => {
      const open = [...sessions.values()]
      sessions.clear()
      await Promise.all(open.map((t) => t.close().catch(() => {})))
    }
    return { handle, closeAll }
  })
}

/** A server for the length of a scope. */
export const scoped = (start: () => Promise<HttpMcpServer>) =>
  Effect.acquireRelease(Effect.promise(start), (server) => Effect.promise(() => server.stop().catch(() => {})))

/** A port that was free a moment ago and has nothing listening now (for a dead server). */
export const closedPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
