/**
 * The SQLite database under the stores: connection settings, transactions (commit, rollback on failure, defect
 * and interruption, serialised fibers, durable commits), errors, migrations and the newer-schema guard, file
 * modes, corrupt rows, and query plans that search an index instead of scanning a table.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ConnectionStore } from "@switchboard/core/ConnectionStore"
import { ConnectorStore } from "@switchboard/core/ConnectorStore"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import { StoreError } from "@switchboard/core/Errors"
import BetterSqlite3 from "better-sqlite3"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Sqlite from "../../src/sqlite/index.ts"
import { makeConnection, makeConnector, makeCredential, makeSecrets, ORG, testId } from "../StoreSuite.ts"
import { dbFiles, keyA, makeSealer, snapshot, storeLayer, tempDir, withRaw } from "./support.ts"

const { Database, Migrations, Store } = Sqlite

const dir = tempDir("database")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => Path.join(dir, `db-${++files}.db`)

const withDatabase = <A, E>(filename: string, f: (db: Sqlite.Database.Database) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(Database.open({ filename }), f))

const count = (db: Sqlite.Database.Database) =>
  Effect.map(db.get<{ n: number }>("SELECT count(*) AS n FROM t"), (row) => row?.n ?? -1)

const setupTable = (db: Sqlite.Database.Database) => db.exec("CREATE TABLE t (x TEXT PRIMARY KEY)")

describe("sqlite Database", () => {
  it.effect("opens in WAL mode with foreign keys, a busy timeout and synchronous=NORMAL", () =>
    withDatabase(freshFile(), (db) =>
      Effect.gen(function* () {
        assert.strictEqual(yield* db.pragma("journal_mode"), "wal")
        assert.strictEqual(yield* db.pragma("foreign_keys"), 1)
        assert.strictEqual(yield* db.pragma("busy_timeout"), Database.BUSY_TIMEOUT_MS)
        assert.strictEqual(yield* db.pragma("synchronous"), 1)
        // Durable transactions sync the WAL at commit, then the connection goes back to NORMAL.
        assert.strictEqual(yield* db.transaction(db.pragma("synchronous"), { durable: true }), 2)
        assert.strictEqual(yield* db.pragma("synchronous"), 1)
        assert.strictEqual(yield* db.transaction(db.pragma("synchronous")), 1)
      })
    )
  )

  it.effect("creates the database file private to its owner; the WAL and shm files follow", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* withDatabase(filename, (db) =>
        Effect.gen(function* () {
          yield* setupTable(db)
          yield* db.run("INSERT INTO t VALUES (?)", ["a"])
          for (const path of [filename, `${filename}-wal`, `${filename}-shm`]) {
            assert.strictEqual(Fs.statSync(path).mode & 0o777, 0o600, path)
          }
        })
      )
    })
  )

  it.effect("commits a transaction that succeeds, rolls back one that fails, dies or is interrupted", () =>
    withDatabase(freshFile(), (db) =>
      Effect.gen(function* () {
        yield* setupTable(db)
        yield* db.transaction(db.run("INSERT INTO t VALUES (?)", ["committed"]))
        const failed = yield* Effect.flip(
          db.transaction(Effect.andThen(db.run("INSERT INTO t VALUES (?)", ["failed"]), Effect.fail("nope" as const)))
        )
        assert.strictEqual(failed, "nope")
        yield* Effect.exit(
          db.transaction(Effect.andThen(db.run("INSERT INTO t VALUES (?)", ["died"]), Effect.die("boom")))
        )
        const started = yield* Deferred.make<void>()
        const fiber = yield* Effect.forkChild(
          db.transaction(
            Effect.gen(function* () {
              yield* db.run("INSERT INTO t VALUES (?)", ["interrupted"])
              yield* Deferred.succeed(started, undefined)
              return yield* Effect.never
            })
          )
        )
        yield* Deferred.await(started)
        yield* Fiber.interrupt(fiber)
        const rows = yield* db.locked(db.all<{ x: string }>("SELECT x FROM t ORDER BY x"))
        assert.deepStrictEqual(rows, [{ x: "committed" }])
        // A statement failing inside the transaction rolls it all back too.
        const duplicate = yield* Effect.flip(
          db.transaction(
            Effect.andThen(
              db.run("INSERT INTO t VALUES (?)", ["new"]),
              db.run("INSERT INTO t VALUES (?)", ["committed"])
            )
          )
        )
        assert.instanceOf(duplicate, StoreError)
        assert.strictEqual(yield* count(db), 1)
      })
    )
  )

  it.effect("serialises fibers: concurrent transactions never interleave on the one connection", () =>
    withDatabase(freshFile(), (db) =>
      Effect.gen(function* () {
        yield* setupTable(db)
        yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) =>
            db.transaction(
              Effect.gen(function* () {
                yield* db.run("INSERT INTO t VALUES (?)", [`a${i}`])
                yield* Effect.yieldNow
                yield* db.run("INSERT INTO t VALUES (?)", [`b${i}`])
              })
            ),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(yield* count(db), 80)
      })
    )
  )

  it.effect("fails with a StoreError naming the statement and SQLite's code, never the values bound", () =>
    withDatabase(freshFile(), (db) =>
      Effect.gen(function* () {
        yield* setupTable(db)
        const secret = "sb-canary-91bd3e"
        yield* db.run("INSERT INTO t VALUES (?)", [secret])
        const error = yield* Effect.flip(db.run("INSERT INTO t VALUES (?)", [secret]))
        assert.instanceOf(error, StoreError)
        assert.include(error.message, "SQLITE_CONSTRAINT_PRIMARYKEY")
        assert.include(error.message, "INSERT INTO t")
        assert.notInclude(error.message, secret)
        assert.notInclude(JSON.stringify(error), secret)
        assert.isDefined(error.cause)
      })
    )
  )

  it.effect("reports a file it cannot open as a StoreError", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(withDatabase(Path.join(dir, "missing", "dir", "x.db"), () => Effect.void))
      assert.instanceOf(error, StoreError)
    })
  )
})

describe("sqlite Migrations", () => {
  it("are numbered 1, 2, 3, … in order", () => {
    assert.deepStrictEqual(
      Migrations.migrations.map((m) => m.version),
      Migrations.migrations.map((_, i) => i + 1)
    )
    assert.strictEqual(Migrations.latestVersion, Migrations.migrations.length)
  })

  it.effect("bring a new file to the latest version; opening an up-to-date database writes nothing", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* Effect.void.pipe(Effect.provide(storeLayer(filename, keyA)))
      assert.strictEqual(
        withRaw(filename, (db) => db.pragma("user_version", { simple: true })),
        Migrations.latestVersion
      )
      const before = snapshot(dbFiles(filename))
      yield* Effect.void.pipe(Effect.provide(storeLayer(filename, keyA)))
      assert.deepStrictEqual(snapshot(dbFiles(filename)), before)
    })
  )

  it.effect("apply in one transaction: a failing migration leaves the database at the version before", () =>
    withDatabase(freshFile(), (db) =>
      Effect.gen(function* () {
        const good = { version: 1, name: "one", sql: "CREATE TABLE one (x); INSERT INTO one VALUES (1);" }
        const bad = { version: 2, name: "two", sql: "CREATE TABLE two (x); INSERT INTO nowhere VALUES (1);" }
        const third = { version: 3, name: "three", sql: "CREATE TABLE three (x);" }
        assert.deepStrictEqual(yield* db.transaction(Migrations.migrate(db, [good])), { from: 0, to: 1 })
        const error = yield* Effect.flip(db.transaction(Migrations.migrate(db, [good, bad, third])))
        assert.match(error.message, /^migration 2 \(two\) failed/)
        assert.strictEqual(yield* Migrations.currentVersion(db), 1)
        const tables = yield* db.all<{ name: string }>(
          "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
        )
        assert.deepStrictEqual(tables, [{ name: "one" }])
        const fixed = { ...bad, sql: "CREATE TABLE two (x);" }
        assert.deepStrictEqual(yield* db.transaction(Migrations.migrate(db, [good, fixed, third])), { from: 1, to: 3 })
      })
    )
  )

  it.effect("refuse a database written by a newer Switchboard, leaving it untouched", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* Effect.void.pipe(Effect.provide(storeLayer(filename, keyA)))
      const newer = Migrations.latestVersion + 7
      withRaw(filename, (db) => db.pragma(`user_version = ${newer}`))
      const before = snapshot(dbFiles(filename))
      const error = yield* Effect.flip(Effect.scoped(Layer.build(storeLayer(filename, keyA))))
      assert.instanceOf(error, StoreError)
      assert.include(
        error.message,
        `database was written by a newer Switchboard (schema ${newer} > ${Migrations.latestVersion})`
      )
      assert.deepStrictEqual(snapshot(dbFiles(filename)), before)
    })
  )

  it.effect("refuse a newer database before switching its journal mode", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const raw = new BetterSqlite3(filename)
      raw.pragma("journal_mode = DELETE")
      raw.exec("CREATE TABLE future (x); INSERT INTO future VALUES (1)")
      raw.pragma("user_version = 99")
      raw.close()
      const before = snapshot(dbFiles(filename))
      const error = yield* Effect.flip(Effect.scoped(Layer.build(storeLayer(filename, keyA))))
      assert.include(error.message, "schema 99 >")
      assert.deepStrictEqual(snapshot(dbFiles(filename)), before)
      assert.strictEqual(
        withRaw(filename, (db) => db.pragma("journal_mode", { simple: true })),
        "delete"
      )
    })
  )
})

describe("sqlite Store internals", () => {
  it.effect("lookups and keyset-paginated lists search an index, never scan or sort a table", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* Effect.void.pipe(Effect.provide(storeLayer(filename, keyA)))
      const { queries } = Store
      const checked: Array<{ sql: string; params: ReadonlyArray<unknown> }> = [
        { sql: queries.connectorByName, params: [ORG, "x"] },
        { sql: queries.connectionByName, params: [ORG, "x"] },
        { sql: queries.credentialByKey, params: ["ctr", "organization", ORG, "", "", "default"] }
      ]
      for (const after of [undefined, testId("ctr", 5)]) {
        for (const kind of [undefined, "http" as const]) {
          for (const namePrefix of [undefined, "git"]) {
            checked.push(queries.listConnectors(ORG, { limit: 100, after, kind, namePrefix }))
            checked.push(queries.listAudit(ORG, { limit: 100, after, action: kind, connectionId: namePrefix }))
            checked.push(
              queries.listConnections(ORG, {
                limit: 100,
                after,
                visibleTo: "alice",
                status: kind === undefined ? undefined : "active",
                connectorId: namePrefix === undefined ? undefined : testId("ctr", 1),
                namePrefix
              })
            )
          }
        }
      }
      withRaw(filename, (db) => {
        for (const { sql, params } of checked) {
          const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map(
            (row) => row.detail
          )
          assert.isTrue(
            plan.some((line) => /^SEARCH \w+ USING (COVERING )?(INDEX|PRIMARY KEY)/.test(line)),
            `${sql}\n${plan.join("\n")}`
          )
          assert.isFalse(
            plan.some((line) => line.startsWith("SCAN") || line.includes("TEMP B-TREE")),
            `${sql}\n${plan.join("\n")}`
          )
        }
      })
    })
  )

  it.effect(
    "a corrupt record is a StoreError; a sealed value that opens but does not decode never shows its content",
    () =>
      Effect.gen(function* () {
        const filename = freshFile()
        const canary = "sb-canary-c0ffee42"
        yield* Effect.gen(function* () {
          const store = yield* ConnectorStore
          const vault = yield* CredentialVault
          const connections = yield* ConnectionStore
          const connector = makeConnector(1)
          yield* store.insert(ORG, connector)
          yield* store.insert(ORG, makeConnector(2))
          yield* vault.put(makeCredential(1, connector.id))
          yield* connections.insert(makeConnection(1, connector.id), makeSecrets("s"))

          withRaw(filename, (db) =>
            db.prepare("UPDATE connectors SET record = ? WHERE id = ?").run("{not json", connector.id)
          )
          const notJson = yield* Effect.flip(store.get(ORG, connector.id))
          assert.instanceOf(notJson, StoreError)
          assert.include(notJson.message, `the stored connector ${connector.id} is corrupt`)
          withRaw(filename, (db) =>
            db.prepare("UPDATE connectors SET record = ? WHERE id = ?").run(JSON.stringify({ id: 1 }), connector.id)
          )
          assert.instanceOf(yield* Effect.flip(store.list(ORG, { limit: 10 })), StoreError)
          withRaw(filename, (db) =>
            db.prepare("UPDATE connections SET record = ? WHERE id = ?").run("[]", testId("conn", 1))
          )
          assert.instanceOf(yield* Effect.flip(connections.get(ORG, testId("conn", 1))), StoreError)

          // Sealed correctly for its row, but not a values object: the error must not quote the plaintext.
          const sealer = yield* makeSealer(keyA)
          const context = { table: "credentials", rowId: testId("cred", 1) }
          for (const plaintext of [`{"token": ${canary}}`, JSON.stringify({ token: { nested: canary } })]) {
            const sealed = yield* sealer.seal(Redacted.make(new TextEncoder().encode(plaintext)), context)
            withRaw(filename, (db) =>
              db.prepare("UPDATE credentials SET sealed = ? WHERE id = ?").run(Buffer.from(sealed.bytes), context.rowId)
            )
            const error = yield* Effect.flip(
              vault.get({ connectorId: connector.id, scope: "organization", owner: { org: ORG }, name: "default" })
            )
            assert.instanceOf(error, StoreError)
            assert.notInclude(error.message, canary)
            assert.notInclude(JSON.stringify(error), canary)
            // The parser's error quotes its input, so it is not kept as the cause.
            assert.isUndefined(error.cause)
          }
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
      })
  )

  it.effect("refuses a credential for a connector that does not exist", () =>
    Effect.gen(function* () {
      const vault = yield* CredentialVault
      const error = yield* Effect.flip(vault.put(makeCredential(1, testId("ctr", 404))))
      assert.instanceOf(error, StoreError)
      assert.include(error.message, `connector ${testId("ctr", 404)} does not exist`)
    }).pipe(Effect.provide(storeLayer(freshFile(), keyA)))
  )
})
