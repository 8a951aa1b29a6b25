/**
 * Connections bind a connector (optionally a pinned version) to credentials, with write-only `security`
 * and `headers`, pre-filled parameters, server overrides, personal or organizational access and service
 * accounts (the xpander.ai Connect shape). Secrets live apart from the connection record and are never
 * returned: a connection shows only that it has security and which header names it adds.
 */
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as AuthPattern from "./AuthPattern.ts"
import * as Credential from "./Credential.ts"
import * as Ids from "./Ids.ts"

export const AccessScope = Schema.Literals(["personal", "organizational"])
export type AccessScope = typeof AccessScope.Type

export const Status = Schema.Literals(["pending_auth", "active", "error", "disabled"])
export type Status = typeof Status.Type

/** A human-readable, per-organization unique connection name ("Production Slack"). */
export const Name = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$/u, {
    message: "a connection name is 1-100 letters, digits, spaces, . _ or -, starting with a letter or digit"
  })
)

const StringMap = Schema.Record(Schema.String, Schema.String)

/** Values applied to every call through the connection. */
export const Parameters = Schema.Struct({
  path: Schema.optionalKey(StringMap),
  query: Schema.optionalKey(StringMap),
  header: Schema.optionalKey(Schema.Record(AuthPattern.HeaderName, Schema.String))
})
export type Parameters = typeof Parameters.Type

export const Server = Schema.Struct({
  url: AuthPattern.HttpUrl,
  description: Schema.optionalKey(Schema.String)
})
export type Server = typeof Server.Type

/** Per-connection timeouts of upstream calls, in milliseconds (defaults: 10 s to connect, 60 s in total). */
export const Timeouts = Schema.Struct({
  connect_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 600_000 }))),
  total_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 86_400_000 })))
})
export type Timeouts = typeof Timeouts.Type

/** Per-connection token-bucket rate limit of upstream calls (defaults: 10 requests per second, bursts of 20). */
export const RateLimit = Schema.Struct({
  requests_per_second: Schema.optionalKey(
    Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(10_000))
  ),
  burst: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 10_000 })))
})
export type RateLimit = typeof RateLimit.Type

const SecretHeaders = Schema.Record(
  AuthPattern.HeaderName,
  Schema.RedactedFromValue(Schema.String.check(Schema.isMaxLength(8192)), { disallowEncode: true })
)

const CreateFields = Schema.Struct({
  name: Name,
  connector_version: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  auth_type: Schema.optionalKey(AuthPattern.AuthType),
  credential: Schema.optionalKey(Schema.Struct({ scope: Credential.Scope, name: Credential.Name })),
  security: Schema.optionalKey(Credential.Values),
  parameters: Schema.optionalKey(Parameters),
  headers: Schema.optionalKey(SecretHeaders),
  servers: Schema.optionalKey(Schema.Array(Server).check(Schema.isMaxLength(10))),
  access_scope: Schema.optionalKey(AccessScope),
  is_service_account: Schema.optionalKey(Schema.Boolean),
  allow_private_network: Schema.optionalKey(Schema.Boolean),
  timeouts: Schema.optionalKey(Timeouts),
  rate_limit: Schema.optionalKey(RateLimit)
})

/** `POST /v1/connectors/{id_or_name}/connections`. */
export const CreateConnection = CreateFields.check(
  Schema.makeFilter((c) => {
    const issues: Array<Schema.FilterIssue> = []
    if (c.is_service_account === true && (c.access_scope ?? "personal") !== "organizational") {
      issues.push({ path: ["is_service_account"], issue: "service accounts need access_scope organizational" })
    }
    if (c.credential !== undefined && c.security !== undefined) {
      issues.push({ path: ["security"], issue: "give either credential or security, not both" })
    }
    if (c.is_service_account === true && c.credential?.scope === "user") {
      issues.push({ path: ["credential", "scope"], issue: "a service account cannot use a user credential" })
    }
    return issues
  })
)
export type CreateConnection = typeof CreateConnection.Type

/** A connection as stored and returned. */
export const Connection = Schema.Struct({
  id: Ids.schema("conn"),
  name: Name,
  connector_id: Ids.schema("ctr"),
  connector_version: Schema.NullOr(Schema.Int),
  org: Schema.String,
  workspace: Schema.String,
  owner: Schema.String,
  access_scope: AccessScope,
  is_service_account: Schema.Boolean,
  auth_type: Schema.NullOr(AuthPattern.AuthType),
  credential: Schema.NullOr(Schema.Struct({ scope: Credential.Scope, name: Schema.String })),
  parameters: Parameters,
  servers: Schema.Array(Server),
  allow_private_network: Schema.Boolean,
  timeouts: Schema.optionalKey(Timeouts),
  rate_limit: Schema.optionalKey(RateLimit),
  has_security: Schema.Boolean,
  header_names: Schema.Array(Schema.String),
  status: Status,
  account_label: Schema.NullOr(Schema.String),
  last_tested_at: Schema.NullOr(Schema.String),
  last_error: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  updated_at: Schema.String
})
export type Connection = typeof Connection.Type

/** The write-only parts of a connection, kept sealed apart from it. */
export interface Secrets {
  readonly security: Readonly<Record<string, Redacted.Redacted<string>>>
  readonly headers: Readonly<Record<string, Redacted.Redacted<string>>>
}

export const noSecrets: Secrets = { security: {}, headers: {} }

/** The credential-binding view of a connection, for `Credential.resolutionChain`. */
export const binding = (c: Connection): Credential.Binding => ({
  org: c.org,
  workspace: c.workspace,
  owner: c.owner,
  access_scope: c.access_scope,
  is_service_account: c.is_service_account,
  credential: c.credential ?? undefined
})
