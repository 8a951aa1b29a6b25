/**
 * Port: where connectors and their immutable versions live. Names are unique per organization; every update
 * inserts a new version and keeps the old ones for pinned connections. Lists are keyset-paginated by id.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { Connector, Kind } from "./Connector.ts"
import type { ConnectorInUse, ConnectorNotFound, NameTaken, StoreError, VersionConflict } from "./Errors.ts"

export interface ListQuery {
  /** Rows after this id (exclusive), in id order. */
  readonly after?: string | undefined
  /** At most this many rows. */
  readonly limit: number
  readonly kind?: Kind | undefined
  readonly namePrefix?: string | undefined
}

export class ConnectorStore extends Context.Service<
  ConnectorStore,
  {
    readonly insert: (org: string, connector: Connector) => Effect.Effect<void, NameTaken | StoreError>
    /**
     * Store `next` as the new latest version; fails with VersionConflict when the latest is no longer
     * `next.version - 1` (another update won the race), ConnectorNotFound when the connector is gone.
     */
    readonly update: (
      org: string,
      next: Connector
    ) => Effect.Effect<void, NameTaken | ConnectorNotFound | VersionConflict | StoreError>
    readonly get: (org: string, id: string) => Effect.Effect<Option.Option<Connector>, StoreError>
    readonly getByName: (org: string, name: string) => Effect.Effect<Option.Option<Connector>, StoreError>
    readonly getVersion: (
      org: string,
      id: string,
      version: number
    ) => Effect.Effect<Option.Option<Connector>, StoreError>
    readonly list: (org: string, query: ListQuery) => Effect.Effect<ReadonlyArray<Connector>, StoreError>
    /** Delete a connector, its versions and its credentials; refused while a connection uses it. */
    readonly delete: (org: string, id: string) => Effect.Effect<void, ConnectorNotFound | ConnectorInUse | StoreError>
  }
>()("@switchboard/core/ConnectorStore") {}
