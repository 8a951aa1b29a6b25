/**
 * The libsodium sealer against real libsodium: round trips, fresh nonces, associated data that pins a value
 * to its row, tampering, key mismatch and the store's check value.
 */
import { assert, describe, it } from "@effect/vitest"
import type { SealError } from "@switchboard/core/Errors"
import type { SealContext, Sealed } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import { KeyProvider, Sealer } from "../../src/sodium/index.ts"

const encoder = new TextEncoder()
const context: SealContext = { table: "credentials", rowId: "cred_01" }

const sealerWith = (key?: Uint8Array) => Sealer.make.pipe(Effect.provide(KeyProvider.layerMemory(key)))

const key = (fill: number) => new Uint8Array(32).fill(fill)

const bytesEqual = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i])

const expectSealError = (reason: SealError["reason"]) => (error: SealError) => {
  assert.strictEqual(error._tag, "SealError")
  assert.strictEqual(error.reason, reason)
  assert.strictEqual(error.code, reason)
  return error
}

describe("sodium Sealer", () => {
  it.effect("opens what it sealed, in the documented layout", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith()
      const plaintext = encoder.encode("ghp_token_value")
      const sealed = yield* sealer.seal(Redacted.make(plaintext), context)
      assert.strictEqual(sealed.keyId, sealer.keyId)
      assert.strictEqual(sealed.bytes[0], Sealer.VERSION)
      assert.strictEqual(sealed.bytes.length, 1 + 24 + plaintext.length + 16)
      const opened = yield* sealer.open(sealed, context)
      assert.isTrue(bytesEqual(Redacted.value(opened), plaintext))
    })
  )

  it.effect("seals an empty value", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith()
      const sealed = yield* sealer.seal(Redacted.make(new Uint8Array(0)), context)
      const opened = yield* sealer.open(sealed, context)
      assert.strictEqual(Redacted.value(opened).length, 0)
    })
  )

  it.effect("uses a fresh nonce for every seal", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith()
      const plaintext = Redacted.make(encoder.encode("same"))
      const a = yield* sealer.seal(plaintext, context)
      const b = yield* sealer.seal(plaintext, context)
      assert.isFalse(bytesEqual(a.bytes, b.bytes))
      assert.isFalse(bytesEqual(a.bytes.subarray(1, 25), b.bytes.subarray(1, 25)))
    })
  )

  it.effect("refuses a value moved to another row or table", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith()
      const sealed = yield* sealer.seal(Redacted.make(encoder.encode("secret")), context)
      for (const other of [
        { ...context, rowId: "cred_02" },
        { ...context, table: "oauth_tokens" }
      ]) {
        const error = yield* Effect.flip(sealer.open(sealed, other))
        expectSealError("open_failed")(error)
      }
    })
  )

  it.effect("refuses every single flipped byte", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith()
      const sealed = yield* sealer.seal(Redacted.make(encoder.encode("secret")), context)
      for (let i = 0; i < sealed.bytes.length; i++) {
        const bytes = sealed.bytes.slice()
        bytes[i] = bytes[i]! ^ 0x01
        const error = yield* Effect.flip(sealer.open({ keyId: sealed.keyId, bytes }, context))
        expectSealError("open_failed")(error)
      }
    })
  )

  it.effect("refuses truncated and empty bytes", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith()
      const sealed = yield* sealer.seal(Redacted.make(encoder.encode("secret")), context)
      for (const bytes of [new Uint8Array(0), sealed.bytes.subarray(0, 40), sealed.bytes.subarray(0, -1)]) {
        expectSealError("open_failed")(yield* Effect.flip(sealer.open({ keyId: sealed.keyId, bytes }, context)))
      }
    })
  )

  it.effect("reports a value sealed under another key as key_mismatch, and a forged key id as open_failed", () =>
    Effect.gen(function* () {
      const a = yield* sealerWith(key(1))
      const b = yield* sealerWith(key(2))
      assert.notStrictEqual(a.keyId, b.keyId)
      const sealed = yield* a.seal(Redacted.make(encoder.encode("secret")), context)
      const mismatch = expectSealError("key_mismatch")(yield* Effect.flip(b.open(sealed, context)))
      assert.include(mismatch.message, a.keyId)
      const forged: Sealed = { keyId: b.keyId, bytes: sealed.bytes }
      expectSealError("open_failed")(yield* Effect.flip(b.open(forged, context)))
    })
  )

  it.effect("derives the key id from the key: stable, 16 hex digits, not the key", () =>
    Effect.gen(function* () {
      const a = yield* sealerWith(key(7))
      const again = yield* sealerWith(key(7))
      assert.strictEqual(a.keyId, again.keyId)
      assert.match(a.keyId, /^[0-9a-f]{16}$/)
      assert.notInclude("07".repeat(32), a.keyId)
    })
  )

  it.effect("binds the associated data unambiguously", () =>
    Effect.gen(function* () {
      const a = Sealer.associatedData({ table: "a\u0000b", rowId: "c" }, "k")
      const b = Sealer.associatedData({ table: "a", rowId: "b\u0000c" }, "k")
      assert.isFalse(bytesEqual(a, b))
      const sealer = yield* sealerWith()
      const lone = { table: "t", rowId: "\ud800" }
      expectSealError("seal_failed")(yield* Effect.flip(sealer.seal(Redacted.make(new Uint8Array(1)), lone)))
    })
  )

  it.effect("keeps a check value that proves the key", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith(key(3))
      const check = yield* Sealer.makeCheckValue(sealer)
      yield* Sealer.verifyCheckValue(sealer, check)
      yield* Sealer.verifyCheckValue(yield* sealerWith(key(3)), check)

      const other = yield* sealerWith(key(4))
      const wrong = expectSealError("key_mismatch")(yield* Effect.flip(Sealer.verifyCheckValue(other, check)))
      assert.include(wrong.message, "the master key does not match this database")

      const bytes = check.bytes.slice()
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff
      const tampered = yield* Effect.flip(Sealer.verifyCheckValue(sealer, { keyId: check.keyId, bytes }))
      assert.include(expectSealError("key_mismatch")(tampered).message, "does not match this database")

      // A value sealed for any other row is not a check value, even under the right key.
      const elsewhere = yield* sealer.seal(Redacted.make(encoder.encode("switchboard key check v1")), context)
      expectSealError("key_mismatch")(yield* Effect.flip(Sealer.verifyCheckValue(sealer, elsewhere)))
    })
  )

  it.effect("property: open(seal(x)) == x, and no other context opens it", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith()
      // A tiny alphabet (with NUL) makes near-miss contexts common; graphemes cover the rest of Unicode.
      const text = fc.oneof(
        fc.string({ unit: fc.constantFrom("a", "b", "\u0000", "é", "🙂"), maxLength: 6 }),
        fc.string({ unit: "grapheme", maxLength: 24 })
      )
      const contextArb = fc.record({ table: text, rowId: text })
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 512 }), contextArb, contextArb, (plaintext, here, there) => {
          const sealed = Effect.runSync(sealer.seal(Redacted.make(plaintext), here))
          const opened = Effect.runSync(sealer.open(sealed, here))
          if (!bytesEqual(Redacted.value(opened), plaintext)) return false
          if (here.table === there.table && here.rowId === there.rowId) return true
          const exit = Effect.runSyncExit(sealer.open(sealed, there))
          if (Exit.isSuccess(exit)) return false
          const error = Exit.findErrorOption(exit)
          return error._tag === "Some" && error.value.reason === "open_failed"
        }),
        { numRuns: 300 }
      )
    })
  )
})
