/**
 * What the SQL bundle stores (`sqlite/BundleStore.ts`, `postgres/BundleStore.ts`) share: gathering an export
 * from the rows each reads, what exists for `Bundle.plan` to check against, writing a plan's records with their
 * values sealed (and the connections' tool pins, `tool_pins` rows), and the sealed recipient secret. Each database brings its own SQL (placeholders, org columns,
 * locks) and runs these inside its own transaction; none of this knows which one it runs on.
 */
import type * as Bundle from "@switchboard/core/Bundle"
import * as Connection from "@switchboard/core/Connection"
import * as Connector from "@switchboard/core/Connector"
import type * as Credential from "@switchboard/core/Credential"
import { ConnectorNotFound, type SealError, type StoreError } from "@switchboard/core/Errors"
import type { SealContext, Sealed } from "@switchboard/core/Sealer"
import type * as ToolPins from "@switchboard/core/ToolPins"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import {
  ConnectionSecrets,
  type CredentialRow,
  conceal,
  connectionContext,
  connectionParams,
  credentialContext,
  credentialParams,
  jsonRecord,
  openJson,
  ownerOf,
  type RecordRow,
  readCredential,
  reveal,
  type SealedColumns,
  type SealerService,
  sealConnectionSecrets,
  sealJson
} from "./rows.ts"
import type { Executor, Param } from "./store.ts"
import * as PinRows from "./toolPins.ts"

/** The `meta` key of the recipient secret (in `store.sealedMetaKeys`, so key rotation re-seals it). */
export const RECIPIENT_KEY = "bundle_recipient"

const recipientContext: SealContext = { table: "meta", rowId: RECIPIENT_KEY }

const RecipientSecret = Schema.Struct({ x25519: Schema.String })

const connectorRecord = jsonRecord(Connector.Connector, "connector")
const connectionRecord = jsonRecord(Connection.Connection, "connection")

// ---------------------------------------------------------------------------------------------------------------
// Export

/** The reads of an export, each in the one snapshot of its transaction. */
export interface GatherReads {
  /** Every connector of the org, by id. */
  readonly connectors: Effect.Effect<ReadonlyArray<RecordRow & { readonly name: string }>, StoreError>
  /** A connector's versions, oldest first. */
  readonly versions: (connectorId: string) => Effect.Effect<ReadonlyArray<{ readonly record: string }>, StoreError>
  /** The org's credentials of a connector, by id. */
  readonly credentials: (connectorId: string) => Effect.Effect<ReadonlyArray<CredentialRow>, StoreError>
  /** The org's connections of a connector, by id, with their sealed secrets. */
  readonly connections: (connectorId: string) => Effect.Effect<ReadonlyArray<RecordRow & SealedColumns>, StoreError>
  /** The org's tool pins of a connection (`tool_pins` rows), by connector version. */
  readonly pins: (connectionId: string) => Effect.Effect<ReadonlyArray<PinRows.Row>, StoreError>
}

/** A stored pin as a bundle carries it (without its org and ids: the connection's). */
const pinEntryOf = (pin: ToolPins.Manifest): Bundle.PinEntry => ({
  connector_version: pin.connector_version,
  hash: pin.hash,
  tools: pin.tools,
  pinned_at: pin.pinned_at,
  pinned_by: pin.pinned_by
})

/** What an export holds: the connectors asked for (every one when none is named), their credentials and connections. */
export const gather = (sealer: SealerService, reads: GatherReads, query: Bundle.ExportQuery) =>
  Effect.gen(function* () {
    let rows = yield* reads.connectors
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
      const versions: Array<Connector.Connector> = []
      for (const v of yield* reads.versions(row.id)) versions.push(yield* connectorRecord.read(row.id, v.record))
      connectors.push({ versions })
      for (const c of yield* reads.credentials(row.id)) credentials.push(yield* readCredential(sealer, c))
      for (const c of yield* reads.connections(row.id)) {
        const connection = yield* connectionRecord.read(c.id, c.record)
        const secrets = yield* openJson(sealer, ConnectionSecrets, c, connectionContext(c.id))
        const pins: Array<Bundle.PinEntry> = []
        for (const row of yield* reads.pins(c.id)) {
          const pin = yield* PinRows.read(row)
          if (Option.isSome(pin)) pins.push(pinEntryOf(pin.value))
        }
        connections.push({
          connection,
          security: conceal(secrets.security),
          headers: conceal(secrets.headers),
          pins
        })
      }
    }
    return { connectors, credentials, connections } satisfies Bundle.Gathered
  })

// ---------------------------------------------------------------------------------------------------------------
// Import

/** Every org's ids and names: ids are unique across the database, so the plan must see them all. */
export const existing = (exec: Executor) =>
  Effect.gen(function* () {
    const connectors = yield* exec.all<{ id: string; org: string; name: string; version: number }>(
      "SELECT id, org, name, version FROM connectors"
    )
    const credentialRows = yield* exec.all<{
      id: string
      connector_id: string
      scope: Credential.Scope
      owner_org: string
      owner_workspace: string
      owner_user: string
      name: string
    }>("SELECT id, connector_id, scope, owner_org, owner_workspace, owner_user, name FROM credentials")
    const connectionRows = yield* exec.all<RecordRow>("SELECT id, record FROM connections")
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
        owner: ownerOf(row)
      })),
      connections
    } satisfies Bundle.Existing
  })

/** The writes of an import, each in its one transaction (the records are checked and the values sealed). */
export interface RestoreWrites {
  /** Sets an existing connector to its latest version and deletes its versions (they are written again). */
  readonly replaceConnector: (current: Connector.Connector, record: string) => Effect.Effect<unknown, StoreError>
  readonly insertConnector: (current: Connector.Connector, record: string) => Effect.Effect<unknown, StoreError>
  readonly insertVersion: (version: Connector.Connector, record: string) => Effect.Effect<unknown, StoreError>
  readonly deleteCredential: (id: string) => Effect.Effect<unknown, StoreError>
  /** Inserts the values of `rows.CREDENTIAL_COLUMNS`. */
  readonly insertCredential: (params: ReadonlyArray<Param>) => Effect.Effect<unknown, StoreError>
  readonly deleteConnection: (id: string) => Effect.Effect<unknown, StoreError>
  /** Inserts the values of `rows.CONNECTION_COLUMNS`. */
  readonly insertConnection: (params: ReadonlyArray<Param>) => Effect.Effect<unknown, StoreError>
  /** Deletes every tool pin of a connection of the target org. */
  readonly deletePins: (connectionId: string) => Effect.Effect<unknown, StoreError>
  /** Inserts a tool pin (`tool_pins` row) with its `record`. */
  readonly insertPin: (pin: ToolPins.Manifest, record: string) => Effect.Effect<unknown, StoreError>
}

/** Writes what a plan imports (replaced rows first deleted or updated); answers its report. */
export const apply = (sealer: SealerService, plan: Bundle.Plan, writes: RestoreWrites) =>
  Effect.gen(function* () {
    for (const { versions, replaces } of plan.connectors) {
      const current = versions[versions.length - 1] as Connector.Connector
      const record = yield* connectorRecord.write(current.id, current)
      if (replaces) yield* writes.replaceConnector(current, record)
      else yield* writes.insertConnector(current, record)
      for (const version of versions) {
        yield* writes.insertVersion(version, yield* connectorRecord.write(version.id, version))
      }
    }
    for (const { credential, replaces } of plan.credentials) {
      if (replaces !== undefined) yield* writes.deleteCredential(replaces)
      const sealed = yield* sealJson(sealer, reveal(credential.values), credentialContext(credential.id))
      yield* writes.insertCredential(credentialParams(credential, credential.id, sealed))
    }
    for (const { connection, secrets, replaces, pins } of plan.connections) {
      if (replaces !== undefined) yield* writes.deleteConnection(replaces)
      const record = yield* connectionRecord.write(connection.id, connection)
      const sealed = yield* sealConnectionSecrets(sealer, connection.id, secrets)
      yield* writes.insertConnection(connectionParams(connection, record, sealed))
      // The bundle's pins are the connection's: any left here (a replaced connection's) go first.
      if (pins !== undefined) {
        yield* writes.deletePins(connection.id)
        for (const pin of pins) yield* writes.insertPin(pin, yield* PinRows.write(pin))
      }
    }
    return plan.report
  })

// ---------------------------------------------------------------------------------------------------------------
// The recipient secret

/** Opens the stored recipient secret. */
export const openRecipient = (
  sealer: SealerService,
  row: SealedColumns
): Effect.Effect<Uint8Array, StoreError | SealError> =>
  Effect.map(
    openJson(sealer, RecipientSecret, row, recipientContext),
    (stored) => new Uint8Array(Buffer.from(stored.x25519, "base64"))
  )

/** Seals a new recipient secret for its `meta` row. */
export const sealRecipient = (
  sealer: SealerService,
  secret: Redacted.Redacted<Uint8Array>
): Effect.Effect<Sealed, SealError> =>
  sealJson(sealer, { x25519: Buffer.from(Redacted.value(secret)).toString("base64") }, recipientContext)
