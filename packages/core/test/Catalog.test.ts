import { assert, describe, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import * as Catalog from "../src/Catalog.ts"

const allTypes: ReadonlyArray<Catalog.DataConnectorType> = [
  "postgresql",
  "mysql",
  "redshift",
  "snowflake",
  "databricks",
  "bigquery",
  "mongodb",
  "kafka",
  "confluent_kafka",
  "aws_s3",
  "gcs",
  "azure_blob",
  "sftp",
  "rest_api",
  "webhook",
  "amazon_kinesis",
  "salesforce",
  "hubspot"
]

/** The seed table: required config per type, each entry a set of alternatives. */
const seedRequired: Readonly<Record<Catalog.DataConnectorType, ReadonlyArray<ReadonlyArray<string>>>> = {
  postgresql: [["host"], ["port"], ["database"]],
  mysql: [["host"], ["port"], ["database"]],
  redshift: [["host"], ["port"], ["database"]],
  snowflake: [["account"], ["warehouse"], ["database"]],
  databricks: [["host"], ["httpPath"]],
  bigquery: [["project"], ["dataset"]],
  mongodb: [["host", "connectionString"]],
  kafka: [["bootstrapServers"]],
  confluent_kafka: [["bootstrapServers"]],
  aws_s3: [["bucket"], ["region"]],
  gcs: [["bucket"], ["project"]],
  azure_blob: [["container"], ["storageAccount"]],
  sftp: [["host"], ["port"]],
  rest_api: [["url"]],
  webhook: [["url"]],
  amazon_kinesis: [["streamName"], ["region"]],
  salesforce: [["instanceUrl", "apiKey"]],
  // The seed says "instanceUrl or apiKey". The key is a secret, so it lives in a credential; HubSpot's API
  // host is fixed, so with the key in a credential nothing in config is required.
  hubspot: []
}

const entry = fc.constantFrom(...Catalog.entries)
const port = fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }).map(String))
const text = fc.string({ minLength: 1 })

/** A complete config for an entry: one arbitrary alternative of each required group, valid ports. */
const fullConfig = (e: Catalog.CatalogEntry): fc.Arbitrary<Catalog.Config> =>
  fc
    .tuple(
      ...e.required_config.map((alternatives) => fc.subarray([...alternatives], { minLength: 1 })),
      fc.subarray([...e.optional_config])
    )
    .chain((groups) => {
      const keys = [...new Set(groups.flat())]
      return fc.tuple(
        ...keys.map((key) => (e.numeric_config.includes(key) ? port : text).map((v) => [key, v] as const))
      )
    })
    .map((pairs) => Object.fromEntries(pairs))

describe("Catalog", () => {
  it("every entry decodes with CatalogEntry", () => {
    const decode = Schema.decodeUnknownSync(Schema.Array(Catalog.CatalogEntry), { onExcessProperty: "error" })
    assert.deepStrictEqual(decode(Catalog.entries), Catalog.entries)
  })

  it("lists all 18 types exactly once", () => {
    const types = Catalog.entries.map((e) => e.type)
    assert.strictEqual(types.length, 18)
    assert.sameMembers(types, [...allTypes])
    assert.strictEqual(new Set(types).size, 18)
    for (const type of allTypes) {
      assert.isTrue(Catalog.isDataConnectorType(type))
      assert.strictEqual(Catalog.get(type).type, type)
    }
    assert.isFalse(Catalog.isDataConnectorType("oracle"))
    assert.isFalse(Catalog.isDataConnectorType("http"))
  })

  it.each(allTypes)("%s requires what the seed table says (secrets aside: they go to credentials)", (type) => {
    const nonSecret = (groups: ReadonlyArray<ReadonlyArray<string>>) =>
      groups.map((alternatives) => alternatives.filter((key) => !/api_?key/i.test(key)))
    assert.deepStrictEqual(nonSecret(Catalog.get(type).required_config), nonSecret(seedRequired[type]))
  })

  it("numeric config fields are ports, and default ports are valid", () => {
    for (const e of Catalog.entries) {
      for (const key of e.numeric_config) assert.include([...e.required_config.flat(), ...e.optional_config], key)
      if (e.default_port !== undefined) assert.isTrue(e.default_port >= 1 && e.default_port <= 65535)
    }
  })

  it("config never takes a secret: secrets are credential auth_fields", () => {
    for (const e of Catalog.entries) {
      const config = [...e.required_config.flat(), ...e.optional_config]
      for (const key of config) {
        assert.notMatch(key, /password|secret|token|private|api_?key/i, `${e.type}.${key} is a secret in config`)
        assert.notInclude(e.auth_fields, key, `${e.type}.${key} is both config and credential`)
      }
      assert.isAbove(e.auth_fields.length, 0)
      assert.strictEqual(new Set(e.auth_fields).size, e.auth_fields.length)
    }
  })

  describe("configIssues", () => {
    it.each(allTypes)("%s: an empty config lists each required group", (type) => {
      const groups = Catalog.get(type).required_config
      for (const config of [undefined, {}]) {
        const issues = Catalog.configIssues(type, config)
        assert.deepStrictEqual(
          issues.map((i) => i.path),
          groups.map(([first]) => ["config", first])
        )
        issues.forEach((issue, i) => {
          for (const alternative of groups[i] ?? []) assert.include(issue.issue, `"${alternative}"`)
          assert.include(issue.issue, type)
        })
      }
    })

    it("mongodb takes host or connectionString", () => {
      assert.deepStrictEqual(Catalog.configIssues("mongodb", { host: "db" }), [])
      assert.deepStrictEqual(
        Catalog.configIssues("mongodb", { connectionString: "mongodb+srv://cluster0.example.net" }),
        []
      )
      assert.deepStrictEqual(Catalog.configIssues("mongodb", { database: "app" }), [
        { path: ["config", "host"], issue: 'mongodb requires one of config fields "host" or "connectionString"' }
      ])
    })

    it("an empty string does not satisfy a required field", () => {
      assert.deepStrictEqual(Catalog.configIssues("rest_api", { url: "" }), [
        { path: ["config", "url"], issue: 'rest_api requires config field "url"' }
      ])
    })

    it("property: a full config has no issues", () => {
      fc.assert(
        fc.property(
          entry.chain((e) => fc.tuple(fc.constant(e), fullConfig(e))),
          ([e, config]) => {
            assert.deepStrictEqual(Catalog.configIssues(e.type, config), [])
          }
        ),
        { numRuns: 500 }
      )
    })

    it("property: removing one required group from a full config reports exactly that group", () => {
      fc.assert(
        fc.property(
          fc
            .constantFrom(...Catalog.entries.filter((e) => e.required_config.length > 0))
            .chain((e) => fc.tuple(fc.constant(e), fullConfig(e), fc.nat({ max: e.required_config.length - 1 }))),
          ([e, config, n]) => {
            const group: ReadonlyArray<string> = e.required_config[n] ?? []
            const rest = Object.fromEntries(Object.entries(config).filter(([k]) => !group.includes(k)))
            assert.deepStrictEqual(
              Catalog.configIssues(e.type, rest).map((i) => i.path),
              [["config", group[0] as string]]
            )
          }
        ),
        { numRuns: 500 }
      )
    })

    it("property: a numeric field outside 1-65535 is reported at its path", () => {
      const numeric = Catalog.entries.filter((e) => e.numeric_config.length > 0)
      fc.assert(
        fc.property(
          fc.constantFrom(...numeric).chain((e) => fc.tuple(fc.constant(e), fullConfig(e))),
          fc.oneof(
            fc.integer({ max: 0 }),
            fc.integer({ min: 65536 }),
            fc.constant(1.5),
            fc.constant("22a"),
            fc.constant(true)
          ),
          ([e, config], bad) => {
            const key = e.numeric_config[0] as string
            const issues = Catalog.configIssues(e.type, { ...config, [key]: bad })
            assert.deepStrictEqual(issues, [
              { path: ["config", key], issue: `"${key}" must be a port number from 1 to 65535` }
            ])
          }
        )
      )
    })
  })
})
