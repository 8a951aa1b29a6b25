import { assert, describe, it } from "@effect/vitest"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import { readFileSync } from "node:fs"
import * as Catalog from "../src/Catalog.ts"
import * as Connector from "../src/Connector.ts"
import * as Credential from "../src/Credential.ts"
import { Forbidden } from "../src/Errors.ts"
import * as Masking from "../src/Masking.ts"
import type { Principal, Role } from "../src/Principal.ts"
import * as Validation from "../src/Validation.ts"

const connectorFrom = (input: unknown): Connector.Connector =>
  Connector.fromInput(Result.getOrThrow(Validation.decodeResult(Connector.CreateConnector, "connector")(input)), {
    id: "ctr_01HF7YAT00WCEQMSG9GTHCDEZW",
    name: "example",
    version: 1,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z"
  })

const fixture = (name: string): Connector.Connector =>
  connectorFrom(JSON.parse(readFileSync(new URL(`./fixtures/connectors/${name}.json`, import.meta.url), "utf8")))

const input = (body: unknown): Credential.CredentialInput =>
  Result.getOrThrow(Validation.decodeResult(Credential.CredentialInput, "credential")(body))

const check = (connector: Connector.Connector, body: unknown) => Credential.checkValues(connector, input(body))

/** Refused with an issue at exactly `path` whose message matches `rule`. */
const assertIssue = (result: ReturnType<typeof check>, path: string, rule: RegExp): void => {
  if (Result.isSuccess(result)) return assert.fail(`expected issues, got ${result.success}`)
  const found = result.failure.some((i) => i.path === path && rule.test(i.message))
  assert.isTrue(found, `expected an issue at "${path}" matching ${rule}, got ${JSON.stringify(result.failure)}`)
}

const bearer = connectorFrom({
  display_name: "B",
  proxy_url: "https://api.example.com",
  auth_patterns: [{ type: "BEARER" }]
})
const basic = connectorFrom({
  display_name: "B",
  proxy_url: "https://api.example.com",
  auth_patterns: [{ type: "BASIC" }]
})

describe("Credential", () => {
  describe("CredentialInput", () => {
    it("decodes values to Redacted", () => {
      const decoded = input({ values: { token: "ghp_secret" } })
      const token = decoded.values.token
      assert.isTrue(token !== undefined && Redacted.isRedacted(token))
      assert.strictEqual(String(token), "<redacted>")
      assert.notInclude(JSON.stringify(decoded), "ghp_secret")
    })

    it("refuses a key that is not a field name and a value that is not a string, at their paths", () => {
      const result = Validation.decodeResult(
        Credential.CredentialInput,
        "credential"
      )({ values: { "bad key": "v", ok: 1 } })
      if (Result.isSuccess(result)) return assert.fail("expected a refusal")
      assert.deepStrictEqual((result.failure.details as { issues: ReadonlyArray<Validation.Issue> }).issues, [
        { path: "values.bad key", message: "Expected no excess property" },
        { path: "values.ok", message: "Expected string" }
      ])
    })
  })

  describe("checkValues", () => {
    it("accepts the fields the pattern needs and returns its auth type", () => {
      assert.deepStrictEqual(check(bearer, { values: { token: "t" } }), Result.succeed("BEARER"))
      assert.deepStrictEqual(check(basic, { values: { username: "u", password: "p" } }), Result.succeed("BASIC"))
      assert.deepStrictEqual(
        check(fixture("api-key-header"), { auth_type: "API_KEY", values: { api_key: "k" } }),
        Result.succeed("API_KEY")
      )
    })

    it("refuses an unknown field at values.<field>, listing the expected ones", () => {
      assertIssue(
        check(bearer, { values: { token: "t", x: "1" } }),
        "values.x",
        /unknown field for BEARER; expected one of token/
      )
    })

    it("refuses a missing or empty required field", () => {
      assertIssue(check(bearer, { values: {} }), "values.token", /token is required for BEARER/)
      assertIssue(check(bearer, { values: { token: "" } }), "values.token", /token is required for BEARER/)
      assertIssue(check(basic, { values: { username: "u" } }), "values.password", /password is required for BASIC/)
      assertIssue(
        check(fixture("domain-template"), { auth_type: "API_KEY", values: { api_key: "k" } }),
        "values.domain",
        /domain is required/
      )
    })

    it("a mutation default makes the password optional for BASIC (Freshdesk)", () => {
      const freshdesk = fixture("freshdesk-basic")
      assert.deepStrictEqual(
        check(freshdesk, { values: { domain: "acme.freshdesk.com", username: "apikey" } }),
        Result.succeed("BASIC")
      )
      assert.deepStrictEqual(
        check(freshdesk, { values: { domain: "acme.freshdesk.com", username: "apikey", password: "Y" } }),
        Result.succeed("BASIC")
      )
      assertIssue(check(freshdesk, { values: { domain: "acme.freshdesk.com" } }), "values.username", /required/)
    })

    it("a Basic username cannot contain ':' (RFC 7617)", () => {
      assertIssue(
        check(fixture("freshdesk-basic"), { values: { domain: "acme.freshdesk.com", username: "a:b" } }),
        "values.username",
        /cannot contain ':'/
      )
    })

    it("with several patterns, auth_type must say which", () => {
      const multi = fixture("domain-template")
      assertIssue(
        check(multi, { values: { api_key: "k", domain: "d" } }),
        "auth_type",
        /several auth patterns \(OAUTH, API_KEY\); say which with auth_type/
      )
      assertIssue(
        check(multi, { auth_type: "BEARER", values: { token: "t" } }),
        "auth_type",
        /has no BEARER auth pattern/
      )
      assert.deepStrictEqual(
        check(multi, { auth_type: "API_KEY", values: { api_key: "k", domain: "d" } }),
        Result.succeed("API_KEY")
      )
    })

    it("an oauth_client credential of an OAUTH connector takes client_id and client_secret", () => {
      const asana = fixture("asana-oauth")
      assert.deepStrictEqual(
        check(asana, { name: "oauth_client", values: { client_id: "id", client_secret: "secret" } }),
        Result.succeed("OAUTH")
      )
      assert.deepStrictEqual(
        check(asana, { name: "oauth_client", values: { client_id: "public-client" } }),
        Result.succeed("OAUTH")
      )
      assertIssue(
        check(asana, { name: "oauth_client", values: { client_secret: "s" } }),
        "values.client_id",
        /client_id is required/
      )
      assertIssue(
        check(asana, { name: "oauth_client", values: { client_id: "i", access_token: "a" } }),
        "values.access_token",
        /unknown field/
      )
    })

    it("an OAUTH token credential takes token fields and account fields, requiring required account fields", () => {
      const asana = fixture("asana-oauth")
      assert.deepStrictEqual(
        check(asana, { values: { access_token: "a", refresh_token: "r" } }),
        Result.succeed("OAUTH")
      )
      assertIssue(check(asana, { values: { client_id: "i" } }), "values.client_id", /unknown field for OAUTH/)
      const zendesk = fixture("domain-template")
      assertIssue(
        check(zendesk, { auth_type: "OAUTH", values: { access_token: "a" } }),
        "values.domain",
        /domain is required for OAUTH/
      )
      assert.deepStrictEqual(
        check(zendesk, { auth_type: "OAUTH", values: { domain: "acme", access_token: "a" } }),
        Result.succeed("OAUTH")
      )
    })

    it("data connectors take the catalog's auth fields and no auth_type", () => {
      const pg = fixture("postgresql")
      assert.deepStrictEqual(check(pg, { values: { username: "svc", password: "p" } }), Result.succeed(null))
      assert.deepStrictEqual(check(pg, { values: {} }), Result.succeed(null))
      assertIssue(
        check(pg, { values: { token: "t" } }),
        "values.token",
        /unknown field; expected one of username, password/
      )
      assertIssue(check(pg, { auth_type: "BASIC", values: {} }), "auth_type", /has no auth patterns/)
    })

    it("property: for every catalog type, its auth fields are accepted and any other field is refused", () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...Catalog.entries),
          fc.stringMatching(/^[a-z_][a-z0-9_]{0,20}$/),
          (entry, other) => {
            const config = Object.fromEntries(
              entry.required_config.map(([first]) => [first, entry.numeric_config.includes(first) ? 1 : "x"])
            )
            const connector = connectorFrom({ display_name: entry.display_name, kind: entry.type, config })
            const all = Object.fromEntries(entry.auth_fields.map((f) => [f, "v"]))
            assert.deepStrictEqual(check(connector, { values: all }), Result.succeed(null))
            if (!entry.auth_fields.includes(other)) {
              assertIssue(check(connector, { values: { ...all, [other]: "v" } }), `values.${other}`, /unknown field/)
            }
          }
        )
      )
    })

    it("property: dropping any required field refuses exactly that field", () => {
      const cases = [
        { connector: basic, values: { username: "u", password: "p" } },
        { connector: fixture("freshdesk-basic"), values: { domain: "d", username: "u" } },
        { connector: fixture("api-key-header"), values: { api_key: "k" } },
        { connector: fixture("bearer-mcp"), values: { token: "t" } }
      ]
      fc.assert(
        fc.property(fc.constantFrom(...cases), fc.nat(), fc.boolean(), ({ connector, values }, n, empty) => {
          const keys = Object.keys(values)
          const dropped = keys[n % keys.length] as string
          const rest: Record<string, string> = Object.fromEntries(Object.entries(values).filter(([k]) => k !== dropped))
          if (empty) rest[dropped] = ""
          const result = check(connector, { values: rest })
          if (Result.isSuccess(result)) return assert.fail(`expected ${dropped} to be required`)
          assert.deepStrictEqual(
            result.failure.map((i) => i.path),
            [`values.${dropped}`]
          )
        })
      )
    })

    it("issues never contain the submitted values", () => {
      const result = check(bearer, { values: { token: "tok-secret-1", extra: "extra-secret-2" } })
      assert.isTrue(Result.isFailure(result))
      const text = JSON.stringify(result)
      assert.notInclude(text, "tok-secret-1")
      assert.notInclude(text, "extra-secret-2")
    })
  })

  describe("resolutionChain", () => {
    const orgs = ["acme", "globex"]
    const users = ["alice", "bob", "carol"]
    const workspaces = ["default", "eng"]
    const principal: fc.Arbitrary<Principal> = fc.record({
      org: fc.constantFrom(...orgs),
      workspace: fc.constantFrom(...workspaces),
      user: fc.constantFrom(...users),
      role: fc.constantFrom<Role>("admin", "editor", "viewer")
    })
    const named = fc.record({
      scope: fc.constantFrom<Credential.Scope>("organization", "workspace", "user"),
      name: fc.constantFrom("default", "prod")
    })
    const binding: fc.Arbitrary<Credential.Binding> = fc.record({
      org: fc.constantFrom(...orgs),
      workspace: fc.constantFrom(...workspaces),
      owner: fc.constantFrom(...users),
      access_scope: fc.constantFrom<"personal" | "organizational">("personal", "organizational"),
      is_service_account: fc.boolean(),
      credential: fc.option(named, { nil: undefined })
    })
    /** A principal allowed to use the binding: same org, and the owner when it is personal. */
    const allowed = fc
      .tuple(binding, principal)
      .map(([b, p]): [Credential.Binding, Principal] => [
        b,
        { ...p, org: b.org, user: b.access_scope === "personal" ? b.owner : p.user }
      ])
    const forbidden = (result: Result.Result<unknown, Forbidden>) => {
      assert.isTrue(Result.isFailure(result))
      if (Result.isFailure(result)) {
        assert.instanceOf(result.failure, Forbidden)
        assert.strictEqual(result.failure.code, "forbidden")
        assert.strictEqual(result.failure.status, 403)
      }
    }

    it("an organizational connection: the caller's user credential, then workspace, then organization", () => {
      const chain = Credential.resolutionChain(
        { org: "acme", workspace: "eng", owner: "alice", access_scope: "organizational", is_service_account: false },
        { org: "acme", workspace: "default", user: "bob", role: "viewer" }
      )
      assert.deepStrictEqual(Result.getOrThrow(chain), [
        { scope: "user", owner: { org: "acme", user: "bob" }, name: "default" },
        { scope: "workspace", owner: { org: "acme", workspace: "eng" }, name: "default" },
        { scope: "organization", owner: { org: "acme" }, name: "default" }
      ])
    })

    it("property: a connection of another organization is forbidden", () => {
      fc.assert(
        fc.property(binding, principal, (b, p) => {
          fc.pre(p.org !== b.org)
          forbidden(Credential.resolutionChain(b, p))
        })
      )
    })

    it("property: a personal connection used by anyone but its owner is forbidden", () => {
      fc.assert(
        fc.property(binding, principal, (b, p) => {
          fc.pre(b.access_scope === "personal" && p.user !== b.owner)
          forbidden(Credential.resolutionChain(b, { ...p, org: b.org }))
        })
      )
    })

    it("property: every lookup stays in the connection's organization", () => {
      fc.assert(
        fc.property(allowed, ([b, p]) => {
          const chain = Credential.resolutionChain(b, p)
          if (Result.isSuccess(chain)) for (const lookup of chain.success) assert.strictEqual(lookup.owner.org, b.org)
        })
      )
    })

    it("property: a service account's chain never includes the user scope", () => {
      fc.assert(
        fc.property(allowed, ([b, p]) => {
          fc.pre(b.is_service_account)
          const chain = Credential.resolutionChain(b, p)
          if (b.credential?.scope === "user") return forbidden(chain)
          const scopes = Result.getOrThrow(chain).map((l) => l.scope)
          assert.notInclude(scopes, "user")
          if (b.credential === undefined) assert.deepStrictEqual(scopes, ["workspace", "organization"])
        })
      )
    })

    it("property: without a named credential, a non-service chain is user → workspace → organization with ownerFor", () => {
      fc.assert(
        fc.property(allowed, ([b, p]) => {
          fc.pre(!b.is_service_account && b.credential === undefined)
          const acting = b.access_scope === "personal" ? b.owner : p.user
          const who = { org: b.org, workspace: b.workspace, user: acting }
          assert.deepStrictEqual(Result.getOrThrow(Credential.resolutionChain(b, p)), [
            { scope: "user", owner: Credential.ownerFor("user", who), name: "default" },
            { scope: "workspace", owner: Credential.ownerFor("workspace", who), name: "default" },
            { scope: "organization", owner: Credential.ownerFor("organization", who), name: "default" }
          ])
        })
      )
    })

    it("property: a credential named with a scope is the one and only lookup", () => {
      fc.assert(
        fc.property(allowed, ([b, p]) => {
          fc.pre(b.credential !== undefined && !(b.is_service_account && b.credential.scope === "user"))
          const chain = Result.getOrThrow(Credential.resolutionChain(b, p))
          assert.strictEqual(chain.length, 1)
          assert.strictEqual(chain[0]?.scope, b.credential?.scope)
          assert.strictEqual(chain[0]?.name, b.credential?.name)
        })
      )
    })

    it("property: a personal connection always resolves its owner's user credential", () => {
      fc.assert(
        fc.property(allowed, ([b, p]) => {
          fc.pre(b.access_scope === "personal")
          const chain = Credential.resolutionChain(b, p)
          if (Result.isFailure(chain)) return
          for (const lookup of chain.success) {
            if (lookup.scope === "user") assert.deepStrictEqual(lookup.owner, { org: b.org, user: b.owner })
          }
          if (!b.is_service_account && b.credential === undefined)
            assert.strictEqual(chain.success[0]?.owner.user, b.owner)
        })
      )
    })

    it("property: the owner of a scope carries exactly the keys of that scope", () => {
      fc.assert(
        fc.property(
          fc.constantFrom<Credential.Scope>("organization", "workspace", "user"),
          fc.record({ org: fc.string(), workspace: fc.string(), user: fc.string() }),
          (scope, who) => {
            const owner = Credential.ownerFor(scope, who)
            assert.deepStrictEqual(
              owner,
              scope === "organization"
                ? { org: who.org }
                : scope === "workspace"
                  ? { org: who.org, workspace: who.workspace }
                  : { org: who.org, user: who.user }
            )
          }
        )
      )
    })
  })

  describe("toView", () => {
    const stored = (values: Record<string, string>): Credential.Credential => ({
      id: "cred_01HF7YAT00WCEQMSG9GTHCDEZW",
      connector_id: "ctr_01HF7YAT00WCEQMSG9GTHCDEZW",
      scope: "user",
      owner: { org: "acme", user: "alice" },
      name: "default",
      auth_type: "BASIC",
      values: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Redacted.make(v)])),
      created_at: "2026-01-01T00:00:00.000Z",
      updated_at: "2026-01-01T00:00:00.000Z"
    })

    it("masks every value (first 2 + last 2 of long secrets, **** otherwise)", () => {
      const view = Credential.toView(stored({ username: "svc_kaireon", password: "secret" }))
      assert.deepStrictEqual(view.values, { username: "sv***on", password: "****" })
      assert.isTrue(Schema.is(Credential.CredentialView)(view))
    })

    it("property: every value is masked and no secret appears in the view", () => {
      fc.assert(
        fc.property(
          fc.dictionary(
            fc.stringMatching(/^[a-z_]{1,12}$/),
            fc.string({ unit: "binary", minLength: 3, maxLength: 60 }).map((s) => `s3cr3t-${s}`),
            {
              minKeys: 1,
              maxKeys: 6
            }
          ),
          (values) => {
            const view = Credential.toView(stored(values))
            assert.deepStrictEqual(Object.keys(view.values).sort(), Object.keys(values).sort())
            const text = JSON.stringify(view)
            for (const [key, secret] of Object.entries(values)) {
              assert.strictEqual(view.values[key], Masking.mask(secret))
              assert.notStrictEqual(view.values[key], secret)
              assert.notInclude(text, secret)
            }
          }
        ),
        { numRuns: 300 }
      )
    })

    it("property: a short secret shows nothing but ****", () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 9 }), (secret) => {
          fc.pre(Array.from(secret).length < 10)
          assert.strictEqual(Credential.toView(stored({ token: secret })).values.token, "****")
        })
      )
    })
  })
})
