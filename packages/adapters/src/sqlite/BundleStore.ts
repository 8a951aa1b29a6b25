/**
 * The SQLite implementation of the `BundleStore` port, on the same database file and sealer as the other stores
 * (and their key check). An export reads one consistent snapshot; an import reads what exists, plans
 * (`Bundle.plan`) and writes everything in one durable transaction, so any failure (a conflict, a wrong key, an
 * interruption) leaves the database as it was. The recipient secret lives in `meta`, sealed under the master key
 * like every other secret (and re-sealed by `rotateKey`). What does not depend on SQLite is `internal/bundle.ts`,
 * shared with the PostgreSQL store.
 */
import * as Bundle from "@switchboard/core/Bundle"
import type * as Connector from "@switchboard/core/Connector"
import type { SealError, StoreError } from "@switchboard/core/Errors"
import { Sealer } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Shared from "../internal/bundle.ts"
import {
  CONNECTION_COLUMNS,
  CREDENTIAL_COLUMNS,
  type CredentialRow,
  type SealedColumns,
  type SealerService,
  toBuffer as toBlob
} from "../internal/rows.ts"
import { SqliteDatabase } from "./Database.ts"
import type { Database } from "./Database.ts"
import * as Store from "./Store.ts"

/** The `meta` key of the recipient secret (listed in `Store.sealedMetaKeys`, so key rotation re-seals it). */
export const RECIPIENT_KEY = Shared.RECIPIENT_KEY

/** Proves the key and migrates (`Store.initialize`), then builds the bundle store on the open database. */
export const makeWith = Effect.fn("SqliteBundleStore.make")(function* (db: Database, sealer: SealerService) {
  yield* Store.initialize(db, sealer)

  const gather = Effect.fn("SqliteBundleStore.gather")(function* (org: string, query: Bundle.ExportQuery) {
    // A write transaction only for its snapshot: nothing changes between the reads.
    return yield* db.transaction(
      Shared.gather(
        sealer,
        {
          connectors: db.all("SELECT id, name, record FROM connectors WHERE org = ? ORDER BY id", [org]),
          versions: (id) =>
            db.all("SELECT record FROM connector_versions WHERE connector_id = ? ORDER BY version", [id]),
          credentials: (id) =>
            db.all<CredentialRow>("SELECT * FROM credentials WHERE connector_id = ? AND owner_org = ? ORDER BY id", [
              id,
              org
            ]),
          connections: (id) =>
            db.all(
              "SELECT id, record, key_id, sealed FROM connections WHERE org = ? AND connector_id = ? ORDER BY id",
              [org, id]
            ),
          pins: (id) =>
            db.all("SELECT record FROM tool_pins WHERE org = ? AND connection_id = ? ORDER BY connector_version", [
              org,
              id
            ])
        },
        query
      )
    )
  })

  const restore = Effect.fn("SqliteBundleStore.restore")(function* (
    contents: Bundle.Contents,
    target: Bundle.Target,
    mode: Bundle.OnConflict
  ) {
    return yield* db.transaction(
      Effect.gen(function* () {
        const plan = yield* Bundle.plan(contents, yield* Shared.existing(db), target, mode)
        yield* Store.shared.ensureCurrentKey(db, sealer)
        return yield* Shared.apply(sealer, plan, {
          replaceConnector: (current: Connector.Connector, record) =>
            Effect.andThen(
              db.run("UPDATE connectors SET name = ?, kind = ?, version = ?, record = ? WHERE id = ?", [
                current.name,
                current.kind,
                current.version,
                record,
                current.id
              ]),
              db.run("DELETE FROM connector_versions WHERE connector_id = ?", [current.id])
            ),
          insertConnector: (current, record) =>
            db.run("INSERT INTO connectors (id, org, name, kind, version, record) VALUES (?, ?, ?, ?, ?, ?)", [
              current.id,
              target.org,
              current.name,
              current.kind,
              current.version,
              record
            ]),
          insertVersion: (version, record) =>
            db.run("INSERT INTO connector_versions (connector_id, version, record) VALUES (?, ?, ?)", [
              version.id,
              version.version,
              record
            ]),
          deleteCredential: (id) => db.run("DELETE FROM credentials WHERE id = ?", [id]),
          insertCredential: (params) =>
            db.run(
              `INSERT INTO credentials (${CREDENTIAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
              params
            ),
          deleteConnection: (id) => db.run("DELETE FROM connections WHERE id = ?", [id]),
          insertConnection: (params) =>
            db.run(`INSERT INTO connections (${CONNECTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, params),
          deletePins: (id) => db.run("DELETE FROM tool_pins WHERE org = ? AND connection_id = ?", [target.org, id]),
          insertPin: (pin, record) =>
            db.run(
              "INSERT INTO tool_pins (org, connection_id, connector_version, hash, record) VALUES (?, ?, ?, ?, ?)",
              [pin.org, pin.connection_id, pin.connector_version, pin.hash, record]
            )
        })
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
          if (row !== undefined) return yield* Shared.openRecipient(sealer, row)
          yield* Store.shared.ensureCurrentKey(db, sealer)
          const secret = yield* create
          const sealed = yield* Shared.sealRecipient(sealer, secret)
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
