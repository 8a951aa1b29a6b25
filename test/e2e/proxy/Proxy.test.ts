/**
 * The HTTP proxy through the whole stack (in-memory store, Switchboard, Proxy, the real SSRF-guarded client)
 * against a recording server on 127.0.0.1: every auth type and field mutation checked byte for byte, connection
 * headers and pre-filled parameters, what is never forwarded either way, path confinement, a 20 MB body streamed
 * both ways, timeouts, retries only where idempotent, and the audit of every call.
 */
import { assert, describe, it } from "@effect/vitest"
import { Proxy } from "@switchboard/core/Proxy"
import * as Principal from "@switchboard/core/Principal"
import { Switchboard } from "@switchboard/core/Switchboard"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { alice, attempts, freePort, received, recordingServer, stack } from "./support.ts"

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")

const run = <A, E>(effect: Effect.Effect<A, E, Layer.Success<typeof stack> | Scope.Scope>) =>
  effect.pipe(Effect.provide(stack), Effect.provideService(Principal.CurrentPrincipal, alice))

/** Create a connector with one auth pattern on the recording server, a credential and a connection. */
const setup = (options: {
  readonly origin: string
  readonly pattern: Record<string, unknown>
  readonly values: Record<string, string>
  readonly connection?: Record<string, unknown>
  readonly name?: string
}) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard
    const name = options.name ?? "api"
    yield* sb.createConnector({
      name,
      display_name: name,
      auth_patterns: [options.pattern],
      proxy_url: `${options.origin}/api/v2`,
      proxy_enabled: true
    })
    yield* sb.setCredential(name, "user", { values: options.values })
    return yield* sb.createConnection(name, {
      name: `${name} conn`,
      allow_private_network: true,
      ...options.connection
    })
  })

const body = (response: { readonly body: Stream.Stream<Uint8Array, unknown> }) =>
  Effect.map(Stream.runCollect(response.body), (chunks) => Buffer.concat(chunks).toString())

describe("auth injection, byte for byte", () => {
  const cases: ReadonlyArray<{
    readonly name: string
    readonly pattern: Record<string, unknown>
    readonly values: Record<string, string>
    readonly expect: Record<string, ReadonlyArray<string>>
    readonly query?: ReadonlyArray<readonly [string, string]>
  }> = [
    {
      name: "BASIC",
      pattern: {
        type: "BASIC",
        fields: [{ field_name: "username" }, { field_name: "password", input_type: "password" }]
      },
      values: { username: "alice@example.com", password: "pa:ss wörd" },
      expect: { authorization: [`Basic ${b64("alice@example.com:pa:ss wörd")}`] }
    },
    {
      name: "BASIC with the Freshdesk mutations",
      pattern: {
        type: "BASIC",
        fields: [{ field_name: "username", label: "API key", input_type: "password" }],
        auth_field_mutations: { password: { default: "X" }, username: { suffix: "/token" } }
      },
      values: { username: "fd-Api-K3y" },
      expect: { authorization: [`Basic ${b64("fd-Api-K3y/token:X")}`] }
    },
    {
      name: "BEARER",
      pattern: { type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] },
      values: { token: "ghp_T0ken.with-chars_~+/=" },
      expect: { authorization: ["Bearer ghp_T0ken.with-chars_~+/="] }
    },
    {
      name: "API_KEY raw in Authorization",
      pattern: { type: "API_KEY", fields: [{ field_name: "api_key", input_type: "password" }] },
      values: { api_key: "sk_live_raw" },
      expect: { authorization: ["sk_live_raw"] }
    },
    {
      name: "API_KEY with a prefix mutation",
      pattern: {
        type: "API_KEY",
        fields: [{ field_name: "api_key", input_type: "password" }],
        auth_field_mutations: { api_key: { prefix: "Token token=" } }
      },
      values: { api_key: "abc123" },
      expect: { authorization: ["Token token=abc123"] }
    },
    {
      name: "API_KEY in X-API-Key (header override)",
      pattern: {
        type: "API_KEY",
        fields: [{ field_name: "api_key", input_type: "password" }],
        auth_header_key_override: "X-API-Key"
      },
      values: { api_key: "xk_123" },
      expect: { "x-api-key": ["xk_123"], authorization: [] }
    },
    {
      name: "API_KEY in the query",
      pattern: {
        type: "API_KEY",
        fields: [{ field_name: "api_key", input_type: "password" }],
        api_key_query_param: "api_key"
      },
      values: { api_key: "q k&y=1" },
      expect: { authorization: [] },
      query: [
        ["page", "2"],
        ["api_key", "q k&y=1"]
      ]
    },
    {
      name: "OAuth access token",
      pattern: {
        type: "OAUTH",
        oauth_config: { authorize_uri: "https://auth.example/authorize", token_uri: "https://auth.example/token" }
      },
      values: { access_token: "ya29.access-token" },
      expect: { authorization: ["Bearer ya29.access-token"] }
    }
  ]

  for (const c of cases) {
    it.live(c.name, () =>
      run(
        Effect.gen(function* () {
          const srv = yield* recordingServer
          yield* setup({ origin: srv.origin, pattern: c.pattern, values: c.values })
          const proxy = yield* Proxy
          const response = yield* proxy.request("api conn", {
            method: "GET",
            path: "/users/me",
            query: { page: "2", ...(c.query === undefined ? {} : { api_key: "caller-supplied" }) },
            headers: { Authorization: "Bearer caller-own-token", Accept: "application/json" }
          })
          assert.strictEqual(response.status, 200)
          assert.strictEqual(yield* body(response), "upstream says ok")
          const [seen] = srv.seen
          assert.strictEqual(seen?.method, "GET")
          assert.strictEqual(seen?.path, "/api/v2/users/me")
          assert.deepStrictEqual(seen?.query, c.query ?? [["page", "2"]])
          for (const [name, values] of Object.entries(c.expect))
            assert.deepStrictEqual(received(seen, name), values, name)
          assert.deepStrictEqual(received(seen, "accept"), ["application/json"])
          assert.deepStrictEqual(received(seen, "host"), [`127.0.0.1:${srv.port}`])
        })
      )
    )
  }
})

describe("headers and parameters", () => {
  it.live(
    "adds connection headers and pre-filled parameters; never forwards the caller's credentials or hop-by-hop headers",
    () =>
      run(
        Effect.gen(function* () {
          const srv = yield* recordingServer
          yield* setup({
            origin: srv.origin,
            pattern: { type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] },
            values: { token: "t0k" },
            connection: {
              headers: { "X-Conn-Secret": "conn-h3ader", "X-Override": "from-connection" },
              parameters: { query: { region: "eu", page: "1" }, header: { "X-Tenant": "acme" } }
            }
          })
          const proxy = yield* Proxy
          const response = yield* proxy.request("api conn", {
            method: "DELETE",
            path: "/items/9?page=3",
            headers: {
              Authorization: "Bearer caller",
              Cookie: "sid=caller",
              "Proxy-Authorization": "Basic Y2FsbGVy",
              Connection: "keep-alive, X-Caller-Hop",
              "X-Caller-Hop": "hop",
              "Keep-Alive": "timeout=9",
              TE: "trailers",
              Trailer: "X-Trailer",
              Upgrade: "h2c",
              "Proxy-Connection": "keep-alive",
              Host: "evil.example",
              "X-Override": "from-caller",
              "X-Request-Id": "req-1"
            }
          })
          assert.strictEqual(response.status, 200)
          const [seen] = srv.seen
          assert.strictEqual(seen?.url, "/api/v2/items/9?region=eu&page=3")
          const names = (seen?.headers ?? []).map(([k]) => k.toLowerCase()).sort()
          assert.deepStrictEqual(names, [
            "authorization",
            "connection",
            "host",
            "x-conn-secret",
            "x-override",
            "x-request-id",
            "x-tenant"
          ])
          assert.deepStrictEqual(received(seen, "authorization"), ["Bearer t0k"])
          assert.deepStrictEqual(received(seen, "x-conn-secret"), ["conn-h3ader"])
          assert.deepStrictEqual(received(seen, "x-override"), ["from-connection"])
          assert.deepStrictEqual(received(seen, "x-tenant"), ["acme"])
          // Node's own (a pooled GET), not the caller's "keep-alive, X-Caller-Hop".
          assert.deepStrictEqual(received(seen, "connection"), ["keep-alive"], "only the client's own")
          assert.deepStrictEqual(received(seen, "host"), [`127.0.0.1:${srv.port}`])
          // The response: no cookies, no hop-by-hop headers; the rest as the upstream sent it.
          assert.strictEqual(response.headers["x-kept"], "yes")
          assert.strictEqual(response.headers["content-type"], "text/plain")
          for (const name of ["set-cookie", "connection", "keep-alive", "x-upstream-hop", "proxy-authenticate"]) {
            assert.isUndefined(response.headers[name], name)
          }
        })
      )
  )

  it.live("keeps the caller below the base path; a refused path reaches nothing", () =>
    run(
      Effect.gen(function* () {
        const srv = yield* recordingServer
        yield* setup({
          origin: srv.origin,
          pattern: { type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] },
          values: { token: "t0k" }
        })
        const proxy = yield* Proxy
        for (const path of [
          "/../../admin",
          "/%2e%2e/%2e%2e/admin",
          "//169.254.169.254/",
          "http://127.0.0.1/",
          "/a/..%2f..%2f..%2fx"
        ]) {
          const error = yield* Effect.flip(proxy.request("api conn", { method: "GET", path }))
          assert.strictEqual(error.code, "invalid_parameter", path)
        }
        assert.strictEqual(srv.seen.length, 0)
        const ok = yield* proxy.request("api conn", { method: "GET", path: "a/b/../c/./d" })
        assert.strictEqual(ok.status, 200)
        assert.strictEqual(srv.seen[0]?.url, "/api/v2/a/c/d")
      })
    )
  )
})

describe("streaming", () => {
  it.live("streams a 20 MB body both ways through the proxy without collecting it", () =>
    run(
      Effect.gen(function* () {
        const srv = yield* recordingServer
        yield* setup({
          origin: srv.origin,
          pattern: { type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] },
          values: { token: "t0k" }
        })
        const size = 20 * 1024 * 1024
        const piece = 256 * 1024
        const template = new Uint8Array(piece + 251).map((_, i) => i % 251)
        const sent = createHash("sha256")
        // After its first 2 MB the body waits for the first bytes of the answer: collecting either direction
        // before passing it on would deadlock here.
        const echoed = yield* Deferred.make<void>()
        const pieces = (from: number, to: number) =>
          Stream.fromIterable(
            (function* () {
              for (let offset = from; offset < to; offset += piece) {
                const chunk = template.subarray(offset % 251, (offset % 251) + piece)
                sent.update(chunk)
                yield chunk
              }
            })()
          )
        const split = 2 * 1024 * 1024
        const upload = pieces(0, split).pipe(
          Stream.concat(Stream.drain(Stream.fromEffect(Deferred.await(echoed)))),
          Stream.concat(pieces(split, size))
        )
        const proxy = yield* Proxy
        const response = yield* proxy.request("api conn", {
          method: "POST",
          path: "/pipe",
          headers: { "Content-Type": "application/octet-stream" },
          body: upload
        })
        const got = createHash("sha256")
        let bytes = 0
        yield* Stream.runForEach(response.body, (chunk) =>
          Effect.suspend(() => {
            bytes += chunk.byteLength
            got.update(chunk)
            return Deferred.succeed(echoed, undefined)
          })
        )
        assert.strictEqual(bytes, size)
        assert.strictEqual(got.digest("hex"), sent.digest("hex"))
      })
    )
  )
})

describe("timeouts, retries and audit", () => {
  it.live("times out per the connection's total timeout, without retrying, and audits it", () =>
    run(
      Effect.gen(function* () {
        const srv = yield* recordingServer
        const conn = yield* setup({
          origin: srv.origin,
          pattern: { type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] },
          values: { token: "t0k" },
          connection: { timeouts: { total_ms: 250 } }
        })
        const proxy = yield* Proxy
        const error = yield* Effect.flip(proxy.request("api conn", { method: "GET", path: "/hang?secret=q" }))
        assert.strictEqual(error.code, "upstream_timeout")
        assert.strictEqual(error.status, 504)
        assert.strictEqual(srv.hits("/api/v2/hang"), 1)
        const audit = yield* (yield* Switchboard).listAudit({ connection: conn.id, action: "connection.proxy" })
        assert.strictEqual(audit.data.length, 1)
        const [record] = audit.data
        assert.strictEqual(record?.outcome, "failure")
        assert.strictEqual(record?.error_code, "upstream_timeout")
        assert.strictEqual(record?.path, "/hang")
        assert.strictEqual(record?.actor, "alice")
        assert.isAtLeast(record?.duration_ms ?? -1, 0)
      })
    )
  )

  it.live("retries idempotent requests on 503 and on connection failures; never POST, never a streamed body", () =>
    run(
      Effect.gen(function* () {
        attempts.length = 0
        const srv = yield* recordingServer
        yield* setup({
          origin: srv.origin,
          pattern: { type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] },
          values: { token: "t0k" }
        })
        const proxy = yield* Proxy
        const get = yield* proxy.request("api conn", { method: "GET", path: "/flaky/get" })
        assert.strictEqual(get.status, 200)
        assert.strictEqual(srv.hits("/api/v2/flaky/get"), 3)
        const post = yield* proxy.request("api conn", { method: "POST", path: "/flaky/post" })
        assert.strictEqual(post.status, 503)
        assert.strictEqual(srv.hits("/api/v2/flaky/post"), 1)
        const put = yield* proxy.request("api conn", {
          method: "PUT",
          path: "/flaky/put",
          body: Stream.make(new TextEncoder().encode("{}"))
        })
        assert.strictEqual(put.status, 503)
        assert.strictEqual(srv.hits("/api/v2/flaky/put"), 1)
        assert.strictEqual(srv.seen.find((s) => s.path === "/api/v2/flaky/put")?.bytes, 2)

        // Nothing listens on the next connector's port: GET tries 3 times, POST once.
        const closed = yield* freePort
        yield* setup({
          origin: `http://127.0.0.1:${closed}`,
          name: "down",
          pattern: { type: "BEARER", fields: [{ field_name: "token", input_type: "password" }] },
          values: { token: "t0k" }
        })
        attempts.length = 0
        const down = yield* Effect.flip(proxy.request("down conn", { method: "GET", path: "/x" }))
        assert.strictEqual(down.code, "upstream_unreachable")
        assert.deepStrictEqual(attempts, Array(3).fill(`127.0.0.1:${closed}`))
        attempts.length = 0
        yield* Effect.flip(proxy.request("down conn", { method: "POST", path: "/x" }))
        assert.strictEqual(attempts.length, 1)
      })
    )
  )

  it.live("audits each call: who, connection, connector, method, path without the query, status, duration", () =>
    run(
      Effect.gen(function* () {
        const srv = yield* recordingServer
        const conn = yield* setup({
          origin: srv.origin,
          pattern: { type: "API_KEY", fields: [{ field_name: "api_key" }], api_key_query_param: "key" },
          values: { api_key: "k3y-in-query" }
        })
        const proxy = yield* Proxy
        yield* proxy.request("api conn", { method: "GET", path: "/status/404?q=private-search" })
        yield* proxy.request("api conn", { method: "PATCH", path: "/items/1", query: { token: "t" } })
        const sb = yield* Switchboard
        const audit = yield* sb.listAudit({ connection: conn.id, action: "connection.proxy" })
        const rows = audit.data.map(({ id: _id, at: _at, duration_ms, ...rest }) => {
          assert.isAtLeast(duration_ms ?? -1, 0)
          return rest
        })
        const common = {
          org: "acme",
          workspace: "eng",
          actor: "alice",
          action: "connection.proxy",
          outcome: "success" as const,
          connector_id: conn.connector_id,
          connection_id: conn.id,
          target: "api conn"
        }
        assert.sameDeepMembers(rows, [
          { ...common, method: "GET", path: "/status/404", status: 404 },
          { ...common, method: "PATCH", path: "/items/1", status: 200 }
        ])
        assert.notInclude(JSON.stringify(audit), "k3y-in-query")
        assert.notInclude(JSON.stringify(audit), "private-search")
      })
    )
  )
})
