import { assert, describe, it } from "@effect/vitest"
import * as Connector from "@switchboard/core/Connector"
import { ValidationFailed, NameTaken } from "@switchboard/core/Errors"
import * as Schema from "effect/Schema"
import * as ConnectorForm from "../../src/web/ConnectorForm.ts"

const decode = Schema.decodeUnknownExit(Connector.CreateConnector)

describe("ConnectorForm", () => {
  it("builds the seed's guided MCP payload, which the API schema accepts", () => {
    const { payload, errors } = ConnectorForm.toPayload({
      kind: "mcp",
      display_name: " Example MCP ",
      description: "An MCP server",
      icon_url: "https://cdn.example.com/icon.svg",
      proxy_url: "https://app.example.com/mcp",
      metadata: "team=platform\r\ntier = gold\n\n",
      auth_type: "OAUTH"
    })
    assert.deepStrictEqual(errors, {})
    assert.deepStrictEqual(payload, {
      kind: "mcp",
      display_name: "Example MCP",
      description: "An MCP server",
      icon_url: "https://cdn.example.com/icon.svg",
      proxy_url: "https://app.example.com/mcp",
      proxy_enabled: true,
      metadata: { team: "platform", tier: "gold" },
      auth_patterns: [{ type: "OAUTH", is_mcp: true, oauth_config: { pkce_enabled: true } }]
    })
    assert.strictEqual(decode(payload)._tag, "Success")
  })

  it("builds REST payloads with static auth types or OAuth endpoints", () => {
    for (const auth_type of ["BEARER", "API_KEY", "BASIC"]) {
      const { payload } = ConnectorForm.toPayload({
        kind: "http",
        display_name: "Api",
        proxy_url: "https://a.example",
        auth_type
      })
      assert.deepStrictEqual(payload.auth_patterns, [{ type: auth_type }])
      assert.strictEqual(decode(payload)._tag, "Success", auth_type)
    }
    const oauth = ConnectorForm.toPayload({
      kind: "http",
      display_name: "Api",
      proxy_url: "https://a.example",
      auth_type: "OAUTH",
      authorize_uri: "https://a.example/auth",
      token_uri: "https://a.example/token"
    }).payload
    assert.strictEqual(decode(oauth)._tag, "Success")
  })

  it("reports a metadata line without key=value on the metadata field", () => {
    const { errors } = ConnectorForm.toPayload({ display_name: "x", metadata: "team=a\njust text" })
    assert.match(errors["metadata"] ?? "", /key=value/u)
  })

  it("maps API issue paths onto form fields", () => {
    assert.strictEqual(ConnectorForm.fieldOf("icon_url"), "icon_url")
    assert.strictEqual(ConnectorForm.fieldOf("metadata.team"), "metadata")
    assert.strictEqual(ConnectorForm.fieldOf("auth_patterns[0].type"), "auth_type")
    assert.strictEqual(ConnectorForm.fieldOf("auth_patterns[0].oauth_config.token_uri"), "token_uri")
    assert.strictEqual(ConnectorForm.fieldOf("name"), "display_name")
    assert.isUndefined(ConnectorForm.fieldOf("visibility"))
  })

  it("splits a ValidationFailed into field errors and a form error; NameTaken lands on the display name", () => {
    const failed = new ValidationFailed({
      message: "invalid connector",
      details: {
        issues: [
          { path: "icon_url", message: "expected an https:// URL" },
          { path: "proxy_url", message: "proxy_url is required" },
          { path: "visibility", message: "bad" }
        ]
      }
    })
    assert.deepStrictEqual(ConnectorForm.errorsOf(failed), {
      errors: { icon_url: "expected an https:// URL", proxy_url: "proxy_url is required" },
      error: "visibility: bad"
    })
    assert.deepStrictEqual(ConnectorForm.errorsOf(new NameTaken({ message: "taken" })), {
      errors: { display_name: "taken" },
      error: undefined
    })
  })
})
