/**
 * Port: DNS. The SSRF guard resolves once through this, checks every address, and connects to the checked
 * address, so a rebinding answer between check and connect cannot redirect a call.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { UpstreamError } from "./Errors.ts"

export interface Address {
  readonly address: string
  readonly family: 4 | 6
}

export class Resolver extends Context.Service<
  Resolver,
  {
    readonly resolve: (hostname: string) => Effect.Effect<ReadonlyArray<Address>, UpstreamError>
  }
>()("@switchboard/core/Resolver") {}
