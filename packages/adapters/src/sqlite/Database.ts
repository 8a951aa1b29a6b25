/**
 * One SQLite file opened with better-sqlite3, wrapped in Effect. WAL lets the daemon and an embedded process
 * share the file (readers never wait for the writer); `busy_timeout` makes a second writer wait for the lock
 * instead of failing with SQLITE_BUSY; write transactions start with BEGIN IMMEDIATE so they take the write lock
 * up front and never deadlock upgrading a read lock. `synchronous=NORMAL` is the default (a commit survives a
 * crash of the process, the WAL is synced at checkpoints); transactions that write secrets run with
 * `synchronous=FULL`, so a credential acknowledged as stored also survives a power cut.
 *
 * Every better-sqlite3 call is an `Effect.try` that fails with a `StoreError` naming what was being done and
 * keeping the SQLite error as the cause. Statements carry their values as bound parameters only, so neither the
 * SQL nor SQLite's own messages ever hold a value, secret or not.
 */
import { StoreError } from "@switchboard/core/Errors"
import BetterSqlite3 from "better-sqlite3"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"
import * as Fs from "node:fs"

/** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000

/** Rows `cachedGet` keeps at most (all are dropped when full). */
const CACHED_ROWS = 4096

/** A value bound to a statement parameter. */
export type Param = string | number | bigint | Uint8Array | null

export interface RunResult {
  readonly changes: number
}

export interface TransactionOptions {
  /** Sync the WAL at commit (`synchronous=FULL`): for writes of secrets, which must survive a power cut. */
  readonly durable?: boolean | undefined
}

/** An open database. `run`, `get`, `all` and `exec` are raw; store methods wrap them in `transaction` or `locked`. */
export interface Database {
  readonly filename: string
  readonly run: (sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<RunResult, StoreError>
  /** The first row, or undefined. `Row` is what the caller's SELECT returns; decode anything that is not a column. */
  readonly get: <Row>(sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<Row | undefined, StoreError>
  readonly all: <Row>(sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<ReadonlyArray<Row>, StoreError>
  /**
   * `get` under the lock, but the row is kept while the database is unchanged: no statement that writes has run
   * on this connection and `PRAGMA data_version` is the same (no other connection, in this process or another,
   * committed). A hit takes no lock and runs only that pragma. For the reads of every call (connector,
   * connection, credential); the caller must not change the row.
   */
  readonly cachedGet: <Row>(sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<Row | undefined, StoreError>
  /** Several statements without parameters (migrations). */
  readonly exec: (sql: string) => Effect.Effect<void, StoreError>
  /** A pragma's single value. */
  readonly pragma: (source: string) => Effect.Effect<unknown, StoreError>
  /**
   * Runs `effect` alone on this connection. A read outside a transaction takes the lock too, so it never sees
   * another fiber's uncommitted writes on the same connection. Not reentrant.
   */
  readonly locked: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Runs `effect` in a BEGIN IMMEDIATE transaction under the lock: COMMIT when it succeeds, ROLLBACK when it
   * fails, dies or is interrupted. Not reentrant.
   */
  readonly transaction: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: TransactionOptions
  ) => Effect.Effect<A, E | StoreError, R>
}

export interface Options {
  /** A path, or ":memory:" for a private in-memory database (no WAL). */
  readonly filename: string
  /**
   * The highest schema version (`PRAGMA user_version`) this code knows. A database with a higher one is
   * refused before anything is written, journal mode included.
   */
  readonly schemaVersion?: number | undefined
}

const describe = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { readonly code?: unknown }).code
    return typeof code === "string" ? `${code}: ${cause.message}` : cause.message
  }
  return "unknown error"
}

/** A StoreError for a failed SQLite call: what was being done, SQLite's code and message, and the cause. */
export const storeError =
  (doing: string) =>
  (cause: unknown): StoreError =>
    new StoreError({ message: `${doing} failed: ${describe(cause)}`, cause })

/** The StoreError for a database written by a newer version of Switchboard. */
export const newerSchema = (found: number, known: number): StoreError =>
  new StoreError({
    message: `database was written by a newer Switchboard (schema ${found} > ${known}); upgrade Switchboard to open it`,
    details: { schema_version: found, supported_version: known }
  })

const isMemory = (filename: string) => filename === ":memory:" || filename === ""

// Creates the file with mode 0600 before SQLite does (SQLite would use 0644 less the umask); the -wal and -shm
// files copy the mode of the database file. An existing file is left as it is.
const createPrivate = (filename: string) =>
  Effect.try({
    try: () =>
      Fs.closeSync(Fs.openSync(filename, Fs.constants.O_CREAT | Fs.constants.O_EXCL | Fs.constants.O_WRONLY, 0o600)),
    catch: (cause) => cause
  }).pipe(
    Effect.catch((cause) =>
      (cause as { readonly code?: unknown }).code === "EEXIST"
        ? Effect.void
        : Effect.fail(storeError(`creating the database file ${filename}`)(cause))
    )
  )

/** Opens the database; it is closed when the scope closes. */
export const open = Effect.fn("SqliteDatabase.open")(function* (options: Options) {
  const { filename } = options
  if (!isMemory(filename)) yield* createPrivate(filename)
  const lock = yield* Semaphore.make(1)
  const locked = <A, E, R>(effect: Effect.Effect<A, E, R>) => lock.withPermits(1)(effect)

  const conn = yield* Effect.acquireRelease(
    Effect.try({
      try: () => new BetterSqlite3(filename, { timeout: BUSY_TIMEOUT_MS }),
      catch: storeError(`opening the database ${filename}`)
    }),
    (conn) => Effect.sync(() => conn.close())
  )

  const statements = new Map<string, BetterSqlite3.Statement>()
  const prepare = (sql: string): BetterSqlite3.Statement => {
    let statement = statements.get(sql)
    if (statement === undefined) {
      statement = conn.prepare(sql)
      statements.set(sql, statement)
    }
    return statement
  }
  // The statement is named in errors, shortened; never its parameters.
  const call = <A>(sql: string, f: () => A) =>
    Effect.try({
      try: f,
      catch: (cause) => storeError(`sqlite statement "${sql.replace(/\s+/g, " ").trim().slice(0, 100)}"`)(cause)
    })

  // Statements that may write (or change the connection) run since the cached rows were read: any count but the
  // one they were read at empties the cache. Reads that write (`… RETURNING`) count too.
  let writes = 0
  const reading = (sql: string): BetterSqlite3.Statement => {
    const statement = prepare(sql)
    if (!statement.readonly) writes++
    return statement
  }
  const run = (sql: string, params: ReadonlyArray<Param> = []) =>
    call(sql, (): RunResult => {
      writes++
      return { changes: prepare(sql).run(...params).changes }
    })
  const get = <Row>(sql: string, params: ReadonlyArray<Param> = []) =>
    call(sql, () => reading(sql).get(...params) as Row | undefined)
  const all = <Row>(sql: string, params: ReadonlyArray<Param> = []) =>
    call(sql, () => reading(sql).all(...params) as ReadonlyArray<Row>)
  const exec = (sql: string) =>
    call(sql, () => {
      writes++
      conn.exec(sql)
    })
  const pragma = (source: string) =>
    call(`PRAGMA ${source}`, () => {
      writes++
      return conn.pragma(source, { simple: true })
    })

  // The rows of `cachedGet`, valid for one (data_version, writes) stamp; a new stamp empties them.
  const dataVersion = conn.prepare("PRAGMA data_version").pluck()
  const cachedRows = new Map<string, unknown>()
  let stampVersion: unknown
  let stampWrites = -1
  /** Whether the cached rows still hold; when not, they are dropped and the stamp is now. */
  const unchanged = (): boolean => {
    const version = dataVersion.get()
    if (version === stampVersion && writes === stampWrites) return true
    cachedRows.clear()
    stampVersion = version
    stampWrites = writes
    return false
  }
  const cacheKey = (sql: string, params: ReadonlyArray<Param>): string => {
    let key = sql
    for (const p of params) {
      const text = String(p)
      key += `\0${typeof p}${text.length}:${text}`
    }
    return key
  }
  const cachedGet = <Row>(sql: string, params: ReadonlyArray<Param> = []) =>
    Effect.suspend(() => {
      const key = cacheKey(sql, params)
      const hit = call(sql, () => (unchanged() ? cachedRows.get(key) : undefined))
      return Effect.flatMap(hit, (row) =>
        row !== undefined || cachedRows.has(key)
          ? Effect.succeed(row as Row | undefined)
          : locked(
              call(sql, () => {
                // The stamp is taken before the read: a commit in between only makes the next check miss.
                unchanged()
                const read = reading(sql).get(...params) as Row | undefined
                if (cachedRows.size >= CACHED_ROWS) cachedRows.clear()
                cachedRows.set(key, read)
                return read
              })
            )
      )
    })

  yield* pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
  yield* pragma("foreign_keys = ON")
  yield* pragma("synchronous = NORMAL")
  if (options.schemaVersion !== undefined) {
    const found = Number(yield* pragma("user_version"))
    if (found > options.schemaVersion) return yield* newerSchema(found, options.schemaVersion)
  }
  if (!isMemory(filename)) {
    const mode = yield* pragma("journal_mode = WAL")
    if (mode !== "wal") {
      return yield* new StoreError({
        message: `the database ${filename} cannot use WAL (journal mode ${String(mode)})`
      })
    }
  }

  // Transaction control as prepared statements (kept by `prepare`), not re-parsed by exec on every write.
  const rollback = Effect.suspend(() => (conn.inTransaction ? run("ROLLBACK") : Effect.void))

  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>, options?: TransactionOptions) => {
    const durable = options?.durable === true
    const body = Effect.acquireUseRelease(
      run("BEGIN IMMEDIATE"),
      () => effect,
      (_, exit) =>
        Exit.isSuccess(exit)
          ? // A failed COMMIT leaves the transaction open: roll it back, then report the COMMIT's error.
            run("COMMIT").pipe(Effect.tapError(() => Effect.ignore(rollback)))
          : Effect.ignore(rollback)
    )
    return locked(
      durable
        ? Effect.acquireUseRelease(
            pragma("synchronous = FULL"),
            () => body,
            () => Effect.ignore(pragma("synchronous = NORMAL"))
          )
        : body
    )
  }

  return { filename, run, get, all, cachedGet, exec, pragma, locked, transaction } satisfies Database
})

/** The open database as a service, for the store layers and key rotation. */
export class SqliteDatabase extends Context.Service<SqliteDatabase, Database>()(
  "@switchboard/adapters/sqlite/SqliteDatabase"
) {}

/** Opens the database for the lifetime of the layer. */
export const layer = (options: Options): Layer.Layer<SqliteDatabase, StoreError> =>
  Layer.effect(SqliteDatabase, open(options))
