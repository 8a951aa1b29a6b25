/**
 * The PostgreSQL `ApiKeyStore`: the `api_keys` table (migration 5) of the team server's database, shared by every
 * daemon. A row holds the key's description and the hex SHA-256 digest of the key, never the key. Keys are looked
 * up by id (the id is part of the key a caller presents), across orgs; the row carries its org, which the
 * principal of the key is.
 */
import { ApiKeyStore } from "@switchboard/core/ApiKeyStore"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { COLUMNS, insertParams, keyOf, type Row, storedOf } from "../internal/apiKeys.ts"
import { type Database, PostgresDatabase } from "./Database.ts"

/** The store over an open database (migrated to version 5 or later). */
export const make = (db: Database) =>
  ApiKeyStore.of({
    insert: ({ key, digest }) =>
      db
        .run(
          `INSERT INTO api_keys (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
          insertParams(key, digest)
        )
        .pipe(Effect.asVoid),
    get: (id) => db.get<Row>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id]).pipe(Effect.flatMap(storedOf)),
    list: db
      .all<Row>(`SELECT ${COLUMNS} FROM api_keys ORDER BY id`)
      .pipe(Effect.flatMap((rows) => Effect.forEach(rows, keyOf))),
    // `revoked_at IS NULL` in the UPDATE: a second revoke (from any host) keeps the first time.
    revoke: (id, at) =>
      db
        .transaction((tx) =>
          Effect.andThen(
            tx.run("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", [at, id]),
            tx.get<Row>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id])
          )
        )
        .pipe(
          Effect.flatMap((row) =>
            row === undefined ? Effect.succeed(Option.none()) : Effect.map(keyOf(row), Option.some)
          )
        ),
    touch: (id, at) => db.run("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", [at, id]).pipe(Effect.asVoid)
  })

/** The store on the `PostgresDatabase` service (opened and migrated by the store layer). */
export const layer: Layer.Layer<ApiKeyStore, never, PostgresDatabase> = Layer.effect(
  ApiKeyStore,
  Effect.map(Effect.service(PostgresDatabase), make)
)
