import { assert, describe, it } from "@effect/vitest"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as fc from "fast-check"
import { Buffer } from "node:buffer"
import type { AuthPattern, FieldMutation as Mutation } from "../src/AuthPattern.ts"
import { CredentialMissing } from "../src/Errors.ts"
import * as FieldMutation from "../src/FieldMutation.ts"

const values = (record: Record<string, string>) =>
  Object.fromEntries(Object.entries(record).map(([k, v]) => [k, Redacted.make(v)]))

const build = (pattern: AuthPattern, record: Record<string, string>) =>
  FieldMutation.buildOutgoingAuth(pattern, values(record))

/** The plain headers and query of a successful build. */
const reveal = (result: Result.Result<FieldMutation.OutgoingAuth, CredentialMissing>) => {
  const auth = Result.getOrThrow(result)
  const plain = (r: Readonly<Record<string, Redacted.Redacted<string>>>) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Redacted.value(v)]))
  return { headers: plain(auth.headers), query: plain(auth.query) }
}

const decodeBasic = (header: string | undefined): string => {
  assert.isDefined(header)
  assert.isTrue(header?.startsWith("Basic "), header)
  return Buffer.from((header ?? "").slice("Basic ".length), "base64").toString("utf8")
}

const missingField = (result: Result.Result<unknown, CredentialMissing>): string => {
  if (Result.isSuccess(result)) return assert.fail("expected CredentialMissing")
  assert.instanceOf(result.failure, CredentialMissing)
  assert.strictEqual(result.failure.code, "credential_missing")
  return (result.failure.details as { readonly field: string }).field
}

const mutation: fc.Arbitrary<Mutation> = fc.record(
  { default: fc.string(), prefix: fc.string(), suffix: fc.string() },
  { requiredKeys: [] }
)

/** Secrets that cannot coincide with the structure of a serialised result. */
const secret = fc.string({ unit: "binary", minLength: 1, maxLength: 40 }).map((s) => `s3cr3t:${s}`)

describe("FieldMutation", () => {
  describe("apply", () => {
    it("applies default, then prefix, then suffix", () => {
      assert.strictEqual(FieldMutation.apply({ default: "X" }, undefined), "X")
      assert.strictEqual(FieldMutation.apply({ default: "X" }, ""), "X")
      assert.strictEqual(FieldMutation.apply({ default: "X" }, "given"), "given")
      assert.strictEqual(FieldMutation.apply({ suffix: "/token" }, "key"), "key/token")
      assert.strictEqual(FieldMutation.apply({ prefix: "token " }, "abc"), "token abc")
      assert.strictEqual(FieldMutation.apply({ default: "d", prefix: "<", suffix: ">" }, ""), "<d>")
      assert.strictEqual(FieldMutation.apply({ prefix: "<", suffix: ">" }, undefined), undefined)
      assert.strictEqual(FieldMutation.apply(undefined, "v"), "v")
      assert.strictEqual(FieldMutation.apply(undefined, ""), undefined)
    })

    it("property: a non-empty value v becomes prefix + v + suffix", () => {
      fc.assert(
        fc.property(mutation, fc.string({ minLength: 1 }), (m, v) => {
          assert.strictEqual(FieldMutation.apply(m, v), `${m.prefix ?? ""}${v}${m.suffix ?? ""}`)
        })
      )
    })

    it("property: an empty or absent value becomes prefix + default + suffix, or stays absent without a default", () => {
      fc.assert(
        fc.property(mutation, fc.constantFrom(undefined, ""), (m, v) => {
          const expected = m.default === undefined ? undefined : `${m.prefix ?? ""}${m.default}${m.suffix ?? ""}`
          assert.strictEqual(FieldMutation.apply(m, v), expected)
        })
      )
    })

    it("property: without a mutation, values pass through and empty means absent", () => {
      fc.assert(
        fc.property(fc.string(), (v) => {
          assert.strictEqual(FieldMutation.apply(undefined, v), v === "" ? undefined : v)
          assert.strictEqual(FieldMutation.apply({}, v), v === "" ? undefined : v)
        })
      )
    })
  })

  describe("buildOutgoingAuth", () => {
    it("BASIC sends Basic base64(username:password)", () => {
      const { headers, query } = reveal(build({ type: "BASIC" }, { username: "svc_kaireon", password: "secret" }))
      assert.deepStrictEqual(headers, {
        Authorization: `Basic ${Buffer.from("svc_kaireon:secret").toString("base64")}`
      })
      assert.deepStrictEqual(query, {})
    })

    it("BASIC with the Freshdesk mutations sends base64(apikey/token:X)", () => {
      const freshdesk: AuthPattern = {
        type: "BASIC",
        auth_field_mutations: { password: { default: "X" }, username: { suffix: "/token" } }
      }
      const { headers } = reveal(build(freshdesk, { username: "apikey" }))
      assert.strictEqual(headers.Authorization, `Basic ${Buffer.from("apikey/token:X").toString("base64")}`)
      assert.strictEqual(decodeBasic(headers.Authorization), "apikey/token:X")
      // An empty password also takes the default.
      assert.strictEqual(
        decodeBasic(reveal(build(freshdesk, { username: "apikey", password: "" })).headers.Authorization),
        "apikey/token:X"
      )
    })

    it("property: BASIC decodes back to username:password for any unicode values", () => {
      fc.assert(
        fc.property(
          fc.string({ unit: "binary", minLength: 1 }).filter((u) => !u.includes(":")),
          fc.string({ unit: "binary", minLength: 1 }),
          (username, password) => {
            const { headers } = reveal(build({ type: "BASIC" }, { username, password }))
            const decoded = decodeBasic(headers.Authorization)
            assert.strictEqual(decoded, `${username}:${password}`)
            const at = decoded.indexOf(":")
            assert.strictEqual(decoded.slice(0, at), username)
            assert.strictEqual(decoded.slice(at + 1), password)
          }
        ),
        { numRuns: 500 }
      )
    })

    it("property: BASIC applies the mutations before encoding", () => {
      fc.assert(
        fc.property(mutation, mutation, fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (mu, mp, u, p) => {
          const pattern: AuthPattern = { type: "BASIC", auth_field_mutations: { username: mu, password: mp } }
          const { headers } = reveal(build(pattern, { username: u, password: p }))
          assert.strictEqual(
            decodeBasic(headers.Authorization),
            `${FieldMutation.apply(mu, u)}:${FieldMutation.apply(mp, p)}`
          )
        })
      )
    })

    it("BEARER sends Bearer <token>", () => {
      assert.deepStrictEqual(reveal(build({ type: "BEARER" }, { token: "t" })), {
        headers: { Authorization: "Bearer t" },
        query: {}
      })
    })

    it("a header override changes only the header name", () => {
      fc.assert(
        fc.property(
          fc.constantFrom("X-Auth-Token", "x-api-key", "Private-Token"),
          fc.string({ minLength: 1 }),
          (name, token) => {
            const plain = reveal(build({ type: "BEARER" }, { token }))
            const overridden = reveal(build({ type: "BEARER", auth_header_key_override: name }, { token }))
            assert.deepStrictEqual(overridden, { headers: { [name]: `Bearer ${token}` }, query: {} })
            assert.deepStrictEqual(plain, { headers: { Authorization: `Bearer ${token}` }, query: {} })
          }
        )
      )
    })

    it("API_KEY sends the key raw in Authorization, in the override header, or in the query", () => {
      assert.deepStrictEqual(reveal(build({ type: "API_KEY" }, { api_key: "k-123" })), {
        headers: { Authorization: "k-123" },
        query: {}
      })
      assert.deepStrictEqual(
        reveal(build({ type: "API_KEY", auth_header_key_override: "X-API-Key" }, { api_key: "k-123" })),
        {
          headers: { "X-API-Key": "k-123" },
          query: {}
        }
      )
      assert.deepStrictEqual(reveal(build({ type: "API_KEY", api_key_query_param: "api_key" }, { api_key: "k-123" })), {
        headers: {},
        query: { api_key: "k-123" }
      })
      assert.deepStrictEqual(
        reveal(
          build({ type: "API_KEY", auth_field_mutations: { api_key: { prefix: "ApiKey " } } }, { api_key: "k-123" })
        ),
        { headers: { Authorization: "ApiKey k-123" }, query: {} }
      )
    })

    it("OAUTH sends the access_token as a bearer token, mutated as token", () => {
      const oauth: AuthPattern = { type: "OAUTH", oauth_config: { pkce_enabled: true } }
      assert.deepStrictEqual(reveal(build(oauth, { access_token: "at-1", refresh_token: "rt-1" })).headers, {
        Authorization: "Bearer at-1"
      })
      assert.deepStrictEqual(
        reveal(build({ ...oauth, auth_field_mutations: { token: { suffix: "!" } } }, { access_token: "at-1" })).headers,
        { Authorization: "Bearer at-1!" }
      )
      // A `token` value is not an OAuth access token.
      assert.strictEqual(missingField(build(oauth, { token: "t" })), "access_token")
    })

    it("a missing or empty value fails with CredentialMissing naming the field", () => {
      assert.strictEqual(missingField(build({ type: "BASIC" }, { password: "p" })), "username")
      assert.strictEqual(missingField(build({ type: "BASIC" }, { username: "u" })), "password")
      assert.strictEqual(missingField(build({ type: "BASIC" }, { username: "u", password: "" })), "password")
      assert.strictEqual(missingField(build({ type: "BEARER" }, {})), "token")
      assert.strictEqual(missingField(build({ type: "BEARER" }, { token: "" })), "token")
      assert.strictEqual(missingField(build({ type: "API_KEY" }, { token: "t" })), "api_key")
      assert.strictEqual(missingField(build({ type: "OAUTH" }, {})), "access_token")
      const failure = build({ type: "BEARER" }, {})
      assert.include(Result.isFailure(failure) ? failure.failure.message : "", '"token"')
    })

    it("a default covers a missing value", () => {
      const pattern: AuthPattern = { type: "BEARER", auth_field_mutations: { token: { default: "anonymous" } } }
      assert.deepStrictEqual(reveal(build(pattern, {})).headers, { Authorization: "Bearer anonymous" })
    })

    it("property: outputs are Redacted and no secret appears when the result is printed or serialised", () => {
      const patterns: ReadonlyArray<AuthPattern> = [
        { type: "BASIC" },
        { type: "BASIC", auth_field_mutations: { password: { default: "X" }, username: { suffix: "/token" } } },
        { type: "BEARER" },
        { type: "BEARER", auth_header_key_override: "X-Token" },
        { type: "API_KEY" },
        { type: "API_KEY", auth_header_key_override: "X-API-Key" },
        { type: "API_KEY", api_key_query_param: "key" },
        { type: "OAUTH", oauth_config: { pkce_enabled: true } }
      ]
      fc.assert(
        fc.property(fc.constantFrom(...patterns), secret, secret, (pattern, a, b) => {
          const record = { username: a, password: b, token: a, api_key: a, access_token: a }
          const result = build(pattern, record)
          const auth = Result.getOrThrow(result)
          const sent = [...Object.values(auth.headers), ...Object.values(auth.query)]
          assert.strictEqual(sent.length, 1)
          for (const value of sent) {
            assert.isTrue(Redacted.isRedacted(value))
            assert.strictEqual(String(value), "<redacted>")
          }
          const printed = [JSON.stringify(result), JSON.stringify(auth), String(sent[0]), `${sent[0]}`]
          for (const text of printed) {
            for (const s of [a, b, Redacted.value(sent[0] as Redacted.Redacted<string>)]) assert.notInclude(text, s)
          }
        })
      )
    })

    it("property: a CredentialMissing never carries a credential value", () => {
      fc.assert(
        fc.property(secret, (s) => {
          const failure = build({ type: "BASIC" }, { username: s })
          assert.strictEqual(missingField(failure), "password")
          assert.notInclude(JSON.stringify(Result.isFailure(failure) ? failure.failure : null), s)
        })
      )
    })
  })
})
