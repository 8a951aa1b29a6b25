/**
 * Port: where the master key comes from (environment, passphrase, key file). The key never leaves a
 * `Redacted`; its id is derived from the key so a wrong key is detected before anything is opened.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type { SealError } from "./Errors.ts"

export interface MasterKey {
  /** A short public fingerprint of the key (never the key itself). */
  readonly id: string
  /** 32 bytes. */
  readonly key: Redacted.Redacted<Uint8Array>
  /** Which provider supplied it: "env", "passphrase" or "file". */
  readonly source: "env" | "passphrase" | "file" | "memory"
}

export class KeyProvider extends Context.Service<
  KeyProvider,
  {
    readonly masterKey: Effect.Effect<MasterKey, SealError>
  }
>()("@switchboard/core/KeyProvider") {}
