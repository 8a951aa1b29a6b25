/**
 * The `OAuthStateStore` port in memory and on the SQLite store's database. In SQLite, flows and records are
 * sealed with the `Sealer` under their own row (table and id are the associated data, so a sealed flow copied
 * into another row does not open), and `switchboard key rotate` re-seals them with everything else. Leases are
 * plain rows taken in a BEGIN IMMEDIATE transaction, so two processes sharing the file cannot both hold one.
 */
import { SealError } from "@switchboard/core/Errors"
import { OAuthStateStore, type StoredFlow } from "@switchboard/core/OAuthStateStore"
import { type SealContext, Sealer } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { checkValueContext } from "../sodium/Sealer.ts"
import { type Database, SqliteDatabase } from "../sqlite/Database.ts"

type SealerService = (typeof Sealer)["Service"]
type Service = (typeof OAuthStateStore)["Service"]

/** The state store in memory: for tests and the in-memory daemon. */
export const makeMemory = Effect.sync((): Service => {
  const flows = new Map<string, StoredFlow>()
  const records = new Map<string, Redacted.Redacted<string>>()
  const leases = new Map<string, { readonly holder: string; readonly until: number }>()
  return OAuthStateStore.of({
    putFlow: (flow) => Effect.sync(() => void flows.set(flow.id, flow)),
    getFlow: (id) => Effect.sync(() => Option.fromUndefinedOr(flows.get(id))),
    deleteFlow: (id) => Effect.sync(() => flows.delete(id)),
    deleteExpiredFlows: (now) =>
      Effect.sync(() => {
        let n = 0
        for (const [id, flow] of flows) {
          if (flow.expires_at <= now) {
            flows.delete(id)
            n++
          }
        }
        return n
      }),
    getRecord: (key) => Effect.sync(() => Option.fromUndefinedOr(records.get(key))),
    putRecord: (key, value) => Effect.sync(() => void records.set(key, value)),
    deleteRecord: (key) => Effect.sync(() => records.delete(key)),
    acquireLease: (key, holder, now, until) =>
      Effect.sync(() => {
        const current = leases.get(key)
        if (current !== undefined && current.holder !== holder && current.until > now) return false
        leases.set(key, { holder, until })
        return true
      }),
    releaseLease: (key, holder) =>
      Effect.sync(() => {
        if (leases.get(key)?.holder === holder) leases.delete(key)
      })
  })
})

/** A fresh in-memory state store per build. */
export const layerMemory: Layer.Layer<OAuthStateStore> = Layer.effect(OAuthStateStore, makeMemory)

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

const toBlob = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

interface SealedRow {
  readonly key_id: string
  readonly sealed: Uint8Array
}

/** The state store on an open (migrated) database, sealing with `sealer`. */
export const makeSqlite = (db: Database, sealer: SealerService): Service => {
  const seal = (value: Redacted.Redacted<string>, context: SealContext) =>
    Effect.suspend(() => {
      const bytes = encoder.encode(Redacted.value(value))
      return sealer.seal(Redacted.make(bytes), context).pipe(Effect.ensuring(Effect.sync(() => bytes.fill(0))))
    })
  const open = (row: SealedRow, context: SealContext) =>
    Effect.flatMap(sealer.open({ keyId: row.key_id, bytes: row.sealed }, context), (opened) =>
      Effect.sync(() => {
        const bytes = Redacted.value(opened)
        const text = decoder.decode(bytes)
        bytes.fill(0)
        return Redacted.make(text)
      })
    )
  // Writing under a key the database no longer uses would leave values nothing opens (another process rotated).
  const ensureCurrentKey = Effect.flatMap(
    db.get<{ key_id: string }>("SELECT key_id FROM meta WHERE key = ?", [checkValueContext.rowId]),
    (row) =>
      row?.key_id === sealer.keyId
        ? Effect.void
        : Effect.fail(
            new SealError({
              reason: "key_mismatch",
              message: "the master key does not match this database (the key was rotated); restart with the new key"
            })
          )
  )
  const flowContext = (id: string): SealContext => ({ table: "oauth_flows", rowId: id })
  const recordContext = (key: string): SealContext => ({ table: "oauth_records", rowId: key })

  return OAuthStateStore.of({
    putFlow: (flow) =>
      db.transaction(
        Effect.gen(function* () {
          yield* ensureCurrentKey
          const sealed = yield* seal(flow.body, flowContext(flow.id))
          yield* db.run("INSERT OR REPLACE INTO oauth_flows (id, expires_at, key_id, sealed) VALUES (?, ?, ?, ?)", [
            flow.id,
            flow.expires_at,
            sealed.keyId,
            toBlob(sealed.bytes)
          ])
        }),
        { durable: true }
      ),
    getFlow: (id) =>
      Effect.gen(function* () {
        const row = yield* db.locked(
          db.get<SealedRow & { expires_at: string }>(
            "SELECT expires_at, key_id, sealed FROM oauth_flows WHERE id = ?",
            [id]
          )
        )
        if (row === undefined) return Option.none<StoredFlow>()
        const body = yield* open(row, flowContext(id))
        return Option.some<StoredFlow>({ id, expires_at: row.expires_at, body })
      }),
    deleteFlow: (id) =>
      Effect.map(db.transaction(db.run("DELETE FROM oauth_flows WHERE id = ?", [id])), (result) => result.changes > 0),
    deleteExpiredFlows: (now) =>
      Effect.map(
        db.transaction(db.run("DELETE FROM oauth_flows WHERE expires_at <= ?", [now])),
        (result) => result.changes
      ),
    getRecord: (key) =>
      Effect.gen(function* () {
        const row = yield* db.locked(db.get<SealedRow>("SELECT key_id, sealed FROM oauth_records WHERE id = ?", [key]))
        if (row === undefined) return Option.none<Redacted.Redacted<string>>()
        return Option.some(yield* open(row, recordContext(key)))
      }),
    putRecord: (key, value) =>
      db.transaction(
        Effect.gen(function* () {
          yield* ensureCurrentKey
          const sealed = yield* seal(value, recordContext(key))
          yield* db.run("INSERT OR REPLACE INTO oauth_records (id, key_id, sealed) VALUES (?, ?, ?)", [
            key,
            sealed.keyId,
            toBlob(sealed.bytes)
          ])
        }),
        { durable: true }
      ),
    deleteRecord: (key) =>
      Effect.map(
        db.transaction(db.run("DELETE FROM oauth_records WHERE id = ?", [key])),
        (result) => result.changes > 0
      ),
    acquireLease: (key, holder, now, until) =>
      db.transaction(
        Effect.gen(function* () {
          const row = yield* db.get<{ holder: string; until_ms: number }>(
            "SELECT holder, until_ms FROM oauth_leases WHERE key = ?",
            [key]
          )
          if (row !== undefined && row.holder !== holder && row.until_ms > now) return false
          yield* db.run("INSERT OR REPLACE INTO oauth_leases (key, holder, until_ms) VALUES (?, ?, ?)", [
            key,
            holder,
            until
          ])
          return true
        })
      ),
    releaseLease: (key, holder) =>
      Effect.asVoid(db.transaction(db.run("DELETE FROM oauth_leases WHERE key = ? AND holder = ?", [key, holder])))
  })
}

/** The state store on the provided `SqliteDatabase` (opened and migrated by the SQLite store layer). */
export const layerSqlite: Layer.Layer<OAuthStateStore, never, SqliteDatabase | Sealer> = Layer.effect(
  OAuthStateStore,
  Effect.gen(function* () {
    const db = yield* SqliteDatabase
    const sealer = yield* Sealer
    return makeSqlite(db, sealer)
  })
)
