/**
 * What the sealer keeps between calls: nonces drawn from node's CSPRNG many at a time are still each used once
 * (across pool refills and across sealers), and the associated data kept per row still binds a value to its
 * row, its table and its key however many rows have been opened before (the kept set is bounded and refilled).
 */
import { assert, describe, it } from "@effect/vitest"
import type { SealContext } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { KeyProvider, Sealer } from "../../src/sodium/index.ts"

const encoder = new TextEncoder()
const sealerWith = (key: Uint8Array) => Sealer.make.pipe(Effect.provide(KeyProvider.layerMemory(key)))
const key = (fill: number) => new Uint8Array(32).fill(fill)
const nonceOf = (bytes: Uint8Array) => Buffer.from(bytes.subarray(1, 25)).toString("hex")

describe("sodium Sealer caches", () => {
  it.effect("every seal gets its own nonce, across refills of the nonce pool and across sealers", () =>
    Effect.gen(function* () {
      const first = yield* sealerWith(key(1))
      const second = yield* sealerWith(key(2))
      const nonces = new Set<string>()
      const context: SealContext = { table: "credentials", rowId: "cred_same" }
      // Several times the pool's 128 nonces, alternating sealers.
      for (let i = 0; i < 700; i++) {
        const sealer = i % 2 === 0 ? first : second
        const sealed = yield* sealer.seal(Redacted.make(encoder.encode(`value ${i}`)), context)
        nonces.add(nonceOf(sealed.bytes))
        const opened = yield* sealer.open(sealed, context)
        assert.strictEqual(new TextDecoder().decode(Redacted.value(opened)), `value ${i}`)
      }
      assert.strictEqual(nonces.size, 700)
    })
  )

  it.effect("kept associated data still pins a value to its row and table, past the bound of what is kept", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith(key(3))
      const plaintext = encoder.encode("ghp_token")
      const pinned: SealContext = { table: "credentials", rowId: "cred_pinned" }
      const sealed = yield* sealer.seal(Redacted.make(plaintext), pinned)
      // More rows than the sealer keeps associated data for, opened and refused in between.
      for (let i = 0; i < 5000; i++) {
        const other: SealContext = { table: i % 2 === 0 ? "credentials" : "connections", rowId: `cred_${i}` }
        const refused = yield* Effect.flip(sealer.open(sealed, other))
        assert.strictEqual(refused.reason, "open_failed")
      }
      const opened = yield* sealer.open(sealed, pinned)
      assert.strictEqual(new TextDecoder().decode(Redacted.value(opened)), "ghp_token")
      const otherTable = yield* Effect.flip(sealer.open(sealed, { table: "connections", rowId: "cred_pinned" }))
      assert.strictEqual(otherTable.reason, "open_failed")
    })
  )

  it.effect("a row id with a lone surrogate is refused every time, never kept", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith(key(4))
      const bad: SealContext = { table: "credentials", rowId: "cred_\uD800" }
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(sealer.seal(Redacted.make(encoder.encode("x")), bad))
        assert.strictEqual(error.reason, "seal_failed")
      }
    })
  )
})
