/**
 * The one canonical JSON encoding: keys sorted at every level, the same value whatever the key order, the same
 * value back when parsed, `undefined` members left out, an own `__proto__` key kept, and (for the audit chain,
 * whose stored hashes depend on it) the very bytes of the encoding the chain was written with before this module.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { createHash } from "node:crypto"
import * as AuditChain from "../src/AuditChain.ts"
import type { AuditRecord } from "../src/AuditLog.ts"
import { canonicalJson } from "../src/Canonical.ts"

/** The same value with every object's keys in reverse order. */
const reorder = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(reorder)
  if (value === null || typeof value !== "object") return value
  return Object.fromEntries(
    Object.keys(value)
      .reverse()
      .map((k) => [k, reorder((value as Record<string, unknown>)[k])])
  )
}

/** The audit chain's encoding as it was written before `Canonical` (a sorted copy, then `JSON.stringify`). */
const sortKeys = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (typeof value !== "object" || value === null) return value
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key]
    if (v !== undefined) out[key] = sortKeys(v)
  }
  return out
}
const previousAuditEncoding = (seq: number, prevHash: string, record: AuditRecord): string =>
  JSON.stringify(sortKeys({ seq, prev_hash: prevHash, record }))

const text = fc.string({ unit: "grapheme", maxLength: 40 })
const optional = <A>(arb: fc.Arbitrary<A>) => fc.option(arb, { nil: undefined })

const auditRecord: fc.Arbitrary<AuditRecord> = fc
  .record({
    id: text,
    at: text,
    org: text,
    workspace: text,
    actor: text,
    action: text,
    outcome: fc.constantFrom("success" as const, "failure" as const),
    connector_id: optional(text),
    connection_id: optional(text),
    target: optional(text),
    method: optional(text),
    path: optional(text),
    tool: optional(text),
    status: optional(fc.integer()),
    duration_ms: optional(fc.double({ noNaN: true, noDefaultInfinity: true })),
    error_code: optional(text)
  })
  .map((r) => reorder(r) as AuditRecord)

describe("canonicalJson", () => {
  it("sorts keys at every level and leaves undefined members out", () => {
    assert.strictEqual(
      canonicalJson({ b: 1, a: { d: [2, { z: 1, y: null }], c: undefined } }),
      '{"a":{"d":[2,{"y":null,"z":1}]},"b":1}'
    )
    assert.strictEqual(canonicalJson([undefined, "x"]), '[null,"x"]')
    assert.strictEqual(canonicalJson({ "10": 1, "9": 2, a: 3 }), '{"10":1,"9":2,"a":3}')
  })

  it("is the same text whatever the key order, and parses back to the same value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const encoded = canonicalJson(value)
        assert.strictEqual(canonicalJson(reorder(value)), encoded)
        assert.deepStrictEqual(JSON.parse(encoded), JSON.parse(JSON.stringify(value)))
      })
    )
  })

  it("agrees with a sorted copy through JSON.stringify, but for integer-like and __proto__ keys", () => {
    const plainKeys = (value: unknown): boolean =>
      Array.isArray(value)
        ? value.every(plainKeys)
        : value === null || typeof value !== "object"
          ? true
          : Object.entries(value).every(([k, v]) => !/^\d+$/u.test(k) && k !== "__proto__" && plainKeys(v))
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        fc.pre(plainKeys(value))
        assert.strictEqual(canonicalJson(value), JSON.stringify(sortKeys(value)))
      })
    )
  })

  it("keeps an own __proto__ key (as JSON.parse makes one) like any other", () => {
    const parsed = JSON.parse('{"b":1,"__proto__":{"x":1}}') as unknown
    assert.strictEqual(canonicalJson(parsed), '{"__proto__":{"x":1},"b":1}')
    assert.notStrictEqual(canonicalJson(parsed), canonicalJson({ b: 1 }))
  })
})

describe("AuditChain.canonical", () => {
  it("writes the very bytes of the encoding stored chains were hashed with", () => {
    fc.assert(
      fc.property(fc.nat(), fc.stringMatching(/^[0-9a-f]{64}$/u), auditRecord, (seq, prevHash, record) => {
        assert.strictEqual(AuditChain.canonical(seq, prevHash, record), previousAuditEncoding(seq, prevHash, record))
      })
    )
  })

  it("hashes a known record to a known SHA-256", () => {
    const record: AuditRecord = {
      id: "aud_1",
      at: "2026-01-01T00:00:00.000Z",
      org: "local",
      workspace: "default",
      actor: "local",
      action: "tool.call",
      outcome: "success",
      tool: "echo",
      duration_ms: 3
    }
    const encoded = AuditChain.canonical(1, AuditChain.genesis, record)
    assert.strictEqual(
      encoded,
      '{"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","record":{"action":"tool.call",' +
        '"actor":"local","at":"2026-01-01T00:00:00.000Z","duration_ms":3,"id":"aud_1","org":"local","outcome":"success",' +
        '"tool":"echo","workspace":"default"},"seq":1}'
    )
    // The hash the chain has always given this record (computed with the encoding before `Canonical`).
    assert.strictEqual(
      createHash("sha256").update(encoded).digest("hex"),
      "fbe976d2a6c8ff842445cbb62cca2f562e5ea7b386eb016b3d4abde1a981da82"
    )
  })
})
