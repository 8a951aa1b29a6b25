/**
 * The `OAuth` service on the in-memory stores with a scripted `OAuthClient`: state lifetime under TestClock
 * (expired and reused states refused, nothing changed), single-flight refresh in one process (100 concurrent
 * calls, one refresh) and between two "processes" sharing one store (the lease: one refreshes, the other waits and
 * re-reads), `invalid_grant`, and the clear errors of `auth_url`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Credential from "@switchboard/core/Credential"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import { OAuthError } from "@switchboard/core/Errors"
import * as OAuth from "@switchboard/core/OAuth"
import { OAuthClient } from "@switchboard/core/OAuthClient"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import * as Memory from "../../src/memory/index.ts"
import * as StateStore from "../../src/oauth/StateStore.ts"

const REDIRECT = "http://127.0.0.1:8765/v1/oauth/callback"

interface Script {
  refreshes: number
  exchanges: number
  /** Held open while a refresh is in flight, when set. */
  gate: Deferred.Deferred<void> | undefined
  refreshError: OAuthError | undefined
}

// One counter for every fake: two services ("processes") must not share a lease holder.
let secrets = 0

const fakeClient = (script: Script) => {
  return Layer.succeed(
    OAuthClient,
    OAuthClient.of({
      newSecret: Effect.sync(() => Redacted.make(`secret-${String(++secrets).padStart(20, "0")}`)),
      authorize: (_target, request) =>
        Effect.succeed({
          url: `https://auth.example/authorize?state=${encodeURIComponent(request.state)}&scope=${request.scopes.join("+")}`,
          codeVerifier: Redacted.make("verifier-0123456789"),
          scopes: request.scopes
        }),
      exchange: (_target, request) =>
        Effect.sync(() => {
          script.exchanges++
          assert.strictEqual(Redacted.value(request.codeVerifier), "verifier-0123456789")
          return {
            tokens: {
              access_token: Redacted.make("access-0"),
              refresh_token: Redacted.make("refresh-0"),
              expires_in: 3600,
              token_type: "Bearer"
            }
          }
        }),
      refresh: (_target, request) =>
        Effect.gen(function* () {
          script.refreshes++
          const n = script.refreshes
          if (script.gate !== undefined) yield* Deferred.await(script.gate)
          for (let i = 0; i < 5; i++) yield* Effect.yieldNow
          if (script.refreshError !== undefined) return yield* script.refreshError
          assert.strictEqual(Redacted.value(request.refreshToken), `refresh-${n - 1}`)
          return {
            access_token: Redacted.make(`access-${n}`),
            refresh_token: Redacted.make(`refresh-${n}`),
            expires_in: 3600
          }
        }),
      revoke: () => Effect.succeed(true),
      userInfo: () => Effect.succeed(Option.some("ada@example.test")),
      challenge: () => Effect.succeed({ status: 200 })
    })
  )
}

const newScript = (): Script => ({ refreshes: 0, exchanges: 0, gate: undefined, refreshError: undefined })

const storesLayer = Layer.merge(Memory.layer, StateStore.layerMemory)

/** The service over given stores (so two "processes" can share them). */
const serviceLayer = (script: Script) =>
  OAuth.layer({ redirectUri: REDIRECT }).pipe(Layer.provide(fakeClient(script)), Layer.provideMerge(Switchboard.layer))

const connectorPayload = {
  name: "acme",
  display_name: "Acme",
  proxy_url: "https://api.acme.example",
  auth_patterns: [
    {
      type: "OAUTH",
      oauth_config: {
        authorize_uri: "https://auth.example/authorize",
        token_uri: "https://auth.example/token",
        user_info_uri: "https://auth.example/me",
        available_scopes: [{ scope: "profile", required: true }, { scope: "tasks" }]
      }
    }
  ]
}

const setup = Effect.gen(function* () {
  const sb = yield* Switchboard.Switchboard
  yield* sb.createConnector(connectorPayload)
  yield* sb.setCredential("acme", "organization", {
    name: Credential.oauthClientName,
    values: { client_id: "acme-app", client_secret: "acme-secret-value" }
  })
  return yield* sb.createConnection("acme", { name: "work" })
})

const stateOf = (url: string) => new URL(url).searchParams.get("state") ?? ""

const authorized = Effect.gen(function* () {
  const connection = yield* setup
  const oauth = yield* OAuth.OAuth
  const { url } = yield* oauth.authorizationUrl("acme", { connection: connection.id })
  yield* oauth.complete({ state: stateOf(url), code: "code-1" })
  return connection
})

/** Make the stored token expire within the skew. */
const expireSoon = Effect.gen(function* () {
  const sb = yield* Switchboard.Switchboard
  const vault = yield* CredentialVault
  const connector = yield* sb.getConnector("acme")
  const key = {
    connectorId: connector.id,
    scope: "user" as const,
    owner: { org: "local", user: "local" },
    name: "default"
  }
  const stored = Option.getOrThrow(yield* vault.get(key))
  yield* vault.put({ ...stored, values: { ...stored.values, expires_at: Redacted.make("1970-01-01T00:00:00.000Z") } })
  return key
})

describe("OAuth service: states", () => {
  it.effect("a state expires after 10 minutes: refused, nothing changes, and it is gone", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const connection = yield* setup
      const oauth = yield* OAuth.OAuth
      const sb = yield* Switchboard.Switchboard
      const { url, state_expires_at } = yield* oauth.authorizationUrl("acme", { connection: connection.id })
      assert.strictEqual(state_expires_at, "1970-01-01T00:10:00.000Z")
      yield* TestClock.adjust("10 minutes")
      const expired = yield* Effect.flip(oauth.complete({ state: stateOf(url), code: "code-1" }))
      assert.strictEqual(expired.code, "oauth_state_invalid")
      assert.include(expired.message, "expired")
      assert.strictEqual(script.exchanges, 0)
      assert.strictEqual((yield* sb.getConnection("work")).status, "pending_auth")
      assert.deepStrictEqual(yield* sb.listCredentials("acme", "user"), [])
      const again = yield* Effect.flip(oauth.complete({ state: stateOf(url), code: "code-1" }))
      assert.include(again.message, "unknown or already used")
    }).pipe(Effect.provide(serviceLayer(script).pipe(Layer.provideMerge(storesLayer))))
  })

  it.effect("a state used just before it expires works once; the flow runs as the principal that started it", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const connection = yield* setup
      const oauth = yield* OAuth.OAuth
      const { url } = yield* oauth.authorizationUrl("acme", { connection: connection.id, scopes: ["tasks"] })
      assert.include(url, "scope=profile+tasks")
      yield* TestClock.adjust("9 minutes")
      // The browser's request carries no principal: the stored one is used.
      const done = yield* oauth
        .complete({ state: stateOf(url), code: "code-1" })
        .pipe(Effect.provideService(Principal.CurrentPrincipal, Principal.local("someone-else")))
      assert.strictEqual(done.connection?.status, "active")
      assert.strictEqual(done.account_label, "ada@example.test")
      assert.strictEqual(script.exchanges, 1)
      const reused = yield* Effect.flip(oauth.complete({ state: stateOf(url), code: "code-1" }))
      assert.strictEqual(reused.code, "oauth_state_invalid")
      assert.strictEqual(script.exchanges, 1)
    }).pipe(Effect.provide(serviceLayer(script).pipe(Layer.provideMerge(storesLayer))))
  })

  it.effect("auth_url errors: no oauth_client, not an OAuth connector, no redirect URI, a viewer", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      const oauth = yield* OAuth.OAuth
      yield* sb.createConnector(connectorPayload)
      const missing = yield* Effect.flip(oauth.authorizationUrl("acme"))
      assert.strictEqual(missing.code, "oauth_client_missing")
      assert.include(missing.message, "oauth_client")
      yield* sb.createConnector({
        name: "keyed",
        display_name: "Keyed",
        proxy_url: "https://k.example",
        auth_patterns: [{ type: "API_KEY" }]
      })
      assert.strictEqual((yield* Effect.flip(oauth.authorizationUrl("keyed"))).code, "oauth_not_supported")
      const viewer = yield* Effect.flip(
        oauth
          .authorizationUrl("acme")
          .pipe(Effect.provideService(Principal.CurrentPrincipal, { ...Principal.local("v"), role: "viewer" }))
      )
      assert.strictEqual(viewer.code, "forbidden")
      yield* sb.setCredential("acme", "organization", { name: Credential.oauthClientName, values: { client_id: "x" } })
      const noRedirect = yield* Effect.flip(
        Effect.flatMap(OAuth.OAuth, (o) => o.authorizationUrl("acme")).pipe(
          Effect.provide(OAuth.layer().pipe(Layer.provide(fakeClient(script))))
        )
      )
      assert.strictEqual(noRedirect.code, "validation_failed")
      assert.include(noRedirect.message, "redirect")
    }).pipe(Effect.provide(serviceLayer(script).pipe(Layer.provideMerge(storesLayer))))
  })
})

describe("OAuth service: connect", () => {
  it.effect("an OAuth connection without tokens answers oauth2_required with its authorization URL", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      yield* sb.createConnector(connectorPayload)
      yield* sb.setCredential("acme", "organization", {
        name: Credential.oauthClientName,
        values: { client_id: "acme-app" }
      })
      const oauth = yield* OAuth.OAuth
      const answer = yield* oauth.connect("acme", { name: "fresh" })
      assert.strictEqual(answer.status, "oauth2_required")
      if (answer.status !== "oauth2_required") return
      assert.strictEqual(answer.connection.status, "pending_auth")
      const url = answer.auth_url ?? ""
      assert.include(url, "state=ost_")
      assert.strictEqual(answer.login_command, "switchboard auth login acme --connection fresh")
      yield* oauth.complete({ state: stateOf(url), code: "code-1" })
      // The caller's default credential now exists: the next connection is created ready.
      const next = yield* oauth.connect("acme", { name: "second" })
      assert.strictEqual(next.status, "created")
      assert.strictEqual(next.connection.status, "active")
    }).pipe(Effect.provide(serviceLayer(script).pipe(Layer.provideMerge(storesLayer))))
  })
})

describe("OAuth service: connect without an authorization URL", () => {
  it.effect("without a callback listener: the connection is created, no URL, and the command to run instead", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      yield* sb.createConnector(connectorPayload)
      yield* sb.setCredential("acme", "organization", {
        name: Credential.oauthClientName,
        values: { client_id: "acme-app" }
      })
      const answer = yield* (yield* OAuth.OAuth).connect("acme", { name: "nolistener" })
      assert.strictEqual(answer.status, "oauth2_required")
      if (answer.status !== "oauth2_required") return
      assert.isNull(answer.auth_url)
      assert.isNull(answer.state_expires_at)
      assert.include(answer.message, "switchboard auth login acme --connection nolistener")
      assert.strictEqual((yield* sb.getConnection("nolistener")).status, "pending_auth")
    }).pipe(
      Effect.provide(
        OAuth.layer().pipe(
          Layer.provide(fakeClient(script)),
          Layer.provideMerge(Switchboard.layer),
          Layer.provideMerge(storesLayer)
        )
      )
    )
  })

  it.effect("without the OAuth app credential: the connection is created and the message says what is missing", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      yield* sb.createConnector(connectorPayload)
      const answer = yield* (yield* OAuth.OAuth).connect("acme", { name: "noapp" })
      assert.strictEqual(answer.status, "oauth2_required")
      if (answer.status !== "oauth2_required") return
      assert.isNull(answer.auth_url)
      assert.include(answer.message, Credential.oauthClientName)
      assert.include(answer.message, "switchboard auth login acme --connection noapp")
      assert.strictEqual((yield* sb.getConnection("noapp")).status, "pending_auth")
    }).pipe(Effect.provide(serviceLayer(script).pipe(Layer.provideMerge(storesLayer))))
  })
})

describe("OAuth service: deleting connections", () => {
  it.effect("tokens another connection uses are neither revoked nor deleted; the last one's are", () => {
    const script = newScript()
    let revocations = 0
    const counting = Layer.effect(
      OAuthClient,
      Effect.map(Effect.service(OAuthClient), (inner) =>
        OAuthClient.of({
          ...inner,
          revoke: () => Effect.sync(() => (revocations++, true))
        })
      )
    ).pipe(Layer.provide(fakeClient(script)))
    return Effect.gen(function* () {
      const connection = yield* authorized
      const sb = yield* Switchboard.Switchboard
      const oauth = yield* OAuth.OAuth
      // A second personal connection resolves to the same user `default` credential.
      yield* sb.createConnection("acme", { name: "twin" })
      assert.deepStrictEqual(yield* oauth.deleteConnection("twin"), { revoked: false })
      assert.strictEqual(revocations, 0)
      assert.isAbove((yield* sb.listCredentials("acme", "user")).length, 0)
      assert.deepStrictEqual(yield* oauth.deleteConnection(connection.id), { revoked: true })
      assert.isAbove(revocations, 0)
      assert.strictEqual((yield* sb.listCredentials("acme", "user")).length, 0)
      const gone = yield* Effect.flip(sb.getConnection(connection.id))
      assert.strictEqual(gone.code, "connection_not_found")
    }).pipe(
      Effect.provide(
        OAuth.layer({ redirectUri: REDIRECT }).pipe(
          Layer.provide(counting),
          Layer.provideMerge(Switchboard.layer),
          Layer.provideMerge(storesLayer)
        )
      )
    )
  })
})

describe("OAuth service: refresh", () => {
  it.effect("100 concurrent calls with an expiring token make exactly one refresh", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const connection = yield* authorized
      yield* expireSoon
      const sb = yield* Switchboard.Switchboard
      const oauth = yield* OAuth.OAuth
      const calls = yield* Effect.forEach(
        Array.from({ length: 100 }),
        () => Effect.flatMap(sb.resolveCall(connection.id), (call) => oauth.refresher.beforeCall(call)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(script.refreshes, 1)
      assert.isTrue(
        calls.every((c) => Redacted.value(c.values["access_token"] as Redacted.Redacted<string>) === "access-1")
      )
      assert.strictEqual(
        Redacted.value((yield* sb.resolveCall(connection.id)).values["refresh_token"] as Redacted.Redacted<string>),
        "refresh-1"
      )
    }).pipe(Effect.provide(serviceLayer(script).pipe(Layer.provideMerge(storesLayer))))
  })

  it.live("two processes sharing the store: one refreshes under the lease, the other waits and re-reads", () =>
    Effect.gen(function* () {
      const script = newScript()
      const stores = yield* Layer.build(storesLayer)
      const first = yield* Layer.build(serviceLayer(script).pipe(Layer.provideMerge(Layer.succeedContext(stores))))
      const second = yield* Layer.build(serviceLayer(script).pipe(Layer.provideMerge(Layer.succeedContext(stores))))
      const connection = yield* authorized.pipe(Effect.provideContext(first))
      yield* expireSoon.pipe(Effect.provideContext(first))
      const refreshWith = (context: typeof first) =>
        Effect.gen(function* () {
          const sb = yield* Switchboard.Switchboard
          const oauth = yield* OAuth.OAuth
          return yield* oauth.refresher.beforeCall(yield* sb.resolveCall(connection.id))
        }).pipe(Effect.provideContext(context))
      script.gate = yield* Deferred.make<void>()
      const a = yield* Effect.forkChild(refreshWith(first))
      // Let the first take the lease and block inside its refresh, then start the second.
      while (script.refreshes === 0) yield* Effect.sleep("1 millis")
      const b = yield* Effect.forkChild(refreshWith(second))
      yield* Effect.sleep("60 millis")
      assert.strictEqual(script.refreshes, 1)
      yield* Deferred.succeed(script.gate, undefined)
      const [ra, rb] = [yield* Fiber.join(a), yield* Fiber.join(b)]
      assert.strictEqual(script.refreshes, 1)
      assert.strictEqual(Redacted.value(ra.values["access_token"] as Redacted.Redacted<string>), "access-1")
      assert.strictEqual(Redacted.value(rb.values["access_token"] as Redacted.Redacted<string>), "access-1")
    }).pipe(Effect.scoped)
  )

  it.effect("invalid_grant: pending_auth with a clear error, the dead refresh token dropped, no retry", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const connection = yield* authorized
      yield* expireSoon
      script.refreshError = new OAuthError({ reason: "oauth_reauthorization_required", message: "invalid_grant" })
      const sb = yield* Switchboard.Switchboard
      const oauth = yield* OAuth.OAuth
      const error = yield* Effect.flip(Effect.flatMap(sb.resolveCall(connection.id), oauth.refresher.beforeCall))
      assert.strictEqual(error.code, "oauth_reauthorization_required")
      assert.include(error.message, "switchboard auth login acme --connection work")
      const after = yield* sb.getConnection(connection.id)
      assert.strictEqual(after.status, "pending_auth")
      assert.include(after.last_error ?? "", "invalid_grant")
      // Nothing to refresh with any more: later calls do not ask again.
      yield* Effect.flatMap(sb.resolveCall(connection.id), oauth.refresher.beforeCall)
      assert.isTrue(
        Option.isNone(yield* Effect.flatMap(sb.resolveCall(connection.id), oauth.refresher.afterUnauthorized))
      )
      assert.strictEqual(script.refreshes, 1)
      const audit = yield* sb.listAudit({ action: "oauth.refresh" })
      assert.strictEqual(audit.data[0]?.error_code, "oauth_reauthorization_required")
    }).pipe(Effect.provide(serviceLayer(script).pipe(Layer.provideMerge(storesLayer))))
  })

  it.effect("after a 401 a token someone else already replaced is used without refreshing", () => {
    const script = newScript()
    return Effect.gen(function* () {
      const connection = yield* authorized
      const sb = yield* Switchboard.Switchboard
      const oauth = yield* OAuth.OAuth
      const stale = yield* sb.resolveCall(connection.id)
      const first = yield* oauth.refresher.afterUnauthorized(stale)
      assert.strictEqual(script.refreshes, 1)
      const second = yield* oauth.refresher.afterUnauthorized(stale)
      assert.strictEqual(script.refreshes, 1)
      assert.strictEqual(
        Redacted.value(Option.getOrThrow(second).values["access_token"] as Redacted.Redacted<string>),
        Redacted.value(Option.getOrThrow(first).values["access_token"] as Redacted.Redacted<string>)
      )
    }).pipe(Effect.provide(serviceLayer(script).pipe(Layer.provideMerge(storesLayer))))
  })
})
