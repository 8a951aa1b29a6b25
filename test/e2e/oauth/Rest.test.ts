/**
 * OAuth for REST connectors end to end against a real authorization server (`oidc-provider` on 127.0.0.1) and a
 * REST API that checks its tokens, through the whole stack: the authorization URL (PKCE S256, single-use state),
 * the callback (code exchange with client_secret_basic, client_secret_post or none; tokens stored at the right
 * scope; the account from user info; the connection active), refresh ahead of expiry and once after a 401 through
 * the proxy, single-flight (100 concurrent calls, one refresh), rotation, an omitted refresh token kept,
 * `invalid_grant`, token endpoint errors, bad callbacks, revocation, and a canary: no token or client secret in
 * any answer, error or audit record.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Credential from "@switchboard/core/Credential"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import * as OAuth from "@switchboard/core/OAuth"
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { afterAll, beforeAll } from "vitest"
import { startApi, type ApiServer } from "../../support/oauth/ApiServer.ts"
import { follow, paramsOf } from "../../support/oauth/Browser.ts"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"
import { stack, type StackServices } from "../../support/oauth/Stack.ts"

const REDIRECT = "http://127.0.0.1:9/v1/oauth/callback"
const SECRETS = {
  basic: "client-secret-basic-CANARY-7f3a91",
  post: "client-secret-post-CANARY-2b8c44"
}

let oidc: OidcServer
let shortLived: OidcServer
let api: ApiServer
let shortApi: ApiServer

const clients = [
  {
    client_id: "rest-basic",
    client_secret: SECRETS.basic,
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: "client_secret_basic"
  },
  {
    client_id: "rest-post",
    client_secret: SECRETS.post,
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: "client_secret_post"
  },
  {
    client_id: "rest-public",
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: "none",
    application_type: "native"
  }
] as const

beforeAll(async () => {
  oidc = await startOidc({ clients: clients.map((c) => ({ ...c, redirect_uris: [...c.redirect_uris] })) })
  // Tokens that expire within the refresh skew: every call refreshes ahead of expiry.
  shortLived = await startOidc({
    clients: clients.map((c) => ({ ...c, redirect_uris: [...c.redirect_uris] })),
    accessTokenTtl: 30
  })
  api = await startApi(oidc)
  shortApi = await startApi(shortLived)
})

afterAll(async () => {
  await Promise.all([oidc?.stop(), shortLived?.stop(), api?.stop(), shortApi?.stop()])
})

let counter = 0
const unique = (prefix: string) => `${prefix}-${++counter}`

const run = <A, E>(effect: Effect.Effect<A, E, StackServices>) =>
  Effect.scoped(effect.pipe(Effect.provide(stack({ redirectUri: REDIRECT }))))

type Method = "client_secret_basic" | "client_secret_post" | "none"

/** A REST connector on `server`, its `oauth_client`, and a personal connection (pending until authorized). */
const setup = (server: OidcServer, upstream: ApiServer, method: Method = "client_secret_basic") =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const name = unique("rest")
    const client = clients.find((c) => c.token_endpoint_auth_method === method) ?? clients[0]
    yield* sb.createConnector({
      name,
      display_name: name,
      proxy_url: upstream.url,
      auth_patterns: [
        {
          type: "OAUTH",
          oauth_config: {
            authorize_uri: `${server.issuer}/auth`,
            token_uri: `${server.issuer}/token`,
            user_info_uri: `${server.issuer}/me`,
            revoke_uri: `${server.issuer}/token/revocation`,
            token_endpoint_auth_method: method,
            available_scopes: [
              { scope: "openid", required: true },
              { scope: "email", required: true },
              { scope: "profile" }
            ]
          }
        }
      ]
    })
    yield* sb.setCredential(name, "organization", {
      name: Credential.oauthClientName,
      values: {
        client_id: client.client_id,
        ...("client_secret" in client ? { client_secret: client.client_secret } : {})
      }
    })
    const connection = yield* sb.createConnection(name, {
      name: unique("conn"),
      allow_private_network: true,
      rate_limit: { requests_per_second: 10_000, burst: 10_000 }
    })
    return { name, connection }
  })

/** Authorize a connection through the server's redirects and complete the callback. */
const authorize = (connector: string, connection: string) =>
  Effect.gen(function* () {
    const oauth = yield* OAuth.OAuth
    const { url } = yield* oauth.authorizationUrl(connector, { connection })
    const followed = yield* Effect.promise(() => follow(url, REDIRECT))
    return yield* oauth.complete(paramsOf(followed.callback))
  })

const tokenOf = (connectorName: string, field: string) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const vault = yield* CredentialVault
    const connector = yield* sb.getConnector(connectorName)
    const found = yield* vault.get({
      connectorId: connector.id,
      scope: "user",
      owner: { org: "local", user: "local" },
      name: "default"
    })
    const value = Option.isSome(found) ? found.value.values[field] : undefined
    return value === undefined ? undefined : Redacted.value(value)
  })

const get = (connection: string, path = "/me") =>
  Effect.gen(function* () {
    const proxy = yield* Proxy.Proxy
    const response = yield* proxy.request(connection, { method: "GET", path })
    const body = yield* Stream.mkString(Stream.decodeText(response.body))
    return { status: response.status, body }
  })

const refreshes = (server: OidcServer) => server.tokenRequests.filter((r) => r.grant_type === "refresh_token").length

describe("OAuth for REST connectors", () => {
  it.live("authorizes end to end: PKCE S256, state, code exchange, sealed tokens, account label, active", () =>
    run(
      Effect.gen(function* () {
        const { name, connection } = yield* setup(oidc, api)
        assert.strictEqual(connection.status, "pending_auth")
        const oauth = yield* OAuth.OAuth
        const { url, state_expires_at } = yield* oauth.authorizationUrl(name, { connection: connection.id })
        const parsed = new URL(url)
        assert.strictEqual(parsed.origin + parsed.pathname, `${oidc.issuer}/auth`)
        assert.strictEqual(parsed.searchParams.get("code_challenge_method"), "S256")
        assert.match(parsed.searchParams.get("code_challenge") ?? "", /^[A-Za-z0-9_-]{43}$/u)
        assert.strictEqual(parsed.searchParams.get("redirect_uri"), REDIRECT)
        assert.strictEqual(parsed.searchParams.get("scope"), "openid email")
        assert.match(parsed.searchParams.get("state") ?? "", /^ost_[0-9A-Z]{26}\.[A-Za-z0-9_-]{43}$/u)
        assert.isTrue(Date.parse(state_expires_at) > Date.now() + 9 * 60_000)

        const followed = yield* Effect.promise(() => follow(url, REDIRECT))
        const done = yield* oauth.complete(paramsOf(followed.callback))
        assert.strictEqual(done.account_label, "alice@example.test")
        assert.strictEqual(done.connection?.status, "active")
        assert.strictEqual(done.connection?.account_label, "alice@example.test")
        assert.deepStrictEqual(done.credential, { scope: "user", name: "default" })
        const exchange = oidc.tokenRequests.at(-1)
        assert.strictEqual(exchange?.grant_type, "authorization_code")
        assert.strictEqual(exchange?.client_auth, "client_secret_basic")

        const sb = yield* Switchboard.Switchboard
        const [view] = yield* sb.listCredentials(name, "user")
        assert.strictEqual(view?.auth_type, "OAUTH")
        assert.hasAllKeys(view?.values ?? {}, [
          "access_token",
          "refresh_token",
          "expires_at",
          "token_type",
          "scope",
          "id_token"
        ])
        assert.strictEqual((yield* get(connection.id)).status, 200)
      })
    )
  )

  it.live("client_secret_post and public clients (none) exchange the code too", () =>
    run(
      Effect.gen(function* () {
        for (const method of ["client_secret_post", "none"] as const) {
          const { name, connection } = yield* setup(oidc, api, method)
          yield* authorize(name, connection.id)
          assert.strictEqual(oidc.tokenRequests.at(-1)?.client_auth, method)
          assert.strictEqual((yield* get(connection.id)).status, 200)
        }
      })
    )
  )

  it.live("refreshes ahead of expiry; 100 concurrent calls make exactly one refresh; rotation is persisted", () =>
    run(
      Effect.gen(function* () {
        const { name, connection } = yield* setup(shortLived, shortApi)
        yield* authorize(name, connection.id)
        const before = { refresh: yield* tokenOf(name, "refresh_token"), count: refreshes(shortLived) }
        const results = yield* Effect.forEach(Array.from({ length: 100 }), () => get(connection.id), {
          concurrency: "unbounded"
        })
        assert.isTrue(results.every((r) => r.status === 200))
        assert.strictEqual(refreshes(shortLived) - before.count, 1)
        const rotated = yield* tokenOf(name, "refresh_token")
        assert.isDefined(rotated)
        assert.notStrictEqual(rotated, before.refresh)
        assert.strictEqual(shortLived.tokenRequests.filter((r) => r.outcome === "error").length, 0)
      })
    )
  )

  it.live("a 401 refreshes once and retries; a response without refresh_token keeps the old one", () =>
    run(
      Effect.gen(function* () {
        const { name, connection } = yield* setup(oidc, api)
        yield* authorize(name, connection.id)
        const access = (yield* tokenOf(name, "access_token")) as string
        const refresh = yield* tokenOf(name, "refresh_token")
        // The server forgets the access token: the API answers 401.
        const found = yield* Effect.promise(() => oidc.provider.AccessToken.find(access))
        yield* Effect.promise(() => found?.destroy() ?? Promise.resolve())
        const count = refreshes(oidc)
        assert.strictEqual((yield* get(connection.id)).status, 200)
        assert.strictEqual(refreshes(oidc) - count, 1)
        assert.notStrictEqual(yield* tokenOf(name, "refresh_token"), refresh)

        // A token response that omits refresh_token: the previous one stays.
        const kept = yield* tokenOf(name, "refresh_token")
        oidc.answerTokenRequests(
          1,
          200,
          JSON.stringify({ access_token: "opaque-new-access-token-1234", token_type: "Bearer", expires_in: 3600 })
        )
        const oauth = yield* OAuth.OAuth
        assert.isTrue(yield* oauth.refresh(connection.id))
        assert.strictEqual(yield* tokenOf(name, "access_token"), "opaque-new-access-token-1234")
        assert.strictEqual(yield* tokenOf(name, "refresh_token"), kept)
      })
    )
  )

  it.live("invalid_grant moves the connection to pending_auth with a clear error, and nothing retries", () =>
    run(
      Effect.gen(function* () {
        const { name, connection } = yield* setup(shortLived, shortApi)
        yield* authorize(name, connection.id)
        shortLived.answerTokenRequests(
          1,
          400,
          JSON.stringify({ error: "invalid_grant", error_description: "grant revoked" })
        )
        const count = shortLived.tokenRequests.length
        const error = yield* Effect.flip(get(connection.id))
        assert.strictEqual(error.code, "oauth_reauthorization_required")
        assert.include(error.message, `switchboard auth login ${name}`)
        const sb = yield* Switchboard.Switchboard
        const after = yield* sb.getConnection(connection.id)
        assert.strictEqual(after.status, "pending_auth")
        assert.include(after.last_error ?? "", "invalid_grant")
        assert.isUndefined(yield* tokenOf(name, "refresh_token"))
        // The next calls go out with the (expired) access token and never ask for a refresh again.
        yield* get(connection.id)
        yield* get(connection.id)
        assert.strictEqual(shortLived.tokenRequests.length, count)
      })
    )
  )

  it.live("token endpoint errors are clear and leave the connection pending", () =>
    run(
      Effect.gen(function* () {
        const oauth = yield* OAuth.OAuth
        const sb = yield* Switchboard.Switchboard
        const cases = [
          {
            status: 400,
            body: JSON.stringify({ error: "invalid_client", error_description: "bad client" }),
            expect: "invalid_client"
          },
          { status: 500, body: "<html>down</html>", expect: "HTTP 500" },
          { status: 200, body: JSON.stringify({ token_type: "Bearer" }), expect: "malformed" }
        ]
        for (const c of cases) {
          const { name, connection } = yield* setup(oidc, api)
          const { url } = yield* oauth.authorizationUrl(name, { connection: connection.id })
          const followed = yield* Effect.promise(() => follow(url, REDIRECT))
          oidc.answerTokenRequests(1, c.status, c.body)
          const error = yield* Effect.flip(oauth.complete(paramsOf(followed.callback)))
          assert.oneOf(error.code, ["oauth_token_error", "oauth_metadata_invalid"])
          assert.include(error.message, c.expect)
          const after = yield* sb.getConnection(connection.id)
          assert.strictEqual(after.status, "pending_auth")
          assert.include(after.last_error ?? "", "authorization failed")
          assert.isUndefined(yield* tokenOf(name, "access_token"))
        }
      })
    )
  )

  it.live("bad callbacks are refused and change nothing: no, unknown, tampered, reused state; a denial", () =>
    run(
      Effect.gen(function* () {
        const { name, connection } = yield* setup(oidc, api)
        const oauth = yield* OAuth.OAuth
        const sb = yield* Switchboard.Switchboard
        const { url } = yield* oauth.authorizationUrl(name, { connection: connection.id })
        const followed = yield* Effect.promise(() => follow(url, REDIRECT))
        const params = paramsOf(followed.callback)
        const state = params["state"] as string
        const [id] = state.split(".")
        const refused = [
          { ...params, state: undefined },
          { ...params, state: "not-a-state" },
          { ...params, state: `ost_01ARZ3NDEKTSV4RRFFQ69G5FAV.${"x".repeat(43)}` },
          { ...params, state: `${id}.${"y".repeat(43)}` }
        ]
        for (const bad of refused) {
          const error = yield* Effect.flip(oauth.complete(bad))
          assert.strictEqual(error.code, "oauth_state_invalid")
        }
        assert.strictEqual((yield* sb.getConnection(connection.id)).status, "pending_auth")
        // The genuine callback still works once, then never again.
        yield* oauth.complete(params)
        const reused = yield* Effect.flip(oauth.complete(params))
        assert.strictEqual(reused.code, "oauth_state_invalid")
        assert.include(reused.message, "already used")

        const second = yield* setup(oidc, api)
        const again = yield* oauth.authorizationUrl(second.name, { connection: second.connection.id })
        const denied = yield* Effect.flip(
          oauth.complete({
            state: new URL(again.url).searchParams.get("state") ?? "",
            error: "access_denied",
            error_description: "the user said no"
          })
        )
        assert.strictEqual(denied.code, "oauth_authorization_denied")
        assert.include(denied.message, "access_denied")
        assert.strictEqual((yield* sb.getConnection(second.connection.id)).status, "pending_auth")
      })
    )
  )

  it.live("disconnecting revokes the tokens at the server and the connection waits for a new authorization", () =>
    run(
      Effect.gen(function* () {
        const { name, connection } = yield* setup(oidc, api)
        yield* authorize(name, connection.id)
        const access = (yield* tokenOf(name, "access_token")) as string
        const refresh = (yield* tokenOf(name, "refresh_token")) as string
        const oauth = yield* OAuth.OAuth
        const revocations = oidc.revocations.length
        const { revoked } = yield* oauth.disconnect(connection.id)
        assert.isTrue(revoked)
        // Revoking the refresh token revokes the whole grant at this server, the access token with it.
        assert.include(oidc.revocations.slice(revocations), "refresh_token")
        assert.isUndefined(yield* Effect.promise(() => oidc.provider.AccessToken.find(access)))
        assert.isUndefined(yield* Effect.promise(() => oidc.provider.RefreshToken.find(refresh)))
        const sb = yield* Switchboard.Switchboard
        assert.strictEqual((yield* sb.getConnection(connection.id)).status, "pending_auth")
        assert.isUndefined(yield* tokenOf(name, "access_token"))
      })
    )
  )

  it.live("canary: tokens and client secrets never appear in answers, errors or audit records", () =>
    run(
      Effect.gen(function* () {
        const seen: Array<string> = []
        const { name, connection } = yield* setup(shortLived, shortApi)
        const done = yield* authorize(name, connection.id)
        seen.push(JSON.stringify(done))
        seen.push(JSON.stringify((yield* get(connection.id)).body))
        shortLived.answerTokenRequests(1, 400, JSON.stringify({ error: "invalid_grant" }))
        const tokens = [
          yield* tokenOf(name, "access_token"),
          yield* tokenOf(name, "refresh_token"),
          yield* tokenOf(name, "id_token")
        ].filter((t): t is string => t !== undefined)
        assert.isAtLeast(tokens.length, 3)
        const failure = yield* Effect.flip(get(connection.id))
        seen.push(JSON.stringify(failure), failure.message, String(failure))
        const sb = yield* Switchboard.Switchboard
        seen.push(JSON.stringify(yield* sb.listCredentials(name, "user")))
        seen.push(JSON.stringify(yield* sb.listCredentials(name, "organization")))
        seen.push(JSON.stringify(yield* sb.getConnection(connection.id)))
        seen.push(JSON.stringify(yield* sb.listAudit({ limit: 100 })))
        const text = seen.join("\n")
        for (const secret of [...tokens, SECRETS.basic, SECRETS.post]) {
          assert.notInclude(text, secret)
          assert.notInclude(text, secret.slice(0, 24))
        }
      })
    )
  )
})
