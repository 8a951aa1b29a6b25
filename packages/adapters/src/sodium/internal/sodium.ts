/**
 * The one place libsodium is loaded, plus the key fingerprint both the key providers and the sealer rely on.
 * libsodium-wrappers-sumo (the build with Argon2id) is used through its default export only: its named exports type-check but throw at
 * runtime. Every call must wait for `ready`.
 */
import { SealError } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"
import sodium from "libsodium-wrappers-sumo"

export type Sodium = typeof sodium

/** Master keys are 32 bytes (XChaCha20-Poly1305 key size). */
export const KEY_BYTES = 32

/** Waits for the WebAssembly module to load; a failure is reported with the caller's reason. */
export const load = (reason: SealError["reason"]): Effect.Effect<Sodium, SealError> =>
  Effect.tryPromise({
    try: () => sodium.ready,
    catch: () => new SealError({ reason, message: "libsodium failed to initialise" })
  }).pipe(Effect.as(sodium))

// A BLAKE2b key (16 to 64 bytes) that separates key ids from any other hash of the master key.
const KEY_ID_CONTEXT = "switchboard:key-id:v1"

/** A public fingerprint of a master key: the first 8 bytes of a keyed BLAKE2b hash, as hex. */
export const keyIdOf = (lib: Sodium, key: Uint8Array): string =>
  lib.to_hex(lib.crypto_generichash(32, key, lib.from_string(KEY_ID_CONTEXT)).subarray(0, 8))
