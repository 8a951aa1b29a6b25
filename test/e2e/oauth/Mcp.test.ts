/**
 * MCP authorization (spec revision 2025-11-25) end to end: an MCP server built with the SDK that requires bearer
 * tokens and advertises protected resource metadata, in front of `oidc-provider` with dynamic registration and
 * resource indicators. Covers discovery from the server's 401 challenge, dynamic registration cached sealed and
 * reused, the scope from the challenge, `resource` on the authorization, the exchange and the refresh, refresh once
 * after a 401, step-up on 403 `insufficient_scope` with a limit, and the 2025-03-26 fallback (no metadata: the
 * server's origin and default endpoints), a client ID metadata document where advertised, and malformed metadata.
 */
import { assert, describe, it } from "@effect/vitest"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import * as OAuth from "@switchboard/core/OAuth"
import { OAuthStateStore } from "@switchboard/core/OAuthStateStore"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Tools from "@switchboard/core/Tools"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll } from "vitest"
import { follow, paramsOf } from "../../support/oauth/Browser.ts"
import { type McpAuthServer, startMcpAuth } from "../../support/oauth/McpAuthServer.ts"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"
import { stack, type StackOptions, type StackServices } from "../../support/oauth/Stack.ts"

const REDIRECT = "http://127.0.0.1:9/v1/oauth/callback"

let oidc: OidcServer
let mcp: McpAuthServer

beforeAll(async () => {
  oidc = await startOidc()
  mcp = await startMcpAuth(oidc)
})

afterAll(async () => {
  await Promise.all([mcp?.stop(), oidc?.stop()])
})

let counter = 0
const unique = (prefix: string) => `${prefix}-${++counter}`

const run = <A, E>(effect: Effect.Effect<A, E, StackServices>, options: StackOptions = {}) =>
  Effect.scoped(effect.pipe(Effect.provide(stack({ redirectUri: REDIRECT, ...options }))))

/** An OAuth MCP connector at `url` and a personal connection to it. */
const setup = (url: string) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const name = unique("mcp")
    yield* sb.createConnector({
      name,
      display_name: name,
      kind: "mcp",
      proxy_url: url,
      auth_patterns: [{ type: "OAUTH", is_mcp: true, oauth_config: { pkce_enabled: true } }]
    })
    const connection = yield* sb.createConnection(name, { name: unique("conn"), allow_private_network: true })
    return { name, connection }
  })

const authorize = (connector: string, connection: string) =>
  Effect.gen(function* () {
    const oauth = yield* OAuth.OAuth
    const { url } = yield* oauth.authorizationUrl(connector, { connection })
    const followed = yield* Effect.promise(() => follow(url, REDIRECT))
    return { url: new URL(url), done: yield* oauth.complete(paramsOf(followed.callback)) }
  })

const whoami = (connection: string) =>
  Effect.gen(function* () {
    const tools = yield* Tools.Tools
    const result = yield* tools.callTool(connection, "whoami", {})
    const first = result.content[0] as { text?: string } | undefined
    return JSON.parse(first?.text ?? "{}") as { client?: string; scopes?: ReadonlyArray<string> }
  })

const credentialOf = (connectorName: string) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const vault = yield* CredentialVault
    const connector = yield* sb.getConnector(connectorName)
    const key = {
      connectorId: connector.id,
      scope: "user" as const,
      owner: { org: "local", user: "local" },
      name: "default"
    }
    const found = yield* vault.get(key)
    return { vault, key, credential: Option.getOrUndefined(found) }
  })

/** Make the stored access token look expired, so the next call refreshes it first. */
const expire = (connectorName: string) =>
  Effect.gen(function* () {
    const { vault, credential } = yield* credentialOf(connectorName)
    if (credential === undefined) throw new Error("no credential")
    yield* vault.put({
      ...credential,
      values: { ...credential.values, expires_at: Redacted.make(new Date(Date.now() - 1000).toISOString()) }
    })
  })

const refreshes = () => oidc.tokenRequests.filter((r) => r.grant_type === "refresh_token")

describe("MCP authorization", () => {
  it.live(
    "discovers from the 401 challenge, registers dynamically, sends resource, and calls tools with the token",
    () =>
      run(
        Effect.gen(function* () {
          const { name, connection } = yield* setup(mcp.url)
          assert.strictEqual(connection.status, "pending_auth")
          const { url, done } = yield* authorize(name, connection.id)
          assert.strictEqual(url.origin + url.pathname, `${oidc.issuer}/auth`)
          assert.strictEqual(url.searchParams.get("resource"), mcp.url)
          assert.strictEqual(url.searchParams.get("scope"), "mcp:tools")
          assert.strictEqual(url.searchParams.get("code_challenge_method"), "S256")
          assert.strictEqual(done.connection?.status, "active")
          const exchange = oidc.tokenRequests.at(-1)
          assert.strictEqual(exchange?.grant_type, "authorization_code")
          assert.strictEqual(exchange?.resource, mcp.url)
          const me = yield* whoami(connection.id)
          assert.strictEqual(me.client, url.searchParams.get("client_id"))
          assert.deepStrictEqual(me.scopes, ["mcp:tools"])

          // The registration is cached (sealed) and reused by the next flow.
          const store = yield* OAuthStateStore
          const sb = yield* Switchboard.Switchboard
          const connector = yield* sb.getConnector(name)
          const cached = yield* store.getRecord(`mcp-client:${connector.id}:${mcp.url}`)
          assert.isTrue(Option.isSome(cached))
          const oauth = yield* OAuth.OAuth
          const again = new URL((yield* oauth.authorizationUrl(name, { connection: connection.id })).url)
          assert.strictEqual(again.searchParams.get("client_id"), url.searchParams.get("client_id"))
        })
      )
  )

  it.live("refreshes ahead of expiry with the resource, and once after a 401", () =>
    run(
      Effect.gen(function* () {
        const { name, connection } = yield* setup(mcp.url)
        yield* authorize(name, connection.id)
        yield* expire(name)
        const before = refreshes().length
        yield* whoami(connection.id)
        assert.strictEqual(refreshes().length - before, 1)
        assert.strictEqual(refreshes().at(-1)?.resource, mcp.url)
        assert.strictEqual(refreshes().at(-1)?.outcome, "success")

        // The server forgets the access token: the call gets 401, refreshes once and goes through.
        const { credential } = yield* credentialOf(name)
        const access = Redacted.value(credential?.values["access_token"] ?? Redacted.make(""))
        const found = yield* Effect.promise(() => oidc.provider.AccessToken.find(access))
        yield* Effect.promise(() => found?.destroy() ?? Promise.resolve())
        const count = refreshes().length
        const me = yield* whoami(connection.id)
        assert.deepStrictEqual(me.scopes, ["mcp:tools"])
        assert.strictEqual(refreshes().length - count, 1)
      })
    )
  )

  it.live("steps up on 403 insufficient_scope with the URL to authorize, a limited number of times", () =>
    run(
      Effect.gen(function* () {
        const { name, connection } = yield* setup(mcp.adminUrl)
        oidc.grantOnly = ["mcp:tools"]
        try {
          const { url } = yield* authorize(name, connection.id)
          assert.strictEqual(url.searchParams.get("scope"), "mcp:tools mcp:admin")
          const first = yield* Effect.flip(whoami(connection.id))
          assert.strictEqual(first.code, "oauth_insufficient_scope")
          const details = first.details as { auth_url?: string; required_scope?: string }
          assert.strictEqual(details.required_scope, "mcp:tools mcp:admin")
          const stepUp = new URL(details.auth_url ?? "")
          assert.strictEqual(stepUp.searchParams.get("scope"), "mcp:tools mcp:admin")

          // Still refused after consenting again: a second URL, then no more.
          const oauth = yield* OAuth.OAuth
          yield* oauth.complete(paramsOf((yield* Effect.promise(() => follow(stepUp.href, REDIRECT))).callback))
          const second = yield* Effect.flip(whoami(connection.id))
          const url2 = (second.details as { auth_url?: string }).auth_url ?? ""
          assert.isNotEmpty(url2)
          yield* oauth.complete(paramsOf((yield* Effect.promise(() => follow(url2, REDIRECT))).callback))
          const third = yield* Effect.flip(whoami(connection.id))
          assert.strictEqual(third.code, "oauth_insufficient_scope")
          assert.isUndefined((third.details as { auth_url?: string }).auth_url)
          assert.include(third.message, "still refuses")
        } finally {
          oidc.grantOnly = undefined
        }
        // Granted this time: the call goes through.
        const { name: other, connection: granted } = yield* setup(mcp.adminUrl)
        yield* authorize(other, granted.id)
        assert.deepStrictEqual((yield* whoami(granted.id)).scopes, ["mcp:tools", "mcp:admin"])
      })
    )
  )
})

// ---------------------------------------------------------------------------------------------------------------
// Hand-made servers: the 2025-03-26 fallback, a client ID metadata document, malformed metadata.

interface Stub {
  readonly origin: string
  readonly requests: Array<{ method: string; path: string; body: string }>
  readonly stop: () => Promise<void>
}

const stub = async (
  routes: (
    path: string,
    body: string,
    origin: string
  ) => { status: number; body?: unknown; headers?: Record<string, string> }
) => {
  const requests: Stub["requests"] = []
  let origin = ""
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0] ?? "/"
      const body = Buffer.concat(chunks).toString("utf8")
      requests.push({ method: req.method ?? "", path, body })
      const answer = routes(path, body, origin)
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers })
      res.end(
        answer.body === undefined ? "" : typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body)
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    origin,
    requests,
    stop: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  } satisfies Stub
}

describe("MCP authorization against older and broken servers", () => {
  it.live("2025-03-26: no metadata anywhere, so the server's origin with /authorize, /register and /token", () =>
    Effect.gen(function* () {
      const server = yield* Effect.promise(() =>
        stub((path) => {
          if (path === "/mcp") return { status: 401, headers: { "www-authenticate": "Bearer" } }
          if (path === "/register")
            return { status: 201, body: { client_id: "legacy-client", redirect_uris: [REDIRECT] } }
          if (path === "/token")
            return { status: 200, body: { access_token: "legacy-access", token_type: "Bearer", expires_in: 60 } }
          return { status: 404 }
        })
      )
      yield* run(
        Effect.gen(function* () {
          const { name, connection } = yield* setup(`${server.origin}/mcp`)
          const oauth = yield* OAuth.OAuth
          const { url } = yield* oauth.authorizationUrl(name, { connection: connection.id })
          const parsed = new URL(url)
          assert.strictEqual(parsed.origin + parsed.pathname, `${server.origin}/authorize`)
          assert.strictEqual(parsed.searchParams.get("client_id"), "legacy-client")
          assert.isNull(parsed.searchParams.get("resource"))
          const done = yield* oauth.complete({ state: parsed.searchParams.get("state") ?? "", code: "legacy-code" })
          assert.strictEqual(done.connection?.status, "active")
          assert.isTrue(server.requests.some((r) => r.path === "/register"))
          const token = server.requests.find((r) => r.path === "/token")
          assert.include(token?.body ?? "", "code_verifier=")
          assert.include(token?.body ?? "", "client_id=legacy-client")
        })
      )
      yield* Effect.promise(() => server.stop())
    })
  )

  it.live("uses a client ID metadata document where the server advertises support, without registering", () =>
    Effect.gen(function* () {
      const server = yield* Effect.promise(() =>
        stub((path, _body, origin) => {
          if (path === "/mcp")
            return { status: 401, headers: { "www-authenticate": `Bearer resource_metadata="${origin}/prm"` } }
          if (path === "/prm")
            return { status: 200, body: { resource: `${origin}/mcp`, authorization_servers: [origin] } }
          if (path === "/.well-known/oauth-authorization-server") {
            return {
              status: 200,
              body: {
                issuer: origin,
                authorization_endpoint: `${origin}/authz`,
                token_endpoint: `${origin}/tok`,
                response_types_supported: ["code"],
                code_challenge_methods_supported: ["S256"],
                client_id_metadata_document_supported: true
              }
            }
          }
          return { status: 404 }
        })
      )
      const documentUrl = "https://switchboard.example/oauth/client.json"
      yield* run(
        Effect.gen(function* () {
          const { name, connection } = yield* setup(`${server.origin}/mcp`)
          const oauth = yield* OAuth.OAuth
          const parsed = new URL((yield* oauth.authorizationUrl(name, { connection: connection.id })).url)
          assert.strictEqual(parsed.origin + parsed.pathname, `${server.origin}/authz`)
          assert.strictEqual(parsed.searchParams.get("client_id"), documentUrl)
          assert.strictEqual(parsed.searchParams.get("resource"), `${server.origin}/mcp`)
          assert.isFalse(server.requests.some((r) => r.method === "POST" && r.path !== "/mcp"))
        }),
        { client: { clientMetadataUrl: documentUrl } }
      )
      yield* Effect.promise(() => server.stop())
    })
  )

  it.live("malformed protected resource or authorization server metadata is a clear error", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<{ prm: unknown; as?: unknown; expect: string }> = [
        { prm: { resource: 42, authorization_servers: "nope" }, expect: "protected resource metadata" },
        { prm: "not json at all", expect: "protected resource metadata" },
        { prm: "OK", as: { issuer: "x", authorization_endpoint: 7 }, expect: "malformed" }
      ]
      for (const c of cases) {
        const server = yield* Effect.promise(() =>
          stub((path, _body, origin) => {
            if (path === "/mcp")
              return { status: 401, headers: { "www-authenticate": `Bearer resource_metadata="${origin}/prm"` } }
            if (path === "/prm") {
              return c.prm === "OK"
                ? { status: 200, body: { resource: `${origin}/mcp`, authorization_servers: [`${origin}/as`] } }
                : { status: 200, body: c.prm }
            }
            if (path.startsWith("/.well-known/") && c.as !== undefined) return { status: 200, body: c.as }
            return { status: 404 }
          })
        )
        yield* run(
          Effect.gen(function* () {
            const { name, connection } = yield* setup(`${server.origin}/mcp`)
            const oauth = yield* OAuth.OAuth
            const error = yield* Effect.flip(oauth.authorizationUrl(name, { connection: connection.id }))
            assert.strictEqual(error.code, "oauth_metadata_invalid")
            assert.include(error.message, c.expect)
          })
        )
        yield* Effect.promise(() => server.stop())
      }
    })
  )

  it.live("a metadata endpoint on a private address is refused without allow_private_network", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const name = unique("mcp")
        yield* sb.createConnector({
          name,
          display_name: name,
          kind: "mcp",
          proxy_url: mcp.url,
          auth_patterns: [{ type: "OAUTH", is_mcp: true, oauth_config: { pkce_enabled: true } }]
        })
        const connection = yield* sb.createConnection(name, { name: unique("conn") })
        const oauth = yield* OAuth.OAuth
        const error = yield* Effect.flip(oauth.authorizationUrl(name, { connection: connection.id }))
        assert.strictEqual(error.code, "oauth_token_error")
        assert.include(error.message, "refused")
      })
    )
  )
})
