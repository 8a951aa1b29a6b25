/**
 * The SQLite audit log's group commit: records of calls (`connection.proxy`, `tool.call`) are queued and written
 * together, and nothing is lost or reordered: a `list` sees every record appended before it, a record of a
 * change writes the queue first in the same transaction, a full queue is written at once, and closing the
 * layer writes what is left. The chain over batched and single writes verifies.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Sqlite from "@switchboard/adapters/sqlite"
import * as AuditChain from "@switchboard/core/AuditChain"
import { AuditLog, type AuditRecord } from "@switchboard/core/AuditLog"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { keyA, storeLayer, tempDir, withRaw } from "./support.ts"

const dir = tempDir("audit-batch")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

let n = 0
const freshFile = () => Path.join(dir, `audit-${++n}.db`)

const record = (i: number, action = "connection.proxy"): AuditRecord => ({
  id: `aud_${String(i).padStart(6, "0")}`,
  at: new Date(Date.UTC(2026, 0, 1, 0, 0, i % 60)).toISOString(),
  org: "local",
  workspace: "default",
  actor: "me",
  action,
  outcome: "success",
  target: `t${i}`,
  ...(action === "connection.proxy" ? { method: "GET", path: "/x", status: 200, duration_ms: 3 } : {})
})

/** The rows on disk, read beside the store: id, action and chain position, in chain order. */
const rowsOf = (filename: string) =>
  withRaw(filename, (db) =>
    db.prepare("SELECT id, action, seq FROM audit WHERE org = 'local' ORDER BY seq").all()
  ) as Array<{ id: string; action: string; seq: number }>

const verify = (filename: string) =>
  Effect.gen(function* () {
    const chain = yield* AuditChain.AuditChain
    const read = yield* chain.links("local")
    return AuditChain.verify("local", read.links, read.head, read.unchained, chain.digest)
  }).pipe(
    Effect.provide(
      Sqlite.AuditChain.layer.pipe(
        Layer.provide(Sqlite.Database.layer({ filename, schemaVersion: Sqlite.Migrations.latestVersion }))
      )
    )
  )

describe("sqlite audit group commit", () => {
  it.effect("a list sees every record of a call appended before it, newest first", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const listed = yield* Effect.gen(function* () {
        const log = yield* AuditLog
        for (let i = 1; i <= 5; i++) yield* log.append(record(i))
        return yield* log.list("local", { limit: 10 })
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
      assert.deepStrictEqual(
        listed.map((r) => r.id),
        [5, 4, 3, 2, 1].map((i) => record(i).id)
      )
      assert.deepStrictEqual(
        rowsOf(filename).map((r) => [r.id, r.seq]),
        [1, 2, 3, 4, 5].map((i) => [record(i).id, i])
      )
    })
  )

  it.effect("a record of a change writes the queued records of calls first, in order, before append returns", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const onDisk = yield* Effect.gen(function* () {
        const log = yield* AuditLog
        yield* log.append(record(1))
        yield* log.append(record(2, "tool.call"))
        yield* log.append(record(3, "connector.create"))
        // Read beside the store while its layer is still open: the change and what was queued are on disk.
        return rowsOf(filename)
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
      assert.deepStrictEqual(
        onDisk.map((r) => [r.id, r.action, r.seq]),
        [
          [record(1).id, "connection.proxy", 1],
          [record(2).id, "tool.call", 2],
          [record(3).id, "connector.create", 3]
        ]
      )
    })
  )

  it.effect("closing the layer writes what is still queued; the chain verifies", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* Effect.gen(function* () {
        const log = yield* AuditLog
        yield* log.append(record(1, "connector.create"))
        for (let i = 2; i <= 4; i++) yield* log.append(record(i))
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
      assert.deepStrictEqual(
        rowsOf(filename).map((r) => r.seq),
        [1, 2, 3, 4]
      )
      const result = yield* verify(filename)
      assert.isTrue(result.ok)
      assert.strictEqual(result.records, 4)
    })
  )

  it.effect("a full queue is written at once, without waiting", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const written = yield* Effect.gen(function* () {
        const log = yield* AuditLog
        for (let i = 1; i <= 300; i++) yield* log.append(record(i))
        // At least the first full batch is on disk before anything else runs.
        const early = rowsOf(filename).length
        const listed = yield* log.list("local", { limit: 500 })
        return { early, listed: listed.length }
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
      assert.isAtLeast(written.early, 256)
      assert.strictEqual(written.listed, 300)
      const result = yield* verify(filename)
      assert.isTrue(result.ok)
      assert.strictEqual(result.records, 300)
    })
  )

  it.effect("an invalid record of a call is refused when appended, and nothing of it is written", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const error = yield* Effect.gen(function* () {
        const log = yield* AuditLog
        return yield* Effect.flip(log.append({ ...record(1), status: 1.5 }))
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
      assert.strictEqual(error._tag, "StoreError")
      assert.match(error.message, /audit record aud_000001/)
      assert.deepStrictEqual(rowsOf(filename), [])
    })
  )
})
