/**
 * The audit chain on the SQLite file and in memory: appends are chained per organization, and editing, deleting or
 * reordering rows by hand with better-sqlite3 is found by verification; records from before the chain (migration
 * 3) are counted, not verified.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import * as Sqlite from "@switchboard/adapters/sqlite"
import * as AuditChain from "@switchboard/core/AuditChain"
import { AuditLog, type AuditRecord } from "@switchboard/core/AuditLog"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { keyA, storeLayer, tempDir, withRaw } from "./support.ts"

const dir = tempDir("chain")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const record = (i: number, org = "local"): AuditRecord => ({
  id: `aud_${String(i).padStart(6, "0")}`,
  at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
  org,
  workspace: "default",
  actor: "me",
  action: i % 2 === 0 ? "connection.proxy" : "connector.create",
  outcome: "success",
  target: `t${i}`,
  ...(i % 2 === 0 ? { method: "GET", path: "/x", status: 200, duration_ms: 3 } : {})
})

const verifyAll = Effect.gen(function* () {
  const chain = yield* AuditChain.AuditChain
  const orgs = yield* chain.orgs()
  return yield* Effect.forEach(orgs, (org) =>
    Effect.map(chain.links(org), (r) => AuditChain.verify(org, r.links, r.head, r.unchained, chain.digest))
  )
})

let n = 0
/** A database file with `count` records of org `local` and 2 of org `other`, written through the store. */
const seeded = (count: number) => {
  const filename = Path.join(dir, `audit-${++n}.db`)
  return Effect.gen(function* () {
    const log = yield* AuditLog
    for (let i = 1; i <= count; i++) yield* log.append(record(i))
    yield* log.append(record(100, "other"))
    yield* log.append(record(101, "other"))
    return filename
  }).pipe(Effect.provide(storeLayer(filename, keyA)))
}

const verifyFile = (filename: string) =>
  verifyAll.pipe(
    Effect.provide(
      Sqlite.AuditChain.layer.pipe(
        Layer.provide(Sqlite.Database.layer({ filename, schemaVersion: Sqlite.Migrations.latestVersion }))
      )
    )
  )

const local = (results: ReadonlyArray<AuditChain.Verification>) => results.find((r) => r.org === "local")

describe("sqlite audit chain", () => {
  it.effect("appends are chained per organization and verify", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(5)
      const results = yield* verifyFile(filename)
      assert.deepStrictEqual(
        results.map((r) => [r.org, r.ok, r.records, r.head?.seq]),
        [
          ["local", true, 5, 5],
          ["other", true, 2, 2]
        ]
      )
      const rows = withRaw(filename, (db) =>
        db.prepare("SELECT seq, prev_hash, hash FROM audit WHERE org = 'local' ORDER BY seq").all()
      ) as Array<{ seq: number; prev_hash: string; hash: string }>
      assert.strictEqual(rows[0]?.prev_hash, AuditChain.genesis)
      assert.strictEqual(rows[1]?.prev_hash, rows[0]?.hash)
      assert.match(rows[0]?.hash ?? "", /^[0-9a-f]{64}$/)
    })
  )

  it.effect("a record edited by hand is found; the other organization's chain is untouched", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(5)
      withRaw(filename, (db) => {
        const row = db.prepare("SELECT record FROM audit WHERE org = 'local' AND seq = 3").get() as { record: string }
        const edited = row.record.replace('"success"', '"failure"')
        assert.notStrictEqual(edited, row.record)
        db.prepare("UPDATE audit SET record = ? WHERE org = 'local' AND seq = 3").run(edited)
      })
      const results = yield* verifyFile(filename)
      assert.deepStrictEqual(
        local(results)?.problems.map((p) => [p.problem, p.seq]),
        [["edited", 3]]
      )
      assert.isTrue(results.find((r) => r.org === "other")?.ok)
    })
  )

  it.effect("a deleted record, and a deleted last record, are found", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(5)
      withRaw(filename, (db) => db.prepare("DELETE FROM audit WHERE org = 'local' AND seq = 2").run())
      assert.deepStrictEqual(
        local(yield* verifyFile(filename))?.problems.map((p) => [p.problem, p.seq]),
        [["missing", 3]]
      )
      const other = yield* seeded(4)
      withRaw(other, (db) => db.prepare("DELETE FROM audit WHERE org = 'local' AND seq = 4").run())
      assert.deepStrictEqual(
        local(yield* verifyFile(other))?.problems.map((p) => p.problem),
        ["truncated"]
      )
    })
  )

  it.effect("reordered records (sequence numbers swapped by hand) are found", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(5)
      withRaw(filename, (db) => {
        db.exec(`
          UPDATE audit SET seq = -1 WHERE org = 'local' AND seq = 2;
          UPDATE audit SET seq = 2 WHERE org = 'local' AND seq = 3;
          UPDATE audit SET seq = 3 WHERE org = 'local' AND seq = -1;
        `)
      })
      const result = local(yield* verifyFile(filename))
      assert.isFalse(result?.ok)
      assert.isTrue(
        result?.problems.some((p) => p.problem === "reordered"),
        JSON.stringify(result?.problems)
      )
    })
  )

  it.effect("records written before the chain are counted as unchained; the chain starts after them", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(2)
      withRaw(filename, (db) =>
        db
          .prepare("INSERT INTO audit (org, id, connection_id, action, record) VALUES (?, ?, NULL, ?, ?)")
          .run("local", "aud_000000", "connector.create", JSON.stringify(record(0)))
      )
      const result = local(yield* verifyFile(filename))
      assert.isTrue(result?.ok)
      assert.strictEqual(result?.unchained, 1)
      assert.strictEqual(result?.records, 2)
    })
  )
})

describe("memory audit chain", () => {
  it.effect("appends are chained and verify", () =>
    Effect.gen(function* () {
      const log = yield* AuditLog
      for (let i = 1; i <= 3; i++) yield* log.append(record(i))
      const [result] = yield* verifyAll
      assert.isTrue(result?.ok)
      assert.strictEqual(result?.records, 3)
      const read = yield* Effect.flatMap(AuditChain.AuditChain, (c) => c.links("local"))
      assert.strictEqual(read.links[1]?.prev_hash, read.links[0]?.hash)
    }).pipe(Effect.provide(Layer.fresh(Memory.layer)))
  )
})
