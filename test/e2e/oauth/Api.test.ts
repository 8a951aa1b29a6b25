/**
 * The OAuth answers of the REST API, over a daemon server in process on a temporary socket with the whole OAuth
 * stack, against `oidc-provider` on 127.0.0.1: creating an OAuth connection without tokens answers the connection
 * plus `oauth` (`oauth2_required`, the authorization URL, the CLI command), also through the remote client;
 * deleting a connection or a credential revokes its tokens at the server first (they are dead afterwards), and a
 * failed revocation is logged without the token while the delete still happens; `/healthz` and `daemon status`
 * report the OAuth callback URL; and RFC 9207: where the server's metadata says so, the callback's `iss` is
 * required and must be the issuer.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Credential from "@switchboard/core/Credential"
import * as OAuth from "@switchboard/core/OAuth"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import { Client, Daemon, Handlers, Server } from "@switchboard/daemon"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "vitest"
import { follow, paramsOf } from "../../support/oauth/Browser.ts"
import { type McpAuthServer, startMcpAuth } from "../../support/oauth/McpAuthServer.ts"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"
import { stack, type StackServices } from "../../support/oauth/Stack.ts"

const REDIRECT = "http://127.0.0.1:9/v1/oauth/callback"

let oidc: OidcServer
let mcp: McpAuthServer
const dirs: Array<string> = []

beforeAll(async () => {
  oidc = await startOidc({
    clients: [
      {
        client_id: "api-app",
        client_secret: "api-app-secret-CANARY-5d1e",
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: "client_secret_basic"
      }
    ]
  })
  mcp = await startMcpAuth(oidc)
})

afterAll(async () => {
  await Promise.all([mcp?.stop(), oidc?.stop()])
  for (const dir of dirs) Fs.rmSync(dir, { recursive: true, force: true })
})

const tempHome = () => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sboa-"))
  dirs.push(dir)
  return dir
}

let counter = 0
const unique = (prefix: string) => `${prefix}-${++counter}`

interface Raw {
  readonly status: number
  readonly text: string
  readonly json: any
}

const raw = (socketPath: string, method: string, path: string, body?: unknown) =>
  new Promise<Raw>((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body)
    const headers: Record<string, string> = { host: "switchboard" }
    if (text !== undefined) {
      headers["content-type"] = "application/json"
      headers["content-length"] = String(Buffer.byteLength(text))
    }
    const req = Http.request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => {
        const out = Buffer.concat(chunks).toString("utf8")
        let json: unknown
        try {
          json = out === "" ? undefined : JSON.parse(out)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, text: out, json })
      })
    })
    req.on("error", reject)
    if (text !== undefined) req.write(text)
    req.end()
  })

/**
 * The stack and a server on `home`'s socket over it (with `callbackUrl` as its browser listener's, when given);
 * `logs` collects what the services log, as the daemon's JSON logger writes it.
 */
const withServer = <A, E>(
  f: (socket: string) => Effect.Effect<A, E, StackServices>,
  options: { readonly redirectUri?: string | undefined; readonly callbackUrl?: string; readonly home?: string } = {}
) => {
  const home = options.home ?? tempHome()
  const socket = Path.join(home, "switchboard.sock")
  const logs: Array<string> = []
  const services = stack({ redirectUri: options.redirectUri })
  const server = Server.layer({
    socket,
    trustHeaders: false,
    principal: Principal.local("local"),
    logRequests: false,
    shutdownTimeout: "1 second"
  }).pipe(
    Layer.provide(
      options.callbackUrl === undefined
        ? services
        : Layer.merge(services, Layer.succeed(Handlers.OAuthCallbackUrl, { url: options.callbackUrl }))
    )
  )
  return Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(Layer.merge(services, server))
      return yield* f(socket).pipe(Effect.provide(context))
    })
  ).pipe(
    Effect.provide(Logger.layer([Daemon.jsonLogger((line) => logs.push(line))])),
    Effect.map((value) => ({ value, logs }))
  )
}

/** A REST connector on the test server with its `oauth_client`; `revokeUri` overrides the revocation endpoint. */
const restConnector = (revokeUri?: string) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const name = unique("rest")
    yield* sb.createConnector({
      name,
      display_name: name,
      proxy_url: "https://api.acme.example",
      auth_patterns: [
        {
          type: "OAUTH",
          oauth_config: {
            authorize_uri: `${oidc.issuer}/auth`,
            token_uri: `${oidc.issuer}/token`,
            revoke_uri: revokeUri ?? `${oidc.issuer}/token/revocation`,
            token_endpoint_auth_method: "client_secret_basic",
            available_scopes: [
              { scope: "openid", required: true },
              { scope: "offline_access", required: true }
            ]
          }
        }
      ]
    })
    yield* sb.setCredential(name, "organization", {
      name: Credential.oauthClientName,
      values: { client_id: "api-app", client_secret: "api-app-secret-CANARY-5d1e" }
    })
    return name
  })

/** Follow an authorization URL and complete its callback; the tokens the connection got. */
const authorizeWith = (url: string, connector: string) =>
  Effect.gen(function* () {
    const followed = yield* Effect.promise(() => follow(url, REDIRECT))
    yield* (yield* OAuth.OAuth).complete(paramsOf(followed.callback))
    return yield* tokensOf(connector)
  })

const tokensOf = (connector: string) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const listed = yield* sb.listCredentials(connector, "user")
    return listed.length
  })

const issuedSince = (from: number) => oidc.issued.slice(from)

/** Whether the server still knows any of these tokens (access or refresh). */
const anyAlive = (tokens: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    const found = await Promise.all(
      tokens.flatMap((token) => [oidc.provider.AccessToken.find(token), oidc.provider.RefreshToken.find(token)])
    )
    return found.some((token) => token !== undefined)
  })

describe("creating an OAuth connection through the API", () => {
  it.live("answers the connection plus oauth: oauth2_required, the URL, the command; the remote client too", () =>
    withServer(
      (socket) =>
        Effect.gen(function* () {
          const name = yield* restConnector()
          const created = yield* Effect.promise(() =>
            raw(socket, "POST", `/v1/connectors/${name}/connections`, { name: "work", allow_private_network: true })
          )
          assert.strictEqual(created.status, 201, created.text)
          assert.strictEqual(created.json.status, "pending_auth")
          assert.strictEqual(created.json.name, "work")
          const oauth = created.json.oauth
          assert.strictEqual(oauth.status, "oauth2_required")
          assert.isNull(oauth.connector_page_url)
          assert.strictEqual(oauth.login_command, `switchboard auth login ${name} --connection work`)
          assert.isString(oauth.state_expires_at)
          const url = new URL(oauth.auth_url)
          assert.strictEqual(url.origin, oidc.issuer)
          assert.strictEqual(url.searchParams.get("redirect_uri"), REDIRECT)
          assert.strictEqual(url.searchParams.get("code_challenge_method"), "S256")
          // The URL works: the connection becomes active.
          assert.strictEqual(yield* authorizeWith(url.href, name), 1)
          const active = yield* Effect.promise(() => raw(socket, "GET", "/v1/connections/work"))
          assert.strictEqual(active.json.status, "active")
          assert.notProperty(active.json, "oauth")

          // A connection that needs nothing more answers without `oauth`.
          const ready = yield* Effect.promise(() =>
            raw(socket, "POST", `/v1/connectors/${name}/connections`, { name: "again", allow_private_network: true })
          )
          assert.strictEqual(ready.status, 201, ready.text)
          assert.strictEqual(ready.json.status, "active")
          assert.notProperty(ready.json, "oauth")

          // The remote Switchboard passes `oauth` on.
          const other = yield* restConnector()
          const remote = yield* Effect.flatMap(Switchboard.Switchboard, (sb) =>
            sb.createConnection(other, { name: "remote", allow_private_network: true })
          ).pipe(Effect.provide(Client.layerRemote(socket)))
          assert.strictEqual(remote.status, "pending_auth")
          const passed = (remote as { oauth?: { status: string; auth_url: string | null } }).oauth
          assert.strictEqual(passed?.status, "oauth2_required")
          assert.include(passed?.auth_url ?? "", `${oidc.issuer}/auth?`)

          // The OpenAPI document describes the answer.
          const doc = yield* Effect.promise(() => raw(socket, "GET", "/openapi.json"))
          if (doc.status === 200) assert.include(doc.text, "oauth2_required")
        }),
      { redirectUri: REDIRECT }
    ).pipe(Effect.asVoid)
  )

  it.live("without a browser listener: auth_url is null and the message says what to run", () =>
    withServer((socket) =>
      Effect.gen(function* () {
        const name = yield* restConnector()
        const created = yield* Effect.promise(() =>
          raw(socket, "POST", `/v1/connectors/${name}/connections`, { name: "work", allow_private_network: true })
        )
        assert.strictEqual(created.status, 201, created.text)
        assert.strictEqual(created.json.status, "pending_auth")
        assert.isNull(created.json.oauth.auth_url)
        assert.include(created.json.oauth.message, `switchboard auth login ${name} --connection work`)
      })
    ).pipe(Effect.asVoid)
  )
})

describe("revocation on delete", () => {
  it.live("DELETE /v1/connections/{id} revokes the tokens at the server, then deletes", () =>
    withServer(
      (socket) =>
        Effect.gen(function* () {
          const name = yield* restConnector()
          const created = yield* Effect.promise(() =>
            raw(socket, "POST", `/v1/connectors/${name}/connections`, { name: "work", allow_private_network: true })
          )
          const from = oidc.issued.length
          yield* authorizeWith(created.json.oauth.auth_url, name)
          const tokens = issuedSince(from)
          assert.isTrue(yield* anyAlive(tokens))
          const revocations = oidc.revocations.length
          const deleted = yield* Effect.promise(() => raw(socket, "DELETE", "/v1/connections/work"))
          assert.strictEqual(deleted.status, 204, deleted.text)
          assert.include(oidc.revocations.slice(revocations), "refresh_token")
          assert.isFalse(yield* anyAlive(tokens))
          assert.strictEqual((yield* Effect.promise(() => raw(socket, "GET", "/v1/connections/work"))).status, 404)
          assert.strictEqual(yield* tokensOf(name), 0)
        }),
      { redirectUri: REDIRECT }
    ).pipe(Effect.asVoid)
  )

  it.live("DELETE …/credentials/{name} revokes the tokens at the server, then deletes", () =>
    withServer(
      (socket) =>
        Effect.gen(function* () {
          const name = yield* restConnector()
          const created = yield* Effect.promise(() =>
            raw(socket, "POST", `/v1/connectors/${name}/connections`, { name: "work", allow_private_network: true })
          )
          const from = oidc.issued.length
          yield* authorizeWith(created.json.oauth.auth_url, name)
          const tokens = issuedSince(from)
          assert.isTrue(yield* anyAlive(tokens))
          const deleted = yield* Effect.promise(() =>
            raw(socket, "DELETE", `/v1/connectors/${name}/user/credentials/default`)
          )
          assert.strictEqual(deleted.status, 204, deleted.text)
          assert.isFalse(yield* anyAlive(tokens))
          assert.strictEqual(yield* tokensOf(name), 0)
        }),
      { redirectUri: REDIRECT }
    ).pipe(Effect.asVoid)
  )

  it.live("a failed revocation is logged without the token and the delete still happens", () =>
    Effect.gen(function* () {
      let tokens: ReadonlyArray<string> = []
      const { logs } = yield* withServer(
        (socket) =>
          Effect.gen(function* () {
            // This endpoint does not exist: the server answers 404.
            const name = yield* restConnector(`${oidc.issuer}/no-such-revocation`)
            const created = yield* Effect.promise(() =>
              raw(socket, "POST", `/v1/connectors/${name}/connections`, { name: "work", allow_private_network: true })
            )
            const from = oidc.issued.length
            yield* authorizeWith(created.json.oauth.auth_url, name)
            tokens = issuedSince(from)
            const deleted = yield* Effect.promise(() => raw(socket, "DELETE", "/v1/connections/work"))
            assert.strictEqual(deleted.status, 204, deleted.text)
            assert.strictEqual((yield* Effect.promise(() => raw(socket, "GET", "/v1/connections/work"))).status, 404)
            assert.strictEqual(yield* tokensOf(name), 0)
          }),
        { redirectUri: REDIRECT }
      )
      const text = logs.join("\n")
      assert.include(text, "revoking OAuth tokens failed")
      assert.include(text, "404")
      assert.isAbove(tokens.length, 0)
      for (const token of tokens) assert.notInclude(text, token)
    })
  )
})

describe("revocation on delete for MCP connectors", () => {
  it.live("the discovered revocation_endpoint revokes the tokens when the connection is deleted", () =>
    withServer(
      (socket) =>
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
          const created = yield* Effect.promise(() =>
            raw(socket, "POST", `/v1/connectors/${name}/connections`, { name: "work", allow_private_network: true })
          )
          assert.strictEqual(created.status, 201, created.text)
          const from = oidc.issued.length
          yield* authorizeWith(created.json.oauth.auth_url, name)
          const tokens = issuedSince(from)
          assert.isTrue(yield* anyAlive(tokens))
          const deleted = yield* Effect.promise(() => raw(socket, "DELETE", "/v1/connections/work"))
          assert.strictEqual(deleted.status, 204, deleted.text)
          assert.isFalse(yield* anyAlive(tokens))
          assert.strictEqual(yield* tokensOf(name), 0)
        }),
      { redirectUri: REDIRECT }
    ).pipe(Effect.asVoid)
  )
})

describe("the OAuth callback URL in health and status", () => {
  it.live("/healthz and Daemon.status report the browser listener's callback URL", () =>
    Effect.gen(function* () {
      const home = tempHome()
      const callbackUrl = "http://127.0.0.1:45678/v1/oauth/callback"
      yield* withServer(
        (socket) =>
          Effect.gen(function* () {
            const health = yield* Effect.promise(() => raw(socket, "GET", "/healthz"))
            assert.strictEqual(health.json.oauth_callback_url, callbackUrl)
            const status = yield* Daemon.status({ home, env: {} })
            assert.isTrue(status.healthy)
            assert.strictEqual(status.oauth_callback_url, callbackUrl)
          }),
        { callbackUrl, home }
      )
      // Without a listener the member is absent, and status says null.
      yield* withServer(
        (socket) =>
          Effect.gen(function* () {
            const health = yield* Effect.promise(() => raw(socket, "GET", "/healthz"))
            assert.notProperty(health.json, "oauth_callback_url")
            assert.isNull((yield* Daemon.status({ home, env: {} })).oauth_callback_url)
          }),
        { home }
      )
    })
  )
})

describe("RFC 9207: the iss of the authorization response", () => {
  /** An MCP connector on the test MCP server, a connection, and a callback the server sent. */
  const mcpCallback = Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const name = unique("mcp")
    yield* sb.createConnector({
      name,
      display_name: name,
      kind: "mcp",
      proxy_url: mcp.url,
      auth_patterns: [{ type: "OAUTH", is_mcp: true, oauth_config: { pkce_enabled: true } }]
    })
    const connection = yield* sb.createConnection(name, { name: unique("conn"), allow_private_network: true })
    const { url } = yield* (yield* OAuth.OAuth).authorizationUrl(name, { connection: connection.id })
    const followed = yield* Effect.promise(() => follow(url, REDIRECT))
    return { connection, params: paramsOf(followed.callback) }
  })

  const run = <A, E>(effect: Effect.Effect<A, E, StackServices>) =>
    Effect.scoped(effect.pipe(Effect.provide(stack({ redirectUri: REDIRECT }))))

  it.live("the server advertises it and sends iss: a callback with the issuer completes", () =>
    run(
      Effect.gen(function* () {
        const { connection, params } = yield* mcpCallback
        assert.strictEqual(params["iss"], oidc.issuer)
        yield* (yield* OAuth.OAuth).complete(params)
        assert.strictEqual((yield* (yield* Switchboard.Switchboard).getConnection(connection.id)).status, "active")
      })
    )
  )

  it.live("a callback without iss is refused, nothing is exchanged", () =>
    run(
      Effect.gen(function* () {
        const { connection, params } = yield* mcpCallback
        const { iss: _iss, ...without } = params
        const exchanges = oidc.tokenRequests.filter((r) => r.grant_type === "authorization_code").length
        const error = yield* Effect.flip((yield* OAuth.OAuth).complete(without))
        assert.strictEqual(error.code, "oauth_state_invalid")
        assert.include(error.message, "RFC 9207")
        assert.strictEqual(oidc.tokenRequests.filter((r) => r.grant_type === "authorization_code").length, exchanges)
        assert.strictEqual(
          (yield* (yield* Switchboard.Switchboard).getConnection(connection.id)).status,
          "pending_auth"
        )
      })
    )
  )

  it.live("a callback naming another issuer is refused (mix-up protection)", () =>
    run(
      Effect.gen(function* () {
        const { connection, params } = yield* mcpCallback
        const error = yield* Effect.flip((yield* OAuth.OAuth).complete({ ...params, iss: "https://attacker.example" }))
        assert.strictEqual(error.code, "oauth_state_invalid")
        assert.include(error.message, "mix-up")
        assert.strictEqual(
          (yield* (yield* Switchboard.Switchboard).getConnection(connection.id)).status,
          "pending_auth"
        )
      })
    )
  )
})
