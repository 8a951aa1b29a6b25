/**
 * Port: authenticated encryption of secrets at rest. Associated data binds a sealed value to the place it
 * belongs (table, row id, key id), so a ciphertext copied into another row fails to open.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type { SealError } from "./Errors.ts"

/** Where a sealed value lives; part of the associated data. */
export interface SealContext {
  readonly table: string
  readonly rowId: string
}

/** A sealed value: the key id it was sealed under and the opaque bytes (version, nonce, ciphertext). */
export interface Sealed {
  readonly keyId: string
  readonly bytes: Uint8Array
}

export class Sealer extends Context.Service<
  Sealer,
  {
    /** The id of the key new seals use. */
    readonly keyId: string
    readonly seal: (plaintext: Redacted.Redacted<Uint8Array>, context: SealContext) => Effect.Effect<Sealed, SealError>
    readonly open: (sealed: Sealed, context: SealContext) => Effect.Effect<Redacted.Redacted<Uint8Array>, SealError>
  }
>()("@switchboard/core/Sealer") {}
