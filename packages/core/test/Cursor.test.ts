import { assert, describe, it } from "@effect/vitest"
import { Base64Url } from "effect/encoding"
import * as Result from "effect/Result"
import * as fc from "fast-check"
import * as Cursor from "../src/Cursor.ts"
import type { InvalidRequest } from "../src/Errors.ts"

const ok = <A>(result: Result.Result<A, InvalidRequest>): A => {
  if (Result.isFailure(result)) assert.fail(`expected success, got ${result.failure.message}`)
  return result.success
}

const refused = <A>(result: Result.Result<A, InvalidRequest>): InvalidRequest => {
  if (Result.isSuccess(result)) assert.fail(`expected invalid_cursor, got ${JSON.stringify(result.success)}`)
  assert.strictEqual(result.failure._tag, "InvalidRequest")
  assert.strictEqual(result.failure.reason, "invalid_cursor")
  assert.strictEqual(result.failure.code, "invalid_cursor")
  return result.failure
}

const body = (value: unknown) => Base64Url.encode(JSON.stringify(value))

/** The checksum the module uses, recomputed here so forged cursors differ in exactly one respect. */
const fnv1a = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    hash = Math.imul(hash ^ (unit & 0xff), 0x01000193)
    hash = Math.imul(hash ^ (unit >>> 8), 0x01000193)
  }
  return (hash >>> 0).toString(16).padStart(8, "0")
}

const after = fc.oneof(
  fc.constant("ctr_01J9Z3K5T8V2W4X6Y8Z0A2B4C6"),
  fc.string({ maxLength: 60 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: fc.constantFrom("\uD800", "\uDC00", '"', "\\", "|", "a"), maxLength: 10 })
)

const filters = fc.dictionary(
  fc.constantFrom("kind", "name_prefix", "status", "q"),
  fc.option(fc.string({ maxLength: 10 }), { nil: undefined })
)

const byKey = ([a]: [string, unknown], [b]: [string, unknown]) => (a < b ? -1 : a > b ? 1 : 0)

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".split("")

describe("Cursor", () => {
  const filter = Cursor.filterKey({ kind: "http", status: "active" })

  it("round-trips a position", () => {
    const cursor = Cursor.encode({ after: "ctr_01J9Z3K5T8", filter })
    assert.match(cursor, /^[A-Za-z0-9_-]+$/)
    assert.deepStrictEqual(ok(Cursor.decode(cursor, filter)), { after: "ctr_01J9Z3K5T8" })
    const json = JSON.parse(Result.getOrThrow(Base64Url.decodeString(cursor)))
    assert.deepStrictEqual(Object.keys(json), ["v", "a", "f", "c"])
    assert.strictEqual(json.v, 1)
    assert.match(json.f, /^[0-9a-f]{8}$/)
  })

  it("refuses a cursor reused with other filters", () => {
    const cursor = Cursor.encode({ after: "ctr_1", filter })
    const error = refused(Cursor.decode(cursor, Cursor.filterKey({ kind: "mcp", status: "active" })))
    assert.include(error.message, "other filters")
  })

  it("refuses malformed cursors with a clear message", () => {
    const f = fnv1a(filter)
    const c = (v: number, a: string) => fnv1a(`${v}|${a}|${f}`)
    const cases: ReadonlyArray<[string, string]> = [
      ["", "empty"],
      ["a".repeat(Cursor.MAX_LENGTH + 1), "too long"],
      ["not base64!", "not base64url"],
      ["a", "not base64url"],
      [Base64Url.encode("not json"), "malformed"],
      [body([1, "x"]), "malformed"],
      [body({ v: 1, a: 5, f, c: c(1, "5") }), "malformed"],
      [body({ v: 1, a: "x", f: "XYZ", c: c(1, "x") }), "malformed"],
      [body({ v: 2, a: "x", f, c: c(2, "x") }), "version"],
      [body({ v: 1, a: "x", f, c: "00000000" }), "modified"],
      [body({ v: 1, a: "y", f, c: c(1, "x") }), "modified"],
      [body({ a: "x", v: 1, f, c: c(1, "x") }), "modified"],
      [body({ v: 1, a: "x", f, c: c(1, "x"), extra: true }), "modified"],
      [`${body({ v: 1, a: "x", f, c: c(1, "x") })}==`.slice(0, -2) + "=", "not base64url"],
      [Base64Url.encodePadded(JSON.stringify({ v: 1, a: "xy", f, c: c(1, "xy") })), "modified"]
    ]
    for (const [cursor, why] of cases) assert.include(refused(Cursor.decode(cursor, filter)).message, why, cursor)
    // the same body, well spelled, is accepted
    assert.deepStrictEqual(ok(Cursor.decode(body({ v: 1, a: "x", f, c: c(1, "x") }), filter)), { after: "x" })
  })

  it("refuses a truncated cursor", () => {
    const cursor = Cursor.encode({ after: "ctr_01J9Z3K5T8V2W4X6Y8Z0A2B4C6", filter })
    for (let n = 0; n < cursor.length; n++) {
      assert.include(refused(Cursor.decode(cursor.slice(0, n), filter)).message, "Invalid cursor")
    }
  })

  it("property: decode(encode(x)) round-trips for any sort key and filters", () => {
    fc.assert(
      fc.property(after, filters, (a, fs) => {
        const key = Cursor.filterKey(fs)
        assert.deepStrictEqual(ok(Cursor.decode(Cursor.encode({ after: a, filter: key }), key)), { after: a })
      }),
      { numRuns: 1000 }
    )
  })

  it("property: any single-character change of a cursor is refused", () => {
    fc.assert(
      fc.property(after, fc.nat(), fc.constantFrom(...BASE64URL), (a, at, char) => {
        const cursor = Cursor.encode({ after: a, filter })
        const i = at % cursor.length
        fc.pre(cursor[i] !== char)
        const mutated = `${cursor.slice(0, i)}${char}${cursor.slice(i + 1)}`
        assert.include(refused(Cursor.decode(mutated, filter)).message, "Invalid cursor")
      }),
      { numRuns: 2000 }
    )
  })

  it("property: inserting or deleting a character is refused", () => {
    fc.assert(
      fc.property(after, fc.nat(), fc.option(fc.constantFrom(...BASE64URL), { nil: undefined }), (a, at, char) => {
        const cursor = Cursor.encode({ after: a, filter })
        const mutated =
          char === undefined
            ? `${cursor.slice(0, at % cursor.length)}${cursor.slice((at % cursor.length) + 1)}`
            : `${cursor.slice(0, at % (cursor.length + 1))}${char}${cursor.slice(at % (cursor.length + 1))}`
        assert.include(refused(Cursor.decode(mutated, filter)).message, "Invalid cursor")
      }),
      { numRuns: 1000 }
    )
  })

  it("property: arbitrary strings never throw and only decode when well formed", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: fc.constantFrom(...BASE64URL), maxLength: 80 }),
          fc.string({ unit: "binary" })
        ),
        fc.string(),
        (cursor, f) => {
          const result = Cursor.decode(cursor, f)
          if (Result.isFailure(result)) {
            assert.strictEqual(result.failure.reason, "invalid_cursor")
          } else {
            assert.strictEqual(Cursor.encode({ after: result.success.after, filter: f }), cursor)
          }
        }
      ),
      { numRuns: 2000 }
    )
  })

  describe("filterKey", () => {
    it("sorts keys and drops undefined values", () => {
      assert.strictEqual(
        Cursor.filterKey({ status: "active", kind: "http", name_prefix: undefined }),
        Cursor.filterKey({ kind: "http", status: "active" })
      )
      assert.notStrictEqual(Cursor.filterKey({ kind: "" }), Cursor.filterKey({}))
      assert.notStrictEqual(Cursor.filterKey({ a: "b,c" }), Cursor.filterKey({ a: "b", c: "" }))
    })

    it("property: independent of key order; equal keys mean equal filters", () => {
      fc.assert(
        fc.property(filters, filters, (x, y) => {
          const reversed = Object.fromEntries(Object.entries(x).reverse())
          assert.strictEqual(Cursor.filterKey(reversed), Cursor.filterKey(x))
          const defined = (r: Record<string, string | undefined>) =>
            Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined))
          assert.strictEqual(
            Cursor.filterKey(x) === Cursor.filterKey(y),
            JSON.stringify(Object.entries(defined(x)).sort(byKey)) ===
              JSON.stringify(Object.entries(defined(y)).sort(byKey))
          )
        })
      )
    })
  })
})
