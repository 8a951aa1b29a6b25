/**
 * The PostgreSQL `ToolPins` store: one row per (org, connection, connector version) in `tool_pins` (migration 4),
 * holding the pinned manifest as JSON (tool definitions are not secret; credentials never reach them). The first
 * pin of a version is one `INSERT … ON CONFLICT DO NOTHING … RETURNING`: of several hosts listing at once, one
 * row is inserted and every host answers that row; an approval replaces it.
 */
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { sha256 } from "../internal/digest.ts"
import { type Row, read, write } from "../internal/toolPins.ts"
import { type Database, PostgresDatabase } from "./Database.ts"

const GET = "SELECT record FROM tool_pins WHERE org = $1 AND connection_id = $2 AND connector_version = $3"
const LATEST =
  "SELECT record FROM tool_pins WHERE org = $1 AND connection_id = $2 ORDER BY connector_version DESC LIMIT 1"
const INSERT =
  "INSERT INTO tool_pins (org, connection_id, connector_version, hash, record) VALUES ($1, $2, $3, $4, $5) " +
  "ON CONFLICT (org, connection_id, connector_version) DO NOTHING"
const REPLACE =
  "INSERT INTO tool_pins (org, connection_id, connector_version, hash, record) VALUES ($1, $2, $3, $4, $5) " +
  "ON CONFLICT (org, connection_id, connector_version) DO UPDATE SET hash = excluded.hash, record = excluded.record"

/** The store on an open (migrated) database. */
export const make = (db: Database): ToolPins.ToolPins["Service"] => {
  const params = (manifest: ToolPins.Manifest, record: string) => [
    manifest.org,
    manifest.connection_id,
    manifest.connector_version,
    manifest.hash,
    record
  ]
  return ToolPins.ToolPins.of({
    get: Effect.fn("PostgresToolPins.get")(function* (org: string, connectionId: string, version: number) {
      return yield* Effect.flatMap(db.get<Row>(GET, [org, connectionId, version]), read)
    }),
    latest: Effect.fn("PostgresToolPins.latest")(function* (org: string, connectionId: string) {
      return yield* Effect.flatMap(db.get<Row>(LATEST, [org, connectionId]), read)
    }),
    pin: Effect.fn("PostgresToolPins.pin")(function* (manifest: ToolPins.Manifest) {
      const record = yield* write(manifest)
      // Read in the inserting transaction: a pin inserted by another host that committed first is visible to
      // the SELECT (READ COMMITTED), since our INSERT waited for it and then did nothing.
      const stored = yield* db.transaction((tx) =>
        Effect.andThen(
          tx.run(INSERT, params(manifest, record)),
          Effect.flatMap(tx.get<Row>(GET, [manifest.org, manifest.connection_id, manifest.connector_version]), read)
        )
      )
      return Option.getOrElse(stored, () => manifest)
    }),
    replace: Effect.fn("PostgresToolPins.replace")(function* (manifest: ToolPins.Manifest) {
      const record = yield* write(manifest)
      yield* db.run(REPLACE, params(manifest, record))
    }),
    digest: sha256
  })
}

/** The store on the `PostgresDatabase` service (opened and migrated by the store layer). */
export const layer: Layer.Layer<ToolPins.ToolPins, never, PostgresDatabase> = Layer.effect(
  ToolPins.ToolPins,
  Effect.map(Effect.service(PostgresDatabase), make)
)
