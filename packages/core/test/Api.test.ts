/**
 * The HttpApi definition: the routes of the architecture, request bodies documented with the domain schemas
 * (unknown keys refused) but left for the service to validate, every error status declared on every endpoint,
 * and the mapping between typed errors and error bodies, both ways.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Api from "@switchboard/core/Api"
import * as Errors from "@switchboard/core/Errors"
import * as Schema from "effect/Schema"
import { OpenApi } from "effect/http-api"

const spec = OpenApi.fromApi(Api.Api)

const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
  Object.entries(item as Record<string, unknown>)
    .filter(([, op]) => typeof op === "object" && op !== null && "responses" in op)
    .map(([method, op]) => ({ route: `${method.toUpperCase()} ${path}`, op: op as any }))
)

describe("routes", () => {
  it("every route of the REST API list is defined", () => {
    assert.sameMembers(
      operations.map((o) => o.route),
      [
        "GET /v1/connectors",
        "POST /v1/connectors",
        "GET /v1/connectors/{id_or_name}",
        "PATCH /v1/connectors/{id}",
        "DELETE /v1/connectors/{id}",
        "GET /v1/connectors/{id_or_name}/authentication_methods",
        "GET /v1/connectors/{id_or_name}/versions/{version}",
        "GET /v1/connectors/{id_or_name}/{scope}/credentials",
        "POST /v1/connectors/{id_or_name}/{scope}/credentials",
        "DELETE /v1/connectors/{id_or_name}/{scope}/credentials/{name}",
        "POST /v1/connectors/{id_or_name}/connections",
        "GET /v1/connections",
        "GET /v1/connections/{id}",
        "DELETE /v1/connections/{id}",
        "POST /v1/connections/{id}/test",
        "POST /v1/connectors/test",
        "GET /v1/connectors/{id_or_name}/tools",
        "POST /v1/connectors/{id_or_name}/tools/{tool}/call",
        "GET /v1/connectors/{id_or_name}/auth_url",
        "GET /v1/audit",
        "GET /v1/connections/{id}/explain",
        "GET /v1/connections/{id}/tools/pins",
        "POST /v1/connections/{id}/tools/approve",
        "GET /v1/events",
        "GET /healthz"
      ]
    )
  })

  it("creates answer 201, deletes 204, and every endpoint declares every error status", () => {
    for (const { route, op } of operations) {
      const statuses = Object.keys(op.responses)
      assert.includeMembers(statuses, ["400", "403", "404", "409", "422", "429", "500", "502", "503", "504"], route)
      if (route === "POST /v1/connectors" || route === "POST /v1/connectors/{id_or_name}/connections") {
        assert.include(statuses, "201", route)
      }
      if (route.startsWith("DELETE")) assert.include(statuses, "204", route)
    }
  })

  it("the credential scope is a path literal; list queries carry limit, cursor and filters", () => {
    const list = operations.find((o) => o.route === "GET /v1/connectors/{id_or_name}/{scope}/credentials")
    const scope = list?.op.parameters.find((p: { name: string }) => p.name === "scope")
    assert.deepStrictEqual(scope.schema.enum, ["organization", "workspace", "user"])
    const names = (route: string) =>
      operations.find((o) => o.route === route)?.op.parameters.map((p: { name: string }) => p.name)
    assert.sameMembers(names("GET /v1/connectors"), ["limit", "cursor", "kind", "name_prefix"])
    assert.sameMembers(names("GET /v1/connections"), ["limit", "cursor", "connector", "status", "name_prefix"])
    assert.sameMembers(names("GET /v1/audit"), ["limit", "cursor", "connection", "action"])
  })
})

describe("bodies", () => {
  const bodyOf = (route: string) =>
    operations.find((o) => o.route === route)?.op.requestBody.content["application/json"].schema

  it("are documented with the domain schemas, encoded side, unknown keys refused", () => {
    const connector = bodyOf("POST /v1/connectors")
    assert.strictEqual(connector.type, "object")
    assert.strictEqual(connector.additionalProperties, false)
    assert.includeMembers(Object.keys(connector.properties), ["name", "display_name", "auth_patterns", "proxy_url"])
    const credential = bodyOf("POST /v1/connectors/{id_or_name}/{scope}/credentials")
    assert.deepStrictEqual(credential.required, ["values"])
    // Secret values are documented as what is sent: strings.
    const values = credential.properties.values.patternProperties
    assert.strictEqual((Object.values(values)[0] as { type: string }).type, "string")
    const connection = bodyOf("POST /v1/connectors/{id_or_name}/connections")
    assert.includeMembers(Object.keys(connection.properties), ["name", "security", "headers", "access_scope"])
  })

  it("accept any JSON at the edge, so the service is the one place that validates them", () => {
    const decode = Schema.decodeUnknownSync(Api.CreateConnectorBody)
    assert.deepStrictEqual<unknown>(decode({ anything: [1, "two"] }), { anything: [1, "two"] })
    assert.strictEqual<unknown>(decode("a string"), "a string")
  })
})

describe("errors", () => {
  const samples: ReadonlyArray<Errors.SwitchboardError> = [
    new Errors.ValidationFailed({ message: "m", details: { issues: [{ path: "name", message: "x" }] } }),
    new Errors.InvalidRequest({ message: "m", reason: "invalid_cursor" }),
    new Errors.InvalidRequest({ message: "m", reason: "invalid_parameter" }),
    new Errors.ConnectorNotFound({ message: "m", details: { connector: "x" } }),
    new Errors.ConnectorVersionNotFound({ message: "m" }),
    new Errors.CredentialNotFound({ message: "m" }),
    new Errors.ConnectionNotFound({ message: "m" }),
    new Errors.NameTaken({ message: "m" }),
    new Errors.ConnectorInUse({ message: "m", details: { connections: ["conn_1"] } }),
    new Errors.Forbidden({ message: "m" }),
    new Errors.CredentialMissing({ message: "m" }),
    new Errors.TemplateError({ message: "m", reason: "template_value_missing" }),
    new Errors.TemplateError({ message: "m", reason: "template_value_invalid" }),
    new Errors.TemplateError({ message: "m", reason: "template_invalid" }),
    new Errors.StoreError({ message: "m", cause: new Error("sqlite said no") }),
    new Errors.SealError({ message: "m", reason: "key_mismatch" }),
    new Errors.SealError({ message: "m", reason: "open_failed" }),
    new Errors.UpstreamError({ message: "m", reason: "upstream_unreachable" }),
    new Errors.UpstreamError({ message: "m", reason: "upstream_timeout" }),
    new Errors.UpstreamError({ message: "m", reason: "upstream_protocol_error" }),
    new Errors.UpstreamError({ message: "m", reason: "destination_refused" }),
    new Errors.UpstreamError({ message: "m", reason: "circuit_open" }),
    new Errors.UpstreamError({ message: "m", reason: "rate_limited" })
  ]

  it("each typed error keeps its status, code, message and details on the wire, never its cause", () => {
    for (const error of samples) {
      const api = Api.fromSwitchboardError(error)
      assert.strictEqual(Api.statusOf(api), error.status, error.code)
      assert.deepStrictEqual(api.error, Errors.toErrorBody(error).error)
      const wire = Schema.encodeSync(Schema.toCodecJson(Api.ErrorDetail))(api.error)
      assert.notInclude(JSON.stringify(wire), "sqlite said no")
    }
  })

  it("an error body maps back to the same typed error", () => {
    for (const error of samples) {
      const api = Api.fromSwitchboardError(error)
      const back = Api.toSwitchboardError(Api.statusOf(api), api.error)
      assert.strictEqual(back._tag, error._tag)
      assert.strictEqual(back.code, error.code)
      assert.strictEqual(back.status, error.status)
      assert.strictEqual(back.message, error.message)
      assert.deepStrictEqual(back.details, error.details)
    }
  })

  it("an unknown code maps by status, keeping the code in details", () => {
    const back = Api.toSwitchboardError(404, { code: "route_not_found", message: "no route" })
    assert.strictEqual(back._tag, "StoreError")
    assert.deepStrictEqual(back.details, { code: "route_not_found" })
    assert.strictEqual(Api.toSwitchboardError(403, { code: "new_code", message: "m" })._tag, "Forbidden")
    assert.strictEqual(Api.toSwitchboardError(422, { code: "new_code", message: "m" })._tag, "ValidationFailed")
    assert.strictEqual(Api.toSwitchboardError(504, { code: "new_code", message: "m" }).code, "upstream_timeout")
  })

  it("details that JSON cannot carry are dropped, and unknown statuses become 500", () => {
    const api = Api.makeError(418, "teapot", "short and stout", { keep: 1, drop: undefined })
    assert.strictEqual(Api.statusOf(api), 500)
    assert.deepStrictEqual(api.error, { code: "teapot", message: "short and stout", details: { keep: 1 } })
  })
})
