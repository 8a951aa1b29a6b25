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
import * as AuditChain from "@switchboard/core/AuditChain"
import * as AuditLog from "@switchboard/core/AuditLog"
import * as AuthPattern from "@switchboard/core/AuthPattern"
import * as Connection from "@switchboard/core/Connection"
import * as ConnectionStore from "@switchboard/core/ConnectionStore"
import * as Connector from "@switchboard/core/Connector"
import * as ConnectorStore from "@switchboard/core/ConnectorStore"
import * as Credential from "@switchboard/core/Credential"
import * as CredentialVault from "@switchboard/core/CredentialVault"
import {
  ConnectorInUse,
  ConnectorNotFound,
  NameTaken,
  SealError,
  StoreError,
  VersionConflict
} from "@switchboard/core/Errors"
import { type SealContext, type Sealed, Sealer } from "@switchboard/core/Sealer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { createHash } from "node:crypto"
import { checkValueContext, makeCheckValue, verifyCheckValue } from "../sodium/Sealer.ts"
import * as SqliteDatabase from "./Database.ts"
import type { Database, Param } from "./Database.ts"
import * as Migrations from "./Migrations.ts"

type SealerService = (typeof Sealer)["Service"]

/** The four store ports this module provides. */
export type Stores =
  | ConnectorStore.ConnectorStore
  | CredentialVault.CredentialVault
  | ConnectionStore.ConnectionStore
  | AuditLog.AuditLog

export interface Options {
  /** The database file (created with mode 0600 when missing), or ":memory:". */
  readonly filename: string
}

// ---------------------------------------------------------------------------------------------------------------
// Rows, records and sealed values

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/** Prefixes a StoreError's message with what was being done. */
const doing =
  (what: string) =>
  <A, E, R>(effect: Effect.Effect<A, E | StoreError, R>): Effect.Effect<A, E | StoreError, R> =>
    Effect.mapError(effect, (error) =>
      error instanceof StoreError
        ? new StoreError({
            message: `${what}: ${error.message}`,
            ...(error.details === undefined ? {} : { details: error.details }),
            ...(error.cause === undefined ? {} : { cause: error.cause })
          })
        : error
    )

/**
 * JSON records checked against their schema both ways: nothing invalid is written, a corrupt row is an error.
 * With `cache`, `readOne` keeps the last `cache` records it decoded by row id with the text they were decoded
 * from, and a row read again with the very same text is not parsed and decoded again (the row is still read
 * every time, so a change made by another process is seen; decoded records are immutable, so sharing them is
 * safe). Lists use `read`, so paging through everything does not push out the records read on every call.
 */
const jsonRecord = <T, E>(schema: Schema.Codec<T, E>, label: string, cache = 0) => {
  const encode = Schema.encodeUnknownEffect(schema)
  const decode = Schema.decodeUnknownEffect(schema)
  const decoded = new Map<string, { readonly text: string; readonly value: T }>()
  const remember = (id: string, text: string, value: T) =>
    Effect.sync(() => {
      decoded.delete(id)
      if (decoded.size >= cache) {
        const oldest = decoded.keys().next()
        if (oldest.done !== true) decoded.delete(oldest.value)
      }
      decoded.set(id, { text, value })
    })
  const parse = (id: string, text: string): Effect.Effect<T, StoreError> =>
    Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (cause) => new StoreError({ message: `the stored ${label} ${id} is corrupt (not JSON)`, cause })
    }).pipe(
      Effect.flatMap((json) => decode(json)),
      Effect.mapError((cause) =>
        cause instanceof StoreError
          ? cause
          : new StoreError({ message: `the stored ${label} ${id} is corrupt: ${cause.message}`, cause })
      )
    )
  return {
    write: (id: string, value: T): Effect.Effect<string, StoreError> =>
      encode(value).pipe(
        Effect.map((encoded) => JSON.stringify(encoded)),
        Effect.mapError(
          (cause) => new StoreError({ message: `the ${label} ${id} is not valid: ${cause.message}`, cause })
        )
      ),
    read: parse,
    readOne: (id: string, text: string): Effect.Effect<T, StoreError> => {
      if (cache === 0) return parse(id, text)
      const hit = decoded.get(id)
      if (hit !== undefined && hit.text === text) return Effect.succeed(hit.value)
      return Effect.tap(parse(id, text), (value) => remember(id, text, value))
    }
  }
}

// Connectors and connections are read on every call through a connection; audit records are read once.
const RECORD_CACHE = 1024
const connectorRecord = jsonRecord(Connector.Connector, "connector", RECORD_CACHE)
const connectionRecord = jsonRecord(Connection.Connection, "connection", RECORD_CACHE)
const auditRecord = jsonRecord(AuditLog.AuditRecord, "audit record")

interface SealedColumns {
  readonly key_id: string
  readonly sealed: Uint8Array
}

const toBlob = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

type Plain = Readonly<Record<string, string>>

const reveal = (values: Readonly<Record<string, Redacted.Redacted<string>>>): Plain =>
  Object.fromEntries(Object.entries(values).map(([name, value]) => [name, Redacted.value(value)]))

const conceal = (values: Plain): Readonly<Record<string, Redacted.Redacted<string>>> =>
  Object.fromEntries(Object.entries(values).map(([name, value]) => [name, Redacted.make(value)]))

/** Seals a JSON value; the plaintext bytes are zeroed once sealed. */
const sealJson = (sealer: SealerService, value: unknown, context: SealContext): Effect.Effect<Sealed, SealError> =>
  Effect.suspend(() => {
    const bytes = encoder.encode(JSON.stringify(value))
    return sealer.seal(Redacted.make(bytes), context).pipe(Effect.ensuring(Effect.sync(() => bytes.fill(0))))
  })

/**
 * Opens a sealed JSON value and decodes it. A value that opens but does not decode is reported without its
 * content or the parser's message, which would quote it.
 */
const openJson = <T, E>(
  sealer: SealerService,
  schema: Schema.Codec<T, E>,
  columns: SealedColumns,
  context: SealContext
): Effect.Effect<T, StoreError | SealError> =>
  Effect.flatMap(sealer.open({ keyId: columns.key_id, bytes: columns.sealed }, context), (opened) => {
    const bytes = Redacted.value(opened)
    const result = Result.try((): unknown => JSON.parse(decoder.decode(bytes))).pipe(
      Result.flatMap((json) => Schema.decodeUnknownResult(schema)(json))
    )
    bytes.fill(0)
    return Result.isSuccess(result)
      ? Effect.succeed(result.success)
      : Effect.fail(
          new StoreError({
            message: `the sealed value of ${context.table} row ${context.rowId} is not in the expected form`
          })
        )
  })

const SecretValues = Schema.Record(Schema.String, Schema.String)
const ConnectionSecrets = Schema.Struct({ security: SecretValues, headers: SecretValues })

interface CredentialRow extends SealedColumns {
  readonly id: string
  readonly connector_id: string
  readonly scope: string
  readonly owner_org: string
  readonly owner_workspace: string
  readonly owner_user: string
  readonly name: string
  readonly auth_type: string | null
  readonly created_at: string
  readonly updated_at: string
}

const CredentialColumns = Schema.Struct({ scope: Credential.Scope, auth_type: Schema.NullOr(AuthPattern.AuthType) })

/** Hex SHA-256, the audit chain's digest. */
export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

interface RecordRow {
  readonly id: string
  readonly record: string
}

const readCheck = (db: Database) =>
  db.get<SealedColumns>("SELECT key_id, sealed FROM meta WHERE key = ?", [checkValueContext.rowId])

/**
 * Inside a write transaction, before sealing: fails unless the database's key is still this sealer's. Another
 * process may have rotated the key since this store opened; writing under the old key then would leave values
 * no current key opens.
 */
const ensureCurrentKey = (db: Database, sealer: SealerService) =>
  Effect.flatMap(readCheck(db), (row) =>
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

// The unique key of a credential: owner parts that do not apply are stored as "".
const credentialKeyParams = (connectorId: string, scope: Credential.Scope, owner: Credential.Owner): Array<Param> => [
  connectorId,
  scope,
  owner.org,
  owner.workspace ?? "",
  owner.user ?? ""
]

const CREDENTIAL_WHERE = "connector_id = ? AND scope = ? AND owner_org = ? AND owner_workspace = ? AND owner_user = ?"

const limitOf = (limit: number) => Math.max(0, Math.floor(limit))

// ---------------------------------------------------------------------------------------------------------------
// Queries whose plan matters (a test checks with EXPLAIN QUERY PLAN that each searches an index)

interface Query {
  readonly sql: string
  readonly params: ReadonlyArray<Param>
}

const filtered = (
  table: string,
  base: ReadonlyArray<readonly [string, ReadonlyArray<Param>]>,
  optional: ReadonlyArray<readonly [string, ReadonlyArray<Param>] | undefined>,
  order: "ASC" | "DESC",
  limit: number
): Query => {
  const clauses = [...base, ...optional.filter((clause) => clause !== undefined)]
  return {
    sql: `SELECT id, record FROM ${table} WHERE ${clauses.map(([sql]) => sql).join(" AND ")} ORDER BY id ${order} LIMIT ?`,
    params: [...clauses.flatMap(([, params]) => params), limitOf(limit)]
  }
}

const when = <A>(value: A | undefined, clause: (value: A) => readonly [string, ReadonlyArray<Param>]) =>
  value === undefined ? undefined : clause(value)

// Rows that start with a prefix. Both length() and substr() count characters, so this matches startsWith.
const namePrefix = (prefix: string) => ["substr(name, 1, length(?)) = ?", [prefix, prefix]] as const

/** The SQL of the lookups and keyset-paginated lists. */
export const queries = {
  connectorByName: "SELECT id, record FROM connectors WHERE org = ? AND name = ?",
  connectionByName: "SELECT id, record FROM connections WHERE org = ? AND name = ?",
  credentialByKey: `SELECT * FROM credentials WHERE ${CREDENTIAL_WHERE} AND name = ?`,
  listConnectors: (org: string, query: ConnectorStore.ListQuery): Query =>
    filtered(
      "connectors",
      [["org = ?", [org]]],
      [
        when(query.after, (after) => ["id > ?", [after]]),
        when(query.kind, (kind) => ["kind = ?", [kind]]),
        when(query.namePrefix, namePrefix)
      ],
      "ASC",
      query.limit
    ),
  listConnections: (org: string, query: ConnectionStore.ListQuery): Query =>
    filtered(
      "connections",
      [
        ["org = ?", [org]],
        ["(access_scope = 'organizational' OR owner = ?)", [query.visibleTo]]
      ],
      [
        when(query.after, (after) => ["id > ?", [after]]),
        when(query.connectorId, (id) => ["connector_id = ?", [id]]),
        when(query.status, (status) => ["status = ?", [status]]),
        when(query.namePrefix, namePrefix)
      ],
      "ASC",
      query.limit
    ),
  listAudit: (org: string, query: AuditLog.ListQuery): Query =>
    filtered(
      "audit",
      [["org = ?", [org]]],
      [
        when(query.after, (after) => ["id < ?", [after]]),
        when(query.connectionId, (id) => ["connection_id = ?", [id]]),
        when(query.action, (action) => ["action = ?", [action]])
      ],
      "DESC",
      query.limit
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Opening

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

  const nameTaken = (name: string) => new NameTaken({ message: `a connector named ${name} exists`, details: { name } })

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
            if (taken !== undefined) return yield* nameTaken(connector.name)
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
            if (current === undefined) {
              return yield* new ConnectorNotFound({ message: `connector ${next.id} not found` })
            }
            if (current.version !== next.version - 1) {
              return yield* new VersionConflict({
                message: `connector ${next.id} changed concurrently: it is at version ${current.version}, not ${next.version - 1}; read it again and retry`,
                details: { connector: next.id, version: current.version }
              })
            }
            const taken = yield* db.get<{ id: string }>(
              "SELECT id FROM connectors WHERE org = ? AND name = ? AND id <> ?",
              [org, next.name, next.id]
            )
            if (taken !== undefined) return yield* nameTaken(next.name)
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

    get: Effect.fn("SqliteStore.ConnectorStore.get")(function* (org: string, id: string) {
      const row = yield* db.locked(
        db.get<RecordRow>("SELECT id, record FROM connectors WHERE org = ? AND id = ?", [org, id])
      )
      return yield* readConnector(row)
    }),

    getByName: Effect.fn("SqliteStore.ConnectorStore.getByName")(function* (org: string, name: string) {
      const row = yield* db.locked(db.get<RecordRow>(queries.connectorByName, [org, name]))
      return yield* readConnector(row)
    }),

    getVersion: Effect.fn("SqliteStore.ConnectorStore.getVersion")(function* (
      org: string,
      id: string,
      version: number
    ) {
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
            if (exists === undefined) return yield* new ConnectorNotFound({ message: `connector ${id} not found` })
            const users = yield* db.all<{ id: string }>(
              "SELECT id FROM connections WHERE org = ? AND connector_id = ? ORDER BY id",
              [org, id]
            )
            if (users.length > 0) {
              return yield* new ConnectorInUse({
                message: `connector ${id} is used by ${users.length} connection(s); delete them first`,
                details: { connections: users.map((row) => row.id) }
              })
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

  const credentialContext = (id: string): SealContext => ({ table: "credentials", rowId: id })

  const readCredential = (row: CredentialRow) =>
    Effect.gen(function* () {
      const columns = yield* Schema.decodeUnknownEffect(CredentialColumns)(row).pipe(
        Effect.mapError(
          (cause) => new StoreError({ message: `the stored credential ${row.id} is corrupt: ${cause.message}`, cause })
        )
      )
      const values = yield* openJson(sealer, SecretValues, row, credentialContext(row.id))
      const owner: Credential.Owner = {
        org: row.owner_org,
        ...(row.owner_workspace === "" ? {} : { workspace: row.owner_workspace }),
        ...(row.owner_user === "" ? {} : { user: row.owner_user })
      }
      return {
        id: row.id,
        connector_id: row.connector_id,
        scope: columns.scope,
        owner,
        name: row.name,
        auth_type: columns.auth_type,
        values: conceal(values),
        created_at: row.created_at,
        updated_at: row.updated_at
      } satisfies Credential.Credential
    })

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
            if (connector === undefined) {
              return yield* new StoreError({ message: `connector ${credential.connector_id} does not exist` })
            }
            const existing = yield* db.get<{ id: string; created_at: string }>(
              `SELECT id, created_at FROM credentials WHERE ${CREDENTIAL_WHERE} AND name = ?`,
              key
            )
            const id = existing?.id ?? credential.id
            yield* ensureCurrentKey(db, sealer)
            const sealed = yield* sealJson(sealer, reveal(credential.values), credentialContext(id))
            if (existing === undefined) {
              yield* db.run(
                `INSERT INTO credentials (connector_id, scope, owner_org, owner_workspace, owner_user, name, id,
                   auth_type, created_at, updated_at, key_id, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
                [
                  ...key,
                  id,
                  credential.auth_type,
                  credential.created_at,
                  credential.updated_at,
                  sealed.keyId,
                  toBlob(sealed.bytes)
                ]
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

    get: Effect.fn("SqliteStore.CredentialVault.get")(
      function* (key: CredentialVault.Key) {
        const row = yield* db.locked(
          db.get<CredentialRow>(queries.credentialByKey, [
            ...credentialKeyParams(key.connectorId, key.scope, key.owner),
            key.name
          ])
        )
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

  const connectionContext = (id: string): SealContext => ({ table: "connections", rowId: id })

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
            if (taken !== undefined) {
              return yield* new NameTaken({
                message: `a connection named ${connection.name} exists`,
                details: { name: connection.name }
              })
            }
            const connector = yield* db.get<{ id: string }>("SELECT id FROM connectors WHERE org = ? AND id = ?", [
              connection.org,
              connection.connector_id
            ])
            if (connector === undefined) {
              return yield* new ConnectorNotFound({ message: `connector ${connection.connector_id} not found` })
            }
            yield* ensureCurrentKey(db, sealer)
            const sealed = yield* sealJson(
              sealer,
              { security: reveal(secrets.security), headers: reveal(secrets.headers) },
              connectionContext(connection.id)
            )
            yield* db.run(
              `INSERT INTO connections (id, org, name, connector_id, status, owner, access_scope, record, key_id, sealed)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
              [
                connection.id,
                connection.org,
                connection.name,
                connection.connector_id,
                connection.status,
                connection.owner,
                connection.access_scope,
                record,
                sealed.keyId,
                toBlob(sealed.bytes)
              ]
            )
          }),
          { durable: true }
        )
      },
      (effect, connection) => doing(`inserting connection ${connection.id}`)(effect)
    ),

    get: Effect.fn("SqliteStore.ConnectionStore.get")(function* (org: string, id: string) {
      const row = yield* db.locked(
        db.get<RecordRow>("SELECT id, record FROM connections WHERE org = ? AND id = ?", [org, id])
      )
      return yield* readConnection(row)
    }),

    getByName: Effect.fn("SqliteStore.ConnectionStore.getByName")(function* (org: string, name: string) {
      const row = yield* db.locked(db.get<RecordRow>(queries.connectionByName, [org, name]))
      return yield* readConnection(row)
    }),

    secrets: Effect.fn("SqliteStore.ConnectionStore.secrets")(
      function* (org: string, id: string) {
        const row = yield* db.locked(
          db.get<SealedColumns & { id: string }>(
            "SELECT id, key_id, sealed FROM connections WHERE org = ? AND id = ?",
            [org, id]
          )
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

  const audit = AuditLog.AuditLog.of({
    append: Effect.fn("SqliteStore.AuditLog.append")(
      function* (record: AuditLog.AuditRecord) {
        const json = yield* auditRecord.write(record.id, record)
        // Chained inside the (BEGIN IMMEDIATE) transaction: no other process can append onto the same head.
        const stored = JSON.parse(json) as AuditLog.AuditRecord
        yield* db.transaction(
          Effect.gen(function* () {
            const head = yield* db.get<AuditChain.Head>("SELECT seq, hash FROM audit_heads WHERE org = ?", [record.org])
            const seq = (head?.seq ?? 0) + 1
            const prevHash = head?.hash ?? AuditChain.genesis
            const hash = sha256(AuditChain.canonical(seq, prevHash, stored))
            yield* db.run(
              "INSERT INTO audit (org, id, connection_id, action, record, seq, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
              [record.org, record.id, record.connection_id ?? null, record.action, json, seq, prevHash, hash]
            )
            yield* db.run(
              "INSERT INTO audit_heads (org, seq, hash) VALUES (?, ?, ?) ON CONFLICT (org) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
              [record.org, seq, hash]
            )
          })
        )
      },
      (effect, record) => doing(`appending audit record ${record.id}`)(effect)
    ),

    list: Effect.fn("SqliteStore.AuditLog.list")(function* (org: string, query: AuditLog.ListQuery) {
      const { sql, params } = queries.listAudit(org, query)
      const rows = yield* db.locked(db.all<RecordRow>(sql, params))
      return yield* Effect.forEach(rows, (row) => auditRecord.read(row.id, row.record))
    })
  })

  return Context.make(ConnectorStore.ConnectorStore, connectors)
    .pipe(Context.add(CredentialVault.CredentialVault, vault))
    .pipe(Context.add(ConnectionStore.ConnectionStore, connections))
    .pipe(Context.add(AuditLog.AuditLog, audit))
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
> => Layer.effectContext(make)

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
export const sealedTables = ["credentials", "connections", "oauth_flows", "oauth_records"] as const

const ROTATE_BATCH = 500

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
      const counts = { credentials: 0, connections: 0, oauth_flows: 0, oauth_records: 0 }
      for (const table of sealedTables) {
        let after = ""
        for (;;) {
          const rows = yield* db.all<SealedColumns & { id: string }>(
            `SELECT id, key_id, sealed FROM ${table} WHERE id > ? ORDER BY id LIMIT ?`,
            [after, ROTATE_BATCH]
          )
          for (const row of rows) {
            const context: SealContext = { table, rowId: row.id }
            const opened = yield* current.open({ keyId: row.key_id, bytes: row.sealed }, context)
            const sealed = yield* next
              .seal(opened, context)
              .pipe(Effect.ensuring(Effect.sync(() => Redacted.value(opened).fill(0))))
            yield* db.run(`UPDATE ${table} SET key_id = ?, sealed = ? WHERE id = ?`, [
              sealed.keyId,
              toBlob(sealed.bytes),
              row.id
            ])
            counts[table]++
          }
          const last = rows.at(-1)
          if (last === undefined || rows.length < ROTATE_BATCH) break
          after = last.id
        }
      }
      const value = yield* makeCheckValue(next)
      yield* db.run("UPDATE meta SET key_id = ?, sealed = ? WHERE key = ?", [
        value.keyId,
        toBlob(value.bytes),
        checkValueContext.rowId
      ])
      return { ...counts, keyId: next.keyId }
    }),
    { durable: true }
  )
})
