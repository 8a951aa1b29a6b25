/**
 * Sealed bundles: connectors (every version, so version pins stay valid), credentials (every scope) and
 * connections (with their write-only security and headers, and their tool-manifest pins at every connector
 * version) of one organization, carried from one machine to another as one document sealed to the receiving
 * machine's recipient key.
 *
 * This module holds the pure parts: the schema of the bundle's contents (secrets are `Redacted` from decode),
 * the rules that keep a bundle consistent, the plan of an import (`plan`: what is inserted, replaced, renamed or
 * skipped, with ids remapped consistently) and the `BundleStore` port, which applies a plan in one transaction.
 * The envelope (recipient key, sealing, fingerprints) is the libsodium adapter's.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as AuthPattern from "./AuthPattern.ts"
import * as Connection from "./Connection.ts"
import * as Connector from "./Connector.ts"
import * as Credential from "./Credential.ts"
import type { ConnectorNotFound, SealError, StoreError } from "./Errors.ts"
import * as Ids from "./Ids.ts"
import * as ToolPins from "./ToolPins.ts"

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** Opening or importing a bundle failed; nothing was written. */
export class BundleError extends Schema.TaggedError<BundleError>()("BundleError", {
  message: Schema.String,
  details: Schema.optionalKey(Schema.Unknown),
  reason: Schema.Literals([
    "bundle_wrong_recipient",
    "bundle_tampered",
    "bundle_invalid",
    "bundle_unsupported_version",
    "bundle_conflict",
    "bundle_recipient_invalid"
  ])
}) {
  get code() {
    return this.reason
  }
  get status() {
    switch (this.reason) {
      case "bundle_conflict":
        return 409
      case "bundle_recipient_invalid":
        return 422
      case "bundle_wrong_recipient":
      case "bundle_tampered":
      case "bundle_invalid":
      case "bundle_unsupported_version":
        return 400
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Contents

/** The version of the contents' layout (the envelope has its own). */
export const CONTENTS_VERSION = 1

// Encodes back to the plaintext: the contents are only ever encoded to be sealed.
const Secret = Schema.RedactedFromValue(Schema.String)

/** Named secret values (credential values, connection security or headers). */
export const Secrets = Schema.Record(Schema.String, Secret)
export type Secrets = Readonly<Record<string, Redacted.Redacted<string>>>

/** A connector with every version, oldest first (`versions[i].version === i + 1`); the last one is current. */
export const ConnectorEntry = Schema.Struct({ versions: Schema.Array(Connector.Connector) })
export type ConnectorEntry = typeof ConnectorEntry.Type

/** A credential with its values. */
export const CredentialEntry = Schema.Struct({
  id: Schema.String,
  connector_id: Schema.String,
  scope: Credential.Scope,
  owner: Credential.Owner,
  name: Schema.String,
  auth_type: Schema.NullOr(AuthPattern.AuthType),
  values: Secrets,
  created_at: Schema.String,
  updated_at: Schema.String
})
export type CredentialEntry = typeof CredentialEntry.Type

/**
 * A tool-manifest pin of a connection at one connector version (`ToolPins.Manifest` without its org and ids, which
 * are the connection's wherever it is imported).
 */
export const PinEntry = Schema.Struct({
  connector_version: Schema.Int,
  hash: Schema.String,
  tools: Schema.Array(ToolPins.Definition),
  pinned_at: Schema.String,
  pinned_by: Schema.String
})
export type PinEntry = typeof PinEntry.Type

/**
 * A connection with its write-only parts and its tool pins (every connector version it has one for). `pins` is
 * absent in bundles made before pins were carried: importing one leaves pinning to the first listing.
 */
export const ConnectionEntry = Schema.Struct({
  connection: Connection.Connection,
  security: Secrets,
  headers: Secrets,
  pins: Schema.optionalKey(Schema.Array(PinEntry))
})
export type ConnectionEntry = typeof ConnectionEntry.Type

/** Who exported: owners equal to these are given to the importing principal (see `plan`). */
export const Source = Schema.Struct({ org: Schema.String, workspace: Schema.String, user: Schema.String })
export type Source = typeof Source.Type

type Issue = { readonly path: ReadonlyArray<PropertyKey>; readonly issue: string }

interface ContentsShape {
  readonly connectors: ReadonlyArray<ConnectorEntry>
  readonly credentials: ReadonlyArray<CredentialEntry>
  readonly connections: ReadonlyArray<ConnectionEntry>
}

/** The pins of a connection in a bundle (none when the bundle carries none). */
export const pinsOf = (
  entry: { readonly pins?: ReadonlyArray<PinEntry> | undefined },
  connection: { readonly org: string; readonly id: string; readonly connector_id: string }
): ReadonlyArray<ToolPins.Manifest> =>
  (entry.pins ?? []).map((pin) => ({
    org: connection.org,
    connection_id: connection.id,
    connector_id: connection.connector_id,
    ...pin
  }))

/**
 * The rules between parts of a bundle: versions complete and of one connector, names and ids unique, every
 * credential and connection of a connector in the bundle, every pin (of a connection to a connector version, and
 * of a tool manifest, at most one a version) to a version the bundle carries.
 */
export const contentsIssues = (contents: ContentsShape): Array<Issue> => {
  const issues: Array<Issue> = []
  const versions = new Map<string, number>()
  const names = new Set<string>()
  contents.connectors.forEach((entry, i) => {
    const first = entry.versions[0]
    if (first === undefined) {
      issues.push({ path: ["connectors", i, "versions"], issue: "a connector needs at least one version" })
      return
    }
    entry.versions.forEach((v, j) => {
      if (v.id !== first.id || v.version !== j + 1) {
        issues.push({
          path: ["connectors", i, "versions", j],
          issue: `expected version ${j + 1} of connector ${first.id}`
        })
      }
    })
    const current = entry.versions[entry.versions.length - 1] as Connector.Connector
    if (versions.has(first.id)) issues.push({ path: ["connectors", i], issue: `connector ${first.id} is repeated` })
    if (names.has(current.name))
      issues.push({ path: ["connectors", i], issue: `connector ${current.name} is repeated` })
    versions.set(first.id, entry.versions.length)
    names.add(current.name)
  })
  const credentialKeys = new Set<string>()
  contents.credentials.forEach((c, i) => {
    if (!versions.has(c.connector_id)) {
      issues.push({ path: ["credentials", i], issue: `connector ${c.connector_id} is not in the bundle` })
    }
    const key = credentialKeyOf(c.connector_id, c.scope, c.owner, c.name)
    if (credentialKeys.has(key)) issues.push({ path: ["credentials", i], issue: "credential is repeated" })
    credentialKeys.add(key)
  })
  const connectionNames = new Set<string>()
  contents.connections.forEach(({ connection: c, pins }, i) => {
    const count = versions.get(c.connector_id)
    if (count === undefined) {
      issues.push({ path: ["connections", i], issue: `connector ${c.connector_id} is not in the bundle` })
    } else if (c.connector_version !== null && (c.connector_version < 1 || c.connector_version > count)) {
      issues.push({ path: ["connections", i], issue: `pinned version ${c.connector_version} is not in the bundle` })
    }
    const pinned = new Set<number>()
    pins?.forEach((pin, j) => {
      const v = pin.connector_version
      if (count !== undefined && (v < 1 || v > count)) {
        issues.push({ path: ["connections", i, "pins", j], issue: `tools pinned at version ${v}, not in the bundle` })
      }
      if (pinned.has(v)) issues.push({ path: ["connections", i, "pins", j], issue: `version ${v} is pinned twice` })
      pinned.add(v)
    })
    if (connectionNames.has(c.name))
      issues.push({ path: ["connections", i], issue: `connection ${c.name} is repeated` })
    connectionNames.add(c.name)
  })
  return issues
}

/** What a bundle carries, once opened. */
export const Contents = Schema.Struct({
  contents_version: Schema.Literal(CONTENTS_VERSION),
  exported_at: Schema.String,
  source: Source,
  connectors: Schema.Array(ConnectorEntry),
  credentials: Schema.Array(CredentialEntry),
  connections: Schema.Array(ConnectionEntry)
}).check(Schema.makeFilter(contentsIssues))
export type Contents = typeof Contents.Type

/** The JSON form of the contents (what is sealed); decoding it gives `Redacted` secrets. */
export const ContentsJson = Schema.toCodecJson(Contents)

/** What `export` gathered, before it is given a time and a source. */
export interface Gathered {
  readonly connectors: ReadonlyArray<ConnectorEntry>
  readonly credentials: ReadonlyArray<CredentialEntry>
  readonly connections: ReadonlyArray<ConnectionEntry>
}

/** How many of each a bundle carries (what the CLI shows after an export). */
export const countsOf = (contents: Gathered) => ({
  connectors: contents.connectors.length,
  connector_versions: contents.connectors.reduce((n, c) => n + c.versions.length, 0),
  credentials: contents.credentials.length,
  connections: contents.connections.length,
  tool_pins: contents.connections.reduce((n, c) => n + (c.pins?.length ?? 0), 0)
})

// ---------------------------------------------------------------------------------------------------------------
// Planning an import

/** What to do with an item whose name (or id) exists here already. `fail` refuses the whole import. */
export const OnConflict = Schema.Literals(["fail", "skip", "replace", "rename"])
export type OnConflict = typeof OnConflict.Type

/** The importing principal: owners that were the exporter's become theirs. */
export interface Target {
  readonly org: string
  readonly workspace: string
  readonly user: string
}

/** What exists here, as far as conflicts go (connectors and connections of every org: ids are global). */
export interface Existing {
  readonly connectors: ReadonlyArray<{
    readonly id: string
    readonly org: string
    readonly name: string
    readonly version: number
  }>
  readonly credentials: ReadonlyArray<{
    readonly id: string
    readonly connector_id: string
    readonly scope: Credential.Scope
    readonly owner: Credential.Owner
    readonly name: string
  }>
  readonly connections: ReadonlyArray<{
    readonly id: string
    readonly org: string
    readonly name: string
    readonly connector_id: string
    readonly connector_version: number | null
  }>
}

export type ItemKind = "connector" | "credential" | "connection"

/** One line of an import's report. `as` is the name (or id) it was stored under when that changed. */
export interface Outcome {
  readonly kind: ItemKind
  readonly name: string
  readonly outcome: "imported" | "replaced" | "renamed" | "skipped"
  readonly as?: string
}

/** What an import writes, in order: connectors, then credentials, then connections. */
export interface Plan {
  /** `replaces`: the connector row (same id) exists and keeps its id; its versions are replaced. */
  readonly connectors: ReadonlyArray<{
    readonly versions: ReadonlyArray<Connector.Connector>
    readonly replaces: boolean
  }>
  /** `replaces`: the id of the credential row deleted first. */
  readonly credentials: ReadonlyArray<{ readonly credential: Credential.Credential; readonly replaces?: string }>
  /**
   * `replaces`: the id of the connection row deleted first. `pins`: its tool pins under its org and ids here, which
   * replace every pin it has here; absent when the bundle carries none (an older bundle): pins here are kept.
   */
  readonly connections: ReadonlyArray<{
    readonly connection: Connection.Connection
    readonly secrets: Connection.Secrets
    readonly replaces?: string
    readonly pins?: ReadonlyArray<ToolPins.Manifest>
  }>
  readonly report: ReadonlyArray<Outcome>
}

const credentialKeyOf = (connectorId: string, scope: string, owner: Credential.Owner, name: string) =>
  JSON.stringify([connectorId, scope, owner.org, owner.workspace ?? "", owner.user ?? "", name])

/** `name-2`, `name-3`, … (kept within the 63 characters of a name): the first one `taken` does not hold. */
export const freeName = (name: string, taken: (candidate: string) => boolean): string => {
  for (let n = 2; ; n++) {
    const suffix = `-${n}`
    const candidate = `${name.slice(0, 63 - suffix.length)}${suffix}`
    if (!taken(candidate)) return candidate
  }
}

const conflict = (items: ReadonlyArray<{ kind: ItemKind; name: string; why: string }>, mode: OnConflict) =>
  new BundleError({
    reason: "bundle_conflict",
    message:
      mode === "fail"
        ? `${items.length} item(s) of the bundle exist here already; nothing was imported: choose --on-conflict ` +
          "skip, replace or rename"
        : `the bundle cannot be imported with --on-conflict ${mode}; nothing was imported`,
    details: {
      conflicts: items,
      issues: items.map((item) => ({ path: `${item.kind} ${item.name}`, message: item.why }))
    }
  })

/**
 * Plans the import of `contents` into `target`'s organization over what `existing` holds. Owners and orgs that were
 * the exporter's become the target's. Ids are kept unless taken here, else fresh ones are drawn (and every
 * reference follows). With `fail` any conflict refuses the import; `skip` leaves the existing item (a skipped
 * connector's credentials and connections are skipped with it); `replace` overwrites it (a connector keeps its
 * local id, so connections here that use it stay valid; one pinned to a version the bundle lacks refuses the
 * import); `rename` imports it under a free name (`name-2`) and fresh ids.
 */
export const plan = Effect.fn("Bundle.plan")(function* (
  contents: Gathered & { readonly source: Source },
  existing: Existing,
  target: Target,
  mode: OnConflict
) {
  const { source } = contents
  const ownerOf = (owner: Credential.Owner): Credential.Owner => ({
    org: target.org,
    ...(owner.workspace === undefined
      ? {}
      : { workspace: owner.workspace === source.workspace ? target.workspace : owner.workspace }),
    ...(owner.user === undefined ? {} : { user: owner.user === source.user ? target.user : owner.user })
  })
  const conflicts: Array<{ kind: ItemKind; name: string; why: string }> = []
  const report: Array<Outcome> = []

  // --- connectors
  const here = existing.connectors.filter((c) => c.org === target.org)
  const connectorIds = new Set(existing.connectors.map((c) => c.id))
  const connectorNames = new Set(here.map((c) => c.name))
  const connectorIdMap = new Map<string, string>()
  const replacedConnectors = new Map<string, number>()
  const connectorsOut: Array<{ versions: ReadonlyArray<Connector.Connector>; replaces: boolean }> = []
  for (const entry of contents.connectors) {
    const current = entry.versions[entry.versions.length - 1] as Connector.Connector
    const byId = existing.connectors.find((c) => c.id === current.id)
    const byName = here.find((c) => c.name === current.name)
    let id = current.id
    let name = current.name
    let replaces = false
    if (byId !== undefined || byName !== undefined) {
      const why = byName !== undefined ? `a connector named ${current.name} exists` : `connector ${current.id} exists`
      if (mode === "fail") {
        // Its credentials and connections are still checked, so the error lists every conflict at once.
        conflicts.push({ kind: "connector", name: current.name, why })
        connectorIdMap.set(current.id, current.id)
        continue
      }
      if (mode === "skip") {
        report.push({ kind: "connector", name: current.name, outcome: "skipped" })
        continue
      }
      if (mode === "replace") {
        const local = byName ?? byId
        if (
          local === undefined ||
          local.org !== target.org ||
          (byId !== undefined && byName !== undefined && byId.id !== byName.id)
        ) {
          conflicts.push({
            kind: "connector",
            name: current.name,
            why: "its id and its name belong to two different connectors here (or to another organization)"
          })
          continue
        }
        id = local.id
        replaces = true
        replacedConnectors.set(local.id, entry.versions.length)
        report.push({ kind: "connector", name: current.name, outcome: "replaced" })
      } else {
        if (byName !== undefined) name = freeName(current.name, (n) => connectorNames.has(n))
        if (byId !== undefined) id = yield* Ids.make("ctr")
        report.push({
          kind: "connector",
          name: current.name,
          outcome: "renamed",
          as: name === current.name ? id : name
        })
      }
    } else {
      report.push({ kind: "connector", name: current.name, outcome: "imported" })
    }
    connectorIds.add(id)
    connectorNames.add(name)
    connectorIdMap.set(current.id, id)
    connectorsOut.push({ versions: entry.versions.map((v) => ({ ...v, id, name })), replaces })
  }
  // Local connections not in the bundle that use a replaced connector must still find their pinned version.
  const bundledConnectionIds = new Set(contents.connections.map((c) => c.connection.id))
  const bundledConnectionNames = new Set(contents.connections.map((c) => c.connection.name))
  for (const c of existing.connections) {
    const count = replacedConnectors.get(c.connector_id)
    if (count === undefined || c.connector_version === null || c.connector_version <= count) continue
    if (mode === "replace" && (bundledConnectionIds.has(c.id) || bundledConnectionNames.has(c.name))) continue
    conflicts.push({
      kind: "connection",
      name: c.name,
      why: `it is pinned to version ${c.connector_version} of a connector the bundle replaces with ${count} version(s)`
    })
  }

  // --- credentials
  const credentialIds = new Set(existing.credentials.map((c) => c.id))
  const credentialKeys = new Map(
    existing.credentials.map((c) => [credentialKeyOf(c.connector_id, c.scope, c.owner, c.name), c.id] as const)
  )
  const credentialRenames = new Map<string, string>()
  const credentialsOut: Array<{ credential: Credential.Credential; replaces?: string }> = []
  for (const entry of contents.credentials) {
    const connectorId = connectorIdMap.get(entry.connector_id)
    const label = `${entry.scope}/${entry.name}`
    if (connectorId === undefined) {
      if (mode !== "fail") report.push({ kind: "credential", name: label, outcome: "skipped" })
      continue
    }
    const owner = ownerOf(entry.owner)
    const local = credentialKeys.get(credentialKeyOf(connectorId, entry.scope, owner, entry.name))
    let name = entry.name
    let replaces: string | undefined
    let outcome: Outcome["outcome"] = "imported"
    if (local !== undefined) {
      if (mode === "fail") {
        conflicts.push({ kind: "credential", name: label, why: `a credential ${label} exists for that connector` })
        continue
      }
      if (mode === "skip") {
        report.push({ kind: "credential", name: label, outcome: "skipped" })
        continue
      }
      if (mode === "replace") {
        replaces = local
        outcome = "replaced"
      } else {
        name = freeName(entry.name, (n) => credentialKeys.has(credentialKeyOf(connectorId, entry.scope, owner, n)))
        credentialRenames.set(JSON.stringify([entry.connector_id, entry.scope, entry.name]), name)
        outcome = "renamed"
      }
    }
    const id = replaces ?? (credentialIds.has(entry.id) ? yield* Ids.make("cred") : entry.id)
    credentialIds.add(id)
    credentialKeys.set(credentialKeyOf(connectorId, entry.scope, owner, name), id)
    report.push({ kind: "credential", name: label, outcome, ...(name === entry.name ? {} : { as: name }) })
    credentialsOut.push({
      credential: { ...entry, id, connector_id: connectorId, owner, name },
      ...(replaces === undefined ? {} : { replaces })
    })
  }

  // --- connections
  const connectionsHere = existing.connections.filter((c) => c.org === target.org)
  const connectionIds = new Set(existing.connections.map((c) => c.id))
  const connectionNames = new Set(connectionsHere.map((c) => c.name))
  const connectionsOut: Array<Plan["connections"][number]> = []
  for (const entry of contents.connections) {
    const c = entry.connection
    const connectorId = connectorIdMap.get(c.connector_id)
    if (connectorId === undefined) {
      if (mode !== "fail") report.push({ kind: "connection", name: c.name, outcome: "skipped" })
      continue
    }
    const byId = existing.connections.find((l) => l.id === c.id)
    const byName = connectionsHere.find((l) => l.name === c.name)
    let id = c.id
    let name = c.name
    let replaces: string | undefined
    let outcome: Outcome["outcome"] = "imported"
    if (byId !== undefined || byName !== undefined) {
      if (mode === "fail") {
        conflicts.push({
          kind: "connection",
          name: c.name,
          why: byName !== undefined ? `a connection named ${c.name} exists` : `connection ${c.id} exists`
        })
        continue
      }
      if (mode === "skip") {
        report.push({ kind: "connection", name: c.name, outcome: "skipped" })
        continue
      }
      if (mode === "replace") {
        if (byId !== undefined && byName !== undefined && byId.id !== byName.id) {
          conflicts.push({
            kind: "connection",
            name: c.name,
            why: "its id and its name belong to two different connections here"
          })
          continue
        }
        const local = (byName ?? byId) as { readonly id: string; readonly org: string }
        if (local.org !== target.org) {
          conflicts.push({ kind: "connection", name: c.name, why: "its id belongs to another organization here" })
          continue
        }
        replaces = local.id
        id = local.id
        outcome = "replaced"
      } else {
        if (byName !== undefined) name = freeName(c.name, (n) => connectionNames.has(n))
        if (byId !== undefined) id = yield* Ids.make("conn")
        outcome = "renamed"
      }
    }
    connectionIds.add(id)
    connectionNames.add(name)
    const renamedCredential =
      c.credential === null
        ? undefined
        : credentialRenames.get(JSON.stringify([c.connector_id, c.credential.scope, c.credential.name]))
    const connection: Connection.Connection = {
      ...c,
      id,
      name,
      connector_id: connectorId,
      org: target.org,
      workspace: c.workspace === source.workspace ? target.workspace : c.workspace,
      owner: c.owner === source.user ? target.user : c.owner,
      credential:
        c.credential === null || renamedCredential === undefined
          ? c.credential
          : { ...c.credential, name: renamedCredential }
    }
    const as = name !== c.name ? name : id !== c.id && outcome === "renamed" ? id : undefined
    report.push({ kind: "connection", name: c.name, outcome, ...(as === undefined ? {} : { as }) })
    connectionsOut.push({
      connection,
      secrets: { security: entry.security, headers: entry.headers },
      ...(replaces === undefined ? {} : { replaces }),
      ...(entry.pins === undefined ? {} : { pins: pinsOf(entry, connection) })
    })
  }

  if (conflicts.length > 0) return yield* conflict(conflicts, mode)
  return {
    connectors: connectorsOut,
    credentials: credentialsOut,
    connections: connectionsOut,
    report
  } satisfies Plan
})

/** How many items each outcome had. */
export const summaryOf = (report: ReadonlyArray<Outcome>) => {
  const zero = { imported: 0, replaced: 0, renamed: 0, skipped: 0 }
  const out = { connector: { ...zero }, credential: { ...zero }, connection: { ...zero } }
  for (const line of report) out[line.kind][line.outcome]++
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Port

/** What `export` takes: only these connectors (by name), else all of them. */
export interface ExportQuery {
  readonly connectors?: ReadonlyArray<string> | undefined
}

export class BundleStore extends Context.Service<
  BundleStore,
  {
    /** Everything of `org` (or of the named connectors), secrets opened as `Redacted`. */
    readonly gather: (
      org: string,
      query: ExportQuery
    ) => Effect.Effect<Gathered, StoreError | SealError | ConnectorNotFound>
    /**
     * Plans (`plan`) and writes `contents` into the target's organization in one transaction: on any failure
     * nothing is written. Returns the plan's report.
     */
    readonly restore: (
      contents: Contents,
      target: Target,
      mode: OnConflict
    ) => Effect.Effect<ReadonlyArray<Outcome>, BundleError | StoreError | SealError>
    /**
     * This store's bundle recipient secret (an X25519 secret key), kept sealed under the master key; made with
     * `create` the first time, in a transaction, so two processes agree on one.
     */
    readonly recipientSecret: (
      create: Effect.Effect<Redacted.Redacted<Uint8Array>, SealError>
    ) => Effect.Effect<Redacted.Redacted<Uint8Array>, StoreError | SealError>
  }
>()("@switchboard/core/Bundle/BundleStore") {}
