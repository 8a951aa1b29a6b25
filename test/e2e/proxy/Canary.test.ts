/**
 * Secrets never leak from the proxy: canaries are planted in a stored credential, a connection's headers and
 * a connection's inline security; proxy calls then succeed and fail every way (timeout, refused destination,
 * refused redirect, unreachable upstream, open circuit, rate limit, bad path, bad header, bad method), and every
 * returned value, error, pretty-printed cause, audit record and log line is scanned for them. The upstream
 * did receive them, which proves they were sent where they belong.
 */
import { assert, describe, it } from "@effect/vitest"
import { Proxy } from "@switchboard/core/Proxy"
import * as Principal from "@switchboard/core/Principal"
import { Switchboard } from "@switchboard/core/Switchboard"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import * as Stream from "effect/Stream"
import { inspect } from "node:util"
import { alice, freePort, received, recordingServer, stack } from "./support.ts"

const CANARY = "CANARY-7f3a-PROXY-SECRET"
const CANARY_HEADER = "CANARY-HDR-19be-PROXY"
const CANARY_INLINE = "CANARY-INL-55cd-PROXY"
const basic = Buffer.from(`inline-user:${CANARY_INLINE}`).toString("base64")
const fragments = [CANARY, CANARY_HEADER, CANARY_INLINE, "7f3a-PROXY", "19be-PROXY", "55cd-PROXY", basic]

const forms = (value: unknown): ReadonlyArray<string> => {
  const out = [inspect(value, { depth: 20, showHidden: true }), String(value)]
  try {
    out.push(JSON.stringify(value) ?? "")
  } catch {
    // Values that cannot be JSON-encoded are still covered by inspect.
  }
  if (value instanceof Error) out.push(value.message, value.stack ?? "")
  return out
}

describe("canary", () => {
  it.live("no proxy call returns, reports, audits or logs a planted secret", () => {
    const logs: Array<string> = []
    const collector = Logger.make((options) => {
      logs.push(inspect(options.message, { depth: 20 }), Cause.pretty(options.cause))
    })
    return Effect.gen(function* () {
      const srv = yield* recordingServer
      const sb = yield* Switchboard
      const proxy = yield* Proxy
      const observed: Array<unknown> = []
      const codes: Array<string> = []
      const capture = (connection: string, req: Parameters<typeof proxy.request>[1]) =>
        Effect.gen(function* () {
          const exit = yield* Effect.exit(
            proxy.request(connection, req).pipe(
              Effect.flatMap((response) =>
                Effect.map(Stream.runCollect(response.body), (chunks) => ({
                  status: response.status,
                  headers: response.headers,
                  body: Buffer.concat(chunks).toString()
                }))
              )
            )
          )
          observed.push(exit)
          if (Exit.isSuccess(exit)) {
            observed.push(exit.value)
            codes.push(String(exit.value.status))
          } else {
            observed.push(Cause.pretty(exit.cause), ...Cause.prettyErrors(exit.cause))
            const error = Cause.findErrorOption(exit.cause)
            codes.push(error._tag === "Some" ? error.value.code : "defect")
          }
        })

      yield* sb.createConnector({
        name: "canary-api",
        display_name: "Canary API",
        auth_patterns: [
          {
            type: "API_KEY",
            fields: [{ field_name: "api_key", input_type: "password" }],
            auth_header_key_override: "X-API-Key"
          }
        ],
        proxy_url: `${srv.origin}/api`,
        proxy_enabled: true
      })
      yield* sb.setCredential("canary-api", "user", { values: { api_key: CANARY } })
      const connection = (name: string, extra: Record<string, unknown> = {}) =>
        sb.createConnection("canary-api", { name, allow_private_network: true, ...extra })
      yield* connection("Good", { headers: { "X-Canary": CANARY_HEADER } })
      yield* connection("Refused", { allow_private_network: false, headers: { "X-Canary": CANARY_HEADER } })
      yield* connection("Slow", { headers: { "X-Canary": CANARY_HEADER }, timeouts: { total_ms: 150 } })
      yield* connection("Limited", { rate_limit: { requests_per_second: 0.1, burst: 1 } })
      yield* connection("Failing", { headers: { "X-Canary": CANARY_HEADER } })
      yield* sb.createConnector({
        name: "canary-basic",
        display_name: "Canary Basic",
        auth_patterns: [{ type: "BASIC", fields: [{ field_name: "username" }, { field_name: "password" }] }],
        proxy_url: `http://127.0.0.1:${yield* freePort}/api`,
        proxy_enabled: true
      })
      yield* sb.createConnection("canary-basic", {
        name: "Inline down",
        allow_private_network: true,
        security: { username: "inline-user", password: CANARY_INLINE }
      })

      yield* capture("Good", { method: "GET", path: "/items", headers: { Authorization: "Bearer caller" } })
      yield* capture("Good", { method: "POST", path: "/items", body: Stream.make(new TextEncoder().encode("{}")) })
      yield* capture("Good", { method: "GET", path: "/redirect" })
      yield* capture("Good", { method: "GET", path: "/../../etc/passwd" })
      yield* capture("Good", { method: "TRACE", path: "/" })
      yield* capture("Good", { method: "GET", path: "/x", headers: { "X-Bad": "a\r\nX-Injected: 1" } })
      yield* capture("Refused", { method: "GET", path: "/items" })
      yield* capture("Slow", { method: "GET", path: "/hang" })
      yield* capture("Limited", { method: "GET", path: "/items" })
      yield* capture("Limited", { method: "GET", path: "/items" })
      for (let i = 0; i < 6; i++) yield* capture("Failing", { method: "POST", path: "/status/500" })
      yield* capture("Inline down", { method: "GET", path: "/me" })
      yield* capture("Inline down", { method: "POST", path: "/me" })
      yield* capture("No such connection", { method: "GET", path: "/" })

      assert.deepStrictEqual(codes, [
        "200",
        "200",
        "destination_refused",
        "invalid_parameter",
        "invalid_parameter",
        "invalid_parameter",
        "destination_refused",
        "upstream_timeout",
        "200",
        "rate_limited",
        "500",
        "500",
        "500",
        "500",
        "500",
        "circuit_open",
        "upstream_unreachable",
        "upstream_unreachable",
        "connection_not_found"
      ])
      // The secrets did go where they belong.
      assert.deepStrictEqual(received(srv.seen[0], "x-api-key"), [CANARY])
      assert.deepStrictEqual(received(srv.seen[0], "x-canary"), [CANARY_HEADER])

      let cursor: string | undefined
      do {
        const page = yield* sb.listAudit({ limit: 100, ...(cursor === undefined ? {} : { cursor }) })
        observed.push(page)
        cursor = page.next_cursor ?? undefined
      } while (cursor !== undefined)
      observed.push(yield* sb.listConnections(), yield* sb.getConnection("Inline down"))
      observed.push(logs)

      const haystack = observed.flatMap(forms).join("\n")
      for (const fragment of fragments) assert.notInclude(haystack, fragment)
      assert.isAbove(haystack.length, 10_000)
    }).pipe(
      Effect.provide(Layer.mergeAll(stack, Logger.layer([collector]))),
      Effect.provideService(References.MinimumLogLevel, "All"),
      Effect.provideService(Principal.CurrentPrincipal, alice)
    )
  })
})
