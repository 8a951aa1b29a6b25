/**
 * The SQLite `ToolPins` store: one row per (org, connection, connector version) in `tool_pins` (migration 4),
 * holding the pinned manifest as JSON (tool definitions are not secret; credentials never reach them). The first
 * pin of a version is an `INSERT … ON CONFLICT DO NOTHING`, so two processes listing at once keep one pin; an
 * approval replaces the row.
 */
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { sha256 } from "../internal/digest.ts"
import { type Row, read as parse, write } from "../internal/toolPins.ts"
import { type Database, SqliteDatabase } from "./Database.ts"

const GET = "SELECT record FROM tool_pins WHERE org = ? AND connection_id = ? AND connector_version = ?"
const LATEST =
  "SELECT record FROM tool_pins WHERE org = ? AND connection_id = ? ORDER BY connector_version DESC LIMIT 1"
const INSERT =
  "INSERT INTO tool_pins (org, connection_id, connector_version, hash, record) VALUES (?, ?, ?, ?, ?) " +
  "ON CONFLICT (org, connection_id, connector_version) DO NOTHING"
const REPLACE =
  "INSERT INTO tool_pins (org, connection_id, connector_version, hash, record) VALUES (?, ?, ?, ?, ?) " +
  "ON CONFLICT (org, connection_id, connector_version) DO UPDATE SET hash = excluded.hash, record = excluded.record"

/** The store on an open (migrated) database. */
export const make = (db: Database): ToolPins.ToolPins["Service"] => {
  // A row read again with the very same text gives the same decoded pin (the same tool objects), so the hashes
  // `ToolPins` keeps per object are not computed again on every listing. The row itself is read every time.
  const decoded = new Map<string, ToolPins.Manifest>()
  const read = (row: Row | undefined) => {
    if (row === undefined) return parse(row)
    const hit = decoded.get(row.record)
    if (hit !== undefined) return Effect.succeed(Option.some(hit))
    return Effect.tap(parse(row), (pin) =>
      Effect.sync(() => {
        if (Option.isNone(pin)) return
        if (decoded.size >= 256) decoded.clear()
        decoded.set(row.record, pin.value)
      })
    )
  }
  const get = (org: string, connectionId: string, version: number) =>
    Effect.flatMap(db.locked(db.get<Row>(GET, [org, connectionId, version])), read)
  const put = (sql: string, manifest: ToolPins.Manifest) =>
    Effect.flatMap(write(manifest), (record) =>
      db.run(sql, [manifest.org, manifest.connection_id, manifest.connector_version, manifest.hash, record])
    )
  return ToolPins.ToolPins.of({
    get: Effect.fn("SqliteToolPins.get")(function* (org: string, connectionId: string, version: number) {
      return yield* get(org, connectionId, version)
    }),
    latest: Effect.fn("SqliteToolPins.latest")(function* (org: string, connectionId: string) {
      return yield* Effect.flatMap(db.locked(db.get<Row>(LATEST, [org, connectionId])), read)
    }),
    pin: Effect.fn("SqliteToolPins.pin")(function* (manifest: ToolPins.Manifest) {
      const stored = yield* db.transaction(
        Effect.andThen(
          put(INSERT, manifest),
          Effect.flatMap(db.get<Row>(GET, [manifest.org, manifest.connection_id, manifest.connector_version]), read)
        )
      )
      return Option.getOrElse(stored, () => manifest)
    }),
    replace: Effect.fn("SqliteToolPins.replace")(function* (manifest: ToolPins.Manifest) {
      yield* db.transaction(put(REPLACE, manifest))
    }),
    digest: sha256
  })
}

/** The store on the `SqliteDatabase` service. */
export const layer: Layer.Layer<ToolPins.ToolPins, never, SqliteDatabase> = Layer.effect(
  ToolPins.ToolPins,
  Effect.map(Effect.service(SqliteDatabase), make)
)
