/**
 * The scenarios of the Switchboard application service: connectors, credentials per scope, connections,
 * resolution of what a call sends, pagination, policy and audit. Every way of getting the service runs the same
 * scenarios (`switchboardScenarios(name, options)`), so they agree on results and errors: embedded over the
 * memory store (test/service/Switchboard.test.ts) and through the daemon (test/service/Remote.test.ts).
 * `options.run` provides a fresh service (empty store) to one scenario. The daemon does not offer `resolveCall`
 * (it would hand secrets out of the daemon), so scenarios about it are registered only with `options.resolves`,
 * and the other scenarios check it only then. Scenarios run with the real clock (`it.live`): the daemon needs
 * real sockets.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Base64 from "effect/encoding/Base64"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"

export interface ScenarioOptions {
  /** Runs one scenario against a fresh `Switchboard` service over an empty store. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, Switchboard.Switchboard>) => Effect.Effect<A, unknown>
  /** Whether the service offers `resolveCall` (embedded: yes; through the daemon: no). */
  readonly resolves: boolean
}

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

const freshdesk = {
  name: "freshdesk",
  display_name: "Freshdesk",
  auth_patterns: [
    {
      type: "BASIC",
      fields: [{ field_name: "username", label: "API key", input_type: "password" }],
      auth_field_mutations: { password: { default: "X" }, username: { suffix: "/token" } }
    }
  ],
  proxy_url: "https://example.freshdesk.com/api/v2",
  proxy_enabled: true
}

const header = (call: Switchboard.ResolvedCall, name: string) => {
  const value = call.auth.headers[name]
  return value === undefined ? undefined : Redacted.value(value)
}

/** Registers the scenarios under `name`, each run through `options.run`. */
export const switchboardScenarios = (name: string, options: ScenarioOptions) =>
  describe(name, () => {
    /** One scenario: `body` gets the service over a fresh, empty store. */
    const scenario = <E>(title: string, body: (sb: Switchboard.Switchboard["Service"]) => Effect.Effect<void, E>) =>
      it.live(title, () =>
        options.run(
          Effect.gen(function* () {
            yield* body(yield* Switchboard.Switchboard)
          })
        )
      )

    describe("connectors", () => {
      scenario("the Asana payload round-trips through create and get", (sb) =>
        Effect.gen(function* () {
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

      scenario("names are unique per organization", (sb) =>
        Effect.gen(function* () {
          yield* sb.createConnector(asana)
          const again = yield* Effect.flip(sb.createConnector(asana))
          assert.strictEqual(again._tag, "NameTaken")
          assert.strictEqual(again.code, "name_taken")
          assert.strictEqual(again.status, 409)
          const other = yield* sb.createConnector(asana).pipe(as({ ...admin, org: "other" }))
          assert.strictEqual(other.name, "my-asana")
        })
      )

      scenario("an update makes a new immutable version; old versions stay readable", (sb) =>
        Effect.gen(function* () {
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

      scenario("an update is validated as a whole connector", (sb) =>
        Effect.gen(function* () {
          const c = yield* sb.createConnector(apiKeyConnector)
          const bad = yield* Effect.flip(sb.updateConnector(c.id, { proxy_url: "https://{{tenant}}/api" }))
          assert.strictEqual(bad.code, "validation_failed")
          assert.include(bad.message, "tenant")
          assert.strictEqual((yield* sb.getConnector(c.id)).version, 1)
        })
      )

      scenario("a bad payload is refused and nothing is stored", (sb) =>
        Effect.gen(function* () {
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

      scenario("keyset pagination walks every connector once, with filters", (sb) =>
        Effect.gen(function* () {
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

      scenario("a tampered cursor, or one reused with other filters, is a 400 invalid_cursor", (sb) =>
        Effect.gen(function* () {
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

      scenario("a connector in use cannot be deleted (409); after its connections go, it can", (sb) =>
        Effect.gen(function* () {
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

      scenario("authentication methods describe each pattern", (sb) =>
        Effect.gen(function* () {
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
    })

    describe("credentials, connections and resolution", () => {
      // The point of these is what `resolveCall` hands back.
      if (options.resolves) {
        scenario("user → workspace → organization: the nearest credential wins", (sb) =>
          Effect.gen(function* () {
            yield* sb.createConnector(apiKeyConnector).pipe(as(admin))
            const values = (key: string) => ({ values: { api_key: key, domain: "api.acme.test" } })
            yield* sb.setCredential("acme-api", "organization", values("org-key-000000")).pipe(as(admin))
            const conn = yield* sb
              .createConnection("acme-api", { name: "Shared", access_scope: "organizational" })
              .pipe(as(alice))
            assert.strictEqual(conn.status, "active")
            const keyFor = (p: Principal.Principal) =>
              Effect.map(sb.resolveCall(conn.id).pipe(as(p)), (call) => header(call, "X-API-Key"))
            assert.strictEqual(yield* keyFor(alice), "org-key-000000")
            yield* sb.setCredential("acme-api", "workspace", values("ws-key-0000000")).pipe(as(alice))
            assert.strictEqual(yield* keyFor(alice), "ws-key-0000000")
            yield* sb.setCredential("acme-api", "user", values("alice-key-0000")).pipe(as(alice))
            assert.strictEqual(yield* keyFor(alice), "alice-key-0000")
            // Bob uses the same organizational connection with his own scope chain.
            assert.strictEqual(yield* keyFor(bob), "ws-key-0000000")
            const call = yield* sb.resolveCall(conn.id).pipe(as(bob))
            assert.strictEqual(call.baseUrl, "https://api.acme.test/api/v1")
            assert.deepStrictEqual(call.source._tag, "Stored")
          })
        )

        scenario("service accounts never use a user's credential", (sb) =>
          Effect.gen(function* () {
            yield* sb.createConnector(apiKeyConnector).pipe(as(admin))
            yield* sb
              .setCredential("acme-api", "user", { values: { api_key: "alice-key-0000", domain: "a.test" } })
              .pipe(as(alice))
            const conn = yield* sb
              .createConnection("acme-api", {
                name: "Robot",
                access_scope: "organizational",
                is_service_account: true
              })
              .pipe(as(alice))
            assert.strictEqual(conn.status, "pending_auth")
            const missing = yield* Effect.flip(sb.resolveCall(conn.id).pipe(as(alice)))
            assert.strictEqual(missing.code, "credential_missing")
            yield* sb
              .setCredential("acme-api", "organization", { values: { api_key: "svc-key-00000", domain: "s.test" } })
              .pipe(as(admin))
            const call = yield* sb.resolveCall(conn.id).pipe(as(alice))
            assert.strictEqual(header(call, "X-API-Key"), "svc-key-00000")
          })
        )
      }

      scenario(
        options.resolves
          ? "a personal connection is invisible and unusable for others"
          : "a personal connection is invisible to others",
        (sb) =>
          Effect.gen(function* () {
            yield* sb.createConnector(apiKeyConnector).pipe(as(admin))
            const conn = yield* sb
              .createConnection("acme-api", {
                name: "Mine",
                security: { api_key: "mine-key-00000", domain: "m.test" }
              })
              .pipe(as(alice))
            assert.strictEqual(conn.access_scope, "personal")
            const notFound = yield* Effect.flip(sb.getConnection(conn.id).pipe(as(bob)))
            assert.strictEqual(notFound.code, "connection_not_found")
            if (options.resolves) {
              const notUsable = yield* Effect.flip(sb.resolveCall(conn.id).pipe(as(bob)))
              assert.strictEqual(notUsable.code, "connection_not_found")
            }
            assert.strictEqual((yield* sb.listConnections().pipe(as(bob))).data.length, 0)
            assert.strictEqual((yield* sb.listConnections().pipe(as(alice))).data.length, 1)
          })
      )

      if (options.resolves) {
        scenario("inline security, field mutations and pre-filled parameters shape the call", (sb) =>
          Effect.gen(function* () {
            yield* sb.createConnector(freshdesk)
            const conn = yield* sb.createConnection("freshdesk", {
              name: "Support desk",
              security: { username: "abcdef123456" },
              parameters: { query: { per_page: "100" }, header: { "X-Team": "support" } },
              headers: { "X-Routing-Secret": "route-secret-123" }
            })
            assert.strictEqual(conn.has_security, true)
            assert.deepStrictEqual(conn.header_names, ["X-Routing-Secret"])
            const call = yield* sb.resolveCall("Support desk")
            assert.strictEqual(header(call, "Authorization"), `Basic ${Base64.encode("abcdef123456/token:X")}`)
            assert.deepStrictEqual(call.query, { per_page: "100" })
            assert.deepStrictEqual(
              Object.fromEntries(Object.entries(call.headers).map(([k, v]) => [k, Redacted.value(v)])),
              { "X-Team": "support", "X-Routing-Secret": "route-secret-123" }
            )
            assert.strictEqual(call.source._tag, "Inline")
          })
        )

        scenario("a server override replaces the templated proxy URL", (sb) =>
          Effect.gen(function* () {
            yield* sb.createConnector(apiKeyConnector)
            yield* sb.createConnection("acme-api", {
              name: "Staging",
              security: { api_key: "k-123456789", domain: "api.acme.test" },
              servers: [{ url: "https://staging.acme.test/api/v1", description: "staging" }]
            })
            assert.strictEqual((yield* sb.resolveCall("Staging")).baseUrl, "https://staging.acme.test/api/v1")
          })
        )
      }

      scenario(
        options.resolves
          ? "pinned connector versions are what calls use; a version that does not exist is refused"
          : "pinned connector versions: a version that does not exist is refused",
        (sb) =>
          Effect.gen(function* () {
            yield* sb.createConnector(apiKeyConnector)
            const pinned = yield* sb.createConnection("acme-api", {
              name: "Pinned",
              connector_version: 1,
              security: { api_key: "k-123456789", domain: "api.acme.test" }
            })
            assert.strictEqual(pinned.connector_version, 1)
            yield* sb.updateConnector("acme-api", { proxy_url: "https://{{domain}}/api/v2" })
            if (options.resolves) {
              assert.strictEqual((yield* sb.resolveCall("Pinned")).baseUrl, "https://api.acme.test/api/v1")
            }
            const noSuch = yield* Effect.flip(sb.createConnection("acme-api", { name: "Future", connector_version: 9 }))
            assert.strictEqual(noSuch.code, "connector_version_not_found")
          })
      )

      scenario("credential values are checked against the auth pattern", (sb) =>
        Effect.gen(function* () {
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

      scenario("credentials are replaced by name, listed masked, and deleted", (sb) =>
        Effect.gen(function* () {
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
    })

    describe("policy", () => {
      scenario(options.resolves ? "viewers read but never write or call" : "viewers read but never write", (sb) =>
        Effect.gen(function* () {
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
            ...(options.resolves ? [sb.resolveCall(conn.id)] : []),
            sb.listAudit()
          ]) {
            const denied = yield* Effect.flip(attempt.pipe(as(viewer)))
            assert.strictEqual(denied.code, "forbidden")
            assert.strictEqual(denied.status, 403)
          }
        })
      )

      scenario("organization credentials are an admin's to set", (sb) =>
        Effect.gen(function* () {
          yield* sb.createConnector(apiKeyConnector).pipe(as(admin))
          const denied = yield* Effect.flip(
            sb.setCredential("acme-api", "organization", { values: { api_key: "x", domain: "d" } }).pipe(as(alice))
          )
          assert.strictEqual(denied.code, "forbidden")
        })
      )
    })

    describe("audit", () => {
      scenario("every change is recorded, newest first, without secrets", (sb) =>
        Effect.gen(function* () {
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
    })

    describe("data connectors", () => {
      scenario("catalog connectors take config and catalog credential fields", (sb) =>
        Effect.gen(function* () {
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
          yield* sb.setCredential("warehouse", "organization", {
            values: { username: "svc", password: "pw-123456789" }
          })
          const conn = yield* sb.createConnection("warehouse", { name: "Warehouse", access_scope: "organizational" })
          assert.strictEqual(conn.status, "active")
          if (options.resolves) {
            const call = yield* sb.resolveCall(conn.id)
            assert.strictEqual(Redacted.value(call.values["password"] as Redacted.Redacted<string>), "pw-123456789")
            assert.deepStrictEqual(call.auth, { headers: {}, query: {} })
          }
        })
      )
    })

    describe("ids and time", () => {
      scenario("ids are prefixed and time-sortable", (sb) =>
        Effect.gen(function* () {
          const c = yield* sb.createConnector(apiKeyConnector)
          assert.isTrue(Result.isSuccess(Result.succeed(c.id)))
          assert.match(c.id, /^ctr_[0-9A-HJKMNP-TV-Z]{26}$/)
        })
      )
    })
  })
