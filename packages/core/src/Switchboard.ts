/**
 * The application service every way in calls (library, daemon API, CLI, MCP server): connectors,
 * credentials per scope, connections, and resolving what a call through a connection sends. It decodes
 * every input through Schema, checks the policy for the current principal, and records an audit entry for
 * every change. Secrets stay `Redacted` and are returned only masked.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { AuditLog, type AuditRecord } from "./AuditLog.ts"
import * as AuthMethods from "./AuthMethods.ts"
import type * as AuthPattern from "./AuthPattern.ts"
import * as Connection from "./Connection.ts"
import { ConnectionStore } from "./ConnectionStore.ts"
import * as Connector from "./Connector.ts"
import { ConnectorStore } from "./ConnectorStore.ts"
import * as Credential from "./Credential.ts"
import { CredentialVault } from "./CredentialVault.ts"
import * as Cursor from "./Cursor.ts"
import {
  ConnectionNotFound,
  ConnectorNotFound,
  ConnectorVersionNotFound,
  CredentialMissing,
  CredentialNotFound,
  type SwitchboardError
} from "./Errors.ts"
import * as FieldMutation from "./FieldMutation.ts"
import * as Ids from "./Ids.ts"
import * as Principal from "./Principal.ts"
import * as Template from "./Template.ts"
import * as Validation from "./Validation.ts"

/** A keyset page: `{"data": […], "next_cursor": …, "has_more": …}`. */
export const Page = <S extends Schema.Top>(item: S) =>
  Schema.Struct({ data: Schema.Array(item), next_cursor: Schema.NullOr(Schema.String), has_more: Schema.Boolean })
export interface Page<A> {
  readonly data: ReadonlyArray<A>
  readonly next_cursor: string | null
  readonly has_more: boolean
}

const Limit = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 }))

export const ListConnectorsQuery = Schema.Struct({
  limit: Schema.optionalKey(Limit),
  cursor: Schema.optionalKey(Schema.String),
  kind: Schema.optionalKey(Connector.Kind),
  name_prefix: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(63)))
})
export type ListConnectorsQuery = typeof ListConnectorsQuery.Encoded

export const ListConnectionsQuery = Schema.Struct({
  limit: Schema.optionalKey(Limit),
  cursor: Schema.optionalKey(Schema.String),
  connector: Schema.optionalKey(Schema.String),
  status: Schema.optionalKey(Connection.Status),
  name_prefix: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(100)))
})
export type ListConnectionsQuery = typeof ListConnectionsQuery.Encoded

export const ListAuditQuery = Schema.Struct({
  limit: Schema.optionalKey(Limit),
  cursor: Schema.optionalKey(Schema.String),
  connection: Schema.optionalKey(Schema.String),
  action: Schema.optionalKey(Schema.String)
})
export type ListAuditQuery = typeof ListAuditQuery.Encoded

/** Where the credential of a resolved call came from. */
export type CredentialSource =
  | { readonly _tag: "Inline" }
  | { readonly _tag: "Stored"; readonly id: string; readonly scope: Credential.Scope; readonly name: string }
  | { readonly _tag: "None" }

/** Everything a call through a connection needs; secrets still `Redacted`. */
export interface ResolvedCall {
  readonly connection: Connection.Connection
  readonly connector: Connector.Connector
  readonly pattern: AuthPattern.AuthPattern | undefined
  /** The upstream base URL: the first server override, else the rendered `proxy_url`. */
  readonly baseUrl: string | undefined
  readonly auth: FieldMutation.OutgoingAuth
  /** Connection headers (write-only) and pre-filled header parameters. */
  readonly headers: Readonly<Record<string, Redacted.Redacted<string>>>
  /** Pre-filled query parameters. */
  readonly query: Readonly<Record<string, string>>
  /** The credential values, for templates of local MCP programs and probes. */
  readonly values: Credential.Values
  readonly source: CredentialSource
}

export class Switchboard extends Context.Service<
  Switchboard,
  {
    readonly createConnector: (input: unknown) => Effect.Effect<Connector.Connector, SwitchboardError>
    readonly listConnectors: (query?: ListConnectorsQuery) => Effect.Effect<Page<Connector.Connector>, SwitchboardError>
    readonly getConnector: (idOrName: string) => Effect.Effect<Connector.Connector, SwitchboardError>
    readonly getConnectorVersion: (
      idOrName: string,
      version: number
    ) => Effect.Effect<Connector.Connector, SwitchboardError>
    readonly updateConnector: (idOrName: string, patch: unknown) => Effect.Effect<Connector.Connector, SwitchboardError>
    readonly deleteConnector: (idOrName: string) => Effect.Effect<void, SwitchboardError>
    readonly authenticationMethods: (idOrName: string) => Effect.Effect<AuthMethods.AuthMethods, SwitchboardError>

    readonly setCredential: (
      connector: string,
      scope: Credential.Scope,
      input: unknown
    ) => Effect.Effect<Credential.CredentialView, SwitchboardError>
    readonly listCredentials: (
      connector: string,
      scope: Credential.Scope
    ) => Effect.Effect<ReadonlyArray<Credential.CredentialView>, SwitchboardError>
    readonly deleteCredential: (
      connector: string,
      scope: Credential.Scope,
      name: string
    ) => Effect.Effect<void, SwitchboardError>

    readonly createConnection: (
      connector: string,
      input: unknown
    ) => Effect.Effect<Connection.Connection, SwitchboardError>
    readonly listConnections: (
      query?: ListConnectionsQuery
    ) => Effect.Effect<Page<Connection.Connection>, SwitchboardError>
    readonly getConnection: (idOrName: string) => Effect.Effect<Connection.Connection, SwitchboardError>
    readonly deleteConnection: (idOrName: string) => Effect.Effect<void, SwitchboardError>
    readonly setConnectionStatus: (
      idOrName: string,
      patch: { readonly status: Connection.Status; readonly last_error?: string | null; readonly tested?: boolean }
    ) => Effect.Effect<Connection.Connection, SwitchboardError>

    /** What a call through the connection sends, for the current principal. */
    readonly resolveCall: (connection: string) => Effect.Effect<ResolvedCall, SwitchboardError>
    /** Append an audit record for the current principal (used by the upstream callers). */
    readonly audit: (
      entry: Omit<AuditRecord, "id" | "at" | "org" | "workspace" | "actor">
    ) => Effect.Effect<void, SwitchboardError>
    readonly listAudit: (query?: ListAuditQuery) => Effect.Effect<Page<AuditRecord>, SwitchboardError>
  }
>()("@switchboard/core/Switchboard") {}

const isoNow = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())

const decodeCursor = (cursor: string | undefined, filter: string) =>
  cursor === undefined
    ? Effect.succeed(undefined)
    : Effect.map(Effect.fromResult(Cursor.decode(cursor, filter)), (p) => p.after)

/**
 * One keyset page: the cursor is checked against the list's filters, one row more than asked is fetched to know
 * whether there is more, and the next cursor points after the last row returned.
 */
const paginate = Effect.fnUntraced(function* <A extends { readonly id: string }, E>(
  query: { readonly limit?: number; readonly cursor?: string },
  filters: Readonly<Record<string, string | undefined>>,
  fetch: (after: string | undefined, limit: number) => Effect.Effect<ReadonlyArray<A>, E>
) {
  const limit = query.limit ?? 20
  const filter = Cursor.filterKey(filters)
  const after = yield* decodeCursor(query.cursor, filter)
  const rows = yield* fetch(after, limit + 1)
  const has_more = rows.length > limit
  const data = rows.slice(0, limit)
  const last = data[data.length - 1]
  const result: Page<A> = {
    data,
    next_cursor: has_more && last !== undefined ? Cursor.encode({ after: last.id, filter }) : null,
    has_more
  }
  return result
})

/** Plain values a URL template may use: account fields and other credential values, then path parameters. */
const templateValues = (values: Credential.Values, parameters: Connection.Parameters): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(values)) out[k] = Redacted.value(v)
  return { ...out, ...parameters.path }
}

export const make = Effect.gen(function* () {
  const connectors = yield* ConnectorStore
  const vault = yield* CredentialVault
  const connections = yield* ConnectionStore
  const auditLog = yield* AuditLog
  const newId = yield* Ids.generator

  // Parsed proxy_url templates by text: parsing validates the whole URL, and `resolveCall` renders one on every call.
  // A template without placeholders renders to the same URL whatever the values: that URL is kept too.
  type Parsed = ReturnType<typeof Template.parse>
  const templates = new Map<
    string,
    { readonly parsed: Parsed; readonly constant: ReturnType<typeof Template.renderParsed> | undefined }
  >()
  const renderUrl = (template: string, values: () => Readonly<Record<string, string>>) => {
    let entry = templates.get(template)
    if (entry === undefined) {
      const parsed = Template.parse(template)
      const constant =
        Result.isSuccess(parsed) && parsed.success.parts.every((part) => part._tag === "Literal")
          ? Template.renderParsed(parsed.success, {})
          : undefined
      entry = { parsed, constant }
      if (templates.size >= 256) templates.clear()
      templates.set(template, entry)
    }
    return entry.constant ?? Result.flatMap(entry.parsed, (p) => Template.renderParsed(p, values()))
  }

  const audit = Effect.fnUntraced(function* (entry: Omit<AuditRecord, "id" | "at" | "org" | "workspace" | "actor">) {
    const principal = yield* Principal.CurrentPrincipal
    const id = yield* newId("aud")
    const at = yield* isoNow
    yield* auditLog.append({
      id,
      at,
      org: principal.org,
      workspace: principal.workspace,
      actor: principal.user,
      ...entry
    })
  })

  // The helpers below run on every call (several per `resolveCall`): untraced, they skip Effect.fn's span and
  // call-site capture, a few µs each. So do the per-call methods (`resolveCall`, `audit`) and the single reads.
  const findConnector = Effect.fnUntraced(function* (org: string, idOrName: string) {
    const found = Ids.is("ctr", idOrName)
      ? yield* connectors.get(org, idOrName)
      : yield* connectors.getByName(org, idOrName)
    if (Option.isNone(found)) {
      return yield* new ConnectorNotFound({
        message: `connector ${idOrName} not found`,
        details: { connector: idOrName }
      })
    }
    return found.value
  })

  const findConnection = Effect.fnUntraced(function* (principal: Principal.Principal, idOrName: string) {
    const found = Ids.is("conn", idOrName)
      ? yield* connections.get(principal.org, idOrName)
      : yield* connections.getByName(principal.org, idOrName)
    // Another user's personal connection is reported as absent: its existence is theirs.
    if (Option.isNone(found) || (found.value.access_scope === "personal" && found.value.owner !== principal.user)) {
      return yield* new ConnectionNotFound({
        message: `connection ${idOrName} not found`,
        details: { connection: idOrName }
      })
    }
    return found.value
  })

  const connectorFor = Effect.fnUntraced(function* (connection: Connection.Connection) {
    if (connection.connector_version === null) return yield* findConnector(connection.org, connection.connector_id)
    const pinned = yield* connectors.getVersion(connection.org, connection.connector_id, connection.connector_version)
    if (Option.isNone(pinned)) {
      return yield* new ConnectorVersionNotFound({
        message: `connector ${connection.connector_id} has no version ${connection.connector_version}`
      })
    }
    return pinned.value
  })

  /** The first stored credential along the resolution chain, if any. */
  const lookupCredential = Effect.fnUntraced(function* (connectorId: string, chain: ReadonlyArray<Credential.Lookup>) {
    for (const lookup of chain) {
      const found = yield* vault.get({ connectorId, ...lookup })
      if (Option.isSome(found)) return found
    }
    return Option.none<Credential.Credential>()
  })

  const createConnector = Effect.fn("Switchboard.createConnector")(function* (input: unknown) {
    const principal = yield* Principal.guard("connector:write")
    const decoded = yield* Validation.decode(Connector.CreateConnector, "connector")(input)
    const name = decoded.name ?? Connector.slugify(decoded.display_name ?? "")
    if (name === "") {
      return yield* Validation.validationFailed("connector", [
        { path: "name", message: "no name can be derived from display_name; give a name" }
      ])
    }
    const id = yield* newId("ctr")
    const now = yield* isoNow
    const connector = Connector.fromInput(decoded, { id, name, version: 1, createdAt: now, updatedAt: now })
    yield* connectors.insert(principal.org, connector)
    yield* audit({ action: "connector.create", outcome: "success", connector_id: id, target: name })
    return connector
  })

  const listConnectors = Effect.fn("Switchboard.listConnectors")(function* (query: ListConnectorsQuery = {}) {
    const principal = yield* Principal.guard("connector:read")
    const q = yield* Validation.decode(ListConnectorsQuery, "query")(query)
    return yield* paginate(q, { kind: q.kind, name_prefix: q.name_prefix }, (after, limit) =>
      connectors.list(principal.org, { after, limit, kind: q.kind, namePrefix: q.name_prefix })
    )
  })

  const getConnector = Effect.fnUntraced(function* (idOrName: string) {
    const principal = yield* Principal.guard("connector:read")
    return yield* findConnector(principal.org, idOrName)
  })

  const getConnectorVersion = Effect.fn("Switchboard.getConnectorVersion")(function* (
    idOrName: string,
    version: number
  ) {
    const principal = yield* Principal.guard("connector:read")
    const latest = yield* findConnector(principal.org, idOrName)
    const found = yield* connectors.getVersion(principal.org, latest.id, version)
    if (Option.isNone(found)) {
      return yield* new ConnectorVersionNotFound({ message: `connector ${idOrName} has no version ${version}` })
    }
    return found.value
  })

  const updateConnector = Effect.fn("Switchboard.updateConnector")(function* (idOrName: string, patch: unknown) {
    const principal = yield* Principal.guard("connector:write")
    const current = yield* findConnector(principal.org, idOrName)
    const changes = yield* Validation.decode(Connector.UpdateConnector, "connector update")(patch)
    const merged = yield* Validation.decode(
      Connector.CreateConnector,
      "connector"
    )({
      ...Connector.toInput(current),
      ...changes
    })
    const now = yield* isoNow
    const next = Connector.fromInput(merged, {
      id: current.id,
      name: merged.name ?? current.name,
      version: current.version + 1,
      createdAt: current.created_at,
      updatedAt: now
    })
    yield* connectors.update(principal.org, next)
    yield* audit({ action: "connector.update", outcome: "success", connector_id: current.id, target: next.name })
    return next
  })

  const deleteConnector = Effect.fn("Switchboard.deleteConnector")(function* (idOrName: string) {
    const principal = yield* Principal.guard("connector:write")
    const connector = yield* findConnector(principal.org, idOrName)
    yield* connectors.delete(principal.org, connector.id)
    yield* audit({ action: "connector.delete", outcome: "success", connector_id: connector.id, target: connector.name })
  })

  const authenticationMethods = Effect.fn("Switchboard.authenticationMethods")(function* (idOrName: string) {
    const principal = yield* Principal.guard("connector:read")
    return AuthMethods.of(yield* findConnector(principal.org, idOrName))
  })

  const setCredential = Effect.fn("Switchboard.setCredential")(function* (
    connectorRef: string,
    scope: Credential.Scope,
    input: unknown
  ) {
    const current = yield* Principal.CurrentPrincipal
    const principal = yield* Principal.guard("credential:write", { scope, owner: current.user })
    const connector = yield* findConnector(principal.org, connectorRef)
    const decoded = yield* Validation.decode(Credential.CredentialInput, "credential")(input)
    const checked = Credential.checkValues(connector, decoded)
    if (Result.isFailure(checked)) return yield* Validation.validationFailed("credential", checked.failure)
    const id = yield* newId("cred")
    const now = yield* isoNow
    const name = decoded.name ?? "default"
    const stored = yield* vault.put({
      id,
      connector_id: connector.id,
      scope,
      owner: Credential.ownerFor(scope, principal),
      name,
      auth_type: checked.success,
      values: decoded.values,
      created_at: now,
      updated_at: now
    })
    yield* audit({
      action: "credential.set",
      outcome: "success",
      connector_id: connector.id,
      target: `${scope}/${name}`
    })
    return Credential.toView(stored)
  })

  const listCredentials = Effect.fn("Switchboard.listCredentials")(function* (
    connectorRef: string,
    scope: Credential.Scope
  ) {
    const principal = yield* Principal.guard("credential:read")
    const connector = yield* findConnector(principal.org, connectorRef)
    const rows = yield* vault.list(connector.id, scope, Credential.ownerFor(scope, principal))
    return rows.map(Credential.toView)
  })

  const deleteCredential = Effect.fn("Switchboard.deleteCredential")(function* (
    connectorRef: string,
    scope: Credential.Scope,
    name: string
  ) {
    const current = yield* Principal.CurrentPrincipal
    const principal = yield* Principal.guard("credential:write", { scope, owner: current.user })
    const connector = yield* findConnector(principal.org, connectorRef)
    const deleted = yield* vault.delete({
      connectorId: connector.id,
      scope,
      owner: Credential.ownerFor(scope, principal),
      name
    })
    if (!deleted) {
      return yield* new CredentialNotFound({
        message: `no ${scope} credential named ${name} for connector ${connector.name}`,
        details: { connector: connector.name, scope, name }
      })
    }
    yield* audit({
      action: "credential.delete",
      outcome: "success",
      connector_id: connector.id,
      target: `${scope}/${name}`
    })
  })

  const createConnection = Effect.fn("Switchboard.createConnection")(function* (connectorRef: string, input: unknown) {
    const principal = yield* Principal.guard("connection:write")
    const latest = yield* findConnector(principal.org, connectorRef)
    const decoded = yield* Validation.decode(Connection.CreateConnection, "connection")(input)
    let connector = latest
    if (decoded.connector_version !== undefined) {
      const pinned = yield* connectors.getVersion(principal.org, latest.id, decoded.connector_version)
      if (Option.isNone(pinned)) {
        return yield* new ConnectorVersionNotFound({
          message: `connector ${latest.name} has no version ${decoded.connector_version}`,
          details: { connector: latest.name, version: decoded.connector_version, latest: latest.version }
        })
      }
      connector = pinned.value
    }
    let authType: AuthPattern.AuthType | null = null
    if (connector.auth_patterns.length > 0) {
      const pattern = Connector.patternFor(connector, decoded.auth_type)
      if (pattern === undefined) {
        return yield* Validation.validationFailed("connection", [
          {
            path: "auth_type",
            message:
              decoded.auth_type === undefined
                ? `connector ${connector.name} has several auth patterns; say which with auth_type`
                : `connector ${connector.name} has no ${decoded.auth_type} auth pattern`
          }
        ])
      }
      authType = pattern.type
    } else if (decoded.auth_type !== undefined) {
      return yield* Validation.validationFailed("connection", [
        { path: "auth_type", message: `connector ${connector.name} has no auth patterns` }
      ])
    }
    if (decoded.security !== undefined) {
      const checked = Credential.checkValues(connector, {
        values: decoded.security,
        ...(authType === null ? {} : { auth_type: authType })
      })
      if (Result.isFailure(checked)) {
        return yield* Validation.validationFailed(
          "connection",
          checked.failure.map((i) => ({ path: `security.${i.path.replace(/^values\./u, "")}`, message: i.message }))
        )
      }
    }
    const id = yield* newId("conn")
    const now = yield* isoNow
    const access_scope = decoded.access_scope ?? "personal"
    const draft: Connection.Connection = {
      id,
      name: decoded.name,
      connector_id: connector.id,
      connector_version: decoded.connector_version ?? null,
      org: principal.org,
      workspace: principal.workspace,
      owner: principal.user,
      access_scope,
      is_service_account: decoded.is_service_account ?? false,
      auth_type: authType,
      credential: decoded.credential ?? null,
      parameters: decoded.parameters ?? {},
      servers: decoded.servers ?? [],
      allow_private_network: decoded.allow_private_network ?? false,
      ...(decoded.timeouts === undefined ? {} : { timeouts: decoded.timeouts }),
      ...(decoded.rate_limit === undefined ? {} : { rate_limit: decoded.rate_limit }),
      has_security: decoded.security !== undefined,
      header_names: Object.keys(decoded.headers ?? {}),
      status: "active",
      account_label: null,
      last_tested_at: null,
      last_error: null,
      created_at: now,
      updated_at: now
    }
    // A connection whose credential cannot be found yet waits for one (an OAuth flow, or `cred set`).
    let status: Connection.Status = "active"
    if (connector.auth_patterns.length > 0 && decoded.security === undefined) {
      const chain = Credential.resolutionChain(Connection.binding(draft), principal)
      const found = Result.isSuccess(chain) ? yield* lookupCredential(connector.id, chain.success) : Option.none()
      if (Option.isNone(found)) {
        if (decoded.credential !== undefined && decoded.credential.scope !== "user") {
          return yield* new CredentialNotFound({
            message: `no ${decoded.credential.scope} credential named ${decoded.credential.name} for connector ${connector.name}`,
            details: { scope: decoded.credential.scope, name: decoded.credential.name }
          })
        }
        status = "pending_auth"
      }
    }
    const connection = { ...draft, status }
    yield* connections.insert(connection, {
      security: decoded.security ?? {},
      headers: decoded.headers ?? {}
    })
    yield* audit({
      action: "connection.create",
      outcome: "success",
      connector_id: connector.id,
      connection_id: id,
      target: decoded.name
    })
    return connection
  })

  const listConnections = Effect.fn("Switchboard.listConnections")(function* (query: ListConnectionsQuery = {}) {
    const principal = yield* Principal.guard("connection:read")
    const q = yield* Validation.decode(ListConnectionsQuery, "query")(query)
    const connectorId = q.connector === undefined ? undefined : (yield* findConnector(principal.org, q.connector)).id
    return yield* paginate(
      q,
      { connector: connectorId, status: q.status, name_prefix: q.name_prefix },
      (after, limit) =>
        connections.list(principal.org, {
          after,
          limit,
          connectorId,
          status: q.status,
          namePrefix: q.name_prefix,
          visibleTo: principal.user
        })
    )
  })

  const getConnection = Effect.fnUntraced(function* (idOrName: string) {
    const principal = yield* Principal.guard("connection:read")
    return yield* findConnection(principal, idOrName)
  })

  const deleteConnection = Effect.fn("Switchboard.deleteConnection")(function* (idOrName: string) {
    const principal = yield* Principal.guard("connection:write")
    const connection = yield* findConnection(principal, idOrName)
    yield* connections.delete(principal.org, connection.id)
    yield* audit({
      action: "connection.delete",
      outcome: "success",
      connector_id: connection.connector_id,
      connection_id: connection.id,
      target: connection.name
    })
  })

  const setConnectionStatus = Effect.fn("Switchboard.setConnectionStatus")(function* (
    idOrName: string,
    patch: { readonly status: Connection.Status; readonly last_error?: string | null; readonly tested?: boolean }
  ) {
    const principal = yield* Principal.guard("connection:test")
    const connection = yield* findConnection(principal, idOrName)
    const now = yield* isoNow
    const updated = yield* connections.setStatus(principal.org, connection.id, {
      status: patch.status,
      updated_at: now,
      ...(patch.last_error === undefined ? {} : { last_error: patch.last_error }),
      ...(patch.tested === true ? { last_tested_at: now } : {})
    })
    if (Option.isNone(updated)) {
      return yield* new ConnectionNotFound({ message: `connection ${idOrName} not found` })
    }
    return updated.value
  })

  const resolveCall = Effect.fnUntraced(function* (connectionRef: string) {
    const principal = yield* Principal.guard("connection:use")
    const connection = yield* findConnection(principal, connectionRef)
    const connector = yield* connectorFor(connection)
    const pattern =
      connector.auth_patterns.length === 0
        ? undefined
        : Connector.patternFor(connector, connection.auth_type ?? undefined)
    // Secrets are written once, with the connection: one without inline security or headers has none to unseal.
    const secrets =
      connection.has_security || connection.header_names.length > 0
        ? yield* connections.secrets(principal.org, connection.id)
        : Connection.noSecrets
    let values: Credential.Values = {}
    let source: CredentialSource = { _tag: "None" }
    if (connection.has_security) {
      values = secrets.security
      source = { _tag: "Inline" }
    } else {
      const chain = yield* Effect.fromResult(Credential.resolutionChain(Connection.binding(connection), principal))
      const found = yield* lookupCredential(connector.id, chain)
      if (Option.isSome(found)) {
        values = found.value.values
        source = { _tag: "Stored", id: found.value.id, scope: found.value.scope, name: found.value.name }
      } else if (pattern !== undefined) {
        return yield* new CredentialMissing({
          message: `no credential found for connection ${connection.name}: looked at ${chain
            .map((l) => `${l.scope}/${l.name}`)
            .join(", ")}`,
          details: { connection: connection.id, looked_at: chain.map((l) => ({ scope: l.scope, name: l.name })) }
        })
      }
    }
    const auth =
      pattern === undefined
        ? FieldMutation.none
        : yield* Effect.fromResult(FieldMutation.buildOutgoingAuth(pattern, values))
    const firstServer = connection.servers[0]
    const baseUrl =
      firstServer !== undefined
        ? firstServer.url
        : connector.proxy_url === undefined
          ? undefined
          : yield* Effect.fromResult(
              renderUrl(connector.proxy_url, () => templateValues(values, connection.parameters))
            )
    const headers: Record<string, Redacted.Redacted<string>> = {}
    for (const [k, v] of Object.entries(connection.parameters.header ?? {})) headers[k] = Redacted.make(v)
    Object.assign(headers, secrets.headers)
    const resolved: ResolvedCall = {
      connection,
      connector,
      pattern,
      baseUrl,
      auth,
      headers,
      query: connection.parameters.query ?? {},
      values,
      source
    }
    return resolved
  })

  const listAudit = Effect.fn("Switchboard.listAudit")(function* (query: ListAuditQuery = {}) {
    const principal = yield* Principal.guard("audit:read")
    const q = yield* Validation.decode(ListAuditQuery, "query")(query)
    return yield* paginate(q, { connection: q.connection, action: q.action }, (after, limit) =>
      auditLog.list(principal.org, { after, limit, connectionId: q.connection, action: q.action })
    )
  })

  return Switchboard.of({
    createConnector,
    listConnectors,
    getConnector,
    getConnectorVersion,
    updateConnector,
    deleteConnector,
    authenticationMethods,
    setCredential,
    listCredentials,
    deleteCredential,
    createConnection,
    listConnections,
    getConnection,
    deleteConnection,
    setConnectionStatus,
    resolveCall,
    audit,
    listAudit
  })
})

/** The service on top of whatever store adapters are provided. */
export const layer = Layer.effect(Switchboard, make)
