/**
 * Port: what OAuth keeps between requests. Pending authorization flows (state secret, PKCE code verifier and
 * the flow's context, sealed as one value under the flow's id; single use: `deleteFlow` answers true to exactly
 * one caller), opaque sealed records (client registrations, discovery results, what a token set needs to be
 * refreshed), and refresh leases: a row that one holder at a time may own until it expires, so processes that
 * share the store refresh a credential one at a time.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { SealError, StoreError } from "./Errors.ts"

/** A pending flow as stored: its id, when it expires (ISO, in clear for clean-up) and its sealed body. */
export interface StoredFlow {
  readonly id: string
  readonly expires_at: string
  /** The flow as JSON; sealed at rest under the flow's id. */
  readonly body: Redacted.Redacted<string>
}

export class OAuthStateStore extends Context.Service<
  OAuthStateStore,
  {
    readonly putFlow: (flow: StoredFlow) => Effect.Effect<void, StoreError | SealError>
    readonly getFlow: (id: string) => Effect.Effect<Option.Option<StoredFlow>, StoreError | SealError>
    /** Delete a flow; true for the one caller that deleted it (a flow is used once). */
    readonly deleteFlow: (id: string) => Effect.Effect<boolean, StoreError>
    /** Delete every flow that expired at or before `now` (ISO); the number deleted. */
    readonly deleteExpiredFlows: (now: string) => Effect.Effect<number, StoreError>

    /** An opaque record under a key (a registration, a discovery result, a token set's refresh context). */
    readonly getRecord: (key: string) => Effect.Effect<Option.Option<Redacted.Redacted<string>>, StoreError | SealError>
    readonly putRecord: (key: string, value: Redacted.Redacted<string>) => Effect.Effect<void, StoreError | SealError>
    readonly deleteRecord: (key: string) => Effect.Effect<boolean, StoreError>

    /**
     * Take the lease `key` for `holder` until `untilMillis`: true when it was free, expired (at `nowMillis`) or
     * already this holder's.
     */
    readonly acquireLease: (
      key: string,
      holder: string,
      nowMillis: number,
      untilMillis: number
    ) => Effect.Effect<boolean, StoreError>
    /** Give the lease back (only when `holder` still has it). */
    readonly releaseLease: (key: string, holder: string) => Effect.Effect<void, StoreError>
  }
>()("@switchboard/core/OAuthStateStore") {}
