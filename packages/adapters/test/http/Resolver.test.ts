/**
 * The system resolver adapter with addresses that never need DNS (a name lookup here could leave the
 * machine; names are resolved in the loopback-only namespace run of SsrfTable.test.ts), and the table
 * resolver used by the tests (rebinding answers in turn).
 */
import { assert, describe, it } from "@effect/vitest"
import { Resolver as ResolverPort } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import * as Resolver from "../../src/http/Resolver.ts"

describe("Resolver", () => {
  it.live("answers IP literals with their family", () =>
    Effect.gen(function* () {
      const resolver = yield* ResolverPort
      assert.deepStrictEqual(yield* resolver.resolve("127.0.0.1"), [{ address: "127.0.0.1", family: 4 }])
      assert.deepStrictEqual(yield* resolver.resolve("::1"), [{ address: "::1", family: 6 }])
    }).pipe(Effect.provide(Resolver.layer))
  )

  it.effect("the table resolver answers in turn and fails unknown names as unreachable", () =>
    Effect.gen(function* () {
      const resolver = yield* ResolverPort
      assert.deepStrictEqual(yield* resolver.resolve("r.test"), [{ address: "203.0.113.1", family: 4 }])
      assert.deepStrictEqual(yield* resolver.resolve("R.TEST"), [{ address: "::1", family: 6 }])
      assert.deepStrictEqual(yield* resolver.resolve("r.test"), [{ address: "::1", family: 6 }])
      const missing = yield* Effect.flip(resolver.resolve("other.test"))
      assert.strictEqual(missing.reason, "upstream_unreachable")
      assert.strictEqual(missing.message, "could not resolve host other.test (ENOTFOUND)")
    }).pipe(Effect.provide(Resolver.layerTable({ "r.test": [["203.0.113.1"], ["::1"]] })))
  )
})
