import { assert, describe, it } from "@effect/vitest"
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import * as Toolset from "@switchboard/core/Toolset"
import * as fc from "fast-check"

const connection = (id: string, name: string) => ({ id, name }) as unknown as Connection.Connection
const connector = (kind: string, extra: Record<string, unknown> = {}) =>
  ({ id: "ctr_1", name: "c", display_name: "C", kind, ...extra }) as unknown as Connector.Connector

describe("Toolset", () => {
  it("allowList matches exact names and * wildcards, commas separating; empty allows all", () => {
    const allowed = Toolset.allowList(["github__*", "slack__post,  linear__list_*"])
    assert.isTrue(allowed("github__create_issue"))
    assert.isTrue(allowed("slack__post"))
    assert.isFalse(allowed("slack__post_more"))
    assert.isTrue(allowed("linear__list_issues"))
    assert.isFalse(allowed("jira__search"))
    assert.isTrue(Toolset.allowList([])("anything"))
    assert.isTrue(Toolset.allowList(["a.b"])("a.b"))
    assert.isFalse(Toolset.allowList(["a.b"])("axb"))
  })

  it("entriesOf: an MCP connection's upstream tools, a REST connection's request tool, nothing otherwise", () => {
    const tools = [{ name: "echo", inputSchema: { type: "object" } }]
    const mcp = Toolset.entriesOf(connection("conn_1", "gh"), connector("mcp"), tools)
    assert.deepStrictEqual(
      mcp.map((e) => [e.kind, e.tool]),
      [["upstream", "echo"]]
    )
    const rest = Toolset.entriesOf(connection("conn_2", "api"), connector("http"))
    assert.deepStrictEqual(
      rest.map((e) => [e.kind, e.tool]),
      [["request", Toolset.REQUEST_TOOL]]
    )
    assert.deepStrictEqual(
      Toolset.entriesOf(connection("conn_3", "off"), connector("http", { proxy_enabled: false })),
      []
    )
    assert.deepStrictEqual(Toolset.entriesOf(connection("conn_4", "pg"), connector("postgresql")), [])
  })

  it("names as the MCP server does: its own tool names are never given away", () => {
    const names = Toolset.assign(
      Toolset.entriesOf(connection("conn_1", "switchboard"), connector("mcp"), [
        { name: "list_connectors", inputSchema: {} },
        { name: "other", inputSchema: {} }
      ])
    )
    const given = names.entries.map((e) => e.name)
    assert.include(given, "switchboard__other")
    assert.isFalse(given.some((n) => Toolset.MANAGEMENT_NAMES.includes(n)))
    const request = Toolset.definitionOf(
      "api__request",
      Toolset.entriesOf(connection("c", "api"), connector("http"))[0]!
    )
    assert.strictEqual(request.inputSchema, Toolset.requestInputSchema)
  })

  it("renderResponse: JSON parsed, text as text, anything else base64; 4xx/5xx are errors", () => {
    const enc = new TextEncoder()
    const ok = Toolset.renderResponse(200, { "content-type": "application/json" }, enc.encode('{"a":1}'), false, 100)
    assert.deepStrictEqual(ok.structuredContent?.body, { a: 1 })
    assert.isUndefined(ok.isError)
    const missing = Toolset.renderResponse(404, { "content-type": "text/plain" }, enc.encode("nope"), false, 100)
    assert.strictEqual(missing.structuredContent?.body, "nope")
    assert.isTrue(missing.isError)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const r = Toolset.renderResponse(200, { "content-type": "application/octet-stream" }, bytes, false, 100)
        const expected = bytes.length === 0 ? null : Buffer.from(bytes).toString("base64")
        assert.strictEqual(r.structuredContent?.body, expected)
      })
    )
  })

  it("textOf joins the text parts; errorResult keeps code and message", () => {
    assert.strictEqual(
      Toolset.textOf({
        content: [
          { type: "text", text: "a" },
          { type: "image", data: "x" },
          { type: "text", text: "b" }
        ]
      }),
      "a\nb"
    )
    assert.deepStrictEqual(Toolset.errorResult(new Error("secret")), {
      content: [{ type: "text", text: "an unexpected error; see the server's log (stderr) (internal_error)" }],
      isError: true
    })
  })
})
