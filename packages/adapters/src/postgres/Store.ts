/**
 * The PostgreSQL implementations of the store ports (ConnectorStore, CredentialVault, ConnectionStore, AuditLog,
 * OAuthStateStore, AuditChain) over one database shared by several daemons, behaving exactly like the in-memory
 * and SQLite adapters (one behavioural suite runs against all three). Secrets are sealed with the `Sealer` port
 * under the context (table, row id) of the row that holds them, so a ciphertext copied into another row does not
 * open; records stored as JSON hold no secret.
 *
 * Multi-tenant: every row of an organization's data carries its org and every lookup, update and delete of such
 * a row is by (org, id), so an id from another org finds nothing.
 *
 * Cross-host correctness, each in one statement or one transaction:
 * - connector updates are optimistic: `UPDATE ... WHERE org AND id AND version = next - 1`, so of two hosts
 *   updating from one version exactly one succeeds and the other gets `VersionConflict`;
 * - names are unique per org by constraint, so two hosts inserting one name cannot both succeed (`NameTaken`);
 * - a refresh lease is taken by one `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired or ours`, which
 *   PostgreSQL runs under the row's lock: of two hosts exactly one gets it;
 * - audit appends of an org run under a transaction-scoped advisory lock on that org, so the hash chain has one
 *   head and no two appends link to the same predecessor;
 * - credential puts of one key run under an advisory lock on that key (the sealed value is bound to the row id,
 *   which must be known before sealing);
 * - every sealed write reads the key check `FOR SHARE` and `rotateKey` locks it `FOR UPDATE`, so no value is
 *   sealed under a key that a rotation is replacing.
 *
 * At open, in one transaction under the migration lock: a database newer than this code is refused, the sealed
 * check value in `meta` proves the master key (a wrong key fails with "key_mismatch" and nothing is written),
 * then pending migrations run and, on a new database, the check value is written.
 */
import * as AuditChain from "@switchboard/core/AuditChain"
import * as AuditLog from "@switchboard/core/AuditLog"
import * as Connection from "@switchboard/core/Connection"
import * as ConnectionStore from "@switchboard/core/ConnectionStore"
import * as Connector from "@switchboard/core/Connector"
import * as ConnectorStore from "@switchboard/core/ConnectorStore"
import type * as Credential from "@switchboard/core/Credential"
import * as CredentialVault from "@switchboard/core/CredentialVault"
import { type ConnectorNotFound, type NameTaken, type SealError, StoreError } from "@switchboard/core/Errors"
import { OAuthStateStore, type StoredFlow } from "@switchboard/core/OAuthStateStore"
import { type SealContext, Sealer } from "@switchboard/core/Sealer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { sha256 } from "../internal/digest.ts"
import {
  CONNECTION_COLUMNS,
  CREDENTIAL_COLUMNS,
  type CredentialRow,
  ConnectionSecrets,
  connectionContext,
  connectionParams,
  credentialKeyParams,
  chainOf,
  conceal,
  credentialContext,
  credentialParams,
  doing,
  jsonRecord,
  type LinkRow,
  openJson,
  openText,
  type RecordRow,
  readCredential as openCredential,
  reveal,
  type SealedColumns,
  type SealerService,
  sealConnectionSecrets,
  sealJson,
  sealText,
  toBuffer
} from "../internal/rows.ts"
import { checkValueContext, makeCheckValue, verifyCheckValue } from "../sodium/Sealer.ts"
import * as PgDatabase from "./Database.ts"
import { constraintOf, type Database, type Executor, type Param } from "./Database.ts"
import * as Migrations from "./Migrations.ts"
import * as Common from "../internal/store.ts"

/** The store ports this module provides. */
export type Stores =
  | ConnectorStore.ConnectorStore
  | CredentialVault.CredentialVault
  | ConnectionStore.ConnectionStore
  | AuditLog.AuditLog
  | OAuthStateStore
  | AuditChain.AuditChain

/** Where the database is and how many connections to keep (see `Database.Options`). */
export type Options = PgDatabase.Options

// ---------------------------------------------------------------------------------------------------------------
// Records and sealed values

/** Replaces a StoreError caused by a violation of one of `constraints` with the error made for it. */
const onConstraint =
  <E2>(constraints: Readonly<Record<string, () => E2>>) =>
  <A, E, R>(effect: Effect.Effect<A, E | StoreError, R>): Effect.Effect<A, E | E2 | StoreError, R> =>
    Effect.catchIf(
      effect,
      (error): error is StoreError => {
        if (!(error instanceof StoreError)) return false
        const constraint = constraintOf(error.cause)
        return constraint !== undefined && Object.hasOwn(constraints, constraint)
      },
      (error) => Effect.fail((constraints[constraintOf(error.cause) as string] as () => E2)())
    )

const connectorRecord = jsonRecord(Connector.Connector, "connector")
const connectionRecord = jsonRecord(Connection.Connection, "connection")
const auditRecord = jsonRecord(AuditLog.AuditRecord, "audit record")
const CHECK_SQL = "SELECT key_id, sealed FROM meta WHERE key = $1"

const readCheck = (tx: Executor) => tx.get<SealedColumns>(CHECK_SQL, [checkValueContext.rowId])

/**
 * Inside a write transaction, before sealing: fails unless the database's key is still this sealer's. The check
 * row is read `FOR SHARE`: a rotation (which locks it `FOR UPDATE`) waits for this transaction, and this one
 * waits for a rotation under way and then sees its new key.
 */
const ensureCurrentKey = (tx: Executor, sealer: SealerService) =>
  Common.ensureCurrentKey(tx.get<SealedColumns>(`${CHECK_SQL} FOR SHARE`, [checkValueContext.rowId]), sealer)

/** Takes a transaction-scoped advisory lock on a name (hashed to 64 bits). */
const advisoryLock = (tx: Executor, name: string) =>
  Effect.asVoid(tx.run("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [name]))

const CREDENTIAL_WHERE =
  "connector_id = $1 AND scope = $2 AND owner_org = $3 AND owner_workspace = $4 AND owner_user = $5"

// ---------------------------------------------------------------------------------------------------------------
// Keyset-paginated lists

interface Query {
  readonly sql: string
  readonly params: ReadonlyArray<Param>
}

/** The list's SQL with its `?` placeholders numbered. */
const select = ({ table, clauses, order, limit }: Common.List): Query => {
  let n = 0
  const number = (sql: string) => sql.replace(/\?/g, () => `$${++n}`)
  const where = clauses.map(([sql]) => number(sql)).join(" AND ")
  return {
    sql: `SELECT id, record FROM ${table} WHERE ${where} ORDER BY id ${order} LIMIT ${number("?")}`,
    params: [...clauses.flatMap(([, params]) => params), Common.limitOf(limit)]
  }
}

const lists = Common.lists((prefix) => ["starts_with(name, ?)", [prefix]])

/** The SQL of the keyset-paginated lists. */
export const queries = {
  listConnectors: (org: string, query: ConnectorStore.ListQuery): Query => select(lists.connectors(org, query)),
  listConnections: (org: string, query: ConnectionStore.ListQuery): Query => select(lists.connections(org, query)),
  listAudit: (org: string, query: AuditLog.ListQuery): Query => select(lists.audit(org, query))
}

// ---------------------------------------------------------------------------------------------------------------
// Opening

/**
 * Under the migration lock, in one transaction: refuses a newer schema, proves the key, migrates, and on a new
 * database writes the check value. A newer schema or a wrong key rolls back having written nothing.
 */
export const initialize = Effect.fn("PostgresStore.initialize")(function* (db: Database, sealer: SealerService) {
  return yield* db.transaction((tx) =>
    Effect.gen(function* () {
      yield* Migrations.lock(tx)
      const version = yield* Migrations.currentVersion(tx)
      if (version > Migrations.latestVersion) {
        return yield* PgDatabase.newerSchema(version, Migrations.latestVersion)
      }
      const check = version >= 1 ? yield* readCheck(tx) : undefined
      if (check !== undefined) yield* verifyCheckValue(sealer, { keyId: check.key_id, bytes: check.sealed })
      const migrated = yield* Migrations.migrate(tx)
      // Migration 6 seals the audit heads written before it (see `Common.sealUnsealedHeads`).
      if (migrated.from < 6) {
        yield* Common.sealUnsealedHeads(
          tx,
          {
            select: "SELECT org, seq, hash FROM audit_heads WHERE sealed IS NULL",
            update: "UPDATE audit_heads SET key_id = $1, sealed = $2 WHERE org = $3"
          },
          sealer
        )
      }
      if (check === undefined) {
        const value = yield* makeCheckValue(sealer)
        yield* tx.run("INSERT INTO meta (key, key_id, sealed) VALUES ($1, $2, $3)", [
          checkValueContext.rowId,
          value.keyId,
          toBuffer(value.bytes)
        ])
      }
      return migrated
    })
  )
})

/** Proves the key and migrates (`initialize`), then builds the store services on the open pool. */
export const makeWith = Effect.fn("PostgresStore.make")(function* (db: Database, sealer: SealerService) {
  yield* initialize(db, sealer)

  // --- connectors -----------------------------------------------------------------------------------------------

  const readConnector = (row: RecordRow | undefined) =>
    row === undefined ? Effect.succeedNone : Effect.asSome(connectorRecord.read(row.id, row.record))

  const connectors = ConnectorStore.ConnectorStore.of({
    insert: Effect.fn("PostgresStore.ConnectorStore.insert")(
      function* (org: string, connector: Connector.Connector) {
        const record = yield* connectorRecord.write(connector.id, connector)
        yield* db
          .transaction((tx) =>
            Effect.gen(function* () {
              yield* tx.run(
                "INSERT INTO connectors (id, org, name, kind, version, record) VALUES ($1, $2, $3, $4, $5, $6)",
                [connector.id, org, connector.name, connector.kind, connector.version, record]
              )
              yield* tx.run(
                "INSERT INTO connector_versions (org, connector_id, version, record) VALUES ($1, $2, $3, $4)",
                [org, connector.id, connector.version, record]
              )
            })
          )
          .pipe(onConstraint({ connectors_org_name: () => Common.connectorNameTaken(connector.name) }))
      },
      (effect, _org, connector) => doing(`inserting connector ${connector.id}`)(effect)
    ),

    update: Effect.fn("PostgresStore.ConnectorStore.update")(
      function* (org: string, next: Connector.Connector) {
        const record = yield* connectorRecord.write(next.id, next)
        yield* db
          .transaction((tx) =>
            Effect.gen(function* () {
              // Compare-and-set on the version: of two hosts updating from one version, one matches the row.
              const updated = yield* tx.run(
                `UPDATE connectors SET name = $1, kind = $2, version = $3, record = $4
                 WHERE org = $5 AND id = $6 AND version = $7`,
                [next.name, next.kind, next.version, record, org, next.id, next.version - 1]
              )
              if (updated.changes === 0) {
                const current = yield* tx.get<{ version: number }>(
                  "SELECT version FROM connectors WHERE org = $1 AND id = $2",
                  [org, next.id]
                )
                if (current === undefined) return yield* Common.connectorNotFound(next.id)
                return yield* Common.versionConflict(next.id, current.version, next.version - 1)
              }
              yield* tx.run(
                "INSERT INTO connector_versions (org, connector_id, version, record) VALUES ($1, $2, $3, $4)",
                [org, next.id, next.version, record]
              )
            })
          )
          .pipe(onConstraint({ connectors_org_name: () => Common.connectorNameTaken(next.name) }))
      },
      (effect, _org, next) => doing(`updating connector ${next.id}`)(effect)
    ),

    get: Effect.fn("PostgresStore.ConnectorStore.get")(function* (org: string, id: string) {
      const row = yield* db.get<RecordRow>("SELECT id, record FROM connectors WHERE org = $1 AND id = $2", [org, id])
      return yield* readConnector(row)
    }),

    getByName: Effect.fn("PostgresStore.ConnectorStore.getByName")(function* (org: string, name: string) {
      const row = yield* db.get<RecordRow>("SELECT id, record FROM connectors WHERE org = $1 AND name = $2", [
        org,
        name
      ])
      return yield* readConnector(row)
    }),

    getVersion: Effect.fn("PostgresStore.ConnectorStore.getVersion")(function* (
      org: string,
      id: string,
      version: number
    ) {
      const row = yield* db.get<RecordRow>(
        "SELECT connector_id AS id, record FROM connector_versions WHERE org = $1 AND connector_id = $2 AND version = $3",
        [org, id, version]
      )
      return yield* readConnector(row)
    }),

    list: Effect.fn("PostgresStore.ConnectorStore.list")(function* (org: string, query: ConnectorStore.ListQuery) {
      const { sql, params } = queries.listConnectors(org, query)
      const rows = yield* db.all<RecordRow>(sql, params)
      return yield* Effect.forEach(rows, (row) => connectorRecord.read(row.id, row.record))
    }),

    delete: Effect.fn("PostgresStore.ConnectorStore.delete")(
      function* (org: string, id: string) {
        const inUse = (ids: ReadonlyArray<string>) => Common.connectorInUse(id, ids)
        yield* db
          .transaction((tx) =>
            Effect.gen(function* () {
              const exists = yield* tx.get<{ id: string }>(
                "SELECT id FROM connectors WHERE org = $1 AND id = $2 FOR UPDATE",
                [org, id]
              )
              if (exists === undefined) return yield* Common.connectorNotFound(id)
              const users = yield* tx.all<{ id: string }>(
                "SELECT id FROM connections WHERE org = $1 AND connector_id = $2 ORDER BY id",
                [org, id]
              )
              if (users.length > 0) return yield* inUse(users.map((row) => row.id))
              // Its versions and credentials go with it (ON DELETE CASCADE); a connection inserted meanwhile by
              // another host makes the foreign key refuse the delete.
              yield* tx.run("DELETE FROM connectors WHERE org = $1 AND id = $2", [org, id])
            })
          )
          .pipe(onConstraint({ connections_connector: () => inUse([]) }))
      },
      (effect, _org, id) => doing(`deleting connector ${id}`)(effect)
    )
  })

  // --- credentials ----------------------------------------------------------------------------------------------

  const readCredential = (row: CredentialRow) => openCredential(sealer, row)

  const vault = CredentialVault.CredentialVault.of({
    put: Effect.fn("PostgresStore.CredentialVault.put")(
      function* (credential: Credential.Credential) {
        const key = [
          ...credentialKeyParams(credential.connector_id, credential.scope, credential.owner),
          credential.name
        ]
        return yield* db.transaction((tx) =>
          Effect.gen(function* () {
            // One put per key at a time across hosts: the row id (bound into the seal) is decided under it.
            yield* advisoryLock(tx, `switchboard:credential:${JSON.stringify(key)}`)
            const connector = yield* tx.get<{ id: string }>("SELECT id FROM connectors WHERE id = $1", [
              credential.connector_id
            ])
            if (connector === undefined) return yield* Common.noConnectorFor(credential.connector_id)
            const existing = yield* tx.get<{ id: string; created_at: string }>(
              `SELECT id, created_at FROM credentials WHERE ${CREDENTIAL_WHERE} AND name = $6`,
              key
            )
            const id = existing?.id ?? credential.id
            yield* ensureCurrentKey(tx, sealer)
            const sealed = yield* sealJson(sealer, reveal(credential.values), credentialContext(id))
            if (existing === undefined) {
              yield* tx.run(
                `INSERT INTO credentials (${CREDENTIAL_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
                credentialParams(credential, id, sealed)
              )
              return credential
            }
            yield* tx.run(
              "UPDATE credentials SET auth_type = $1, updated_at = $2, key_id = $3, sealed = $4 WHERE id = $5",
              [credential.auth_type, credential.updated_at, sealed.keyId, toBuffer(sealed.bytes), id]
            )
            return { ...credential, id, created_at: existing.created_at }
          })
        )
      },
      (effect, credential) =>
        doing(`storing credential ${credential.name} of connector ${credential.connector_id}`)(effect)
    ),

    get: Effect.fn("PostgresStore.CredentialVault.get")(
      function* (key: CredentialVault.Key) {
        const row = yield* db.get<CredentialRow>(`SELECT * FROM credentials WHERE ${CREDENTIAL_WHERE} AND name = $6`, [
          ...credentialKeyParams(key.connectorId, key.scope, key.owner),
          key.name
        ])
        return row === undefined ? Option.none() : Option.some(yield* readCredential(row))
      },
      (effect, key) => doing(`reading credential ${key.name} of connector ${key.connectorId}`)(effect)
    ),

    list: Effect.fn("PostgresStore.CredentialVault.list")(
      function* (connectorId: string, scope: Credential.Scope, owner: Credential.Owner) {
        const rows = yield* db.all<CredentialRow>(
          `SELECT * FROM credentials WHERE ${CREDENTIAL_WHERE} ORDER BY name`,
          credentialKeyParams(connectorId, scope, owner)
        )
        return yield* Effect.forEach(rows, readCredential)
      },
      (effect, connectorId) => doing(`listing credentials of connector ${connectorId}`)(effect)
    ),

    delete: Effect.fn("PostgresStore.CredentialVault.delete")(
      function* (key: CredentialVault.Key) {
        const result = yield* db.run(`DELETE FROM credentials WHERE ${CREDENTIAL_WHERE} AND name = $6`, [
          ...credentialKeyParams(key.connectorId, key.scope, key.owner),
          key.name
        ])
        return result.changes > 0
      },
      (effect, key) => doing(`deleting credential ${key.name} of connector ${key.connectorId}`)(effect)
    )
  })

  // --- connections ----------------------------------------------------------------------------------------------

  const readConnection = (row: RecordRow | undefined) =>
    row === undefined ? Effect.succeedNone : Effect.asSome(connectionRecord.read(row.id, row.record))

  const connections = ConnectionStore.ConnectionStore.of({
    insert: Effect.fn("PostgresStore.ConnectionStore.insert")(
      function* (connection: Connection.Connection, secrets: Connection.Secrets) {
        const record = yield* connectionRecord.write(connection.id, connection)
        const taken = () => Common.connectionNameTaken(connection.name)
        const noConnector = () => Common.connectorNotFound(connection.connector_id)
        yield* db
          .transaction((tx) =>
            Effect.gen(function* () {
              const existing = yield* tx.get<{ id: string }>(
                "SELECT id FROM connections WHERE org = $1 AND name = $2",
                [connection.org, connection.name]
              )
              if (existing !== undefined) return yield* taken()
              const connector = yield* tx.get<{ id: string }>("SELECT id FROM connectors WHERE org = $1 AND id = $2", [
                connection.org,
                connection.connector_id
              ])
              if (connector === undefined) return yield* noConnector()
              yield* ensureCurrentKey(tx, sealer)
              const sealed = yield* sealConnectionSecrets(sealer, connection.id, secrets)
              yield* tx.run(
                `INSERT INTO connections (${CONNECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
                connectionParams(connection, record, sealed)
              )
            })
          )
          // Another host inserting the same name, or deleting the connector, between the checks and the insert.
          .pipe(
            onConstraint<NameTaken | ConnectorNotFound>({
              connections_org_name: taken,
              connections_connector: noConnector
            })
          )
      },
      (effect, connection) => doing(`inserting connection ${connection.id}`)(effect)
    ),

    get: Effect.fn("PostgresStore.ConnectionStore.get")(function* (org: string, id: string) {
      const row = yield* db.get<RecordRow>("SELECT id, record FROM connections WHERE org = $1 AND id = $2", [org, id])
      return yield* readConnection(row)
    }),

    getByName: Effect.fn("PostgresStore.ConnectionStore.getByName")(function* (org: string, name: string) {
      const row = yield* db.get<RecordRow>("SELECT id, record FROM connections WHERE org = $1 AND name = $2", [
        org,
        name
      ])
      return yield* readConnection(row)
    }),

    secrets: Effect.fn("PostgresStore.ConnectionStore.secrets")(
      function* (org: string, id: string) {
        const row = yield* db.get<SealedColumns & { id: string }>(
          "SELECT id, key_id, sealed FROM connections WHERE org = $1 AND id = $2",
          [org, id]
        )
        if (row === undefined) return Connection.noSecrets
        const secrets = yield* openJson(sealer, ConnectionSecrets, row, connectionContext(row.id))
        return { security: conceal(secrets.security), headers: conceal(secrets.headers) } satisfies Connection.Secrets
      },
      (effect, _org, id) => doing(`reading the secrets of connection ${id}`)(effect)
    ),

    list: Effect.fn("PostgresStore.ConnectionStore.list")(function* (org: string, query: ConnectionStore.ListQuery) {
      const { sql, params } = queries.listConnections(org, query)
      const rows = yield* db.all<RecordRow>(sql, params)
      return yield* Effect.forEach(rows, (row) => connectionRecord.read(row.id, row.record))
    }),

    setStatus: Effect.fn("PostgresStore.ConnectionStore.setStatus")(
      function* (org: string, id: string, patch: ConnectionStore.StatusPatch) {
        return yield* db.transaction((tx) =>
          Effect.gen(function* () {
            const row = yield* tx.get<RecordRow>(
              "SELECT id, record FROM connections WHERE org = $1 AND id = $2 FOR UPDATE",
              [org, id]
            )
            if (row === undefined) return Option.none<Connection.Connection>()
            const current = yield* connectionRecord.read(row.id, row.record)
            const next: Connection.Connection = { ...current, ...patch }
            const record = yield* connectionRecord.write(id, next)
            yield* tx.run("UPDATE connections SET status = $1, record = $2 WHERE org = $3 AND id = $4", [
              next.status,
              record,
              org,
              id
            ])
            return Option.some(next)
          })
        )
      },
      (effect, _org, id) => doing(`setting the status of connection ${id}`)(effect)
    ),

    delete: Effect.fn("PostgresStore.ConnectionStore.delete")(
      function* (org: string, id: string) {
        const result = yield* db.run("DELETE FROM connections WHERE org = $1 AND id = $2", [org, id])
        return result.changes > 0
      },
      (effect, _org, id) => doing(`deleting connection ${id}`)(effect)
    )
  })

  // --- audit ----------------------------------------------------------------------------------------------------

  const audit = AuditLog.AuditLog.of({
    append: Effect.fn("PostgresStore.AuditLog.append")(
      function* (record: AuditLog.AuditRecord) {
        const checked = Common.auditEntry(record)
        if (Result.isFailure(checked)) return yield* checked.failure
        const entry = checked.success
        yield* db.transaction((tx) =>
          Effect.gen(function* () {
            // One append per org at a time, whichever host: the head read here is still the head at COMMIT.
            yield* advisoryLock(tx, `switchboard:audit:${record.org}`)
            const head = yield* tx.get<Common.HeadRow>(
              "SELECT seq, hash, key_id, sealed FROM audit_heads WHERE org = $1",
              [record.org]
            )
            const link = Common.nextLink(head, entry)
            yield* tx.run(
              `INSERT INTO audit (${Common.AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
              Common.auditParams(entry, link)
            )
            // The head is sealed too (see `AuditChain`), under the database's current key.
            const next = { seq: link.seq, hash: link.hash }
            const sealed = yield* Common.sealNextHead(
              tx.get<SealedColumns>(`${CHECK_SQL} FOR SHARE`, [checkValueContext.rowId]),
              sealer,
              record.org,
              head,
              next
            )
            yield* sealed === undefined
              ? tx.run("UPDATE audit_heads SET seq = $1, hash = $2 WHERE org = $3", [link.seq, link.hash, record.org])
              : tx.run(
                  `INSERT INTO audit_heads (org, seq, hash, key_id, sealed) VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (org) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                     key_id = excluded.key_id, sealed = excluded.sealed`,
                  Common.headParams(record.org, next, sealed)
                )
          })
        )
      },
      (effect, record) => doing(`appending audit record ${record.id}`)(effect)
    ),

    list: Effect.fn("PostgresStore.AuditLog.list")(function* (org: string, query: AuditLog.ListQuery) {
      const { sql, params } = queries.listAudit(org, query)
      const rows = yield* db.all<RecordRow>(sql, params)
      return yield* Effect.forEach(rows, (row) => auditRecord.read(row.id, row.record))
    })
  })

  const chain = AuditChain.AuditChain.of({
    orgs: () =>
      Effect.map(
        db.all<{ readonly org: string }>(
          "SELECT org FROM audit_heads UNION SELECT DISTINCT org FROM audit WHERE seq IS NOT NULL ORDER BY org"
        ),
        (rows) => rows.map((r) => r.org)
      ),
    links: (org) =>
      // One transaction (REPEATABLE READ): the links and the head are one snapshot while other hosts append.
      db.transaction((tx) =>
        Effect.gen(function* () {
          yield* tx.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
          const rows = yield* tx.all<LinkRow>(
            "SELECT id, record, seq, prev_hash, hash FROM audit WHERE org = $1 AND seq IS NOT NULL ORDER BY seq",
            [org]
          )
          const headRow = yield* tx.get<Common.HeadRow>(
            "SELECT seq, hash, key_id, sealed FROM audit_heads WHERE org = $1",
            [org]
          )
          const legacy = yield* tx.get<{ readonly n: number }>(
            "SELECT count(*)::int AS n FROM audit WHERE org = $1 AND seq IS NULL",
            [org]
          )
          const head = yield* Common.openHead(sealer, org, headRow)
          return { ...chainOf(rows, head, legacy?.n ?? 0), head }
        })
      ),
    digest: sha256
  })

  // --- OAuth state ----------------------------------------------------------------------------------------------

  const flowContext = (id: string): SealContext => ({ table: "oauth_flows", rowId: id })
  const recordContext = (key: string): SealContext => ({ table: "oauth_records", rowId: key })
  const openRedacted = (row: SealedColumns, context: SealContext) =>
    Effect.flatMap(openText(sealer, row, context), (text) =>
      Result.isSuccess(text)
        ? Effect.succeed(Redacted.make(text.success))
        : Effect.fail(
            new StoreError({ message: `the sealed value of ${context.table} row ${context.rowId} is not text` })
          )
    )

  const oauth = OAuthStateStore.of({
    putFlow: (flow) =>
      db.transaction((tx) =>
        Effect.gen(function* () {
          yield* ensureCurrentKey(tx, sealer)
          const sealed = yield* sealText(sealer, Redacted.value(flow.body), flowContext(flow.id))
          yield* tx.run(
            `INSERT INTO oauth_flows (id, expires_at, key_id, sealed) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, key_id = excluded.key_id,
               sealed = excluded.sealed`,
            [flow.id, flow.expires_at, sealed.keyId, toBuffer(sealed.bytes)]
          )
        })
      ),
    getFlow: (id) =>
      Effect.gen(function* () {
        const row = yield* db.get<SealedColumns & { expires_at: string }>(
          "SELECT expires_at, key_id, sealed FROM oauth_flows WHERE id = $1",
          [id]
        )
        if (row === undefined) return Option.none<StoredFlow>()
        const body = yield* openRedacted(row, flowContext(id))
        return Option.some<StoredFlow>({ id, expires_at: row.expires_at, body })
      }),
    // One DELETE: of several hosts deleting one flow, exactly one sees a row go.
    deleteFlow: (id) =>
      Effect.map(db.run("DELETE FROM oauth_flows WHERE id = $1", [id]), (result) => result.changes > 0),
    deleteExpiredFlows: (now) =>
      Effect.map(db.run("DELETE FROM oauth_flows WHERE expires_at <= $1", [now]), (result) => result.changes),
    getRecord: (key) =>
      Effect.gen(function* () {
        const row = yield* db.get<SealedColumns>("SELECT key_id, sealed FROM oauth_records WHERE id = $1", [key])
        if (row === undefined) return Option.none<Redacted.Redacted<string>>()
        return Option.some(yield* openRedacted(row, recordContext(key)))
      }),
    putRecord: (key, value) =>
      db.transaction((tx) =>
        Effect.gen(function* () {
          yield* ensureCurrentKey(tx, sealer)
          const sealed = yield* sealText(sealer, Redacted.value(value), recordContext(key))
          yield* tx.run(
            `INSERT INTO oauth_records (id, key_id, sealed) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed`,
            [key, sealed.keyId, toBuffer(sealed.bytes)]
          )
        })
      ),
    deleteRecord: (key) =>
      Effect.map(db.run("DELETE FROM oauth_records WHERE id = $1", [key]), (result) => result.changes > 0),
    acquireLease: (key, holder, now, until) =>
      Effect.map(db.run(leaseSql, [key, holder, until, now]), (result) => result.changes > 0),
    releaseLease: (key, holder) =>
      Effect.asVoid(db.run("DELETE FROM oauth_leases WHERE key = $1 AND holder = $2", [key, holder]))
  })

  return Context.make(ConnectorStore.ConnectorStore, connectors)
    .pipe(Context.add(CredentialVault.CredentialVault, vault))
    .pipe(Context.add(ConnectionStore.ConnectionStore, connections))
    .pipe(Context.add(AuditLog.AuditLog, audit))
    .pipe(Context.add(AuditChain.AuditChain, chain))
    .pipe(Context.add(OAuthStateStore, oauth))
})

/**
 * Takes a refresh lease in one statement: inserted when free; taken over when expired at `now` ($4) or already
 * the holder's. PostgreSQL runs the ON CONFLICT branch under the row's lock and re-checks the WHERE against the
 * latest row, so of several hosts racing for one lease exactly one gets a row back.
 */
export const leaseSql = `
  INSERT INTO oauth_leases (key, holder, until_ms) VALUES ($1, $2, $3)
  ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
  WHERE oauth_leases.holder = excluded.holder OR oauth_leases.until_ms <= $4
  RETURNING key`

/** The store services on the `PostgresDatabase` service, sealing with the `Sealer` service. */
export const make: Effect.Effect<
  Context.Context<Stores>,
  StoreError | SealError,
  PgDatabase.PostgresDatabase | Sealer
> = Effect.gen(function* () {
  const db = yield* PgDatabase.PostgresDatabase
  const sealer = yield* Sealer
  return yield* makeWith(db, sealer)
})

/** Every store port on an already provided `PostgresDatabase`. A new layer per call. */
export const layerFromDatabase = (): Layer.Layer<
  Stores,
  StoreError | SealError,
  PgDatabase.PostgresDatabase | Sealer
> => Layer.effectContext(make)

/**
 * Every store port on one PostgreSQL database: the pool is opened, the key proven and the schema migrated when
 * the layer is built; the pool is closed with the layer.
 */
export const layer = (options: Options): Layer.Layer<Stores, StoreError | SealError, Sealer> =>
  layerFromDatabase().pipe(Layer.provide(PgDatabase.layer(options)))

/** Like `layer`, and also exposes the open pool (for `rotateKey`). */
export const layerWithDatabase = (
  options: Options
): Layer.Layer<Stores | PgDatabase.PostgresDatabase, StoreError | SealError, Sealer> =>
  layerFromDatabase().pipe(Layer.provideMerge(PgDatabase.layer(options)))

// ---------------------------------------------------------------------------------------------------------------
// Key rotation

/** The tables whose rows hold a sealed value under the context (table, id). */
export const sealedTables = Common.sealedTables

/** The `meta` rows besides the check value holding a value sealed under the context ("meta", key). */
export const sealedMetaKeys = Common.sealedMetaKeys

// Every row re-sealed is locked: no other host changes it before the commit.
const rotationSql: Common.RotationSql = {
  page: (table) => `SELECT id, key_id, sealed FROM ${table} WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE`,
  update: (table) => `UPDATE ${table} SET key_id = $1, sealed = $2 WHERE id = $3`,
  meta: "SELECT key_id, sealed FROM meta WHERE key = $1 FOR UPDATE",
  updateMeta: "UPDATE meta SET key_id = $1, sealed = $2 WHERE key = $3",
  heads:
    "SELECT org, key_id, sealed FROM audit_heads WHERE org > $1 AND sealed IS NOT NULL ORDER BY org LIMIT $2 FOR UPDATE",
  updateHead: "UPDATE audit_heads SET key_id = $1, sealed = $2 WHERE org = $3"
}

/**
 * Re-seals every sealed value, and the check value, from `current` to `next`, in one transaction that first
 * locks the check row: sealed writes of other hosts wait for it and then fail with "key_mismatch" (they read the
 * check row `FOR SHARE`), so nothing is left sealed under `current`. If anything fails it rolls back and the
 * database still opens with `current` only. Every host must then restart with `next`.
 */
export const rotateKey = Effect.fn("PostgresStore.rotateKey")(function* (
  db: Database,
  current: SealerService,
  next: SealerService
) {
  return yield* db.transaction((tx) =>
    Effect.gen(function* () {
      const check = yield* tx.get<SealedColumns>(`${CHECK_SQL} FOR UPDATE`, [checkValueContext.rowId])
      if (check === undefined) {
        return yield* new StoreError({ message: "the database has no key check value; open it with the store first" })
      }
      yield* verifyCheckValue(current, { keyId: check.key_id, bytes: check.sealed })
      return yield* Common.resealAll(tx, rotationSql, current, next)
    })
  )
})

// ---------------------------------------------------------------------------------------------------------------
// Shared with the other stores on this database

/** What the bundle store (`BundleStore.ts`) shares with this module: the key check. */
export const shared = {
  ensureCurrentKey
} as const
