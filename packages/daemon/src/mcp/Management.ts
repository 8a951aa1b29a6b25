/**
 * The MCP server's own tools, next to the upstreams' ones: list connectors, list connections with their
 * status and whether their tools could be listed, and say how to authorize a connection that waits for
 * credentials. Secrets never pass through an agent: authorizing happens in a browser or a terminal, and
 * these tools only say where.
 */
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import { MANAGEMENT_NAMES } from "@switchboard/core/Toolset"
import { type CallResult, json, type ToolDefinition } from "./Protocol.ts"

export const LIST_CONNECTORS = "switchboard__list_connectors"
export const LIST_CONNECTIONS = "switchboard__list_connections"
export const AUTH_LINK = "switchboard__auth_link"

/** The names of the management tools, reserved before any upstream tool is named. */
export const names: ReadonlyArray<string> = MANAGEMENT_NAMES

export const isManagement = (name: string): boolean => names.includes(name)

const readOnly = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false }

const object = (properties: Record<string, unknown>, required: ReadonlyArray<string> = []) => ({
  type: "object",
  properties,
  ...(required.length > 0 ? { required } : {}),
  additionalProperties: false
})

/** The definitions; `notes` (connections that are unavailable right now) go into the connections tool. */
export const definitions = (notes: ReadonlyArray<string>): ReadonlyArray<ToolDefinition> => [
  {
    name: LIST_CONNECTORS,
    title: "Switchboard: connectors",
    description: "List the connectors (the kinds of upstream services) Switchboard knows: name, kind, auth types.",
    inputSchema: object({ kind: { type: "string", description: "Only connectors of this kind (http, mcp, ...)" } }),
    annotations: { title: "Switchboard: connectors", ...readOnly }
  },
  {
    name: LIST_CONNECTIONS,
    title: "Switchboard: connections",
    description:
      "List your connections with their status and the tools each one offers here (or why it offers none)." +
      (notes.length === 0 ? "" : ` Right now: ${notes.join("; ")}.`),
    inputSchema: object({}),
    annotations: { title: "Switchboard: connections", ...readOnly }
  },
  {
    name: AUTH_LINK,
    title: "Switchboard: authorize a connection",
    description:
      "For a connection that needs credentials or an OAuth login, say how the user authorizes it (a link or a " +
      "command to run). Never ask the user for a secret in the chat.",
    inputSchema: object({ connection: { type: "string", description: "The connection's name or id" } }, ["connection"]),
    annotations: { title: "Switchboard: authorize a connection", ...readOnly }
  }
]

/** Whether a connection's tools are offered, and if not, why. */
export type ToolsState =
  | { readonly state: "ready"; readonly tools: ReadonlyArray<string> }
  | { readonly state: "loading"; readonly message: string }
  | { readonly state: "unavailable"; readonly code: string; readonly message: string }
  | { readonly state: "inactive"; readonly message: string }
  | { readonly state: "none"; readonly message: string }

export const connectorsResult = (connectors: ReadonlyArray<Connector.Connector>): CallResult =>
  json({
    connectors: connectors.map((c) => ({
      name: c.name,
      display_name: c.display_name,
      kind: c.kind,
      ...(c.description === undefined ? {} : { description: c.description }),
      auth_types: c.auth_patterns.map((p) => p.type)
    }))
  })

export interface ConnectionRow {
  readonly connection: Connection.Connection
  readonly connector: Connector.Connector | undefined
  readonly tools: ToolsState
}

export const connectionsResult = (rows: ReadonlyArray<ConnectionRow>): CallResult =>
  json({
    connections: rows.map(({ connection: c, connector, tools }) => ({
      name: c.name,
      id: c.id,
      connector: connector?.name ?? c.connector_id,
      kind: connector?.kind ?? "unknown",
      status: c.status,
      access: c.access_scope,
      last_error: c.last_error,
      tools
    }))
  })

const quote = (arg: string) => (/^[A-Za-z0-9._-]+$/u.test(arg) ? arg : `"${arg}"`)

/** How to authorize a connection: nothing to do, an OAuth login, or storing a credential in a terminal. */
export const authResult = (connection: Connection.Connection, connector: Connector.Connector): CallResult => {
  const types = connector.auth_patterns.map((p) => p.type)
  const base = {
    connection: connection.name,
    id: connection.id,
    connector: connector.name,
    status: connection.status,
    auth_types: types
  }
  if (connection.status === "active") {
    return json({ ...base, authorized: true, next_step: "nothing to do: the connection is active" })
  }
  if (connection.status === "disabled") {
    return json({ ...base, authorized: false, next_step: "the connection is disabled; the user can enable it" })
  }
  if (types.includes("OAUTH")) {
    const command = `switchboard auth login ${quote(connector.name)} --connection ${quote(connection.name)}`
    return json({
      ...base,
      authorized: false,
      command,
      next_step: `ask the user to run \`${command}\` in a terminal: it opens the sign-in page in their browser`
    })
  }
  const command = `switchboard cred set ${quote(connector.name)}`
  return json({
    ...base,
    authorized: false,
    command,
    next_step:
      `ask the user to run \`${command}\` in a terminal (it prompts for the secret); ` +
      "never ask for the secret in the chat",
    ...(connection.last_error === null ? {} : { last_error: connection.last_error })
  })
}
