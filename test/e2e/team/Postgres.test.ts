/**
 * Two team-server daemons on one real PostgreSQL database (a throwaway cluster from Debian's packages on
 * loopback; skipped when the binaries are missing, unless SWITCHBOARD_REQUIRE_POSTGRES=1). One configured with
 * `store_url` in config.json, the other with SWITCHBOARD_STORE_URL; both seal with the same master key.
 *
 * - A key made on one host works on the other; revoking it on one host locks it out of both.
 * - Concurrent updates of one connector through both daemons: no update is lost; of colliding ones exactly one
 *   wins and the others get 409 `version_conflict`.
 * - An expired OAuth token used through both daemons at once is refreshed exactly once (the authorization
 *   server sees one refresh grant), and every call goes through with the new token.
 * - A daemon SIGKILLed in the middle of a stream of writes loses none that it acknowledged.
 */
import * as Credential from "@switchboard/core/Credential"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import * as OAuth from "@switchboard/core/OAuth"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Postgres from "@switchboard/adapters/postgres"
import * as Layers from "@switchboard/daemon/Layers"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { type ApiServer, startApi } from "../../support/oauth/ApiServer.ts"
import { follow, paramsOf } from "../../support/oauth/Browser.ts"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"
import * as Cluster from "../../support/postgres/Cluster.ts"
import {
  type CreatedKey,
  type Daemon,
  type Home,
  call,
  cli,
  connectorPayload,
  createKeysInProcess,
  killAll,
  makeHome,
  masterKey,
  secretOf,
  startDaemon,
  tempRoot
} from "./harness.ts"

const skip = Cluster.unavailable()
const REDIRECT = "http://127.0.0.1:9/v1/oauth/callback"
const alice: Principal.Principal = { org: "acme", workspace: "main", user: "alice", role: "admin" }

/** Run one statement on a short-lived pool. */
const query = (database: string, sql: string) =>
  Effect.runPromise(
    Effect.flatMap(Postgres.Database.open({ url: database, poolSize: 1 }), (db) =>
      db.all<Record<string, unknown>>(sql)
    ).pipe(Effect.scoped)
  )

let cluster: Cluster.Cluster | undefined
let oidc: OidcServer | undefined
let api: ApiServer | undefined
let root = ""
let url = ""
let homeA: Home
let homeB: Home
let daemonA: Daemon
let daemonB: Daemon
let admin: CreatedKey

beforeAll(async () => {
  if (skip !== undefined) return
  cluster = await Cluster.start()
  const base = `postgres://${cluster.user}:${encodeURIComponent(cluster.password)}@127.0.0.1:${cluster.port}`
  await query(`${base}/postgres`, "CREATE DATABASE team")
  url = `${base}/team`
  oidc = await startOidc({
    clients: [
      {
        client_id: "team-app",
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: "none",
        application_type: "native"
      }
    ]
  })
  api = await startApi(oidc)
  root = tempRoot()
  const key = masterKey()
  homeA = makeHome(root, "host-a", { SWITCHBOARD_MASTER_KEY: key })
  homeB = makeHome(root, "host-b", { SWITCHBOARD_MASTER_KEY: key, SWITCHBOARD_STORE_URL: url })
  Fs.writeFileSync(Path.join(homeA.dir, "config.json"), JSON.stringify({ store_url: url, allow_private_network: true }))
  Fs.writeFileSync(Path.join(homeB.dir, "config.json"), JSON.stringify({ allow_private_network: true }))
  ;[admin] = await createKeysInProcess(homeA, [alice])
  ;[daemonA, daemonB] = await Promise.all([startDaemon(homeA), startDaemon(homeB)])
}, 60_000)

afterAll(async () => {
  killAll()
  await api?.stop()
  await oidc?.stop()
  cluster?.stop()
  if (root !== "") Fs.rmSync(root, { recursive: true, force: true })
})

describe.skipIf(skip !== undefined)("two team-server daemons on one PostgreSQL database", () => {
  it("share API keys: made on one host, used on both, revoked on one, refused by both", async () => {
    assert.match(daemonA.output(), /"store":"postgres"/u)
    assert.match(daemonB.output(), /"store":"postgres"/u)
    const made = cli(homeB, [
      "apikey",
      "create",
      "--json",
      "--org",
      "acme",
      "--workspace",
      "main",
      "--user",
      "bob",
      "--role",
      "editor"
    ])
    assert.strictEqual(made.code, 0, made.stderr)
    const bob = JSON.parse(made.stdout) as CreatedKey
    const before = await Promise.all([daemonA, daemonB].map((d) => call(d, "GET", "/v1/connectors", { key: bob.key })))
    assert.deepStrictEqual(
      before.map((a) => a.status),
      [200, 200]
    )
    const revoked = cli(homeA, ["apikey", "revoke", bob.id])
    assert.strictEqual(revoked.code, 0, revoked.stderr)
    const after = await Promise.all([daemonA, daemonB].map((d) => call(d, "GET", "/v1/connectors", { key: bob.key })))
    for (const answer of after) {
      assert.strictEqual(answer.status, 401)
      assert.strictEqual(answer.json.error.code, "unauthorized")
    }
    const secret = secretOf(bob.key)
    assert.notInclude(daemonA.output() + daemonB.output() + revoked.stdout + revoked.stderr, secret)
  })

  it("let concurrent connector updates through both daemons lose nothing: one of colliding ones wins, the rest 409", async () => {
    const created = await call(daemonA, "POST", "/v1/connectors", { key: admin.key, body: connectorPayload("shared") })
    assert.strictEqual(created.status, 201, created.text)
    const id = created.json.id as string
    const wins: Array<{ version: number; description: string }> = []
    let conflicts = 0
    for (let round = 0; round < 4; round++) {
      // oxlint-disable-next-line no-await-in-loop -- one round of colliding updates after the other
      const answers = await Promise.all(
        Array.from({ length: 6 }, (_, i) => {
          const description = `round ${round} writer ${i}`
          return call(i % 2 === 0 ? daemonA : daemonB, "PATCH", `/v1/connectors/${id}`, {
            key: admin.key,
            body: { description }
          }).then((answer) => ({ answer, description }))
        })
      )
      for (const { answer, description } of answers) {
        if (answer.status === 200) {
          wins.push({ version: answer.json.version, description })
        } else {
          assert.strictEqual(answer.status, 409, answer.text)
          assert.strictEqual(answer.json.error.code, "version_conflict")
          conflicts++
        }
      }
    }
    // Every acknowledged update made its own version: none overwrote another unseen.
    const versions = wins.map((w) => w.version).sort((a, b) => a - b)
    assert.deepStrictEqual(
      versions,
      Array.from({ length: wins.length }, (_, i) => i + 2)
    )
    assert.isAbove(conflicts, 0, "no update collided; the test did not exercise the race")
    // Both daemons read the same last version, holding the last acknowledged write.
    const last = wins.find((w) => w.version === wins.length + 1)
    const reads = await Promise.all(
      [daemonA, daemonB].map((d) => call(d, "GET", `/v1/connectors/${id}`, { key: admin.key }))
    )
    for (const read of reads) {
      assert.strictEqual(read.json.version, wins.length + 1)
      assert.strictEqual(read.json.description, last?.description)
    }
  })

  it("give the CLI without a daemon the same database (store_url from the environment)", async () => {
    const file = Path.join(root, "from-cli.json")
    Fs.writeFileSync(file, JSON.stringify(connectorPayload("from-cli")))
    const added = cli(homeB, ["connector", "add", file, "--via", "embedded", "--json"])
    assert.strictEqual(added.code, 0, added.stderr)
    const rows = await query(url, "SELECT org, name FROM connectors WHERE name = 'from-cli'")
    assert.deepStrictEqual(rows, [{ org: "local", name: "from-cli" }])
  })

  it("refresh an expired OAuth token once when both daemons use it at the same time", async () => {
    if (oidc === undefined || api === undefined) return assert.fail("no authorization server")
    const server = oidc
    const apiUrl = api.url
    const paths = Layers.resolvePaths({ env: homeA.env })
    const stack = Layers.oauthSwitchboardLayer({
      kind: "sqlite",
      paths,
      env: homeA.env,
      storeUrl: url,
      allowPrivateNetwork: true,
      redirectUri: () => REDIRECT
    })
    // Set up as alice: the connector, the OAuth app, her connection and its tokens; then make them look expired.
    const connection = await Effect.runPromise(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector({
          name: "idp-api",
          display_name: "IdP API",
          proxy_url: apiUrl,
          auth_patterns: [
            {
              type: "OAUTH",
              oauth_config: {
                authorize_uri: `${server.issuer}/auth`,
                token_uri: `${server.issuer}/token`,
                available_scopes: [{ scope: "openid", required: true }]
              }
            }
          ]
        })
        yield* sb.setCredential("idp-api", "organization", {
          name: Credential.oauthClientName,
          values: { client_id: "team-app" }
        })
        const created = yield* sb.createConnection("idp-api", { name: "alice-idp", allow_private_network: true })
        const oauth = yield* OAuth.OAuth
        const { url: authUrl } = yield* oauth.authorizationUrl("idp-api", { connection: created.id })
        yield* oauth.complete(paramsOf((yield* Effect.promise(() => follow(authUrl, REDIRECT))).callback))
        const vault = yield* CredentialVault
        const key = {
          connectorId: created.connector_id,
          scope: "user" as const,
          owner: { org: alice.org, user: alice.user },
          name: "default"
        }
        const stored = yield* Effect.flatMap(vault.get(key), Effect.fromOption)
        yield* vault.put({
          ...stored,
          values: { ...stored.values, expires_at: Redacted.make(new Date(Date.now() - 60_000).toISOString()) }
        })
        return created.id
      }).pipe(Effect.provideService(Principal.CurrentPrincipal, alice), Effect.provide(stack), Effect.scoped)
    )
    const refreshesBefore = server.tokenRequests.filter((r) => r.grant_type === "refresh_token").length
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        call(i % 2 === 0 ? daemonA : daemonB, "GET", `/v1/connections/${connection}/proxy/me`, { key: admin.key })
      )
    )
    for (const answer of answers) assert.strictEqual(answer.status, 200, answer.text)
    const refreshes = server.tokenRequests.filter((r) => r.grant_type === "refresh_token").slice(refreshesBefore)
    assert.strictEqual(refreshes.length, 1)
    assert.strictEqual(refreshes[0]?.outcome, "success")
  })

  it("lose no acknowledged write when a daemon is SIGKILLed in the middle of writing", async () => {
    const homeC = makeHome(root, "host-c", {
      SWITCHBOARD_MASTER_KEY: homeA.env.SWITCHBOARD_MASTER_KEY ?? "",
      SWITCHBOARD_STORE_URL: url
    })
    const victim = await startDaemon(homeC)
    const acknowledged: Array<string> = []
    let killed = false
    let n = 0
    // Four writers keep writing through the victim; after 20 acknowledgements it is killed mid-stream.
    const writer = async () => {
      while (!killed) {
        const name = `w-${n++}`
        // oxlint-disable-next-line no-await-in-loop -- each writer writes one connector after the other
        const answer = await call(victim, "POST", "/v1/connectors", {
          key: admin.key,
          body: connectorPayload(name)
        }).catch(() => undefined)
        if (answer?.status === 201) acknowledged.push(name)
        if (acknowledged.length >= 20 && !killed) {
          killed = true
          victim.child.kill("SIGKILL")
        }
      }
    }
    await Promise.all([writer(), writer(), writer(), writer()])
    await victim.exited
    assert.isAtLeast(acknowledged.length, 20)
    // Every acknowledged connector is there, read through another daemon.
    const names = new Set<string>()
    let cursor: string | null = null
    do {
      // oxlint-disable-next-line no-await-in-loop -- pages follow cursors
      const page = await call(daemonA, "GET", `/v1/connectors?limit=100${cursor === null ? "" : `&cursor=${cursor}`}`, {
        key: admin.key
      })
      assert.strictEqual(page.status, 200, page.text)
      for (const c of page.json.data as Array<{ name: string }>) names.add(c.name)
      cursor = page.json.next_cursor
    } while (cursor !== null)
    for (const name of acknowledged) assert.isTrue(names.has(name), `acknowledged ${name} is missing`)
  })
})

// The API key store on PostgreSQL keeps digests only.
describe.skipIf(skip !== undefined)("API keys on PostgreSQL", () => {
  it("stores no key, only its digest", async () => {
    const rows = await query(url, "SELECT * FROM api_keys")
    const secret = secretOf(admin.key)
    assert.isAbove(rows.length, 0)
    assert.notInclude(JSON.stringify(rows), secret)
  })
})
