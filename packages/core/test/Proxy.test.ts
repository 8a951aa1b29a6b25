/**
 * The proxy's rules (path joining that never climbs above the base, query and header merging, what is
 * dropped each way, which connectors can be proxied) and the service over a scripted Switchboard and
 * upstream under TestClock: resilience per connection, timeouts per connection, and the audit of every call.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import { UpstreamError } from "@switchboard/core/Errors"
import * as Proxy from "@switchboard/core/Proxy"
import type { AuditRecord } from "@switchboard/core/AuditLog"
import { Switchboard, type ResolvedCall } from "@switchboard/core/Switchboard"
import { Upstream, type UpstreamRequest, type UpstreamResponse } from "@switchboard/core/Upstream"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"

const base = new URL("https://api.example.com/base/v1")

const path = (p: string) => {
  const r = Proxy.normalisePath(p)
  return Result.isSuccess(r) ? r.success : `refused: ${r.failure.message}`
}

describe("Proxy.normalisePath", () => {
  it("keeps ordinary paths and resolves dot segments inside the caller's path", () => {
    assert.strictEqual(path("/users/42"), "/users/42")
    assert.strictEqual(path("users/42/"), "/users/42/")
    assert.strictEqual(path(""), "")
    assert.strictEqual(path("/"), "/")
    assert.strictEqual(path("/a/./b"), "/a/b")
    assert.strictEqual(path("/a/b/../c"), "/a/c")
    assert.strictEqual(path("/a/b/.."), "/a/")
    assert.strictEqual(path("/projects/group%2Fproject/issues"), "/projects/group%2Fproject/issues")
    assert.strictEqual(path("/search/caf%C3%A9"), "/search/caf%C3%A9")
  })

  it("refuses every way of climbing above the base or naming another host", () => {
    for (const p of [
      "../admin",
      "/../admin",
      "/a/../../admin",
      "/%2e%2e/admin",
      "/%2E%2E/admin",
      "/.%2e/admin",
      "/a/%2e%2e%2f%2e%2e%2fadmin",
      "/a/..%2f..%2fadmin",
      "/a/..%5c..%5cadmin",
      "/..;/admin",
      "/a/%c0%ae%c0%ae/admin",
      "//evil.example/x",
      "http://evil.example/x",
      "HTTPS:evil.example",
      "javascript:alert(1)",
      "\\\\evil.example\\x",
      "/a\\..\\..\\admin",
      "/a\r\nHost: evil",
      "/a\u0000b"
    ]) {
      assert.include(path(p), "refused", p)
    }
  })

  it("whatever the input, the upstream URL stays on the base origin and below the base path", () => {
    const segment = fc.oneof(
      fc.constantFrom(
        "..",
        ".",
        "%2e%2e",
        "%2E.",
        ".%2e",
        "..;",
        "%2f",
        "%5c",
        "",
        "a",
        "b%2F..",
        "%252e",
        "?",
        "#",
        "@"
      ),
      fc.string({ maxLength: 6 })
    )
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 8 }), fc.boolean(), (segments, leading) => {
        const p = `${leading ? "/" : ""}${segments.join("/")}`
        const r = Proxy.target(base, { path: p }, {}, {})
        if (Result.isFailure(r)) return true
        const url = new URL(r.success.url)
        return url.origin === base.origin && (url.pathname === "/base/v1" || url.pathname.startsWith("/base/v1/"))
      }),
      { numRuns: 2000 }
    )
  })
})

describe("Proxy.target", () => {
  it("joins below the base path and merges the query: pre-filled, then the caller's, then auth (which wins)", () => {
    const r = Proxy.target(
      new URL("https://api.example.com/base/v1?fixed=1#frag"),
      { path: "/items/7?page=2&tag=a&tag=b#x", query: { limit: "5", team: "caller" } },
      { team: "prefilled", region: "eu" },
      { api_key: Redacted.make("k3y"), page: Redacted.make("auth-wins") }
    )
    assert.isTrue(Result.isSuccess(r))
    if (Result.isSuccess(r)) {
      const url = new URL(r.success.url)
      assert.strictEqual(url.pathname, "/base/v1/items/7")
      assert.strictEqual(url.hash, "")
      assert.deepStrictEqual(
        [...url.searchParams],
        [
          ["fixed", "1"],
          ["team", "caller"],
          ["region", "eu"],
          ["page", "auth-wins"],
          ["tag", "a"],
          ["tag", "b"],
          ["limit", "5"],
          ["api_key", "k3y"]
        ]
      )
      assert.strictEqual(r.success.path, "/items/7")
    }
    const root = Proxy.target(new URL("https://h.example/api/"), { path: "" }, {}, {})
    assert.strictEqual(Result.isSuccess(root) ? root.success.url : "", "https://h.example/api/")
  })
})

describe("Proxy headers", () => {
  const call = {
    headers: { "X-Team": Redacted.make("conn-team"), "x-api-version": Redacted.make("2") },
    auth: { headers: { Authorization: Redacted.make("Basic Zm9vOmJhcg==") }, query: {} }
  }

  it("forwards end-to-end headers, never the caller's credentials or hop-by-hop headers", () => {
    const r = Proxy.requestHeaders(
      {
        Accept: "application/json",
        "X-Api-Version": "1",
        authorization: "Bearer caller-token",
        Cookie: "session=caller",
        "Proxy-Authorization": "Basic x",
        Connection: "keep-alive, X-Hop",
        "X-Hop": "per-hop",
        "Keep-Alive": "timeout=5",
        TE: "trailers",
        Trailer: "X-T",
        "Transfer-Encoding": "chunked",
        Upgrade: "websocket",
        Host: "evil.example",
        "Proxy-Connection": "keep-alive",
        Expect: "100-continue",
        "Content-Length": "12",
        "X-Multi": ["a", "b"]
      },
      call,
      false
    )
    assert.isTrue(Result.isSuccess(r))
    if (Result.isSuccess(r)) {
      const plain = Object.fromEntries(
        Object.entries(r.success).map(([k, v]) => [k, Redacted.isRedacted(v) ? `redacted:${Redacted.value(v)}` : v])
      )
      assert.deepStrictEqual(plain, {
        Accept: "application/json",
        "x-api-version": "redacted:2",
        "X-Multi": "a, b",
        "X-Team": "redacted:conn-team",
        Authorization: "redacted:Basic Zm9vOmJhcg=="
      })
    }
    const withBody = Proxy.requestHeaders({ "Content-Length": "12" }, call, true)
    assert.strictEqual(Result.isSuccess(withBody) ? withBody.success["Content-Length"] : "", "12")
  })

  it("refuses header names and values that would split the request, without echoing the value", () => {
    const badValue = Proxy.requestHeaders({ "X-A": "v\r\nInjected: s3cr3t" }, call, false)
    assert.isTrue(Result.isFailure(badValue))
    if (Result.isFailure(badValue)) assert.notInclude(badValue.failure.message, "s3cr3t")
    assert.isTrue(Result.isFailure(Proxy.requestHeaders({ "Bad Name": "v" }, call, false)))
  })

  it("drops upstream cookies and hop-by-hop headers from the response", () => {
    assert.deepStrictEqual(
      Proxy.responseHeaders({
        "content-type": "application/json",
        "set-cookie": "session=upstream",
        "Set-Cookie2": "x",
        connection: "keep-alive, x-internal",
        "keep-alive": "timeout=5",
        "x-internal": "secret-route",
        "transfer-encoding": "chunked",
        "proxy-authenticate": "Basic",
        "content-length": "10",
        etag: '"abc"'
      }),
      { "content-type": "application/json", "content-length": "10", etag: '"abc"' }
    )
  })
})

const connector = (over: Partial<Connector.Connector> = {}): Connector.Connector => ({
  id: "ctr_01",
  name: "acme",
  display_name: "Acme",
  kind: "http",
  proxy_url: "https://api.example.com/v1",
  auth_patterns: [],
  visibility: "private",
  version: 1,
  created_at: "1970-01-01T00:00:00.000Z",
  updated_at: "1970-01-01T00:00:00.000Z",
  ...over
})

const connection = (over: Partial<Connection.Connection> = {}): Connection.Connection => ({
  id: "conn_01",
  name: "Acme prod",
  connector_id: "ctr_01",
  connector_version: null,
  org: "local",
  workspace: "default",
  owner: "local",
  access_scope: "personal",
  is_service_account: false,
  auth_type: null,
  credential: null,
  parameters: {},
  servers: [],
  allow_private_network: false,
  has_security: false,
  header_names: [],
  status: "active",
  account_label: null,
  last_tested_at: null,
  last_error: null,
  created_at: "1970-01-01T00:00:00.000Z",
  updated_at: "1970-01-01T00:00:00.000Z",
  ...over
})

describe("Proxy.baseUrl", () => {
  const of = (c: Connector.Connector, url: string | undefined) => {
    const r = Proxy.baseUrl({ connector: c, baseUrl: url })
    return Result.isSuccess(r) ? r.success.href : r.failure.message
  }
  it("takes HTTP and REST connectors, and says why others cannot be proxied", () => {
    const api = "https://api.example.com/v1"
    assert.strictEqual(of(connector(), api), "https://api.example.com/v1")
    assert.strictEqual(
      of(connector({ kind: "rest_api", config: { url: "https://rest.example/api" } }), undefined),
      "https://rest.example/api"
    )
    assert.strictEqual(
      of(connector({ kind: "mcp" }), api),
      "connector acme is an MCP server: list and call its tools instead of proxying HTTP"
    )
    assert.strictEqual(
      of(connector({ kind: "postgresql" }), api),
      "connector acme is a postgresql connector, not an HTTP API"
    )
    assert.strictEqual(of(connector({ proxy_enabled: false }), api), "proxying is disabled for connector acme")
    assert.strictEqual(of(connector(), undefined), "connector acme has no proxy_url")
    assert.strictEqual(of(connector(), "ftp://files.example/"), "the base URL of connector acme is not http or https")
  })
})

/** A Switchboard that resolves one fixed call and keeps the audit, and an upstream that answers from a script. */
const fixture = (options: {
  readonly call?: Partial<ResolvedCall>
  readonly answer?: (req: UpstreamRequest) => Effect.Effect<UpstreamResponse, UpstreamError>
}) => {
  const audit: Array<Partial<AuditRecord>> = []
  const requests: Array<UpstreamRequest> = []
  const resolved: ResolvedCall = {
    connection: connection(),
    connector: connector(),
    pattern: undefined,
    baseUrl: "https://api.example.com/v1",
    auth: { headers: { Authorization: Redacted.make("Bearer t0k3n") }, query: {} },
    headers: {},
    query: {},
    values: {},
    source: { _tag: "None" },
    ...options.call
  }
  const switchboard = Layer.succeed(Switchboard, {
    resolveCall: () => Effect.succeed(resolved),
    audit: (entry: Partial<AuditRecord>) => Effect.sync(() => void audit.push(entry))
  } as never)
  const upstream = Layer.succeed(
    Upstream,
    Upstream.of({
      request: (req) =>
        Effect.suspend(() => {
          requests.push(req)
          return options.answer?.(req) ?? Effect.succeed({ status: 200, headers: {}, body: Stream.empty })
        })
    })
  )
  const layer = Proxy.layer.pipe(Layer.provide([switchboard, upstream]))
  return { audit, requests, layer }
}

describe("Proxy service", () => {
  it.effect("sends the auth, the connection's timeouts and private-network setting, and audits the call", () =>
    Effect.gen(function* () {
      const f = fixture({
        call: {
          connection: connection({ allow_private_network: true, timeouts: { connect_ms: 1500 } }),
          query: { region: "eu" }
        },
        answer: () =>
          Effect.as(Effect.sleep("250 millis"), {
            status: 201,
            headers: { "set-cookie": "a=b", "x-request-id": "r1" },
            body: Stream.empty
          })
      })
      const fiber = yield* Effect.forkChild(
        Proxy.Proxy.use((p) =>
          p.request("Acme prod", {
            method: "post",
            path: "/items?debug=1",
            headers: { Authorization: "Bearer caller", "Content-Type": "application/json" },
            body: Stream.make(new Uint8Array([123, 125]))
          })
        ).pipe(Effect.provide(f.layer))
      )
      yield* TestClock.adjust("250 millis")
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(response.status, 201)
      assert.deepStrictEqual(response.headers, { "x-request-id": "r1" })
      const [req] = f.requests
      assert.strictEqual(req?.method, "POST")
      assert.strictEqual(req?.url, "https://api.example.com/v1/items?region=eu&debug=1")
      assert.strictEqual(Redacted.value(req?.headers.Authorization as Redacted.Redacted<string>), "Bearer t0k3n")
      assert.strictEqual(req?.headers["Content-Type"], "application/json")
      assert.isTrue(req?.allowPrivateNetwork)
      assert.strictEqual(req?.connectTimeoutMillis, 1500)
      assert.strictEqual(req?.totalTimeoutMillis, 60_000)
      assert.deepStrictEqual(f.audit, [
        {
          action: "connection.proxy",
          outcome: "success",
          connector_id: "ctr_01",
          connection_id: "conn_01",
          target: "Acme prod",
          method: "POST",
          path: "/items",
          status: 201,
          duration_ms: 250
        }
      ])
    })
  )

  it.effect("refuses MCP connectors, unknown methods and escaping paths before calling, and audits the refusal", () =>
    Effect.gen(function* () {
      const mcp = fixture({ call: { connector: connector({ kind: "mcp" }) } })
      const error = yield* Proxy.Proxy.use((p) => p.request("x", { method: "GET", path: "/" })).pipe(
        Effect.provide(mcp.layer),
        Effect.flip
      )
      assert.strictEqual(error.code, "invalid_parameter")
      assert.include(error.message, "MCP server")
      const f = fixture({})
      for (const req of [
        { method: "TRACE", path: "/" },
        { method: "CONNECT", path: "/" },
        { method: "GET", path: "/../../admin" },
        { method: "GET", path: "https://evil.example/" }
      ]) {
        const e = yield* Proxy.Proxy.use((p) => p.request("x", req)).pipe(Effect.provide(f.layer), Effect.flip)
        assert.strictEqual(e.code, "invalid_parameter")
      }
      assert.strictEqual(f.requests.length, 0)
      assert.deepStrictEqual(
        f.audit.map((a) => [a.outcome, a.error_code, a.path]),
        [
          ["failure", "invalid_parameter", undefined],
          ["failure", "invalid_parameter", undefined],
          ["failure", "invalid_parameter", undefined],
          ["failure", "invalid_parameter", undefined]
        ]
      )
    })
  )

  it.effect("opens the connection's circuit after 5 failures and answers without calling the upstream", () =>
    Effect.gen(function* () {
      const failure = new UpstreamError({
        reason: "upstream_timeout",
        message: "timed out",
        details: { timeout: "total" }
      })
      const f = fixture({ answer: () => Effect.fail(failure) })
      const call = Proxy.Proxy.use((p) => p.request("Acme prod", { method: "POST", path: "/x" }))
      const codes: Array<string> = []
      yield* Effect.gen(function* () {
        for (let i = 0; i < 6; i++) codes.push((yield* Effect.flip(call)).code)
        yield* TestClock.adjust("30 seconds")
        codes.push((yield* Effect.flip(call)).code)
      }).pipe(Effect.provide(f.layer))
      assert.deepStrictEqual(codes, [
        "upstream_timeout",
        "upstream_timeout",
        "upstream_timeout",
        "upstream_timeout",
        "upstream_timeout",
        "circuit_open",
        "upstream_timeout"
      ])
      assert.strictEqual(f.requests.length, 6)
      assert.deepStrictEqual(
        f.audit.map((a) => a.error_code),
        codes
      )
    })
  )

  it.effect("applies the connection's rate limit with the seconds to wait", () =>
    Effect.gen(function* () {
      const f = fixture({ call: { connection: connection({ rate_limit: { requests_per_second: 0.5, burst: 1 } }) } })
      const call = Proxy.Proxy.use((p) => p.request("Acme prod", { method: "GET", path: "/x" }))
      const error = yield* Effect.gen(function* () {
        yield* call
        return yield* Effect.flip(call)
      }).pipe(Effect.provide(f.layer))
      assert.strictEqual(error.code, "rate_limited")
      assert.deepInclude(error.details as object, { retry_after_seconds: 2 })
      assert.strictEqual(f.requests.length, 1)
    })
  )
})
