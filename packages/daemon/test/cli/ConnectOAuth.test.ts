/**
 * `switchboard connect` for an OAuth connector without tokens: through the daemon it prints the authorization URL
 * the daemon answered and the `switchboard auth login` command; embedded (no browser listener) it says what to
 * run instead. JSON carries the same `oauth` member as the API.
 */
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import type * as Api from "@switchboard/core/Api"
import * as Credential from "@switchboard/core/Credential"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { TestConsole } from "effect/testing"
import { Access } from "../../src/cli/Access.ts"
import * as Main from "../../src/cli/Main.ts"

const connector = {
  name: "acme",
  display_name: "Acme",
  proxy_url: "https://api.acme.example",
  auth_patterns: [
    {
      type: "OAUTH",
      oauth_config: {
        authorize_uri: "https://auth.acme.example/authorize",
        token_uri: "https://auth.acme.example/token"
      }
    }
  ]
}

const AUTH_URL = "https://auth.acme.example/authorize?state=ost_x.y&code_challenge_method=S256"

/**
 * A CLI session over an in-memory Switchboard; `daemon` makes `createConnection` answer as the remote service does
 * through the daemon (the connection plus the daemon's `oauth` member).
 */
const session = (daemon: boolean) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(Switchboard.layer.pipe(Layer.provide(Memory.layer)))
    const sb = context.mapUnsafe.get(Switchboard.Switchboard.key) as Switchboard.Switchboard["Service"]
    const remote: Switchboard.Switchboard["Service"] = {
      ...sb,
      createConnection: (ref, input) =>
        Effect.map(sb.createConnection(ref, input), (connection) => {
          const oauth: Api.OAuthRequired = {
            status: "oauth2_required",
            auth_url: AUTH_URL,
            state_expires_at: "2030-01-01T00:10:00.000Z",
            connector_page_url: null,
            login_command: `switchboard auth login acme --connection ${connection.name}`,
            message: "open auth_url in a browser"
          }
          return { ...connection, oauth }
        })
    }
    const layer = daemon ? Layer.succeed(Switchboard.Switchboard, remote) : Layer.succeedContext(context)
    const access = Layer.succeed(Access, Access.of({ layer: () => layer }))
    const cli = (argv: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        const before = (yield* TestConsole.logLines).length
        const beforeErr = (yield* TestConsole.errorLines).length
        const code = yield* Main.run(argv).pipe(
          Effect.provide(access),
          Effect.provide(Layer.mergeAll(NodeServices.layer, Stdio.layerTest({ stdin: Stream.empty })))
        )
        const out = (yield* TestConsole.logLines).slice(before).join("\n")
        const err = (yield* TestConsole.errorLines).slice(beforeErr).join("\n")
        return { code, out, err }
      })
    yield* sb.createConnector(connector)
    yield* sb.setCredential("acme", "organization", {
      name: Credential.oauthClientName,
      values: { client_id: "acme-app" }
    })
    return cli
  })

describe("switchboard connect for OAuth connectors", () => {
  it.effect("through the daemon: prints the authorization URL and the auth login command", () =>
    Effect.gen(function* () {
      const cli = yield* session(true)
      const text = yield* cli(["connect", "acme", "--name", "work"])
      assert.strictEqual(text.code, 0, text.err)
      assert.match(text.out, /connected work \(conn_[^)]+\): pending_auth/)
      assert.include(text.out, AUTH_URL)
      assert.include(text.out, "or run: switchboard auth login acme --connection work")
      const json = yield* cli(["--json", "connect", "acme", "--name", "other"])
      assert.strictEqual(json.code, 0, json.err)
      const parsed = JSON.parse(json.out)
      assert.strictEqual(parsed.status, "pending_auth")
      assert.strictEqual(parsed.oauth.status, "oauth2_required")
      assert.strictEqual(parsed.oauth.auth_url, AUTH_URL)
      assert.isNull(parsed.oauth.connector_page_url)
    })
  )

  it.effect("embedded (no browser listener): says to run auth login, or to start the daemon", () =>
    Effect.gen(function* () {
      const cli = yield* session(false)
      const text = yield* cli(["connect", "acme", "--name", "work"])
      assert.strictEqual(text.code, 0, text.err)
      assert.match(text.out, /connected work \(conn_[^)]+\): pending_auth/)
      assert.include(text.out, "switchboard auth login acme --connection work")
      assert.include(text.out, "switchboard daemon start")
      assert.notInclude(text.out, "https://")
      const json = yield* cli(["--json", "connect", "acme", "--name", "other"])
      const parsed = JSON.parse(json.out)
      assert.isNull(parsed.oauth.auth_url)
      assert.strictEqual(parsed.oauth.login_command, "switchboard auth login acme --connection other")
    })
  )

  it.effect("a connection that needs no authorization prints as before, without oauth", () =>
    Effect.gen(function* () {
      const cli = yield* session(false)
      yield* cli(["connector", "import", new URL("./fixtures/acme.json", import.meta.url).pathname])
      const json = yield* cli(["--json", "connect", "acme-api", "--name", "plain"])
      assert.strictEqual(json.code, 0, json.err)
      assert.notProperty(JSON.parse(json.out), "oauth")
    })
  )
})
