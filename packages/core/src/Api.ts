/**
 * The REST API of the daemon, defined once as an `HttpApi`: the daemon serves it on its Unix socket, the typed
 * client (`@switchboard/daemon/client`) is derived from it, and `/openapi.json` is generated from it.
 *
 * Request bodies are validated exactly once, by the `Switchboard` service, which decodes `unknown` input and
 * reports every broken rule with its path. So a body is declared here as `Body(schema)`: any JSON value at run
 * time (only the JSON syntax is checked at the edge), typed as the encoded form of the domain schema for the
 * typed client, and documented with that schema in OpenAPI. The handler hands the raw JSON to the service;
 * nothing is decoded twice and nothing secret is ever re-encoded. Query strings and path segments are text, so
 * they are decoded here with the service's own query schemas (turning `limit=20` into a number); a bad one is
 * reported in the same `validation_failed` shape.
 *
 * Every error answers with one shape, `{"error": {"code", "message", "details"}}`, and its own HTTP status: one
 * error class per status below, all declared on every endpoint through the `Errors` middleware.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Schema from "effect/Schema"
import * as AuditLog from "./AuditLog.ts"
import * as AuthMethods from "./AuthMethods.ts"
import * as Connection from "./Connection.ts"
import * as Connector from "./Connector.ts"
import * as Credential from "./Credential.ts"
import * as Errors from "./Errors.ts"
import * as Explain from "./Explain.ts"
import * as Switchboard from "./Switchboard.ts"
import * as Testing from "./Testing.ts"
import * as ToolPins from "./ToolPins.ts"

/** The API version reported by `/healthz` and `/openapi.json`. */
export const version = "0.1.0"

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** The `error` member of every error response. */
export const ErrorDetail = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
  details: Schema.optionalKey(Schema.Json)
})
export type ErrorDetail = typeof ErrorDetail.Type

const errorFields = { error: ErrorDetail }

// `Schema.Error`, not `TaggedError`: the body on the wire is exactly `{"error": …}`, without a `_tag`. The class
// field gives `catchTag` a tag; the client picks the class by HTTP status.

/** 400: `invalid_cursor`, `invalid_parameter` (a tampered cursor, a bad trusted header). */
export class BadRequest extends Schema.Error<BadRequest>("BadRequest")(errorFields, { httpApiStatus: 400 }) {
  readonly _tag = "BadRequest"
}
/** 403: `forbidden` (the role does not allow it), `destination_refused`. */
export class Forbidden extends Schema.Error<Forbidden>("Forbidden")(errorFields, { httpApiStatus: 403 }) {
  readonly _tag = "Forbidden"
}
/** 404: `*_not_found`, and `route_not_found` for a path the API does not have. */
export class NotFound extends Schema.Error<NotFound>("NotFound")(errorFields, { httpApiStatus: 404 }) {
  readonly _tag = "NotFound"
}
/** 409: `name_taken`, `connector_in_use`, `version_conflict`, `tool_not_approved`. */
export class Conflict extends Schema.Error<Conflict>("Conflict")(errorFields, { httpApiStatus: 409 }) {
  readonly _tag = "Conflict"
}
/** 422: `validation_failed` (with `details.issues`), `credential_missing`, `template_*`. */
export class Unprocessable extends Schema.Error<Unprocessable>("Unprocessable")(errorFields, {
  httpApiStatus: 422
}) {
  readonly _tag = "Unprocessable"
}
/** 429: `rate_limited`. */
export class TooManyRequests extends Schema.Error<TooManyRequests>("TooManyRequests")(errorFields, {
  httpApiStatus: 429
}) {
  readonly _tag = "TooManyRequests"
}
/** 500: `store_error`, the seal errors (`open_failed`, `key_mismatch`, …), `internal_error`. */
export class InternalError extends Schema.Error<InternalError>("InternalError")(errorFields, {
  httpApiStatus: 500
}) {
  readonly _tag = "InternalError"
}
/** 502: `upstream_unreachable`, `upstream_protocol_error`. */
export class BadGateway extends Schema.Error<BadGateway>("BadGateway")(errorFields, { httpApiStatus: 502 }) {
  readonly _tag = "BadGateway"
}
/** 503: `circuit_open`. */
export class ServiceUnavailable extends Schema.Error<ServiceUnavailable>("ServiceUnavailable")(errorFields, {
  httpApiStatus: 503
}) {
  readonly _tag = "ServiceUnavailable"
}
/** 504: `upstream_timeout`. */
export class GatewayTimeout extends Schema.Error<GatewayTimeout>("GatewayTimeout")(errorFields, {
  httpApiStatus: 504
}) {
  readonly _tag = "GatewayTimeout"
}

/** Every error response of the API. */
export type ApiError =
  | BadRequest
  | Forbidden
  | NotFound
  | Conflict
  | Unprocessable
  | TooManyRequests
  | InternalError
  | BadGateway
  | ServiceUnavailable
  | GatewayTimeout

/** The error classes, in status order. */
export const errorClasses = [
  BadRequest,
  Forbidden,
  NotFound,
  Conflict,
  Unprocessable,
  TooManyRequests,
  InternalError,
  BadGateway,
  ServiceUnavailable,
  GatewayTimeout
] as const

const classByStatus: ReadonlyMap<number, new (props: { readonly error: ErrorDetail }) => ApiError> = new Map<
  number,
  new (props: {
    readonly error: ErrorDetail
  }) => ApiError
>([
  [400, BadRequest],
  [403, Forbidden],
  [404, NotFound],
  [409, Conflict],
  [422, Unprocessable],
  [429, TooManyRequests],
  [500, InternalError],
  [502, BadGateway],
  [503, ServiceUnavailable],
  [504, GatewayTimeout]
])

/** The HTTP status of an API error. */
export const statusOf = (error: ApiError): number => {
  for (const [status, Class] of classByStatus) if (error instanceof Class) return status
  return 500
}

// Details are JSON on the wire; a round trip drops what JSON cannot carry (undefined members).
const jsonDetails = (details: unknown): Schema.Json | undefined =>
  details === undefined ? undefined : (JSON.parse(JSON.stringify(details) ?? "null") as Schema.Json)

/** Build the API error of a given status (unknown statuses become 500) and code. */
export const makeError = (status: number, code: string, message: string, details?: unknown): ApiError => {
  const Class = classByStatus.get(status) ?? InternalError
  const json = jsonDetails(details)
  return new Class({ error: json === undefined ? { code, message } : { code, message, details: json } })
}

/** The API error of a typed Switchboard error: its own status, code, message and details. Causes never travel. */
export const fromSwitchboardError = (error: Errors.SwitchboardError): ApiError => {
  const body = Errors.toErrorBody(error)
  return makeError(error.status, body.error.code, body.error.message, body.error.details)
}

// The reasons each error class takes, from its own schema, so a reason added there maps back here too.
const isInvalidRequestReason = Schema.is(Errors.InvalidRequest.fields.reason)
const isTemplateReason = Schema.is(Errors.TemplateError.fields.reason)
const isSealReason = Schema.is(Errors.SealError.fields.reason)
const isUpstreamReason = Schema.is(Errors.UpstreamError.fields.reason)
const isOAuthReason = Schema.is(Errors.OAuthError.fields.reason)

/**
 * The typed Switchboard error an error body stands for, by its code: the inverse of `fromSwitchboardError`, so
 * a client of the daemon fails with the same error classes as the embedded service. A code this version does
 * not know is mapped by status, keeping the message.
 */
export const toSwitchboardError = (status: number, body: ErrorDetail): Errors.SwitchboardError => {
  const props = {
    message: body.message,
    ...(body.details === undefined ? {} : { details: body.details as unknown })
  }
  const code = body.code
  switch (code) {
    case "validation_failed":
      return new Errors.ValidationFailed(props)
    case "connector_not_found":
      return new Errors.ConnectorNotFound(props)
    case "connector_version_not_found":
      return new Errors.ConnectorVersionNotFound(props)
    case "credential_not_found":
      return new Errors.CredentialNotFound(props)
    case "connection_not_found":
      return new Errors.ConnectionNotFound(props)
    case "name_taken":
      return new Errors.NameTaken(props)
    case "connector_in_use":
      return new Errors.ConnectorInUse(props)
    case "version_conflict":
      return new Errors.VersionConflict(props)
    case "forbidden":
      return new Errors.Forbidden(props)
    case "credential_missing":
      return new Errors.CredentialMissing(props)
    case "store_error":
      return new Errors.StoreError(props)
    case "tool_not_approved":
      return new Errors.ToolNotApproved(props)
  }
  if (isInvalidRequestReason(code)) return new Errors.InvalidRequest({ ...props, reason: code })
  if (isTemplateReason(code)) return new Errors.TemplateError({ ...props, reason: code })
  if (isSealReason(code)) return new Errors.SealError({ ...props, reason: code })
  if (isUpstreamReason(code)) return new Errors.UpstreamError({ ...props, reason: code })
  if (isOAuthReason(code)) return new Errors.OAuthError({ ...props, reason: code })
  const withCode = {
    message: body.message,
    details: { code, ...(body.details === undefined ? {} : { details: body.details }) }
  }
  if (status === 400) return new Errors.InvalidRequest({ ...withCode, reason: "invalid_parameter" })
  if (status === 403) return new Errors.Forbidden(withCode)
  if (status === 422) return new Errors.ValidationFailed(withCode)
  if (status === 429) return new Errors.UpstreamError({ ...withCode, reason: "rate_limited" })
  if (status === 502) return new Errors.UpstreamError({ ...withCode, reason: "upstream_unreachable" })
  if (status === 503) return new Errors.UpstreamError({ ...withCode, reason: "circuit_open" })
  if (status === 504) return new Errors.UpstreamError({ ...withCode, reason: "upstream_timeout" })
  return new Errors.StoreError(withCode)
}

/** Declares every error response on the endpoints it covers; the daemon maps request decode failures with it. */
export class RequestErrors extends HttpApiMiddleware.Service<RequestErrors>()("@switchboard/core/Api/RequestErrors", {
  error: errorClasses
}) {}

/**
 * Decides who is calling and provides `Principal.CurrentPrincipal` to the handler: the daemon's local user, or
 * the `X-Switchboard-Org`, `-Workspace`, `-User` and `-Role` headers when the daemon trusts them.
 */
export class Caller extends HttpApiMiddleware.Service<Caller>()("@switchboard/core/Api/Caller", {
  error: BadRequest
}) {}

/** The trusted principal headers (lower-cased, as servers see them). */
export const principalHeaders = {
  org: "x-switchboard-org",
  workspace: "x-switchboard-workspace",
  user: "x-switchboard-user",
  role: "x-switchboard-role"
} as const

// ---------------------------------------------------------------------------------------------------------------
// Bodies

/**
 * A JSON request body handed to the service undecoded. At run time it is any JSON value; its type is the
 * encoded form of `schema` (what a client sends), and OpenAPI documents it with `schema`'s JSON Schema.
 */
export const Body = <S extends Schema.Top>(schema: S, description: string): Schema.Codec<S["Encoded"]> =>
  Schema.Json.check(
    Schema.makeFilter(() => undefined, {
      description,
      representation: {
        id: "@switchboard/core/Api/Body",
        payload: description,
        schemas: [Schema.toEncoded(schema).ast]
      },
      toJsonSchema: (input) => ({ ...input.schemas[0], description })
    })
  )

export const CreateConnectorBody = Body(
  Connector.CreateConnector,
  "A connector: the Scalekit custom-connector payload plus name, kind, config, command, visibility, metadata"
)
export const UpdateConnectorBody = Body(
  Connector.UpdateConnector,
  "Any subset of the create payload; the merged connector is validated as a whole and becomes a new version"
)
export const CredentialBody = Body(
  Credential.CredentialInput,
  "Named credential values; auth_type may be omitted when the connector has one auth pattern"
)
export const CreateConnectionBody = Body(
  Connection.CreateConnection,
  "A connection; security and headers are write-only and never returned"
)

// ---------------------------------------------------------------------------------------------------------------
// Responses

export const ConnectorSchema = Connector.Connector.annotate({ identifier: "Connector" })
export const ConnectorPage = Switchboard.Page(ConnectorSchema).annotate({ identifier: "ConnectorPage" })
export const CredentialView = Credential.CredentialView.annotate({ identifier: "CredentialView" })
export const CredentialList = Schema.Struct({ data: Schema.Array(CredentialView) }).annotate({
  identifier: "CredentialList"
})
export const ConnectionSchema = Connection.Connection.annotate({ identifier: "Connection" })
export const ConnectionPage = Switchboard.Page(ConnectionSchema).annotate({ identifier: "ConnectionPage" })

/**
 * What creating an OAuth connection that has no tokens yet adds to the connection (the seed's `oauth2_required`
 * answer, nested so the connection's own `status` stays `pending_auth`): the authorization URL to open (null when
 * this server cannot make one: no browser listener, or the connector is not ready, which `message` says), when its
 * single-use state expires, the connector page (null until there is one), and the CLI command that authorizes it.
 */
export const OAuthRequired = Schema.Struct({
  status: Schema.Literal("oauth2_required"),
  auth_url: Schema.NullOr(Schema.String),
  state_expires_at: Schema.NullOr(Schema.String),
  connector_page_url: Schema.NullOr(Schema.String),
  login_command: Schema.String,
  message: Schema.String
}).annotate({ identifier: "OAuthRequired" })
export type OAuthRequired = typeof OAuthRequired.Type

/** A created connection: the connection, plus `oauth` when it still needs an OAuth authorization. */
export const CreatedConnection = Schema.Struct({
  ...Connection.Connection.fields,
  oauth: Schema.optionalKey(OAuthRequired)
}).annotate({ identifier: "CreatedConnection" })
export type CreatedConnection = typeof CreatedConnection.Type

const isOAuthRequired = Schema.is(OAuthRequired)

/** The `oauth` member of a created connection (through the daemon, the remote service passes it on), if any. */
export const oauthRequiredOf = (connection: Connection.Connection): OAuthRequired | undefined => {
  const oauth: unknown = (connection as { readonly oauth?: unknown }).oauth
  return isOAuthRequired(oauth) ? oauth : undefined
}
export const AuditRecord = AuditLog.AuditRecord.annotate({ identifier: "AuditRecord" })
export const AuditPage = Switchboard.Page(AuditRecord).annotate({ identifier: "AuditPage" })
export const AuthMethodsSchema = AuthMethods.AuthMethods.annotate({ identifier: "AuthMethods" })

export const Health = Schema.Struct({
  ok: Schema.Boolean,
  version: Schema.String,
  pid: Schema.Int,
  /** Where the browser-facing listener takes OAuth callbacks (absent when the server has none). */
  oauth_callback_url: Schema.optionalKey(Schema.String)
}).annotate({ identifier: "Health" })
export type Health = typeof Health.Type

// ---------------------------------------------------------------------------------------------------------------
// Groups

const IdOrName = { id_or_name: Schema.String }
const Version = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

export class ConnectorsGroup extends HttpApiGroup.make("connectors")
  .add(
    HttpApiEndpoint.get("list", "/v1/connectors", {
      query: Switchboard.ListConnectorsQuery,
      success: ConnectorPage
    }).annotate(OpenApi.Summary, "List connectors (keyset pagination, filters kind and name_prefix)"),
    HttpApiEndpoint.post("create", "/v1/connectors", {
      payload: CreateConnectorBody,
      success: ConnectorSchema.pipe(HttpApiSchema.status(201))
    }).annotate(OpenApi.Summary, "Create a connector"),
    HttpApiEndpoint.get("get", "/v1/connectors/:id_or_name", {
      params: IdOrName,
      success: ConnectorSchema
    }).annotate(OpenApi.Summary, "Get a connector by id or name"),
    HttpApiEndpoint.patch("update", "/v1/connectors/:id", {
      params: { id: Schema.String },
      payload: UpdateConnectorBody,
      success: ConnectorSchema
    }).annotate(OpenApi.Summary, "Update a connector (makes a new version)"),
    HttpApiEndpoint.delete("remove", "/v1/connectors/:id", {
      params: { id: Schema.String },
      success: HttpApiSchema.NoContent
    }).annotate(OpenApi.Summary, "Delete a connector (409 connector_in_use while connections use it)"),
    HttpApiEndpoint.get("authenticationMethods", "/v1/connectors/:id_or_name/authentication_methods", {
      params: IdOrName,
      success: AuthMethodsSchema
    }).annotate(OpenApi.Summary, "JSON Schema and a sample input of the credential body, per auth pattern"),
    HttpApiEndpoint.get("getVersion", "/v1/connectors/:id_or_name/versions/:version", {
      params: { ...IdOrName, version: Version },
      success: ConnectorSchema
    }).annotate(OpenApi.Summary, "Get one immutable version of a connector")
  )
  .annotate(OpenApi.Description, "Connector definitions: REST APIs, MCP servers and catalog data types") {}

export class CredentialsGroup extends HttpApiGroup.make("credentials")
  .add(
    HttpApiEndpoint.get("list", "/v1/connectors/:id_or_name/:scope/credentials", {
      params: { ...IdOrName, scope: Credential.Scope },
      success: CredentialList
    }).annotate(OpenApi.Summary, "List the credentials of a connector at a scope (values masked)"),
    HttpApiEndpoint.post("set", "/v1/connectors/:id_or_name/:scope/credentials", {
      params: { ...IdOrName, scope: Credential.Scope },
      payload: CredentialBody,
      success: CredentialView
    }).annotate(OpenApi.Summary, "Create or replace a credential by name"),
    HttpApiEndpoint.delete("remove", "/v1/connectors/:id_or_name/:scope/credentials/:name", {
      params: { ...IdOrName, scope: Credential.Scope, name: Schema.String },
      success: HttpApiSchema.NoContent
    }).annotate(OpenApi.Summary, "Delete a credential")
  )
  .annotate(
    OpenApi.Description,
    "Credentials per connector at organization, workspace or user scope; secrets are never returned"
  ) {}

export class ConnectionsGroup extends HttpApiGroup.make("connections")
  .add(
    HttpApiEndpoint.post("create", "/v1/connectors/:id_or_name/connections", {
      params: IdOrName,
      payload: CreateConnectionBody,
      success: CreatedConnection.pipe(HttpApiSchema.status(201))
    })
      .annotate(OpenApi.Summary, "Connect: bind a connector to credentials")
      .annotate(
        OpenApi.Description,
        "An OAuth connection without tokens is created `pending_auth` and the answer adds " +
          '`oauth`: {"status": "oauth2_required", "auth_url", "state_expires_at", "connector_page_url", ' +
          '"login_command", "message"}. Open `auth_url` in a browser (the daemon\'s loopback listener takes the ' +
          "callback); `auth_url` is null when this server cannot make one (no browser listener, or the connector " +
          "lacks its OAuth app credential), and `message` says what to do, e.g. run `login_command`. " +
          "`connector_page_url` is null until the connector page exists. Other connections answer without `oauth`."
      ),
    HttpApiEndpoint.get("list", "/v1/connections", {
      query: Switchboard.ListConnectionsQuery,
      success: ConnectionPage
    }).annotate(OpenApi.Summary, "List connections (filters connector, status, name_prefix)"),
    HttpApiEndpoint.get("get", "/v1/connections/:id", {
      params: { id: Schema.String },
      success: ConnectionSchema
    }).annotate(OpenApi.Summary, "Get a connection by id or name"),
    HttpApiEndpoint.delete("remove", "/v1/connections/:id", {
      params: { id: Schema.String },
      success: HttpApiSchema.NoContent
    }).annotate(OpenApi.Summary, "Delete a connection")
  )
  .annotate(OpenApi.Description, "Connections bind a connector to credentials") {}

/** A tested connection: the connection, its type, its credential values masked, and what the probe found. */
export const TestedConnectionSchema = Testing.TestedConnection.annotate({ identifier: "TestedConnection" })

/** The seed-compatible test request: `{"id": …}`, a connection id (or name). */
export const TestRequest = Schema.Struct({ id: Schema.String })
export const TestRequestBody = Body(TestRequest, "The connection to test: its id (or name)")

/**
 * Testing connections: `POST /v1/connections/{id}/test`, and the seed-compatible `POST /v1/connectors/test` with
 * `{"id": …}`. A failed probe is still a 200 (the connection's status says `error`); 429 `rate_limited` and 503
 * `circuit_open` carry `Retry-After`. The HTTP proxy (`ANY /v1/connections/{id}/proxy/{path…}`) streams both ways,
 * so it is a raw router route next to the API in the daemon rather than an endpoint here.
 */
export class CallsGroup extends HttpApiGroup.make("calls")
  .add(
    HttpApiEndpoint.post("test", "/v1/connections/:id/test", {
      params: { id: Schema.String },
      success: TestedConnectionSchema
    }).annotate(
      OpenApi.Summary,
      "Test a connection with a real probe; updates its status, last_tested_at and last_error"
    ),
    HttpApiEndpoint.post("testById", "/v1/connectors/test", {
      payload: TestRequestBody,
      success: TestedConnectionSchema
    }).annotate(OpenApi.Summary, 'Test a connection given as {"id": …} (the KaireonAI-compatible form)')
  )
  .annotate(OpenApi.Description, "Testing connections and calling upstreams through them") {}

/**
 * Set on every answer of the HTTP proxy (`ANY /v1/connections/{id}/proxy/{path…}`) that is the upstream's own, whatever
 * its status; the daemon's own errors on that route come without it, in the one error shape.
 */
export const upstreamHeader = "x-switchboard-upstream"

// Tools keep the MCP protocol's own shapes (`inputSchema`, `structuredContent`, `isError`), like the Alloy shape of
// `authentication_methods`: clients hand them to agent frameworks unchanged.

const JsonObject = Schema.Record(Schema.String, Schema.Unknown)

/**
 * A tool as its MCP server describes it (JSON Schemas passed through verbatim): the very fields `ToolPins` pins,
 * so its `Definition` is this shape.
 */
export const ToolSchema = ToolPins.Definition.annotate({ identifier: "Tool" })
export type ToolSchema = typeof ToolSchema.Type

/** The tools of one connection, and which connection that was. */
export const ToolList = Schema.Struct({ connection: Schema.String, data: Schema.Array(ToolSchema) }).annotate({
  identifier: "ToolList"
})

/** A tool result; one with `isError` is still a result (answered 200). */
export const ToolResult = Schema.Struct({
  content: Schema.Array(JsonObject),
  structuredContent: Schema.optionalKey(JsonObject),
  isError: Schema.optionalKey(Schema.Boolean)
}).annotate({ identifier: "ToolResult" })
export type ToolResult = typeof ToolResult.Type

const Millis = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 86_400_000 }))

/** What a tool call takes: its arguments, and optionally the connection and timeouts. */
export const ToolCallInput = Schema.Struct({
  arguments: Schema.optionalKey(JsonObject),
  connection: Schema.optionalKey(Schema.String),
  /** Time without an answer or progress before the call fails (60 s by default). */
  timeout_ms: Schema.optionalKey(Millis),
  /** A limit on the whole call that progress does not extend. */
  max_total_timeout_ms: Schema.optionalKey(Millis)
})
export type ToolCallInput = typeof ToolCallInput.Encoded

export const ToolCallBody = Body(
  ToolCallInput,
  "The tool's arguments; connection (id or name) when the caller has several connections to the connector"
)

/** The media type of a streamed tool call: one JSON object per line (`ToolCallEvent`). */
export const ndjson = "application/x-ndjson"

/** One line of a streamed tool call: a progress notification, then the result or the error (with its status). */
export const ToolCallEvent = Schema.Union([
  Schema.Struct({
    progress: Schema.Struct({
      progress: Schema.Number,
      total: Schema.optionalKey(Schema.Number),
      message: Schema.optionalKey(Schema.String)
    })
  }),
  Schema.Struct({ result: ToolResult }),
  Schema.Struct({ error: ErrorDetail, status: Schema.Int })
])
export type ToolCallEvent = typeof ToolCallEvent.Type

/**
 * The tools of MCP connectors. The connection is the `connection` query parameter (or body member), else the
 * caller's only connection to the connector; with none or several, 422 `connection_required` lists the candidates.
 */
export class ToolsGroup extends HttpApiGroup.make("tools")
  .add(
    HttpApiEndpoint.get("list", "/v1/connectors/:id_or_name/tools", {
      params: IdOrName,
      query: { connection: Schema.optionalKey(Schema.String) },
      success: ToolList
    }).annotate(OpenApi.Summary, "List the tools of a connection to an MCP connector"),
    HttpApiEndpoint.post("call", "/v1/connectors/:id_or_name/tools/:tool/call", {
      params: { ...IdOrName, tool: Schema.String },
      payload: ToolCallBody,
      success: ToolResult
    })
      .annotate(OpenApi.Summary, "Call a tool (arguments checked against its input schema first)")
      .annotate(
        OpenApi.Description,
        `With \`Accept: ${ndjson}\` the answer streams one JSON object per line: {"progress": …} per progress ` +
          'notification, then {"result": …} or {"error": …, "status": …}. Closing the connection cancels the call.'
      )
  )
  .annotate(OpenApi.Description, "The tools of MCP connectors") {}

export const ApproveToolsBody = Body(
  ToolPins.ApproveInput,
  "Approve one tool (`tool`), or without it the whole current tool list, as the connection's new pin"
)

/**
 * Tool-manifest pinning (see `ToolPins`): a connection's pinned tools against what its MCP server offers now, with
 * the diff (descriptions in full), and approving the current tools as the new pin.
 */
export class ToolPinsGroup extends HttpApiGroup.make("toolPins")
  .add(
    HttpApiEndpoint.get("show", "/v1/connections/:id/tools/pins", {
      params: { id: Schema.String },
      success: ToolPins.PinsView
    }).annotate(OpenApi.Summary, "The pinned tool manifest of a connection and how the server's tools differ now"),
    HttpApiEndpoint.post("approve", "/v1/connections/:id/tools/approve", {
      params: { id: Schema.String },
      payload: ApproveToolsBody,
      success: ToolPins.PinsView
    }).annotate(OpenApi.Summary, "Approve the current tools (or one, with `tool`) as the connection's pin")
  )
  .annotate(
    OpenApi.Description,
    "Tool-manifest pinning against tool poisoning: changed or new upstream tools are reported, and withheld " +
      "(409 tool_not_approved) under the connector's `tool_pinning: block` metadata until approved"
  ) {}

/** `GET …/auth_url`: the authorization URL to open, and when its single-use state expires. */
export const AuthUrl = Schema.Struct({ url: Schema.String, state_expires_at: Schema.String }).annotate({
  identifier: "AuthUrl"
})

/**
 * OAuth: `GET /v1/connectors/{id_or_name}/auth_url` here; the browser-facing `GET /v1/oauth/callback` is served on
 * the daemon's loopback listener.
 */
export class OAuthGroup extends HttpApiGroup.make("oauth")
  .add(
    HttpApiEndpoint.get("authUrl", "/v1/connectors/:id_or_name/auth_url", {
      params: IdOrName,
      query: {
        connection: Schema.optionalKey(Schema.String),
        /** Space-separated scopes to ask for besides the required ones. */
        scopes: Schema.optionalKey(Schema.String),
        redirect_uri: Schema.optionalKey(Schema.String)
      },
      success: AuthUrl
    }).annotate(
      OpenApi.Summary,
      "The OAuth authorization URL (PKCE S256, single-use state valid 10 minutes) for a connection or the caller"
    )
  )
  .annotate(OpenApi.Description, "OAuth authorization of connections") {}

export class AuditGroup extends HttpApiGroup.make("audit")
  .add(
    HttpApiEndpoint.get("list", "/v1/audit", {
      query: Switchboard.ListAuditQuery,
      success: AuditPage
    }).annotate(OpenApi.Summary, "The audit log, newest first (admins only)")
  )
  .annotate(OpenApi.Description, "What was done, by whom, to what, with what outcome; never secrets") {}

/** Explain: the dry run of a call through a connection (nothing is sent). */
export class ExplainGroup extends HttpApiGroup.make("explain")
  .add(
    HttpApiEndpoint.get("explain", "/v1/connections/:id/explain", {
      params: { id: Schema.String },
      query: Explain.ExplainQuery,
      success: Explain.Explanation.annotate({ identifier: "Explanation" })
    }).annotate(OpenApi.Summary, "Explain a call: credential chosen and why, URL, masked headers, policy, SSRF")
  )
  .annotate(OpenApi.Description, "A dry run of what a call would send; never sends anything, never shows secrets") {}

/** The media type of the event stream (`GET /v1/events`): Server-Sent Events. */
export const eventStream = "text/event-stream"

/** The data of a `tools_changed` event: the MCP connection whose server announced a new tool list. */
export const ToolsChanged = Schema.Struct({ connection: Schema.String }).annotate({ identifier: "ToolsChanged" })
export type ToolsChanged = typeof ToolsChanged.Type

/** The event name of an upstream MCP server's `notifications/tools/list_changed` on the event stream. */
export const toolsChangedEvent = "tools_changed"

/** One event of the stream as sent: `event: tools_changed` with its data as JSON. */
export const DaemonEvent = Schema.Struct({
  event: Schema.Literal(toolsChangedEvent),
  data: Schema.fromJsonString(ToolsChanged)
})

/**
 * Events of the daemon, as Server-Sent Events for as long as the client stays: `tools_changed` when an upstream MCP
 * server announces a new tool list (so `switchboard mcp --via daemon` can pass it on), only for connections the
 * caller may read; a `: keep-alive` comment now and then. The handler answers with the raw stream (comments are not
 * events), the schema here describes its events.
 */
export class EventsGroup extends HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("stream", "/v1/events", {
      success: HttpApiSchema.StreamSse({ contentType: eventStream, events: DaemonEvent })
    })
      .annotate(OpenApi.Summary, "Stream the daemon's events (Server-Sent Events)")
      .annotate(
        OpenApi.Description,
        `\`event: ${toolsChangedEvent}\` with \`data: {"connection": id}\` when an upstream MCP server announces a new ` +
          "tool list (connections the caller may read only); `: keep-alive` comments in between."
      )
  )
  .annotate(OpenApi.Description, "Events of the daemon, streamed") {}

/** `/healthz` (the client calls it as `client.health()`); `/openapi.json` is served by the daemon. */
export class SystemGroup extends HttpApiGroup.make("system", { topLevel: true }).add(
  HttpApiEndpoint.get("health", "/healthz", { success: Health }).annotate(OpenApi.Summary, "Liveness")
) {}

/** The whole API. New groups go into the `add` call (before the middleware, which covers the groups added before it). */
export class Api extends HttpApi.make("switchboard")
  .add(
    ConnectorsGroup,
    CredentialsGroup,
    ConnectionsGroup,
    CallsGroup,
    ToolsGroup,
    ToolPinsGroup,
    OAuthGroup,
    AuditGroup,
    ExplainGroup,
    EventsGroup,
    SystemGroup
  )
  .middleware(Caller)
  .middleware(RequestErrors)
  // Query strings and path segments report every issue (unknown query keys are ignored). Bodies are only parsed
  // here (see `Body`); the service reports their issues, unknown keys included.
  .annotate(HttpApi.QueryParseOptions, { errors: "all" })
  .annotate(HttpApi.ParamsParseOptions, { errors: "all" })
  .annotate(HttpApi.PayloadParseOptions, { errors: "all", onExcessProperty: "error" })
  .annotateMerge(
    OpenApi.annotations({
      title: "Switchboard",
      version,
      description:
        "The Switchboard daemon's REST API, served over a Unix socket (curl --unix-socket …). Errors answer " +
        '{"error": {"code", "message", "details"}} with their HTTP status.'
    })
  ) {}
