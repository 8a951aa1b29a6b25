/**
 * The PostgreSQL implementation of the `BundleStore` port (sealed bundles for a team server), on the same pool and
 * sealer as the other stores, with their records and sealing. An export reads one snapshot (a `REPEATABLE READ`,
 * read-only transaction); an import takes a transaction-scoped advisory lock (one import at a time across hosts),
 * reads what exists, plans (`Bundle.plan`) and writes everything in that one transaction, so any failure (a
 * conflict, a wrong key, an interruption) leaves the database as it was. The recipient secret lives in `meta`,
 * sealed under the master key like every other secret (and re-sealed by `rotateKey`, see `Store.sealedMetaKeys`);
 * of several hosts making it at once, one row wins and every host answers it.
 */
import * as Bundle from "@switchboard/core/Bundle"
import * as Connection from "@switchboard/core/Connection"
import * as Connector from "@switchboard/core/Connector"
import type * as Credential from "@switchboard/core/Credential"
import { ConnectorNotFound, SealError, type StoreError } from "@switchboard/core/Errors"
import { type SealContext, Sealer } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import {
  CONNECTION_COLUMNS,
  ConnectionSecrets,
  type CredentialRow,
  conceal,
  connectionContext,
  connectionParams,
  credentialContext,
  jsonRecord,
  openJson,
  readCredential as openCredential,
  type RecordRow,
  reveal,
  type SealedColumns,
  type SealerService,
  sealConnectionSecrets,
  sealJson,
  toBuffer
} from "../internal/rows.ts"
import { checkValueContext } from "../sodium/Sealer.ts"
import { type Database, type Executor, PostgresDatabase } from "./Database.ts"
import * as Store from "./Store.ts"

/** The `meta` key of the recipient secret. */
export const RECIPIENT_KEY = "bundle_recipient"

const recipientContext: SealContext = { table: "meta", rowId: RECIPIENT_KEY }

const RecipientSecret = Schema.Struct({ x25519: Schema.String })

const connectorRecord = jsonRecord(Connector.Connector, "connector")
const connectionRecord = jsonRecord(Connection.Connection, "connection")

/** Before sealing in a write transaction: the database's key is still this sealer's (the check row `FOR SHARE`). */
const ensureCurrentKey = (tx: Executor, sealer: SealerService) =>
  Effect.flatMap(
    tx.get<{ key_id: string }>("SELECT key_id FROM meta WHERE key = $1 FOR SHARE", [checkValueContext.rowId]),
    (row) =>
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

/** Proves the key and migrates (`Store.initialize`), then builds the bundle store on the open pool. */
export const makeWith = Effect.fn("PostgresBundleStore.make")(function* (db: Database, sealer: SealerService) {
  yield* Store.initialize(db, sealer)

  const gather = Effect.fn("PostgresBundleStore.gather")(function* (org: string, query: Bundle.ExportQuery) {
    return yield* db.transaction((tx) =>
      Effect.gen(function* () {
        // One snapshot for every read below.
        yield* tx.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        let rows = yield* tx.all<RecordRow & { name: string }>(
          "SELECT id, name, record FROM connectors WHERE org = $1 ORDER BY id",
          [org]
        )
        if (query.connectors !== undefined && query.connectors.length > 0) {
          const wanted = new Set(query.connectors)
          const missing = [...wanted].filter((name) => !rows.some((row) => row.name === name))
          if (missing.length > 0) {
            return yield* new ConnectorNotFound({
              message: `no connector named ${missing.join(", ")}`,
              details: { connectors: missing }
            })
          }
          rows = rows.filter((row) => wanted.has(row.name))
        }
        const connectors: Array<Bundle.ConnectorEntry> = []
        const credentials: Array<Bundle.CredentialEntry> = []
        const connections: Array<Bundle.ConnectionEntry> = []
        for (const row of rows) {
          const versionRows = yield* tx.all<{ record: string }>(
            "SELECT record FROM connector_versions WHERE org = $1 AND connector_id = $2 ORDER BY version",
            [org, row.id]
          )
          const versions: Array<Connector.Connector> = []
          for (const v of versionRows) versions.push(yield* connectorRecord.read(row.id, v.record))
          connectors.push({ versions })
          const credentialRows = yield* tx.all<CredentialRow>(
            "SELECT * FROM credentials WHERE connector_id = $1 AND owner_org = $2 ORDER BY id",
            [row.id, org]
          )
          for (const c of credentialRows) credentials.push(yield* openCredential(sealer, c))
          const connectionRows = yield* tx.all<RecordRow & SealedColumns>(
            "SELECT id, record, key_id, sealed FROM connections WHERE org = $1 AND connector_id = $2 ORDER BY id",
            [org, row.id]
          )
          for (const c of connectionRows) {
            const connection = yield* connectionRecord.read(c.id, c.record)
            const secrets = yield* openJson(sealer, ConnectionSecrets, c, connectionContext(c.id))
            connections.push({ connection, security: conceal(secrets.security), headers: conceal(secrets.headers) })
          }
        }
        return { connectors, credentials, connections } satisfies Bundle.Gathered
      })
    )
  })

  // Every org's ids and names: ids are unique across the database, so the plan must see them all.
  const existing = (tx: Executor) =>
    Effect.gen(function* () {
      const connectors = yield* tx.all<{ id: string; org: string; name: string; version: number }>(
        "SELECT id, org, name, version FROM connectors"
      )
      const credentialRows = yield* tx.all<{
        id: string
        connector_id: string
        scope: Credential.Scope
        owner_org: string
        owner_workspace: string
        owner_user: string
        name: string
      }>("SELECT id, connector_id, scope, owner_org, owner_workspace, owner_user, name FROM credentials")
      const connectionRows = yield* tx.all<RecordRow>("SELECT id, record FROM connections")
      const connections: Array<Bundle.Existing["connections"][number]> = []
      for (const row of connectionRows) {
        const c = yield* connectionRecord.read(row.id, row.record)
        connections.push({
          id: c.id,
          org: c.org,
          name: c.name,
          connector_id: c.connector_id,
          connector_version: c.connector_version
        })
      }
      return {
        connectors,
        credentials: credentialRows.map((row) => ({
          id: row.id,
          connector_id: row.connector_id,
          scope: row.scope,
          name: row.name,
          owner: {
            org: row.owner_org,
            ...(row.owner_workspace === "" ? {} : { workspace: row.owner_workspace }),
            ...(row.owner_user === "" ? {} : { user: row.owner_user })
          }
        })),
        connections
      } satisfies Bundle.Existing
    })

  const insertCredential = (tx: Executor, credential: Credential.Credential) =>
    Effect.gen(function* () {
      const sealed = yield* sealJson(sealer, reveal(credential.values), credentialContext(credential.id))
      yield* tx.run(
        `INSERT INTO credentials (connector_id, scope, owner_org, owner_workspace, owner_user, name, id,
           auth_type, created_at, updated_at, key_id, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [
          credential.connector_id,
          credential.scope,
          credential.owner.org,
          credential.owner.workspace ?? "",
          credential.owner.user ?? "",
          credential.name,
          credential.id,
          credential.auth_type,
          credential.created_at,
          credential.updated_at,
          sealed.keyId,
          toBuffer(sealed.bytes)
        ]
      )
    })

  const insertConnection = (tx: Executor, connection: Connection.Connection, secrets: Connection.Secrets) =>
    Effect.gen(function* () {
      const record = yield* connectionRecord.write(connection.id, connection)
      const sealed = yield* sealConnectionSecrets(sealer, connection.id, secrets)
      yield* tx.run(
        `INSERT INTO connections (${CONNECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        connectionParams(connection, record, sealed)
      )
    })

  const restore = Effect.fn("PostgresBundleStore.restore")(function* (
    contents: Bundle.Contents,
    target: Bundle.Target,
    mode: Bundle.OnConflict
  ) {
    return yield* db.transaction((tx) =>
      Effect.gen(function* () {
        // One import at a time across hosts: the plan holds until the commit.
        yield* tx.run("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", ["switchboard:bundle-import"])
        yield* ensureCurrentKey(tx, sealer)
        const plan = yield* Bundle.plan(contents, yield* existing(tx), target, mode)
        for (const { versions, replaces } of plan.connectors) {
          const current = versions[versions.length - 1] as Connector.Connector
          const record = yield* connectorRecord.write(current.id, current)
          if (replaces) {
            yield* tx.run(
              "UPDATE connectors SET name = $1, kind = $2, version = $3, record = $4 WHERE org = $5 AND id = $6",
              [current.name, current.kind, current.version, record, target.org, current.id]
            )
            yield* tx.run("DELETE FROM connector_versions WHERE org = $1 AND connector_id = $2", [
              target.org,
              current.id
            ])
          } else {
            yield* tx.run(
              "INSERT INTO connectors (id, org, name, kind, version, record) VALUES ($1, $2, $3, $4, $5, $6)",
              [current.id, target.org, current.name, current.kind, current.version, record]
            )
          }
          for (const version of versions) {
            yield* tx.run(
              "INSERT INTO connector_versions (org, connector_id, version, record) VALUES ($1, $2, $3, $4)",
              [target.org, version.id, version.version, yield* connectorRecord.write(version.id, version)]
            )
          }
        }
        for (const { credential, replaces } of plan.credentials) {
          if (replaces !== undefined) yield* tx.run("DELETE FROM credentials WHERE id = $1", [replaces])
          yield* insertCredential(tx, credential)
        }
        for (const { connection, secrets, replaces } of plan.connections) {
          if (replaces !== undefined) {
            yield* tx.run("DELETE FROM connections WHERE org = $1 AND id = $2", [target.org, replaces])
          }
          yield* insertConnection(tx, connection, secrets)
        }
        return plan.report
      })
    )
  })

  const recipientSecret = Effect.fn("PostgresBundleStore.recipientSecret")(function* (
    create: Effect.Effect<Redacted.Redacted<Uint8Array>, SealError>
  ) {
    const read = (tx: Executor) =>
      Effect.flatMap(tx.get<SealedColumns>("SELECT key_id, sealed FROM meta WHERE key = $1", [RECIPIENT_KEY]), (row) =>
        row === undefined
          ? Effect.succeed(undefined)
          : Effect.map(
              openJson(sealer, RecipientSecret, row, recipientContext),
              (stored) => new Uint8Array(Buffer.from(stored.x25519, "base64"))
            )
      )
    const bytes = yield* db.transaction((tx) =>
      Effect.gen(function* () {
        const found = yield* read(tx)
        if (found !== undefined) return found
        yield* ensureCurrentKey(tx, sealer)
        const secret = yield* create
        const sealed = yield* sealJson(
          sealer,
          { x25519: Buffer.from(Redacted.value(secret)).toString("base64") },
          recipientContext
        )
        // Another host making one at the same moment: its row stays, and this one answers it.
        yield* tx.run("INSERT INTO meta (key, key_id, sealed) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING", [
          RECIPIENT_KEY,
          sealed.keyId,
          toBuffer(sealed.bytes)
        ])
        return (yield* read(tx)) ?? new Uint8Array(Redacted.value(secret))
      })
    )
    return Redacted.make(bytes)
  })

  return Bundle.BundleStore.of({ gather, restore, recipientSecret })
})

/** The bundle store on the `PostgresDatabase` service, sealing with the `Sealer` service. */
export const make = Effect.gen(function* () {
  return yield* makeWith(yield* PostgresDatabase, yield* Sealer)
})

/** The bundle store on an already provided pool and sealer. */
export const layer: Layer.Layer<Bundle.BundleStore, StoreError | SealError, PostgresDatabase | Sealer> = Layer.effect(
  Bundle.BundleStore,
  make
)
