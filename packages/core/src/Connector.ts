/**
 * Connectors: definitions of an upstream — a REST API (proxied), an MCP server (tools, remote or a local
 * program) or a catalog data type (postgresql, snowflake, …). The create payload is the Scalekit custom
 * connector payload plus `name`, `kind`, `config`, `command`, `visibility`, `metadata`; every update makes a
 * new immutable version.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as AuthPattern from "./AuthPattern.ts"
import * as Catalog from "./Catalog.ts"
import * as Ids from "./Ids.ts"
import * as Template from "./Template.ts"

/** A unique name per organization: lower-case slug. */
export const Name = Schema.String.check(
  Schema.isPattern(/^[a-z0-9](?:[a-z0-9_-]{0,62})$/u, {
    message: "a name is 1-63 lower-case letters, digits, - or _, starting with a letter or digit"
  })
)

export const Kind = Schema.Union([Schema.Literals(["http", "mcp"]), Catalog.DataConnectorType])
export type Kind = typeof Kind.Type

export const Visibility = Schema.Literals(["private", "organization"])
export type Visibility = typeof Visibility.Type

/** Metadata values are plain strings; nested objects are refused. */
export const Metadata = Schema.Record(Schema.String, Schema.String)

const EnvName = Schema.String.check(
  Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]*$/u, { message: "expected an environment variable name" })
)

/**
 * A local MCP program. Credentials reach it through `env` values that are templates over the credential's
 * fields (`{"GITHUB_TOKEN": "{{token}}"}`), never through argv.
 */
export const McpCommand = Schema.Struct({
  program: Schema.NonEmptyString,
  args: Schema.optionalKey(Schema.Array(Schema.String)),
  env: Schema.optionalKey(Schema.Record(EnvName, Schema.String))
})
export type McpCommand = typeof McpCommand.Type

/** What a create or update payload may say. */
const InputFields = {
  name: Schema.optionalKey(Name),
  display_name: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(200))),
  description: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(2000))),
  icon_url: Schema.optionalKey(AuthPattern.HttpsUrl),
  kind: Schema.optionalKey(Kind),
  config: Schema.optionalKey(Catalog.Config),
  proxy_url: Schema.optionalKey(Schema.String),
  proxy_enabled: Schema.optionalKey(Schema.Boolean),
  command: Schema.optionalKey(McpCommand),
  auth_patterns: Schema.optionalKey(Schema.Array(AuthPattern.AuthPattern)),
  metadata: Schema.optionalKey(Metadata),
  visibility: Schema.optionalKey(Visibility)
}

const InputStruct = Schema.Struct(InputFields)
type InputShape = typeof InputStruct.Type

/** The kind a payload means: explicit, else MCP when a pattern says `is_mcp` or a command is given, else HTTP. */
export const kindOf = (input: Pick<InputShape, "kind" | "auth_patterns" | "command">): Kind =>
  input.kind ??
  ((input.auth_patterns ?? []).some((p) => p.is_mcp === true) || input.command !== undefined ? "mcp" : "http")

type Issue = { readonly path: ReadonlyArray<PropertyKey>; readonly issue: string }

const templateIssues = (
  input: InputShape,
  path: ReadonlyArray<PropertyKey>,
  names: ReadonlyArray<string>
): Array<Issue> => {
  const patterns = input.auth_patterns ?? []
  return names
    .filter((name) => !patterns.some((p) => AuthPattern.providedNames(p).has(name)))
    .map((name) => ({
      path,
      issue: `template field "${name}" is not provided by any auth pattern (add it to fields or account_fields)`
    }))
}

/** The rules between fields of a whole connector payload. */
export const inputIssues = (input: InputShape): Array<Issue> => {
  const issues: Array<Issue> = []
  const kind = kindOf(input)
  const patterns = input.auth_patterns ?? []
  if (input.display_name === undefined && input.name === undefined) {
    issues.push({ path: ["display_name"], issue: "display_name (or name) is required" })
  }
  const types = new Set<string>()
  patterns.forEach((p, i) => {
    if (types.has(p.type)) issues.push({ path: ["auth_patterns", i, "type"], issue: `duplicate auth type ${p.type}` })
    types.add(p.type)
    if (p.is_mcp === true && kind !== "mcp") {
      issues.push({
        path: ["auth_patterns", i, "is_mcp"],
        issue: `is_mcp patterns belong to MCP connectors, not ${kind}`
      })
    }
    if (kind === "mcp" && p.is_mcp === false) {
      issues.push({
        path: ["auth_patterns", i, "is_mcp"],
        issue: "an MCP connector's patterns cannot set is_mcp: false"
      })
    }
  })
  if (kind === "http" || kind === "mcp") {
    if (input.config !== undefined) {
      issues.push({ path: ["config"], issue: `config belongs to data-connector kinds, not ${kind}` })
    }
    if (kind === "http" && input.command !== undefined) {
      issues.push({ path: ["command"], issue: "command belongs to MCP connectors" })
    }
    if (kind === "http" && input.proxy_url === undefined) {
      issues.push({ path: ["proxy_url"], issue: "proxy_url is required" })
    }
    if (kind === "mcp" && input.proxy_url === undefined && input.command === undefined) {
      issues.push({ path: ["proxy_url"], issue: "an MCP connector needs a server URL (proxy_url) or a command" })
    }
    if (kind === "mcp" && input.proxy_url !== undefined && input.command !== undefined) {
      issues.push({ path: ["command"], issue: "an MCP connector has a server URL or a command, not both" })
    }
  } else {
    issues.push(...Catalog.configIssues(kind, input.config))
    if (input.command !== undefined) issues.push({ path: ["command"], issue: "command belongs to MCP connectors" })
  }
  if (input.proxy_url !== undefined) {
    const parsed = Template.parse(input.proxy_url)
    if (Result.isFailure(parsed)) {
      issues.push({ path: ["proxy_url"], issue: parsed.failure.message })
    } else {
      issues.push(...templateIssues(input, ["proxy_url"], Template.fieldNames(input.proxy_url)))
    }
  }
  for (const [key, value] of Object.entries(input.command?.env ?? {})) {
    const names = Template.parseString(value)
    if (Result.isFailure(names)) issues.push({ path: ["command", "env", key], issue: names.failure.message })
    else issues.push(...templateIssues(input, ["command", "env", key], names.success))
  }
  return issues
}

/** The create payload: Scalekit's custom connector payload, verbatim, plus Switchboard's own fields. */
export const CreateConnector = InputStruct.check(Schema.makeFilter(inputIssues))
export type CreateConnector = typeof CreateConnector.Type

/** An update payload: any subset of the create payload; the merged result is validated as a whole. */
export const UpdateConnector = InputStruct
export type UpdateConnector = typeof UpdateConnector.Type

/** A connector as stored and returned. Never holds a secret. */
export const Connector = Schema.Struct({
  id: Ids.schema("ctr"),
  name: Name,
  display_name: Schema.String,
  description: Schema.optionalKey(Schema.String),
  icon_url: Schema.optionalKey(Schema.String),
  kind: Kind,
  config: Schema.optionalKey(Catalog.Config),
  proxy_url: Schema.optionalKey(Schema.String),
  proxy_enabled: Schema.optionalKey(Schema.Boolean),
  command: Schema.optionalKey(McpCommand),
  auth_patterns: Schema.Array(AuthPattern.AuthPattern),
  metadata: Schema.optionalKey(Metadata),
  visibility: Visibility,
  version: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  created_at: Schema.String,
  updated_at: Schema.String
})
export type Connector = typeof Connector.Type

/** Lower-case slug of a display name: "My Asana" → "my-asana". Empty when nothing usable is left. */
export const slugify = (displayName: string): string =>
  displayName
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/gu, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/gu, "-")
    .replace(/^-+|-+$/gu, "")
    .slice(0, 63)
    .replace(/-+$/u, "")

/** The auth pattern of a given type, or the only one when the type is not given. */
export const patternFor = (
  connector: Pick<Connector, "auth_patterns">,
  type: AuthPattern.AuthType | undefined
): AuthPattern.AuthPattern | undefined =>
  type === undefined
    ? connector.auth_patterns.length === 1
      ? connector.auth_patterns[0]
      : undefined
    : connector.auth_patterns.find((p) => p.type === type)

/** Build the stored connector from a validated payload (pure; ids and time are given). */
export const fromInput = (
  input: CreateConnector,
  meta: {
    readonly id: string
    readonly name: string
    readonly version: number
    readonly createdAt: string
    readonly updatedAt: string
  }
): Connector => {
  const { name: _name, kind: _kind, visibility, auth_patterns, display_name, ...rest } = input
  return {
    ...rest,
    id: meta.id,
    name: meta.name,
    display_name: display_name ?? meta.name,
    kind: kindOf(input),
    auth_patterns: auth_patterns ?? [],
    visibility: visibility ?? "private",
    version: meta.version,
    created_at: meta.createdAt,
    updated_at: meta.updatedAt
  }
}

/** The payload a stored connector corresponds to (for merging an update onto it). */
export const toInput = (connector: Connector): CreateConnector => {
  const { id: _id, version: _v, created_at: _c, updated_at: _u, ...rest } = connector
  return rest
}
