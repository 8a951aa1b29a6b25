import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Layers from "../../src/Layers.ts"
import * as OAuthRoutes from "../../src/OAuthRoutes.ts"
import * as Security from "../../src/web/Security.ts"
import * as Web from "../../src/web/Web.ts"
import { tempDir } from "../support.ts"

const listener = (web: boolean) =>
  OAuthRoutes.layer(
    web ? { web: { principal: Layers.localPrincipal("alice"), keys: Security.makeKeys("s3cret") } } : {}
  ).pipe(
    Layer.provide(
      Layers.oauthSwitchboardLayer({
        kind: "memory",
        paths: Layers.resolvePaths({ home: tempDir() }),
        allowPrivateNetwork: false
      })
    )
  )

describe("Web", () => {
  it.live("connectorPageUrl and dashboardUrl are null where no pages are served", () =>
    Effect.gen(function* () {
      assert.isNull(Web.connectorPageUrl("conn_1"))
      assert.isNull(Web.dashboardUrl())
      const { port } = yield* OAuthRoutes.BrowserListener
      assert.isNull(Web.connectorPageUrl("conn_1"), "the callback-only listener of auth login serves no pages")
      const response = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/ui?k=s3cret`, { redirect: "manual" })
      )
      assert.strictEqual(response.status, 404)
    }).pipe(Effect.provide(listener(false)))
  )

  it.live("connectorPageUrl names the connect page with the secret while the listener serves the pages", () =>
    Effect.gen(function* () {
      const { port } = yield* OAuthRoutes.BrowserListener
      assert.strictEqual(Web.connectorPageUrl("conn_1"), `http://127.0.0.1:${port}/ui/connect/conn_1?k=s3cret`)
      assert.strictEqual(Web.dashboardUrl(), `http://127.0.0.1:${port}/ui?k=s3cret`)
      const first = yield* Effect.promise(() => fetch(Web.connectorPageUrl("conn_1") ?? "", { redirect: "manual" }))
      assert.strictEqual(first.status, 303)
      assert.strictEqual(first.headers.get("location"), "/ui/connect/conn_1")
      assert.match(
        first.headers.get("set-cookie") ?? "",
        new RegExp(`^sb_session_${port}=s3cret; Path=/; HttpOnly; SameSite=Strict$`, "u")
      )
      const page = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/ui/connect/conn_1`, { headers: { cookie: `sb_session_${port}=s3cret` } })
      )
      assert.strictEqual(page.status, 404, "no such connection")
      assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/u)
      const css = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/ui/style.css`))
      assert.strictEqual(css.status, 200)
      assert.match(css.headers.get("content-type") ?? "", /^text\/css/u)
    }).pipe(Effect.provide(listener(true)))
  )
})
