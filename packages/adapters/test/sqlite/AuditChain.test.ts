/**
 * The audit chain on the SQLite file and in memory: appends are chained per organization, and editing, deleting or
 * reordering rows by hand with better-sqlite3 is found by verification; records from before the chain (migration
 * 3) are counted, not verified. The head is sealed with the master key (migration 6): an attacker without the key
 * who rewrites records and recomputes every later hash and the plain head with node:crypto, or cuts the chain's
 * end, is caught; a database from before migration 6 verifies (head "unsealed") and is sealed by its next append;
 * a key rotation re-seals the heads.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import * as Sqlite from "@switchboard/adapters/sqlite"
import * as AuditChain from "@switchboard/core/AuditChain"
import { AuditLog, type AuditRecord } from "@switchboard/core/AuditLog"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { keyA, keyB, makeSealer, sealerLayer, storeLayer, tempDir, withRaw } from "./support.ts"

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

/** Verifies every chain of the file, opening the sealed heads with `key` (null: seals not checked). */
const verifyFile = (filename: string, key: Uint8Array | null = keyA) => {
  const database = Sqlite.Database.layer({ filename, schemaVersion: Sqlite.Migrations.latestVersion })
  return verifyAll.pipe(
    Effect.provide(
      Sqlite.AuditChain.layer.pipe(Layer.provide(key === null ? database : Layer.merge(database, sealerLayer(key))))
    )
  )
}

/**
 * The attacker without the master key: with write access to the file and node:crypto, edits record `seq` of org
 * `local` (`edit`), recomputes the hash of it and of every later record, and rewrites the plain head.
 */
const rewriteFrom = (filename: string, seq: number, edit: (record: string) => string) =>
  withRaw(filename, (db) => {
    const rows = db
      .prepare("SELECT seq, prev_hash, record FROM audit WHERE org = 'local' AND seq >= ? ORDER BY seq")
      .all(seq) as Array<{ seq: number; prev_hash: string; record: string }>
    let prev = rows[0]?.prev_hash ?? AuditChain.genesis
    for (const row of rows) {
      const record = row.seq === seq ? edit(row.record) : row.record
      const hash = Crypto.createHash("sha256")
        .update(AuditChain.canonical(row.seq, prev, JSON.parse(record)))
        .digest("hex")
      db.prepare("UPDATE audit SET record = ?, prev_hash = ?, hash = ? WHERE org = 'local' AND seq = ?").run(
        record,
        prev,
        hash,
        row.seq
      )
      db.prepare("UPDATE audit_heads SET seq = ?, hash = ? WHERE org = 'local'").run(row.seq, hash)
      prev = hash
    }
  })

const toFailure = (text: string) => {
  const edited = text.replace('"success"', '"failure"')
  assert.notStrictEqual(edited, text)
  return edited
}

const local = (results: ReadonlyArray<AuditChain.Verification>) => results.find((r) => r.org === "local")

describe("sqlite audit chain", () => {
  it.effect("appends are chained per organization and verify", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(5)
      const results = yield* verifyFile(filename)
      assert.deepStrictEqual(
        results.map((r) => [r.org, r.ok, r.records, r.head?.seq, r.head_seal]),
        [
          ["local", true, 5, 5, "verified"],
          ["other", true, 2, 2, "verified"]
        ]
      )
      // Without the key the hashes are still checked; the seals are not.
      assert.deepStrictEqual(
        (yield* verifyFile(filename, null)).map((r) => [r.ok, r.head_seal]),
        [
          [true, "unchecked"],
          [true, "unchecked"]
        ]
      )
      // The sealed head is beside the plain one, bound to its org, and does not contain it in clear.
      const head = withRaw(filename, (db) =>
        db.prepare("SELECT hash, key_id, sealed FROM audit_heads WHERE org = 'local'").get()
      ) as { hash: string; key_id: string; sealed: Buffer }
      assert.strictEqual(head.key_id, (yield* makeSealer(keyA)).keyId)
      assert.isFalse(head.sealed.toString("latin1").includes(head.hash))
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

describe("sqlite audit chain: the sealed head", () => {
  it.effect("records rewritten with every later hash and the plain head recomputed (no key) are found", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(5)
      rewriteFrom(filename, 3, toFailure)
      // The forgery is consistent: without the key nothing but the seal could tell.
      const unkeyed = local(yield* verifyFile(filename, null))
      assert.deepStrictEqual([unkeyed?.ok, unkeyed?.head_seal], [true, "unchecked"])
      const results = yield* verifyFile(filename)
      const result = local(results)
      assert.isFalse(result?.ok)
      assert.strictEqual(result?.head_seal, "forged")
      assert.deepStrictEqual(
        result?.problems.map((p) => [p.problem, p.seq]),
        [["head_forged", 5]]
      )
      assert.match(result?.problems[0]?.message ?? "", /without the master key/)
      assert.isTrue(results.find((r) => r.org === "other")?.ok)
    })
  )

  it.effect("only the last record rewritten is found too", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(4)
      rewriteFrom(filename, 4, (text) => text.replace('"t4"', '"t9"'))
      assert.deepStrictEqual(
        local(yield* verifyFile(filename))?.problems.map((p) => p.problem),
        ["head_forged"]
      )
    })
  )

  it.effect("the last records deleted and the plain head rewritten to match are found (truncated)", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(5)
      withRaw(filename, (db) => {
        db.prepare("DELETE FROM audit WHERE org = 'local' AND seq > 3").run()
        const last = db.prepare("SELECT hash FROM audit WHERE org = 'local' AND seq = 3").get() as { hash: string }
        db.prepare("UPDATE audit_heads SET seq = 3, hash = ? WHERE org = 'local'").run(last.hash)
      })
      const result = local(yield* verifyFile(filename))
      assert.isFalse(result?.ok)
      assert.deepStrictEqual(
        result?.problems.map((p) => [p.problem, p.seq]),
        [["truncated", 5]]
      )
      assert.match(result?.problems[0]?.message ?? "", /ends at record 5, it ends at 3/)
    })
  )

  it.effect("a sealed head that does not open, or another org's sealed head copied over, is head_forged", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(3)
      withRaw(filename, (db) => {
        const row = db.prepare("SELECT sealed FROM audit_heads WHERE org = 'local'").get() as { sealed: Buffer }
        const bytes = Buffer.from(row.sealed)
        bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1
        db.prepare("UPDATE audit_heads SET sealed = ? WHERE org = 'local'").run(bytes)
      })
      const flipped = local(yield* verifyFile(filename))
      assert.deepStrictEqual(
        [flipped?.ok, flipped?.head_seal, flipped?.problems.map((p) => p.problem)],
        [false, "forged", ["head_forged"]]
      )
      assert.match(flipped?.problems[0]?.message ?? "", /does not open with the master key/)

      const copied = yield* seeded(2)
      withRaw(copied, (db) =>
        db.exec(`UPDATE audit_heads SET (key_id, sealed) = (SELECT key_id, sealed FROM audit_heads WHERE org = 'other')
                 WHERE org = 'local'`)
      )
      assert.deepStrictEqual(
        local(yield* verifyFile(copied))?.problems.map((p) => p.problem),
        ["head_forged"]
      )
    })
  )

  it.effect("verifying with another key is a key mismatch, not every head forged", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(2)
      const error = yield* Effect.flip(verifyFile(filename, keyB))
      assert.strictEqual(error._tag, "SealError")
      assert.strictEqual(error.code, "key_mismatch")
    })
  )

  it.effect("an append after a rewrite does not launder it: the seal stays on the real head", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(4)
      rewriteFrom(filename, 2, toFailure)
      yield* Effect.flatMap(AuditLog, (log) => log.append(record(5))).pipe(Effect.provide(storeLayer(filename, keyA)))
      const result = local(yield* verifyFile(filename))
      assert.deepStrictEqual(
        [result?.ok, result?.records, result?.problems.map((p) => [p.problem, p.seq])],
        [false, 5, [["head_forged", 4]]]
      )
    })
  )

  it.effect("a seal removed by hand is head_forged, and the next append does not seal over it", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(3)
      rewriteFrom(filename, 3, toFailure)
      withRaw(filename, (db) => db.prepare("UPDATE audit_heads SET key_id = NULL, sealed = NULL").run())
      const stripped = local(yield* verifyFile(filename))
      assert.deepStrictEqual([stripped?.ok, stripped?.head_seal], [false, "forged"])
      assert.match(stripped?.problems[0]?.message ?? "", /its seal was removed/)
      yield* Effect.flatMap(AuditLog, (log) => log.append(record(4))).pipe(Effect.provide(storeLayer(filename, keyA)))
      assert.deepStrictEqual(
        local(yield* verifyFile(filename))?.problems.map((p) => p.problem),
        ["head_forged"]
      )
    })
  )

  it.effect("a database from before migration 6 verifies (head unsealed); the store seals its heads on opening", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(3)
      // Back to schema 5, as an older Switchboard left it.
      withRaw(filename, (db) =>
        db.exec(`
          ALTER TABLE audit_heads DROP COLUMN key_id;
          ALTER TABLE audit_heads DROP COLUMN sealed;
          PRAGMA user_version = 5;
        `)
      )
      const before = local(yield* verifyFile(filename))
      assert.deepStrictEqual([before?.ok, before?.head_seal, before?.records], [true, "unsealed", 3])
      // Opening the store migrates to 6 and seals the heads it finds; its next append keeps them sealed.
      yield* Effect.scoped(Layer.build(storeLayer(filename, keyA)))
      assert.strictEqual(
        withRaw(filename, (db) => db.pragma("user_version", { simple: true })),
        6
      )
      const opened = yield* verifyFile(filename)
      assert.deepStrictEqual(
        opened.map((r) => [r.org, r.ok, r.head_seal]),
        [
          ["local", true, "verified"],
          ["other", true, "verified"]
        ]
      )
      yield* Effect.flatMap(AuditLog, (log) => log.append(record(4))).pipe(Effect.provide(storeLayer(filename, keyA)))
      const after = local(yield* verifyFile(filename))
      assert.deepStrictEqual([after?.ok, after?.head_seal, after?.records], [true, "verified", 4])
    })
  )

  it.effect("a key rotation re-seals the heads: the chain verifies under the new key", () =>
    Effect.gen(function* () {
      const filename = yield* seeded(3)
      const counts = yield* Effect.gen(function* () {
        const db = yield* Sqlite.Database.SqliteDatabase
        return yield* Sqlite.Store.rotateKey(db, yield* makeSealer(keyA), yield* makeSealer(keyB))
      }).pipe(Effect.provide(Sqlite.Database.layer({ filename })))
      assert.strictEqual(counts.keyId, (yield* makeSealer(keyB)).keyId)
      assert.deepStrictEqual(
        (yield* verifyFile(filename, keyB)).map((r) => [r.org, r.ok, r.head_seal]),
        [
          ["local", true, "verified"],
          ["other", true, "verified"]
        ]
      )
      // And appends under the new key keep it so.
      yield* Effect.flatMap(AuditLog, (log) => log.append(record(4))).pipe(Effect.provide(storeLayer(filename, keyB)))
      const after = local(yield* verifyFile(filename, keyB))
      assert.deepStrictEqual([after?.ok, after?.head?.seq, after?.head_seal], [true, 4, "verified"])
      // The old key no longer opens anything here.
      assert.strictEqual((yield* Effect.flip(verifyFile(filename, keyA))).code, "key_mismatch")
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
