/**
 * The `tool_pins` row shared by the SQL stores (SQLite and PostgreSQL, migration 4 of each): the pinned manifest
 * as JSON text in `record`. Encoding and decoding are the same on both databases; only the SQL differs.
 */
import { StoreError } from "@switchboard/core/Errors"
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

export interface Row {
  readonly record: string
}

const encode = Schema.encodeUnknownEffect(ToolPins.Manifest)
const decode = Schema.decodeUnknownEffect(ToolPins.Manifest)

/** The `record` column of a pin. */
export const write = (manifest: ToolPins.Manifest): Effect.Effect<string, StoreError> =>
  encode(manifest).pipe(
    Effect.map((encoded) => JSON.stringify(encoded)),
    Effect.mapError(
      (cause) => new StoreError({ message: `the tool pin of ${manifest.connection_id} is not valid: ${cause.message}` })
    )
  )

/** The pin of a row read back (none for no row); a row that is not a pin is a `StoreError`. */
export const read = (row: Row | undefined): Effect.Effect<Option.Option<ToolPins.Manifest>, StoreError> =>
  row === undefined
    ? Effect.succeed(Option.none())
    : Effect.try({
        try: (): unknown => JSON.parse(row.record),
        catch: (cause) => new StoreError({ message: "a stored tool pin is corrupt (not JSON)", cause })
      }).pipe(
        Effect.flatMap((json) =>
          Effect.mapError(
            decode(json),
            (cause) => new StoreError({ message: `a stored tool pin is corrupt: ${cause.message}`, cause })
          )
        ),
        Effect.map(Option.some)
      )
