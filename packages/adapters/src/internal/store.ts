/**
 * What the SQL stores (SQLite: `sqlite/Store.ts`, `sqlite/BundleStore.ts`; PostgreSQL: `postgres/Store.ts`,
 * `postgres/BundleStore.ts`) share beyond their rows (`rows.ts`): the errors they answer, the key check made
 * before sealing, the audit chain's next link, and the re-sealing of a key rotation. Each database passes its own
 * SQL (placeholders, row locks) and runs these inside its own transactions.
 */
import * as AuditChain from "@switchboard/core/AuditChain"
import * as AuditLog from "@switchboard/core/AuditLog"
import {
  ConnectorInUse,
  ConnectorNotFound,
  NameTaken,
  SealError,
  StoreError,
  VersionConflict
} from "@switchboard/core/Errors"
import type * as ConnectionStore from "@switchboard/core/ConnectionStore"
import type * as ConnectorStore from "@switchboard/core/ConnectorStore"
import type { SealContext } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { checkValueContext, makeCheckValue } from "../sodium/Sealer.ts"
import { sha256 } from "./digest.ts"
import { type SealedColumns, type SealerService, toBuffer } from "./rows.ts"

/** A parameter both drivers bind. */
export type Param = string | number | bigint | Uint8Array | null

/** What both databases run statements on (SQLite's `Database`, PostgreSQL's `Executor`). */
export interface Executor {
  readonly run: (sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<{ readonly changes: number }, StoreError>
  readonly get: <Row>(sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<Row | undefined, StoreError>
  readonly all: <Row>(sql: string, params?: ReadonlyArray<Param>) => Effect.Effect<ReadonlyArray<Row>, StoreError>
}

// ---------------------------------------------------------------------------------------------------------------
// Keyset-paginated lists

/** A condition with `?` placeholders and its parameters. */
export type Clause = readonly [string, ReadonlyArray<Param>]

/** A keyset-paginated list: `SELECT id, record FROM table WHERE clauses ORDER BY id order LIMIT limit`. */
export interface List {
  readonly table: string
  readonly clauses: ReadonlyArray<Clause>
  readonly order: "ASC" | "DESC"
  readonly limit: number
}

const when = <A>(value: A | undefined, clause: (value: A) => Clause): ReadonlyArray<Clause> =>
  value === undefined ? [] : [clause(value)]

/** The row limit a list query asks for (a whole number, not negative). */
export const limitOf = (limit: number) => Math.max(0, Math.floor(limit))

/** The lists of the store ports; `namePrefix` is the database's test that `name` starts with a prefix. */
export const lists = (namePrefix: (prefix: string) => Clause) => ({
  connectors: (org: string, query: ConnectorStore.ListQuery): List => ({
    table: "connectors",
    clauses: [
      ["org = ?", [org]],
      ...when(query.after, (after) => ["id > ?", [after]]),
      ...when(query.kind, (kind) => ["kind = ?", [kind]]),
      ...when(query.namePrefix, namePrefix)
    ],
    order: "ASC",
    limit: query.limit
  }),
  connections: (org: string, query: ConnectionStore.ListQuery): List => ({
    table: "connections",
    clauses: [
      ["org = ?", [org]],
      ["(access_scope = 'organizational' OR owner = ?)", [query.visibleTo]],
      ...when(query.after, (after) => ["id > ?", [after]]),
      ...when(query.connectorId, (id) => ["connector_id = ?", [id]]),
      ...when(query.status, (status) => ["status = ?", [status]]),
      ...when(query.namePrefix, namePrefix)
    ],
    order: "ASC",
    limit: query.limit
  }),
  audit: (org: string, query: AuditLog.ListQuery): List => ({
    table: "audit",
    clauses: [
      ["org = ?", [org]],
      ...when(query.after, (after) => ["id < ?", [after]]),
      ...when(query.connectionId, (id) => ["connection_id = ?", [id]]),
      ...when(query.action, (action) => ["action = ?", [action]])
    ],
    order: "DESC",
    limit: query.limit
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Errors

export const connectorNameTaken = (name: string) =>
  new NameTaken({ message: `a connector named ${name} exists`, details: { name } })

export const connectionNameTaken = (name: string) =>
  new NameTaken({ message: `a connection named ${name} exists`, details: { name } })

export const connectorNotFound = (id: string) => new ConnectorNotFound({ message: `connector ${id} not found` })

/** An update from `expected` found the connector at `current`. */
export const versionConflict = (id: string, current: number, expected: number) =>
  new VersionConflict({
    message: `connector ${id} changed concurrently: it is at version ${current}, not ${expected}; read it again and retry`,
    details: { connector: id, version: current }
  })

/** The connections (none known when another host inserted one meanwhile) that keep a connector from deletion. */
export const connectorInUse = (id: string, connections: ReadonlyArray<string>) =>
  new ConnectorInUse({
    message: `connector ${id} is used by ${connections.length === 0 ? "new" : connections.length} connection(s); delete them first`,
    details: { connections }
  })

/** A credential put for a connector that does not exist. */
export const noConnectorFor = (connectorId: string) =>
  new StoreError({ message: `connector ${connectorId} does not exist` })

// ---------------------------------------------------------------------------------------------------------------
// The key check

/**
 * Inside a write transaction, before sealing: fails unless the database's key (the key id of the check row that
 * `check` reads) is still this sealer's. Another process may have rotated the key since this store opened;
 * writing under the old key then would leave values no current key opens.
 */
export const ensureCurrentKey = <E, R>(
  check: Effect.Effect<{ readonly key_id: string } | undefined, E, R>,
  sealer: SealerService
): Effect.Effect<void, E | SealError, R> =>
  Effect.flatMap(check, (row) =>
    row?.key_id === sealer.keyId
      ? Effect.void
      : Effect.fail(
          new SealError({
            reason: "key_mismatch",
            message:
              `the master key does not match this database (the database now uses key ${row?.key_id ?? "none"}, ` +
              `this process has key ${sealer.keyId}); the key was rotated: restart with the new key`
          })
        )
  )

// ---------------------------------------------------------------------------------------------------------------
// The audit log

const encodeAuditRecord = Schema.encodeUnknownResult(AuditLog.AuditRecord)

/** An audit record checked against its schema, its JSON text, and the encoded value that is stored and hashed. */
export interface AuditEntry {
  readonly record: AuditLog.AuditRecord
  readonly json: string
  readonly stored: AuditLog.AuditRecord
}

/** Checks a record (nothing invalid is written) synchronously, as it is appended on every call. */
export const auditEntry = (record: AuditLog.AuditRecord): Result.Result<AuditEntry, StoreError> => {
  const encoded = encodeAuditRecord(record)
  return Result.isFailure(encoded)
    ? Result.fail(
        new StoreError({
          message: `the audit record ${record.id} is not valid: ${encoded.failure.message}`,
          cause: encoded.failure
        })
      )
    : Result.succeed({
        record,
        json: JSON.stringify(encoded.success),
        // The encoded value, as its JSON text would parse back.
        stored: encoded.success
      })
}

/** The columns of a chained audit row, in the order of `auditParams`. */
export const AUDIT_COLUMNS = "org, id, connection_id, action, record, seq, prev_hash, hash"

/** The link an entry makes after the org's `head` (none: the chain starts at genesis). */
export const nextLink = (head: AuditChain.Head | undefined, entry: AuditEntry): AuditChain.Head & { prev: string } => {
  const seq = (head?.seq ?? 0) + 1
  const prev = head?.hash ?? AuditChain.genesis
  return { seq, prev, hash: sha256(AuditChain.canonical(seq, prev, entry.stored)) }
}

/** The values of `AUDIT_COLUMNS`. */
export const auditParams = (entry: AuditEntry, link: ReturnType<typeof nextLink>): Array<Param> => [
  entry.record.org,
  entry.record.id,
  entry.record.connection_id ?? null,
  entry.record.action,
  entry.json,
  link.seq,
  link.prev,
  link.hash
]

// ---------------------------------------------------------------------------------------------------------------
// Key rotation

/** The tables whose rows hold a sealed value under the context (table, id). */
export const sealedTables = ["credentials", "connections", "oauth_flows", "oauth_records"] as const

/** The `meta` rows (besides the check value) holding a sealed value under the context ("meta", key). */
export const sealedMetaKeys = ["bundle_recipient"] as const

const ROTATE_BATCH = 500

/** The SQL of a rotation on one database (with its placeholders and row locks). */
export interface RotationSql {
  /** A page of a table's rows after an id (params: after, limit): id, key_id, sealed. */
  readonly page: (table: (typeof sealedTables)[number]) => string
  /** Sets a row's key_id and sealed (params: key_id, sealed, id). */
  readonly update: (table: (typeof sealedTables)[number]) => string
  /** A `meta` row's key_id and sealed (params: key). */
  readonly meta: string
  /** Sets a `meta` row's key_id and sealed (params: key_id, sealed, key). */
  readonly updateMeta: string
}

const reseal = (current: SealerService, next: SealerService, row: SealedColumns, context: SealContext) =>
  Effect.flatMap(current.open({ keyId: row.key_id, bytes: row.sealed }, context), (opened) =>
    next.seal(opened, context).pipe(Effect.ensuring(Effect.sync(() => Redacted.value(opened).fill(0))))
  )

/**
 * Inside the rotation's transaction, once the check value is proven to be `current`'s: re-seals every sealed
 * value, then writes `next`'s check value. Answers how many rows of each table were re-sealed.
 */
export const resealAll = (exec: Executor, sql: RotationSql, current: SealerService, next: SealerService) =>
  Effect.gen(function* () {
    const counts = { credentials: 0, connections: 0, oauth_flows: 0, oauth_records: 0 }
    for (const table of sealedTables) {
      let after = ""
      for (;;) {
        const rows = yield* exec.all<SealedColumns & { id: string }>(sql.page(table), [after, ROTATE_BATCH])
        for (const row of rows) {
          const sealed = yield* reseal(current, next, row, { table, rowId: row.id })
          yield* exec.run(sql.update(table), [sealed.keyId, toBuffer(sealed.bytes), row.id])
          counts[table]++
        }
        const last = rows.at(-1)
        if (last === undefined || rows.length < ROTATE_BATCH) break
        after = last.id
      }
    }
    for (const key of sealedMetaKeys) {
      const row = yield* exec.get<SealedColumns>(sql.meta, [key])
      if (row === undefined) continue
      const sealed = yield* reseal(current, next, row, { table: "meta", rowId: key })
      yield* exec.run(sql.updateMeta, [sealed.keyId, toBuffer(sealed.bytes), key])
    }
    const value = yield* makeCheckValue(next)
    yield* exec.run(sql.updateMeta, [value.keyId, toBuffer(value.bytes), checkValueContext.rowId])
    return { ...counts, keyId: next.keyId }
  })
