/**
 * Port: the API keys of a team server. A key maps a caller on TCP to a principal (org, workspace, user, role).
 * Only a digest of each key is stored (the key itself is shown once, when it is made); a key is found by its
 * public id, the part of the key that is not secret, and the caller compares digests in constant time.
 * A revoked key stays listed with its `revoked_at` and never authenticates again.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { StoreError } from "./Errors.ts"
import * as Principal from "./Principal.ts"

/** What is known about a key, without its secret: safe to list and to show. */
export const ApiKey = Schema.Struct({
  /** `ak_<public id>`, what `apikey revoke` takes. */
  id: Schema.String,
  /** A label chosen by the admin (who or what holds the key). */
  name: Schema.NullOr(Schema.String),
  /** The start of the key (`sbk_<public id>`), enough to recognise it, useless to authenticate. */
  prefix: Schema.String,
  org: Principal.Principal.fields.org,
  workspace: Principal.Principal.fields.workspace,
  user: Principal.Principal.fields.user,
  role: Principal.Role,
  created_at: Schema.String,
  last_used_at: Schema.NullOr(Schema.String),
  revoked_at: Schema.NullOr(Schema.String)
})
export type ApiKey = typeof ApiKey.Type

/** A key as stored: its description and the hex SHA-256 digest of the whole key. */
export interface StoredApiKey {
  readonly key: ApiKey
  readonly digest: string
}

/** The principal a key authenticates as. */
export const principalOf = (key: ApiKey): Principal.Principal => ({
  org: key.org,
  workspace: key.workspace,
  user: key.user,
  role: key.role
})

export class ApiKeyStore extends Context.Service<
  ApiKeyStore,
  {
    /** Store a new key; its id is new. */
    readonly insert: (stored: StoredApiKey) => Effect.Effect<void, StoreError>
    /** The key with this id (revoked or not). */
    readonly get: (id: string) => Effect.Effect<Option.Option<StoredApiKey>, StoreError>
    /** Every key, oldest first. */
    readonly list: Effect.Effect<ReadonlyArray<ApiKey>, StoreError>
    /** Mark a key revoked at `at` (ISO); the key as it is now, none when there is no such key. A second revoke keeps the first time. */
    readonly revoke: (id: string, at: string) => Effect.Effect<Option.Option<ApiKey>, StoreError>
    /** Record that the key was used at `at` (ISO). */
    readonly touch: (id: string, at: string) => Effect.Effect<void, StoreError>
  }
>()("@switchboard/core/ApiKeyStore") {}
