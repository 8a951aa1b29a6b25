/**
 * Argument checks with the SDK's ajv validator: ajv's error text turned into issues with paths, nested
 * paths and required properties, and schemas ajv cannot compile left to the server instead of failing.
 */
import { assert, describe, it } from "@effect/vitest"
import { checkArguments, issuesOf, TolerantValidator } from "../../src/mcp/internal/schemas.ts"

describe("issuesOf", () => {
  it("reads ajv's error text into paths and messages", () => {
    assert.deepStrictEqual(
      issuesOf("data/a must be number, data must have required property 'b', data/items/0/name must be string"),
      [
        { path: "a", message: "must be number" },
        { path: "b", message: "is required" },
        { path: "items[0].name", message: "must be string" }
      ]
    )
    assert.deepStrictEqual(issuesOf("data must be object"), [{ path: "", message: "must be object" }])
    assert.deepStrictEqual(issuesOf("data/a~1b must be equal to one of the allowed values"), [
      { path: "a/b", message: "must be equal to one of the allowed values" }
    ])
  })
})

describe("checkArguments", () => {
  const validator = new TolerantValidator()

  it("reports every issue with its path, never the value", () => {
    const check = checkArguments(validator, {
      type: "object",
      properties: {
        city: { type: "string", enum: ["Oslo", "Lima"] },
        days: { type: "integer", minimum: 1 },
        filter: { type: "object", properties: { tags: { type: "array", items: { type: "string" } } } }
      },
      required: ["city", "days"]
    })
    assert.deepStrictEqual(check({ city: "Oslo", days: 2 }), [])
    const issues = check({ city: "secret-city", filter: { tags: ["a", 5] } })
    assert.deepStrictEqual(
      issues.map((i) => i.path),
      ["days", "city", "filter.tags[1]"]
    )
    assert.notInclude(JSON.stringify(issues), "secret-city")
  })

  it("checks draft 2020-12 schemas, and leaves uncompilable schemas to the server", () => {
    const modern = checkArguments(validator, {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: { n: { type: "number" } },
      required: ["n"]
    })
    assert.deepStrictEqual(modern({}), [{ path: "n", message: "is required" }])
    const broken = checkArguments(validator, { type: "object", properties: { x: { $ref: "#/$defs/missing" } } })
    assert.deepStrictEqual(broken({ x: 1 }), [])
  })
})
