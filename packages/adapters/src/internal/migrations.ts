/**
 * The shape the SQL stores' migrations share (`sqlite/Migrations.ts`, `postgres/Migrations.ts`): an ordered list
 * of numbered migrations, and the loop that applies the pending ones inside the caller's transaction. How a
 * database records its version and runs a script is its own.
 */
import { StoreError } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"

export interface Migration {
  readonly version: number
  readonly name: string
  /** Statements without parameters, run as one script. */
  readonly sql: string
}

/**
 * Runs `apply` for every migration of `list` after version `from`, in order, then `applied` for it; a failing
 * migration fails naming it.
 */
export const applyPending = <R>(
  list: ReadonlyArray<Migration>,
  from: number,
  apply: (migration: Migration) => Effect.Effect<unknown, StoreError, R>,
  applied: (migration: Migration) => Effect.Effect<unknown, StoreError, R> = () => Effect.void
): Effect.Effect<void, StoreError, R> =>
  Effect.forEach(
    list.filter((migration) => migration.version > from),
    (migration) =>
      apply(migration).pipe(
        Effect.mapError(
          (error) =>
            new StoreError({
              message: `migration ${migration.version} (${migration.name}) failed: ${error.message}`,
              ...(error.details === undefined ? {} : { details: error.details }),
              cause: error.cause
            })
        ),
        Effect.andThen(applied(migration))
      ),
    { discard: true }
  )
