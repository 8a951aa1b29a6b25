/**
 * libsodium adapters: the XChaCha20-Poly1305 `Sealer` and the master key providers (environment, passphrase,
 * key file, memory).
 */
export * as Bundle from "./Bundle.ts"
export * as KeyProvider from "./KeyProvider.ts"
export * as Sealer from "./Sealer.ts"
