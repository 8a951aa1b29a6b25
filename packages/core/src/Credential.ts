/**
 * Credentials: named values for one connector and one auth pattern at organization, workspace or user
 * scope. Values are `Redacted` from decode until they are sent upstream, stored sealed, never returned, and
 * shown masked. Resolution for a call is user → workspace → organization, shaped by the connection's access
 * (personal or organizational) and service-account flag.
 */
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as AuthPattern from "./AuthPattern.ts"
import * as Catalog from "./Catalog.ts"
import type { Connector } from "./Connector.ts"
import * as ConnectorModule from "./Connector.ts"
import { Forbidden } from "./Errors.ts"
import * as Ids from "./Ids.ts"
import * as Masking from "./Masking.ts"
import type { Principal } from "./Principal.ts"

export const Scope = Schema.Literals(["organization", "workspace", "user"])
export type Scope = typeof Scope.Type

/** Who a credential belongs to. `workspace` is set at workspace scope, `user` at user scope. */
export const Owner = Schema.Struct({
  org: Schema.String,
  workspace: Schema.optionalKey(Schema.String),
  user: Schema.optionalKey(Schema.String)
})
export type Owner = typeof Owner.Type

/** The owner of a scope for a principal. */
export const ownerFor = (
  scope: Scope,
  who: { readonly org: string; readonly workspace: string; readonly user: string }
): Owner =>
  scope === "organization"
    ? { org: who.org }
    : scope === "workspace"
      ? { org: who.org, workspace: who.workspace }
      : { org: who.org, user: who.user }

/** A credential name: the same slug rules as connector names. `default` when not given. */
export const Name = ConnectorModule.Name

/** The name OAuth app credentials (client id and secret) of a connector are stored under. */
export const oauthClientName = "oauth_client"

const SecretValue = Schema.RedactedFromValue(Schema.String.check(Schema.isMaxLength(65536)), {
  disallowEncode: true
})

/** A secret values map: keys are field names, values become `Redacted` at decode. */
export const Values = Schema.Record(AuthPattern.FieldName, SecretValue)
export type Values = Readonly<Record<string, Redacted.Redacted<string>>>

/** `POST …/{scope}/credentials`: creates or replaces by name. */
export const CredentialInput = Schema.Struct({
  name: Schema.optionalKey(Name),
  auth_type: Schema.optionalKey(AuthPattern.AuthType),
  values: Values
})
export type CredentialInput = typeof CredentialInput.Type

/** A stored credential. Never serialised as such: see `CredentialView`. */
export interface Credential {
  readonly id: string
  readonly connector_id: string
  readonly scope: Scope
  readonly owner: Owner
  readonly name: string
  /** `null` for data-connector credentials, which have no auth pattern. */
  readonly auth_type: AuthPattern.AuthType | null
  readonly values: Values
  readonly created_at: string
  readonly updated_at: string
}

/** What lists and reads show: names, auth type, scope, owner, timestamps and masked values only. */
export const CredentialView = Schema.Struct({
  id: Ids.schema("cred"),
  connector_id: Ids.schema("ctr"),
  name: Schema.String,
  scope: Scope,
  owner: Owner,
  auth_type: Schema.NullOr(AuthPattern.AuthType),
  values: Schema.Record(Schema.String, Schema.String),
  created_at: Schema.String,
  updated_at: Schema.String
})
export type CredentialView = typeof CredentialView.Type

export const toView = (c: Credential): CredentialView => ({
  id: c.id,
  connector_id: c.connector_id,
  name: c.name,
  scope: c.scope,
  owner: c.owner,
  auth_type: c.auth_type,
  values: Masking.maskRecord(c.values),
  created_at: c.created_at,
  updated_at: c.updated_at
})

/** Values an OAuth token credential holds besides the pattern's fields. */
export const oauthTokenFields = ["access_token", "refresh_token", "expires_at", "token_type", "scope", "id_token"]

type Issue = { readonly path: string; readonly message: string }

/**
 * Check credential values against the connector: the auth type must exist (or be the only one), no unknown
 * field, every required field present and non-empty. Returns the auth type the credential is for.
 */
export const checkValues = (
  connector: Connector,
  input: CredentialInput
): Result.Result<AuthPattern.AuthType | null, ReadonlyArray<Issue>> => {
  const name = input.name ?? "default"
  const given = Object.keys(input.values)
  const present = (field: string) => {
    const v = input.values[field]
    return v !== undefined && Redacted.value(v) !== ""
  }
  const issues: Array<Issue> = []
  if (connector.auth_patterns.length === 0) {
    if (input.auth_type !== undefined) {
      issues.push({ path: "auth_type", message: `connector ${connector.name} has no auth patterns` })
    }
    const allowed = Catalog.isDataConnectorType(connector.kind) ? Catalog.get(connector.kind).auth_fields : []
    for (const field of given) {
      if (!allowed.includes(field)) {
        issues.push({
          path: `values.${field}`,
          message:
            allowed.length === 0
              ? "this connector takes no credential values"
              : `unknown field; expected one of ${allowed.join(", ")}`
        })
      }
    }
    return issues.length === 0 ? Result.succeed(null) : Result.fail(issues)
  }
  const pattern = ConnectorModule.patternFor(connector, input.auth_type)
  if (pattern === undefined) {
    return Result.fail([
      {
        path: "auth_type",
        message:
          input.auth_type === undefined
            ? `connector ${connector.name} has several auth patterns (${connector.auth_patterns.map((p) => p.type).join(", ")}); say which with auth_type`
            : `connector ${connector.name} has no ${input.auth_type} auth pattern`
      }
    ])
  }
  let allowed: ReadonlyArray<AuthPattern.FieldSpec>
  let required: ReadonlyArray<string>
  if (pattern.type === "OAUTH" && name === oauthClientName) {
    allowed = [{ field_name: "client_id" }, { field_name: "client_secret", input_type: "password" }]
    required = ["client_id"]
  } else if (pattern.type === "OAUTH") {
    allowed = [
      ...(pattern.fields ?? []),
      ...(pattern.account_fields ?? []),
      ...oauthTokenFields.map((field_name): AuthPattern.FieldSpec => ({ field_name }))
    ]
    required = (pattern.account_fields ?? []).filter((f) => f.required === true).map((f) => f.field_name)
  } else {
    const fields = [...AuthPattern.credentialFields(pattern), ...(pattern.account_fields ?? [])]
    allowed = fields
    required = fields.filter((f) => AuthPattern.isRequired(pattern, f)).map((f) => f.field_name)
  }
  for (const field of given) {
    if (!allowed.some((f) => f.field_name === field)) {
      issues.push({
        path: `values.${field}`,
        message: `unknown field for ${pattern.type}; expected one of ${allowed.map((f) => f.field_name).join(", ")}`
      })
    }
  }
  for (const field of required) {
    if (!present(field)) issues.push({ path: `values.${field}`, message: `${field} is required for ${pattern.type}` })
  }
  const username = input.values["username"]
  if (pattern.type === "BASIC" && username !== undefined && Redacted.value(username).includes(":")) {
    issues.push({ path: "values.username", message: "a Basic auth username cannot contain ':' (RFC 7617)" })
  }
  return issues.length === 0 ? Result.succeed(pattern.type) : Result.fail(issues)
}

/** One place to look a credential up. */
export interface Lookup {
  readonly scope: Scope
  readonly owner: Owner
  readonly name: string
}

/** The parts of a connection that decide where its credential comes from. */
export interface Binding {
  readonly org: string
  readonly workspace: string
  readonly owner: string
  readonly access_scope: "personal" | "organizational"
  readonly is_service_account: boolean
  readonly credential?: { readonly scope: Scope; readonly name: string } | undefined
}

/**
 * Where to look for a connection's credential, in order, when `principal` uses it:
 * - a personal connection is usable only by its owner, and uses the owner's credentials;
 * - an organizational connection uses the caller's own user credential first, unless it is a service
 *   account, which never uses a user's credential;
 * - then the connection's workspace, then the organization.
 * A credential named on the connection with a scope is the only place looked.
 */
export const resolutionChain = (
  binding: Binding,
  principal: Principal
): Result.Result<ReadonlyArray<Lookup>, Forbidden> => {
  if (principal.org !== binding.org) {
    return Result.fail(new Forbidden({ message: "the connection belongs to another organization" }))
  }
  if (binding.access_scope === "personal" && principal.user !== binding.owner) {
    return Result.fail(
      new Forbidden({
        message: "this personal connection can be used only by its owner",
        details: { owner: binding.owner }
      })
    )
  }
  const name = binding.credential?.name ?? "default"
  const actingUser = binding.access_scope === "personal" ? binding.owner : principal.user
  const who = { org: binding.org, workspace: binding.workspace, user: actingUser }
  if (binding.credential !== undefined) {
    const { scope } = binding.credential
    if (scope === "user" && binding.is_service_account) {
      return Result.fail(new Forbidden({ message: "a service-account connection cannot use a user credential" }))
    }
    return Result.succeed([{ scope, owner: ownerFor(scope, who), name }])
  }
  const scopes: ReadonlyArray<Scope> = binding.is_service_account
    ? ["workspace", "organization"]
    : ["user", "workspace", "organization"]
  return Result.succeed(scopes.map((scope) => ({ scope, owner: ownerFor(scope, who), name })))
}
