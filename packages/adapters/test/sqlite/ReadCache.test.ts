/**
 * `Database.cachedGet` (the reads of every call: connector, connection, credential) keeps rows while the file is
 * unchanged, and never serves one from before a change: a write on the same connection, a write through another
 * connection to the file (as another process makes), a deletion, and a write inside a transaction still open on
 * the same connection are all seen by the very next read; a `get` that writes (`RETURNING`) counts as a write.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ConnectionStore } from "@switchboard/core/ConnectionStore"
import { ConnectorStore } from "@switchboard/core/ConnectorStore"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Sqlite from "../../src/sqlite/index.ts"
import { makeConnection, makeConnector, makeSecrets, ORG } from "../StoreSuite.ts"
import { keyA, storeLayer, tempDir, withRaw } from "./support.ts"

const { Database } = Sqlite

const dir = tempDir("read-cache")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => Path.join(dir, `db-${++files}.db`)

const withDatabase = <A, E>(filename: string, f: (db: Sqlite.Database.Database) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(Database.open({ filename }), f))

const SELECT = "SELECT x FROM t WHERE k = ?"
const read = (db: Sqlite.Database.Database, k: string) =>
  Effect.map(db.cachedGet<{ x: string }>(SELECT, [k]), (row) => row?.x)

describe("sqlite cachedGet", () => {
  it.effect("serves a repeated read, and sees writes of this connection, of another one, and deletions", () => {
    const filename = freshFile()
    return withDatabase(filename, (db) =>
      Effect.gen(function* () {
        yield* db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, x TEXT)")
        yield* db.run("INSERT INTO t (k, x) VALUES (?, ?)", ["a", "one"])
        assert.strictEqual(yield* read(db, "a"), "one")
        const first = yield* db.cachedGet<{ x: string }>(SELECT, ["a"])
        // Unchanged file: the very row read before.
        assert.strictEqual(yield* db.cachedGet<{ x: string }>(SELECT, ["a"]), first)
        assert.isUndefined(yield* read(db, "b"))

        yield* db.run("UPDATE t SET x = ? WHERE k = ?", ["two", "a"])
        assert.strictEqual(yield* read(db, "a"), "two")

        // Another connection to the file, in the same turn of the event loop.
        withRaw(filename, (raw) => raw.prepare("UPDATE t SET x = ? WHERE k = ?").run("three", "a"))
        assert.strictEqual(yield* read(db, "a"), "three")
        withRaw(filename, (raw) => raw.prepare("INSERT INTO t (k, x) VALUES (?, ?)").run("b", "new"))
        assert.strictEqual(yield* read(db, "b"), "new")
        withRaw(filename, (raw) => raw.prepare("DELETE FROM t WHERE k = ?").run("a"))
        assert.isUndefined(yield* read(db, "a"))

        // A read that writes empties the cache too.
        yield* db.get("INSERT INTO t (k, x) VALUES (?, ?) RETURNING k", ["a", "returned"])
        assert.strictEqual(yield* read(db, "a"), "returned")
      })
    )
  })

  it.effect("sees a write made inside a transaction on the same connection", () =>
    withDatabase(freshFile(), (db) =>
      Effect.gen(function* () {
        yield* db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, x TEXT)")
        yield* db.run("INSERT INTO t (k, x) VALUES (?, ?)", ["a", "one"])
        assert.strictEqual(yield* read(db, "a"), "one")
        yield* db.transaction(db.run("UPDATE t SET x = ? WHERE k = ?", ["two", "a"]))
        assert.strictEqual(yield* read(db, "a"), "two")
        // A failed transaction rolls back: the row read afterwards is the committed one.
        const failed = yield* Effect.flip(
          db.transaction(
            Effect.andThen(db.run("UPDATE t SET x = ? WHERE k = ?", ["lost", "a"]), Effect.fail("no" as const))
          )
        )
        assert.strictEqual(failed, "no")
        assert.strictEqual(yield* read(db, "a"), "two")
      })
    )
  )

  it.effect("connector and connection reads see a change made through another store on the file at once", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const connector = makeConnector(1)
      const connection = makeConnection(1, connector.id)
      const other = yield* Layer.build(storeLayer(filename, keyA))
      const otherConnectors = Context.get(other, ConnectorStore)
      const otherConnections = Context.get(other, ConnectionStore)
      yield* Effect.gen(function* () {
        const connectors = yield* ConnectorStore
        const connections = yield* ConnectionStore
        yield* connectors.insert(ORG, connector)
        yield* connections.insert(connection, makeSecrets("s"))
        for (let i = 0; i < 2; i++) {
          assert.strictEqual(
            Option.getOrThrow(yield* connectors.get(ORG, connector.id)).display_name,
            connector.display_name
          )
          assert.strictEqual(Option.getOrThrow(yield* connections.get(ORG, connection.id)).name, connection.name)
        }
        const renamed = { ...connector, display_name: "Renamed elsewhere", version: connector.version + 1 }
        yield* otherConnectors.update(ORG, renamed)
        assert.strictEqual(
          Option.getOrThrow(yield* connectors.get(ORG, connector.id)).display_name,
          "Renamed elsewhere"
        )
        yield* otherConnections.delete(ORG, connection.id)
        assert.isTrue(Option.isNone(yield* connections.get(ORG, connection.id)))
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
    }).pipe(Effect.scoped)
  )
})
