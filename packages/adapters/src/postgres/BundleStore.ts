/**
 * The PostgreSQL implementation of the `BundleStore` port (sealed bundles for a team server), on the same pool and
 * sealer as the other stores, with their records and sealing. An export reads one snapshot (a `REPEATABLE READ`,
 * read-only transaction); an import takes a transaction-scoped advisory lock (one import at a time across hosts),
 * reads what exists, plans (`Bundle.plan`) and writes everything in that one transaction, so any failure (a
 * conflict, a wrong key, an interruption) leaves the database as it was. The recipient secret lives in `meta`,
 * sealed under the master key like every other secret (and re-sealed by `rotateKey`, see `Store.sealedMetaKeys`);
 * of several hosts making it at once, one row wins and every host answers it. What does not depend on PostgreSQL
 * is `internal/bundle.ts`, shared with the SQLite store.
 */
import * as Bundle from "@switchboard/core/Bundle"
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
  toBuffer
} from "../internal/rows.ts"
import { type Database, type Executor, PostgresDatabase } from "./Database.ts"
import * as Store from "./Store.ts"

/** The `meta` key of the recipient secret. */
export const RECIPIENT_KEY = Shared.RECIPIENT_KEY

/** Proves the key and migrates (`Store.initialize`), then builds the bundle store on the open pool. */
export const makeWith = Effect.fn("PostgresBundleStore.make")(function* (db: Database, sealer: SealerService) {
  yield* Store.initialize(db, sealer)

  const gather = Effect.fn("PostgresBundleStore.gather")(function* (org: string, query: Bundle.ExportQuery) {
    return yield* db.transaction((tx) =>
      Effect.andThen(
        // One snapshot for every read below.
        tx.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        Shared.gather(
          sealer,
          {
            connectors: tx.all("SELECT id, name, record FROM connectors WHERE org = $1 ORDER BY id", [org]),
            versions: (id) =>
              tx.all("SELECT record FROM connector_versions WHERE org = $1 AND connector_id = $2 ORDER BY version", [
                org,
                id
              ]),
            credentials: (id) =>
              tx.all<CredentialRow>(
                "SELECT * FROM credentials WHERE connector_id = $1 AND owner_org = $2 ORDER BY id",
                [id, org]
              ),
            connections: (id) =>
              tx.all(
                "SELECT id, record, key_id, sealed FROM connections WHERE org = $1 AND connector_id = $2 ORDER BY id",
                [org, id]
              ),
            pins: (id) =>
              tx.all("SELECT record FROM tool_pins WHERE org = $1 AND connection_id = $2 ORDER BY connector_version", [
                org,
                id
              ])
          },
          query
        )
      )
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
        yield* Store.shared.ensureCurrentKey(tx, sealer)
        const plan = yield* Bundle.plan(contents, yield* Shared.existing(tx), target, mode)
        return yield* Shared.apply(sealer, plan, {
          replaceConnector: (current, record) =>
            Effect.andThen(
              tx.run(
                "UPDATE connectors SET name = $1, kind = $2, version = $3, record = $4 WHERE org = $5 AND id = $6",
                [current.name, current.kind, current.version, record, target.org, current.id]
              ),
              tx.run("DELETE FROM connector_versions WHERE org = $1 AND connector_id = $2", [target.org, current.id])
            ),
          insertConnector: (current, record) =>
            tx.run("INSERT INTO connectors (id, org, name, kind, version, record) VALUES ($1, $2, $3, $4, $5, $6)", [
              current.id,
              target.org,
              current.name,
              current.kind,
              current.version,
              record
            ]),
          insertVersion: (version, record) =>
            tx.run("INSERT INTO connector_versions (org, connector_id, version, record) VALUES ($1, $2, $3, $4)", [
              target.org,
              version.id,
              version.version,
              record
            ]),
          deleteCredential: (id) => tx.run("DELETE FROM credentials WHERE id = $1", [id]),
          insertCredential: (params) =>
            tx.run(
              `INSERT INTO credentials (${CREDENTIAL_COLUMNS})
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
              params
            ),
          deleteConnection: (id) => tx.run("DELETE FROM connections WHERE org = $1 AND id = $2", [target.org, id]),
          insertConnection: (params) =>
            tx.run(
              `INSERT INTO connections (${CONNECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
              params
            ),
          deletePins: (id) => tx.run("DELETE FROM tool_pins WHERE org = $1 AND connection_id = $2", [target.org, id]),
          insertPin: (pin, record) =>
            tx.run(
              "INSERT INTO tool_pins (org, connection_id, connector_version, hash, record) VALUES ($1, $2, $3, $4, $5)",
              [pin.org, pin.connection_id, pin.connector_version, pin.hash, record]
            )
        })
      })
    )
  })

  const recipientSecret = Effect.fn("PostgresBundleStore.recipientSecret")(function* (
    create: Effect.Effect<Redacted.Redacted<Uint8Array>, SealError>
  ) {
    const read = (tx: Executor) =>
      Effect.flatMap(tx.get<SealedColumns>("SELECT key_id, sealed FROM meta WHERE key = $1", [RECIPIENT_KEY]), (row) =>
        row === undefined ? Effect.succeed(undefined) : Shared.openRecipient(sealer, row)
      )
    const bytes = yield* db.transaction((tx) =>
      Effect.gen(function* () {
        const found = yield* read(tx)
        if (found !== undefined) return found
        yield* Store.shared.ensureCurrentKey(tx, sealer)
        const secret = yield* create
        const sealed = yield* Shared.sealRecipient(sealer, secret)
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
