/**
 * The SSRF corpus through every outbound path of a whole daemon: run inside a loopback-only network namespace
 * (`unshare -n sh -c 'ip link set lo up && node ssrfRun.ts'`, see Ssrf.test.ts), where nothing can leave the
 * machine even if a guard fails. Counting listeners on every loopback port the corpus names (as root in the
 * namespace: 80, 443, 8080, 70, 21, 5432) record every connection that arrives. For each input: the REST proxy,
 * the connection test (HTTP probe), tool listing of an MCP server over HTTP, an OAuth refresh against the input as
 * token endpoint, the MCP OAuth discovery (metadata) for the input as MCP server, and a PostgreSQL probe to the
 * input as host. Prints one JSON report on stdout.
 */
/* oxlint-disable no-await-in-loop -- one input and one path at a time: each attempt is matched to the arrivals it caused */
import * as Daemon from "@switchboard/daemon/Daemon"
import * as Client from "@switchboard/daemon/client"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Schedule from "effect/Schedule"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { json, send } from "./support.ts"

export const corpus: ReadonlyArray<string> = [
  "http://127.0.0.1/",
  "http://2130706433/",
  "http://0177.0.0.1/",
  "http://0x7f.1/",
  "http://127.1/",
  "http://0x7f000001/",
  "http://017700000001/",
  "http://0x7f.0x0.0x0.0x1/",
  "http://127.000.000.001:8080/",
  "http://127.0.0.1./",
  "http://%31%32%37.0.0.1/",
  "http://①②⑦.0.0.1/",
  "http://１２７.０.０.１/",
  "http://0/",
  "http://0.0.0.0:8080/",
  "http://10.0.0.5/",
  "http://172.16.3.4/",
  "http://192.168.1.1/",
  "http://100.64.0.1/",
  "http://169.254.169.254/latest/meta-data/",
  "http://0xa9fea9fe/",
  "http://100.100.100.200/",
  "http://[fd00:ec2::254]/",
  "http://[::1]/",
  "http://[0000::1]:80/",
  "http://[::]/",
  "http://[::ffff:127.0.0.1]/",
  "http://[::ffff:7f00:1]/",
  "http://[::ffff:a9fe:a9fe]/",
  "http://[0:0:0:0:0:ffff:10.0.0.1]/",
  "http://[::127.0.0.1]/",
  "http://[64:ff9b::7f00:1]/",
  "http://[64:ff9b::a9fe:a9fe]/",
  "http://[2002:7f00:1::]/",
  "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
  "http://[fe80::1]/",
  "http://[fc00::1]/",
  "http://224.0.0.1/",
  "http://255.255.255.255/",
  "http://a@127.0.0.1/",
  "http://example.com@127.0.0.1/",
  "http://127.0.0.1:80@example.com/",
  "http://127.0.0.1#@example.com/",
  "http://127.0.0.1\\@example.com/",
  "http://127.0.0.1.nip.io/",
  "http://LOCALHOST/",
  "http://localhost./",
  "http://ⓛocalhost/",
  "http://metadata.google.internal/computeMetadata/v1/",
  "https://127.0.0.1/",
  "https://[::1]:443/",
  "file:///etc/passwd",
  "gopher://127.0.0.1:70/_GET",
  "ftp://127.0.0.1/",
  "javascript:alert(1)",
  "http://127.0.0.1:5432/"
]

const ports = [80, 443, 8080, 70, 21, 5432]

export interface Attempt {
  readonly input: string
  readonly path: string
  readonly status: number
  readonly code: string
  readonly arrivedDuring: number
}

const main = async () => {
  const arrivals: Array<string> = []
  const listeners = await Promise.all(
    ports.map(
      (port) =>
        new Promise<Net.Server>((resolve, reject) => {
          const server = Net.createServer((socket) => {
            arrivals.push(`${socket.remoteAddress} → ${socket.localAddress}:${port}`)
            socket.destroy()
          })
          server.once("error", reject)
          // `::` without ipv6Only takes IPv4 too: every address the namespace has (only loopback).
          server.listen({ port, host: "::", ipv6Only: false }, () => resolve(server))
        })
    )
  )
  // Control: the listeners do count a connection to loopback over IPv4 and IPv6.
  for (const [host, port] of [
    ["127.0.0.1", 8080],
    ["::1", 80]
  ] as const) {
    await new Promise<void>((resolve) => {
      const c = Net.createConnection({ host, port }, () => c.end())
      c.on("close", () => resolve())
      c.on("error", () => resolve())
    })
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  const control = arrivals.splice(0).length
  const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbs-"))
  const socket = Path.join(home, "run", "sb.sock")
  const logs: Array<string> = []
  const stop = Effect.runFork(
    Daemon.run({ home, store: "memory", env: { SWITCHBOARD_SOCKET: socket }, logRequests: false }).pipe(
      Effect.provide(Logger.layer([Daemon.jsonLogger((line) => logs.push(line))]))
    )
  )
  await Effect.runPromise(
    Client.health(socket).pipe(Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 }))
  )
  const call = (method: string, path: string, body?: unknown) =>
    send(socket, { method, path, body: body === undefined ? undefined : JSON.stringify(body) }, 30_000)

  const attempts: Array<Attempt> = []
  const record = async (input: string, path: string, run: () => Promise<{ status: number; text: string }>) => {
    const before = arrivals.length
    const res = await run()
    const body = json(res as never)
    attempts.push({
      input,
      path,
      status: res.status,
      code: String(body?.error?.code ?? body?.status ?? body?.result?.status ?? ""),
      arrivedDuring: arrivals.length - before
    })
    return body
  }
  const expiredAt = String(Math.floor(Date.now() / 1000) - 3600)

  for (const [i, input] of corpus.entries()) {
    const rest = `rest${i}`
    const mcp = `mcp${i}`
    const oauth = `oauth${i}`
    const mcpAuth = `mcpauth${i}`
    const pg = `pg${i}`
    // Creating may already refuse the input (a scheme that is not http(s), a URL that does not parse): that
    // refusal is recorded as the outcome of every path that needed it.
    const createRest = await record(input, "create REST connector", () =>
      call("POST", "/v1/connectors", {
        name: rest,
        display_name: rest,
        auth_patterns: [
          { type: "API_KEY", fields: [{ field_name: "api_key", input_type: "password", required: true }] }
        ],
        proxy_url: input,
        proxy_enabled: true
      })
    )
    if (createRest?.id !== undefined) {
      const conn = await call("POST", `/v1/connectors/${rest}/connections`, { name: rest, security: { api_key: "k" } })
      const id = json(conn)?.id
      await record(input, "proxy", () => call("GET", `/v1/connections/${id}/proxy/x`))
      await record(input, "connection test (HTTP probe)", () => call("POST", `/v1/connections/${id}/test`))
    }
    const createMcp = await record(input, "create MCP connector", () =>
      call("POST", "/v1/connectors", {
        name: mcp,
        display_name: mcp,
        kind: "mcp",
        proxy_url: input,
        auth_patterns: [
          { type: "BEARER", fields: [{ field_name: "token", input_type: "password", required: true }], is_mcp: true }
        ]
      })
    )
    if (createMcp?.id !== undefined) {
      await call("POST", `/v1/connectors/${mcp}/connections`, { name: mcp, security: { token: "t" } })
      await record(input, "MCP over HTTP (tools/list)", () => call("GET", `/v1/connectors/${mcp}/tools`))
    }
    // An OAuth connector on a safe-looking upstream whose token endpoint is the input: an expired token makes
    // the proxy refresh first.
    const createOAuth = await record(input, "create OAuth connector", () =>
      call("POST", "/v1/connectors", {
        name: oauth,
        display_name: oauth,
        auth_patterns: [
          {
            type: "OAUTH",
            fields: [],
            oauth_config: { authorize_uri: "https://auth.invalid/authorize", token_uri: input, user_info_uri: input }
          }
        ],
        proxy_url: "http://127.0.0.1:1/",
        proxy_enabled: true
      })
    )
    if (createOAuth?.id !== undefined) {
      await call("POST", `/v1/connectors/${oauth}/organization/credentials`, {
        name: "oauth_client",
        values: { client_id: "c", client_secret: "s" }
      })
      await call("POST", `/v1/connectors/${oauth}/user/credentials`, {
        values: { access_token: "a", refresh_token: "r", token_type: "Bearer", expires_at: expiredAt }
      })
      const conn = await call("POST", `/v1/connectors/${oauth}/connections`, { name: oauth })
      const id = json(conn)?.id
      await record(input, "OAuth token endpoint (refresh)", () => call("GET", `/v1/connections/${id}/proxy/x`))
    }
    const createMcpAuth = await record(input, "create MCP OAuth connector", () =>
      call("POST", "/v1/connectors", {
        name: mcpAuth,
        display_name: mcpAuth,
        kind: "mcp",
        proxy_url: input,
        auth_patterns: [{ type: "OAUTH", is_mcp: true, oauth_config: { pkce_enabled: true } }],
        proxy_enabled: true
      })
    )
    if (createMcpAuth?.id !== undefined) {
      await call("POST", `/v1/connectors/${mcpAuth}/connections`, { name: mcpAuth })
      await record(input, "MCP OAuth discovery (metadata, registration)", () =>
        call("GET", `/v1/connectors/${mcpAuth}/auth_url`)
      )
    }
    const host = (() => {
      try {
        return new URL(input).hostname.replace(/^\[|\]$/g, "")
      } catch {
        return input
      }
    })()
    const createPg = await record(input, "create PostgreSQL connector", () =>
      call("POST", "/v1/connectors", {
        name: pg,
        display_name: pg,
        kind: "postgresql",
        config: { host, port: 5432, database: "d" }
      })
    )
    if (createPg?.id !== undefined) {
      await call("POST", `/v1/connectors/${pg}/user/credentials`, { values: { username: "u", password: "p" } })
      const conn = await call("POST", `/v1/connectors/${pg}/connections`, { name: pg })
      const id = json(conn)?.id
      await record(input, "PostgreSQL probe", () => call("POST", `/v1/connections/${id}/test`))
    }
  }
  const health = await call("GET", "/healthz")
  process.stdout.write(
    JSON.stringify({ control, attempts, arrivals, healthy: health.status === 200, logs: logs.length })
  )
  stop.interruptUnsafe()
  for (const l of listeners) l.close()
  Fs.rmSync(home, { recursive: true, force: true })
  process.exit(0)
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n${(error as Error)?.stack ?? ""}\n`)
  process.exit(1)
})
