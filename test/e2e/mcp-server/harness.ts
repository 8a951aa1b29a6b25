/**
 * Running the real `switchboard mcp` the way an IDE does: the SDK's `Client` over `StdioClientTransport`
 * spawning `node packages/daemon/bin/switchboard.js --home <dir> mcp`, with every JSON-RPC message and the child's
 * stderr recorded (for the canary scan), and every transport error kept: a line on stdout that is not
 * protocol shows up there. Also a data directory the test fills as the same local user the server runs as,
 * and a REST upstream on loopback that checks the credential it gets.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js"
import {
  type CallToolResult,
  type JSONRPCMessage,
  type Tool,
  ToolListChangedNotificationSchema
} from "@modelcontextprotocol/sdk/types.js"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Layers from "@switchboard/daemon/Layers"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo, Socket } from "node:net"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
export const binPath = Path.join(repoRoot, "packages", "daemon", "bin", "switchboard.js")

/** A data directory, changed from the test through the embedded Switchboard as this machine's local user. */
export interface DataDir {
  readonly home: string
  readonly use: <A, E>(f: (sb: Switchboard.Switchboard["Service"]) => Effect.Effect<A, E>) => Promise<A>
  readonly cleanup: () => void
}

export const dataDir = (): DataDir => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbm-"))
  const home = Path.join(dir, "home")
  // env {}: the master key is the data directory's own file, as for the spawned server
  const layer = Layers.embedded({ home, env: {} })
  return {
    home,
    use: (f) =>
      Effect.runPromise(
        Effect.flatMap(Effect.service(Switchboard.Switchboard), f).pipe(
          Effect.provide(layer),
          Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal())
        )
      ),
    cleanup: () => Fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** A transport that records every message both ways and every error, around the stdio transport. */
class Recording implements Transport {
  onclose?: (() => void) | undefined
  onerror?: ((error: Error) => void) | undefined
  onmessage?: Transport["onmessage"]
  readonly inner: StdioClientTransport
  readonly messages: Array<JSONRPCMessage>
  readonly errors: Array<Error>

  constructor(inner: StdioClientTransport, messages: Array<JSONRPCMessage>, errors: Array<Error>) {
    this.inner = inner
    this.messages = messages
    this.errors = errors
    // oxlint-disable-next-line unicorn/prefer-add-event-listener -- the SDK's callbacks are properties
    inner.onmessage = (message: JSONRPCMessage) => {
      messages.push(message)
      // The SDK client handles a notification one microtask late but a response at once, and forgets a call's
      // progress handler with its response: a last progress notification read in the same chunk as the
      // result would be dropped by the client, whatever order the server wrote them in. Responses are handed
      // over a microtask later, as packages/adapters/src/mcp does for upstreams, so the test sees wire order.
      if ("id" in message && !("method" in message)) queueMicrotask(() => this.onmessage?.(message))
      else this.onmessage?.(message)
    }
    // oxlint-disable-next-line unicorn/prefer-add-event-listener -- the SDK's callbacks are properties
    inner.onerror = (error) => {
      errors.push(error)
      this.onerror?.(error)
    }
    // oxlint-disable-next-line unicorn/prefer-add-event-listener -- the SDK's callbacks are properties
    inner.onclose = () => this.onclose?.()
  }

  start() {
    return this.inner.start()
  }

  send(message: JSONRPCMessage, _options?: TransportSendOptions) {
    this.messages.push(message)
    return this.inner.send(message)
  }

  close() {
    return this.inner.close()
  }
}

export interface Session {
  readonly client: Client
  /** Every JSON-RPC message, both ways. */
  readonly messages: Array<JSONRPCMessage>
  /** Transport errors: a stdout line that is not JSON-RPC lands here. */
  readonly errors: Array<Error>
  readonly stderr: () => string
  /** How many `notifications/tools/list_changed` arrived. */
  readonly listChanged: () => number
  readonly list: () => Promise<Array<Tool>>
  readonly call: (name: string, args?: Record<string, unknown>) => Promise<CallToolResult>
  readonly close: () => Promise<void>
}

/** Spawn `switchboard --home <home> [global…] mcp [args…]` and initialize. */
export const start = async (
  home: string,
  args: ReadonlyArray<string> = [],
  options: { readonly global?: ReadonlyArray<string>; readonly env?: Record<string, string> } = {}
): Promise<Session> => {
  const inner = new StdioClientTransport({
    command: process.execPath,
    args: [binPath, "--home", home, ...(options.global ?? []), "mcp", ...args],
    env: { ...getDefaultEnvironment(), ...options.env },
    stderr: "pipe"
  })
  let stderr = ""
  inner.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8")
  })
  const messages: Array<JSONRPCMessage> = []
  const errors: Array<Error> = []
  const client = new Client({ name: "switchboard-e2e", version: "1.0.0" })
  let changed = 0
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    changed++
  })
  await client.connect(new Recording(inner, messages, errors))
  return {
    client,
    messages,
    errors,
    stderr: () => stderr,
    listChanged: () => changed,
    list: async () => (await client.listTools()).tools,
    call: async (name, args = {}) => (await client.callTool({ name, arguments: args })) as CallToolResult,
    close: () => client.close()
  }
}

/** Poll until `check` holds (bounded; the bound is a safety net, not an assertion about time). */
export const eventually = async (what: string, check: () => boolean | Promise<boolean>): Promise<void> => {
  for (let i = 0; i < 300; i++) {
    // oxlint-disable-next-line no-await-in-loop -- polling is sequential by design
    if (await check()) return
    // oxlint-disable-next-line no-await-in-loop -- polling is sequential by design
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting until ${what}`)
}

/** List until `check` holds on the names (a slow upstream under load may need a second list). */
export const listUntil = async (session: Session, check: (names: Array<string>) => boolean): Promise<Array<Tool>> => {
  let tools: Array<Tool> = []
  await eventually("the tool list is complete", async () => {
    tools = await session.list()
    return check(tools.map((t) => t.name))
  })
  return tools
}

export const textOf = (result: CallToolResult) =>
  result.content.map((c) => (c.type === "text" ? c.text : `[${c.type}]`)).join("\n")

export interface RestServer {
  readonly url: string
  readonly requests: Array<{ readonly method: string; readonly path: string; readonly authorized: boolean }>
  readonly close: () => Promise<void>
}

/** A REST API on 127.0.0.1 that wants `Authorization: Bearer <token>` and never echoes it. */
export const startRest = (token: string): Promise<RestServer> => {
  const requests: Array<{ method: string; path: string; authorized: boolean }> = []
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    const authorized = req.headers.authorization === `Bearer ${token}`
    requests.push({ method: req.method ?? "", path: url.pathname, authorized })
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const json = (status: number, value: unknown) =>
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value))
      if (!authorized) return json(401, { error: "unauthorized" })
      if (req.method === "GET" && url.pathname === "/v1/items") {
        return json(200, { items: ["a", "b"], limit: url.searchParams.get("limit") })
      }
      if (req.method === "POST" && url.pathname === "/v1/echo") {
        return json(201, { received: JSON.parse(Buffer.concat(chunks).toString("utf8") || "null") as unknown })
      }
      if (url.pathname === "/v1/big")
        return res.writeHead(200, { "content-type": "text/plain" }).end("z".repeat(300_000))
      json(404, { error: "no such route" })
    })
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolve({
        url: `http://127.0.0.1:${port}/v1`,
        requests,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections()
            server.close(() => done())
          })
      })
    })
  })
}

/** A server that accepts connections and never answers: an upstream that hangs. */
export const startBlackhole = (): Promise<{
  readonly url: string
  readonly accepted: () => number
  close: () => Promise<void>
}> => {
  const sockets: Array<Socket> = []
  const server = Net.createServer((socket) => {
    sockets.push(socket)
    socket.on("error", () => {})
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolve({
        url: `http://127.0.0.1:${port}/mcp`,
        accepted: () => sockets.length,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy()
            server.close(() => done())
          })
      })
    })
  })
}
