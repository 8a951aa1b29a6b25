/**
 * Port: credentials with their secret values. Adapters seal values at rest; the vault hands them back as
 * `Redacted` only to the service resolving a call. Keyed by connector, scope, owner and name.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { Credential, Owner, Scope } from "./Credential.ts"
import type { SealError, StoreError } from "./Errors.ts"

export interface Key {
  readonly connectorId: string
  readonly scope: Scope
  readonly owner: Owner
  readonly name: string
}

export class CredentialVault extends Context.Service<
  CredentialVault,
  {
    /** Create or replace by key; a replaced credential keeps its id and `created_at`. Returns what is stored. */
    readonly put: (credential: Credential) => Effect.Effect<Credential, StoreError | SealError>
    readonly get: (key: Key) => Effect.Effect<Option.Option<Credential>, StoreError | SealError>
    readonly list: (
      connectorId: string,
      scope: Scope,
      owner: Owner
    ) => Effect.Effect<ReadonlyArray<Credential>, StoreError | SealError>
    /** True when something was deleted. */
    readonly delete: (key: Key) => Effect.Effect<boolean, StoreError>
  }
>()("@switchboard/core/CredentialVault") {}
