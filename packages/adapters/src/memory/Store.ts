/**
 * In-process implementations of every store port, over plain maps. For tests, the embedded library when
 * nothing should touch the disk, and as the reference behaviour the SQLite adapter must match (one
 * behavioural suite runs against both).
 */
import * as AuditChain from "@switchboard/core/AuditChain"
import * as AuditLog from "@switchboard/core/AuditLog"
import type * as Connection from "@switchboard/core/Connection"
import * as ConnectionStore from "@switchboard/core/ConnectionStore"
import type * as Connector from "@switchboard/core/Connector"
import * as ConnectorStore from "@switchboard/core/ConnectorStore"
import type * as Credential from "@switchboard/core/Credential"
import * as CredentialVault from "@switchboard/core/CredentialVault"
import { ConnectorInUse, ConnectorNotFound, NameTaken, VersionConflict } from "@switchboard/core/Errors"
import * as Bundle from "@switchboard/core/Bundle"
import * as ToolPins from "@switchboard/core/ToolPins"
import type * as Redacted from "effect/Redacted"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { sha256 } from "../internal/digest.ts"
import * as MemoryToolPins from "./ToolPins.ts"

interface ConnectionRow {
  readonly connection: Connection.Connection
  readonly secrets: Connection.Secrets
}

interface State {
  /** org → id → versions (index = version - 1) */
  readonly connectors: Map<string, Map<string, Array<Connector.Connector>>>
  readonly credentials: Map<string, Credential.Credential>
  /** org → id → row */
  readonly connections: Map<string, Map<string, ConnectionRow>>
  readonly audit: Map<string, Array<AuditLog.AuditRecord>>
  /** org → the hash chain of its audit records (see `AuditChain`) */
  readonly chain: Map<string, Array<AuditChain.Link>>
}

const byOrg = <V>(map: Map<string, Map<string, V>>, org: string): Map<string, V> => {
  let inner = map.get(org)
  if (inner === undefined) {
    inner = new Map()
    map.set(org, inner)
  }
  return inner
}

const latest = (versions: ReadonlyArray<Connector.Connector>): Connector.Connector =>
  versions[versions.length - 1] as Connector.Connector

const credentialKey = (k: CredentialVault.Key): string =>
  JSON.stringify([k.connectorId, k.scope, k.owner.org, k.owner.workspace ?? "", k.owner.user ?? "", k.name])

const sortedAfter = <A extends { readonly id: string }>(rows: Iterable<A>, after: string | undefined): Array<A> =>
  [...rows].filter((r) => after === undefined || r.id > after).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

/** Build the four store services over one shared state. */
export const make = Effect.sync(() => {
  const state: State = {
    connectors: new Map(),
    credentials: new Map(),
    connections: new Map(),
    audit: new Map(),
    chain: new Map()
  }

  const nameTaken = (org: string, name: string, exceptId?: string) =>
    [...byOrg(state.connectors, org).values()].some((v) => latest(v).name === name && latest(v).id !== exceptId)

  const connectors = ConnectorStore.ConnectorStore.of({
    insert: (org, connector) =>
      Effect.suspend((): Effect.Effect<void, NameTaken> => {
        if (nameTaken(org, connector.name)) {
          return Effect.fail(
            new NameTaken({ message: `a connector named ${connector.name} exists`, details: { name: connector.name } })
          )
        }
        byOrg(state.connectors, org).set(connector.id, [connector])
        return Effect.void
      }),
    update: (org, next) =>
      Effect.suspend((): Effect.Effect<void, NameTaken | ConnectorNotFound | VersionConflict> => {
        const versions = byOrg(state.connectors, org).get(next.id)
        if (versions === undefined) {
          return Effect.fail(new ConnectorNotFound({ message: `connector ${next.id} not found` }))
        }
        const at = latest(versions).version
        if (at !== next.version - 1) {
          return Effect.fail(
            new VersionConflict({
              message: `connector ${next.id} changed concurrently: it is at version ${at}, not ${next.version - 1}; read it again and retry`,
              details: { connector: next.id, version: at }
            })
          )
        }
        if (nameTaken(org, next.name, next.id)) {
          return Effect.fail(
            new NameTaken({ message: `a connector named ${next.name} exists`, details: { name: next.name } })
          )
        }
        versions.push(next)
        return Effect.void
      }),
    get: (org, id) =>
      Effect.sync(() => Option.map(Option.fromUndefinedOr(byOrg(state.connectors, org).get(id)), latest)),
    getByName: (org, name) =>
      Effect.sync(() =>
        Option.fromUndefinedOr([...byOrg(state.connectors, org).values()].map(latest).find((c) => c.name === name))
      ),
    getVersion: (org, id, version) =>
      Effect.sync(() => Option.fromUndefinedOr(byOrg(state.connectors, org).get(id)?.[version - 1])),
    list: (org, query) =>
      Effect.sync(() =>
        sortedAfter([...byOrg(state.connectors, org).values()].map(latest), query.after)
          .filter((c) => query.kind === undefined || c.kind === query.kind)
          .filter((c) => query.namePrefix === undefined || c.name.startsWith(query.namePrefix))
          .slice(0, query.limit)
      ),
    delete: (org, id) =>
      Effect.suspend((): Effect.Effect<void, ConnectorNotFound | ConnectorInUse> => {
        const all = byOrg(state.connectors, org)
        if (!all.has(id)) return Effect.fail(new ConnectorNotFound({ message: `connector ${id} not found` }))
        const users = [...byOrg(state.connections, org).values()].filter((r) => r.connection.connector_id === id)
        if (users.length > 0) {
          return Effect.fail(
            new ConnectorInUse({
              message: `connector ${id} is used by ${users.length} connection(s); delete them first`,
              details: { connections: users.map((r) => r.connection.id) }
            })
          )
        }
        all.delete(id)
        for (const [key, cred] of state.credentials) if (cred.connector_id === id) state.credentials.delete(key)
        return Effect.void
      })
  })

  const vault = CredentialVault.CredentialVault.of({
    put: (credential) =>
      Effect.sync(() => {
        const key = credentialKey({ connectorId: credential.connector_id, ...credential })
        const existing = state.credentials.get(key)
        const stored =
          existing === undefined ? credential : { ...credential, id: existing.id, created_at: existing.created_at }
        state.credentials.set(key, stored)
        return stored
      }),
    get: (key) => Effect.sync(() => Option.fromUndefinedOr(state.credentials.get(credentialKey(key)))),
    list: (connectorId, scope, owner) =>
      Effect.sync(() =>
        [...state.credentials.values()]
          .filter(
            (c) =>
              c.connector_id === connectorId &&
              c.scope === scope &&
              c.owner.org === owner.org &&
              c.owner.workspace === owner.workspace &&
              c.owner.user === owner.user
          )
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      ),
    delete: (key) => Effect.sync(() => state.credentials.delete(credentialKey(key)))
  })

  const connections = ConnectionStore.ConnectionStore.of({
    insert: (connection, secrets) =>
      Effect.suspend((): Effect.Effect<void, NameTaken | ConnectorNotFound> => {
        const rows = byOrg(state.connections, connection.org)
        if ([...rows.values()].some((r) => r.connection.name === connection.name)) {
          return Effect.fail(
            new NameTaken({
              message: `a connection named ${connection.name} exists`,
              details: { name: connection.name }
            })
          )
        }
        if (!byOrg(state.connectors, connection.org).has(connection.connector_id)) {
          return Effect.fail(new ConnectorNotFound({ message: `connector ${connection.connector_id} not found` }))
        }
        rows.set(connection.id, { connection, secrets })
        return Effect.void
      }),
    get: (org, id) =>
      Effect.sync(() => Option.map(Option.fromUndefinedOr(byOrg(state.connections, org).get(id)), (r) => r.connection)),
    getByName: (org, name) =>
      Effect.sync(() =>
        Option.fromUndefinedOr(
          [...byOrg(state.connections, org).values()].map((r) => r.connection).find((c) => c.name === name)
        )
      ),
    secrets: (org, id) =>
      Effect.sync(() => byOrg(state.connections, org).get(id)?.secrets ?? { security: {}, headers: {} }),
    list: (org, query) =>
      Effect.sync(() =>
        sortedAfter(
          [...byOrg(state.connections, org).values()].map((r) => r.connection),
          query.after
        )
          .filter((c) => c.access_scope === "organizational" || c.owner === query.visibleTo)
          .filter((c) => query.connectorId === undefined || c.connector_id === query.connectorId)
          .filter((c) => query.status === undefined || c.status === query.status)
          .filter((c) => query.namePrefix === undefined || c.name.startsWith(query.namePrefix))
          .slice(0, query.limit)
      ),
    setStatus: (org, id, patch) =>
      Effect.sync(() => {
        const rows = byOrg(state.connections, org)
        const row = rows.get(id)
        if (row === undefined) return Option.none()
        const connection = { ...row.connection, ...patch }
        rows.set(id, { ...row, connection })
        return Option.some(connection)
      }),
    delete: (org, id) => Effect.sync(() => byOrg(state.connections, org).delete(id))
  })

  const audit = AuditLog.AuditLog.of({
    append: (record) =>
      Effect.sync(() => {
        let rows = state.audit.get(record.org)
        if (rows === undefined) {
          rows = []
          state.audit.set(record.org, rows)
        }
        rows.push(record)
        let links = state.chain.get(record.org)
        if (links === undefined) {
          links = []
          state.chain.set(record.org, links)
        }
        const last = links[links.length - 1]
        const seq = (last?.seq ?? 0) + 1
        const prev_hash = last?.hash ?? AuditChain.genesis
        links.push({
          seq,
          prev_hash,
          hash: sha256(AuditChain.canonical(seq, prev_hash, record)),
          id: record.id,
          record
        })
      }),
    list: (org, query) =>
      Effect.sync(() =>
        [...(state.audit.get(org) ?? [])]
          .filter((r) => query.after === undefined || r.id < query.after)
          .filter((r) => query.connectionId === undefined || r.connection_id === query.connectionId)
          .filter((r) => query.action === undefined || r.action === query.action)
          .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
          .slice(0, query.limit)
      )
  })

  const chain = AuditChain.AuditChain.of({
    orgs: () => Effect.sync(() => [...state.chain.keys()].sort()),
    links: (org) =>
      Effect.sync(() => {
        const links = [...(state.chain.get(org) ?? [])]
        const last = links[links.length - 1]
        return { links, head: last === undefined ? undefined : { seq: last.seq, hash: last.hash }, unchained: 0 }
      }),
    digest: sha256
  })

  // Bundles: a plan is made and checked whole before anything changes, so a failed import changes nothing.
  // They carry the connections' tool pins, kept in the map the `ToolPins` store below reads.
  const pins: MemoryToolPins.PinMap = new Map()
  let recipient: Redacted.Redacted<Uint8Array> | undefined
  const bundles = Bundle.BundleStore.of({
    gather: (org, query) =>
      Effect.suspend(() => {
        let all = [...byOrg(state.connectors, org).values()].sort((a, b) => (latest(a).id < latest(b).id ? -1 : 1))
        const wanted = query.connectors ?? []
        if (wanted.length > 0) {
          const missing = wanted.filter((name) => !all.some((v) => latest(v).name === name))
          if (missing.length > 0) {
            return Effect.fail(
              new ConnectorNotFound({
                message: `no connector named ${missing.join(", ")}`,
                details: { connectors: missing }
              })
            )
          }
          all = all.filter((v) => wanted.includes(latest(v).name))
        }
        const ids = new Set(all.map((v) => latest(v).id))
        return Effect.succeed({
          connectors: all.map((versions) => ({ versions: [...versions] })),
          credentials: [...state.credentials.values()]
            .filter((c) => ids.has(c.connector_id) && c.owner.org === org)
            .sort((a, b) => (a.id < b.id ? -1 : 1)),
          connections: sortedAfter(
            [...byOrg(state.connections, org).values()].map((r) => ({ id: r.connection.id, row: r })),
            undefined
          )
            .filter(({ row }) => ids.has(row.connection.connector_id))
            .map(({ row }) => ({
              connection: row.connection,
              ...row.secrets,
              pins: [...(pins.get(MemoryToolPins.keyOf(org, row.connection.id))?.values() ?? [])]
                .sort((a, b) => a.connector_version - b.connector_version)
                .map(({ org: _org, connection_id: _id, connector_id: _connector, ...pin }) => pin)
            }))
        } satisfies Bundle.Gathered)
      }),
    restore: (contents, target, mode) =>
      Effect.gen(function* () {
        const existing: Bundle.Existing = {
          connectors: [...state.connectors.entries()].flatMap(([org, byId]) =>
            [...byId.values()].map((v) => ({ id: latest(v).id, org, name: latest(v).name, version: latest(v).version }))
          ),
          credentials: [...state.credentials.values()].map((c) => ({
            id: c.id,
            connector_id: c.connector_id,
            scope: c.scope,
            owner: c.owner,
            name: c.name
          })),
          connections: [...state.connections.values()].flatMap((rows) =>
            [...rows.values()].map(({ connection: c }) => ({
              id: c.id,
              org: c.org,
              name: c.name,
              connector_id: c.connector_id,
              connector_version: c.connector_version
            }))
          )
        }
        const plan = yield* Bundle.plan(contents, existing, target, mode)
        const here = byOrg(state.connectors, target.org)
        for (const { versions } of plan.connectors) here.set(latest(versions).id, [...versions])
        for (const { credential, replaces } of plan.credentials) {
          if (replaces !== undefined) {
            for (const [key, c] of state.credentials) if (c.id === replaces) state.credentials.delete(key)
          }
          state.credentials.set(credentialKey({ connectorId: credential.connector_id, ...credential }), credential)
        }
        const rows = byOrg(state.connections, target.org)
        for (const { connection, secrets, replaces, pins: bundled } of plan.connections) {
          if (replaces !== undefined) rows.delete(replaces)
          rows.set(connection.id, { connection, secrets })
          if (bundled !== undefined) {
            pins.set(
              MemoryToolPins.keyOf(target.org, connection.id),
              new Map(bundled.map((pin) => [pin.connector_version, pin] as const))
            )
          }
        }
        return plan.report
      }),
    recipientSecret: (create) =>
      recipient !== undefined
        ? Effect.succeed(recipient)
        : Effect.tap(create, (made) => Effect.sync(() => void (recipient = made)))
  })

  return Context.make(ConnectorStore.ConnectorStore, connectors)
    .pipe(Context.add(CredentialVault.CredentialVault, vault))
    .pipe(Context.add(ConnectionStore.ConnectionStore, connections))
    .pipe(Context.add(AuditLog.AuditLog, audit))
    .pipe(Context.add(AuditChain.AuditChain, chain))
    .pipe(Context.add(Bundle.BundleStore, bundles))
    .pipe(Context.add(ToolPins.ToolPins, MemoryToolPins.make(pins)))
})

/** Every store port, in memory. Each build of the layer starts empty. */
export const layer: Layer.Layer<
  | ConnectorStore.ConnectorStore
  | CredentialVault.CredentialVault
  | ConnectionStore.ConnectionStore
  | AuditLog.AuditLog
  | AuditChain.AuditChain
  | Bundle.BundleStore
  | ToolPins.ToolPins
> = Layer.effectContext(make)
