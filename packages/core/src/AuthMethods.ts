/**
 * Credential metadata per auth pattern (the Alloy shape): for each way a connector authenticates, a JSON
 * Schema of the credential body `POST …/{scope}/credentials` takes, whether an app-level auth config is
 * needed first, and a sample input. The JSON Schema is derived from an Effect Schema built from the fields.
 */
import * as Schema from "effect/Schema"
import * as AuthPattern from "./AuthPattern.ts"
import * as Catalog from "./Catalog.ts"
import type { Connector } from "./Connector.ts"

export const AuthMethod = Schema.Struct({
  authenticationType: Schema.String,
  displayName: Schema.optionalKey(Schema.String),
  authConfigRequired: Schema.Boolean,
  inputSchema: Schema.Record(Schema.String, Schema.Unknown),
  sampleInput: Schema.Record(Schema.String, Schema.Unknown)
})
export type AuthMethod = typeof AuthMethod.Type

export const AuthMethods = Schema.Struct({ metadata: Schema.Array(AuthMethod) })
export type AuthMethods = typeof AuthMethods.Type

const fieldSchema = (spec: AuthPattern.FieldSpec) => {
  const secret = AuthPattern.isSecretField(spec)
  return Schema.String.annotate({
    title: spec.label ?? spec.field_name,
    ...(spec.hint === undefined ? {} : { description: spec.hint }),
    ...(secret ? { writeOnly: true, format: "password" } : {})
  })
}

const sampleValue = (spec: AuthPattern.FieldSpec): string =>
  spec.field_name === "domain"
    ? "example.com"
    : spec.field_name === "username"
      ? "user@example.com"
      : `<${spec.field_name}>`

const toJsonSchema = (schema: Schema.Top): Record<string, unknown> => {
  const doc = Schema.toJsonSchemaDocument(schema, { onExcessProperty: "error" })
  return Object.keys(doc.definitions).length > 0 ? { ...doc.schema, $defs: doc.definitions } : { ...doc.schema }
}

const method = (
  authenticationType: string,
  displayName: string | undefined,
  authConfigRequired: boolean,
  fields: ReadonlyArray<{ readonly spec: AuthPattern.FieldSpec; readonly required: boolean }>
): AuthMethod => {
  const valueFields: Record<string, Schema.Top> = {}
  const sample: Record<string, string> = {}
  for (const { spec, required } of fields) {
    valueFields[spec.field_name] = required ? fieldSchema(spec) : Schema.optionalKey(fieldSchema(spec))
    sample[spec.field_name] = sampleValue(spec)
  }
  const body = Schema.Struct({
    name: Schema.optionalKey(Schema.String.annotate({ description: 'credential name; "default" when absent' })),
    ...(authenticationType === "CONFIG" ? {} : { auth_type: Schema.Literal(authenticationType) }),
    values: fields.length === 0 ? Schema.Record(Schema.String, Schema.Never) : Schema.Struct(valueFields)
  })
  return {
    authenticationType,
    ...(displayName === undefined ? {} : { displayName }),
    authConfigRequired,
    inputSchema: toJsonSchema(body),
    sampleInput: {
      name: "default",
      ...(authenticationType === "CONFIG" ? {} : { auth_type: authenticationType }),
      values: sample
    }
  }
}

/** The authentication methods of a connector. */
export const of = (connector: Connector): AuthMethods => {
  if (connector.auth_patterns.length === 0) {
    const fields = Catalog.isDataConnectorType(connector.kind) ? Catalog.get(connector.kind).auth_fields : []
    return {
      metadata: [
        method(
          "CONFIG",
          undefined,
          false,
          fields.map((field_name) => ({
            spec: { field_name, input_type: AuthPattern.isSecretField({ field_name }) ? "password" : "text" },
            required: false
          }))
        )
      ]
    }
  }
  return {
    metadata: connector.auth_patterns.map((pattern) => {
      if (pattern.type === "OAUTH") {
        // Tokens come from the authorization flow; the user provides account fields only. Connectors with
        // fixed endpoints need an `oauth_client` credential first; MCP servers register the client themselves.
        const fields = (pattern.account_fields ?? []).map((spec) => ({ spec, required: spec.required === true }))
        return method("OAUTH", pattern.display_name, pattern.is_mcp !== true, fields)
      }
      const fields = [...AuthPattern.credentialFields(pattern), ...(pattern.account_fields ?? [])].map((spec) => ({
        spec,
        required: AuthPattern.isRequired(pattern, spec)
      }))
      return method(pattern.type, pattern.display_name, false, fields)
    })
  }
}
