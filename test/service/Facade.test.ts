/**
 * The Promise facade: a caller that does not use Effect gets the same service, typed errors as rejections,
 * and can act as another principal.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import { createSwitchboard } from "@switchboard/core"
import * as Errors from "@switchboard/core/Errors"

describe("createSwitchboard", () => {
  it("runs the service with Promises and rejects with typed errors", async () => {
    const sb = createSwitchboard({ layer: Memory.layer })
    try {
      const created = await sb.createConnector({
        display_name: "Bearer API",
        auth_patterns: [{ type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] }],
        proxy_url: "https://api.example.com",
        proxy_enabled: true
      })
      assert.strictEqual(created.name, "bearer-api")
      assert.strictEqual((await sb.getConnector("bearer-api")).id, created.id)

      const error = await sb.getConnector("nope").catch((e: unknown) => e)
      assert.instanceOf(error, Errors.ConnectorNotFound)
      assert.strictEqual(error.code, "connector_not_found")
      assert.deepStrictEqual(Errors.toErrorBody(error), {
        error: { code: "connector_not_found", message: "connector nope not found", details: { connector: "nope" } }
      })

      const viewer = sb.as({ org: "local", workspace: "default", user: "v", role: "viewer" })
      assert.strictEqual((await viewer.listConnectors()).data.length, 1)
      const denied = await viewer.deleteConnector("bearer-api").catch((e: unknown) => e)
      assert.instanceOf(denied, Errors.Forbidden)

      await sb.setCredential("bearer-api", "user", { values: { token: "tok-1234567890" } })
      await sb.createConnection("bearer-api", { name: "Mine" })
      const call = await sb.resolveCall("Mine")
      assert.strictEqual(JSON.stringify(call.auth.headers), '{"Authorization":"<redacted>"}')
    } finally {
      await sb.dispose()
    }
  })
})
