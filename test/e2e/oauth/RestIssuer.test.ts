/**
 * RFC 9207 for REST connectors, against oidc-provider (which names itself in every authorization response and says
 * so in its metadata). A connector's optional `oauth_config.issuer` (the Scalekit payload, which has none, is still
 * accepted verbatim) turns the check on: the callback's `iss` must be the issuer; the server's metadata, where it
 * publishes one, must name that issuer and decides whether `iss` is required. Every refusal happens before the code
 * is exchanged: no token request, no credential stored, the connection still pending. An issuer whose server
 * publishes no metadata accepts a callback without `iss` but still refuses one naming another issuer.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Credential from "@switchboard/core/Credential"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import * as OAuth from "@switchboard/core/OAuth"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Http from "node:http"
import type * as Net from "node:net"
import { afterAll, beforeAll } from "vitest"
import { follow, paramsOf } from "../../support/oauth/Browser.ts"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"
import { stack, type StackServices } from "../../support/oauth/Stack.ts"

const REDIRECT = "http://127.0.0.1:9/v1/oauth/callback"

let oidc: OidcServer
/** An origin that publishes no authorization server metadata (every path 404). */
let bare: Http.Server
let bareOrigin: string

beforeAll(async () => {
  oidc = await startOidc({
    clients: [
      {
        client_id: "iss-app",
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: "none",
        application_type: "native"
      }
    ]
  })
  bare = Http.createServer((_req, res) => res.writeHead(404, { "content-type": "application/json" }).end("{}"))
  await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", () => resolve()))
  bareOrigin = `http://127.0.0.1:${(bare.address() as Net.AddressInfo).port}`
})

afterAll(async () => {
  bare?.closeAllConnections()
  bare?.close()
  await oidc?.stop()
})

let counter = 0
const unique = (prefix: string) => `${prefix}-${++counter}`

const run = <A, E>(effect: Effect.Effect<A, E, StackServices>) =>
  Effect.scoped(effect.pipe(Effect.provide(stack({ redirectUri: REDIRECT }))))

const exchanges = () => oidc.tokenRequests.filter((r) => r.grant_type === "authorization_code").length

/** A REST connector on oidc-provider (with `issuer` when given), a connection, and the callback the server sent. */
const callback = (issuer: string | undefined) =>
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const name = unique("iss")
    yield* sb.createConnector({
      name,
      display_name: name,
      proxy_url: "https://api.example.test",
      auth_patterns: [
        {
          type: "OAUTH",
          oauth_config: {
            authorize_uri: `${oidc.issuer}/auth`,
            token_uri: `${oidc.issuer}/token`,
            available_scopes: [{ scope: "openid", required: true }],
            ...(issuer === undefined ? {} : { issuer })
          }
        }
      ]
    })
    yield* sb.setCredential(name, "organization", {
      name: Credential.oauthClientName,
      values: { client_id: "iss-app" }
    })
    const connection = yield* sb.createConnection(name, { name: unique("conn"), allow_private_network: true })
    const { url } = yield* (yield* OAuth.OAuth).authorizationUrl(name, { connection: connection.id })
    const followed = yield* Effect.promise(() => follow(url, REDIRECT))
    return { name, connection, params: paramsOf(followed.callback) }
  })

/** The callback was refused with `code`, nothing exchanged, nothing stored, the connection still pending. */
const refusedUnchanged = (
  setup: Effect.Success<ReturnType<typeof callback>>,
  params: Record<string, string>,
  code: string,
  says: string
) =>
  Effect.gen(function* () {
    const before = exchanges()
    const error = yield* Effect.flip((yield* OAuth.OAuth).complete(params))
    assert.strictEqual(error.code, code, error.message)
    assert.include(error.message, says)
    assert.strictEqual(exchanges(), before, "the code was exchanged")
    const sb = yield* Switchboard.Switchboard
    assert.strictEqual((yield* sb.getConnection(setup.connection.id)).status, "pending_auth")
    const stored = yield* (yield* CredentialVault).get({
      connectorId: setup.connection.connector_id,
      scope: "user",
      owner: { org: "local", user: "local" },
      name: "default"
    })
    assert.isTrue(Option.isNone(stored), "a credential was stored")
  })

describe("RFC 9207 iss for REST connectors with fixed endpoints", () => {
  it.live("the issuer configured and sent: the callback completes", () =>
    run(
      Effect.gen(function* () {
        const { connection, params } = yield* callback(oidc.issuer)
        assert.strictEqual(params["iss"], oidc.issuer)
        const done = yield* (yield* OAuth.OAuth).complete(params)
        assert.strictEqual(done.connection?.status, "active")
        assert.strictEqual((yield* (yield* Switchboard.Switchboard).getConnection(connection.id)).status, "active")
      })
    )
  )

  it.live("a callback naming another issuer is refused (mix-up protection), nothing changed", () =>
    run(
      Effect.gen(function* () {
        const setup = yield* callback(oidc.issuer)
        yield* refusedUnchanged(
          setup,
          { ...setup.params, iss: "https://attacker.example" },
          "oauth_state_invalid",
          "mix-up"
        )
      })
    )
  )

  it.live("a callback without iss is refused where the metadata says iss is always sent, nothing changed", () =>
    run(
      Effect.gen(function* () {
        const setup = yield* callback(oidc.issuer)
        const { iss: _iss, ...without } = setup.params
        yield* refusedUnchanged(setup, without, "oauth_state_invalid", "RFC 9207")
      })
    )
  )

  it.live("a configured issuer the server's metadata contradicts is refused, nothing changed", () =>
    run(
      Effect.gen(function* () {
        // `http://host:port/` is not `http://host:port`: RFC 8414 and 9207 compare issuers as strings.
        const setup = yield* callback(`${oidc.issuer}/`)
        yield* refusedUnchanged(setup, setup.params, "oauth_metadata_invalid", "another issuer")
      })
    )
  )

  it.live("an issuer without published metadata: iss optional, but one naming another issuer is refused", () =>
    run(
      Effect.gen(function* () {
        const named = yield* callback(bareOrigin)
        yield* refusedUnchanged(named, named.params, "oauth_state_invalid", "mix-up")
        const silent = yield* callback(bareOrigin)
        const { iss: _iss, ...without } = silent.params
        const done = yield* (yield* OAuth.OAuth).complete(without)
        assert.strictEqual(done.connection?.status, "active")
      })
    )
  )

  it.live("without an issuer (the Scalekit payload verbatim) iss is not checked, and reads back unchanged", () =>
    run(
      Effect.gen(function* () {
        const { name, params } = yield* callback(undefined)
        const sb = yield* Switchboard.Switchboard
        assert.notProperty((yield* sb.getConnector(name)).auth_patterns[0]?.oauth_config ?? {}, "issuer")
        const done = yield* (yield* OAuth.OAuth).complete({ ...params, iss: "https://unchecked.example" })
        assert.strictEqual(done.connection?.status, "active")
      })
    )
  )

  it.live("an issuer that is not an http(s) URL is refused at the connector, with its path", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const error = yield* Effect.flip(
          sb.createConnector({
            name: unique("bad-iss"),
            display_name: "bad",
            auth_patterns: [
              {
                type: "OAUTH",
                oauth_config: {
                  authorize_uri: `${oidc.issuer}/auth`,
                  token_uri: `${oidc.issuer}/token`,
                  issuer: "javascript:alert(1)"
                }
              }
            ]
          })
        )
        assert.strictEqual(error.code, "validation_failed")
        assert.include(JSON.stringify(error.details), "issuer")
      })
    )
  )
})
