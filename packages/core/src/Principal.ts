/**
 * Who is asking: organization, workspace, user and role, and the one policy function that decides what a
 * role may do (the seed roles table: viewers read only; editors change connectors, connections and
 * credentials; admins also manage organization-wide credentials, keys and the audit log).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Forbidden } from "./Errors.ts"

export const Role = Schema.Literals(["admin", "editor", "viewer"])
export type Role = typeof Role.Type

const Segment = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/u, { message: "expected an identifier" })
)

export const Principal = Schema.Struct({
  org: Segment,
  workspace: Segment,
  user: Segment,
  role: Role
})
export type Principal = typeof Principal.Type

/** The principal of a local, single-user setup: admin of org `local`, workspace `default`. */
export const local = (user: string): Principal => ({ org: "local", workspace: "default", user, role: "admin" })

/** The principal the current operation runs as; defaults to the local admin. */
export const CurrentPrincipal = Context.Reference<Principal>("@switchboard/core/CurrentPrincipal", {
  defaultValue: () => local("local")
})

export type Action =
  | "connector:read"
  | "connector:write"
  | "credential:read"
  | "credential:write"
  | "connection:read"
  | "connection:write"
  | "connection:use"
  | "connection:test"
  | "audit:read"
  | "key:manage"

/** What the action is about, when the answer depends on it. */
export interface Resource {
  /** For credentials: the scope written. */
  readonly scope?: "organization" | "workspace" | "user"
  /** The user who owns the resource (a user credential, a personal connection). */
  readonly owner?: string
}

export type Decision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string }

const allow: Decision = { allowed: true }
const deny = (reason: string): Decision => ({ allowed: false, reason })

const reads: ReadonlySet<Action> = new Set(["connector:read", "credential:read", "connection:read"])

/** The policy: (principal, action, resource) → allow or deny with a reason. */
export const authorize = (principal: Principal, action: Action, resource: Resource = {}): Decision => {
  const { role } = principal
  if (reads.has(action)) return allow
  if (action === "audit:read" || action === "key:manage") {
    return role === "admin" ? allow : deny(`${action} requires the admin role`)
  }
  if (role === "viewer") return deny(`viewers may only read; ${action} requires editor or admin`)
  if (action === "credential:write") {
    if (resource.scope === "organization" && role !== "admin") {
      return deny("organization credentials are managed by admins")
    }
    if (resource.scope === "user" && resource.owner !== undefined && resource.owner !== principal.user) {
      return role === "admin" ? allow : deny("user credentials are managed by their owner")
    }
  }
  return allow
}

/** The current principal when the policy allows `action` on `resource`, else `Forbidden` with the policy's reason. */
export const guard = (action: Action, resource?: Resource): Effect.Effect<Principal, Forbidden> =>
  Effect.flatMap(Effect.service(CurrentPrincipal), (principal) => {
    const decision = authorize(principal, action, resource)
    return decision.allowed
      ? Effect.succeed(principal)
      : Effect.fail(new Forbidden({ message: decision.reason, details: { action, role: principal.role } }))
  })
