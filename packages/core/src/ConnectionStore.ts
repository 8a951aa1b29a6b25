/**
 * Port: connections and their write-only secrets (security values and headers), which adapters seal apart
 * from the connection record.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { Connection, Secrets, Status } from "./Connection.ts"
import type { ConnectorNotFound, NameTaken, SealError, StoreError } from "./Errors.ts"

export interface ListQuery {
  readonly after?: string | undefined
  readonly limit: number
  readonly connectorId?: string | undefined
  readonly status?: Status | undefined
  readonly namePrefix?: string | undefined
  /** Only organizational connections and the personal ones of this user. */
  readonly visibleTo: string
}

export interface StatusPatch {
  readonly status: Status
  readonly last_tested_at?: string | null
  readonly last_error?: string | null
  readonly account_label?: string | null
  readonly updated_at: string
}

export class ConnectionStore extends Context.Service<
  ConnectionStore,
  {
    /** Fails with ConnectorNotFound when the connector is gone (deleted concurrently). */
    readonly insert: (
      connection: Connection,
      secrets: Secrets
    ) => Effect.Effect<void, NameTaken | ConnectorNotFound | StoreError | SealError>
    readonly get: (org: string, id: string) => Effect.Effect<Option.Option<Connection>, StoreError>
    readonly getByName: (org: string, name: string) => Effect.Effect<Option.Option<Connection>, StoreError>
    readonly secrets: (org: string, id: string) => Effect.Effect<Secrets, StoreError | SealError>
    readonly list: (org: string, query: ListQuery) => Effect.Effect<ReadonlyArray<Connection>, StoreError>
    readonly setStatus: (
      org: string,
      id: string,
      patch: StatusPatch
    ) => Effect.Effect<Option.Option<Connection>, StoreError>
    /** True when something was deleted. */
    readonly delete: (org: string, id: string) => Effect.Effect<boolean, StoreError>
  }
>()("@switchboard/core/ConnectionStore") {}
