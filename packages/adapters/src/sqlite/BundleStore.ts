/**
 * The SQLite implementation of the `BundleStore` port, on the same database file and sealer as the other stores
 * (and their records, sealing and key check: `Store.shared`). An export reads one consistent snapshot; an import
 * reads what exists, plans (`Bundle.plan`) and writes everything in one durable transaction, so any failure (a
 * conflict, a wrong key, an interruption) leaves the database as it was. The recipient secret lives in `meta`,
 * sealed under the master key like every other secret (and re-sealed by `rotateKey`).
 */
import * as Bundle from "@switchboard/core/Bundle"
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import type * as Credential from "@switchboard/core/Credential"
import { ConnectorNotFound, type SealError, type StoreError } from "@switchboard/core/Errors"
import { type SealContext, Sealer } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import {
  CONNECTION_COLUMNS,
  ConnectionSecrets,
  type CredentialRow,
  connectionContext,
  connectionParams,
  conceal,
  credentialContext,
  openJson,
  readCredential as openCredential,
  type RecordRow,
  reveal,
  type SealedColumns,
  sealConnectionSecrets,
  sealJson,
  toBuffer as toBlob
} from "../internal/rows.ts"
import { SqliteDatabase } from "./Database.ts"
import type { Database } from "./Database.ts"
import * as Store from "./Store.ts"

type SealerService = (typeof Sealer)["Service"]

const { connectorRecord, connectionRecord, ensureCurrentKey } = Store.shared

/** The `meta` key of the recipient secret (listed in `Store.sealedMetaKeys`, so key rotation re-seals it). */
export const RECIPIENT_KEY = "bundle_recipient"

const recipientContext: SealContext = { table: "meta", rowId: RECIPIENT_KEY }

const RecipientSecret = Schema.Struct({ x25519: Schema.String })

/** Proves the key and migrates (`Store.initialize`), then builds the bundle store on the open database. */
export const makeWith = Effect.fn("SqliteBundleStore.make")(function* (db: Database, sealer: SealerService) {
  yield* Store.initialize(db, sealer)

  const readCredential = (row: CredentialRow) => openCredential(sealer, row)

  const gather = Effect.fn("SqliteBundleStore.gather")(function* (org: string, query: Bundle.ExportQuery) {
    // A write transaction only for its snapshot: nothing changes between the reads.
    return yield* db.transaction(
      Effect.gen(function* () {
        let rows = yield* db.all<RecordRow & { name: string }>(
          "SELECT id, name, record FROM connectors WHERE org = ? ORDER BY id",
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
          const versionRows = yield* db.all<{ record: string }>(
            "SELECT record FROM connector_versions WHERE connector_id = ? ORDER BY version",
            [row.id]
          )
          const versions: Array<Connector.Connector> = []
          for (const v of versionRows) versions.push(yield* connectorRecord.read(row.id, v.record))
          connectors.push({ versions })
          const credentialRows = yield* db.all<CredentialRow>(
            "SELECT * FROM credentials WHERE connector_id = ? AND owner_org = ? ORDER BY id",
            [row.id, org]
          )
          for (const c of credentialRows) credentials.push(yield* readCredential(c))
          const connectionRows = yield* db.all<RecordRow & SealedColumns>(
            "SELECT id, record, key_id, sealed FROM connections WHERE org = ? AND connector_id = ? ORDER BY id",
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

  const existing = Effect.gen(function* () {
    const connectors = yield* db.all<{ id: string; org: string; name: string; version: number }>(
      "SELECT id, org, name, version FROM connectors"
    )
    const credentialRows = yield* db.all<{
      id: string
      connector_id: string
      scope: Credential.Scope
      owner_org: string
      owner_workspace: string
      owner_user: string
      name: string
    }>("SELECT id, connector_id, scope, owner_org, owner_workspace, owner_user, name FROM credentials")
    const connectionRows = yield* db.all<RecordRow>("SELECT id, record FROM connections")
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

  const insertCredential = (credential: Credential.Credential) =>
    Effect.gen(function* () {
      const sealed = yield* sealJson(sealer, reveal(credential.values), credentialContext(credential.id))
      yield* db.run(
        `INSERT INTO credentials (connector_id, scope, owner_org, owner_workspace, owner_user, name, id,
           auth_type, created_at, updated_at, key_id, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
          toBlob(sealed.bytes)
        ]
      )
    })

  const insertConnection = (connection: Connection.Connection, secrets: Connection.Secrets) =>
    Effect.gen(function* () {
      const record = yield* connectionRecord.write(connection.id, connection)
      const sealed = yield* sealConnectionSecrets(sealer, connection.id, secrets)
      yield* db.run(
        `INSERT INTO connections (${CONNECTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        connectionParams(connection, record, sealed)
      )
    })

  const restore = Effect.fn("SqliteBundleStore.restore")(function* (
    contents: Bundle.Contents,
    target: Bundle.Target,
    mode: Bundle.OnConflict
  ) {
    return yield* db.transaction(
      Effect.gen(function* () {
        const plan = yield* Bundle.plan(contents, yield* existing, target, mode)
        yield* ensureCurrentKey(db, sealer)
        for (const { versions, replaces } of plan.connectors) {
          const current = versions[versions.length - 1] as Connector.Connector
          const record = yield* connectorRecord.write(current.id, current)
          if (replaces) {
            yield* db.run("UPDATE connectors SET name = ?, kind = ?, version = ?, record = ? WHERE id = ?", [
              current.name,
              current.kind,
              current.version,
              record,
              current.id
            ])
            yield* db.run("DELETE FROM connector_versions WHERE connector_id = ?", [current.id])
          } else {
            yield* db.run("INSERT INTO connectors (id, org, name, kind, version, record) VALUES (?, ?, ?, ?, ?, ?)", [
              current.id,
              target.org,
              current.name,
              current.kind,
              current.version,
              record
            ])
          }
          for (const version of versions) {
            yield* db.run("INSERT INTO connector_versions (connector_id, version, record) VALUES (?, ?, ?)", [
              version.id,
              version.version,
              yield* connectorRecord.write(version.id, version)
            ])
          }
        }
        for (const { credential, replaces } of plan.credentials) {
          if (replaces !== undefined) yield* db.run("DELETE FROM credentials WHERE id = ?", [replaces])
          yield* insertCredential(credential)
        }
        for (const { connection, secrets, replaces } of plan.connections) {
          if (replaces !== undefined) yield* db.run("DELETE FROM connections WHERE id = ?", [replaces])
          yield* insertConnection(connection, secrets)
        }
        return plan.report
      }),
      { durable: true }
    )
  })

  const recipientSecret = Effect.fn("SqliteBundleStore.recipientSecret")(function* (
    create: Effect.Effect<Redacted.Redacted<Uint8Array>, SealError>
  ) {
    return yield* db
      .transaction(
        Effect.gen(function* () {
          const row = yield* db.get<SealedColumns>("SELECT key_id, sealed FROM meta WHERE key = ?", [RECIPIENT_KEY])
          if (row !== undefined) {
            const stored = yield* openJson(sealer, RecipientSecret, row, recipientContext)
            return new Uint8Array(Buffer.from(stored.x25519, "base64"))
          }
          yield* ensureCurrentKey(db, sealer)
          const secret = yield* create
          const sealed = yield* sealJson(
            sealer,
            { x25519: Buffer.from(Redacted.value(secret)).toString("base64") },
            recipientContext
          )
          yield* db.run("INSERT INTO meta (key, key_id, sealed) VALUES (?, ?, ?)", [
            RECIPIENT_KEY,
            sealed.keyId,
            toBlob(sealed.bytes)
          ])
          return new Uint8Array(Redacted.value(secret))
        }),
        { durable: true }
      )
      .pipe(Effect.map((bytes) => Redacted.make(bytes)))
  })

  return Bundle.BundleStore.of({ gather, restore, recipientSecret })
})

/** The bundle store on the `SqliteDatabase` service, sealing with the `Sealer` service. */
export const make = Effect.gen(function* () {
  return yield* makeWith(yield* SqliteDatabase, yield* Sealer)
})

/** The bundle store on an already provided database and sealer. */
export const layer: Layer.Layer<Bundle.BundleStore, StoreError | SealError, SqliteDatabase | Sealer> = Layer.effect(
  Bundle.BundleStore,
  make
)
