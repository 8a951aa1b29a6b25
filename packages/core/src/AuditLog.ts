/**
 * Port: an append-only record of what was done, by whom, to what, with what outcome. Never secrets, never
 * bodies.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { StoreError } from "./Errors.ts"

export const AuditRecord = Schema.Struct({
  id: Schema.String,
  at: Schema.String,
  org: Schema.String,
  workspace: Schema.String,
  actor: Schema.String,
  /** `connector.create`, `credential.set`, `connection.proxy`, `tool.call`, … */
  action: Schema.String,
  outcome: Schema.Literals(["success", "failure"]),
  connector_id: Schema.optionalKey(Schema.String),
  connection_id: Schema.optionalKey(Schema.String),
  target: Schema.optionalKey(Schema.String),
  method: Schema.optionalKey(Schema.String),
  path: Schema.optionalKey(Schema.String),
  tool: Schema.optionalKey(Schema.String),
  status: Schema.optionalKey(Schema.Int),
  duration_ms: Schema.optionalKey(Schema.Finite),
  error_code: Schema.optionalKey(Schema.String)
})
export type AuditRecord = typeof AuditRecord.Type

/** Audit lists run newest first: `after` is the id of the last row of the previous page. */
export interface ListQuery {
  readonly after?: string | undefined
  readonly limit: number
  readonly connectionId?: string | undefined
  readonly action?: string | undefined
}

export class AuditLog extends Context.Service<
  AuditLog,
  {
    readonly append: (record: AuditRecord) => Effect.Effect<void, StoreError>
    readonly list: (org: string, query: ListQuery) => Effect.Effect<ReadonlyArray<AuditRecord>, StoreError>
  }
>()("@switchboard/core/AuditLog") {}
