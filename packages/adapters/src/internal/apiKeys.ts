/**
 * The `api_keys` row shared by the SQL stores (SQLite and PostgreSQL, migration 5 of each): the key's description
 * and the hex SHA-256 digest of the key, never the key. Only the placeholders and transactions differ.
 */
import { type ApiKey as ApiKeyType, ApiKey, type StoredApiKey } from "@switchboard/core/ApiKeyStore"
import { StoreError } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

export interface Row {
  readonly id: string
  readonly name: string | null
  readonly prefix: string
  readonly digest: string
  readonly org: string
  readonly workspace: string
  readonly user: string
  readonly role: string
  readonly created_at: string
  readonly last_used_at: string | null
  readonly revoked_at: string | null
}

/** The columns, in the order of `insertParams` (`user` quoted: a reserved word in PostgreSQL). */
export const COLUMNS = `id, name, prefix, digest, org, workspace, "user", role, created_at, last_used_at, revoked_at`

const decodeKey = Schema.decodeUnknownEffect(ApiKey)

/** The key of a row; a row that does not decode is a `StoreError`. */
export const keyOf = (row: Row): Effect.Effect<ApiKeyType, StoreError> =>
  decodeKey({
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    org: row.org,
    workspace: row.workspace,
    user: row.user,
    role: row.role,
    created_at: row.created_at,
    last_used_at: row.last_used_at,
    revoked_at: row.revoked_at
  }).pipe(Effect.mapError((cause) => new StoreError({ message: `the stored API key ${row.id} is corrupt`, cause })))

/** A stored key (with its digest) of a row read by id, none for no row. */
export const storedOf = (row: Row | undefined): Effect.Effect<Option.Option<StoredApiKey>, StoreError> =>
  row === undefined
    ? Effect.succeed(Option.none())
    : Effect.map(keyOf(row), (key) => Option.some({ key, digest: row.digest }))

/** The values of `COLUMNS` for a new key. */
export const insertParams = (key: ApiKeyType, digest: string) => [
  key.id,
  key.name,
  key.prefix,
  digest,
  key.org,
  key.workspace,
  key.user,
  key.role,
  key.created_at,
  key.last_used_at,
  key.revoked_at
]
