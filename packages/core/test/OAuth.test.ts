/**
 * The pure OAuth rules (where tokens go, scopes, token values and expiry, the state parameter, redirect URIs) with
 * property tests, and the refresh hook as the proxy and MCP tools use it: refresh before a call, once after a 401
 * (retried only when the request can be sent again), step-up after a 403, and a no-op default.
 */
import { assert, describe, it } from "@effect/vitest"
import type { AuditRecord } from "../src/AuditLog.ts"
import type * as AuthPattern from "../src/AuthPattern.ts"
import type * as Connection from "../src/Connection.ts"
import type * as Connector from "../src/Connector.ts"
import { OAuthError, UpstreamError } from "../src/Errors.ts"
import { type McpTarget, McpUpstream } from "../src/McpUpstream.ts"
import * as OAuth from "../src/OAuth.ts"
import { TokenRefresher } from "../src/OAuthRefresher.ts"
import * as Principal from "../src/Principal.ts"
import * as Proxy from "../src/Proxy.ts"
import { type ResolvedCall, Switchboard } from "../src/Switchboard.ts"
import * as Tools from "../src/Tools.ts"
import { Upstream, type UpstreamRequest } from "../src/Upstream.ts"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"

const principal = Principal.local("ada")

const connection = (over: Partial<Connection.Connection> = {}): Connection.Connection => ({
  id: "conn_01",
  name: "Acme prod",
  connector_id: "ctr_01",
  connector_version: null,
  org: "local",
  workspace: "default",
  owner: "ada",
  access_scope: "personal",
  is_service_account: false,
  auth_type: "OAUTH",
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

const pattern = (over: Partial<AuthPattern.AuthPattern> = {}): AuthPattern.AuthPattern => ({
  type: "OAUTH",
  oauth_config: {
    authorize_uri: "https://auth.example/authorize",
    token_uri: "https://auth.example/token",
    available_scopes: [
      { scope: "profile", required: true },
      { scope: "email", required: true },
      { scope: "tasks:read" },
      { scope: "tasks:write" }
    ]
  },
  ...over
})

describe("OAuth.tokenTarget", () => {
  it("personal connections use their owner's own credential, organizational ones the caller's", () => {
    assert.deepStrictEqual(OAuth.tokenTarget(connection(), principal), {
      scope: "user",
      owner: { org: "local", user: "ada" },
      name: "default"
    })
    assert.deepStrictEqual(OAuth.tokenTarget(connection({ access_scope: "organizational", owner: "bob" }), principal), {
      scope: "user",
      owner: { org: "local", user: "ada" },
      name: "default"
    })
    assert.deepStrictEqual(OAuth.tokenTarget(undefined, principal), {
      scope: "user",
      owner: { org: "local", user: "ada" },
      name: "default"
    })
  })

  it("service accounts use the workspace; a named credential is used as named", () => {
    assert.deepStrictEqual(
      OAuth.tokenTarget(connection({ access_scope: "organizational", is_service_account: true }), principal),
      { scope: "workspace", owner: { org: "local", workspace: "default" }, name: "default" }
    )
    assert.deepStrictEqual(
      OAuth.tokenTarget(connection({ credential: { scope: "organization", name: "shared" } }), principal),
      { scope: "organization", owner: { org: "local" }, name: "shared" }
    )
  })
})

describe("OAuth.scopesFor", () => {
  it("asks for the required scopes, then the requested ones, once each", () => {
    const r = OAuth.scopesFor(pattern(), ["tasks:read", "profile", "tasks:read"])
    assert.deepStrictEqual(Result.getOrThrow(r), ["profile", "email", "tasks:read"])
  })

  it("refuses scopes the connector does not offer, and takes any when it lists none", () => {
    const r = OAuth.scopesFor(pattern(), ["admin"])
    assert.isTrue(Result.isFailure(r))
    if (Result.isFailure(r)) assert.include(r.failure.message, "unknown scope admin")
    const open = pattern({ oauth_config: { authorize_uri: "https://a.example/a", token_uri: "https://a.example/t" } })
    assert.deepStrictEqual(Result.getOrThrow(OAuth.scopesFor(open, ["anything"])), ["anything"])
  })
})

describe("OAuth.tokenValues and expiry", () => {
  const now = Date.parse("2030-01-01T00:00:00.000Z")

  it("stores expires_at (not expires_in), and keeps the old refresh token and scope when a response omits them", () => {
    const first = OAuth.tokenValues(
      {
        access_token: Redacted.make("a1"),
        refresh_token: Redacted.make("r1"),
        expires_in: 3600,
        token_type: "Bearer",
        scope: "profile email"
      },
      now
    )
    assert.strictEqual(Redacted.value(first["expires_at"] as Redacted.Redacted<string>), "2030-01-01T01:00:00.000Z")
    const second = OAuth.tokenValues({ access_token: Redacted.make("a2"), expires_in: 60 }, now, first)
    assert.strictEqual(Redacted.value(second["access_token"] as Redacted.Redacted<string>), "a2")
    assert.strictEqual(Redacted.value(second["refresh_token"] as Redacted.Redacted<string>), "r1")
    assert.strictEqual(Redacted.value(second["scope"] as Redacted.Redacted<string>), "profile email")
    assert.strictEqual(Redacted.value(second["token_type"] as Redacted.Redacted<string>), "Bearer")
    const rotated = OAuth.tokenValues(
      { access_token: Redacted.make("a3"), refresh_token: Redacted.make("r2") },
      now,
      second
    )
    assert.strictEqual(Redacted.value(rotated["refresh_token"] as Redacted.Redacted<string>), "r2")
    // No expires_in: no expires_at (refresh then happens on a 401 only).
    assert.isUndefined(rotated["expires_at"])
  })

  it("needs a refresh exactly when a refresh token exists and expiry is within the skew", () => {
    fc.assert(
      fc.property(fc.integer({ min: -10_000_000, max: 10_000_000 }), fc.boolean(), (offset, hasRefresh) => {
        const values = {
          access_token: Redacted.make("a"),
          expires_at: Redacted.make(new Date(now + offset).toISOString()),
          ...(hasRefresh ? { refresh_token: Redacted.make("r") } : {})
        }
        return OAuth.needsRefresh(values, now) === (hasRefresh && offset - OAuth.refreshSkewMillis <= 0)
      })
    )
    assert.isFalse(OAuth.needsRefresh({ refresh_token: Redacted.make("r") }, now))
  })
})

describe("OAuth state parameter", () => {
  const id = "ost_01ARZ3NDEKTSV4RRFFQ69G5FAV"

  it("round-trips the flow id and secret, and refuses anything else", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{16,128}$/), (secret) => {
        const parsed = OAuth.parseState(OAuth.stateParam(id, Redacted.make(secret)))
        return Option.isSome(parsed) && parsed.value.id === id && parsed.value.secret === secret
      })
    )
    for (const bad of [
      undefined,
      "",
      "abc",
      id,
      `${id}.`,
      `${id}.short`,
      `conn_01.${"x".repeat(43)}`,
      `${id}.${"x".repeat(300)}`
    ]) {
      assert.isTrue(Option.isNone(OAuth.parseState(bad)), String(bad))
    }
  })

  it("compares secrets by value", () => {
    fc.assert(fc.property(fc.string(), fc.string(), (a, b) => OAuth.sameSecret(a, b) === (a === b)))
  })
})

describe("OAuth.checkRedirectUri and sanitize", () => {
  it("takes https anywhere and plain http only on loopback", () => {
    for (const ok of ["http://127.0.0.1:8123/v1/oauth/callback", "http://localhost:1/cb", "https://app.example/cb"]) {
      assert.isTrue(Result.isSuccess(OAuth.checkRedirectUri(ok)), ok)
    }
    for (const bad of [
      "http://evil.example/cb",
      "javascript:alert(1)",
      "https://a.example/cb#frag",
      "https://u:p@a.example/",
      "cb"
    ]) {
      assert.isTrue(Result.isFailure(OAuth.checkRedirectUri(bad)), bad)
    }
  })

  it("keeps callback text printable and short", () => {
    assert.strictEqual(OAuth.sanitize("access_denied\u0000<script>\n", 64), "access_denied?<script>?")
    assert.strictEqual(OAuth.sanitize("x".repeat(300), 10), "xxxxxxxxxx")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The refresh hook in the callers

const connector = (over: Partial<Connector.Connector> = {}): Connector.Connector => ({
  id: "ctr_01",
  name: "acme",
  display_name: "Acme",
  kind: "http",
  proxy_url: "https://api.example.com/v1",
  auth_patterns: [pattern()],
  visibility: "private",
  version: 1,
  created_at: "1970-01-01T00:00:00.000Z",
  updated_at: "1970-01-01T00:00:00.000Z",
  ...over
})

const callWith = (token: string, over: Partial<ResolvedCall> = {}): ResolvedCall => ({
  connection: connection(),
  connector: connector(),
  pattern: pattern(),
  baseUrl: "https://api.example.com/v1",
  auth: { headers: { Authorization: Redacted.make(`Bearer ${token}`) }, query: {} },
  headers: {},
  query: {},
  values: { access_token: Redacted.make(token) },
  source: { _tag: "Stored", id: "cred_01", scope: "user", name: "default" },
  ...over
})

const switchboard = (call: ResolvedCall, audit: Array<Partial<AuditRecord>> = []) =>
  Layer.succeed(Switchboard, {
    resolveCall: () => Effect.succeed(call),
    audit: (entry: Partial<AuditRecord>) => Effect.sync(() => void audit.push(entry))
  } as never)

const bearerOf = (req: UpstreamRequest) => {
  const value = req.headers["Authorization"]
  return value === undefined ? "" : Redacted.isRedacted(value) ? Redacted.value(value) : value
}

describe("the refresh hook in the proxy", () => {
  const fixture = (options: { readonly body?: boolean }) => {
    const seen: Array<string> = []
    const events: Array<string> = []
    const upstream = Layer.succeed(
      Upstream,
      Upstream.of({
        request: (req) =>
          Effect.sync(() => {
            seen.push(bearerOf(req))
            return { status: bearerOf(req) === "Bearer new" ? 200 : 401, headers: {}, body: Stream.empty }
          })
      })
    )
    const refresher = Layer.succeed(TokenRefresher, {
      beforeCall: (call) => Effect.sync(() => (events.push("before"), call)),
      afterUnauthorized: () => Effect.sync(() => (events.push("401"), Option.some(callWith("new")))),
      afterForbidden: () => Effect.void
    })
    const layer = Proxy.layer.pipe(Layer.provide([switchboard(callWith("old")), upstream, refresher]))
    const request = Proxy.Proxy.use((p) =>
      p.request("Acme prod", {
        method: options.body === true ? "POST" : "GET",
        path: "/x",
        ...(options.body === true ? { body: Stream.make(new TextEncoder().encode("{}")) } : {})
      })
    ).pipe(Effect.provide(layer))
    return { seen, events, request }
  }

  it.effect("refreshes before the call, and once after a 401 retries with the new token", () =>
    Effect.gen(function* () {
      const f = fixture({})
      const response = yield* f.request
      assert.strictEqual(response.status, 200)
      assert.deepStrictEqual(f.seen, ["Bearer old", "Bearer new"])
      assert.deepStrictEqual(f.events, ["before", "401"])
    })
  )

  it.effect(
    "a request with a body is not sent twice: the 401 is answered, the tokens are refreshed for next time",
    () =>
      Effect.gen(function* () {
        const f = fixture({ body: true })
        const response = yield* f.request
        assert.strictEqual(response.status, 401)
        assert.deepStrictEqual(f.seen, ["Bearer old"])
        assert.deepStrictEqual(f.events, ["before", "401"])
      })
  )

  it.effect("without OAuth wired, the default hook changes nothing", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const upstream = Layer.succeed(
        Upstream,
        Upstream.of({
          request: (req) =>
            Effect.sync(() => (seen.push(bearerOf(req)), { status: 401, headers: {}, body: Stream.empty }))
        })
      )
      const response = yield* Proxy.Proxy.use((p) => p.request("Acme prod", { method: "GET", path: "/x" })).pipe(
        Effect.provide(Proxy.layer.pipe(Layer.provide([switchboard(callWith("old")), upstream])))
      )
      assert.strictEqual(response.status, 401)
      assert.deepStrictEqual(seen, ["Bearer old"])
    })
  )
})

describe("the refresh hook in MCP tools", () => {
  const mcpCall = (token: string) =>
    callWith(token, {
      connector: connector({ kind: "mcp", proxy_url: "https://mcp.example/mcp" }),
      pattern: pattern({ is_mcp: true, oauth_config: { pkce_enabled: true } }),
      baseUrl: "https://mcp.example/mcp"
    })

  const fixture = (status: 401 | 403) => {
    const seen: Array<string> = []
    const upstream = Layer.succeed(McpUpstream, {
      listTools: (target: McpTarget) =>
        Effect.suspend(() => {
          const token =
            target._tag === "Http" ? Redacted.value(target.headers["Authorization"] ?? Redacted.make("")) : ""
          seen.push(token)
          return token === "Bearer new"
            ? Effect.succeed([{ name: "whoami", inputSchema: { type: "object" } }])
            : Effect.fail(
                new UpstreamError({
                  reason: "upstream_protocol_error",
                  message: `HTTP ${status}`,
                  details: { http_status: status }
                })
              )
        }),
      callTool: () => Effect.die("unused"),
      toolsChanged: Stream.empty
    } as never)
    const refresher = Layer.succeed(TokenRefresher, {
      beforeCall: Effect.succeed,
      afterUnauthorized: () => Effect.succeed(Option.some(mcpCall("new"))),
      afterForbidden: () =>
        Effect.fail(
          new OAuthError({
            reason: "oauth_insufficient_scope",
            message: "more scope needed",
            details: { auth_url: "https://auth.example/authorize?scope=more" }
          })
        )
    })
    const layer = Tools.layer.pipe(Layer.provide([switchboard(mcpCall("old")), upstream, refresher]))
    return { seen, list: Tools.Tools.use((t) => t.listTools("Acme prod")).pipe(Effect.provide(layer)) }
  }

  it.effect("a 401 refreshes once and lists again with the new token", () =>
    Effect.gen(function* () {
      const f = fixture(401)
      const tools = yield* f.list
      assert.deepStrictEqual(
        tools.map((t) => t.name),
        ["whoami"]
      )
      assert.deepStrictEqual(f.seen, ["Bearer old", "Bearer new"])
    })
  )

  it.effect("a 403 asking for more scope fails with the step-up URL", () =>
    Effect.gen(function* () {
      const f = fixture(403)
      const error = yield* Effect.flip(f.list)
      assert.strictEqual(error.code, "oauth_insufficient_scope")
      assert.deepStrictEqual(f.seen, ["Bearer old"])
    })
  )
})
