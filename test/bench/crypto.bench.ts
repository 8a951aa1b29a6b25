/**
 * Seal + open throughput through the `Sealer` port (the sodium adapter, run as an Effect) against the raw calls
 * it makes (a 24-byte random nonce, libsodium XChaCha20-Poly1305 encrypt, decrypt), same key, same associated
 * data, same 52-byte credential, interleaved tinybench slices. Target: ≥ 0.8× raw.
 *
 * Two raw baselines: the raw calls with the nonce from node's CSPRNG, as the Sealer draws it (the target applies
 * to this one: it measures the Sealer's own overhead), and the plain libsodium calls with libsodium's
 * `randombytes_buf` for the nonce (its WebAssembly build calls back into JavaScript for every four random bytes,
 * which costs more than the cipher itself).
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import { KeyProvider, Sealer } from "@switchboard/adapters/sodium"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { randomFillSync } from "node:crypto"
import { createRequire } from "node:module"
import { atLeast, interleaved, rateRow, report } from "./harness.ts"

/** The few libsodium calls the raw baseline makes. */
interface RawSodium {
  readonly ready: Promise<void>
  readonly randombytes_buf: (length: number) => Uint8Array
  readonly crypto_aead_xchacha20poly1305_ietf_encrypt: (
    message: Uint8Array,
    additionalData: Uint8Array,
    secretNonce: null,
    publicNonce: Uint8Array,
    key: Uint8Array
  ) => Uint8Array
  readonly crypto_aead_xchacha20poly1305_ietf_decrypt: (
    secretNonce: null,
    ciphertext: Uint8Array,
    additionalData: Uint8Array,
    publicNonce: Uint8Array,
    key: Uint8Array
  ) => Uint8Array
}

/** Seal + open pairs per tinybench iteration (amortises running the Effect). */
const BATCH = 64

// The libsodium build the sodium adapter uses, resolved from that package (the test package does not depend on it).
const lib = createRequire(import.meta.resolve("@switchboard/adapters/sodium"))("libsodium-wrappers-sumo") as RawSodium
await lib.ready

const key = new Uint8Array(32).map((_, i) => (i * 29 + 3) & 0xff)
const sealer = await Effect.runPromise(Sealer.make.pipe(Effect.provide(KeyProvider.layerMemory(key))))
const plaintext = new TextEncoder().encode(JSON.stringify({ token: "ghp_0123456789abcdefghijklmnopqrstuvwxyz" }))
const context = { table: "credentials", rowId: "cred_01JBENCH0000000000000000042" }
const ad = Sealer.associatedData(context, sealer.keyId)

const viaSealer = Effect.gen(function* () {
  for (let i = 0; i < BATCH; i++) {
    const sealed = yield* sealer.seal(Redacted.make(plaintext), context)
    yield* sealer.open(sealed, context)
  }
})

const names = {
  sameNonce: "raw libsodium AEAD, node:crypto nonce",
  libsodium: "raw libsodium, randombytes_buf nonce"
}
const summaries = await interleaved(
  [
    { name: "Sealer (Effect)", batch: BATCH, fn: () => Effect.runSync(viaSealer) },
    {
      name: names.sameNonce,
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          const nonce = randomFillSync(new Uint8Array(24))
          const ciphertext = lib.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, null, nonce, key)
          lib.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, ad, nonce, key)
        }
      }
    },
    {
      name: names.libsodium,
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          const nonce = lib.randombytes_buf(24)
          const ciphertext = lib.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, null, nonce, key)
          lib.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, ad, nonce, key)
        }
      }
    }
  ],
  { rounds: 9, sliceMs: 250, warmupMs: 400, sync: true }
)

report([
  rateRow(summaries, {
    id: "seal_open",
    figure: `seal + open (${plaintext.length} B), pairs/s`,
    subject: "Sealer (Effect)",
    baseline: names.sameNonce,
    target: atLeast(0.8)
  }),
  rateRow(summaries, {
    id: "seal_open_vs_libsodium_random",
    figure: `seal + open (${plaintext.length} B), pairs/s`,
    subject: "Sealer (Effect)",
    baseline: names.libsodium
  })
])
