import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import * as fc from "fast-check"
import { readFileSync } from "node:fs"
import * as Catalog from "../src/Catalog.ts"
import * as Connector from "../src/Connector.ts"
import { ValidationFailed } from "../src/Errors.ts"
import * as Validation from "../src/Validation.ts"

const decode = Validation.decodeResult(Connector.CreateConnector, "connector")

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`./fixtures/connectors/${name}.json`, import.meta.url), "utf8"))

const fixtures = [
  "asana-oauth",
  "oauth-mcp",
  "bearer-mcp",
  "api-key-header",
  "freshdesk-basic",
  "domain-template",
  "postgresql",
  "github-local-mcp"
] as const

/** The issues of a refused payload, after checking the error is the one `ValidationFailed` of the API. */
const refusal = (input: unknown): ReadonlyArray<Validation.Issue> => {
  const result = decode(input)
  if (Result.isSuccess(result)) return assert.fail(`expected a refusal, got ${JSON.stringify(result.success)}`)
  const error = result.failure
  assert.instanceOf(error, ValidationFailed)
  assert.strictEqual(error._tag, "ValidationFailed")
  assert.strictEqual(error.code, "validation_failed")
  assert.strictEqual(error.status, 422)
  const details = error.details as { readonly issues: ReadonlyArray<Validation.Issue> }
  assert.isAbove(details.issues.length, 0)
  return details.issues
}

/** Refused with an issue at exactly `path` whose message states `rule`; the error message names both. */
const assertRefused = (input: unknown, path: string, rule: RegExp): void => {
  const issues = refusal(input)
  const issue = issues.find((i) => i.path === path && rule.test(i.message))
  assert.isDefined(issue, `expected an issue at "${path}" matching ${rule}, got ${JSON.stringify(issues)}`)
  const error = (decode(input) as Result.Failure<never, ValidationFailed>).failure
  assert.include(error.message, `${path}: ${issue?.message}`)
}

const http = { display_name: "Example", proxy_url: "https://api.example.com", proxy_enabled: true }
const bearer = { type: "BEARER" }

describe("Connector", () => {
  describe("CreateConnector accepts payloads verbatim", () => {
    it.each(fixtures)("%s", (name) => {
      const input = fixture(name)
      const result = decode(input)
      assert.isTrue(Result.isSuccess(result), JSON.stringify(Result.isFailure(result) ? result.failure.details : null))
      assert.deepStrictEqual(Result.getOrThrow(result), input)
    })

    it("the Scalekit Asana payload is an http connector with one OAUTH pattern", () => {
      const asana = Result.getOrThrow(decode(fixture("asana-oauth")))
      assert.strictEqual(Connector.kindOf(asana), "http")
      assert.deepStrictEqual(
        asana.auth_patterns?.map((p) => p.type),
        ["OAUTH"]
      )
    })

    it("infers the kind: is_mcp or a command means mcp, an explicit kind wins", () => {
      const kinds = Object.fromEntries(
        fixtures.map((name) => [name, Connector.kindOf(Result.getOrThrow(decode(fixture(name))))])
      )
      assert.deepStrictEqual(kinds, {
        "asana-oauth": "http",
        "oauth-mcp": "mcp",
        "bearer-mcp": "mcp",
        "api-key-header": "http",
        "freshdesk-basic": "http",
        "domain-template": "http",
        postgresql: "postgresql",
        "github-local-mcp": "mcp"
      })
    })

    it("a {{domain}} template is provided by an OAUTH account field alone, or by an API_KEY field alone", () => {
      const zendesk = fixture("domain-template") as { readonly auth_patterns: ReadonlyArray<unknown> }
      for (const pattern of zendesk.auth_patterns) {
        const input: unknown = { ...zendesk, auth_patterns: [pattern] }
        assert.deepStrictEqual<unknown>(Result.getOrThrow(decode(input)), input)
      }
    })

    it("property: any string metadata, display name and description round-trip unchanged", () => {
      fc.assert(
        fc.property(
          fc.dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 }), { maxKeys: 8 }),
          fc.string({ minLength: 1, maxLength: 200 }),
          fc.string({ maxLength: 2000 }),
          fc.constantFrom(...fixtures.filter((name) => name !== "postgresql").map(fixture)),
          (metadata, display_name, description, base) => {
            const input = { ...(base as object), metadata, display_name, description }
            assert.deepStrictEqual(Result.getOrThrow(decode(input)), input)
          }
        )
      )
    })
  })

  describe("CreateConnector refuses, naming the path and the rule", () => {
    const refusals: ReadonlyArray<{
      readonly name: string
      readonly input: unknown
      readonly path: string
      readonly rule: RegExp
    }> = [
      {
        name: "an unknown auth type",
        input: { ...http, auth_patterns: [{ type: "DIGEST" }] },
        path: "auth_patterns[0].type",
        rule: /"OAUTH" \| "BASIC" \| "BEARER" \| "API_KEY"/
      },
      {
        name: "an http connector without proxy_url",
        input: { display_name: "Example", auth_patterns: [bearer] },
        path: "proxy_url",
        rule: /proxy_url is required/
      },
      {
        name: "an MCP connector with neither server URL nor command",
        input: { display_name: "Example", auth_patterns: [{ type: "BEARER", is_mcp: true }] },
        path: "proxy_url",
        rule: /server URL \(proxy_url\) or a command/
      },
      {
        name: "a non-https icon_url",
        input: { ...http, icon_url: "http://cdn.example.com/icon.svg" },
        path: "icon_url",
        rule: /https:\/\//
      },
      {
        name: "a nested metadata value",
        input: { ...http, metadata: { team: { name: "platform" } } },
        path: "metadata.team",
        rule: /string/i
      },
      {
        name: "a duplicate field name within a pattern",
        input: {
          ...http,
          auth_patterns: [{ type: "BEARER", fields: [{ field_name: "token" }, { field_name: "token" }] }]
        },
        path: "auth_patterns[0].fields[1].field_name",
        rule: /duplicate field name "token"/
      },
      {
        name: "a field name repeated between fields and account_fields",
        input: {
          ...http,
          auth_patterns: [
            { type: "API_KEY", fields: [{ field_name: "domain" }], account_fields: [{ field_name: "domain" }] }
          ]
        },
        path: "auth_patterns[0].account_fields[0].field_name",
        rule: /duplicate field name "domain"/
      },
      {
        name: "a field name that cannot be a template parameter",
        input: { ...http, auth_patterns: [{ type: "BEARER", fields: [{ field_name: "my-token" }] }] },
        path: "auth_patterns[0].fields[0].field_name",
        rule: /field name is a letter or _/
      },
      {
        name: "a proxy_url template naming a field no pattern provides",
        input: { ...http, proxy_url: "https://{{tenant}}.example.com/api", auth_patterns: [bearer] },
        path: "proxy_url",
        rule: /template field "tenant" is not provided by any auth pattern/
      },
      {
        name: "a proxy_url that is not a valid template",
        input: { ...http, proxy_url: "https://{{domain/api", auth_patterns: [bearer] },
        path: "proxy_url",
        rule: /Unbalanced braces/
      },
      {
        name: "a command env template naming a field no pattern provides",
        input: {
          display_name: "GitHub",
          command: { program: "github-mcp", env: { GITHUB_TOKEN: "{{pat}}" } },
          auth_patterns: [{ type: "BEARER", is_mcp: true }]
        },
        path: "command.env.GITHUB_TOKEN",
        rule: /template field "pat" is not provided/
      },
      {
        name: "an MCP connector with both a server URL and a command",
        input: { ...http, command: { program: "server" }, auth_patterns: [{ type: "BEARER", is_mcp: true }] },
        path: "command",
        rule: /server URL or a command, not both/
      },
      {
        name: "an unknown data-connector type",
        input: { display_name: "Oracle", kind: "oracle", config: { host: "db" } },
        path: "kind",
        rule: /"postgresql" \| "mysql"/
      },
      {
        name: "a data connector missing a required config field",
        input: { display_name: "PG", kind: "postgresql", config: { host: "db", port: 5432 } },
        path: "config.database",
        rule: /postgresql requires config field "database"/
      },
      {
        name: "a mongodb connector with neither host nor connectionString",
        input: { display_name: "Mongo", kind: "mongodb", config: { database: "app" } },
        path: "config.host",
        rule: /mongodb requires one of config fields "host" or "connectionString"/
      },
      {
        name: "a port out of range",
        input: { display_name: "PG", kind: "postgresql", config: { host: "db", port: 70000, database: "app" } },
        path: "config.port",
        rule: /"port" must be a port number from 1 to 65535/
      },
      {
        name: "a port that is not a number",
        input: { display_name: "SFTP", kind: "sftp", config: { host: "files", port: "twenty-two" } },
        path: "config.port",
        rule: /"port" must be a port number from 1 to 65535/
      },
      {
        name: "a nested config value",
        input: { display_name: "PG", kind: "postgresql", config: { host: "db", port: 5432, database: { name: "x" } } },
        path: "config.database",
        rule: /string|number|boolean/i
      },
      {
        name: "config on an http connector",
        input: { ...http, config: { host: "db" } },
        path: "config",
        rule: /config belongs to data-connector kinds, not http/
      },
      {
        name: "an OAUTH pattern without oauth_config",
        input: { ...http, auth_patterns: [{ type: "OAUTH" }] },
        path: "auth_patterns[0].oauth_config",
        rule: /an OAUTH pattern needs oauth_config/
      },
      {
        name: "an OAUTH pattern without token_uri",
        input: {
          ...http,
          auth_patterns: [{ type: "OAUTH", oauth_config: { authorize_uri: "https://a.example.com/auth" } }]
        },
        path: "auth_patterns[0].oauth_config.token_uri",
        rule: /needs token_uri/
      },
      {
        name: "an OAUTH MCP pattern with endpoints",
        input: {
          ...http,
          auth_patterns: [
            {
              type: "OAUTH",
              is_mcp: true,
              oauth_config: { pkce_enabled: true, authorize_uri: "https://a.example.com/auth" }
            }
          ]
        },
        path: "auth_patterns[0].oauth_config",
        rule: /exactly \{"pkce_enabled": true\}/
      },
      {
        name: "oauth_config on a BEARER pattern",
        input: { ...http, auth_patterns: [{ type: "BEARER", oauth_config: { pkce_enabled: true } }] },
        path: "auth_patterns[0].oauth_config",
        rule: /oauth_config belongs to OAUTH patterns, not BEARER/
      },
      {
        name: "a mutation target that the auth type does not use",
        input: { ...http, auth_patterns: [{ type: "BEARER", auth_field_mutations: { password: { default: "X" } } }] },
        path: "auth_patterns[0].auth_field_mutations.password",
        rule: /BEARER patterns mutate only token/
      },
      {
        name: "an unknown mutation target",
        input: { ...http, auth_patterns: [{ type: "BASIC", auth_field_mutations: { domain: { prefix: "x" } } }] },
        path: "auth_patterns[0].auth_field_mutations.domain",
        rule: /excess property/
      },
      {
        name: "a header override that is not a header name",
        input: { ...http, auth_patterns: [{ type: "API_KEY", auth_header_key_override: "X API Key" }] },
        path: "auth_patterns[0].auth_header_key_override",
        rule: /HTTP header name/
      },
      {
        name: "api_key_query_param on a BEARER pattern",
        input: { ...http, auth_patterns: [{ type: "BEARER", api_key_query_param: "key" }] },
        path: "auth_patterns[0].api_key_query_param",
        rule: /belongs to API_KEY patterns/
      },
      {
        name: "two patterns of the same auth type",
        input: { ...http, auth_patterns: [bearer, bearer] },
        path: "auth_patterns[1].type",
        rule: /duplicate auth type BEARER/
      },
      {
        name: "an is_mcp pattern on an explicit http connector",
        input: { ...http, kind: "http", auth_patterns: [{ type: "BEARER", is_mcp: true }] },
        path: "auth_patterns[0].is_mcp",
        rule: /is_mcp patterns belong to MCP connectors, not http/
      },
      {
        name: "an unknown top-level key",
        input: { ...http, provider_type: "CUSTOM" },
        path: "provider_type",
        rule: /excess property/
      },
      {
        name: "an unknown key in an auth pattern",
        input: { ...http, auth_patterns: [{ type: "BEARER", scopes: [] }] },
        path: "auth_patterns[0].scopes",
        rule: /excess property/
      },
      {
        name: "a payload with neither display_name nor name",
        input: { proxy_url: "https://api.example.com" },
        path: "display_name",
        rule: /display_name \(or name\) is required/
      },
      {
        name: "a name that is not a slug",
        input: { ...http, name: "My Asana" },
        path: "name",
        rule: /lower-case letters, digits, - or _/
      }
    ]

    it.each(refusals)("$name", ({ input, path, rule }) => assertRefused(input, path, rule))

    it("reports every issue at once (errors: all)", () => {
      const issues = refusal({
        display_name: "Example",
        icon_url: "ftp://cdn.example.com/icon.svg",
        auth_patterns: [{ type: "DIGEST" }, { type: "BEARER", oauth_config: { pkce_enabled: true } }],
        metadata: { team: 1 },
        provider_type: "CUSTOM"
      })
      const paths = issues.map((i) => i.path).sort()
      assert.deepStrictEqual(paths, [
        "auth_patterns[0].type",
        "auth_patterns[1].oauth_config",
        "icon_url",
        "metadata.team",
        "provider_type"
      ])
    })

    it("reports every cross-field issue at once", () => {
      const issues = refusal({ kind: "postgresql", config: { port: 0 }, command: { program: "x" } })
      assert.deepStrictEqual(issues.map((i) => i.path).sort(), [
        "command",
        "config.database",
        "config.host",
        "config.port",
        "display_name"
      ])
    })

    it("property: a secret credential field of the type put in config is refused at config.<field>", () => {
      // Config is stored unsealed and returned by reads; secrets belong in credentials.
      const notSecret: ReadonlySet<string> = new Set(["username", "access_key_id"])
      fc.assert(
        fc.property(fc.constantFrom(...Catalog.entries), fc.nat(), (entry, n) => {
          const secrets = entry.auth_fields.filter((f) => !notSecret.has(f))
          const field = secrets[n % secrets.length] as string
          const config = Object.fromEntries(
            entry.required_config.map(([first]) => [first, entry.numeric_config.includes(first) ? 1 : "x"])
          )
          const input = {
            display_name: entry.display_name,
            kind: entry.type,
            config: { ...config, [field]: "hunter2" }
          }
          assertRefused(input, `config.${field}`, /credential/)
        })
      )
    })

    it("property: a non-string metadata value is refused at metadata.<key>", () => {
      fc.assert(
        fc.property(
          fc.stringMatching(/^[a-z][a-z0-9_]{0,15}$/),
          fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string()), fc.object()),
          (key, value) => {
            assertRefused({ ...http, metadata: { [key]: value } }, `metadata.${key}`, /string/i)
          }
        )
      )
    })

    it("property: ports 1-65535 (number or digits) are accepted, anything else is refused at config.port", () => {
      const pg = (port: unknown) => ({
        display_name: "PG",
        kind: "postgresql",
        config: { host: "db", database: "app", port }
      })
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 65535 }), fc.boolean(), (port, asString) => {
          assert.isTrue(Result.isSuccess(decode(pg(asString ? String(port) : port))))
        })
      )
      fc.assert(
        fc.property(
          fc.oneof(
            fc.integer({ max: 0 }),
            fc.integer({ min: 65536 }),
            fc.double({ min: 1, max: 65535, noNaN: true }).filter((n) => !Number.isInteger(n)),
            fc.string().filter((s) => !/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 65535)
          ),
          (port) => assertRefused(pg(port), "config.port", /port number from 1 to 65535/)
        )
      )
    })

    it("property: refusal messages never echo the refused value", () => {
      fc.assert(
        fc.property(fc.stringMatching(/^[a-z]{12,20}$/), (secret) => {
          const input = {
            ...http,
            icon_url: `http://${secret}.example.com/i.svg`,
            kind: secret,
            metadata: { k: { v: secret } }
          }
          const error = (decode(input) as Result.Failure<never, ValidationFailed>).failure
          assert.notInclude(JSON.stringify({ message: error.message, details: error.details }), secret)
        })
      )
    })
  })

  describe("slugify", () => {
    it("turns a display name into a connector name", () => {
      assert.strictEqual(Connector.slugify("My Asana"), "my-asana")
      assert.strictEqual(Connector.slugify("  Café Müller / Prod  "), "cafe-muller-prod")
      assert.strictEqual(Connector.slugify("GitHub (local MCP server)"), "github-local-mcp-server")
      assert.strictEqual(Connector.slugify("---"), "")
      assert.strictEqual(Connector.slugify("日本語"), "")
      assert.strictEqual(Connector.slugify(`${"a".repeat(62)} b`), "a".repeat(62))
    })

    it("property: the output is a valid Name or empty", () => {
      const isName = (s: string) => Result.isSuccess(Validation.decodeResult(Connector.Name, "name")(s))
      fc.assert(
        fc.property(
          fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.string({ unit: "grapheme", maxLength: 100 })),
          (s) => {
            const slug = Connector.slugify(s)
            assert.isTrue(slug === "" || isName(slug), JSON.stringify(slug))
          }
        ),
        { numRuns: 1000 }
      )
    })

    it("property: slugify is idempotent", () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 100 }), (s) => {
          const slug = Connector.slugify(s)
          assert.strictEqual(Connector.slugify(slug), slug)
        })
      )
    })
  })
})
