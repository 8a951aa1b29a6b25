/**
 * How a connector authenticates: the Scalekit `auth_patterns[]` entry (OAUTH, BASIC, BEARER, API_KEY) with its
 * fields, account fields, OAuth configuration, header override and field mutations. Accepted verbatim: what a
 * payload gives is what a read returns; the rules between fields are checked here.
 */
import * as Schema from "effect/Schema"

export const AuthType = Schema.Literals(["OAUTH", "BASIC", "BEARER", "API_KEY"])
export type AuthType = typeof AuthType.Type

/** A credential or account field name; also a `{{name}}` template parameter. */
export const FieldName = Schema.String.check(
  Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/u, {
    message: "a field name is a letter or _ followed by letters, digits or _ (at most 64)"
  })
)

/** One input collected from the user (Scalekit shape). `input_type: "password"` marks a secret. */
export const FieldSpec = Schema.Struct({
  field_name: FieldName,
  label: Schema.optionalKey(Schema.String),
  hint: Schema.optionalKey(Schema.String),
  input_type: Schema.optionalKey(Schema.Literals(["text", "password"])),
  required: Schema.optionalKey(Schema.Boolean)
})
export type FieldSpec = typeof FieldSpec.Type

/** An absolute http(s) URL. */
export const HttpUrl = Schema.String.check(
  Schema.makeFilter((s) => {
    if (!URL.canParse(s)) return "expected an absolute URL"
    const protocol = new URL(s).protocol
    return protocol === "https:" || protocol === "http:" ? undefined : "expected an http or https URL"
  })
)

/** An absolute https URL (icons are shown in browsers and dashboards). */
export const HttpsUrl = Schema.String.check(
  Schema.makeFilter((s) => (URL.canParse(s) && new URL(s).protocol === "https:") || "expected an https:// URL")
)

export const OAuthScope = Schema.Struct({
  scope: Schema.NonEmptyString,
  display_name: Schema.optionalKey(Schema.String),
  description: Schema.optionalKey(Schema.String),
  required: Schema.optionalKey(Schema.Boolean)
})
export type OAuthScope = typeof OAuthScope.Type

export const TokenEndpointAuthMethod = Schema.Literals(["client_secret_basic", "client_secret_post", "none"])

export const OAuthConfig = Schema.Struct({
  authorize_uri: Schema.optionalKey(HttpUrl),
  token_uri: Schema.optionalKey(HttpUrl),
  user_info_uri: Schema.optionalKey(HttpUrl),
  revoke_uri: Schema.optionalKey(HttpUrl),
  available_scopes: Schema.optionalKey(Schema.Array(OAuthScope)),
  pkce_enabled: Schema.optionalKey(Schema.Boolean),
  custom_scope_name: Schema.optionalKey(Schema.String),
  token_endpoint_auth_method: Schema.optionalKey(TokenEndpointAuthMethod),
  /**
   * The authorization server's issuer identifier (not in the Scalekit payload; optional). When set, a callback's
   * `iss` (RFC 9207) must equal it, and where the server's metadata says it always sends `iss`, one is required.
   */
  issuer: Schema.optionalKey(HttpUrl)
})
export type OAuthConfig = typeof OAuthConfig.Type

/** `default` (when empty or absent), then `prefix`, then `suffix`. */
export const FieldMutation = Schema.Struct({
  default: Schema.optionalKey(Schema.String),
  prefix: Schema.optionalKey(Schema.String),
  suffix: Schema.optionalKey(Schema.String)
})
export type FieldMutation = typeof FieldMutation.Type

/** Mutations keyed by the field they change; only these four targets exist. */
export const AuthFieldMutations = Schema.Struct({
  api_key: Schema.optionalKey(FieldMutation),
  token: Schema.optionalKey(FieldMutation),
  username: Schema.optionalKey(FieldMutation),
  password: Schema.optionalKey(FieldMutation)
})
export type AuthFieldMutations = typeof AuthFieldMutations.Type
export type MutationTarget = keyof AuthFieldMutations

/** An HTTP header name (RFC 9110 token). */
export const HeaderName = Schema.String.check(
  Schema.isPattern(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/u, { message: "expected an HTTP header name" })
)

/** The fields each auth type needs to build its outgoing credential. */
export const essentialFields: Readonly<Record<AuthType, ReadonlyArray<MutationTarget>>> = {
  OAUTH: [],
  BASIC: ["username", "password"],
  BEARER: ["token"],
  API_KEY: ["api_key"]
}

/** Which mutation targets make sense for each auth type. */
export const mutationTargets: Readonly<Record<AuthType, ReadonlyArray<MutationTarget>>> = {
  OAUTH: ["token"],
  BASIC: ["username", "password"],
  BEARER: ["token"],
  API_KEY: ["api_key"]
}

const secretNames: ReadonlySet<string> = new Set([
  "password",
  "token",
  "api_key",
  "client_secret",
  "access_token",
  "refresh_token",
  "secret",
  "private_key",
  "service_account_json",
  "secret_access_key",
  "session_token",
  "api_secret",
  "account_key",
  "sas_token"
])

const AuthPatternFields = Schema.Struct({
  type: AuthType,
  display_name: Schema.optionalKey(Schema.String),
  description: Schema.optionalKey(Schema.String),
  fields: Schema.optionalKey(Schema.Array(FieldSpec)),
  account_fields: Schema.optionalKey(Schema.Array(FieldSpec)),
  oauth_config: Schema.optionalKey(OAuthConfig),
  auth_header_key_override: Schema.optionalKey(HeaderName),
  auth_field_mutations: Schema.optionalKey(AuthFieldMutations),
  is_mcp: Schema.optionalKey(Schema.Boolean),
  /** Switchboard extension: send the API key as this query parameter instead of a header. */
  api_key_query_param: Schema.optionalKey(FieldName)
})

type AuthPatternShape = typeof AuthPatternFields.Type

const patternIssues = (p: AuthPatternShape): Array<Schema.FilterIssue> => {
  const issues: Array<Schema.FilterIssue> = []
  const seen = new Set<string>()
  for (const list of ["fields", "account_fields"] as const) {
    ;(p[list] ?? []).forEach((spec, i) => {
      if (seen.has(spec.field_name)) {
        issues.push({ path: [list, i, "field_name"], issue: `duplicate field name "${spec.field_name}"` })
      }
      seen.add(spec.field_name)
    })
  }
  if (p.type === "OAUTH") {
    const config = p.oauth_config
    if (config === undefined) {
      issues.push({ path: ["oauth_config"], issue: "an OAUTH pattern needs oauth_config" })
    } else if (p.is_mcp === true) {
      const keys = Object.keys(config)
      if (keys.length !== 1 || config.pkce_enabled !== true) {
        issues.push({
          path: ["oauth_config"],
          issue: 'an OAUTH MCP pattern takes exactly {"pkce_enabled": true}: endpoints are discovered'
        })
      }
    } else {
      if (config.authorize_uri === undefined) {
        issues.push({ path: ["oauth_config", "authorize_uri"], issue: "an OAUTH pattern needs authorize_uri" })
      }
      if (config.token_uri === undefined) {
        issues.push({ path: ["oauth_config", "token_uri"], issue: "an OAUTH pattern needs token_uri" })
      }
    }
  } else if (p.oauth_config !== undefined) {
    issues.push({ path: ["oauth_config"], issue: `oauth_config belongs to OAUTH patterns, not ${p.type}` })
  }
  const allowed = mutationTargets[p.type]
  for (const target of Object.keys(p.auth_field_mutations ?? {})) {
    if (!allowed.includes(target as MutationTarget)) {
      issues.push({
        path: ["auth_field_mutations", target],
        issue: `${p.type} patterns mutate only ${allowed.join(", ")}`
      })
    }
  }
  if (p.api_key_query_param !== undefined) {
    if (p.type !== "API_KEY") {
      issues.push({ path: ["api_key_query_param"], issue: "api_key_query_param belongs to API_KEY patterns" })
    } else if (p.auth_header_key_override !== undefined) {
      issues.push({
        path: ["api_key_query_param"],
        issue: "use either api_key_query_param or auth_header_key_override, not both"
      })
    }
  }
  return issues
}

export const AuthPattern = AuthPatternFields.check(Schema.makeFilter(patternIssues))
export type AuthPattern = typeof AuthPattern.Type

/** True when a field holds a secret: marked `password`, or one of the well-known secret names. */
export const isSecretField = (spec: Pick<FieldSpec, "field_name" | "input_type">): boolean =>
  spec.input_type === "password" || secretNames.has(spec.field_name)

/**
 * The credential fields of a pattern: what the user declared plus the ones its type cannot work without
 * (a BEARER pattern always takes `token`, even when `fields` is empty). OAuth `fields` are auth-time
 * options, so OAuth credentials hold tokens, not these.
 */
export const credentialFields = (pattern: AuthPattern): ReadonlyArray<FieldSpec> => {
  const declared = pattern.fields ?? []
  const implied = essentialFields[pattern.type]
    .filter((name) => !declared.some((f) => f.field_name === name))
    .map(
      (name): FieldSpec => ({
        field_name: name,
        input_type: name === "username" ? "text" : "password",
        required: pattern.auth_field_mutations?.[name]?.default === undefined
      })
    )
  return [...declared, ...implied]
}

/** Every value name a pattern can provide to templates: fields, account fields and implied fields. */
export const providedNames = (pattern: AuthPattern): ReadonlySet<string> =>
  new Set([...credentialFields(pattern), ...(pattern.account_fields ?? [])].map((f) => f.field_name))

/** A field is required when declared so, or when its type needs it and no mutation default covers it. */
export const isRequired = (pattern: AuthPattern, spec: FieldSpec): boolean => {
  if (spec.required === true) return true
  const target = spec.field_name as MutationTarget
  return essentialFields[pattern.type].includes(target) && pattern.auth_field_mutations?.[target]?.default === undefined
}
