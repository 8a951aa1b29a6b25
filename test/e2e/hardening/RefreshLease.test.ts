/**
 * Single-flight refresh across processes, with its negative control. Two processes share one sealed SQLite store
 * and find the access token expired at once (refreshRacer.ts). The connector's token endpoint is a gate in front of
 * oidc-provider's: it holds each refresh request until a second one arrives (or 5 seconds pass), so two refreshes
 * that can happen do overlap, however the processes are scheduled. With the real stack the lease lets one process
 * refresh and the other re-read: exactly 1 refresh reaches the authorization server. The same race with the lease
 * switched off (a wrapper whose `acquireLease` always succeeds, nothing else changed) makes 2: the single-flight
 * test can fail, and the lease is what makes it pass.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Credential from "@switchboard/core/Credential"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import * as OAuth from "@switchboard/core/OAuth"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { follow, paramsOf } from "../../support/oauth/Browser.ts"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"
import { stack } from "../../support/oauth/Stack.ts"

const REDIRECT = "http://127.0.0.1:9/v1/oauth/callback"
const racer = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "refreshRacer.ts")
const HOLD_MILLIS = 5_000

let oidc: OidcServer
let gate: Http.Server
let gateOrigin: string
let dir: string
/** Refresh requests that reached the gate. */
let refreshesAtGate = 0

/** Forward one request to oidc-provider's token endpoint and its answer back. */
const forward = (req: Http.IncomingMessage, body: Buffer, res: Http.ServerResponse) => {
  const upstream = Http.request(
    `${oidc.issuer}/token`,
    { method: "POST", headers: { ...req.headers, host: new URL(oidc.issuer).host } },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    }
  )
  upstream.on("error", () => res.writeHead(502).end())
  upstream.end(body)
}

beforeAll(async () => {
  oidc = await startOidc({
    clients: [
      {
        client_id: "race-app",
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: "none",
        application_type: "native"
      }
    ]
  })
  // Held refreshes wait for a partner (or the hold time) and then all go on together.
  let held: Array<() => void> = []
  gate = Http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = Buffer.concat(chunks)
      if (new URLSearchParams(body.toString("utf8")).get("grant_type") !== "refresh_token") {
        forward(req, body, res)
        return
      }
      refreshesAtGate++
      held.push(() => forward(req, body, res))
      const release = () => {
        const all = held
        held = []
        for (const go of all) go()
      }
      if (held.length >= 2) release()
      else setTimeout(release, HOLD_MILLIS)
    })
  })
  await new Promise<void>((resolve) => gate.listen(0, "127.0.0.1", () => resolve()))
  gateOrigin = `http://127.0.0.1:${(gate.address() as Net.AddressInfo).port}`
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-refresh-lease-"))
})

afterAll(async () => {
  gate?.closeAllConnections()
  gate?.close()
  await oidc?.stop()
  Fs.rmSync(dir, { recursive: true, force: true })
})

const run = (filename: string, connection: string, goFile: string, mode: "lease" | "no-lease") => {
  const proc = spawn(process.execPath, [racer, filename, connection, "25", goFile, mode], {
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  let err = ""
  let markReady = () => {}
  const ready = new Promise<void>((resolve) => {
    markReady = resolve
  })
  proc.stdout.on("data", (c: Buffer) => {
    out += c.toString("utf8")
    if (out.includes("ready\n")) markReady()
  })
  proc.stderr.on("data", (c: Buffer) => {
    err += c.toString("utf8")
  })
  const done = new Promise<{ readonly code: number | null; readonly err: string; readonly tokens: Array<string> }>(
    (resolve) => {
      proc.once("exit", (code) => {
        const line = out.split("\n").find((l) => l.startsWith("{"))
        resolve({ code, err, tokens: line === undefined ? [] : (JSON.parse(line) as { tokens: Array<string> }).tokens })
      })
    }
  )
  return { ready, done }
}

/** A fresh store with one authorized connection whose access token looks expired; then the two-process race. */
const race = (name: string, mode: "lease" | "no-lease") =>
  Effect.gen(function* () {
    const filename = Path.join(dir, `${name}.db`)
    const goFile = Path.join(dir, `${name}.go`)
    const setup = Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      yield* sb.createConnector({
        name,
        display_name: name,
        proxy_url: "https://api.example.test",
        auth_patterns: [
          {
            type: "OAUTH",
            oauth_config: {
              authorize_uri: `${oidc.issuer}/auth`,
              token_uri: `${gateOrigin}/token`,
              available_scopes: [{ scope: "openid", required: true }]
            }
          }
        ]
      })
      yield* sb.setCredential(name, "organization", {
        name: Credential.oauthClientName,
        values: { client_id: "race-app" }
      })
      const connection = yield* sb.createConnection(name, { name: "both", allow_private_network: true })
      const oauth = yield* OAuth.OAuth
      const { url } = yield* oauth.authorizationUrl(name, { connection: connection.id })
      yield* oauth.complete(paramsOf((yield* Effect.promise(() => follow(url, REDIRECT))).callback))
      const vault = yield* CredentialVault
      const key = {
        connectorId: connection.connector_id,
        scope: "user" as const,
        owner: { org: "local", user: "local" },
        name: "default"
      }
      const stored = Option.getOrThrow(yield* vault.get(key))
      yield* vault.put({
        ...stored,
        values: { ...stored.values, expires_at: Redacted.make(new Date(Date.now() - 60_000).toISOString()) }
      })
      return connection.id
    })
    const connection = yield* Effect.scoped(setup.pipe(Effect.provide(stack({ filename, redirectUri: REDIRECT }))))
    const before = oidc.tokenRequests.filter((r) => r.grant_type === "refresh_token").length
    const gateBefore = refreshesAtGate
    const a = run(filename, connection, goFile, mode)
    const b = run(filename, connection, goFile, mode)
    yield* Effect.promise(() => Promise.all([a.ready, b.ready]))
    Fs.writeFileSync(goFile, "go")
    const exits = yield* Effect.promise(() => Promise.all([a.done, b.done]))
    const refreshes = oidc.tokenRequests.filter((r) => r.grant_type === "refresh_token").slice(before)
    return { refreshes, atGate: refreshesAtGate - gateBefore, exits }
  })

export const figures = { withLease: 0, withoutLease: 0 }

describe("cross-process single-flight refresh, with its negative control", () => {
  it.live(
    "with the lease: exactly 1 refresh; the same race without it: 2",
    () =>
      Effect.gen(function* () {
        const leased = yield* race("leased", "lease")
        for (const exit of leased.exits) assert.strictEqual(exit.code, 0, exit.err)
        assert.strictEqual(leased.atGate, 1)
        assert.strictEqual(leased.refreshes.length, 1)
        assert.strictEqual(leased.refreshes[0]?.outcome, "success")
        // Both processes ended on the one rotated token.
        assert.strictEqual(new Set(leased.exits.flatMap((e) => e.tokens)).size, 1)

        const unleased = yield* race("unleased", "no-lease")
        // Both processes refreshed with the same refresh token. With rotation, the authorization server takes one
        // of them as a replay (and revokes the grant): a process may then fail with invalid_grant.
        assert.strictEqual(unleased.atGate, 2)
        assert.strictEqual(unleased.refreshes.length, 2)
        figures.withLease = leased.refreshes.length
        figures.withoutLease = unleased.refreshes.length
        console.info(
          `refresh race: ${JSON.stringify({
            ...figures,
            withoutLeaseOutcomes: unleased.refreshes.map((r) => r.error ?? r.outcome),
            withoutLeaseExits: unleased.exits.map((e) => e.code)
          })}`
        )
      }),
    60_000
  )
})
