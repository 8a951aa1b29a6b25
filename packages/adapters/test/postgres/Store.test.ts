/**
 * The PostgreSQL stores against a real server (one throwaway cluster for the file, a fresh database per test):
 * the shared behavioural suite, then what only a shared database has to get right. Several pools on one
 * database stand for several daemons ("hosts"): they race for refresh leases (exactly one wins; a negative
 * control shows both refresh without the lease), update one connector from one version (exactly one wins, the
 * other gets VersionConflict), append audit records concurrently (none lost, the hash chain verifies), and start
 * at once on a new database (one migrates, both open). Also: orgs cannot reach each other's rows by id, no secret
 * is in the database in clear and a sealed value moved to another row does not open, a wrong key or a newer
 * schema is refused before anything is written, and key rotation.
 *
 * Skipped when no PostgreSQL binaries are installed, unless SWITCHBOARD_REQUIRE_POSTGRES=1.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as AuditChain from "@switchboard/core/AuditChain"
import { ApiKeyStore } from "@switchboard/core/ApiKeyStore"
import { AuditLog } from "@switchboard/core/AuditLog"
import { ConnectionStore } from "@switchboard/core/ConnectionStore"
import { ConnectorStore } from "@switchboard/core/ConnectorStore"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import { StoreError } from "@switchboard/core/Errors"
import { OAuthStateStore } from "@switchboard/core/OAuthStateStore"
import * as ToolPins from "@switchboard/core/ToolPins"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import { createHash } from "node:crypto"
import * as Postgres from "../../src/postgres/index.ts"
import { keyA, keyB, makeSealer, sealerLayer } from "../sqlite/support.ts"
import {
  makeAudit,
  makeConnection,
  makeConnector,
  makeCredential,
  makeSecrets,
  ORG,
  OTHER_ORG,
  reveal,
  storeSuite,
  testId
} from "../StoreSuite.ts"
import { type Cluster, freshDatabase, sql, start, storeLayer, unavailable } from "./support.ts"

const why = await unavailable()
if (why !== undefined) console.warn(`skipping the PostgreSQL store tests: ${why}`)

let cluster: Cluster | undefined
beforeAll(async () => {
  if (why === undefined) cluster = await start()
}, 120_000)
afterAll(() => cluster?.stop())

const theCluster = (): Cluster => {
  if (cluster === undefined) throw new Error("the PostgreSQL cluster did not start")
  return cluster
}

const newDatabase = Effect.promise(() => freshDatabase(theCluster()))
const query = <Row = Record<string, unknown>>(database: string, text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.promise(() => sql<Row>(theCluster(), text, params, database))

/** A fresh database per test; the suite builds the layer once per test. */
const freshLayer = () =>
  Layer.unwrap(
    Effect.map(newDatabase, ({ url }) => Postgres.layer({ url, poolSize: 3 }).pipe(Layer.provide(sealerLayer(keyA))))
  )

type Host = Context.Context<Postgres.Stores | Postgres.Database.PostgresDatabase>

/** A "host": its own pool and stores on `url`, for the rest of the scope. */
const host = (url: string, key = keyA) => Layer.build(storeLayer(url, key))

const on =
  (context: Host) =>
  <A, E>(effect: Effect.Effect<A, E, Postgres.Stores | Postgres.Database.PostgresDatabase>) =>
    Effect.provideContext(effect, context)

const SECRET = "pg-secret-CANARY-7f3a9c21"

describe.skipIf(why !== undefined)("PostgreSQL stores", () => {
  storeSuite("postgres stores", freshLayer)

  describe("OAuth state (the state store's behaviour)", () => {
    it.effect("a flow is deleted once, expired flows are cleaned up, records replace by key", () =>
      Effect.gen(function* () {
        const store = yield* OAuthStateStore
        yield* store.putFlow({ id: "ost_1", expires_at: "2030-01-01T00:10:00.000Z", body: Redacted.make(SECRET) })
        yield* store.putFlow({ id: "ost_1", expires_at: "2030-01-01T00:20:00.000Z", body: Redacted.make(SECRET) })
        const found = Option.getOrThrow(yield* store.getFlow("ost_1"))
        assert.strictEqual(Redacted.value(found.body), SECRET)
        assert.strictEqual(found.expires_at, "2030-01-01T00:20:00.000Z")
        const deleted = yield* Effect.all([store.deleteFlow("ost_1"), store.deleteFlow("ost_1")], {
          concurrency: "unbounded"
        })
        assert.deepStrictEqual(deleted.filter((d) => d).length, 1)
        assert.isTrue(Option.isNone(yield* store.getFlow("ost_1")))

        yield* store.putFlow({ id: "ost_a", expires_at: "2030-01-01T00:00:00.000Z", body: Redacted.make("a") })
        yield* store.putFlow({ id: "ost_b", expires_at: "2030-01-01T00:20:00.000Z", body: Redacted.make("b") })
        assert.strictEqual(yield* store.deleteExpiredFlows("2030-01-01T00:10:00.000Z"), 1)
        assert.isTrue(Option.isSome(yield* store.getFlow("ost_b")))

        yield* store.putRecord("token:cred_1", Redacted.make("one"))
        yield* store.putRecord("token:cred_1", Redacted.make("two"))
        assert.strictEqual(Redacted.value(Option.getOrThrow(yield* store.getRecord("token:cred_1"))), "two")
        assert.isTrue(yield* store.deleteRecord("token:cred_1"))
        assert.isFalse(yield* store.deleteRecord("token:cred_1"))
      }).pipe(Effect.provide(freshLayer()))
    )

    it.effect("a lease has one holder until it is released or expires", () =>
      Effect.gen(function* () {
        const store = yield* OAuthStateStore
        assert.isTrue(yield* store.acquireLease("refresh:cred_1", "p1", 1000, 31_000))
        assert.isTrue(yield* store.acquireLease("refresh:cred_1", "p1", 2000, 32_000))
        assert.isFalse(yield* store.acquireLease("refresh:cred_1", "p2", 2000, 32_000))
        assert.isTrue(yield* store.acquireLease("refresh:cred_2", "p2", 2000, 32_000))
        yield* store.releaseLease("refresh:cred_1", "p2")
        assert.isFalse(yield* store.acquireLease("refresh:cred_1", "p2", 3000, 33_000))
        yield* store.releaseLease("refresh:cred_1", "p1")
        assert.isTrue(yield* store.acquireLease("refresh:cred_1", "p2", 3000, 33_000))
        assert.isTrue(yield* store.acquireLease("refresh:cred_1", "p3", 33_000, 63_000))
      }).pipe(Effect.provide(freshLayer()))
    )
  })

  describe("tenancy", () => {
    it.effect("every table of org data carries its org", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        yield* Effect.scoped(host(url))
        const columns = yield* query<{ table_name: string; column_name: string; is_nullable: string }>(
          name,
          `SELECT table_name, column_name, is_nullable FROM information_schema.columns
           WHERE table_schema = 'public' AND column_name IN ('org', 'owner_org')`
        )
        const orgColumns = Object.fromEntries(columns.map((c) => [c.table_name, [c.column_name, c.is_nullable]]))
        assert.deepStrictEqual(orgColumns, {
          audit: ["org", "NO"],
          audit_heads: ["org", "NO"],
          connections: ["org", "NO"],
          connector_versions: ["org", "NO"],
          api_keys: ["org", "NO"],
          connectors: ["org", "NO"],
          credentials: ["owner_org", "NO"],
          tool_pins: ["org", "NO"]
        })
      })
    )

    it.effect("an org cannot read, update, delete or list another org's rows by id", () =>
      Effect.gen(function* () {
        const connectors = yield* ConnectorStore
        const connections = yield* ConnectionStore
        const audit = yield* AuditLog
        const connector = makeConnector(1)
        yield* connectors.insert(ORG, connector)
        const connection = makeConnection(1, connector.id)
        yield* connections.insert(connection, makeSecrets(SECRET))
        yield* audit.append(makeAudit(1, { connection_id: connection.id }))

        // Another org, with the ids in hand.
        assert.isTrue(Option.isNone(yield* connectors.get(OTHER_ORG, connector.id)))
        assert.isTrue(Option.isNone(yield* connectors.getVersion(OTHER_ORG, connector.id, 1)))
        assert.strictEqual(
          (yield* Effect.flip(connectors.update(OTHER_ORG, { ...connector, name: "stolen", version: 2 })))._tag,
          "ConnectorNotFound"
        )
        assert.strictEqual((yield* Effect.flip(connectors.delete(OTHER_ORG, connector.id)))._tag, "ConnectorNotFound")
        assert.deepStrictEqual(yield* connectors.list(OTHER_ORG, { limit: 10 }), [])
        assert.isTrue(Option.isNone(yield* connections.get(OTHER_ORG, connection.id)))
        assert.deepStrictEqual(reveal((yield* connections.secrets(OTHER_ORG, connection.id)).security), {})
        assert.isTrue(
          Option.isNone(yield* connections.setStatus(OTHER_ORG, connection.id, { status: "error", updated_at: "x" }))
        )
        assert.isFalse(yield* connections.delete(OTHER_ORG, connection.id))
        assert.deepStrictEqual(yield* connections.list(OTHER_ORG, { visibleTo: "alice", limit: 10 }), [])
        assert.deepStrictEqual(yield* audit.list(OTHER_ORG, { limit: 10, connectionId: connection.id }), [])
        // A connection in another org cannot point at this org's connector.
        const foreign = yield* Effect.flip(
          connections.insert(makeConnection(2, connector.id, { org: OTHER_ORG, name: "x" }), makeSecrets("x"))
        )
        assert.strictEqual(foreign._tag, "ConnectorNotFound")

        // The owner's rows are untouched.
        assert.deepStrictEqual(Option.getOrThrow(yield* connectors.get(ORG, connector.id)), connector)
        assert.deepStrictEqual(Option.getOrThrow(yield* connections.get(ORG, connection.id)), connection)
        assert.strictEqual(reveal((yield* connections.secrets(ORG, connection.id)).security).token, SECRET)
        assert.strictEqual((yield* audit.list(ORG, { limit: 10 })).length, 1)
      }).pipe(Effect.provide(freshLayer()))
    )
  })

  describe("sealing", () => {
    it.effect("no secret is in the database in clear; a sealed value moved to another row does not open", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        yield* Effect.scoped(
          Effect.gen(function* () {
            const connector = makeConnector(1)
            yield* (yield* ConnectorStore).insert(ORG, connector)
            yield* (yield* CredentialVault).put(
              makeCredential(1, connector.id, { values: { token: Redacted.make(SECRET) } })
            )
            const connections = yield* ConnectionStore
            yield* connections.insert(makeConnection(1, connector.id), makeSecrets(SECRET))
            yield* connections.insert(makeConnection(2, connector.id, { name: "other" }), makeSecrets("other"))
            const oauth = yield* OAuthStateStore
            yield* oauth.putFlow({ id: "ost_1", expires_at: "2030-01-01T00:00:00.000Z", body: Redacted.make(SECRET) })
            yield* oauth.putRecord("token:cred_1", Redacted.make(SECRET))
          }).pipe(Effect.provide(storeLayer(url, keyA)))
        )
        const tables = yield* query<{ tablename: string }>(
          name,
          "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        assert.isAtLeast(tables.length, 10)
        let dump = ""
        for (const { tablename } of tables) {
          const rows = yield* query<{ text: string | null }>(
            name,
            `SELECT string_agg(t::text, '|') AS text FROM ${tablename} t`
          )
          dump += rows[0]?.text ?? ""
        }
        assert.include(dump, "Connection 1") // the dump does read the rows
        assert.notInclude(dump, SECRET)
        assert.notInclude(dump, Buffer.from(SECRET).toString("hex"))

        yield* query(
          name,
          "UPDATE connections SET sealed = (SELECT sealed FROM connections WHERE id = $1) WHERE id = $2",
          [testId("conn", 1), testId("conn", 2)]
        )
        const moved = yield* Effect.scoped(
          Effect.flip(Effect.flatMap(ConnectionStore, (s) => s.secrets(ORG, testId("conn", 2)))).pipe(
            Effect.provide(storeLayer(url, keyA))
          )
        )
        assert.strictEqual(moved._tag, "SealError")
      })
    )

    it.effect("a wrong key is refused at open, writing nothing", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        yield* Effect.scoped(host(url, keyA))
        const before = yield* query(name, "SELECT key, key_id, encode(sealed, 'hex') AS sealed FROM meta")
        const error = yield* Effect.flip(Effect.scoped(host(url, keyB)))
        assert.strictEqual(error._tag, "SealError")
        assert.strictEqual(error._tag === "SealError" ? error.reason : "", "key_mismatch")
        assert.deepStrictEqual(
          yield* query(name, "SELECT key, key_id, encode(sealed, 'hex') AS sealed FROM meta"),
          before
        )
      })
    )
  })

  describe("schema", () => {
    it.effect("a newer schema is refused before anything is written", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        yield* Effect.scoped(host(url))
        yield* query(name, "INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')")
        yield* query(name, "DELETE FROM meta")
        const error = yield* Effect.flip(Effect.scoped(host(url)))
        assert.instanceOf(error, StoreError)
        assert.include(error.message, "newer Switchboard")
        assert.deepStrictEqual(error instanceof StoreError ? error.details : undefined, {
          schema_version: 99,
          supported_version: Postgres.Migrations.latestVersion
        })
        // The check value was not written again: nothing was.
        assert.deepStrictEqual(yield* query(name, "SELECT key FROM meta"), [])
      })
    )

    it.effect("hosts starting at once on a new database: one migrates, every one opens", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        yield* Effect.scoped(Effect.all([host(url), host(url), host(url)], { concurrency: "unbounded" }))
        const versions = yield* query<{ version: number }>(
          name,
          "SELECT version FROM schema_migrations ORDER BY version"
        )
        assert.deepStrictEqual(
          versions.map((v) => v.version),
          Postgres.Migrations.migrations.map((m) => m.version)
        )
        assert.deepStrictEqual(yield* query(name, "SELECT key FROM meta"), [{ key: "key_check" }])
      })
    )

    it.effect("driver errors are StoreErrors carrying the SQLSTATE; an unreachable server fails the layer", () =>
      Effect.gen(function* () {
        const store = yield* ConnectorStore
        yield* store.insert(ORG, makeConnector(1))
        const duplicate = yield* Effect.flip(store.insert(ORG, makeConnector(1, { name: "another-name" })))
        assert.instanceOf(duplicate, StoreError)
        assert.deepStrictEqual(duplicate instanceof StoreError ? duplicate.details : undefined, {
          sqlstate: "23505",
          constraint: "connectors_pkey"
        })
        const password = theCluster().password
        const unreachable = yield* Effect.flip(
          Effect.scoped(host(`postgres://u:${encodeURIComponent(password)}@127.0.0.1:1/none`))
        )
        assert.instanceOf(unreachable, StoreError)
        assert.include(unreachable.message, "connecting to the database 127.0.0.1:1/none")
        assert.notInclude(unreachable.message, password)
      }).pipe(Effect.provide(freshLayer()))
    )
  })

  describe("several hosts on one database", () => {
    it.effect("refresh leases: of two hosts racing for each lease exactly one wins, also for an expired lease", () =>
      Effect.gen(function* () {
        const { url } = yield* newDatabase
        const one = yield* host(url)
        const two = yield* host(url)
        const take = (context: Host, key: string, holder: string, now: number) =>
          on(context)(Effect.flatMap(OAuthStateStore, (s) => s.acquireLease(key, holder, now, now + 30_000)))
        for (let i = 0; i < 20; i++) {
          const key = `refresh:cred_${i}`
          const fresh = yield* Effect.all([take(one, key, "host-1", 1000), take(two, key, "host-2", 1000)], {
            concurrency: "unbounded"
          })
          assert.strictEqual(fresh.filter((won) => won).length, 1, `fresh lease ${key}: ${fresh.join(",")}`)
          // Both come back after it expired: again exactly one takes it over.
          const expired = yield* Effect.all([take(one, key, "host-3", 40_000), take(two, key, "host-4", 40_000)], {
            concurrency: "unbounded"
          })
          assert.strictEqual(expired.filter((won) => won).length, 1, `expired lease ${key}: ${expired.join(",")}`)
        }
      }).pipe(Effect.scoped)
    )

    /**
     * Two hosts find the same token stale at once (a barrier holds both until each has read it), then refresh
     * it: with the lease only one refreshes; without it (the negative control) both do, which is what the lease
     * is there to prevent (a refresh token used twice is revoked by many servers).
     */
    const refreshRace = (useLease: boolean) =>
      Effect.gen(function* () {
        const { url } = yield* newDatabase
        const hosts = [yield* host(url), yield* host(url)]
        yield* on(hosts[0] as Host)(
          Effect.flatMap(OAuthStateStore, (s) => s.putRecord("token:cred_1", Redacted.make("stale")))
        )
        const refreshes = yield* Ref.make(0)
        const arrived = yield* Ref.make(0)
        const bothRead = yield* Deferred.make<void>()
        const refresh = (context: Host, holder: string) =>
          on(context)(
            Effect.gen(function* () {
              const store = yield* OAuthStateStore
              const token = Redacted.value(Option.getOrThrow(yield* store.getRecord("token:cred_1")))
              if ((yield* Ref.updateAndGet(arrived, (n) => n + 1)) === 2) yield* Deferred.succeed(bothRead, undefined)
              yield* Deferred.await(bothRead)
              if (token !== "stale") return
              if (useLease && !(yield* store.acquireLease("refresh:cred_1", holder, 1000, 31_000))) return
              yield* Ref.update(refreshes, (n) => n + 1)
              yield* store.putRecord("token:cred_1", Redacted.make(`fresh from ${holder}`))
              if (useLease) yield* store.releaseLease("refresh:cred_1", holder)
            })
          )
        yield* Effect.all(
          hosts.map((context, i) => refresh(context, `host-${i + 1}`)),
          { concurrency: "unbounded" }
        )
        return yield* Ref.get(refreshes)
      }).pipe(Effect.scoped)

    it.effect("a stale token is refreshed once with the lease, twice without it (negative control)", () =>
      Effect.gen(function* () {
        assert.strictEqual(yield* refreshRace(true), 1)
        assert.strictEqual(yield* refreshRace(false), 2)
      })
    )

    it.effect("two hosts updating one connector from one version: one wins, the other gets VersionConflict", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        const one = yield* host(url)
        const two = yield* host(url)
        const v1 = makeConnector(1)
        yield* on(one)(Effect.flatMap(ConnectorStore, (s) => s.insert(ORG, v1)))
        for (let round = 2; round <= 11; round++) {
          const current = Option.getOrThrow(yield* on(two)(Effect.flatMap(ConnectorStore, (s) => s.get(ORG, v1.id))))
          const update = (context: Host, label: string) =>
            on(context)(
              Effect.flatMap(ConnectorStore, (s) =>
                s.update(ORG, { ...current, version: round, display_name: `${label} ${round}` })
              )
            ).pipe(Effect.result)
          const results = yield* Effect.all([update(one, "one"), update(two, "two")], { concurrency: "unbounded" })
          const failures = results.filter((r) => r._tag === "Failure")
          assert.strictEqual(failures.length, 1, `round ${round}`)
          const failure = failures[0]
          assert.strictEqual(failure?._tag === "Failure" ? failure.failure._tag : "", "VersionConflict")
          assert.strictEqual(failure?._tag === "Failure" ? failure.failure.status : 0, 409)
        }
        const versions = yield* query<{ version: number }>(
          name,
          "SELECT version FROM connector_versions WHERE connector_id = $1 ORDER BY version",
          [v1.id]
        )
        assert.deepStrictEqual(
          versions.map((v) => v.version),
          [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("two hosts inserting one name: one wins, the other gets NameTaken", () =>
      Effect.gen(function* () {
        const { url } = yield* newDatabase
        const one = yield* host(url)
        const two = yield* host(url)
        const results = yield* Effect.all(
          [
            on(one)(Effect.flatMap(ConnectorStore, (s) => s.insert(ORG, makeConnector(1, { name: "github" })))),
            on(two)(Effect.flatMap(ConnectorStore, (s) => s.insert(ORG, makeConnector(2, { name: "github" }))))
          ].map((e) => Effect.result(e)),
          { concurrency: "unbounded" }
        )
        const failures = results.filter((r) => r._tag === "Failure")
        assert.strictEqual(failures.length, 1)
        assert.strictEqual(failures[0]?._tag === "Failure" ? failures[0].failure._tag : "", "NameTaken")
      }).pipe(Effect.scoped)
    )

    it.effect("audit appends from three hosts at once: none lost, each org's hash chain verifies", () =>
      Effect.gen(function* () {
        const { url } = yield* newDatabase
        const hosts = [yield* host(url), yield* host(url), yield* host(url)]
        const perHost = 25
        yield* Effect.all(
          hosts.map((context, h) =>
            on(context)(
              Effect.flatMap(AuditLog, (audit) =>
                Effect.forEach(
                  Array.from({ length: perHost }, (_, i) => h * 1000 + i),
                  (n) => audit.append(makeAudit(n, { org: n % 5 === 0 ? OTHER_ORG : ORG })),
                  { concurrency: "unbounded", discard: true }
                )
              )
            )
          ),
          { concurrency: "unbounded" }
        )
        const verified = yield* on(hosts[0] as Host)(
          Effect.gen(function* () {
            const chain = yield* AuditChain.AuditChain
            const orgs = yield* chain.orgs()
            return yield* Effect.forEach(orgs, (org) =>
              Effect.map(chain.links(org), (read) =>
                AuditChain.verify(org, read.links, read.head, read.unchained, chain.digest)
              )
            )
          })
        )
        assert.deepStrictEqual(
          verified.map((v) => [v.org, v.ok, v.records, v.problems.length, v.head_seal]),
          [
            [ORG, true, 60, 0, "verified"],
            [OTHER_ORG, true, 15, 0, "verified"]
          ]
        )
        const listed = yield* on(hosts[1] as Host)(Effect.flatMap(AuditLog, (a) => a.list(ORG, { limit: 1000 })))
        assert.strictEqual(listed.length, 60)
      }).pipe(Effect.scoped)
    )
  })

  describe("cut off mid-write", () => {
    it.effect(
      "a transaction whose connection dies, or whose fiber is interrupted, leaves nothing; the pool goes on",
      () =>
        Effect.gen(function* () {
          const { name, url } = yield* newDatabase
          const one = yield* host(url)
          const two = yield* host(url)
          const db = yield* Effect.provideContext(Effect.service(Postgres.Database.PostgresDatabase), one)
          const insert = (tx: Postgres.Database.Executor, n: number) =>
            tx.run(
              "INSERT INTO connectors (id, org, name, kind, version, record) VALUES ($1, $2, $3, 'http', 1, '{}')",
              [testId("ctr", n), ORG, `half-${n}`]
            )

          // The server side of the connection goes away between two writes (a daemon killed, a network cut).
          const killed = yield* Effect.flip(
            db.transaction((tx) =>
              Effect.gen(function* () {
                yield* insert(tx, 1)
                const backend = yield* tx.get<{ pid: number }>("SELECT pg_backend_pid() AS pid")
                yield* query(name, "SELECT pg_terminate_backend($1)", [backend?.pid])
                yield* insert(tx, 2)
              })
            )
          )
          assert.instanceOf(killed, StoreError)

          // A fiber interrupted while its transaction holds the audit lock of the org (an append in progress).
          const holding = yield* Deferred.make<void>()
          const fiber = yield* Effect.forkChild(
            db.transaction((tx) =>
              Effect.gen(function* () {
                yield* insert(tx, 3)
                yield* tx.run("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`switchboard:audit:${ORG}`])
                yield* Deferred.succeed(holding, undefined)
                return yield* Effect.never
              })
            )
          )
          yield* Deferred.await(holding)
          yield* Fiber.interrupt(fiber)

          assert.deepStrictEqual(yield* query(name, "SELECT id FROM connectors"), [])
          // Both hosts go on writing; the interrupted append's lock is gone with its transaction.
          yield* on(two)(Effect.flatMap(AuditLog, (a) => a.append(makeAudit(1))))
          yield* on(one)(Effect.flatMap(AuditLog, (a) => a.append(makeAudit(2))))
          yield* on(one)(Effect.flatMap(ConnectorStore, (s) => s.insert(ORG, makeConnector(4))))
          assert.deepStrictEqual(yield* query(name, "SELECT id FROM connectors"), [{ id: testId("ctr", 4) }])
          assert.strictEqual((yield* on(two)(Effect.flatMap(AuditLog, (a) => a.list(ORG, { limit: 10 })))).length, 2)
        }).pipe(Effect.scoped)
    )
  })

  describe("key rotation", () => {
    it.effect("re-seals everything; the old key is refused after, and a host still on it cannot write", () =>
      Effect.gen(function* () {
        const { url } = yield* newDatabase
        const old = yield* host(url, keyA)
        const connector = makeConnector(1)
        const counts = yield* on(old)(
          Effect.gen(function* () {
            yield* (yield* ConnectorStore).insert(ORG, connector)
            yield* (yield* CredentialVault).put(makeCredential(1, connector.id))
            yield* (yield* ConnectionStore).insert(makeConnection(1, connector.id), makeSecrets(SECRET))
            const oauth = yield* OAuthStateStore
            yield* oauth.putFlow({ id: "ost_1", expires_at: "2030-01-01T00:00:00.000Z", body: Redacted.make("f") })
            yield* oauth.putRecord("token:cred_1", Redacted.make("r"))
            const db = yield* Postgres.Database.PostgresDatabase
            return yield* Postgres.rotateKey(db, yield* makeSealer(keyA), yield* makeSealer(keyB))
          })
        )
        assert.deepInclude(counts, { credentials: 1, connections: 1, oauth_flows: 1, oauth_records: 1 })
        // The host still on the old key cannot seal anything new.
        const stale = yield* Effect.flip(
          on(old)(
            Effect.flatMap(ConnectionStore, (s) =>
              s.insert(makeConnection(2, connector.id, { name: "late" }), makeSecrets("late"))
            )
          )
        )
        assert.strictEqual(stale._tag === "SealError" ? stale.reason : stale._tag, "key_mismatch")
        const refused = yield* Effect.flip(Effect.scoped(host(url, keyA)))
        assert.strictEqual(refused._tag === "SealError" ? refused.reason : refused._tag, "key_mismatch")

        const rotated = yield* host(url, keyB)
        const read = yield* on(rotated)(
          Effect.gen(function* () {
            const secrets = yield* (yield* ConnectionStore).secrets(ORG, testId("conn", 1))
            const credential = yield* (yield* CredentialVault).get({
              connectorId: connector.id,
              scope: "organization",
              owner: { org: ORG },
              name: "default"
            })
            const oauth = yield* OAuthStateStore
            return [
              reveal(secrets.security).token,
              reveal(Option.getOrThrow(credential).values).token,
              Redacted.value(Option.getOrThrow(yield* oauth.getFlow("ost_1")).body),
              Redacted.value(Option.getOrThrow(yield* oauth.getRecord("token:cred_1")))
            ]
          })
        )
        assert.deepStrictEqual(read, [SECRET, "token-1", "f", "r"])
      }).pipe(Effect.scoped)
    )

    it.live(
      "a sealed write waits for a rotation under way, then fails with key_mismatch instead of sealing under the old key",
      () =>
        Effect.gen(function* () {
          const { name, url } = yield* newDatabase
          const rotating = yield* host(url)
          const writer = yield* host(url)
          const connector = makeConnector(1)
          yield* on(writer)(Effect.flatMap(ConnectorStore, (s) => s.insert(ORG, connector)))
          const db = yield* Effect.provideContext(Effect.service(Postgres.Database.PostgresDatabase), rotating)
          // What rotateKey does first: lock the check row; it then re-seals and replaces the check value.
          const locked = yield* Deferred.make<void>()
          const finish = yield* Deferred.make<void>()
          const rotation = yield* Effect.forkChild(
            db.transaction((tx) =>
              Effect.gen(function* () {
                yield* tx.get("SELECT key_id FROM meta WHERE key = 'key_check' FOR UPDATE")
                yield* Deferred.succeed(locked, undefined)
                yield* Deferred.await(finish)
                yield* tx.run("UPDATE meta SET key_id = 'the-next-key' WHERE key = 'key_check'")
              })
            )
          )
          yield* Deferred.await(locked)
          const write = yield* Effect.forkChild(
            Effect.flip(
              on(writer)(
                Effect.flatMap(ConnectionStore, (s) => s.insert(makeConnection(1, connector.id), makeSecrets("x")))
              )
            )
          )
          // Wait (bounded, on the live clock) until the write is blocked on the check row's lock (or, broken, has
          // already finished), then let the rotation commit.
          for (let i = 0; i < 200 && write.pollUnsafe() === undefined; i++) {
            const waiting = yield* query<{ n: number }>(
              name,
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
              [name]
            )
            if ((waiting[0]?.n ?? 0) > 0) break
            yield* Effect.sleep("10 millis")
          }
          yield* Deferred.succeed(finish, undefined)
          yield* Fiber.join(rotation)
          const error = yield* Fiber.join(write)
          assert.strictEqual(error._tag === "SealError" ? error.reason : error._tag, "key_mismatch")
          assert.deepStrictEqual(yield* query(name, "SELECT id FROM connections"), [])
        }).pipe(Effect.scoped)
    )
  })
  describe("the sealed audit head (migration 6)", () => {
    const verifyOn = (context: Host) =>
      on(context)(
        Effect.gen(function* () {
          const chain = yield* AuditChain.AuditChain
          const read = yield* chain.links(ORG)
          return AuditChain.verify(ORG, read.links, read.head, read.unchained, chain.digest)
        })
      )
    const appendOn = (context: Host, from: number, to: number) =>
      on(context)(
        Effect.flatMap(AuditLog, (audit) =>
          Effect.forEach(
            Array.from({ length: to - from + 1 }, (_, i) => from + i),
            (n) => audit.append(makeAudit(n)),
            { discard: true }
          )
        )
      )

    it.effect("records rewritten with every later hash and the plain head recomputed (no key) are found", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        const context = yield* host(url)
        yield* appendOn(context, 1, 5)
        assert.strictEqual((yield* verifyOn(context)).head_seal, "verified")
        // The attacker: SQL access and node:crypto, no master key.
        const rows = yield* query<{ seq: number; prev_hash: string; record: string }>(
          name,
          "SELECT seq, prev_hash, record FROM audit WHERE org = $1 AND seq >= 3 ORDER BY seq",
          [ORG]
        )
        let prev = rows[0]?.prev_hash ?? AuditChain.genesis
        for (const row of rows) {
          const record = row.seq === 3 ? row.record.replace('"success"', '"failure"') : row.record
          if (row.seq === 3) assert.notStrictEqual(record, row.record)
          const hash = createHash("sha256")
            .update(AuditChain.canonical(row.seq, prev, JSON.parse(record)))
            .digest("hex")
          yield* query(name, "UPDATE audit SET record = $1, prev_hash = $2, hash = $3 WHERE org = $4 AND seq = $5", [
            record,
            prev,
            hash,
            ORG,
            row.seq
          ])
          yield* query(name, "UPDATE audit_heads SET seq = $1, hash = $2 WHERE org = $3", [row.seq, hash, ORG])
          prev = hash
        }
        const result = yield* verifyOn(context)
        assert.deepStrictEqual(
          [result.ok, result.head_seal, result.problems.map((p) => [p.problem, p.seq])],
          [false, "forged", [["head_forged", 5]]]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("the last records deleted and the plain head rewritten to match are found (truncated)", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        const context = yield* host(url)
        yield* appendOn(context, 1, 4)
        yield* query(name, "DELETE FROM audit WHERE org = $1 AND seq > 2", [ORG])
        yield* query(
          name,
          "UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit WHERE org = $1 AND seq = 2) WHERE org = $1",
          [ORG]
        )
        const result = yield* verifyOn(context)
        assert.deepStrictEqual([result.ok, result.problems.map((p) => [p.problem, p.seq])], [false, [["truncated", 4]]])
      }).pipe(Effect.scoped)
    )

    it.effect("a database from before migration 6 gets its heads sealed when a host opens it", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        yield* Effect.scoped(Effect.flatMap(host(url), (context) => appendOn(context, 1, 3)))
        // Back to schema 5, as an older Switchboard left it.
        yield* query(name, "ALTER TABLE audit_heads DROP COLUMN key_id, DROP COLUMN sealed")
        yield* query(name, "DELETE FROM schema_migrations WHERE version = 6")
        const context = yield* host(url)
        const opened = yield* verifyOn(context)
        assert.deepStrictEqual([opened.ok, opened.head_seal, opened.records], [true, "verified", 3])
        yield* appendOn(context, 4, 4)
        const after = yield* verifyOn(context)
        assert.deepStrictEqual([after.ok, after.head_seal, after.records], [true, "verified", 4])
      }).pipe(Effect.scoped)
    )

    it.effect("a seal removed by hand is head_forged, and the next append does not seal over it", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        const context = yield* host(url)
        yield* appendOn(context, 1, 3)
        yield* query(name, "UPDATE audit_heads SET key_id = NULL, sealed = NULL")
        const stripped = yield* verifyOn(context)
        assert.deepStrictEqual([stripped.ok, stripped.head_seal], [false, "forged"])
        yield* appendOn(context, 4, 4)
        assert.deepStrictEqual(
          (yield* verifyOn(context)).problems.map((p) => p.problem),
          ["head_forged"]
        )
      }).pipe(Effect.scoped)
    )

    it.effect("a key rotation re-seals the heads: the chain verifies under the new key", () =>
      Effect.gen(function* () {
        const { url } = yield* newDatabase
        const old = yield* host(url, keyA)
        yield* appendOn(old, 1, 3)
        yield* on(old)(
          Effect.gen(function* () {
            const db = yield* Postgres.Database.PostgresDatabase
            return yield* Postgres.rotateKey(db, yield* makeSealer(keyA), yield* makeSealer(keyB))
          })
        )
        const rotated = yield* host(url, keyB)
        const result = yield* verifyOn(rotated)
        assert.deepStrictEqual([result.ok, result.head_seal, result.records], [true, "verified", 3])
        // A host still on the old key cannot append (its head would be sealed under a retired key).
        const stale = yield* Effect.flip(appendOn(old, 4, 4))
        assert.match(stale.message, /key_mismatch|master key does not match/)
        yield* appendOn(rotated, 4, 4)
        assert.deepStrictEqual((yield* verifyOn(rotated)).ok, true)
      }).pipe(Effect.scoped)
    )
  })

  describe("tool pins and API keys (migrations 4 and 5)", () => {
    const portsOn = (url: string) =>
      Layer.build(
        Layer.mergeAll(Postgres.ToolPins.layer, Postgres.ApiKeyStore.layer).pipe(
          Layer.provideMerge(storeLayer(url, keyA))
        )
      )
    const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")
    const manifest = (overrides: Partial<ToolPins.Manifest> = {}): ToolPins.Manifest => {
      const tools = overrides.tools ?? [{ name: "echo", description: "Echo", inputSchema: { type: "object" } }]
      return {
        org: ORG,
        connection_id: "conn_01",
        connector_id: "ctr_01",
        connector_version: 1,
        hash: ToolPins.manifestHash(tools, sha256),
        tools,
        pinned_at: "2026-01-01T00:00:00.000Z",
        pinned_by: ToolPins.FIRST_USE,
        ...overrides
      }
    }

    it.effect("two hosts pinning one version at once keep one pin and both answer it; orgs are apart", () =>
      Effect.gen(function* () {
        const { url } = yield* newDatabase
        const one = yield* portsOn(url)
        const two = yield* portsOn(url)
        const a = manifest()
        const b = manifest({ tools: [{ name: "echo", description: "Echo, poisoned", inputSchema: {} }] })
        const pinned = yield* Effect.all(
          [
            Effect.flatMap(ToolPins.ToolPins, (p) => p.pin(a)).pipe(Effect.provideContext(one)),
            Effect.flatMap(ToolPins.ToolPins, (p) => p.pin(b)).pipe(Effect.provideContext(two))
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(pinned[0].hash, pinned[1].hash)
        const pins = ToolPins.ToolPins
        const stored = yield* Effect.flatMap(pins, (p) => p.get(ORG, "conn_01", 1)).pipe(Effect.provideContext(one))
        assert.strictEqual(Option.getOrThrow(stored).hash, pinned[0].hash)
        assert.isTrue(
          Option.isNone(
            yield* Effect.flatMap(pins, (p) => p.get(OTHER_ORG, "conn_01", 1)).pipe(Effect.provideContext(two))
          )
        )
        yield* Effect.flatMap(pins, (p) =>
          p.replace(manifest({ ...b, connector_version: 2, pinned_by: "alice" }))
        ).pipe(Effect.provideContext(two))
        const latest = yield* Effect.flatMap(pins, (p) => p.latest(ORG, "conn_01")).pipe(Effect.provideContext(one))
        assert.deepInclude(Option.getOrThrow(latest), { connector_version: 2, pinned_by: "alice", hash: b.hash })
        const digest = yield* Effect.map(pins, (p) => p.digest).pipe(Effect.provideContext(one))
        assert.strictEqual(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        assert.strictEqual(ToolPins.manifestHash(b.tools, digest), b.hash)
      }).pipe(Effect.scoped)
    )

    it.effect("API keys: stored with their digest, listed oldest first, revoked once across hosts, touched", () =>
      Effect.gen(function* () {
        const { name, url } = yield* newDatabase
        const one = yield* portsOn(url)
        const two = yield* portsOn(url)
        const key = (id: string) => ({
          id,
          name: `key ${id}`,
          prefix: `sbk_${id}`,
          org: ORG,
          workspace: "ws_1",
          user: "alice",
          role: "editor" as const,
          created_at: "2026-01-01T00:00:00.000Z",
          last_used_at: null,
          revoked_at: null
        })
        const keys = ApiKeyStore
        yield* Effect.flatMap(keys, (k) => k.insert({ key: key("ak_1"), digest: "d1" })).pipe(
          Effect.provideContext(one)
        )
        yield* Effect.flatMap(keys, (k) => k.insert({ key: key("ak_2"), digest: "d2" })).pipe(
          Effect.provideContext(two)
        )
        const got = Option.getOrThrow(
          yield* Effect.flatMap(keys, (k) => k.get("ak_1")).pipe(Effect.provideContext(two))
        )
        assert.deepStrictEqual(got, { key: key("ak_1"), digest: "d1" })
        const revoked = yield* Effect.all(
          [
            Effect.flatMap(keys, (k) => k.revoke("ak_1", "2026-01-02T00:00:00.000Z")).pipe(Effect.provideContext(one)),
            Effect.flatMap(keys, (k) => k.revoke("ak_1", "2026-01-03T00:00:00.000Z")).pipe(Effect.provideContext(two))
          ],
          { concurrency: "unbounded" }
        )
        const times = revoked.map((r) => Option.getOrThrow(r).revoked_at)
        assert.strictEqual(times[0], times[1])
        yield* Effect.flatMap(keys, (k) => k.touch("ak_2", "2026-01-04T00:00:00.000Z")).pipe(Effect.provideContext(one))
        const listed = yield* Effect.flatMap(keys, (k) => k.list).pipe(Effect.provideContext(two))
        assert.deepStrictEqual(
          listed.map((k) => [k.id, k.revoked_at === null, k.last_used_at]),
          [
            ["ak_1", false, null],
            ["ak_2", true, "2026-01-04T00:00:00.000Z"]
          ]
        )
        assert.isTrue(
          Option.isNone(yield* Effect.flatMap(keys, (k) => k.revoke("ak_9", "x")).pipe(Effect.provideContext(one)))
        )
        // Only digests are stored.
        assert.deepStrictEqual(yield* query(name, "SELECT digest FROM api_keys ORDER BY id"), [
          { digest: "d1" },
          { digest: "d2" }
        ])
      }).pipe(Effect.scoped)
    )
  })
})
