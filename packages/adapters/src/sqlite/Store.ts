/**
 * The SQLite implementations of the store ports (ConnectorStore, CredentialVault, ConnectionStore, AuditLog)
 * over one database file, behaving exactly like the in-memory adapter (one behavioural suite runs against
 * both). Secrets are sealed with the `Sealer` port under the context (table, row id) of the row that holds
 * them, so a ciphertext copied into another row does not open; records stored as JSON hold no secret.
 *
 * At open, in one transaction and before anything is written: a database newer than this code is refused, the
 * sealed check value in `meta` proves the master key (a wrong key fails with "key_mismatch" and the transaction
 * rolls back), then pending migrations run and, on a new database, the check value is written. `rotateKey`
 * re-seals everything under a new key in one transaction.
 */
import type * as AuditChain from "@switchboard/core/AuditChain"
import * as AuditLog from "@switchboard/core/AuditLog"
import * as Connection from "@switchboard/core/Connection"
import * as ConnectionStore from "@switchboard/core/ConnectionStore"
import * as Connector from "@switchboard/core/Connector"
import * as ConnectorStore from "@switchboard/core/ConnectorStore"
import type * as Credential from "@switchboard/core/Credential"
import * as CredentialVault from "@switchboard/core/CredentialVault"
import { type SealError, StoreError } from "@switchboard/core/Errors"
import { Sealer } from "@switchboard/core/Sealer"
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import {
  CONNECTION_COLUMNS,
  CREDENTIAL_COLUMNS,
  ConnectionSecrets,
  type CredentialRow,
  connectionContext,
  connectionParams,
  credentialContext,
  credentialKeyParams,
  credentialParams,
  conceal,
  doing,
  jsonRecord,
  openCredentialValues,
  openJson,
  readCredential as openCredential,
  type RecordRow,
  reveal,
  type SealedColumns,
  type SealerService,
  sealConnectionSecrets,
  sealJson,
  toBuffer as toBlob
} from "../internal/rows.ts"
import { checkValueContext, makeCheckValue, verifyCheckValue } from "../sodium/Sealer.ts"
import * as SqliteDatabase from "./Database.ts"
import type { Database, Param } from "./Database.ts"
import * as Common from "../internal/store.ts"
import * as Migrations from "./Migrations.ts"
import * as SqliteToolPins from "./ToolPins.ts"

/** The four store ports this module provides. */
export type Stores =
  | ConnectorStore.ConnectorStore
  | CredentialVault.CredentialVault
  | ConnectionStore.ConnectionStore
  | AuditLog.AuditLog
  | ToolPins.ToolPins

export interface Options {
  /** The database file (created with mode 0600 when missing), or ":memory:". */
  readonly filename: string
}

// ---------------------------------------------------------------------------------------------------------------
// Rows, records and sealed values

/** Queued records of calls written at once, at most, and how long the first waits (see `makeWith`). */
const AUDIT_BATCH = 256
const AUDIT_DELAY_MS = 50

/** How long, and for how many rows, a credential's opened values are kept with their sealed bytes. */
const OPENED_TTL_MS = 10_000
const OPENED_MAX = 1024

const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Writes the records an audit log built by `makeWith` still queues; run when its layer closes. */
const auditFlushes = new WeakMap<object, Effect.Effect<void, StoreError>>()

/** Writes every queued audit record of these stores now (the layers do it when they close). */
export const flushAudit = (stores: Context.Context<AuditLog.AuditLog>): Effect.Effect<void, StoreError> =>
  auditFlushes.get(Context.get(stores, AuditLog.AuditLog)) ?? Effect.void

// Connectors and connections are read on every call through a connection; audit records are read once.
const RECORD_CACHE = 1024
const connectorRecord = jsonRecord(Connector.Connector, "connector", RECORD_CACHE)
const connectionRecord = jsonRecord(Connection.Connection, "connection", RECORD_CACHE)
const auditRecord = jsonRecord(AuditLog.AuditRecord, "audit record")

const readCheck = (db: Database) =>
  db.get<SealedColumns>("SELECT key_id, sealed FROM meta WHERE key = ?", [checkValueContext.rowId])

/** Inside a write transaction, before sealing: fails unless the database's key is still this sealer's. */
const ensureCurrentKey = (db: Database, sealer: SealerService) => Common.ensureCurrentKey(readCheck(db), sealer)

const CREDENTIAL_WHERE = "connector_id = ? AND scope = ? AND owner_org = ? AND owner_workspace = ? AND owner_user = ?"

// ---------------------------------------------------------------------------------------------------------------
// Queries whose plan matters (a test checks with EXPLAIN QUERY PLAN that each searches an index)

interface Query {
  readonly sql: string
  readonly params: ReadonlyArray<Param>
}

const select = ({ table, clauses, order, limit }: Common.List): Query => ({
  sql: `SELECT id, record FROM ${table} WHERE ${clauses.map(([sql]) => sql).join(" AND ")} ORDER BY id ${order} LIMIT ?`,
  params: [...clauses.flatMap(([, params]) => params), Common.limitOf(limit)]
})

// Rows that start with a prefix. Both length() and substr() count characters, so this matches startsWith.
const lists = Common.lists((prefix) => ["substr(name, 1, length(?)) = ?", [prefix, prefix]])

/** The SQL of the lookups and keyset-paginated lists. */
export const queries = {
  connectorByName: "SELECT id, record FROM connectors WHERE org = ? AND name = ?",
  connectionByName: "SELECT id, record FROM connections WHERE org = ? AND name = ?",
  credentialByKey: `SELECT * FROM credentials WHERE ${CREDENTIAL_WHERE} AND name = ?`,
  listConnectors: (org: string, query: ConnectorStore.ListQuery): Query => select(lists.connectors(org, query)),
  listConnections: (org: string, query: ConnectionStore.ListQuery): Query => select(lists.connections(org, query)),
  listAudit: (org: string, query: AuditLog.ListQuery): Query => select(lists.audit(org, query))
}

// ---------------------------------------------------------------------------------------------------------------
// Opening

// Migration 6 seals the audit heads written before it (see `Common.sealUnsealedHeads`).
const unsealedHeadsSql = {
  select: "SELECT org, seq, hash FROM audit_heads WHERE sealed IS NULL",
  update: "UPDATE audit_heads SET key_id = ?, sealed = ? WHERE org = ?"
}

/**
 * Proves the key, then migrates, in one transaction: a newer schema or a wrong key rolls back having written
 * nothing; a new database gets its schema and its check value together.
 */
export const initialize = Effect.fn("SqliteStore.initialize")(function* (db: Database, sealer: SealerService) {
  return yield* db.transaction(
    Effect.gen(function* () {
      const version = yield* Migrations.currentVersion(db)
      if (version > Migrations.latestVersion) {
        return yield* SqliteDatabase.newerSchema(version, Migrations.latestVersion)
      }
      const check = version >= 1 ? yield* readCheck(db) : undefined
      if (check !== undefined) yield* verifyCheckValue(sealer, { keyId: check.key_id, bytes: check.sealed })
      const migrated = yield* Migrations.migrate(db)
      if (migrated.from < 6) yield* Common.sealUnsealedHeads(db, unsealedHeadsSql, sealer)
      if (check === undefined) {
        const value = yield* makeCheckValue(sealer)
        yield* db.run("INSERT INTO meta (key, key_id, sealed) VALUES (?, ?, ?)", [
          checkValueContext.rowId,
          value.keyId,
          toBlob(value.bytes)
        ])
      }
      return migrated
    }),
    { durable: true }
  )
})

/** Proves the key and migrates (`initialize`), then builds the four store services on the open database. */
export const makeWith = Effect.fn("SqliteStore.make")(function* (db: Database, sealer: SealerService) {
  yield* initialize(db, sealer)

  // --- connectors -----------------------------------------------------------------------------------------------

  const readConnector = (row: RecordRow | undefined) =>
    row === undefined ? Effect.succeedNone : Effect.asSome(connectorRecord.readOne(row.id, row.record))

  const connectors = ConnectorStore.ConnectorStore.of({
    insert: Effect.fn("SqliteStore.ConnectorStore.insert")(
      function* (org: string, connector: Connector.Connector) {
        const record = yield* connectorRecord.write(connector.id, connector)
        yield* db.transaction(
          Effect.gen(function* () {
            const taken = yield* db.get<{ id: string }>("SELECT id FROM connectors WHERE org = ? AND name = ?", [
              org,
              connector.name
            ])
            if (taken !== undefined) return yield* Common.connectorNameTaken(connector.name)
            yield* db.run("INSERT INTO connectors (id, org, name, kind, version, record) VALUES (?, ?, ?, ?, ?, ?)", [
              connector.id,
              org,
              connector.name,
              connector.kind,
              connector.version,
              record
            ])
            yield* db.run("INSERT INTO connector_versions (connector_id, version, record) VALUES (?, ?, ?)", [
              connector.id,
              connector.version,
              record
            ])
          })
        )
      },
      (effect, _org, connector) => doing(`inserting connector ${connector.id}`)(effect)
    ),

    update: Effect.fn("SqliteStore.ConnectorStore.update")(
      function* (org: string, next: Connector.Connector) {
        const record = yield* connectorRecord.write(next.id, next)
        yield* db.transaction(
          Effect.gen(function* () {
            const current = yield* db.get<{ version: number }>(
              "SELECT version FROM connectors WHERE org = ? AND id = ?",
              [org, next.id]
            )
            if (current === undefined) return yield* Common.connectorNotFound(next.id)
            if (current.version !== next.version - 1) {
              return yield* Common.versionConflict(next.id, current.version, next.version - 1)
            }
            const taken = yield* db.get<{ id: string }>(
              "SELECT id FROM connectors WHERE org = ? AND name = ? AND id <> ?",
              [org, next.name, next.id]
            )
            if (taken !== undefined) return yield* Common.connectorNameTaken(next.name)
            yield* db.run("UPDATE connectors SET name = ?, kind = ?, version = ?, record = ? WHERE id = ?", [
              next.name,
              next.kind,
              next.version,
              record,
              next.id
            ])
            yield* db.run("INSERT INTO connector_versions (connector_id, version, record) VALUES (?, ?, ?)", [
              next.id,
              next.version,
              record
            ])
          })
        )
      },
      (effect, _org, next) => doing(`updating connector ${next.id}`)(effect)
    ),

    // Single reads run on every call through a connection: plain Effect chains, untraced.
    get: (org: string, id: string) =>
      Effect.flatMap(
        db.cachedGet<RecordRow>("SELECT id, record FROM connectors WHERE org = ? AND id = ?", [org, id]),
        readConnector
      ),

    getByName: Effect.fnUntraced(function* (org: string, name: string) {
      const row = yield* db.cachedGet<RecordRow>(queries.connectorByName, [org, name])
      return yield* readConnector(row)
    }),

    getVersion: Effect.fnUntraced(function* (org: string, id: string, version: number) {
      const row = yield* db.locked(
        db.get<RecordRow>(
          `SELECT c.id AS id, v.record AS record FROM connectors c
           JOIN connector_versions v ON v.connector_id = c.id
           WHERE c.org = ? AND c.id = ? AND v.version = ?`,
          [org, id, version]
        )
      )
      return yield* readConnector(row)
    }),

    list: Effect.fn("SqliteStore.ConnectorStore.list")(function* (org: string, query: ConnectorStore.ListQuery) {
      const { sql, params } = queries.listConnectors(org, query)
      const rows = yield* db.locked(db.all<RecordRow>(sql, params))
      return yield* Effect.forEach(rows, (row) => connectorRecord.read(row.id, row.record))
    }),

    delete: Effect.fn("SqliteStore.ConnectorStore.delete")(
      function* (org: string, id: string) {
        yield* db.transaction(
          Effect.gen(function* () {
            const exists = yield* db.get<{ id: string }>("SELECT id FROM connectors WHERE org = ? AND id = ?", [
              org,
              id
            ])
            if (exists === undefined) return yield* Common.connectorNotFound(id)
            const users = yield* db.all<{ id: string }>(
              "SELECT id FROM connections WHERE org = ? AND connector_id = ? ORDER BY id",
              [org, id]
            )
            if (users.length > 0) {
              return yield* Common.connectorInUse(
                id,
                users.map((row) => row.id)
              )
            }
            // Its versions and credentials go with it (ON DELETE CASCADE).
            yield* db.run("DELETE FROM connectors WHERE id = ?", [id])
          }),
          { durable: true }
        )
      },
      (effect, _org, id) => doing(`deleting connector ${id}`)(effect)
    )
  })

  // --- credentials ----------------------------------------------------------------------------------------------

  // A credential is read on every call through a connection that uses it. Its opened values are kept briefly
  // with the exact sealed bytes they came from: the same bytes under the same key open to the same values, and
  // any change re-seals them (a fresh nonce), so a changed, rotated or deleted credential is never served from
  // here. Kept at most OPENED_TTL_MS, and for at most OPENED_MAX rows.
  const opened = new Map<
    string,
    {
      readonly keyId: string
      readonly sealed: Uint8Array
      readonly values: Readonly<Record<string, Redacted.Redacted<string>>>
      readonly until: number
    }
  >()
  const openedValues = (row: CredentialRow) => {
    const now = Date.now()
    const hit = opened.get(row.id)
    if (hit !== undefined && hit.until > now && hit.keyId === row.key_id && bytesEqual(hit.sealed, row.sealed)) {
      return Effect.succeed(hit.values)
    }
    return Effect.map(openCredentialValues(sealer, row), (values) => {
      opened.delete(row.id)
      if (opened.size >= OPENED_MAX) {
        for (const [id, entry] of opened) if (entry.until <= now) opened.delete(id)
        if (opened.size >= OPENED_MAX) opened.clear()
      }
      opened.set(row.id, { keyId: row.key_id, sealed: Uint8Array.from(row.sealed), values, until: now + OPENED_TTL_MS })
      return values
    })
  }

  const readCredential = (row: CredentialRow) => openCredential(sealer, row, openedValues)

  const vault = CredentialVault.CredentialVault.of({
    put: Effect.fn("SqliteStore.CredentialVault.put")(
      function* (credential: Credential.Credential) {
        const key = [
          ...credentialKeyParams(credential.connector_id, credential.scope, credential.owner),
          credential.name
        ]
        return yield* db.transaction(
          Effect.gen(function* () {
            const connector = yield* db.get<{ id: string }>("SELECT id FROM connectors WHERE id = ?", [
              credential.connector_id
            ])
            if (connector === undefined) return yield* Common.noConnectorFor(credential.connector_id)
            const existing = yield* db.get<{ id: string; created_at: string }>(
              `SELECT id, created_at FROM credentials WHERE ${CREDENTIAL_WHERE} AND name = ?`,
              key
            )
            const id = existing?.id ?? credential.id
            yield* ensureCurrentKey(db, sealer)
            const sealed = yield* sealJson(sealer, reveal(credential.values), credentialContext(id))
            if (existing === undefined) {
              yield* db.run(
                `INSERT INTO credentials (${CREDENTIAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
                credentialParams(credential, id, sealed)
              )
              return credential
            }
            yield* db.run("UPDATE credentials SET auth_type = ?, updated_at = ?, key_id = ?, sealed = ? WHERE id = ?", [
              credential.auth_type,
              credential.updated_at,
              sealed.keyId,
              toBlob(sealed.bytes),
              id
            ])
            return { ...credential, id, created_at: existing.created_at }
          }),
          { durable: true }
        )
      },
      (effect, credential) =>
        doing(`storing credential ${credential.name} of connector ${credential.connector_id}`)(effect)
    ),

    get: Effect.fnUntraced(
      function* (key: CredentialVault.Key) {
        const row = yield* db.cachedGet<CredentialRow>(queries.credentialByKey, [
          ...credentialKeyParams(key.connectorId, key.scope, key.owner),
          key.name
        ])
        return row === undefined ? Option.none() : Option.some(yield* readCredential(row))
      },
      (effect, key) => doing(`reading credential ${key.name} of connector ${key.connectorId}`)(effect)
    ),

    list: Effect.fn("SqliteStore.CredentialVault.list")(
      function* (connectorId: string, scope: Credential.Scope, owner: Credential.Owner) {
        const rows = yield* db.locked(
          db.all<CredentialRow>(
            `SELECT * FROM credentials WHERE ${CREDENTIAL_WHERE} ORDER BY name`,
            credentialKeyParams(connectorId, scope, owner)
          )
        )
        return yield* Effect.forEach(rows, readCredential)
      },
      (effect, connectorId) => doing(`listing credentials of connector ${connectorId}`)(effect)
    ),

    delete: Effect.fn("SqliteStore.CredentialVault.delete")(
      function* (key: CredentialVault.Key) {
        const result = yield* db.transaction(
          db.run(`DELETE FROM credentials WHERE ${CREDENTIAL_WHERE} AND name = ?`, [
            ...credentialKeyParams(key.connectorId, key.scope, key.owner),
            key.name
          ]),
          { durable: true }
        )
        return result.changes > 0
      },
      (effect, key) => doing(`deleting credential ${key.name} of connector ${key.connectorId}`)(effect)
    )
  })

  // --- connections ----------------------------------------------------------------------------------------------

  const readConnection = (row: RecordRow | undefined) =>
    row === undefined ? Effect.succeedNone : Effect.asSome(connectionRecord.readOne(row.id, row.record))

  const connections = ConnectionStore.ConnectionStore.of({
    insert: Effect.fn("SqliteStore.ConnectionStore.insert")(
      function* (connection: Connection.Connection, secrets: Connection.Secrets) {
        const record = yield* connectionRecord.write(connection.id, connection)
        yield* db.transaction(
          Effect.gen(function* () {
            const taken = yield* db.get<{ id: string }>("SELECT id FROM connections WHERE org = ? AND name = ?", [
              connection.org,
              connection.name
            ])
            if (taken !== undefined) return yield* Common.connectionNameTaken(connection.name)
            const connector = yield* db.get<{ id: string }>("SELECT id FROM connectors WHERE org = ? AND id = ?", [
              connection.org,
              connection.connector_id
            ])
            if (connector === undefined) return yield* Common.connectorNotFound(connection.connector_id)
            yield* ensureCurrentKey(db, sealer)
            const sealed = yield* sealConnectionSecrets(sealer, connection.id, secrets)
            yield* db.run(
              `INSERT INTO connections (${CONNECTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
              connectionParams(connection, record, sealed)
            )
          }),
          { durable: true }
        )
      },
      (effect, connection) => doing(`inserting connection ${connection.id}`)(effect)
    ),

    get: (org: string, id: string) =>
      Effect.flatMap(
        db.cachedGet<RecordRow>("SELECT id, record FROM connections WHERE org = ? AND id = ?", [org, id]),
        readConnection
      ),

    getByName: Effect.fnUntraced(function* (org: string, name: string) {
      const row = yield* db.cachedGet<RecordRow>(queries.connectionByName, [org, name])
      return yield* readConnection(row)
    }),

    secrets: Effect.fnUntraced(
      function* (org: string, id: string) {
        const row = yield* db.cachedGet<SealedColumns & { id: string }>(
          "SELECT id, key_id, sealed FROM connections WHERE org = ? AND id = ?",
          [org, id]
        )
        if (row === undefined) return Connection.noSecrets
        const secrets = yield* openJson(sealer, ConnectionSecrets, row, connectionContext(row.id))
        return { security: conceal(secrets.security), headers: conceal(secrets.headers) } satisfies Connection.Secrets
      },
      (effect, _org, id) => doing(`reading the secrets of connection ${id}`)(effect)
    ),

    list: Effect.fn("SqliteStore.ConnectionStore.list")(function* (org: string, query: ConnectionStore.ListQuery) {
      const { sql, params } = queries.listConnections(org, query)
      const rows = yield* db.locked(db.all<RecordRow>(sql, params))
      return yield* Effect.forEach(rows, (row) => connectionRecord.read(row.id, row.record))
    }),

    setStatus: Effect.fn("SqliteStore.ConnectionStore.setStatus")(
      function* (org: string, id: string, patch: ConnectionStore.StatusPatch) {
        return yield* db.transaction(
          Effect.gen(function* () {
            const row = yield* db.get<RecordRow>("SELECT id, record FROM connections WHERE org = ? AND id = ?", [
              org,
              id
            ])
            if (row === undefined) return Option.none<Connection.Connection>()
            const current = yield* connectionRecord.read(row.id, row.record)
            const next: Connection.Connection = { ...current, ...patch }
            const record = yield* connectionRecord.write(id, next)
            yield* db.run("UPDATE connections SET status = ?, record = ? WHERE id = ?", [next.status, record, id])
            return Option.some(next)
          })
        )
      },
      (effect, _org, id) => doing(`setting the status of connection ${id}`)(effect)
    ),

    delete: Effect.fn("SqliteStore.ConnectionStore.delete")(
      function* (org: string, id: string) {
        const result = yield* db.transaction(db.run("DELETE FROM connections WHERE org = ? AND id = ?", [org, id]), {
          durable: true
        })
        return result.changes > 0
      },
      (effect, _org, id) => doing(`deleting connection ${id}`)(effect)
    )
  })

  // --- audit ----------------------------------------------------------------------------------------------------

  // Records of calls are group-committed: `append` validates and queues them, and one transaction writes every
  // queued record AUDIT_DELAY_MS after the first (or at once when AUDIT_BATCH are queued). Any other record, a
  // `list`, and the end of the layer first write what is queued, so order is kept and a reader in this process
  // sees every record. A crash loses at most the records of calls of its last AUDIT_DELAY_MS, never a record of
  // a change (connector, credential, connection: those are written before `append` returns).
  type Queued = Common.AuditEntry
  let queued: Array<Queued> = []
  let scheduled = false
  const services = yield* Effect.context<never>()

  // Chained inside the (BEGIN IMMEDIATE) transaction: no other process can append onto the same head.
  const writeAudit = (batch: ReadonlyArray<Queued>) =>
    Effect.gen(function* () {
      const heads = new Map<string, AuditChain.Head | undefined>()
      const stored = new Map<string, Common.HeadRow | undefined>()
      for (const entry of batch) {
        const { org } = entry.record
        if (!heads.has(org)) {
          const row = yield* db.get<Common.HeadRow>("SELECT seq, hash, key_id, sealed FROM audit_heads WHERE org = ?", [
            org
          ])
          stored.set(org, row)
          heads.set(org, row === undefined ? undefined : { seq: row.seq, hash: row.hash })
        }
        const head = heads.get(org)
        const link = Common.nextLink(head, entry)
        yield* db.run(
          `INSERT INTO audit (${Common.AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          Common.auditParams(entry, link)
        )
        heads.set(org, { seq: link.seq, hash: link.hash })
      }
      // Each head is re-sealed once per batch (see `AuditChain`), under the database's current key.
      for (const [org, head] of heads) {
        if (head === undefined) continue
        const sealed = yield* Common.sealNextHead(readCheck(db), sealer, org, stored.get(org), head)
        yield* sealed === undefined
          ? db.run("UPDATE audit_heads SET seq = ?, hash = ? WHERE org = ?", [head.seq, head.hash, org])
          : db.run(
              "INSERT INTO audit_heads (org, seq, hash, key_id, sealed) VALUES (?, ?, ?, ?, ?) ON CONFLICT (org) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, key_id = excluded.key_id, sealed = excluded.sealed",
              Common.headParams(org, head, sealed)
            )
      }
    })

  /** Writes what is queued, plus `also` after it, in one transaction. */
  const writeQueued = (also?: Queued) =>
    Effect.suspend(() => {
      if (queued.length === 0 && also === undefined) return Effect.void
      return db.transaction(
        Effect.suspend(() => {
          const batch = queued
          queued = []
          if (also !== undefined) batch.push(also)
          return batch.length === 0
            ? Effect.void
            : writeAudit(batch).pipe(
                Effect.tapError(() =>
                  Effect.logError(`dropped ${batch.length} audit records: writing them failed`, {
                    first: batch[0]?.record.id
                  })
                )
              )
        })
      )
    })

  const flushSoon = () => {
    if (scheduled) return
    scheduled = true
    setTimeout(() => {
      scheduled = false
      Effect.runForkWith(services)(Effect.ignore(writeQueued()))
    }, AUDIT_DELAY_MS)
  }

  const batched: ReadonlySet<string> = new Set(["connection.proxy", "tool.call"])

  const audit = AuditLog.AuditLog.of({
    append: Effect.fnUntraced(
      function* (record: AuditLog.AuditRecord) {
        const checked = Common.auditEntry(record)
        if (Result.isFailure(checked)) return yield* checked.failure
        const entry = checked.success
        if (!batched.has(record.action)) return yield* writeQueued(entry)
        queued.push(entry)
        if (queued.length >= AUDIT_BATCH) yield* writeQueued()
        else flushSoon()
      },
      (effect, record) => doing(`appending audit record ${record.id}`)(effect)
    ),

    list: Effect.fn("SqliteStore.AuditLog.list")(function* (org: string, query: AuditLog.ListQuery) {
      yield* writeQueued()
      const { sql, params } = queries.listAudit(org, query)
      const rows = yield* db.locked(db.all<RecordRow>(sql, params))
      return yield* Effect.forEach(rows, (row) => auditRecord.read(row.id, row.record))
    })
  })

  auditFlushes.set(audit, writeQueued())
  return Context.make(ConnectorStore.ConnectorStore, connectors)
    .pipe(Context.add(CredentialVault.CredentialVault, vault))
    .pipe(Context.add(ConnectionStore.ConnectionStore, connections))
    .pipe(Context.add(AuditLog.AuditLog, audit))
    .pipe(Context.add(ToolPins.ToolPins, SqliteToolPins.make(db)))
})

/** The store services on the `SqliteDatabase` service, sealing with the `Sealer` service. */
export const make: Effect.Effect<
  Context.Context<Stores>,
  StoreError | SealError,
  SqliteDatabase.SqliteDatabase | Sealer
> = Effect.gen(function* () {
  const db = yield* SqliteDatabase.SqliteDatabase
  const sealer = yield* Sealer
  return yield* makeWith(db, sealer)
})

/**
 * Every store port on an already provided `SqliteDatabase`. A new layer per call: layers are memoised by
 * identity, so two stores on two files must not share one.
 */
export const layerFromDatabase = (): Layer.Layer<
  Stores,
  StoreError | SealError,
  SqliteDatabase.SqliteDatabase | Sealer
> => Layer.effectContext(Effect.tap(make, (stores) => Effect.addFinalizer(() => Effect.ignore(flushAudit(stores)))))

const databaseLayer = (options: Options) =>
  SqliteDatabase.layer({ filename: options.filename, schemaVersion: Migrations.latestVersion })

/** Every store port on one SQLite file; the file is opened, checked and migrated when the layer is built. */
export const layer = (options: Options): Layer.Layer<Stores, StoreError | SealError, Sealer> =>
  layerFromDatabase().pipe(Layer.provide(databaseLayer(options)))

/** Like `layer`, and also exposes the open database (for `rotateKey`). */
export const layerWithDatabase = (
  options: Options
): Layer.Layer<Stores | SqliteDatabase.SqliteDatabase, StoreError | SealError, Sealer> =>
  layerFromDatabase().pipe(Layer.provideMerge(databaseLayer(options)))

/** Every store port on a private in-memory SQLite database, for tests. */
export const layerMemory: Layer.Layer<Stores, StoreError | SealError, Sealer> = layer({ filename: ":memory:" })

// ---------------------------------------------------------------------------------------------------------------
// Key rotation

/** The tables whose rows hold a sealed value under the context (table, id). */
export const sealedTables = Common.sealedTables

/** The `meta` rows (besides the check value) holding a sealed value under the context ("meta", key). */
export const sealedMetaKeys = Common.sealedMetaKeys

const rotationSql: Common.RotationSql = {
  page: (table) => `SELECT id, key_id, sealed FROM ${table} WHERE id > ? ORDER BY id LIMIT ?`,
  update: (table) => `UPDATE ${table} SET key_id = ?, sealed = ? WHERE id = ?`,
  meta: "SELECT key_id, sealed FROM meta WHERE key = ?",
  updateMeta: "UPDATE meta SET key_id = ?, sealed = ? WHERE key = ?",
  heads: "SELECT org, key_id, sealed FROM audit_heads WHERE org > ? AND sealed IS NOT NULL ORDER BY org LIMIT ?",
  updateHead: "UPDATE audit_heads SET key_id = ?, sealed = ? WHERE org = ?"
}

/**
 * Re-seals every sealed value, and the check value, from `current` to `next`, in one durable transaction: if
 * anything fails or the fiber is interrupted, it rolls back and the database still opens with `current` only.
 * Stores built on `current` must be rebuilt with `next` afterwards (and other processes restarted).
 */
export const rotateKey = Effect.fn("SqliteStore.rotateKey")(function* (
  db: Database,
  current: SealerService,
  next: SealerService
) {
  return yield* db.transaction(
    Effect.gen(function* () {
      const check = yield* readCheck(db)
      if (check === undefined) {
        return yield* new StoreError({ message: "the database has no key check value; open it with the store first" })
      }
      yield* verifyCheckValue(current, { keyId: check.key_id, bytes: check.sealed })
      return yield* Common.resealAll(db, rotationSql, current, next)
    }),
    { durable: true }
  )
})

// ---------------------------------------------------------------------------------------------------------------
// Shared with the other stores on this database

/**
 * What the bundle store (`BundleStore.ts`) shares with this module: the key check (rows, sealing and the rest are
 * `internal/`, shared with the PostgreSQL store).
 */
export const shared = {
  ensureCurrentKey
} as const
