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
import * as Os from "node:os"
import * as Path from "node:path"
import { corpus, countingListeners } from "./ssrfCorpus.ts"
import { json, send } from "./support.ts"

export { corpus } from "./ssrfCorpus.ts"

export interface Attempt {
  readonly input: string
  readonly path: string
  readonly status: number
  readonly code: string
  readonly arrivedDuring: number
}

const main = async () => {
  const { arrivals, control, close } = await countingListeners()
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
  close()
  Fs.rmSync(home, { recursive: true, force: true })
  process.exit(0)
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n${(error as Error)?.stack ?? ""}\n`)
  process.exit(1)
})
