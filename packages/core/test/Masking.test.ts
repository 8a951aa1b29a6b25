import { assert, describe, it } from "@effect/vitest"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import * as Masking from "../src/Masking.ts"

/** Secrets of any length, with astral code points (surrogate pairs) and the mask character itself. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const isWellFormed = (s: string) => !LONE_SURROGATE.test(s)

const secret = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: fc.constantFrom("*", "a", "😀", "é", " "), maxLength: 14 })
)

describe("Masking", () => {
  describe("mask", () => {
    it("shows the first 2 and last 2 characters of a secret of 10 or more", () => {
      assert.strictEqual(Masking.mask("svc_kaireon"), "sv***on")
      assert.strictEqual(Masking.mask("0123456789"), "01***89")
      assert.strictEqual(Masking.mask("ghp_aVeryLongPersonalAccessToken"), "gh***en")
    })

    it("masks a secret shorter than 10 entirely, whatever its length", () => {
      for (const s of ["", "a", "abcd", "012345678"]) assert.strictEqual(Masking.mask(s), "****")
    })

    it("counts code points and never splits a surrogate pair", () => {
      assert.strictEqual(Masking.mask("😀😁abcdef😂😃"), "😀😁***😂😃")
      assert.strictEqual(Masking.mask("😀😀😀😀😀😀😀😀😀"), "****") // 9 code points, 18 UTF-16 units
      assert.isTrue(isWellFormed(Masking.mask("😀😀😀😀😀😀😀😀😀😀")))
    })

    it("property: at most 4 code points of the secret are shown: its first 2 and last 2", () => {
      fc.assert(
        fc.property(secret, (s) => {
          const points = Array.from(s)
          const out = Masking.mask(s)
          if (points.length < 10) {
            assert.strictEqual(out, "****")
            return
          }
          const shown = Array.from(out)
          assert.strictEqual(shown.length, 7)
          assert.deepStrictEqual(shown.slice(2, 5), ["*", "*", "*"])
          assert.deepStrictEqual(
            [...shown.slice(0, 2), ...shown.slice(5)],
            [...points.slice(0, 2), ...points.slice(-2)]
          )
        }),
        { numRuns: 1000 }
      )
    })

    it("property: the output of a short secret holds none of its characters besides the mask", () => {
      fc.assert(
        fc.property(
          secret.filter((s) => Array.from(s).length < 10),
          (s) => {
            const out = Masking.mask(s)
            for (const c of Array.from(s)) if (c !== "*") assert.notInclude(out, c)
            assert.strictEqual(out.length, 4)
          }
        )
      )
    })

    it("property: deterministic, well-formed, and never the secret itself", () => {
      fc.assert(
        fc.property(secret, (s) => {
          const out = Masking.mask(s)
          assert.strictEqual(Masking.mask(s), out)
          assert.isTrue(isWellFormed(out))
          // "****" masks to itself: the one input the fixed-width mask cannot differ from, and it reveals nothing.
          if (s.length >= 1 && s !== "****") assert.notStrictEqual(out, s)
        }),
        { numRuns: 1000 }
      )
    })
  })

  describe("maskRecord", () => {
    it("masks each redacted value", () => {
      const masked = Masking.maskRecord({
        username: Redacted.make("svc_kaireon"),
        password: Redacted.make("hunter2"),
        token: Redacted.make("")
      })
      assert.deepStrictEqual(masked, { username: "sv***on", password: "****", token: "****" })
    })

    it("keeps a __proto__ key as a plain key", () => {
      const masked = Masking.maskRecord(Object.fromEntries([["__proto__", Redacted.make("0123456789")]]))
      assert.deepStrictEqual(Object.entries(masked), [["__proto__", "01***89"]])
      assert.strictEqual(Object.getPrototypeOf(masked), Object.prototype)
    })

    it("property: agrees with mask on every key", () => {
      fc.assert(
        fc.property(fc.dictionary(fc.string(), secret), (plain) => {
          const redacted = Object.fromEntries(Object.entries(plain).map(([k, v]) => [k, Redacted.make(v)]))
          const masked = Masking.maskRecord(redacted)
          assert.deepStrictEqual(Object.keys(masked), Object.keys(plain))
          for (const [k, v] of Object.entries(plain)) assert.strictEqual(masked[k], Masking.mask(v))
        })
      )
    })
  })
})
