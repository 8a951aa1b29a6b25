/**
 * The connect page and the dashboard in real headless Chromium (Debian's, driven by playwright-core), against the
 * real daemon (`main.ts` in a sandbox, SQLite store) and a real authorization server (`oidc-provider` on 127.0.0.1):
 * the dashboard URL with the per-start secret in the log and `status`, an OAuth connector connected end to end
 * from the connect page to the result page naming the account, an OAuth connector's account fields collected on its
 * connect page (validated like the API) and kept beside the tokens, an MCP connector added through the guided form
 * (a field error first), a static credential saved from password inputs and a failed test's error on the
 * dashboard, and requests with a wrong `Host`, without the session or without the CSRF token refused.
 * Screenshots of the connect page and the dashboard land in `screenshots/` (git-ignored).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import type { Page } from "playwright-core"
import { afterAll, beforeAll } from "vitest"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"
import { killAll, repoRoot, request, type Sandbox, sandbox, spawnMain, startDaemon } from "../daemon/harness.ts"
import * as Chromium from "./Chromium.ts"

const why = Chromium.unavailable()
if (why !== undefined) console.warn(`skipping the browser tests: ${why}`)

let oidc: OidcServer
let box: Sandbox
let browser: Chromium.Launched
let dashboardUrl: URL
let page: Page

const origin = () => dashboardUrl.origin
const secret = () => dashboardUrl.searchParams.get("k") ?? ""

const api = (method: string, path: string, body?: unknown) => request(box.socket, method, path, body)

/** One request to the browser listener with raw headers (what a rebinding page or another origin would send). */
const raw = (method: string, path: string, headers: Record<string, string>, body?: string) =>
  new Promise<{ status: number; text: string }>((resolve, reject) => {
    const url = new URL(path, origin())
    const all = { ...headers, ...(body === undefined ? {} : { "content-length": String(Buffer.byteLength(body)) }) }
    const req = Http.request(
      { host: "127.0.0.1", port: url.port, method, path: url.pathname + url.search, headers: all, agent: false },
      (res) => {
        let text = ""
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8")
        })
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }))
      }
    )
    req.on("error", reject)
    if (body !== undefined) req.write(body)
    req.end()
  })

const shot = (name: string) => page.screenshot({ path: Path.join(Chromium.screenshotDir, name), fullPage: true })

beforeAll(async () => {
  if (why !== undefined) return
  oidc = await startOidc({
    clients: [
      {
        client_id: "web-app",
        token_endpoint_auth_method: "none",
        application_type: "native",
        redirect_uris: ["http://127.0.0.1/v1/oauth/callback"]
      }
    ]
  })
  box = sandbox()
  Fs.mkdirSync(box.home, { recursive: true, mode: 0o700 })
  Fs.writeFileSync(Path.join(box.home, "config.json"), JSON.stringify({ allow_private_network: true }))
  const daemon = await startDaemon(box)
  const logged = daemon
    .stderr()
    .split("\n")
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { message?: string; dashboard?: string }
        return entry.message === "daemon listening" && entry.dashboard !== undefined ? [entry.dashboard] : []
      } catch {
        return []
      }
    })
  assert.strictEqual(logged.length, 1, daemon.stderr())
  dashboardUrl = new URL(logged[0] ?? "")
  Fs.mkdirSync(Chromium.screenshotDir, { recursive: true })
  browser = await Chromium.launch()
  page = await browser.context.newPage()
}, 60_000)

afterAll(async () => {
  await browser?.close()
  killAll()
  await oidc?.stop()
  box?.cleanup()
})

describe.skipIf(why !== undefined)("the connect page and the dashboard in Chromium", () => {
  it.live("the dashboard URL carries a per-start secret; `status` shows it; the secret becomes a cookie", () =>
    Effect.promise(async () => {
      assert.match(dashboardUrl.href, /^http:\/\/127\.0\.0\.1:\d+\/ui\?k=[\w-]{43}$/u)
      const status = spawnMain(box, ["status"])
      assert.strictEqual(await status.exited, 0, status.stderr())
      assert.strictEqual(JSON.parse(status.stdout()).dashboard_url, dashboardUrl.href)
      const cli = spawnSync(
        process.execPath,
        [Path.join(repoRoot, "packages/daemon/bin/switchboard.js"), "daemon", "status"],
        {
          env: box.env,
          encoding: "utf8"
        }
      )
      assert.strictEqual(cli.status, 0, cli.stderr)
      assert.include(cli.stdout, `Dashboard: ${dashboardUrl.href}`)
      // Without the secret: refused, in the browser too.
      const bare = await page.goto(`${origin()}/ui`)
      assert.strictEqual(bare?.status(), 403)
      await page.goto(dashboardUrl.href)
      assert.strictEqual(new URL(page.url()).search, "", "the secret leaves the address bar")
      assert.strictEqual(await page.locator("h1").textContent(), "Dashboard")
      const cookies = await browser.context.cookies(origin())
      const session = cookies.find((c) => c.name === `sb_session_${dashboardUrl.port}`)
      assert.isDefined(session)
      assert.isTrue(session?.httpOnly)
      assert.strictEqual(session?.sameSite, "Strict")
    })
  )

  it.live("connects an OAuth connector end to end: connect page, authorization server, result page", () =>
    Effect.promise(async () => {
      const connector = await api("POST", "/v1/connectors", {
        name: "acme",
        display_name: "Acme CRM",
        description: "Accounts <and> deals",
        proxy_url: "https://api.acme.example",
        auth_patterns: [
          {
            type: "OAUTH",
            oauth_config: {
              authorize_uri: `${oidc.issuer}/auth`,
              token_uri: `${oidc.issuer}/token`,
              user_info_uri: `${oidc.issuer}/me`,
              available_scopes: [
                { scope: "openid", required: true },
                { scope: "email", required: true, description: "Your email address" },
                { scope: "profile", display_name: "Profile" }
              ]
            }
          }
        ]
      })
      assert.strictEqual(connector.status, 201, connector.text)
      const client = await api("POST", "/v1/connectors/acme/organization/credentials", {
        name: "oauth_client",
        values: { client_id: "web-app" }
      })
      assert.strictEqual(client.status, 200, client.text)
      const created = await api("POST", "/v1/connectors/acme/connections", { name: "work" })
      assert.strictEqual(created.status, 201, created.text)
      const id = created.json.id ?? created.json.connection?.id
      assert.isString(id)

      await page.goto(`${origin()}/ui/connect/${id}`)
      assert.strictEqual(await page.locator("h1").textContent(), "Connect Acme CRM")
      const text = (await page.locator("main").textContent()) ?? ""
      assert.include(text, "Accounts <and> deals", "escaped text shows as text")
      assert.include(text, "Your email address")
      assert.strictEqual(await page.locator("#status").textContent(), "pending_auth")
      assert.isTrue(await page.locator('input[name=scope][value="email"]').isDisabled(), "required scopes stay")
      assert.isFalse(await page.locator('input[name=scope][value="profile"]').isDisabled())
      await shot("connect-page.png")

      await Promise.all([page.waitForURL(/\/v1\/oauth\/callback/u, { timeout: 20_000 }), page.click("#connect")])
      assert.strictEqual(await page.locator("h1").textContent(), "Connected")
      assert.include(await page.locator("#result").textContent(), "acme")
      assert.strictEqual(await page.locator("#account").textContent(), "alice@example.test")
      await shot("connect-result.png")

      const after = await api("GET", `/v1/connections/${id}`)
      assert.strictEqual(after.json.status, "active", after.text)
      assert.strictEqual(after.json.account_label, "alice@example.test")
    })
  )

  it.live("collects an OAuth connector's account fields on the connect page (validated), then authorizes", () =>
    Effect.promise(async () => {
      const connector = await api("POST", "/v1/connectors", {
        name: "zen",
        display_name: "Zen Desk",
        proxy_url: "https://api.zen.example",
        auth_patterns: [
          {
            type: "OAUTH",
            account_fields: [
              { field_name: "subdomain", label: "Subdomain", input_type: "text", required: true },
              { field_name: "api_region", label: "Region", input_type: "text" }
            ],
            oauth_config: {
              authorize_uri: `${oidc.issuer}/auth`,
              token_uri: `${oidc.issuer}/token`,
              user_info_uri: `${oidc.issuer}/me`,
              available_scopes: [{ scope: "openid", required: true }]
            }
          }
        ]
      })
      assert.strictEqual(connector.status, 201, connector.text)
      const client = await api("POST", "/v1/connectors/zen/organization/credentials", {
        name: "oauth_client",
        values: { client_id: "web-app" }
      })
      assert.strictEqual(client.status, 200, client.text)
      const created = await api("POST", "/v1/connectors/zen/connections", { name: "zen-work" })
      assert.strictEqual(created.status, 201, created.text)
      const id = created.json.id ?? created.json.connection?.id
      assert.isString(id)
      const credentials = async () => {
        const listed = await api("GET", "/v1/connectors/zen/user/credentials")
        assert.strictEqual(listed.status, 200, listed.text)
        return (listed.json.data ?? listed.json) as ReadonlyArray<{ auth_type: string; values: Record<string, string> }>
      }

      // The API's validation, at the HTTP level (the browser would not send a missing required field).
      const port = dashboardUrl.port
      const cookie = `sb_session_${port}=${secret()}`
      const shown = await raw("GET", `/ui/connect/${id}`, { host: `127.0.0.1:${port}`, cookie })
      assert.strictEqual(shown.status, 200)
      const csrf = /name="csrf" value="([^"]+)"/u.exec(shown.text)?.[1] ?? ""
      const headers = { host: `127.0.0.1:${port}`, cookie, "content-type": "application/x-www-form-urlencoded" }
      const post = (body: string) =>
        raw("POST", `/ui/connect/${id}/oauth`, headers, `csrf=${csrf}&scope=openid&${body}`)
      const missing = await post("value.subdomain=&value.api_region=eu")
      assert.strictEqual(missing.status, 422, missing.text)
      assert.match(missing.text, /data-field="subdomain">subdomain is required/u)
      const smuggled = await post("value.subdomain=acme&value.access_token=planted-token-4242")
      assert.strictEqual(smuggled.status, 422, smuggled.text)
      assert.include(smuggled.text, "access_token")
      assert.strictEqual((await raw("POST", `/ui/connect/${id}/oauth`, headers, "value.subdomain=acme")).status, 403)
      assert.deepStrictEqual(await credentials(), [], "nothing stored, no flow started")

      await page.goto(`${origin()}/ui/connect/${id}`)
      assert.strictEqual(await page.getAttribute("#f-subdomain", "type"), "text")
      assert.isNotNull(await page.getAttribute("#f-subdomain", "required"), "a required account field")
      await page.fill("#f-subdomain", "acme-eu")
      await page.fill("#f-api_region", "eu")
      await shot("connect-account-fields.png")
      await Promise.all([page.waitForURL(/\/v1\/oauth\/callback/u, { timeout: 20_000 }), page.click("#connect")])
      assert.strictEqual(await page.locator("h1").textContent(), "Connected")

      // The account fields stay beside the tokens the flow stored.
      const stored = await credentials()
      assert.strictEqual(stored.length, 1)
      assert.strictEqual(stored[0]?.auth_type, "OAUTH")
      assert.includeMembers(Object.keys(stored[0]?.values ?? {}), ["subdomain", "api_region", "access_token"])
      const after = await api("GET", `/v1/connections/${id}`)
      assert.strictEqual(after.json.status, "active", after.text)
    })
  )

  it.live("a failed callback lands on a result page that says why", () =>
    Effect.promise(async () => {
      await page.goto(`${origin()}/v1/oauth/callback?state=nope.nope&code=x`)
      assert.strictEqual(await page.locator("h1").textContent(), "Authorization failed")
      assert.isNotEmpty((await page.locator("#result").textContent()) ?? "")
    })
  )

  it.live("adds an MCP connector through the guided form, showing a field error first", () =>
    Effect.promise(async () => {
      await page.goto(`${origin()}/ui`)
      await page.selectOption("#c-kind", "mcp")
      await page.fill("#c-display_name", "Example MCP")
      await page.fill("#c-description", "An MCP server")
      await page.fill("#c-icon_url", "http://cdn.example.com/icon.svg")
      await page.fill("#c-proxy_url", "https://app.example.com/mcp")
      await page.fill("#c-metadata", "team=platform\ntier=gold")
      await page.selectOption("#c-auth_type", "OAUTH")
      await page.click("#save-connector")
      const iconError = page.locator("#error-icon_url")
      assert.include(await iconError.textContent(), "https://")
      assert.strictEqual(await page.inputValue("#c-display_name"), "Example MCP", "the form keeps what was typed")
      assert.strictEqual((await api("GET", "/v1/connectors/example-mcp")).status, 404)

      await page.fill("#c-icon_url", "https://cdn.example.com/icon.svg")
      await page.click("#save-connector")
      await page.waitForURL(/\/ui$/u)
      assert.strictEqual(await page.locator("#error-icon_url").count(), 0)
      assert.strictEqual(await page.locator('tr[data-connector="example-mcp"]').count(), 1)
      const stored = await api("GET", "/v1/connectors/example-mcp")
      assert.strictEqual(stored.status, 200, stored.text)
      assert.strictEqual(stored.json.kind, "mcp")
      assert.strictEqual(stored.json.icon_url, "https://cdn.example.com/icon.svg")
      assert.deepStrictEqual(stored.json.metadata, { team: "platform", tier: "gold" })
      assert.deepStrictEqual(stored.json.auth_patterns, [
        { type: "OAUTH", is_mcp: true, oauth_config: { pkce_enabled: true } }
      ])
    })
  )

  it.live("saves a static credential from password inputs, then shows a failed test's error", () =>
    Effect.promise(async () => {
      const connector = await api("POST", "/v1/connectors", {
        name: "down",
        display_name: "Down API",
        proxy_url: "http://127.0.0.1:9",
        auth_patterns: [{ type: "BEARER", fields: [{ field_name: "token", label: "API token" }] }]
      })
      assert.strictEqual(connector.status, 201, connector.text)
      const created = await api("POST", "/v1/connectors/down/connections", {
        name: "down-conn",
        allow_private_network: true
      })
      assert.strictEqual(created.status, 201, created.text)
      const id = created.json.id ?? created.json.connection?.id

      await page.goto(`${origin()}/ui/connect/${id}`)
      assert.strictEqual(await page.getAttribute("#f-token", "type"), "password")
      await page.fill("#f-token", "tok-CANARY-5150")
      await page.click("#save")
      assert.strictEqual(await page.locator("h1").textContent(), "Connected")
      const creds = await api("GET", "/v1/connectors/down/user/credentials")
      assert.strictEqual(creds.status, 200, creds.text)
      assert.notInclude(creds.text, "tok-CANARY-5150", "stored sealed, shown masked")

      await page.goto(`${origin()}/ui`)
      const row = page.locator('tr[data-connection="down-conn"]')
      await Promise.all([page.waitForURL(/\/ui$/u), row.locator("button", { hasText: "Test" }).click()])
      const error = (await page.locator('tr[data-connection="down-conn"] .last-error').textContent()) ?? ""
      assert.isNotEmpty(error.trim(), "the failed test's error is shown")
      assert.strictEqual(await page.locator('tr[data-connection="down-conn"] .status-error').count(), 1)
      assert.notInclude(await page.content(), "tok-CANARY-5150")
      assert.isAbove(await page.locator("#audit tr").count(), 1, "recent audit records are listed")
      await shot("dashboard.png")
    })
  )

  it.live("refuses a wrong Host, a missing session and a missing or wrong CSRF token", () =>
    Effect.promise(async () => {
      const port = dashboardUrl.port
      const cookie = `sb_session_${port}=${secret()}`
      const ok = await raw("GET", "/ui", { host: `127.0.0.1:${port}`, cookie })
      assert.strictEqual(ok.status, 200)
      const csrf = /name="csrf" value="([^"]+)"/u.exec(ok.text)?.[1] ?? ""
      assert.isNotEmpty(csrf)

      const hosts = [`evil.example:${port}`, `127.0.0.1:${Number(port) + 1}`, "127.0.0.1"]
      const rebound = await Promise.all(
        hosts.flatMap((host) => [
          raw("GET", `/ui?k=${secret()}`, { host, cookie }),
          raw("GET", "/ui/style.css", { host })
        ])
      )
      assert.deepStrictEqual(
        rebound.map((r) => r.status),
        hosts.flatMap(() => [421, 421])
      )
      assert.strictEqual((await raw("GET", "/ui", { host: `127.0.0.1:${port}` })).status, 403)
      assert.strictEqual(
        (await raw("GET", "/ui", { host: `127.0.0.1:${port}`, cookie: `sb_session_${port}=guess` })).status,
        403
      )

      const form = (extra: string) => `kind=mcp&display_name=Sneaky&proxy_url=https%3A%2F%2Fx.example%2Fmcp${extra}`
      const headers = { host: `127.0.0.1:${port}`, cookie, "content-type": "application/x-www-form-urlencoded" }
      assert.strictEqual((await raw("POST", "/ui/connectors", headers, form(""))).status, 403)
      assert.strictEqual((await raw("POST", "/ui/connectors", headers, form("&csrf=wrong"))).status, 403)
      const crossSite = { ...headers, origin: "http://evil.example" }
      assert.strictEqual((await raw("POST", "/ui/connectors", crossSite, form(`&csrf=${csrf}`))).status, 403)
      assert.strictEqual((await api("GET", "/v1/connectors/sneaky")).status, 404, "nothing was created")
      const accepted = await raw("POST", "/ui/connectors", headers, form(`&csrf=${csrf}`))
      assert.strictEqual(accepted.status, 303, accepted.text)
    })
  )
})
