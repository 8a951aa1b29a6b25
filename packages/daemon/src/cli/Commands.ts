/**
 * The `switchboard` command line: connectors, credentials, connections and the audit log, as tables for
 * people and JSON for scripts. Every command calls the `Switchboard` service, embedded or through the
 * daemon (see `Access`). Secrets are read from a hidden prompt or stdin, never from argv.
 */
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import * as Credential from "@switchboard/core/Credential"
import * as AuthPattern from "@switchboard/core/AuthPattern"
import * as Api from "@switchboard/core/Api"
import * as OAuth from "@switchboard/core/OAuth"
import { ValidationFailed } from "@switchboard/core/Errors"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { Argument, Command, Flag, Prompt } from "effect/cli"
import { Access } from "./Access.ts"
import * as Output from "./Output.ts"

/** The root command and the flags every subcommand shares. */
export const root = Command.make("switchboard").pipe(
  Command.withSharedFlags({
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print machine-readable JSON"), Flag.withDefault(false)),
    home: Flag.String("home").pipe(
      Flag.withDescription("The data directory (default: $SWITCHBOARD_HOME, else ~/.local/share/switchboard)"),
      Flag.optional
    ),
    via: Flag.Literals("via", ["auto", "daemon", "embedded"]).pipe(
      Flag.withDescription("Reach Switchboard through the daemon, embedded on the data directory, or auto"),
      Flag.withDefault("auto")
    )
  }),
  Command.withDescription("A local-first connector hub for AI agents")
)

/** Run `f` with the Switchboard the root flags point at. */
const withSwitchboard = <A, E, R>(f: (sb: Switchboard.Switchboard["Service"]) => Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const flags = yield* root
    const access = yield* Access
    return yield* Effect.flatMap(Effect.service(Switchboard.Switchboard), f).pipe(
      Effect.provide(access.layer({ home: Option.getOrUndefined(flags.home), via: flags.via }))
    )
  })

const json = Effect.map(root, (flags) => flags.json)

/**
 * A created connection with its `oauth` answer: the daemon's (with the authorization URL its browser listener
 * takes), else, embedded, where no listener runs, the command to run instead.
 */
type WithOAuth = Connection.Connection & { readonly oauth?: Api.OAuthRequired | undefined }

const withOAuthRequired = (sb: Switchboard.Switchboard["Service"], connection: Connection.Connection) =>
  Effect.gen(function* () {
    const given = Api.oauthRequiredOf(connection)
    const plain: WithOAuth = given === undefined ? connection : { ...connection, oauth: given }
    if (given !== undefined || connection.status !== "pending_auth" || connection.auth_type !== "OAUTH") return plain
    const connector = yield* sb.getConnector(connection.connector_id)
    const login_command = OAuth.loginCommand(connector.name, connection.name)
    const oauth: Api.OAuthRequired = {
      status: "oauth2_required",
      auth_url: null,
      state_expires_at: null,
      connector_page_url: null,
      login_command,
      message:
        `no daemon is running to take the OAuth callback; run: ${login_command} ` +
        "(it takes the callback itself), or start the daemon first: switchboard daemon start --detach"
    }
    const answer: WithOAuth = { ...connection, oauth }
    return answer
  })

const invalid = (message: string, path = "") =>
  new ValidationFailed({ message, details: { issues: [{ path, message }] } })

/** Read all of stdin as text. */
const readStdin = Effect.gen(function* () {
  const stdio = yield* Stdio.Stdio
  return yield* stdio.stdin.pipe(Stream.decodeText(), Stream.mkString)
})

const parseJson = (text: string, what: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: () => invalid(`${what} is not valid JSON`)
  })

const readJsonFile = (path: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(Effect.mapError(() => invalid(`cannot read ${path}`, "file")))
    return yield* parseJson(text, path)
  })

/** A JSON payload from a file argument, or from stdin when the argument is `-`. */
const readPayload = (file: string) =>
  file === "-" ? Effect.flatMap(readStdin, (t) => parseJson(t, "stdin")) : readJsonFile(file)

const connectorColumns: ReadonlyArray<Output.Column<Connector.Connector>> = [
  { header: "name", get: (c) => c.name },
  { header: "kind", get: (c) => c.kind },
  { header: "auth", get: (c) => c.auth_patterns.map((p) => p.type).join(",") },
  { header: "version", get: (c) => c.version },
  { header: "id", get: (c) => c.id },
  { header: "display name", get: (c) => c.display_name }
]

const connectionColumns: ReadonlyArray<Output.Column<Connection.Connection>> = [
  { header: "name", get: (c) => c.name },
  { header: "status", get: (c) => c.status },
  { header: "access", get: (c) => c.access_scope + (c.is_service_account ? " (service)" : "") },
  { header: "auth", get: (c) => c.auth_type },
  { header: "id", get: (c) => c.id },
  { header: "last error", get: (c) => c.last_error }
]

const showConnector = (c: Connector.Connector) =>
  Output.details([
    ["name", c.name],
    ["display name", c.display_name],
    ["id", c.id],
    ["kind", c.kind],
    ["version", String(c.version)],
    [
      "url",
      c.proxy_url ?? (c.command === undefined ? undefined : [c.command.program, ...(c.command.args ?? [])].join(" "))
    ],
    ["auth", c.auth_patterns.map((p) => p.type).join(", ") || "-"],
    ["updated", c.updated_at]
  ])

const limitFlag = Flag.Int("limit").pipe(Flag.withDescription("Rows per page (1-100)"), Flag.optional)
const cursorFlag = Flag.String("cursor").pipe(Flag.withDescription("Continue after a previous page"), Flag.optional)
const opt = <K extends string, A>(key: K, value: Option.Option<A>): { [P in K]?: A } =>
  (Option.isSome(value) ? { [key]: value.value } : {}) as { [P in K]?: A }

const pageFooter = (page: { readonly next_cursor: string | null }) =>
  page.next_cursor === null ? "" : `\n(more: --cursor ${page.next_cursor})`

// ---------------------------------------------------------------------------------------------- connectors

const connectorAdd = Command.make(
  "add",
  { file: Argument.String("file").pipe(Argument.withDescription("A connector payload (JSON); - reads stdin")) },
  Effect.fn(function* ({ file }) {
    const payload = yield* readPayload(file)
    const created = yield* withSwitchboard((sb) => sb.createConnector(payload))
    yield* Output.print(yield* json, created, () => `created connector ${created.name} (${created.id})`)
  })
).pipe(
  Command.withDescription("Create a connector from a Scalekit-style JSON payload"),
  Command.withAlias("import"),
  Command.withExamples([
    { command: "switchboard connector import examples/connectors/asana.json", description: "Import Asana" }
  ])
)

const connectorList = Command.make(
  "list",
  {
    kind: Flag.String("kind").pipe(Flag.withDescription("Only this kind (http, mcp, postgresql, ...)"), Flag.optional),
    prefix: Flag.String("prefix").pipe(Flag.withDescription("Only names starting with this"), Flag.optional),
    limit: limitFlag,
    cursor: cursorFlag
  },
  Effect.fn(function* ({ kind, prefix, limit, cursor }) {
    const page = yield* withSwitchboard((sb) =>
      sb.listConnectors({
        ...opt("kind", kind as Option.Option<Connector.Kind>),
        ...opt("name_prefix", prefix),
        ...opt("limit", limit),
        ...opt("cursor", cursor)
      })
    )
    yield* Output.print(yield* json, page, () => Output.table(page.data, connectorColumns) + pageFooter(page))
  })
).pipe(Command.withDescription("List connectors"), Command.withAlias("ls"))

const connectorGet = Command.make(
  "get",
  {
    ref: Argument.String("connector").pipe(Argument.withDescription("Connector id or name")),
    version: Flag.Int("version").pipe(Flag.withDescription("A past version"), Flag.optional)
  },
  Effect.fn(function* ({ ref, version }) {
    const connector = yield* withSwitchboard((sb) =>
      Option.isSome(version) ? sb.getConnectorVersion(ref, version.value) : sb.getConnector(ref)
    )
    yield* Output.print(yield* json, connector, () => showConnector(connector))
  })
).pipe(Command.withDescription("Show a connector"))

const connectorUpdate = Command.make(
  "update",
  {
    ref: Argument.String("connector").pipe(Argument.withDescription("Connector id or name")),
    file: Argument.String("file").pipe(Argument.withDescription("The fields to change (JSON); - reads stdin"))
  },
  Effect.fn(function* ({ ref, file }) {
    const patch = yield* readPayload(file)
    const updated = yield* withSwitchboard((sb) => sb.updateConnector(ref, patch))
    yield* Output.print(yield* json, updated, () => `updated connector ${updated.name} to version ${updated.version}`)
  })
).pipe(Command.withDescription("Change a connector (makes a new version)"))

const connectorRemove = Command.make(
  "rm",
  { ref: Argument.String("connector").pipe(Argument.withDescription("Connector id or name")) },
  Effect.fn(function* ({ ref }) {
    yield* withSwitchboard((sb) => sb.deleteConnector(ref))
    yield* Output.print(yield* json, { deleted: ref }, () => `deleted connector ${ref}`)
  })
).pipe(Command.withDescription("Delete a connector (refused while connections use it)"))

const connectorMethods = Command.make(
  "methods",
  { ref: Argument.String("connector").pipe(Argument.withDescription("Connector id or name")) },
  Effect.fn(function* ({ ref }) {
    const methods = yield* withSwitchboard((sb) => sb.authenticationMethods(ref))
    yield* Output.printJson(methods)
  })
).pipe(Command.withDescription("Show how to authenticate: JSON Schema and a sample credential per auth pattern"))

const connector = Command.make("connector").pipe(
  Command.withDescription("Manage connectors"),
  Command.withSubcommands([
    connectorAdd,
    connectorList,
    connectorGet,
    connectorUpdate,
    connectorRemove,
    connectorMethods
  ])
)

// --------------------------------------------------------------------------------------------- credentials

const scopeFlag = Flag.Literals("scope", ["user", "workspace", "organization"]).pipe(
  Flag.withDescription("Whose credential: yours, the workspace's or the organization's"),
  Flag.withDefault("user")
)

const isInteractive = Effect.flatMap(Effect.service(Stdio.Stdio), (stdio) => stdio.stdinIsTerminal)

/** The secret fields of the pattern a credential is for. */
const secretFieldsOf = (connector: Connector.Connector, authType: AuthPattern.AuthType | undefined, name: string) => {
  if (connector.auth_patterns.length === 0) {
    return { all: [] as ReadonlyArray<string>, required: [] as ReadonlyArray<string> }
  }
  const pattern =
    authType === undefined
      ? connector.auth_patterns.length === 1
        ? connector.auth_patterns[0]
        : undefined
      : connector.auth_patterns.find((p) => p.type === authType)
  if (pattern === undefined) return { all: [], required: [] }
  if (pattern.type === "OAUTH") {
    return name === Credential.oauthClientName
      ? { all: ["client_secret"], required: [] }
      : { all: ["access_token", "refresh_token"], required: [] }
  }
  const fields = AuthPattern.credentialFields(pattern).filter(AuthPattern.isSecretField)
  return {
    all: fields.map((f) => f.field_name),
    required: fields.filter((f) => AuthPattern.isRequired(pattern, f)).map((f) => f.field_name)
  }
}

const credSet = Command.make(
  "set",
  {
    connector: Argument.String("connector").pipe(Argument.withDescription("Connector id or name")),
    scope: scopeFlag,
    name: Flag.String("name").pipe(Flag.withDescription("Credential name"), Flag.withDefault("default")),
    authType: Flag.Literals("auth-type", ["OAUTH", "BASIC", "BEARER", "API_KEY"]).pipe(
      Flag.withDescription("Which auth pattern (when the connector has several)"),
      Flag.optional
    ),
    values: Flag.KeyValuePair("value").pipe(
      Flag.withDescription(
        "A non-secret value, field=value (repeatable); secrets are prompted for or read with --stdin"
      ),
      Flag.optional
    ),
    stdin: Flag.Boolean("stdin").pipe(
      Flag.withDescription("Read the values as a JSON object from stdin (for secrets in scripts)"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function* ({ connector: ref, scope, name, authType, values, stdin }) {
    const target = yield* withSwitchboard((sb) => sb.getConnector(ref))
    const secrets = secretFieldsOf(target, Option.getOrUndefined(authType), name)
    const given: Record<string, string> = { ...Option.getOrElse(values, () => ({})) }
    for (const field of Object.keys(given)) {
      if (secrets.all.includes(field)) {
        return yield* invalid(
          `${field} is a secret: give it at the prompt or with --stdin, never on the command line`,
          `values.${field}`
        )
      }
    }
    if (stdin) {
      const parsed = yield* Effect.flatMap(readStdin, (t) => parseJson(t, "stdin"))
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        return yield* invalid("stdin must hold a JSON object of field values")
      }
      Object.assign(given, parsed)
    } else {
      const missing = secrets.required.filter((f) => given[f] === undefined)
      if (missing.length > 0) {
        if (!(yield* isInteractive)) {
          return yield* invalid(
            `${missing.join(", ")} must be given: run in a terminal to be prompted, or pass --stdin`
          )
        }
        for (const field of missing) {
          const secret = yield* Prompt.run(Prompt.Password({ message: `${field}:` }))
          given[field] = Redacted.value(secret)
        }
      }
    }
    const stored = yield* withSwitchboard((sb) =>
      sb.setCredential(ref, scope, {
        name,
        ...(Option.isSome(authType) ? { auth_type: authType.value } : {}),
        values: given
      })
    )
    yield* Output.print(yield* json, stored, () => `saved ${scope} credential ${stored.name} for ${target.name}`)
  })
).pipe(
  Command.withDescription("Create or replace a credential"),
  Command.withExamples([
    { command: "switchboard cred set acme-api --value domain=api.acme.com", description: "Prompts for the API key" },
    { command: 'echo \'{"api_key":"…"}\' | switchboard cred set acme-api --stdin', description: "From a script" }
  ])
)

const credList = Command.make(
  "list",
  { connector: Argument.String("connector").pipe(Argument.withDescription("Connector id or name")), scope: scopeFlag },
  Effect.fn(function* ({ connector: ref, scope }) {
    const rows = yield* withSwitchboard((sb) => sb.listCredentials(ref, scope))
    yield* Output.print(yield* json, rows, () =>
      Output.table(rows, [
        { header: "name", get: (c) => c.name },
        { header: "scope", get: (c) => c.scope },
        { header: "auth", get: (c) => c.auth_type },
        {
          header: "values",
          get: (c) =>
            Object.entries(c.values)
              .map(([k, v]) => `${k}=${v}`)
              .join(" ")
        },
        { header: "updated", get: (c) => c.updated_at }
      ])
    )
  })
).pipe(Command.withDescription("List credentials (values masked)"), Command.withAlias("ls"))

const credRemove = Command.make(
  "rm",
  {
    connector: Argument.String("connector").pipe(Argument.withDescription("Connector id or name")),
    name: Argument.String("name").pipe(Argument.withDescription("Credential name")),
    scope: scopeFlag
  },
  Effect.fn(function* ({ connector: ref, name, scope }) {
    yield* withSwitchboard((sb) => sb.deleteCredential(ref, scope, name))
    yield* Output.print(yield* json, { deleted: name, scope }, () => `deleted ${scope} credential ${name}`)
  })
).pipe(Command.withDescription("Delete a credential"))

const cred = Command.make("cred").pipe(
  Command.withDescription("Manage credentials at user, workspace or organization scope"),
  Command.withSubcommands([credSet, credList, credRemove])
)

// --------------------------------------------------------------------------------------------- connections

const connect = Command.make(
  "connect",
  {
    connector: Argument.String("connector").pipe(Argument.withDescription("Connector id or name")),
    name: Flag.String("name").pipe(Flag.withDescription('The connection name, e.g. "Production Slack"')),
    access: Flag.Literals("access", ["personal", "organizational"]).pipe(
      Flag.withDescription("Who may use it"),
      Flag.withDefault("personal")
    ),
    serviceAccount: Flag.Boolean("service-account").pipe(
      Flag.withDescription("Shared service-account credentials (organizational only)"),
      Flag.withDefault(false)
    ),
    credential: Flag.String("credential").pipe(
      Flag.withDescription("Use this stored credential: scope/name (default: resolve user → workspace → organization)"),
      Flag.optional
    ),
    authType: Flag.Literals("auth-type", ["OAUTH", "BASIC", "BEARER", "API_KEY"]).pipe(Flag.optional),
    version: Flag.Int("version").pipe(Flag.withDescription("Pin a connector version"), Flag.optional),
    query: Flag.KeyValuePair("query").pipe(Flag.withDescription("Pre-filled query parameter k=v"), Flag.optional),
    pathParams: Flag.KeyValuePair("path-param").pipe(
      Flag.withDescription("Pre-filled path parameter k=v"),
      Flag.optional
    ),
    headerParams: Flag.KeyValuePair("header").pipe(
      Flag.withDescription("Pre-filled non-secret header k=v"),
      Flag.optional
    ),
    server: Flag.String("server").pipe(Flag.withDescription("Override the server URL"), Flag.optional),
    allowPrivate: Flag.Boolean("allow-private-network").pipe(
      Flag.withDescription("Allow loopback and private-network targets"),
      Flag.withDefault(false)
    ),
    stdin: Flag.Boolean("stdin").pipe(
      Flag.withDescription('Read write-only secrets from stdin as JSON: {"security": {…}, "headers": {…}}'),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function* (input) {
    let secrets: { security?: unknown; headers?: unknown } = {}
    if (input.stdin) {
      const parsed = yield* Effect.flatMap(readStdin, (t) => parseJson(t, "stdin"))
      if (typeof parsed !== "object" || parsed === null) return yield* invalid("stdin must hold a JSON object")
      const { security, headers, ...rest } = parsed as Record<string, unknown>
      if (Object.keys(rest).length > 0) {
        return yield* invalid(`stdin takes only "security" and "headers", not ${Object.keys(rest).join(", ")}`)
      }
      secrets = { ...(security === undefined ? {} : { security }), ...(headers === undefined ? {} : { headers }) }
    }
    let credential: { scope: string; name: string } | undefined
    if (Option.isSome(input.credential)) {
      const [scope, name, ...extra] = input.credential.value.split("/")
      if (scope === undefined || name === undefined || extra.length > 0) {
        return yield* invalid("--credential takes scope/name, e.g. organization/default", "credential")
      }
      credential = { scope, name }
    }
    const parameters = {
      ...opt("query", input.query),
      ...opt("path", input.pathParams),
      ...opt("header", input.headerParams)
    }
    const created = yield* withSwitchboard((sb) =>
      Effect.flatMap(
        sb.createConnection(input.connector, {
          name: input.name,
          access_scope: input.access,
          ...(input.serviceAccount ? { is_service_account: true } : {}),
          ...(credential === undefined ? {} : { credential }),
          ...opt("auth_type", input.authType),
          ...opt("connector_version", input.version),
          ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
          ...(Option.isSome(input.server) ? { servers: [{ url: input.server.value }] } : {}),
          ...(input.allowPrivate ? { allow_private_network: true } : {}),
          ...secrets
        }),
        (connection) => withOAuthRequired(sb, connection)
      )
    )
    yield* Output.print(yield* json, created, () => {
      const line = `connected ${created.name} (${created.id}): ${created.status}`
      const oauth = created.oauth
      if (oauth === undefined) return line
      return oauth.auth_url === null
        ? `${line}\nthis connection needs an OAuth authorization: ${oauth.message}`
        : `${line}\nthis connection needs an OAuth authorization; open in a browser:\n${oauth.auth_url}\n` +
            `or run: ${oauth.login_command}`
    })
  })
).pipe(Command.withDescription("Connect a connector: bind it to credentials as a named connection"))

const connectionList = Command.make(
  "list",
  {
    connector: Flag.String("connector").pipe(Flag.withDescription("Only connections of this connector"), Flag.optional),
    status: Flag.Literals("status", ["pending_auth", "active", "error", "disabled"]).pipe(Flag.optional),
    limit: limitFlag,
    cursor: cursorFlag
  },
  Effect.fn(function* ({ connector: ref, status, limit, cursor }) {
    const page = yield* withSwitchboard((sb) =>
      sb.listConnections({
        ...opt("connector", ref),
        ...opt("status", status),
        ...opt("limit", limit),
        ...opt("cursor", cursor)
      })
    )
    yield* Output.print(yield* json, page, () => Output.table(page.data, connectionColumns) + pageFooter(page))
  })
).pipe(Command.withDescription("List connections"), Command.withAlias("ls"))

const connectionGet = Command.make(
  "get",
  { ref: Argument.String("connection").pipe(Argument.withDescription("Connection id or name")) },
  Effect.fn(function* ({ ref }) {
    const c = yield* withSwitchboard((sb) => sb.getConnection(ref))
    yield* Output.print(yield* json, c, () =>
      Output.details([
        ["name", c.name],
        ["id", c.id],
        ["connector", c.connector_id + (c.connector_version === null ? "" : ` (pinned v${c.connector_version})`)],
        ["status", c.status],
        ["access", c.access_scope + (c.is_service_account ? " (service account)" : "")],
        [
          "credential",
          c.has_security
            ? "inline (write-only)"
            : c.credential === null
              ? "resolved user → workspace → organization"
              : `${c.credential.scope}/${c.credential.name}`
        ],
        ["headers", c.header_names.join(", ") || "-"],
        ["servers", c.servers.map((s) => s.url).join(", ") || "-"],
        ["last tested", c.last_tested_at ?? "-"],
        ["last error", c.last_error ?? "-"]
      ])
    )
  })
).pipe(Command.withDescription("Show a connection (never its secrets)"))

const connectionRemove = Command.make(
  "rm",
  { ref: Argument.String("connection").pipe(Argument.withDescription("Connection id or name")) },
  Effect.fn(function* ({ ref }) {
    yield* withSwitchboard((sb) => sb.deleteConnection(ref))
    yield* Output.print(yield* json, { deleted: ref }, () => `deleted connection ${ref}`)
  })
).pipe(Command.withDescription("Delete a connection"))

const connection = Command.make("connection").pipe(
  Command.withDescription("Manage connections"),
  Command.withSubcommands([connectionList, connectionGet, connectionRemove])
)

// ------------------------------------------------------------------------------------------------- audit

const audit = Command.make(
  "audit",
  {
    connection: Flag.String("connection").pipe(Flag.withDescription("Only this connection id"), Flag.optional),
    action: Flag.String("action").pipe(Flag.withDescription("Only this action, e.g. connector.create"), Flag.optional),
    limit: limitFlag,
    cursor: cursorFlag
  },
  Effect.fn(function* ({ connection: conn, action, limit, cursor }) {
    const page = yield* withSwitchboard((sb) =>
      sb.listAudit({
        ...opt("connection", conn),
        ...opt("action", action),
        ...opt("limit", limit),
        ...opt("cursor", cursor)
      })
    )
    yield* Output.print(
      yield* json,
      page,
      () =>
        Output.table(page.data, [
          { header: "at", get: (r) => r.at },
          { header: "actor", get: (r) => r.actor },
          { header: "action", get: (r) => r.action },
          { header: "outcome", get: (r) => r.outcome + (r.error_code === undefined ? "" : ` (${r.error_code})`) },
          { header: "target", get: (r) => r.target ?? r.tool ?? r.path }
        ]) + pageFooter(page)
    )
  })
).pipe(Command.withDescription("Show the audit log, newest first"))

/** The whole command tree. Other commands (daemon, key, mcp, …) are added by `Main`. */
export const commands = [connector, cred, connect, connection, audit] as const
