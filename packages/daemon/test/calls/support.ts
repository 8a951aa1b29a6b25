/**
 * Test support for calling upstreams through the daemon: the socket server in process with the calling services
 * and the proxy route wired as `Daemon.run` wires them (memory store, the real SSRF-guarded HTTP client), a scripted
 * `McpUpstream` that records what reached it, and a loopback HTTP upstream that records exactly what it received
 * (never echoing headers back, so a secret that shows up in a response was leaked by Switchboard).
 */
import * as HttpAdapter from "@switchboard/adapters/http"
import * as Memory from "@switchboard/adapters/memory"
import { UpstreamError, ValidationFailed } from "@switchboard/core/Errors"
import {
  type CallOptions,
  type McpTarget,
  type McpTool,
  type McpToolResult,
  McpUpstream
} from "@switchboard/core/McpUpstream"
import * as Principal from "@switchboard/core/Principal"
import * as Proxy from "@switchboard/core/Proxy"
import * as Resilience from "@switchboard/core/Resilience"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Tools from "@switchboard/core/Tools"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as ProxyRoute from "../../src/ProxyRoute.ts"
import * as Server from "../../src/Server.ts"

export const CANARY = "sbk-canary-7Tq2Wx9Lm4Zp"

// ---------------------------------------------------------------------------------------------------------------
// A recording HTTP upstream on 127.0.0.1

export interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly bytes: number
  readonly sha256: string
}

export interface Upstream {
  readonly origin: string
  readonly seen: Array<Seen>
}

/** The values of a header as the upstream received it. */
export const header = (seen: Seen | undefined, name: string): ReadonlyArray<string> =>
  (seen?.headers ?? []).filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v)

/** `bytes` of deterministic content (so both ends can check a digest without holding it twice). */
export const pattern = (bytes: number): Buffer => {
  const out = Buffer.alloc(bytes)
  for (let i = 0; i < bytes; i++) out[i] = (i * 31 + (i >> 11)) & 0xff
  return out
}

export const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex")

/**
 * `/pipe` streams the request body back; `/big/<n>` answers n pattern bytes; `/status/<code>` answers that code
 * (a text body); anything else answers 200 JSON naming the method and path. Every answer sets a cookie and a
 * hop-by-hop header, which must not come back through the proxy.
 */
export const upstream = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ readonly server: Http.Server; readonly info: Upstream }>((resolve) => {
        const seen: Array<Seen> = []
        const server = Http.createServer((req, res) => {
          const url = new URL(req.url ?? "/", "http://upstream.invalid")
          const headers: Array<readonly [string, string]> = []
          for (let i = 0; i < req.rawHeaders.length; i += 2) {
            headers.push([req.rawHeaders[i] ?? "", req.rawHeaders[i + 1] ?? ""])
          }
          res.setHeader("Set-Cookie", "sid=upstream-session")
          res.setHeader("Keep-Alive", "timeout=5")
          res.setHeader("X-Switchboard-Upstream", "spoofed")
          res.setHeader("X-Kept", "yes")
          if (url.pathname.endsWith("/pipe")) {
            seen.push({ method: req.method ?? "", url: req.url ?? "", headers, bytes: -1, sha256: "" })
            res.setHeader("content-type", "application/octet-stream")
            req.pipe(res)
            return
          }
          const hash = createHash("sha256")
          let bytes = 0
          req.on("data", (chunk: Buffer) => {
            bytes += chunk.length
            hash.update(chunk)
          })
          req.on("end", () => {
            seen.push({ method: req.method ?? "", url: req.url ?? "", headers, bytes, sha256: hash.digest("hex") })
            const big = /\/big\/(\d+)$/u.exec(url.pathname)
            const status = /\/status\/(\d{3})$/u.exec(url.pathname)
            if (big !== null) {
              const body = pattern(Number(big[1]))
              res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length })
              res.end(body)
            } else if (status !== null) {
              res.writeHead(Number(status[1]), { "content-type": "text/plain" })
              res.end(`upstream answered ${status[1]}`)
            } else {
              res.writeHead(200, { "content-type": "application/json" })
              res.end(JSON.stringify({ ok: true, method: req.method, path: url.pathname }))
            }
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as Net.AddressInfo).port
          resolve({ server, info: { origin: `http://127.0.0.1:${port}`, seen } })
        })
      })
  ),
  ({ server }) =>
    Effect.promise(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
    )
).pipe(Effect.map(({ info }) => info))

// ---------------------------------------------------------------------------------------------------------------
// A scripted MCP upstream

export interface McpCall {
  readonly key: string
  readonly tool: string
  readonly args: Readonly<Record<string, unknown>>
  readonly authorization: string | undefined
}

export interface ScriptedMcp {
  readonly calls: Array<McpCall>
  /** Keys (connection ids) whose `slow` call was interrupted (cancelled upstream). */
  readonly cancelled: Array<string>
  /** Keys whose `slow` call has started (a test waits for it before cancelling). */
  readonly started: Array<string>
}

export const scriptedTools: ReadonlyArray<McpTool> = [
  {
    name: "echo",
    description: "Echo the text back",
    inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] }
  },
  {
    name: "add",
    description: "Add two numbers",
    inputSchema: { type: "object", properties: { a: { type: "number" }, b: { type: "number" } }, required: ["a", "b"] }
  },
  { name: "fail", description: "Always a tool error", inputSchema: { type: "object" } },
  {
    name: "slow",
    description: "Progress, then an answer; runs until cancelled when told to",
    inputSchema: { type: "object" }
  }
]

const text = (t: string, isError?: boolean): McpToolResult => ({
  content: [{ type: "text", text: t }],
  ...(isError === undefined ? {} : { isError })
})

/** An `McpUpstream` that answers from a script and records each call (with the auth header it was given). */
export const scriptedMcp = (): { readonly state: ScriptedMcp; readonly layer: Layer.Layer<McpUpstream> } => {
  const state: ScriptedMcp = { calls: [], cancelled: [], started: [] }
  const authOf = (target: McpTarget) => {
    if (target._tag !== "Http") return undefined
    const found = Object.entries(target.headers).find(([k]) => k.toLowerCase() === "authorization")
    return found === undefined ? undefined : Redacted.value(found[1])
  }
  const callTool = (
    target: McpTarget,
    tool: string,
    args: Readonly<Record<string, unknown>>,
    options?: CallOptions
  ): Effect.Effect<McpToolResult, UpstreamError | ValidationFailed> =>
    Effect.gen(function* () {
      state.calls.push({ key: target.key, tool, args, authorization: authOf(target) })
      switch (tool) {
        case "echo":
          return text(String(args.text))
        case "add": {
          const issues = ["a", "b"]
            .filter((k) => typeof args[k] !== "number")
            .map((k) => ({ path: k, message: "Expected number" }))
          if (issues.length > 0) {
            return yield* new ValidationFailed({
              message: `invalid arguments of tool add: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
              details: { issues }
            })
          }
          return text(String(Number(args.a) + Number(args.b)))
        }
        case "fail":
          return text("the tool failed on purpose", true)
        case "slow": {
          const steps = typeof args.steps === "number" ? args.steps : 3
          for (let i = 1; i <= steps; i++) options?.onProgress?.({ progress: i, total: steps, message: `step ${i}` })
          if (args.forever === true) {
            state.started.push(target.key)
            return yield* Effect.never.pipe(
              Effect.onInterrupt(() => Effect.sync(() => state.cancelled.push(target.key)))
            )
          }
          return text(`done after ${steps} steps`)
        }
      }
      return yield* new UpstreamError({ reason: "upstream_protocol_error", message: `unknown tool ${tool}` })
    })
  const layer = Layer.succeed(
    McpUpstream,
    McpUpstream.of({ listTools: () => Effect.succeed(scriptedTools), callTool, toolsChanged: Stream.empty })
  )
  return { state, layer }
}

// ---------------------------------------------------------------------------------------------------------------
// The server

export interface ServerOptions {
  readonly principal?: Principal.Principal | undefined
  readonly trustHeaders?: boolean | undefined
  /** The MCP upstream; the scripted one when absent. */
  readonly mcp?: Layer.Layer<McpUpstream> | undefined
}

/**
 * The calling services over a fresh memory store, as `Layers.withCalls` builds them but with short retry backoff
 * and the MCP upstream given (the daemon-wide private-network switch stays off: connections opt in).
 */
export const services = (mcp: Layer.Layer<McpUpstream>) =>
  Layer.mergeAll(
    Proxy.layerNoDeps.pipe(Layer.provide(Resilience.layerWith({ backoff: "10 millis" }))),
    Tools.layer
  ).pipe(
    Layer.provide(
      Layer.mergeAll(HttpAdapter.Upstream.layerWith({}).pipe(Layer.provide(HttpAdapter.Resolver.layer)), mcp)
    ),
    Layer.provideMerge(Switchboard.layer),
    Layer.provide(Layer.fresh(Memory.layer))
  )

/** The daemon's server on `socket` with the calling services and the proxy route, wired like `Daemon.run`. */
export const serverLayer = (socket: string, options: ServerOptions = {}) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const context = yield* Layer.build(services(options.mcp ?? scriptedMcp().layer))
      const provided = Layer.succeedContext(context)
      const who = {
        trustHeaders: options.trustHeaders ?? true,
        principal: options.principal ?? Principal.local("tester")
      }
      return Server.layer({
        socket,
        ...who,
        logRequests: false,
        shutdownTimeout: "1 second",
        routes: ProxyRoute.layer(who).pipe(Layer.provide(provided))
      }).pipe(Layer.provideMerge(provided))
    })
  )

/** An API-key REST connector whose base URL is the loopback upstream. */
export const restConnector = (name: string, origin: string) => ({
  name,
  display_name: `REST ${name}`,
  auth_patterns: [
    {
      type: "API_KEY",
      display_name: "API key",
      fields: [{ field_name: "api_key", label: "API key", input_type: "password", required: true }],
      auth_header_key_override: "X-API-Key"
    }
  ],
  proxy_url: `${origin}/api`,
  proxy_enabled: true
})

/** A bearer-token MCP connector (the scripted upstream never connects anywhere). */
export const mcpConnector = (name: string) => ({
  name,
  display_name: `MCP ${name}`,
  kind: "mcp",
  auth_patterns: [
    {
      type: "BEARER",
      display_name: "Token",
      fields: [{ field_name: "token", label: "Token", input_type: "password", required: true }],
      is_mcp: true
    }
  ],
  proxy_url: "https://mcp.example.test/mcp"
})
