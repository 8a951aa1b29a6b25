/**
 * The `Switchboard` service through the daemon (`Client.layerRemote`) passes the scenarios of
 * test/service/Switchboard.test.ts that do not hand secrets back (`resolveCall` stays in the daemon), with the same
 * assertions: each test gets a fresh in-process daemon on its own socket, and the calling fiber's principal
 * travels as trusted headers. Also: typed errors come back as the core error classes, and a missing daemon is a
 * `StoreError` naming the socket.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Errors from "@switchboard/core/Errors"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import * as Client from "../src/Client.ts"
import { serverLayer, tempDir } from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0

const run = <A, E>(effect: Effect.Effect<A, E, Switchboard.Switchboard | Client.DaemonClient>) =>
  Effect.suspend(() => {
    const socket = Path.join(root, `d${n++}`, "switchboard.sock")
    return effect.pipe(
      Effect.provide(
        Layer.merge(
          serverLayer(socket, { trustHeaders: true, principal: Principal.local("local") }),
          Client.layerRemote(socket, { forwardPrincipal: true })
        )
      )
    )
  })

const as = (principal: Principal.Principal) => Effect.provideService(Principal.CurrentPrincipal, principal)

const alice: Principal.Principal = { org: "acme", workspace: "eng", user: "alice", role: "editor" }
const bob: Principal.Principal = { org: "acme", workspace: "eng", user: "bob", role: "editor" }
const admin: Principal.Principal = { org: "acme", workspace: "eng", user: "root", role: "admin" }
const viewer: Principal.Principal = { org: "acme", workspace: "eng", user: "val", role: "viewer" }

const asana = {
  display_name: "My Asana",
  description: "Connect to Asana. Manage tasks, projects, teams, and workflow automation",
  auth_patterns: [
    {
      type: "OAUTH",
      display_name: "OAuth 2.0",
      description: "Authenticate with Asana using OAuth 2.0 for comprehensive project management",
      fields: [],
      oauth_config: {
        authorize_uri: "https://app.asana.com/-/oauth_authorize",
        token_uri: "https://app.asana.com/-/oauth_token",
        user_info_uri: "https://app.asana.com/api/1.0/users/me",
        available_scopes: [
          { scope: "profile", display_name: "Profile", description: "Access user profile information", required: true },
          { scope: "email", display_name: "Email", description: "Access user email address", required: true }
        ]
      }
    }
  ],
  proxy_url: "https://app.asana.com/api",
  proxy_enabled: true
}

const apiKeyConnector = {
  name: "acme-api",
  display_name: "Acme API",
  auth_patterns: [
    {
      type: "API_KEY",
      display_name: "API key",
      fields: [
        { field_name: "api_key", label: "API key", input_type: "password", required: true },
        { field_name: "domain", label: "Domain", input_type: "text", required: true }
      ],
      auth_header_key_override: "X-API-Key"
    }
  ],
  proxy_url: "https://{{domain}}/api/v1",
  proxy_enabled: true
}

describe("connectors through the daemon", () => {
  it.live("the Asana payload round-trips through create and get", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const created = yield* sb.createConnector(asana)
        assert.strictEqual(created.name, "my-asana")
        assert.strictEqual(created.kind, "http")
        assert.strictEqual(created.version, 1)
        assert.match(created.id, /^ctr_/)
        const byName = yield* sb.getConnector("my-asana")
        const byId = yield* sb.getConnector(created.id)
        assert.deepStrictEqual(byName, created)
        assert.deepStrictEqual(byId, created)
        const {
          id: _id,
          name: _name,
          kind: _kind,
          visibility: _v,
          version: _ver,
          created_at: _c,
          updated_at: _u,
          ...rest
        } = byId
        assert.deepStrictEqual<unknown>(rest, asana)
      })
    )
  )

  it.live("names are unique per organization", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(asana)
        const again = yield* Effect.flip(sb.createConnector(asana))
        assert.strictEqual(again._tag, "NameTaken")
        assert.strictEqual(again.code, "name_taken")
        assert.strictEqual(again.status, 409)
        const other = yield* sb.createConnector(asana).pipe(as({ ...admin, org: "other" }))
        assert.strictEqual(other.name, "my-asana")
      })
    )
  )

  it.live("an update makes a new immutable version; old versions stay readable", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const v1 = yield* sb.createConnector(apiKeyConnector)
        const v2 = yield* sb.updateConnector(v1.id, { description: "now with a description" })
        assert.strictEqual(v2.version, 2)
        assert.strictEqual(v2.description, "now with a description")
        assert.strictEqual(v2.created_at, v1.created_at)
        assert.deepStrictEqual(yield* sb.getConnectorVersion("acme-api", 1), v1)
        assert.deepStrictEqual(yield* sb.getConnector("acme-api"), v2)
        const missing = yield* Effect.flip(sb.getConnectorVersion("acme-api", 3))
        assert.strictEqual(missing.code, "connector_version_not_found")
      })
    )
  )

  it.live("an update is validated as a whole connector", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const c = yield* sb.createConnector(apiKeyConnector)
        const bad = yield* Effect.flip(sb.updateConnector(c.id, { proxy_url: "https://{{tenant}}/api" }))
        assert.strictEqual(bad.code, "validation_failed")
        assert.include(bad.message, "tenant")
        assert.strictEqual((yield* sb.getConnector(c.id)).version, 1)
      })
    )
  )

  it.live("a bad payload is refused and nothing is stored", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const bad = yield* Effect.flip(sb.createConnector({ ...asana, icon_url: "http://example.com/i.svg" }))
        assert.strictEqual(bad._tag, "ValidationFailed")
        assert.strictEqual(bad.status, 422)
        assert.deepInclude((bad.details as { issues: Array<unknown> }).issues, {
          path: "icon_url",
          message: "expected an https:// URL"
        })
        assert.strictEqual((yield* sb.listConnectors()).data.length, 0)
      })
    )
  )

  it.live("keyset pagination walks every connector once, with filters", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        for (let i = 0; i < 45; i++) {
          yield* sb.createConnector({ ...apiKeyConnector, name: `api-${String(i).padStart(2, "0")}` })
        }
        yield* sb.createConnector({
          name: "warehouse",
          kind: "postgresql",
          config: { host: "db", port: 5432, database: "x" }
        })
        const seen: Array<string> = []
        let cursor: string | undefined
        let pages = 0
        do {
          const page = yield* sb.listConnectors({ limit: 20, name_prefix: "api-", ...(cursor ? { cursor } : {}) })
          seen.push(...page.data.map((c) => c.name))
          cursor = page.next_cursor ?? undefined
          assert.strictEqual(page.has_more, page.next_cursor !== null)
          pages++
        } while (cursor !== undefined)
        assert.strictEqual(pages, 3)
        assert.strictEqual(seen.length, 45)
        assert.strictEqual(new Set(seen).size, 45)
        const pg = yield* sb.listConnectors({ kind: "postgresql" })
        assert.deepStrictEqual(
          pg.data.map((c) => c.name),
          ["warehouse"]
        )
        assert.strictEqual((yield* sb.listConnectors()).data.length, 20)
      })
    )
  )

  it.live("a tampered cursor, or one reused with other filters, is a 400 invalid_cursor", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        for (let i = 0; i < 3; i++) yield* sb.createConnector({ ...apiKeyConnector, name: `api-${i}` })
        const first = yield* sb.listConnectors({ limit: 1 })
        const cursor = first.next_cursor as string
        const flipped = cursor.slice(0, 5) + (cursor[5] === "A" ? "B" : "A") + cursor.slice(6)
        const tampered = yield* Effect.flip(sb.listConnectors({ limit: 1, cursor: flipped }))
        assert.strictEqual(tampered.code, "invalid_cursor")
        assert.strictEqual(tampered.status, 400)
        const refiltered = yield* Effect.flip(sb.listConnectors({ limit: 1, cursor, kind: "http" }))
        assert.strictEqual(refiltered.code, "invalid_cursor")
        const badLimit = yield* Effect.flip(sb.listConnectors({ limit: 500 }))
        assert.strictEqual(badLimit.code, "validation_failed")
      })
    )
  )

  it.live("a connector in use cannot be deleted (409); after its connections go, it can", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector)
        const conn = yield* sb.createConnection("acme-api", {
          name: "Prod",
          security: { api_key: "k-123456789", domain: "api.acme.test" }
        })
        const inUse = yield* Effect.flip(sb.deleteConnector("acme-api"))
        assert.strictEqual(inUse._tag, "ConnectorInUse")
        assert.strictEqual(inUse.status, 409)
        yield* sb.deleteConnection(conn.id)
        yield* sb.deleteConnector("acme-api")
        const gone = yield* Effect.flip(sb.getConnector("acme-api"))
        assert.strictEqual(gone.code, "connector_not_found")
        assert.strictEqual(gone.status, 404)
      })
    )
  )

  it.live("authentication methods describe each pattern", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector)
        const methods = yield* sb.authenticationMethods("acme-api")
        assert.strictEqual(methods.metadata.length, 1)
        const [m] = methods.metadata
        assert.strictEqual(m?.authenticationType, "API_KEY")
        assert.strictEqual(m?.authConfigRequired, false)
        assert.deepStrictEqual(m?.sampleInput, {
          name: "default",
          auth_type: "API_KEY",
          values: { api_key: "<api_key>", domain: "example.com" }
        })
      })
    )
  )
})

describe("credentials and connections through the daemon", () => {
  it.live("a personal connection is invisible to others", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector).pipe(as(admin))
        const conn = yield* sb
          .createConnection("acme-api", { name: "Mine", security: { api_key: "mine-key-00000", domain: "m.test" } })
          .pipe(as(alice))
        assert.strictEqual(conn.access_scope, "personal")
        const notFound = yield* Effect.flip(sb.getConnection(conn.id).pipe(as(bob)))
        assert.strictEqual(notFound.code, "connection_not_found")
        assert.strictEqual((yield* sb.listConnections().pipe(as(bob))).data.length, 0)
        assert.strictEqual((yield* sb.listConnections().pipe(as(alice))).data.length, 1)
      })
    )
  )

  it.live("credential values are checked against the auth pattern", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector)
        const bad = yield* Effect.flip(
          sb.setCredential("acme-api", "user", { values: { apikey: "x", domain: "d.test" } })
        )
        assert.strictEqual(bad.code, "validation_failed")
        const paths = (bad.details as { issues: Array<{ path: string }> }).issues.map((i) => i.path)
        assert.includeMembers(paths, ["values.apikey", "values.api_key"])
        const wrongType = yield* Effect.flip(
          sb.setCredential("acme-api", "user", { auth_type: "BEARER", values: { token: "x" } })
        )
        assert.strictEqual(wrongType.code, "validation_failed")
      })
    )
  )

  it.live("credentials are replaced by name, listed masked, and deleted", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector)
        const first = yield* sb.setCredential("acme-api", "user", {
          values: { api_key: "first-key-0001", domain: "d.test" }
        })
        const second = yield* sb.setCredential("acme-api", "user", {
          values: { api_key: "second-key-002", domain: "d.test" }
        })
        assert.strictEqual(second.id, first.id)
        const list = yield* sb.listCredentials("acme-api", "user")
        assert.strictEqual(list.length, 1)
        assert.deepStrictEqual(list[0]?.values, { api_key: "se***02", domain: "****" })
        assert.strictEqual(list[0]?.owner.user, "local")
        yield* sb.deleteCredential("acme-api", "user", "default")
        const again = yield* Effect.flip(sb.deleteCredential("acme-api", "user", "default"))
        assert.strictEqual(again.code, "credential_not_found")
      })
    )
  )

  it.live("pinned connector versions: a version that does not exist is refused", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector)
        const pinned = yield* sb.createConnection("acme-api", {
          name: "Pinned",
          connector_version: 1,
          security: { api_key: "k-123456789", domain: "api.acme.test" }
        })
        assert.strictEqual(pinned.connector_version, 1)
        const noSuch = yield* Effect.flip(sb.createConnection("acme-api", { name: "Future", connector_version: 9 }))
        assert.strictEqual(noSuch.code, "connector_version_not_found")
      })
    )
  )

  it.live("catalog connectors take config and catalog credential fields", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const pg = yield* sb.createConnector({
          name: "warehouse",
          kind: "postgresql",
          config: { host: "db.internal", port: 5432, database: "analytics" }
        })
        assert.strictEqual(pg.display_name, "warehouse")
        const missing = yield* Effect.flip(
          sb.createConnector({ name: "bad", kind: "postgresql", config: { host: "db", port: 5432 } })
        )
        assert.deepInclude((missing.details as { issues: Array<unknown> }).issues, {
          path: "config.database",
          message: 'postgresql requires config field "database"'
        })
        yield* sb.setCredential("warehouse", "organization", { values: { username: "svc", password: "pw-123456789" } })
        const conn = yield* sb.createConnection("warehouse", { name: "Warehouse", access_scope: "organizational" })
        assert.strictEqual(conn.status, "active")
      })
    )
  )
})

describe("policy and audit through the daemon", () => {
  it.live("viewers read but never write", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector).pipe(as(admin))
        const conn = yield* sb
          .createConnection("acme-api", {
            name: "Org",
            access_scope: "organizational",
            security: { api_key: "k-123456789", domain: "api.acme.test" }
          })
          .pipe(as(admin))
        assert.strictEqual((yield* sb.listConnectors().pipe(as(viewer))).data.length, 1)
        assert.strictEqual((yield* sb.getConnection(conn.id).pipe(as(viewer))).id, conn.id)
        for (const attempt of [
          sb.createConnector({ ...apiKeyConnector, name: "x" }),
          sb.updateConnector("acme-api", { description: "x" }),
          sb.deleteConnector("acme-api"),
          sb.setCredential("acme-api", "user", { values: { api_key: "x", domain: "d" } }),
          sb.createConnection("acme-api", { name: "V" }),
          sb.deleteConnection(conn.id),
          sb.listAudit()
        ]) {
          const denied = yield* Effect.flip(attempt.pipe(as(viewer)))
          assert.strictEqual(denied.code, "forbidden")
          assert.strictEqual(denied.status, 403)
        }
      })
    )
  )

  it.live("organization credentials are an admin's to set", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector).pipe(as(admin))
        const denied = yield* Effect.flip(
          sb.setCredential("acme-api", "organization", { values: { api_key: "x", domain: "d" } }).pipe(as(alice))
        )
        assert.strictEqual(denied.code, "forbidden")
      })
    )
  )

  it.live("every change is recorded, newest first, without secrets", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        yield* sb.createConnector(apiKeyConnector)
        yield* sb.setCredential("acme-api", "user", { values: { api_key: "audit-canary-key", domain: "d.test" } })
        yield* sb.createConnection("acme-api", { name: "Audited" })
        const page = yield* sb.listAudit()
        assert.deepStrictEqual(
          page.data.map((r) => r.action),
          ["connection.create", "credential.set", "connector.create"]
        )
        assert.notInclude(JSON.stringify(page), "audit-canary-key")
        const second = yield* sb.listAudit({
          limit: 1,
          cursor: (yield* sb.listAudit({ limit: 1 })).next_cursor as string
        })
        assert.strictEqual(second.data[0]?.action, "credential.set")
      })
    )
  )
})

describe("remote specifics", () => {
  it.live("errors are the core error classes; calls that hand secrets back are not offered", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const client = yield* Client.DaemonClient
        assert.isTrue((yield* client.health()).ok)
        const missing = yield* Effect.flip(sb.getConnector("nope"))
        assert.instanceOf(missing, Errors.ConnectorNotFound)
        assert.deepStrictEqual(missing.details, { connector: "nope" })
        const resolve = yield* Effect.flip(sb.resolveCall("anything"))
        assert.instanceOf(resolve, Errors.InvalidRequest)
        assert.include(resolve.message, "not available through the daemon")
        const version = yield* Effect.flip(sb.getConnectorVersion("nope", 0))
        assert.strictEqual(version.code, "connector_version_not_found")
        const notJson = yield* Effect.flip(sb.createConnector({ n: 10n }))
        assert.strictEqual(notJson.code, "validation_failed")
      })
    )
  )

  it.live("no daemon: a StoreError naming the socket", () =>
    Effect.gen(function* () {
      const socket = Path.join(root, "nobody", "switchboard.sock")
      const sb = yield* Switchboard.Switchboard
      assert.isFalse(yield* Client.isRunning(socket))
      const error = yield* Effect.flip(sb.listConnectors())
      assert.instanceOf(error, Errors.StoreError)
      assert.include(error.message, socket)
    }).pipe(Effect.provide(Client.layerRemote(Path.join(root, "nobody", "switchboard.sock"))))
  )
})
