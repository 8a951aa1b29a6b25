/**
 * The behavioural suite of the store ports (ConnectorStore, CredentialVault, ConnectionStore, AuditLog). Every
 * adapter runs the same tests (`storeSuite(name, makeLayer)`), so they agree on ordering, filters, uniqueness,
 * version history, replace semantics and errors. `makeLayer` is called once per test: each test starts empty.
 */
import { assert, describe, it } from "@effect/vitest"
import * as AuditLog from "@switchboard/core/AuditLog"
import type { AuditRecord } from "@switchboard/core/AuditLog"
import type { Connection, Secrets } from "@switchboard/core/Connection"
import { ConnectionStore } from "@switchboard/core/ConnectionStore"
import type { Connector } from "@switchboard/core/Connector"
import { ConnectorStore } from "@switchboard/core/ConnectorStore"
import type { Credential } from "@switchboard/core/Credential"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"

export type Stores = ConnectorStore | CredentialVault | ConnectionStore | AuditLog.AuditLog

// ---------------------------------------------------------------------------------------------------------------
// Fixtures (also used by the SQLite-only tests)

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

/** A valid prefixed id whose order is the order of `n`. */
export const testId = (prefix: "ctr" | "cred" | "conn" | "aud", n: number): string => {
  let out = ""
  let rest = n
  for (let i = 0; i < 26; i++) {
    out = alphabet[rest % 32] + out
    rest = Math.floor(rest / 32)
  }
  return `${prefix}_${out}`
}

export const ORG = "org_a"
export const OTHER_ORG = "org_b"
const T0 = "2025-01-01T00:00:00.000Z"
const T1 = "2025-01-02T00:00:00.000Z"

export const makeConnector = (n: number, overrides: Partial<Connector> = {}): Connector => ({
  id: testId("ctr", n),
  name: `connector-${n}`,
  display_name: `Connector ${n}`,
  kind: "http",
  proxy_url: "https://api.example.com/{{region}}/v1",
  auth_patterns: [
    {
      type: "BEARER",
      fields: [{ field_name: "token", label: "Token", input_type: "password", required: true }],
      account_fields: [{ field_name: "region" }]
    }
  ],
  metadata: { team: "platform" },
  visibility: "private",
  version: 1,
  created_at: T0,
  updated_at: T0,
  ...overrides
})

export const makeConnection = (n: number, connectorId: string, overrides: Partial<Connection> = {}): Connection => ({
  id: testId("conn", n),
  name: `Connection ${n}`,
  connector_id: connectorId,
  connector_version: null,
  org: ORG,
  workspace: "ws_1",
  owner: "alice",
  access_scope: "organizational",
  is_service_account: false,
  auth_type: "BEARER",
  credential: null,
  parameters: { path: { region: "eu" }, header: { "x-team": "platform" } },
  servers: [{ url: "https://eu.example.com", description: "EU" }],
  allow_private_network: false,
  has_security: true,
  header_names: ["x-api-secret"],
  status: "active",
  account_label: null,
  last_tested_at: null,
  last_error: null,
  created_at: T0,
  updated_at: T0,
  ...overrides
})

export const makeCredential = (n: number, connectorId: string, overrides: Partial<Credential> = {}): Credential => ({
  id: testId("cred", n),
  connector_id: connectorId,
  scope: "organization",
  owner: { org: ORG },
  name: "default",
  auth_type: "BEARER",
  values: { token: Redacted.make(`token-${n}`), region: Redacted.make("eu") },
  created_at: T0,
  updated_at: T0,
  ...overrides
})

export const makeSecrets = (token: string): Secrets => ({
  security: { token: Redacted.make(token) },
  headers: { "x-api-secret": Redacted.make(`header-${token}`) }
})

export const makeAudit = (n: number, overrides: Partial<AuditRecord> = {}): AuditRecord => ({
  id: testId("aud", n),
  at: T0,
  org: ORG,
  workspace: "ws_1",
  actor: "alice",
  action: "connection.proxy",
  outcome: "success",
  ...overrides
})

/** Secret values revealed, for comparing (two `Redacted` compare equal whatever they hold). */
export const reveal = (values: Readonly<Record<string, Redacted.Redacted<string>>>): Record<string, string> =>
  Object.fromEntries(Object.entries(values).map(([name, value]) => [name, Redacted.value(value)]))

const plainCredential = (credential: Credential) => ({ ...credential, values: reveal(credential.values) })
const plainSecrets = (secrets: Secrets) => ({ security: reveal(secrets.security), headers: reveal(secrets.headers) })

const some = <A>(option: Option.Option<A>): A => {
  assert.isTrue(Option.isSome(option), "expected Some")
  return Option.getOrThrow(option)
}

const ids = (rows: ReadonlyArray<{ readonly id: string }>) => rows.map((row) => row.id)

const sortedIds = (rows: ReadonlyArray<{ readonly id: string }>) => ids(rows).sort()

// ---------------------------------------------------------------------------------------------------------------

/** Runs the behavioural suite against the stores `makeLayer` provides; a fresh layer per test. */
export const storeSuite = <E>(name: string, makeLayer: () => Layer.Layer<Stores, E>) =>
  describe(name, () => {
    const test = (title: string, body: () => Effect.Effect<void, unknown, Stores>) =>
      it.effect(title, () => Effect.provide(body(), makeLayer()))

    describe("ConnectorStore", () => {
      test("insert, then get, getByName and getVersion return it; other orgs see nothing", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const connector = makeConnector(1)
          yield* store.insert(ORG, connector)
          assert.deepStrictEqual(some(yield* store.get(ORG, connector.id)), connector)
          assert.deepStrictEqual(some(yield* store.getByName(ORG, connector.name)), connector)
          assert.deepStrictEqual(some(yield* store.getVersion(ORG, connector.id, 1)), connector)
          assert.isTrue(Option.isNone(yield* store.getVersion(ORG, connector.id, 2)))
          assert.isTrue(Option.isNone(yield* store.getVersion(ORG, connector.id, 0)))
          assert.isTrue(Option.isNone(yield* store.get(ORG, testId("ctr", 2))))
          assert.isTrue(Option.isNone(yield* store.getByName(ORG, "nope")))
          assert.isTrue(Option.isNone(yield* store.get(OTHER_ORG, connector.id)))
          assert.isTrue(Option.isNone(yield* store.getByName(OTHER_ORG, connector.name)))
          assert.isTrue(Option.isNone(yield* store.getVersion(OTHER_ORG, connector.id, 1)))
        }))

      test("round-trips every optional field", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const mcp = makeConnector(1, {
            kind: "mcp",
            description: "An MCP server run locally",
            icon_url: "https://example.com/icon.png",
            command: { program: "npx", args: ["-y", "server"], env: { GITHUB_TOKEN: "{{token}}" } },
            proxy_enabled: false,
            visibility: "organization"
          })
          const { proxy_url: _proxy, ...withoutUrl } = mcp
          const data = makeConnector(2, {
            kind: "postgresql",
            config: { host: "db.internal", port: 5432, ssl: true },
            auth_patterns: []
          })
          yield* store.insert(ORG, withoutUrl)
          yield* store.insert(ORG, data)
          assert.deepStrictEqual(some(yield* store.get(ORG, mcp.id)), withoutUrl)
          assert.deepStrictEqual(some(yield* store.get(ORG, data.id)), data)
        }))

      test("names are unique per organization, not across organizations", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          yield* store.insert(ORG, makeConnector(1, { name: "github" }))
          const error = yield* Effect.flip(store.insert(ORG, makeConnector(2, { name: "github" })))
          assert.strictEqual(error._tag, "NameTaken")
          assert.isTrue(Option.isNone(yield* store.get(ORG, testId("ctr", 2))))
          yield* store.insert(OTHER_ORG, makeConnector(3, { name: "github" }))
          assert.strictEqual(some(yield* store.getByName(OTHER_ORG, "github")).id, testId("ctr", 3))
          assert.strictEqual(some(yield* store.getByName(ORG, "github")).id, testId("ctr", 1))
        }))

      test("update stores the next version and keeps every earlier one", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const v1 = makeConnector(1)
          const v2 = { ...v1, display_name: "Second", version: 2, updated_at: T1 }
          const v3 = { ...v2, proxy_url: "https://api.example.com/v3", version: 3 }
          yield* store.insert(ORG, v1)
          yield* store.update(ORG, v2)
          yield* store.update(ORG, v3)
          assert.deepStrictEqual(some(yield* store.get(ORG, v1.id)), v3)
          assert.deepStrictEqual(some(yield* store.getByName(ORG, v1.name)), v3)
          assert.deepStrictEqual(some(yield* store.getVersion(ORG, v1.id, 1)), v1)
          assert.deepStrictEqual(some(yield* store.getVersion(ORG, v1.id, 2)), v2)
          assert.deepStrictEqual(some(yield* store.getVersion(ORG, v1.id, 3)), v3)
          assert.isTrue(Option.isNone(yield* store.getVersion(ORG, v1.id, 4)))
          assert.deepStrictEqual(yield* store.list(ORG, { limit: 10 }), [v3])
        }))

      test("update fails with VersionConflict unless the version is the latest + 1, ConnectorNotFound when gone", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const v1 = makeConnector(1)
          yield* store.insert(ORG, v1)
          yield* store.update(ORG, { ...v1, version: 2 })
          for (const version of [1, 2, 4]) {
            const stale = yield* Effect.flip(store.update(ORG, { ...v1, display_name: "stale", version }))
            assert.strictEqual(stale._tag, "VersionConflict")
            assert.strictEqual(stale.code, "version_conflict")
            assert.strictEqual(stale.status, 409)
          }
          const missing = yield* Effect.flip(store.update(ORG, makeConnector(9, { version: 2 })))
          assert.strictEqual(missing._tag, "ConnectorNotFound")
          const otherOrg = yield* Effect.flip(store.update(OTHER_ORG, { ...v1, version: 3 }))
          assert.strictEqual(otherOrg._tag, "ConnectorNotFound")
          assert.strictEqual(some(yield* store.get(ORG, v1.id)).version, 2)
          assert.isTrue(Option.isNone(yield* store.getVersion(ORG, v1.id, 3)))
        }))

      test("update can rename, not onto a name in use; the old name is free again", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const a = makeConnector(1, { name: "alpha" })
          const b = makeConnector(2, { name: "beta" })
          yield* store.insert(ORG, a)
          yield* store.insert(ORG, b)
          const error = yield* Effect.flip(store.update(ORG, { ...a, name: "beta", version: 2 }))
          assert.strictEqual(error._tag, "NameTaken")
          assert.strictEqual(some(yield* store.get(ORG, a.id)).version, 1)
          // Keeping its own name is no conflict.
          yield* store.update(ORG, { ...a, display_name: "Alpha 2", version: 2 })
          yield* store.update(ORG, { ...a, name: "gamma", version: 3 })
          assert.isTrue(Option.isNone(yield* store.getByName(ORG, "alpha")))
          assert.strictEqual(some(yield* store.getByName(ORG, "gamma")).id, a.id)
          yield* store.insert(ORG, makeConnector(3, { name: "alpha" }))
          assert.strictEqual(some(yield* store.getByName(ORG, "alpha")).id, testId("ctr", 3))
        }))

      test("list runs in id order with keyset pagination, kind and name prefix filters", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const kinds = ["http", "mcp", "postgresql"] as const
          const all = Array.from({ length: 25 }, (_, i) =>
            makeConnector(i + 1, {
              name: `${i % 2 === 0 ? "git" : "slack"}-${i + 1}`,
              kind: kinds[i % 3] as (typeof kinds)[number]
            })
          )
          // Inserted out of order: the list orders by id, not by insertion.
          for (const c of [...all].reverse()) yield* store.insert(ORG, c)
          yield* store.insert(OTHER_ORG, makeConnector(100, { name: "git-other" }))

          assert.deepStrictEqual(ids(yield* store.list(ORG, { limit: 100 })), ids(all))
          const pages: Array<string> = []
          let after: string | undefined
          for (;;) {
            const page = yield* store.list(ORG, { limit: 7, after })
            assert.isAtMost(page.length, 7)
            pages.push(...ids(page))
            if (page.length < 7) break
            after = page[page.length - 1]?.id
          }
          assert.deepStrictEqual(pages, ids(all))
          assert.deepStrictEqual(yield* store.list(ORG, { limit: 0 }), [])
          assert.deepStrictEqual(yield* store.list(ORG, { limit: 5, after: testId("ctr", 25) }), [])

          // Model check: any combination of filters gives what filtering the full list gives.
          const queries = fc.sample(
            fc.record({
              after: fc.option(fc.integer({ min: 0, max: 26 }), { nil: undefined }),
              limit: fc.integer({ min: 0, max: 30 }),
              kind: fc.option(fc.constantFrom(...kinds, "mongodb" as const), { nil: undefined }),
              namePrefix: fc.option(fc.constantFrom("", "g", "git-1", "slack-", "s", "x", "git-2"), { nil: undefined })
            }),
            { numRuns: 60, seed: 7 }
          )
          for (const q of queries) {
            const query = { ...q, after: q.after === undefined ? undefined : testId("ctr", q.after) }
            const expected = all
              .filter((c) => query.after === undefined || c.id > query.after)
              .filter((c) => query.kind === undefined || c.kind === query.kind)
              .filter((c) => query.namePrefix === undefined || c.name.startsWith(query.namePrefix))
              .slice(0, query.limit)
            assert.deepStrictEqual(yield* store.list(ORG, query), expected, JSON.stringify(query))
          }
          assert.deepStrictEqual(ids(yield* store.list(OTHER_ORG, { limit: 10 })), [testId("ctr", 100)])
        }))

      test("delete removes the connector, its versions and its credentials", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const vault = yield* CredentialVault
          const c = makeConnector(1)
          const keep = makeConnector(2)
          yield* store.insert(ORG, c)
          yield* store.insert(ORG, keep)
          yield* store.update(ORG, { ...c, version: 2 })
          yield* vault.put(makeCredential(1, c.id))
          yield* vault.put(makeCredential(2, c.id, { scope: "user", owner: { org: ORG, user: "alice" } }))
          yield* vault.put(makeCredential(3, keep.id))

          yield* store.delete(ORG, c.id)
          assert.isTrue(Option.isNone(yield* store.get(ORG, c.id)))
          assert.isTrue(Option.isNone(yield* store.getByName(ORG, c.name)))
          assert.isTrue(Option.isNone(yield* store.getVersion(ORG, c.id, 1)))
          assert.isTrue(Option.isNone(yield* store.getVersion(ORG, c.id, 2)))
          assert.deepStrictEqual(ids(yield* store.list(ORG, { limit: 10 })), [keep.id])
          assert.deepStrictEqual(yield* vault.list(c.id, "organization", { org: ORG }), [])
          assert.isTrue(
            Option.isNone(
              yield* vault.get({
                connectorId: c.id,
                scope: "user",
                owner: { org: ORG, user: "alice" },
                name: "default"
              })
            )
          )
          assert.strictEqual((yield* vault.list(keep.id, "organization", { org: ORG })).length, 1)
          // The name is free again.
          yield* store.insert(ORG, makeConnector(3, { name: c.name }))
        }))

      test("delete fails with ConnectorNotFound for a missing connector or another org's", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const c = makeConnector(1)
          yield* store.insert(ORG, c)
          assert.strictEqual((yield* Effect.flip(store.delete(ORG, testId("ctr", 9))))._tag, "ConnectorNotFound")
          assert.strictEqual((yield* Effect.flip(store.delete(OTHER_ORG, c.id)))._tag, "ConnectorNotFound")
          assert.isTrue(Option.isSome(yield* store.get(ORG, c.id)))
        }))

      test("delete is refused with ConnectorInUse while connections use the connector", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const connections = yield* ConnectionStore
          const vault = yield* CredentialVault
          const c = makeConnector(1)
          yield* store.insert(ORG, c)
          yield* vault.put(makeCredential(1, c.id))
          yield* connections.insert(makeConnection(1, c.id), makeSecrets("s1"))
          yield* connections.insert(
            makeConnection(2, c.id, { access_scope: "personal", owner: "bob" }),
            makeSecrets("s2")
          )

          const error = yield* Effect.flip(store.delete(ORG, c.id))
          assert.strictEqual(error._tag, "ConnectorInUse")
          assert.deepStrictEqual(error.details, { connections: [testId("conn", 1), testId("conn", 2)] })
          assert.isTrue(Option.isSome(yield* store.get(ORG, c.id)))
          assert.strictEqual((yield* vault.list(c.id, "organization", { org: ORG })).length, 1)

          yield* connections.delete(ORG, testId("conn", 1))
          assert.strictEqual((yield* Effect.flip(store.delete(ORG, c.id)))._tag, "ConnectorInUse")
          yield* connections.delete(ORG, testId("conn", 2))
          yield* store.delete(ORG, c.id)
          assert.isTrue(Option.isNone(yield* store.get(ORG, c.id)))
        }))
    })

    describe("CredentialVault", () => {
      test("put returns what is stored; get gives the values back as Redacted", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const vault = yield* CredentialVault
          const c = makeConnector(1)
          yield* store.insert(ORG, c)
          const credential = makeCredential(1, c.id, {
            values: {
              token: Redacted.make('ghp_é✓ "quoted" \\ \u0000 🔑'),
              region: Redacted.make(""),
              api_key: Redacted.make("x".repeat(10_000))
            }
          })
          const stored = yield* vault.put(credential)
          assert.deepStrictEqual(plainCredential(stored), plainCredential(credential))
          const got = some(
            yield* vault.get({ connectorId: c.id, scope: "organization", owner: { org: ORG }, name: "default" })
          )
          assert.deepStrictEqual(plainCredential(got), plainCredential(credential))
          for (const value of Object.values(got.values)) {
            assert.isTrue(Redacted.isRedacted(value))
            assert.strictEqual(String(value), "<redacted>")
          }
          assert.notInclude(JSON.stringify(got), "ghp_")
        }))

      test("put replaces by key, keeping the id and created_at of the stored credential", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const vault = yield* CredentialVault
          const c = makeConnector(1)
          yield* store.insert(ORG, c)
          const first = makeCredential(1, c.id)
          yield* vault.put(first)
          const second = makeCredential(2, c.id, {
            auth_type: "API_KEY",
            values: { api_key: Redacted.make("replaced") },
            created_at: T1,
            updated_at: T1
          })
          const stored = yield* vault.put(second)
          const expected = { ...plainCredential(second), id: first.id, created_at: first.created_at }
          assert.deepStrictEqual(plainCredential(stored), expected)
          const got = some(
            yield* vault.get({ connectorId: c.id, scope: "organization", owner: { org: ORG }, name: "default" })
          )
          assert.deepStrictEqual(plainCredential(got), expected)
          assert.strictEqual((yield* vault.list(c.id, "organization", { org: ORG })).length, 1)
        }))

      test("connector, scope, owner and name each make a different key", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const vault = yield* CredentialVault
          const c = makeConnector(1)
          const d = makeConnector(2)
          yield* store.insert(ORG, c)
          yield* store.insert(ORG, d)
          const variants: ReadonlyArray<Credential> = [
            makeCredential(1, c.id),
            makeCredential(2, c.id, { name: "backup" }),
            makeCredential(3, c.id, { name: "alt" }),
            makeCredential(4, d.id),
            makeCredential(5, c.id, { scope: "workspace", owner: { org: ORG, workspace: "ws_1" } }),
            makeCredential(6, c.id, { scope: "workspace", owner: { org: ORG, workspace: "ws_2" } }),
            makeCredential(7, c.id, { scope: "user", owner: { org: ORG, user: "alice" } }),
            makeCredential(8, c.id, { scope: "user", owner: { org: ORG, user: "bob" } }),
            makeCredential(9, c.id, { owner: { org: OTHER_ORG } })
          ]
          for (const credential of variants) yield* vault.put(credential)
          for (const credential of variants) {
            const got = some(
              yield* vault.get({
                connectorId: credential.connector_id,
                scope: credential.scope,
                owner: credential.owner,
                name: credential.name
              })
            )
            assert.deepStrictEqual(plainCredential(got), plainCredential(credential))
          }
          const listed = yield* vault.list(c.id, "organization", { org: ORG })
          assert.deepStrictEqual(
            listed.map((x) => x.name),
            ["alt", "backup", "default"]
          )
          assert.deepStrictEqual(
            listed.map(plainCredential),
            [variants[2], variants[1], variants[0]].map((x) => plainCredential(x as Credential))
          )
          assert.deepStrictEqual(ids(yield* vault.list(c.id, "user", { org: ORG, user: "bob" })), [testId("cred", 8)])
          assert.deepStrictEqual(ids(yield* vault.list(c.id, "workspace", { org: ORG, workspace: "ws_2" })), [
            testId("cred", 6)
          ])
          assert.deepStrictEqual(ids(yield* vault.list(c.id, "organization", { org: OTHER_ORG })), [testId("cred", 9)])
          assert.deepStrictEqual(yield* vault.list(c.id, "user", { org: ORG, user: "carol" }), [])
          assert.isTrue(
            Option.isNone(
              yield* vault.get({
                connectorId: c.id,
                scope: "user",
                owner: { org: ORG, user: "carol" },
                name: "default"
              })
            )
          )
        }))

      test("delete answers whether something was deleted", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const vault = yield* CredentialVault
          const c = makeConnector(1)
          yield* store.insert(ORG, c)
          yield* vault.put(makeCredential(1, c.id))
          yield* vault.put(makeCredential(2, c.id, { name: "other" }))
          const key = { connectorId: c.id, scope: "organization" as const, owner: { org: ORG }, name: "default" }
          assert.isTrue(yield* vault.delete(key))
          assert.isFalse(yield* vault.delete(key))
          assert.isTrue(Option.isNone(yield* vault.get(key)))
          assert.deepStrictEqual(ids(yield* vault.list(c.id, "organization", { org: ORG })), [testId("cred", 2)])
          // A deleted key can be put again, as a new credential.
          const again = yield* vault.put(makeCredential(3, c.id))
          assert.strictEqual(again.id, testId("cred", 3))
        }))
    })

    describe("ConnectionStore", () => {
      const setup = Effect.gen(function* () {
        const store = yield* ConnectorStore
        const c = makeConnector(1)
        const d = makeConnector(2, { name: "other" })
        yield* store.insert(ORG, c)
        yield* store.insert(ORG, d)
        return { c, d }
      })

      test("insert, then get and getByName return it, and secrets give back what was sealed", () =>
        Effect.gen(function* () {
          const connections = yield* ConnectionStore
          const { c } = yield* setup
          const connection = makeConnection(1, c.id)
          const secrets = makeSecrets("s3cr3t")
          yield* connections.insert(connection, secrets)
          assert.deepStrictEqual(some(yield* connections.get(ORG, connection.id)), connection)
          assert.deepStrictEqual(some(yield* connections.getByName(ORG, connection.name)), connection)
          const got = yield* connections.secrets(ORG, connection.id)
          assert.deepStrictEqual(plainSecrets(got), plainSecrets(secrets))
          assert.isTrue(Redacted.isRedacted(got.security.token))
          assert.isTrue(Option.isNone(yield* connections.get(OTHER_ORG, connection.id)))
          assert.isTrue(Option.isNone(yield* connections.getByName(OTHER_ORG, connection.name)))
          assert.isTrue(Option.isNone(yield* connections.get(ORG, testId("conn", 9))))
          assert.deepStrictEqual(plainSecrets(yield* connections.secrets(ORG, testId("conn", 9))), {
            security: {},
            headers: {}
          })
          assert.deepStrictEqual(plainSecrets(yield* connections.secrets(OTHER_ORG, connection.id)), {
            security: {},
            headers: {}
          })
        }))

      test("a connection without secrets has empty secrets; pinned versions and credentials round-trip", () =>
        Effect.gen(function* () {
          const connections = yield* ConnectionStore
          const { c } = yield* setup
          const connection = makeConnection(1, c.id, {
            connector_version: 1,
            credential: { scope: "workspace", name: "default" },
            has_security: false,
            header_names: [],
            parameters: {},
            servers: [],
            account_label: "alice@example.com",
            last_tested_at: T1,
            last_error: "timeout",
            status: "error",
            timeouts: { connect_ms: 2000, total_ms: 30_000 },
            rate_limit: { requests_per_second: 2.5, burst: 5 }
          })
          yield* connections.insert(connection, { security: {}, headers: {} })
          assert.deepStrictEqual(some(yield* connections.get(ORG, connection.id)), connection)
          assert.deepStrictEqual(plainSecrets(yield* connections.secrets(ORG, connection.id)), {
            security: {},
            headers: {}
          })
        }))

      test("insert fails with NameTaken for a name in use in the org, ConnectorNotFound without the connector", () =>
        Effect.gen(function* () {
          const store = yield* ConnectorStore
          const connections = yield* ConnectionStore
          const { c, d } = yield* setup
          yield* connections.insert(makeConnection(1, c.id, { name: "Prod" }), makeSecrets("a"))
          const taken = yield* Effect.flip(
            connections.insert(makeConnection(2, d.id, { name: "Prod" }), makeSecrets("b"))
          )
          assert.strictEqual(taken._tag, "NameTaken")
          const missing = yield* Effect.flip(connections.insert(makeConnection(3, testId("ctr", 99)), makeSecrets("c")))
          assert.strictEqual(missing._tag, "ConnectorNotFound")
          // The connector of another org does not count.
          const foreign = makeConnector(50)
          yield* store.insert(OTHER_ORG, foreign)
          const crossOrg = yield* Effect.flip(connections.insert(makeConnection(4, foreign.id), makeSecrets("d")))
          assert.strictEqual(crossOrg._tag, "ConnectorNotFound")
          // The same name in another org is fine.
          yield* connections.insert(makeConnection(5, foreign.id, { name: "Prod", org: OTHER_ORG }), makeSecrets("e"))
          for (const n of [2, 3, 4]) assert.isTrue(Option.isNone(yield* connections.get(ORG, testId("conn", n))))
          assert.strictEqual(some(yield* connections.getByName(ORG, "Prod")).id, testId("conn", 1))
          assert.strictEqual(some(yield* connections.getByName(OTHER_ORG, "Prod")).id, testId("conn", 5))
        }))

      test("list shows organizational connections and the caller's personal ones, with filters, in id order", () =>
        Effect.gen(function* () {
          const connections = yield* ConnectionStore
          const { c, d } = yield* setup
          const statuses = ["active", "error", "pending_auth", "disabled"] as const
          const owners = ["alice", "bob", "carol"]
          const all = Array.from({ length: 24 }, (_, i) =>
            makeConnection(i + 1, i % 4 === 0 ? d.id : c.id, {
              name: `${i % 2 === 0 ? "Prod" : "Dev"} ${i + 1}`,
              access_scope: i % 3 === 0 ? "organizational" : "personal",
              owner: owners[i % 3] as string,
              status: statuses[i % 4] as (typeof statuses)[number]
            })
          )
          for (const connection of [...all].reverse()) yield* connections.insert(connection, makeSecrets(connection.id))

          const queries = fc.sample(
            fc.record({
              visibleTo: fc.constantFrom(...owners, "dave"),
              after: fc.option(fc.integer({ min: 0, max: 25 }), { nil: undefined }),
              limit: fc.integer({ min: 0, max: 30 }),
              connectorId: fc.option(fc.constantFrom(c.id, d.id, testId("ctr", 77)), { nil: undefined }),
              status: fc.option(fc.constantFrom(...statuses), { nil: undefined }),
              namePrefix: fc.option(fc.constantFrom("", "P", "Prod 1", "Dev", "dev", "X"), { nil: undefined })
            }),
            { numRuns: 80, seed: 11 }
          )
          for (const q of queries) {
            const query = { ...q, after: q.after === undefined ? undefined : testId("conn", q.after) }
            const expected = all
              .filter((x) => query.after === undefined || x.id > query.after)
              .filter((x) => x.access_scope === "organizational" || x.owner === query.visibleTo)
              .filter((x) => query.connectorId === undefined || x.connector_id === query.connectorId)
              .filter((x) => query.status === undefined || x.status === query.status)
              .filter((x) => query.namePrefix === undefined || x.name.startsWith(query.namePrefix))
              .slice(0, query.limit)
            assert.deepStrictEqual(yield* connections.list(ORG, query), expected, JSON.stringify(query))
          }
          // Paging through everything alice sees gives each row once, in order.
          const seen: Array<string> = []
          let after: string | undefined
          for (;;) {
            const page = yield* connections.list(ORG, { visibleTo: "alice", limit: 4, after })
            seen.push(...ids(page))
            if (page.length < 4) break
            after = page[page.length - 1]?.id
          }
          assert.deepStrictEqual(
            seen,
            ids(all.filter((x) => x.access_scope === "organizational" || x.owner === "alice"))
          )
          assert.deepStrictEqual(yield* connections.list(OTHER_ORG, { visibleTo: "alice", limit: 10 }), [])
        }))

      test("setStatus patches the status fields and leaves the rest", () =>
        Effect.gen(function* () {
          const connections = yield* ConnectionStore
          const { c } = yield* setup
          const connection = makeConnection(1, c.id, { status: "pending_auth", last_error: "old error" })
          yield* connections.insert(connection, makeSecrets("a"))
          const patched = yield* connections.setStatus(ORG, connection.id, {
            status: "active",
            last_tested_at: T1,
            account_label: "alice@example.com",
            updated_at: T1
          })
          const expected = {
            ...connection,
            status: "active" as const,
            last_tested_at: T1,
            account_label: "alice@example.com",
            updated_at: T1
          }
          assert.deepStrictEqual(some(patched), expected)
          assert.deepStrictEqual(some(yield* connections.get(ORG, connection.id)), expected)
          assert.deepStrictEqual(
            ids(yield* connections.list(ORG, { visibleTo: "alice", limit: 10, status: "active" })),
            [connection.id]
          )
          assert.deepStrictEqual(
            yield* connections.list(ORG, { visibleTo: "alice", limit: 10, status: "pending_auth" }),
            []
          )
          const cleared = yield* connections.setStatus(ORG, connection.id, {
            status: "error",
            last_error: null,
            updated_at: T1
          })
          assert.deepStrictEqual(some(cleared), { ...expected, status: "error", last_error: null })
          // The secrets are untouched.
          assert.deepStrictEqual(
            plainSecrets(yield* connections.secrets(ORG, connection.id)),
            plainSecrets(makeSecrets("a"))
          )
          assert.isTrue(
            Option.isNone(yield* connections.setStatus(ORG, testId("conn", 9), { status: "active", updated_at: T1 }))
          )
          assert.isTrue(
            Option.isNone(yield* connections.setStatus(OTHER_ORG, connection.id, { status: "active", updated_at: T1 }))
          )
        }))

      test("delete answers whether something was deleted and drops the secrets", () =>
        Effect.gen(function* () {
          const connections = yield* ConnectionStore
          const { c } = yield* setup
          const connection = makeConnection(1, c.id)
          yield* connections.insert(connection, makeSecrets("a"))
          assert.isFalse(yield* connections.delete(OTHER_ORG, connection.id))
          assert.isTrue(yield* connections.delete(ORG, connection.id))
          assert.isFalse(yield* connections.delete(ORG, connection.id))
          assert.isTrue(Option.isNone(yield* connections.get(ORG, connection.id)))
          assert.deepStrictEqual(plainSecrets(yield* connections.secrets(ORG, connection.id)), {
            security: {},
            headers: {}
          })
          // The name is free again.
          yield* connections.insert(makeConnection(2, c.id, { name: connection.name }), makeSecrets("b"))
        }))
    })

    describe("AuditLog", () => {
      test("list runs newest first; after means older than that id; filters by connection and action", () =>
        Effect.gen(function* () {
          const audit = yield* AuditLog.AuditLog
          const all = Array.from({ length: 20 }, (_, i) =>
            makeAudit(i + 1, {
              action: i % 2 === 0 ? "connection.proxy" : "tool.call",
              ...(i % 3 === 0 ? {} : { connection_id: testId("conn", i % 3) }),
              outcome: i % 5 === 0 ? "failure" : "success"
            })
          )
          for (const record of all) yield* audit.append(record)
          yield* audit.append(makeAudit(100, { org: OTHER_ORG }))
          const newest = [...all].reverse()

          assert.deepStrictEqual(yield* audit.list(ORG, { limit: 100 }), newest)
          const queries = fc.sample(
            fc.record({
              after: fc.option(fc.integer({ min: 0, max: 22 }), { nil: undefined }),
              limit: fc.integer({ min: 0, max: 25 }),
              connectionId: fc.option(fc.constantFrom(testId("conn", 1), testId("conn", 2), testId("conn", 7)), {
                nil: undefined
              }),
              action: fc.option(fc.constantFrom("connection.proxy", "tool.call", "connector.create"), {
                nil: undefined
              })
            }),
            { numRuns: 60, seed: 5 }
          )
          for (const q of queries) {
            const query = { ...q, after: q.after === undefined ? undefined : testId("aud", q.after) }
            const expected = newest
              .filter((r) => query.after === undefined || r.id < query.after)
              .filter((r) => query.connectionId === undefined || r.connection_id === query.connectionId)
              .filter((r) => query.action === undefined || r.action === query.action)
              .slice(0, query.limit)
            assert.deepStrictEqual(yield* audit.list(ORG, query), expected, JSON.stringify(query))
          }
          const pages: Array<string> = []
          let after: string | undefined
          for (;;) {
            const page = yield* audit.list(ORG, { limit: 6, after })
            pages.push(...ids(page))
            if (page.length < 6) break
            after = page[page.length - 1]?.id
          }
          assert.deepStrictEqual(pages, ids(newest))
          assert.deepStrictEqual(ids(yield* audit.list(OTHER_ORG, { limit: 10 })), [testId("aud", 100)])
        }))

      test("every optional field round-trips", () =>
        Effect.gen(function* () {
          const audit = yield* AuditLog.AuditLog
          const full = makeAudit(1, {
            connector_id: testId("ctr", 1),
            connection_id: testId("conn", 1),
            target: "https://api.example.com",
            method: "POST",
            path: "/v1/issues",
            tool: "create_issue",
            status: 502,
            duration_ms: 12.5,
            error_code: "upstream_timeout",
            outcome: "failure"
          })
          const bare = makeAudit(2)
          yield* audit.append(full)
          yield* audit.append(bare)
          assert.deepStrictEqual(yield* audit.list(ORG, { limit: 10 }), [bare, full])
          assert.deepStrictEqual(sortedIds(yield* audit.list(ORG, { limit: 10, connectionId: testId("conn", 1) })), [
            full.id
          ])
        }))
    })
  })
