/**
 * Typed errors of Switchboard. Every error that crosses a module boundary is a `Schema.TaggedError` with a
 * stable snake_case `code` and the HTTP `status` the API answers with; `toErrorBody` gives the one wire shape
 * `{"error": {"code", "message", "details"}}` used by the REST API, the CLI and the MCP server.
 */
import * as Schema from "effect/Schema"

const fields = {
  message: Schema.String,
  details: Schema.optionalKey(Schema.Unknown)
}

/** The payload failed validation; `details.issues` lists each path and rule. */
export class ValidationFailed extends Schema.TaggedError<ValidationFailed>()("ValidationFailed", fields) {
  readonly code = "validation_failed"
  readonly status = 422
}

/** The request itself is malformed (bad query value, tampered cursor, ...). */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  ...fields,
  reason: Schema.Literals(["invalid_cursor", "invalid_parameter"])
}) {
  get code() {
    return this.reason
  }
  readonly status = 400
}

export class ConnectorNotFound extends Schema.TaggedError<ConnectorNotFound>()("ConnectorNotFound", fields) {
  readonly code = "connector_not_found"
  readonly status = 404
}

export class ConnectorVersionNotFound extends Schema.TaggedError<ConnectorVersionNotFound>()(
  "ConnectorVersionNotFound",
  fields
) {
  readonly code = "connector_version_not_found"
  readonly status = 404
}

export class CredentialNotFound extends Schema.TaggedError<CredentialNotFound>()("CredentialNotFound", fields) {
  readonly code = "credential_not_found"
  readonly status = 404
}

export class ConnectionNotFound extends Schema.TaggedError<ConnectionNotFound>()("ConnectionNotFound", fields) {
  readonly code = "connection_not_found"
  readonly status = 404
}

/** A resource with that unique name already exists. */
export class NameTaken extends Schema.TaggedError<NameTaken>()("NameTaken", fields) {
  readonly code = "name_taken"
  readonly status = 409
}

/** A connector cannot be deleted while connections use it. */
export class ConnectorInUse extends Schema.TaggedError<ConnectorInUse>()("ConnectorInUse", fields) {
  readonly code = "connector_in_use"
  readonly status = 409
}

/** An update lost a race: the connector changed since the version it was based on. */
export class VersionConflict extends Schema.TaggedError<VersionConflict>()("VersionConflict", fields) {
  readonly code = "version_conflict"
  readonly status = 409
}

/** The principal's role does not allow the action. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", fields) {
  readonly code = "forbidden"
  readonly status = 403
}

/** A tool is new or changed since its connection's tools were pinned, and the policy withholds it until approved. */
export class ToolNotApproved extends Schema.TaggedError<ToolNotApproved>()("ToolNotApproved", fields) {
  readonly code = "tool_not_approved"
  readonly status = 409
}

/** No credential could be resolved for a connection, or it lacks a value the auth pattern needs. */
export class CredentialMissing extends Schema.TaggedError<CredentialMissing>()("CredentialMissing", fields) {
  readonly code = "credential_missing"
  readonly status = 422
}

/** A `{{field}}` template names a value that was not provided, or a value is not allowed in its position. */
export class TemplateError extends Schema.TaggedError<TemplateError>()("TemplateError", {
  ...fields,
  reason: Schema.Literals(["template_value_missing", "template_value_invalid", "template_invalid"])
}) {
  get code() {
    return this.reason
  }
  readonly status = 422
}

/** A storage adapter failed (I/O, constraint, corrupt row). The cause is kept, never a secret. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  ...fields,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  readonly code = "store_error"
  readonly status = 500
}

/** Sealing or opening a secret failed: wrong key, tampered or moved ciphertext. */
export class SealError extends Schema.TaggedError<SealError>()("SealError", {
  ...fields,
  reason: Schema.Literals(["open_failed", "seal_failed", "key_mismatch", "key_unavailable", "key_invalid"])
}) {
  get code() {
    return this.reason
  }
  readonly status = 500
}

/** A call to an upstream failed before or instead of a response. */
export class UpstreamError extends Schema.TaggedError<UpstreamError>()("UpstreamError", {
  ...fields,
  reason: Schema.Literals([
    "upstream_unreachable",
    "upstream_timeout",
    "upstream_protocol_error",
    "destination_refused",
    "circuit_open",
    "rate_limited",
    "cassette_miss"
  ])
}) {
  get code() {
    return this.reason
  }
  get status() {
    switch (this.reason) {
      case "upstream_timeout":
        return 504
      case "destination_refused":
        return 403
      case "circuit_open":
        return 503
      case "rate_limited":
        return 429
      case "upstream_unreachable":
      case "upstream_protocol_error":
      // Replay: the cassette standing in for the upstream holds no answer for this request (a gateway failure).
      case "cassette_miss":
        return 502
    }
  }
}

/** An OAuth flow or token operation failed; the reason says which step and why (never a token or secret). */
export class OAuthError extends Schema.TaggedError<OAuthError>()("OAuthError", {
  ...fields,
  reason: Schema.Literals([
    "oauth_not_supported",
    "oauth_client_missing",
    "oauth_state_invalid",
    "oauth_authorization_denied",
    "oauth_token_error",
    "oauth_metadata_invalid",
    "oauth_reauthorization_required",
    "oauth_insufficient_scope"
  ])
}) {
  get code() {
    return this.reason
  }
  get status() {
    switch (this.reason) {
      case "oauth_not_supported":
      case "oauth_state_invalid":
      case "oauth_authorization_denied":
        return 400
      case "oauth_client_missing":
        return 422
      case "oauth_reauthorization_required":
        return 409
      case "oauth_insufficient_scope":
        return 403
      case "oauth_token_error":
      case "oauth_metadata_invalid":
        return 502
    }
  }
}

/** Every error the Switchboard service can fail with. */
export type SwitchboardError =
  | ValidationFailed
  | InvalidRequest
  | ConnectorNotFound
  | ConnectorVersionNotFound
  | CredentialNotFound
  | ConnectionNotFound
  | NameTaken
  | ConnectorInUse
  | VersionConflict
  | Forbidden
  | CredentialMissing
  | TemplateError
  | StoreError
  | SealError
  | UpstreamError
  | OAuthError
  | ToolNotApproved

export const SwitchboardError = Schema.Union([
  ValidationFailed,
  InvalidRequest,
  ConnectorNotFound,
  ConnectorVersionNotFound,
  CredentialNotFound,
  ConnectionNotFound,
  NameTaken,
  ConnectorInUse,
  VersionConflict,
  Forbidden,
  CredentialMissing,
  TemplateError,
  StoreError,
  SealError,
  UpstreamError,
  OAuthError,
  ToolNotApproved
])

/** The one JSON error shape of every way in. */
export const ErrorBody = Schema.Struct({
  error: Schema.Struct({
    code: Schema.String,
    message: Schema.String,
    details: Schema.optionalKey(Schema.Unknown)
  })
})
export type ErrorBody = typeof ErrorBody.Type

/** Map a typed error to the wire shape. Causes are never included: they may hold foreign data. */
export const toErrorBody = (error: SwitchboardError): ErrorBody => ({
  error: {
    code: error.code,
    message: error.message,
    ...(error.details === undefined ? {} : { details: error.details })
  }
})
