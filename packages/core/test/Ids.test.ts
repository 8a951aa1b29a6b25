import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Ids from "../src/Ids.ts"

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
/** Ten base32 characters hold 50 bits of milliseconds (until the year 37648). */
const MAX_TIME = 2 ** 50 - 1

const prefixes = Object.values(Ids.prefixes)

/** The id `make` gives at a fixed time and seed, under TestClock. */
const idAt = (prefix: Ids.Prefix, millis: number, seed: string): Promise<string> =>
  Effect.runPromise(
    Effect.gen(function* () {
      yield* TestClock.setTime(millis)
      return yield* Ids.make(prefix)
    }).pipe(Random.withSeed(seed), Effect.provide(TestClock.layer()))
  )

const decodeTime = (id: string): number =>
  Array.from(id.slice(id.indexOf("_") + 1, id.indexOf("_") + 11)).reduce((n, c) => n * 32 + CROCKFORD.indexOf(c), 0)

describe("Ids", () => {
  it.effect("make: prefix, underscore and 26 Crockford base32 characters", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.UTC(2026, 0, 1))
      const id = yield* Ids.make("ctr").pipe(Random.withSeed("fixed"))
      assert.match(id, /^ctr_[0-9A-HJKMNP-TV-Z]{26}$/)
      assert.isTrue(Ids.is("ctr", id))
      assert.isFalse(Ids.is("cred", id))
      assert.strictEqual(decodeTime(id), Date.UTC(2026, 0, 1))
    })
  )

  it.effect("make is exact under TestClock and a fixed seed", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_700_000_000_000)
      const a = yield* Ids.make("conn").pipe(Random.withSeed("seed"))
      const b = yield* Ids.make("conn").pipe(Random.withSeed("seed"))
      assert.strictEqual(a, b)
      assert.strictEqual(a.slice(0, 15), "conn_01HF7YAT00")
    })
  )

  it("property: every id is its prefix plus 26 valid characters, for any time and seed", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...prefixes),
        fc.integer({ min: 0, max: MAX_TIME }),
        fc.string(),
        async (prefix, t, seed) => {
          const id = await idAt(prefix, t, seed)
          assert.strictEqual(id.length, prefix.length + 27)
          assert.isTrue(id.startsWith(`${prefix}_`))
          assert.isTrue(Ids.is(prefix, id), id)
          assert.isTrue(Schema.is(Ids.schema(prefix))(id))
          assert.strictEqual(decodeTime(id), t)
        }
      ),
      { numRuns: 300 }
    )
  })

  it("property: ids made at increasing times sort in time order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: MAX_TIME - 1 }),
        fc.integer({ min: 1, max: MAX_TIME }),
        fc.string(),
        fc.string(),
        async (t1, gap, s1, s2) => {
          const t2 = Math.min(MAX_TIME, t1 + gap)
          const [a, b] = [await idAt("aud", t1, s1), await idAt("aud", t2, s2)]
          assert.isTrue(a < b, `${a} (${t1}) < ${b} (${t2})`)
        }
      ),
      { numRuns: 300 }
    )
  })

  it.effect("ids made later under TestClock.adjust sort after earlier ones", () =>
    Effect.gen(function* () {
      const ids: Array<string> = []
      for (let i = 0; i < 50; i++) {
        ids.push(yield* Ids.make("aud"))
        yield* TestClock.adjust("1 millis")
      }
      assert.deepStrictEqual([...ids].sort(), ids)
      assert.strictEqual(new Set(ids).size, ids.length)
    })
  )

  describe("generator", () => {
    it.effect("ids from one generator are monotonic within a millisecond and when the clock steps back", () =>
      Effect.gen(function* () {
        const next = yield* Ids.generator
        yield* TestClock.setTime(1_700_000_000_000)
        const ids: Array<string> = []
        for (let i = 0; i < 20; i++) ids.push(yield* next("conn"))
        yield* TestClock.setTime(1_600_000_000_000)
        for (let i = 0; i < 5; i++) ids.push(yield* next("conn"))
        yield* TestClock.adjust("1 days")
        ids.push(yield* next("conn"))
        for (const id of ids) assert.isTrue(Ids.is("conn", id), id)
        assert.deepStrictEqual([...ids].sort(), ids)
        assert.strictEqual(new Set(ids).size, ids.length)
      }).pipe(Random.withSeed("generator"))
    )
  })

  describe("is", () => {
    it("refuses other prefixes, lower case, excluded letters and wrong lengths", () => {
      const good = "ctr_01HF7YAT00WCEQMSG9GTHCDEZW"
      assert.isTrue(Ids.is("ctr", good))
      assert.isFalse(Ids.is("conn", good))
      assert.isFalse(Ids.is("ctr", good.toLowerCase()))
      assert.isFalse(Ids.is("ctr", `${good}0`))
      assert.isFalse(Ids.is("ctr", good.slice(0, -1)))
      for (const excluded of ["I", "L", "O", "U"]) assert.isFalse(Ids.is("ctr", `${good.slice(0, -1)}${excluded}`))
      assert.isFalse(Ids.is("ctr", "my-connector"))
      assert.isFalse(Ids.is("ctr", `x${good}`))
    })

    it("property: names are never taken for ids", () => {
      fc.assert(
        fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,62}$/), fc.constantFrom(...prefixes), (name, prefix) => {
          assert.isFalse(Ids.is(prefix, name))
        })
      )
    })
  })
})
