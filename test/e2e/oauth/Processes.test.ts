/**
 * Single-flight refresh across processes: two processes share one sealed SQLite store and both find the access
 * token expired at once; the refresh lease lets one refresh while the other waits, re-reads, sees the rotated
 * token and does not refresh. The authorization server sees exactly one refresh (a second one would reuse the
 * rotated refresh token and revoke the whole grant).
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
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { follow, paramsOf } from "../../support/oauth/Browser.ts"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"
import { stack } from "../../support/oauth/Stack.ts"

const REDIRECT = "http://127.0.0.1:9/v1/oauth/callback"
const child = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "fixtures", "refresher.ts")

let oidc: OidcServer
let dir: string

beforeAll(async () => {
  oidc = await startOidc({
    clients: [
      {
        client_id: "proc-app",
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: "none",
        application_type: "native"
      }
    ]
  })
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-oauth-proc-"))
})

afterAll(async () => {
  await oidc?.stop()
  Fs.rmSync(dir, { recursive: true, force: true })
})

interface Child {
  readonly ready: Promise<void>
  readonly result: Promise<{ tokens: ReadonlyArray<string> }>
}

const start = (filename: string, connection: string, goFile: string): Child => {
  const proc = spawn(process.execPath, [child, filename, connection, "25", goFile], {
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
  const result = new Promise<{ tokens: ReadonlyArray<string> }>((resolve, reject) => {
    proc.once("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{"))
      if (code !== 0 || line === undefined) reject(new Error(`child failed (${code}): ${err}`))
      else resolve(JSON.parse(line))
    })
  })
  return { ready, result }
}

describe("refresh across processes", () => {
  it.live("two processes on one SQLite store refresh an expired token exactly once", () =>
    Effect.gen(function* () {
      const filename = Path.join(dir, "switchboard.db")
      const goFile = Path.join(dir, "go")
      const setup = Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector({
          name: "shared",
          display_name: "Shared",
          proxy_url: "https://api.example.test",
          auth_patterns: [
            {
              type: "OAUTH",
              oauth_config: {
                authorize_uri: `${oidc.issuer}/auth`,
                token_uri: `${oidc.issuer}/token`,
                available_scopes: [{ scope: "openid", required: true }]
              }
            }
          ]
        })
        yield* sb.setCredential("shared", "organization", {
          name: Credential.oauthClientName,
          values: { client_id: "proc-app" }
        })
        const connection = yield* sb.createConnection("shared", { name: "both", allow_private_network: true })
        const oauth = yield* OAuth.OAuth
        const { url } = yield* oauth.authorizationUrl("shared", { connection: connection.id })
        yield* oauth.complete(paramsOf((yield* Effect.promise(() => follow(url, REDIRECT))).callback))
        // The token looks expired to everyone from now on.
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
        return { connection: connection.id, key }
      })
      const { connection, key } = yield* Effect.scoped(
        setup.pipe(Effect.provide(stack({ filename, redirectUri: REDIRECT })))
      )
      const before = oidc.tokenRequests.filter((r) => r.grant_type === "refresh_token").length

      const a = start(filename, connection, goFile)
      const b = start(filename, connection, goFile)
      yield* Effect.promise(() => Promise.all([a.ready, b.ready]))
      Fs.writeFileSync(goFile, "go")
      const [ra, rb] = yield* Effect.promise(() => Promise.all([a.result, b.result]))

      const refreshes = oidc.tokenRequests.filter((r) => r.grant_type === "refresh_token")
      assert.strictEqual(refreshes.length - before, 1)
      assert.isTrue(refreshes.every((r) => r.outcome === "success"))
      // Both processes end with the one rotated token, and that is what the store holds.
      const stored = yield* Effect.scoped(
        Effect.flatMap(CredentialVault, (vault) => vault.get(key)).pipe(Effect.provide(stack({ filename })))
      )
      const digest = createHash("sha256")
        .update(Redacted.value(Option.getOrThrow(stored).values["access_token"] ?? Redacted.make("")))
        .digest("hex")
      assert.deepStrictEqual([...new Set([...ra.tokens, ...rb.tokens])], [digest])
    })
  )
})
