/**
 * Leak canaries across the whole daemon process: canary secrets in every secret slot (an API key, a Basic
 * password, OAuth access and refresh tokens, an OAuth client secret, a connection's write-only headers and its
 * inline security), then every feature driven, successes and failures (proxy calls that succeed, are refused by
 * the SSRF guard, hit a closed port, get a 401 that starts a refresh against a dead token endpoint; connection
 * tests; tool listing of an unreachable MCP server; the authorization URL; validation failures that echo input;
 * the CLI; `/openapi.json`; the audit log). Every response, the CLI's output, the daemon's stdout, stderr and log
 * file, and the raw database file and its WAL are scanned: zero hits. The upstream did receive the secrets, so
 * they were planted where they are used.
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import * as Path from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { killAll, repoRoot, sandbox, startDaemon } from "../daemon/harness.ts"
import { json, type Raw, send } from "./support.ts"

const C = {
  apiKey: "CANARY-APIKEY-a91f3c",
  password: "CANARY-PASSWD-b82e4d",
  access: "CANARY-ACCESS-c73d5e",
  refresh: "CANARY-REFRESH-d64c6f",
  clientSecret: "CANARY-CLSECRET-e55b70",
  header: "CANARY-HEADER-f46a81",
  inline: "CANARY-INLINE-0a3992"
}
const canaries = Object.values(C)
// The forms a secret could leak in: itself, a distinctive fragment, Basic's base64, URL-encoded.
const needles = [
  ...canaries,
  ...canaries.map((c) => c.slice(-6)),
  Buffer.from(`user:${C.password}`).toString("base64"),
  Buffer.from(C.password).toString("base64"),
  ...canaries.map((c) => Buffer.from(c).toString("base64").slice(0, 20)),
  ...canaries.map((c) => Buffer.from(c).toString("hex"))
]
export const figures = { slots: 7, scannedTexts: 0, scannedBytes: 0, hits: 0 }

const box = sandbox()
const seen: Array<string> = []
let upstream: Server
let upstreamUrl = ""
const received: Array<string> = []

const call = async (method: string, path: string, body?: unknown) => {
  const res = await send(box.socket, { method, path, body: body === undefined ? undefined : JSON.stringify(body) })
  seen.push(`${method} ${path} ${res.status} ${JSON.stringify(res.headers)} ${res.text}`)
  return res
}

const created = (res: Raw) => {
  assert.isBelow(res.status, 300, res.text)
  return json(res)
}

beforeAll(async () => {
  upstream = createServer((req: IncomingMessage, res) => {
    received.push(JSON.stringify(req.headers) + req.url)
    // The "expired" path answers 401: the daemon refreshes (against a dead token endpoint) and fails.
    if (req.url?.includes("expired")) {
      res.writeHead(401, { "content-type": "application/json" })
      res.end('{"error":"invalid_token"}')
      return
    }
    res.writeHead(200, { "content-type": "application/json" })
    res.end('{"ok":true}')
  })
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
}, 30_000)

afterAll(() => {
  killAll()
  upstream?.close()
  box.cleanup()
})

describe("leak canaries through the daemon process", () => {
  it("no response, CLI output, log line, audit record, openapi.json or database byte holds a planted secret", async () => {
    const logFile = Path.join(box.dir, "daemon.log")
    const daemon = await startDaemon(box, ["--log-file", logFile])
    const closed = "http://127.0.0.1:9"

    // Connectors: one per secret-bearing auth pattern.
    created(
      await call("POST", "/v1/connectors", {
        name: "key",
        display_name: "Key",
        auth_patterns: [
          {
            type: "API_KEY",
            fields: [{ field_name: "api_key", input_type: "password", required: true }],
            auth_header_key_override: "X-API-Key"
          }
        ],
        proxy_url: `${upstreamUrl}/api`,
        proxy_enabled: true
      })
    )
    created(
      await call("POST", "/v1/connectors", {
        name: "basic",
        display_name: "Basic",
        auth_patterns: [
          {
            type: "BASIC",
            fields: [
              { field_name: "username", required: true },
              { field_name: "password", input_type: "password", required: true }
            ]
          }
        ],
        proxy_url: `${upstreamUrl}/basic`,
        proxy_enabled: true
      })
    )
    created(
      await call("POST", "/v1/connectors", {
        name: "oauth",
        display_name: "OAuth",
        auth_patterns: [
          {
            type: "OAUTH",
            fields: [],
            oauth_config: {
              authorize_uri: `${closed}/authorize`,
              token_uri: `${closed}/token`,
              user_info_uri: `${closed}/userinfo`
            }
          }
        ],
        proxy_url: `${upstreamUrl}/oauth`,
        proxy_enabled: true
      })
    )
    created(
      await call("POST", "/v1/connectors", {
        name: "tools",
        display_name: "Tools",
        kind: "mcp",
        proxy_url: `${closed}/mcp`,
        auth_patterns: [
          { type: "BEARER", fields: [{ field_name: "token", input_type: "password", required: true }], is_mcp: true }
        ]
      })
    )

    // Secrets in every slot.
    created(await call("POST", "/v1/connectors/key/user/credentials", { values: { api_key: C.apiKey } }))
    created(
      await call("POST", "/v1/connectors/basic/user/credentials", {
        values: { username: "user", password: C.password }
      })
    )
    created(
      await call("POST", "/v1/connectors/oauth/organization/credentials", {
        name: "oauth_client",
        values: { client_id: "client-1", client_secret: C.clientSecret }
      })
    )
    created(
      await call("POST", "/v1/connectors/oauth/user/credentials", {
        values: {
          access_token: C.access,
          refresh_token: C.refresh,
          token_type: "Bearer",
          expires_at: String(Math.floor(Date.now() / 1000) + 3600)
        }
      })
    )
    const key = created(
      await call("POST", "/v1/connectors/key/connections", {
        name: "key-ok",
        headers: { "X-Extra-Secret": C.header },
        allow_private_network: true
      })
    )
    const keyRefused = created(
      await call("POST", "/v1/connectors/key/connections", {
        name: "key-refused",
        headers: { "X-Extra-Secret": C.header }
      })
    )
    const basic = created(
      await call("POST", "/v1/connectors/basic/connections", { name: "basic-ok", allow_private_network: true })
    )
    const inline = created(
      await call("POST", "/v1/connectors/key/connections", {
        name: "inline",
        security: { api_key: C.inline },
        allow_private_network: true
      })
    )
    const oauth = created(
      await call("POST", "/v1/connectors/oauth/connections", { name: "oauth-ok", allow_private_network: true })
    )
    const tools = created(
      await call("POST", "/v1/connectors/tools/connections", {
        name: "tools",
        security: { token: C.inline },
        allow_private_network: true
      })
    )
    const ids = [key.id, keyRefused.id, basic.id, inline.id, oauth.id, tools.id]

    // Failures that echo input: unknown fields, a credential value in the wrong place, a bad header.
    await call("POST", "/v1/connectors/key/user/credentials", { values: { nope: C.apiKey } })
    await call("POST", "/v1/connectors/key/connections", { name: "bad", security: { nope: C.inline } })
    await call("POST", "/v1/connectors/key/connections", { name: "bad2", headers: { "Bad Header": C.header } })
    await call("POST", "/v1/connectors", { name: C.apiKey.toLowerCase(), display_name: 1 })

    // Drive every feature.
    for (const id of ids) {
      // oxlint-disable-next-line no-await-in-loop -- sequential keeps the upstream log ordered
      await call("GET", `/v1/connections/${id}`)
      // oxlint-disable-next-line no-await-in-loop
      await call("POST", `/v1/connections/${id}/test`)
      // oxlint-disable-next-line no-await-in-loop
      await call("GET", `/v1/connections/${id}/proxy/items?x=1`)
      // oxlint-disable-next-line no-await-in-loop
      await call("POST", `/v1/connections/${id}/proxy/expired`, { a: 1 })
    }
    await call("POST", "/v1/connectors/test", { id: key.id })
    await call("GET", "/v1/connectors/tools/tools")
    await call("POST", "/v1/connectors/tools/tools/echo/call", { arguments: { a: 1 } })
    await call("GET", "/v1/connectors/oauth/auth_url")
    for (const c of ["key", "basic", "oauth", "tools"]) {
      // oxlint-disable-next-line no-await-in-loop
      await call("GET", `/v1/connectors/${c}`)
      for (const scope of ["user", "organization", "workspace"]) {
        // oxlint-disable-next-line no-await-in-loop
        await call("GET", `/v1/connectors/${c}/${scope}/credentials`)
      }
    }
    await call("GET", "/v1/connections?limit=100")
    await call("GET", "/v1/audit?limit=500")
    await call("GET", "/openapi.json")

    // The CLI through the daemon.
    const cli = (args: ReadonlyArray<string>) => {
      const out = spawnSync(process.execPath, [Path.join(repoRoot, "packages/daemon/bin/switchboard.js"), ...args], {
        env: box.env,
        encoding: "utf8",
        timeout: 20_000
      })
      seen.push(`cli ${args.join(" ")} ${out.status} ${out.stdout} ${out.stderr}`)
    }
    cli(["connection", "list"])
    cli(["cred", "list", "oauth", "--scope", "organization"])
    cli(["audit"])
    cli(["request", "oauth-ok", "GET", "/expired"])

    // The upstream got the secrets: they were planted where the daemon uses them.
    const upstreamSaw = received.join("\n")
    assert.include(upstreamSaw, C.apiKey)
    assert.include(upstreamSaw, C.header)
    assert.include(upstreamSaw, C.access)

    // The database and its WAL as they are while the daemon runs (a clean stop checkpoints the WAL away), then
    // after the stop.
    const dbFiles = () => Fs.readdirSync(box.home).filter((f) => f.startsWith("switchboard.db"))
    const running = dbFiles().map((f) => ({ name: `${f} (running)`, blob: Fs.readFileSync(Path.join(box.home, f)) }))
    assert.isTrue(
      running.some((f) => f.name.startsWith("switchboard.db-wal")),
      "a WAL to scan"
    )
    daemon.child.kill("SIGTERM")
    await daemon.exited
    seen.push(daemon.stdout(), daemon.stderr(), Fs.readFileSync(logFile, "utf8"))
    const stopped = dbFiles().map((f) => ({ name: f, blob: Fs.readFileSync(Path.join(box.home, f)) }))
    const all = [...running, ...stopped]
    const hits: Array<string> = []
    for (const text of seen) {
      figures.scannedTexts++
      figures.scannedBytes += text.length
      for (const needle of needles) if (text.includes(needle)) hits.push(`${needle} in ${text.slice(0, 300)}`)
    }
    for (const { name, blob } of all) {
      figures.scannedBytes += blob.length
      for (const needle of needles) {
        if (blob.includes(Buffer.from(needle)) || blob.includes(Buffer.from(needle, "utf16le"))) {
          hits.push(`${needle} in ${name}`)
        }
      }
    }
    figures.hits = hits.length
    console.info(`canary figures: ${JSON.stringify(figures)}`)
    assert.deepStrictEqual(hits, [])
    assert.isAbove(seen.length, 60)
  }, 150_000)
})
