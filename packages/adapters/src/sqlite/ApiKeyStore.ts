/**
 * The SQLite `ApiKeyStore`: the `api_keys` table (migration 5) of the store's database file. A row holds the
 * key's description and the hex SHA-256 digest of the key, never the key.
 */
import { ApiKeyStore } from "@switchboard/core/ApiKeyStore"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { COLUMNS, insertParams, keyOf, type Row, storedOf } from "../internal/apiKeys.ts"
import { type Database, SqliteDatabase } from "./Database.ts"

/** The store over an open database (migrated to version 5 or later). */
export const makeSqlite = (db: Database) =>
  ApiKeyStore.of({
    insert: ({ key, digest }) =>
      db
        .transaction(
          db.run(
            `INSERT INTO api_keys (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            insertParams(key, digest)
          ),
          { durable: true }
        )
        .pipe(Effect.asVoid),
    get: (id) =>
      db.locked(db.get<Row>(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`, [id])).pipe(Effect.flatMap(storedOf)),
    list: db
      .locked(db.all<Row>(`SELECT ${COLUMNS} FROM api_keys ORDER BY id`))
      .pipe(Effect.flatMap((rows) => Effect.forEach(rows, keyOf))),
    revoke: (id, at) =>
      db
        .transaction(
          Effect.andThen(
            db.run("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [at, id]),
            db.get<Row>(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`, [id])
          ),
          { durable: true }
        )
        .pipe(
          Effect.flatMap((row) =>
            row === undefined ? Effect.succeed(Option.none()) : Effect.map(keyOf(row), Option.some)
          )
        ),
    touch: (id, at) =>
      db.transaction(db.run("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [at, id])).pipe(Effect.asVoid)
  })

/** The store on the `SqliteDatabase` the other SQLite layers share. */
export const layerSqlite: Layer.Layer<ApiKeyStore, never, SqliteDatabase> = Layer.effect(
  ApiKeyStore,
  Effect.map(Effect.service(SqliteDatabase), makeSqlite)
)
