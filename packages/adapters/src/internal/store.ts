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
import type { SealContext, Sealed } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { checkValueContext, makeCheckValue } from "../sodium/Sealer.ts"
import { sha256 } from "./digest.ts"
import { openText, type SealedColumns, type SealerService, sealText, toBuffer } from "./rows.ts"

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

/** Where an org's sealed head lives: the context it is sealed under (see `AuditChain.sealedHeadText`). */
export const headContext = (org: string): SealContext => ({ table: "audit_heads", rowId: org })

/** An org's head sealed with the master key; stored beside the plain head in `audit_heads` (key_id, sealed). */
export const sealHead = (sealer: SealerService, org: string, head: AuditChain.Head): Effect.Effect<Sealed, SealError> =>
  sealText(sealer, AuditChain.sealedHeadText(org, head), headContext(org))

/**
 * Inside the append's transaction, the new head of `org` after its stored head `previous`: sealed (after the key
 * check `check`, as for `ensureCurrentKey`) when the previous head's seal opens and is that head, or when the org
 * had no head; else undefined: the sealed columns are left as they are, so a chain rewritten or a seal removed
 * by hand is not laundered by the next append (verification keeps reporting it). A failure is a StoreError, as the
 * audit log's port answers (the key was rotated meanwhile).
 */
export const sealNextHead = <E, R>(
  check: Effect.Effect<{ readonly key_id: string } | undefined, E, R>,
  sealer: SealerService,
  org: string,
  previous: HeadRow | undefined,
  head: AuditChain.Head
): Effect.Effect<Sealed | undefined, E | StoreError, R> =>
  ensureCurrentKey(check, sealer).pipe(
    Effect.andThen(openHead(sealer, org, previous)),
    Effect.flatMap((opened) => {
      const seal = opened?.seal
      const genuine =
        opened === undefined ||
        (seal?._tag === "opened" && seal.org === org && seal.seq === opened.seq && seal.hash === opened.hash)
      return genuine ? sealHead(sealer, org, head) : Effect.succeed(undefined)
    }),
    Effect.catchIf(
      (error): error is SealError => error instanceof SealError,
      (error) =>
        Effect.fail(new StoreError({ message: `sealing the audit head of ${org}: ${error.message}`, cause: error }))
    )
  )

/**
 * Migration 6, inside the opening transaction once the key is proven: seals every head without a seal (heads
 * written before it), so that afterwards a head without its seal is one whose seal was removed. `select` answers
 * org, seq, hash of the heads without one; `update` sets key_id, sealed of an org (params: key_id, sealed, org).
 */
export const sealUnsealedHeads = (
  exec: Executor,
  sql: { readonly select: string; readonly update: string },
  sealer: SealerService
) =>
  Effect.gen(function* () {
    const rows = yield* exec.all<{ readonly org: string; readonly seq: number; readonly hash: string }>(sql.select)
    for (const row of rows) {
      const sealed = yield* sealHead(sealer, row.org, { seq: row.seq, hash: row.hash })
      yield* exec.run(sql.update, [sealed.keyId, toBuffer(sealed.bytes), row.org])
    }
    return rows.length
  })

/** The values of an `audit_heads` upsert: org, seq, hash, key_id, sealed. */
export const headParams = (org: string, head: AuditChain.Head, sealed: Sealed): Array<Param> => [
  org,
  head.seq,
  head.hash,
  sealed.keyId,
  toBuffer(sealed.bytes)
]

/** An `audit_heads` row as the chain reader selects it (key_id and sealed are null before migration 6's seal). */
export interface HeadRow {
  readonly seq: number
  readonly hash: string
  readonly key_id: string | null
  readonly sealed: Uint8Array | null
}

const decodeSealedHead = Schema.decodeUnknownResult(AuditChain.SealedHead)

/**
 * The head row with its seal opened by `sealer` (none: "unchecked"); never fails, a seal that does not open or
 * decode is reported to `AuditChain.verify` as "unopenable". `sealable`: the database is at migration 6, where
 * every head is sealed (migration 6 seals the heads it finds: `sealUnsealedHeads`), so a head without its seal
 * had it removed; before migration 6 heads are "unsealed".
 */
export const openHead = (
  sealer: SealerService | undefined,
  org: string,
  row: HeadRow | undefined,
  sealable = true
): Effect.Effect<AuditChain.Head | undefined> => {
  if (row === undefined) return Effect.succeed(undefined)
  const plain = { seq: row.seq, hash: row.hash }
  const withSeal = (seal: AuditChain.HeadSeal) => Effect.succeed({ ...plain, seal })
  if (!sealable) return withSeal({ _tag: "unsealed" })
  if (row.key_id === null || row.sealed === null) {
    return withSeal({ _tag: "unopenable", message: "its seal was removed" })
  }
  if (sealer === undefined) return withSeal({ _tag: "unchecked" })
  return openText(sealer, { key_id: row.key_id, sealed: row.sealed }, headContext(org)).pipe(
    Effect.map((text): AuditChain.HeadSeal => {
      const decoded = Result.isSuccess(text) ? decodeSealedHead(text.success) : undefined
      return decoded !== undefined && Result.isSuccess(decoded)
        ? { _tag: "opened", ...decoded.success }
        : { _tag: "unopenable", message: "its contents are not a sealed head" }
    }),
    Effect.catch((error) => Effect.succeed<AuditChain.HeadSeal>({ _tag: "unopenable", message: error.message })),
    Effect.map((seal) => ({ ...plain, seal }))
  )
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
  /** A page of the sealed `audit_heads` after an org (params: after, limit): org, key_id, sealed. */
  readonly heads: string
  /** Sets an `audit_heads` row's key_id and sealed (params: key_id, sealed, org). */
  readonly updateHead: string
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
    // The sealed audit heads (their row is the org); heads not sealed yet are left for their next append.
    let afterOrg = ""
    for (;;) {
      const rows = yield* exec.all<SealedColumns & { org: string }>(sql.heads, [afterOrg, ROTATE_BATCH])
      for (const row of rows) {
        const sealed = yield* reseal(current, next, row, headContext(row.org))
        yield* exec.run(sql.updateHead, [sealed.keyId, toBuffer(sealed.bytes), row.org])
      }
      const last = rows.at(-1)
      if (last === undefined || rows.length < ROTATE_BATCH) break
      afterOrg = last.org
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
