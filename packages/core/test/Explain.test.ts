/**
 * The pure parts of explain: mutations by name, header and URL masking (never the secret, whatever it is), and the
 * chain's outcomes.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as AuthPattern from "@switchboard/core/AuthPattern"
import * as Explain from "@switchboard/core/Explain"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"

const values = (v: Record<string, string>) =>
  Object.fromEntries(Object.entries(v).map(([k, x]) => [k, Redacted.make(x)]))

describe("Explain.mutationsApplied", () => {
  const basic = {
    type: "BASIC",
    display_name: "Basic",
    auth_field_mutations: { password: { default: "X" }, username: { prefix: "u-", suffix: "/token" } }
  } as unknown as AuthPattern.AuthPattern

  it("names the parts that applied: default only for an empty value, prefix and suffix for a present one", () => {
    assert.deepStrictEqual(Explain.mutationsApplied(basic, values({ username: "me" })), [
      "password.default",
      "username.prefix",
      "username.suffix"
    ])
    assert.deepStrictEqual(Explain.mutationsApplied(basic, values({ username: "me", password: "p" })), [
      "username.prefix",
      "username.suffix"
    ])
    assert.deepStrictEqual(Explain.mutationsApplied(basic, values({})), ["password.default"])
    assert.deepStrictEqual(Explain.mutationsApplied(undefined, values({ username: "me" })), [])
  })

  it("reads an OAuth token mutation from access_token", () => {
    const oauth = {
      type: "OAUTH",
      display_name: "OAuth",
      auth_field_mutations: { token: { prefix: "x" } }
    } as unknown as AuthPattern.AuthPattern
    assert.deepStrictEqual(Explain.mutationsApplied(oauth, values({ access_token: "t" })), ["token.prefix"])
    assert.deepStrictEqual(Explain.mutationsApplied(oauth, values({})), [])
  })
})

describe("Explain masking", () => {
  it("keeps the auth scheme and masks the rest", () => {
    assert.strictEqual(Explain.maskHeaderValue("Bearer abcdefghijkl"), "Bearer ab***kl")
    assert.strictEqual(Explain.maskHeaderValue("Basic short"), "Basic ****")
    assert.strictEqual(Explain.maskHeaderValue("raw-key-1234567"), "ra***67")
    assert.deepStrictEqual(
      Explain.maskHeaders(
        { "X-Tenant": Redacted.make("acme"), "X-Key": Redacted.make("abcdefghijkl") },
        new Set(["x-tenant"])
      ),
      { "X-Tenant": "acme", "X-Key": "ab***kl" }
    )
  })

  it("never shows a secret in a header or a URL (property)", () => {
    const secret = fc.string({ minLength: 5, maxLength: 40 }).filter((s) => s.trim() === s && !s.includes("*"))
    fc.assert(
      fc.property(secret, fc.constantFrom("Bearer ", "Basic ", ""), (s, scheme) => {
        const shown = Explain.maskHeaderValue(`${scheme}${s}`)
        return !shown.includes(s) || s.length < 5
      })
    )
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{6,30}$/), (s) => {
        const url = `https://api.example.com/${s}/x?key=${encodeURIComponent(s)}`
        return !Explain.maskUrl(url, [s]).includes(s)
      })
    )
  })
})

describe("Explain.chainOutcomes", () => {
  const chain = [
    { scope: "user" as const, owner: { org: "o", user: "u" }, name: "default" },
    { scope: "workspace" as const, owner: { org: "o", workspace: "w" }, name: "default" },
    { scope: "organization" as const, owner: { org: "o" }, name: "default" }
  ]
  it("marks places before the chosen one missing and later ones not reached", () => {
    assert.deepStrictEqual(
      Explain.chainOutcomes(chain, { scope: "workspace", name: "default" }).map((c) => [c.owner, c.outcome]),
      [
        ["o/user:u", "missing"],
        ["o/w", "chosen"],
        ["o", "not_reached"]
      ]
    )
    assert.deepStrictEqual(
      Explain.chainOutcomes(chain, undefined).map((c) => c.outcome),
      ["missing", "missing", "missing"]
    )
  })
})
