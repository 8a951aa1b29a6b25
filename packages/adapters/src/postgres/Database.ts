/**
 * A PostgreSQL connection pool (node-postgres) wrapped in Effect, shared by every daemon of a team server.
 *
 * Reads outside a transaction run on any pooled connection (autocommit). `transaction` checks a connection out
 * of the pool for the whole of its body, runs BEGIN, the body with that connection as its `Executor`, and COMMIT
 * when the body succeeds; ROLLBACK when it fails, dies or is interrupted (node-postgres queues statements on a
 * connection, so the ROLLBACK runs after a statement still in flight). A connection whose ROLLBACK fails is
 * destroyed instead of returned to the pool. Transactions run at READ COMMITTED; the stores get cross-host
 * correctness from row conditions (`UPDATE ... WHERE version = $n`, `INSERT ... ON CONFLICT ... WHERE`) and
 * transaction-scoped advisory locks, not from a stricter isolation level that would need retries.
 *
 * Every failure is a `StoreError` naming what was being done, with PostgreSQL's SQLSTATE (and the constraint, for
 * integrity violations) in `details`, keeping the driver's error as the cause. Statements carry their values as
 * bound parameters only, so neither the SQL nor PostgreSQL's messages ever hold a value, secret or not (an
 * integrity violation's `detail`, which quotes the key, is not copied into the message).
 */
import { StoreError } from "@switchboard/core/Errors"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Pg from "pg"

/** A value bound to a statement parameter. */
export type Param = string | number | bigint | Uint8Array | boolean | null

export interface RunResult {
  /** Rows inserted, updated, deleted or returned. */
  readonly changes: number
}

/** Runs statements: the pool (each statement on its own) or one transaction's connection. */
export interface Executor {
  readonly run: (sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<RunResult, StoreError>
  /** The first row, or undefined. `Row` is what the caller's SELECT returns. */
  readonly get: <Row>(sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<Row | undefined, StoreError>
  readonly all: <Row>(sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<ReadonlyArray<Row>, StoreError>
}

/** An open pool. Its own `run`/`get`/`all` autocommit; `transaction` gives its body a connection of its own. */
export interface Database extends Executor {
  /** The server and database, without user or password (for messages). */
  readonly target: string
  readonly transaction: <A, E, R>(body: (tx: Executor) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | StoreError, R>
}

export interface Options {
  /** A `postgres://user:password@host:port/database` URL (query parameters as node-postgres reads them). */
  readonly url: string
  /** Connections in the pool (default 10). Every transaction holds one for its duration. */
  readonly poolSize?: number | undefined
  /** How long to wait for a new connection, in ms (default 10 000). */
  readonly connectTimeoutMs?: number | undefined
  /** `application_name` of the connections (default "switchboard"), shown in `pg_stat_activity`. */
  readonly applicationName?: string | undefined
}

const sqlstate = (cause: unknown): string | undefined => {
  const code = (cause as { readonly code?: unknown } | null)?.code
  return typeof code === "string" ? code : undefined
}

/** The constraint an integrity violation names (a unique index, a foreign key), if any. */
export const constraintOf = (cause: unknown): string | undefined => {
  const constraint = (cause as { readonly constraint?: unknown } | null)?.constraint
  return typeof constraint === "string" ? constraint : undefined
}

/** The SQLSTATE of the StoreError's cause, if it came from PostgreSQL. */
export const codeOf = (error: StoreError): string | undefined => sqlstate(error.cause)

/** SQLSTATEs the stores act on. */
export const SqlState = {
  uniqueViolation: "23505",
  foreignKeyViolation: "23503"
} as const

const describe = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = sqlstate(cause)
    return code === undefined ? cause.message : `${code}: ${cause.message}`
  }
  return "unknown error"
}

/** A StoreError for a failed PostgreSQL call: what was being done, the SQLSTATE and message, and the cause. */
export const storeError =
  (doing: string) =>
  (cause: unknown): StoreError => {
    const code = sqlstate(cause)
    const constraint = constraintOf(cause)
    return new StoreError({
      message: `${doing} failed: ${describe(cause)}`,
      ...(code === undefined
        ? {}
        : { details: { sqlstate: code, ...(constraint === undefined ? {} : { constraint }) } }),
      cause
    })
  }

/** The StoreError for a database written by a newer version of Switchboard. */
export const newerSchema = (found: number, known: number): StoreError =>
  new StoreError({
    message: `database was written by a newer Switchboard (schema ${found} > ${known}); upgrade Switchboard to open it`,
    details: { schema_version: found, supported_version: known }
  })

/** The URL without its user and password. */
export const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}${parsed.port === "" ? "" : `:${parsed.port}`}${parsed.pathname}`
  } catch {
    return "(an unparsable URL)"
  }
}

const shorten = (sql: string) => sql.replace(/\s+/g, " ").trim().slice(0, 100)

type Queryable = Pick<Pg.Pool, "query"> | Pick<Pg.PoolClient, "query">

const executor = (target: Queryable): Executor => {
  const query = (sql: string, params: ReadonlyArray<Param>) =>
    Effect.tryPromise({
      try: () => target.query(sql, params as Array<Param>),
      catch: (cause) => storeError(`postgres statement "${shorten(sql)}"`)(cause)
    })
  return {
    run: (sql, params = []) => Effect.map(query(sql, params), (result) => ({ changes: result.rowCount ?? 0 })),
    get: <Row>(sql: string, params: ReadonlyArray<Param> = []) =>
      Effect.map(query(sql, params), (result) => result.rows[0] as Row | undefined),
    all: <Row>(sql: string, params: ReadonlyArray<Param> = []) =>
      Effect.map(query(sql, params), (result) => result.rows as ReadonlyArray<Row>)
  }
}

/** Opens the pool and checks that the server answers; the pool is ended when the scope closes. */
export const open = Effect.fn("PostgresDatabase.open")(function* (options: Options) {
  const target = redactUrl(options.url)
  // Loaded here rather than at start-up: most processes (the CLI, `switchboard mcp`) never open PostgreSQL.
  const { default: PgClient } = yield* Effect.promise(() => import("pg"))
  const pool = yield* Effect.acquireRelease(
    Effect.try({
      try: () =>
        new PgClient.Pool({
          connectionString: options.url,
          max: options.poolSize ?? 10,
          connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
          application_name: options.applicationName ?? "switchboard"
        }),
      catch: storeError(`opening the database ${target}`)
    }),
    (pool) => Effect.promise(() => pool.end().catch(() => undefined))
  )
  // An idle connection that the server drops (restart, failover) emits "error" on the pool: without a
  // listener that would crash the process. The pool replaces the connection; the next statement reconnects.
  pool.on("error", () => undefined)

  yield* Effect.tryPromise({
    try: () => pool.query("SELECT 1"),
    catch: storeError(`connecting to the database ${target}`)
  })

  const connect = Effect.tryPromise({
    try: () => pool.connect(),
    catch: storeError(`connecting to the database ${target}`)
  })

  const transaction = <A, E, R>(body: (tx: Executor) => Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.map(connect, (client) => {
        const held = { client, broken: false, onError: (): void => void (held.broken = true) }
        // A checked-out connection that dies (server restart, terminated backend) emits "error": without a
        // listener that would crash the process. The statement in flight fails; the connection is destroyed.
        client.on("error", held.onError)
        return held
      }),
      (held) => {
        const tx = executor(held.client)
        const rollback = tx.run("ROLLBACK").pipe(
          Effect.tapError(() => Effect.sync(() => void (held.broken = true))),
          Effect.ignore
        )
        return Effect.acquireUseRelease(
          tx.run("BEGIN").pipe(Effect.tapError(() => Effect.sync(() => void (held.broken = true)))),
          () => body(tx),
          (_, exit) =>
            Exit.isSuccess(exit)
              ? // The server ends a transaction whose COMMIT fails; a failed COMMIT is reported as it is.
                Effect.asVoid(tx.run("COMMIT").pipe(Effect.tapError(() => rollback)))
              : rollback
        )
      },
      // A connection that could not roll back may be broken: destroy it rather than return it to the pool.
      (held) =>
        Effect.sync(() => {
          held.client.removeListener("error", held.onError)
          held.client.release(held.broken ? true : undefined)
        })
    )

  return { target, ...executor(pool), transaction } satisfies Database
})

/** The open pool as a service, for the store layers and key rotation. */
export class PostgresDatabase extends Context.Service<PostgresDatabase, Database>()(
  "@switchboard/adapters/postgres/PostgresDatabase"
) {}

/** Opens the pool for the lifetime of the layer. */
export const layer = (options: Options): Layer.Layer<PostgresDatabase, StoreError> =>
  Layer.effect(PostgresDatabase, open(options))
