/**
 * The guided connector form (display name, description, icon URL, server URL, metadata, auth type) as a
 * `POST /v1/connectors` payload, and the API's validation issues back onto the form's fields. The payload goes
 * through `Switchboard.createConnector`, so the form is validated by the same schemas as the API.
 */
import type { SwitchboardError } from "@switchboard/core/Errors"

export type Values = Readonly<Record<string, string>>

/** The payload, or the fields the form itself could not read (metadata lines). */
export const toPayload = (
  values: Values
): { readonly payload: Record<string, unknown>; readonly errors: Record<string, string> } => {
  const errors: Record<string, string> = {}
  const text = (name: string) => {
    const v = (values[name] ?? "").trim()
    return v === "" ? undefined : v
  }
  const kind = values["kind"] === "http" ? "http" : "mcp"
  const metadata: Record<string, string> = {}
  for (const line of (values["metadata"] ?? "").split(/\r?\n/u)) {
    if (line.trim() === "") continue
    const eq = line.indexOf("=")
    const key = eq < 0 ? "" : line.slice(0, eq).trim()
    if (key === "") {
      errors["metadata"] = `expected key=value on each line, got "${line.trim().slice(0, 40)}"`
      break
    }
    metadata[key] = line.slice(eq + 1).trim()
  }
  const type = values["auth_type"] === undefined || values["auth_type"] === "" ? "OAUTH" : values["auth_type"]
  const mcp = kind === "mcp" ? { is_mcp: true } : {}
  const oauthConfig =
    kind === "mcp"
      ? { pkce_enabled: true }
      : {
          ...(text("authorize_uri") === undefined ? {} : { authorize_uri: text("authorize_uri") }),
          ...(text("token_uri") === undefined ? {} : { token_uri: text("token_uri") }),
          pkce_enabled: true
        }
  const pattern = type === "OAUTH" ? { type, ...mcp, oauth_config: oauthConfig } : { type, ...mcp }
  const payload: Record<string, unknown> = {
    kind,
    ...(text("display_name") === undefined ? {} : { display_name: text("display_name") }),
    ...(text("description") === undefined ? {} : { description: text("description") }),
    ...(text("icon_url") === undefined ? {} : { icon_url: text("icon_url") }),
    ...(text("proxy_url") === undefined ? {} : { proxy_url: text("proxy_url") }),
    proxy_enabled: true,
    ...(Object.keys(metadata).length === 0 ? {} : { metadata }),
    auth_patterns: [pattern]
  }
  return { payload, errors }
}

/** Which form field an issue path (`auth_patterns[0].oauth_config.token_uri`) belongs to; undefined for the form. */
export const fieldOf = (path: string): string | undefined => {
  if (path.endsWith("authorize_uri")) return "authorize_uri"
  if (path.endsWith("token_uri")) return "token_uri"
  const head = path.split(/[.[]/u)[0] ?? ""
  if (head === "name") return "display_name"
  if (head === "auth_patterns") return "auth_type"
  if (head === "command") return "proxy_url"
  return ["display_name", "description", "icon_url", "proxy_url", "metadata", "kind"].includes(head) ? head : undefined
}

/** The `details.issues` of a `ValidationFailed` (path and message each), or none. */
export const issuesOf = (details: unknown): ReadonlyArray<{ readonly path: string; readonly message: string }> => {
  if (typeof details !== "object" || details === null || !("issues" in details)) return []
  const issues: unknown = details.issues
  return Array.isArray(issues)
    ? issues.flatMap((i: unknown) =>
        typeof i === "object" &&
        i !== null &&
        "path" in i &&
        "message" in i &&
        typeof i.path === "string" &&
        typeof i.message === "string"
          ? [{ path: i.path, message: i.message }]
          : []
      )
    : []
}

/** The errors of a failed create, by field, plus one for the form when an issue has no field. */
export const errorsOf = (
  error: SwitchboardError
): { readonly errors: Record<string, string>; readonly error: string | undefined } => {
  const errors: Record<string, string> = {}
  if (error._tag === "NameTaken") return { errors: { display_name: error.message }, error: undefined }
  const rest: Array<string> = []
  for (const issue of issuesOf(error.details)) {
    const field = fieldOf(issue.path)
    if (field === undefined) rest.push(issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`)
    else errors[field] = errors[field] === undefined ? issue.message : `${errors[field]}; ${issue.message}`
  }
  if (Object.keys(errors).length === 0 && rest.length === 0) return { errors, error: error.message }
  return { errors, error: rest.length === 0 ? undefined : rest.join("; ") }
}
