import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import { readFileSync } from "node:fs"
import * as AuthMethods from "../src/AuthMethods.ts"
import * as AuthPattern from "../src/AuthPattern.ts"
import * as Catalog from "../src/Catalog.ts"
import * as Connector from "../src/Connector.ts"
import * as Credential from "../src/Credential.ts"
import * as Validation from "../src/Validation.ts"

const connectorFrom = (input: unknown): Connector.Connector =>
  Connector.fromInput(Result.getOrThrow(Validation.decodeResult(Connector.CreateConnector, "connector")(input)), {
    id: "ctr_01HF7YAT00WCEQMSG9GTHCDEZW",
    name: "example",
    version: 1,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z"
  })

const fixture = (name: string): Connector.Connector =>
  connectorFrom(JSON.parse(readFileSync(new URL(`./fixtures/connectors/${name}.json`, import.meta.url), "utf8")))

const fixtures = [
  "asana-oauth",
  "oauth-mcp",
  "bearer-mcp",
  "api-key-header",
  "freshdesk-basic",
  "domain-template",
  "postgresql",
  "github-local-mcp"
] as const

/** A data connector of each catalog type, with a complete config. */
const catalogConnectors = Catalog.entries.map((entry) =>
  connectorFrom({
    display_name: entry.display_name,
    kind: entry.type,
    config: Object.fromEntries(
      entry.required_config.map(([first]) => [first, entry.numeric_config.includes(first) ? 1 : "x"])
    )
  })
)

interface JsonSchemaObject {
  readonly type?: string
  readonly properties?: Record<string, Record<string, unknown>>
  readonly required?: ReadonlyArray<string>
  readonly additionalProperties?: unknown
}

/** The `values` object schema of a method's input schema. */
const valuesSchema = (method: AuthMethods.AuthMethod): JsonSchemaObject =>
  (method.inputSchema.properties as Record<string, JsonSchemaObject>).values as JsonSchemaObject

/** The fields a method collects, with whether each is required, as the domain rules say. */
const expectedFields = (
  connector: Connector.Connector,
  type: string
): ReadonlyArray<{ name: string; required: boolean; secret: boolean }> => {
  if (type === "CONFIG") {
    const fields = Catalog.isDataConnectorType(connector.kind) ? Catalog.get(connector.kind).auth_fields : []
    return fields.map((name) => ({ name, required: false, secret: AuthPattern.isSecretField({ field_name: name }) }))
  }
  const pattern = connector.auth_patterns.find((p) => p.type === type) as AuthPattern.AuthPattern
  const specs =
    type === "OAUTH"
      ? (pattern.account_fields ?? [])
      : [...AuthPattern.credentialFields(pattern), ...(pattern.account_fields ?? [])]
  return specs.map((spec) => ({
    name: spec.field_name,
    required: type === "OAUTH" ? spec.required === true : AuthPattern.isRequired(pattern, spec),
    secret: AuthPattern.isSecretField(spec)
  }))
}

const assertMethodShape = (connector: Connector.Connector, method: AuthMethods.AuthMethod): void => {
  assert.isTrue(Schema.is(AuthMethods.AuthMethod)(method))
  const schema = method.inputSchema as JsonSchemaObject
  assert.strictEqual(schema.type, "object")
  assert.strictEqual(schema.additionalProperties, false)
  assert.includeMembers([...(schema.required ?? [])], ["values"])
  if (method.authenticationType === "CONFIG") {
    assert.notProperty(schema.properties, "auth_type")
  } else {
    assert.deepStrictEqual(schema.properties?.auth_type, { type: "string", enum: [method.authenticationType] })
    assert.includeMembers([...(schema.required ?? [])], ["auth_type"])
  }
  const values = valuesSchema(method)
  assert.strictEqual(values.type, "object", `values of ${method.authenticationType}: ${JSON.stringify(values)}`)
  assert.strictEqual(values.additionalProperties, false)
  const fields = expectedFields(connector, method.authenticationType)
  assert.deepStrictEqual(
    Object.keys(values.properties ?? {}),
    fields.map((f) => f.name)
  )
  assert.sameMembers(
    [...(values.required ?? [])],
    fields.filter((f) => f.required).map((f) => f.name)
  )
  for (const field of fields) {
    const property = values.properties?.[field.name] ?? {}
    assert.strictEqual(property.type, "string")
    if (field.secret) {
      assert.strictEqual(property.writeOnly, true, `${field.name} is write-only`)
      assert.strictEqual(property.format, "password", `${field.name} is a password`)
    } else {
      assert.notProperty(property, "writeOnly")
    }
  }
}

/** The sample decodes as a credential body and passes the connector's checks, for the method's auth type. */
const assertSampleUsable = (connector: Connector.Connector, method: AuthMethods.AuthMethod): void => {
  const decoded = Validation.decodeResult(Credential.CredentialInput, "credential")(method.sampleInput)
  assert.isTrue(Result.isSuccess(decoded), JSON.stringify(Result.isFailure(decoded) ? decoded.failure.details : null))
  const checked = Credential.checkValues(connector, Result.getOrThrow(decoded))
  assert.deepStrictEqual(
    Result.getOrThrow(checked),
    method.authenticationType === "CONFIG" ? null : method.authenticationType
  )
}

describe("AuthMethods", () => {
  describe.each(fixtures)("%s", (name) => {
    const connector = fixture(name)
    const methods = AuthMethods.of(connector)

    it("has one method per auth pattern (CONFIG for data connectors) in the Alloy shape", () => {
      assert.isTrue(Schema.is(AuthMethods.AuthMethods)(methods))
      const types = connector.auth_patterns.length === 0 ? ["CONFIG"] : connector.auth_patterns.map((p) => p.type)
      assert.deepStrictEqual(
        methods.metadata.map((m) => m.authenticationType),
        types
      )
      for (const method of methods.metadata) {
        assert.includeMembers(Object.keys(method), [
          "authenticationType",
          "authConfigRequired",
          "inputSchema",
          "sampleInput"
        ])
      }
    })

    it("inputSchema is a JSON Schema object of the credential body", () => {
      for (const method of methods.metadata) assertMethodShape(connector, method)
    })

    it("every sampleInput is a usable credential body", () => {
      for (const method of methods.metadata) assertSampleUsable(connector, method)
    })
  })

  it("OAUTH with fixed endpoints needs an auth config first; OAuth MCP and static types do not", () => {
    const required = (name: string) =>
      AuthMethods.of(fixture(name)).metadata.map((m) => [m.authenticationType, m.authConfigRequired])
    assert.deepStrictEqual(required("asana-oauth"), [["OAUTH", true]])
    assert.deepStrictEqual(required("domain-template"), [
      ["OAUTH", true],
      ["API_KEY", false]
    ])
    assert.deepStrictEqual(required("oauth-mcp"), [["OAUTH", false]])
    assert.deepStrictEqual(required("bearer-mcp"), [["BEARER", false]])
    assert.deepStrictEqual(required("postgresql"), [["CONFIG", false]])
  })

  it("the Freshdesk password is optional (a mutation default covers it), the username is a secret", () => {
    const [method] = AuthMethods.of(fixture("freshdesk-basic")).metadata
    const values = valuesSchema(method as AuthMethods.AuthMethod)
    assert.deepStrictEqual(values.required, ["domain", "username"])
    assert.deepStrictEqual(values.properties?.username, {
      type: "string",
      title: "API key",
      format: "password",
      writeOnly: true
    })
    assert.deepStrictEqual(values.properties?.domain, {
      type: "string",
      title: "Freshdesk domain",
      description: "acme.freshdesk.com"
    })
  })

  it("labels and hints become title and description", () => {
    const [method] = AuthMethods.of(fixture("bearer-mcp")).metadata
    assert.deepStrictEqual(valuesSchema(method as AuthMethods.AuthMethod).properties?.token, {
      type: "string",
      title: "Token",
      description: "Settings → Tokens",
      format: "password",
      writeOnly: true
    })
  })

  it("the sample input never holds anything that looks like a real secret", () => {
    for (const name of fixtures) {
      for (const method of AuthMethods.of(fixture(name)).metadata) {
        const values = (method.sampleInput as { values: Record<string, string> }).values
        for (const [field, value] of Object.entries(values)) {
          assert.isTrue(
            value === `<${field}>` || value === "example.com" || value === "user@example.com",
            `${field}: ${value}`
          )
        }
      }
    }
  })

  describe("data connectors", () => {
    it("property: every catalog type has one CONFIG method with its auth fields, none required, and a usable sample", () => {
      fc.assert(
        fc.property(fc.constantFrom(...catalogConnectors), (connector) => {
          const { metadata } = AuthMethods.of(connector)
          assert.strictEqual(metadata.length, 1)
          const method = metadata[0] as AuthMethods.AuthMethod
          assert.strictEqual(method.authenticationType, "CONFIG")
          assert.isFalse(method.authConfigRequired)
          assertMethodShape(connector, method)
          assertSampleUsable(connector, method)
        })
      )
    })

    it("secret catalog fields are write-only passwords", () => {
      const secretFields = new Set([
        "password",
        "token",
        "api_key",
        "secret",
        "private_key",
        "service_account_json",
        "secret_access_key",
        "session_token",
        "api_secret",
        "account_key",
        "sas_token"
      ])
      for (const connector of catalogConnectors) {
        const values = valuesSchema(AuthMethods.of(connector).metadata[0] as AuthMethods.AuthMethod)
        for (const [field, property] of Object.entries(values.properties ?? {})) {
          if (!secretFields.has(field)) continue
          assert.strictEqual(property.writeOnly, true, `${connector.kind}.${field} must be write-only`)
          assert.strictEqual(property.format, "password", `${connector.kind}.${field} must be a password`)
        }
      }
    })
  })
})
