/**
 * The client-facing OAuth: `switchboard auth login` without a daemon (its own short-lived loopback listener), the
 * daemon's `GET /v1/connectors/{id_or_name}/auth_url` and its browser-facing `GET /v1/oauth/callback` (with the
 * Host check against DNS rebinding), and `auth login` through the daemon. The real binary and daemon run in a
 * sandbox; the browser is an HTTP client that follows the authorization server's redirects to the callback.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Layers from "@switchboard/daemon/Layers"
import * as Credential from "@switchboard/core/Credential"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { afterAll, afterEach, beforeAll } from "vitest"
import { eventually, killAll, repoRoot, request, sandbox, type Sandbox, startDaemon } from "../daemon/harness.ts"
import { follow } from "../../support/oauth/Browser.ts"
import { type OidcServer, startOidc } from "../../support/oauth/OidcServer.ts"

const bin = Path.join(repoRoot, "packages", "daemon", "bin", "switchboard.js")

let oidc: OidcServer
const boxes: Array<Sandbox> = []

beforeAll(async () => {
  oidc = await startOidc({
    clients: [
      {
        client_id: "cli-app",
        // A native client: any loopback port is accepted (RFC 8252 §7.3).
        application_type: "native",
        redirect_uris: ["http://127.0.0.1/v1/oauth/callback"],
        token_endpoint_auth_method: "none"
      }
    ]
  })
})

afterEach(() => killAll())

afterAll(async () => {
  killAll()
  await oidc?.stop()
  for (const box of boxes) box.cleanup()
})

const newBox = () => {
  const box = sandbox()
  boxes.push(box)
  return box
}

const connectorPayload = () => ({
  name: "acme",
  display_name: "Acme",
  proxy_url: "https://api.acme.example",
  auth_patterns: [
    {
      type: "OAUTH",
      oauth_config: {
        authorize_uri: `${oidc.issuer}/auth`,
        token_uri: `${oidc.issuer}/token`,
        user_info_uri: `${oidc.issuer}/me`,
        available_scopes: [
          { scope: "openid", required: true },
          { scope: "email", required: true }
        ]
      }
    }
  ]
})

interface Cli {
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<number>
}

const cli = (box: Sandbox, args: ReadonlyArray<string>): Cli => {
  const child = spawn(process.execPath, [bin, ...args], { env: box.env, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  let err = ""
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString("utf8")
  })
  child.stderr.on("data", (c: Buffer) => {
    err += c.toString("utf8")
  })
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1)))
  return { stdout: () => out, stderr: () => err, exited }
}

const urlIn = (text: string) => text.split("\n").find((line) => line.startsWith("http"))

describe("auth login without a daemon", () => {
  it.live(
    "prints the URL, takes the callback on its own loopback listener and prints the account",
    () =>
      Effect.gen(function* () {
        const box = newBox()
        const paths = Layers.resolvePaths({ env: box.env })
        yield* Effect.gen(function* () {
          const sb = yield* Switchboard.Switchboard
          yield* sb.createConnector(connectorPayload())
          yield* sb.setCredential("acme", "organization", {
            name: Credential.oauthClientName,
            values: { client_id: "cli-app" }
          })
          yield* sb.createConnection("acme", { name: "work", allow_private_network: true })
        }).pipe(
          Effect.provide(Layers.embedded({ env: box.env, home: paths.home })),
          // The binary acts as this machine's user.
          Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal())
        )

        const run = cli(box, ["--via", "embedded", "auth", "login", "acme", "--connection", "work", "--no-open"])
        yield* Effect.promise(() =>
          eventually(() => urlIn(run.stdout()) !== undefined, 90_000).catch((error: unknown) => {
            throw new Error(`no URL printed: ${String(error)}\n${run.stdout()}\n${run.stderr()}`)
          })
        )
        const url = urlIn(run.stdout()) as string
        const redirect = new URL(url).searchParams.get("redirect_uri") ?? ""
        assert.match(redirect, /^http:\/\/127\.0\.0\.1:\d+\/v1\/oauth\/callback$/u)
        const followed = yield* Effect.promise(() => follow(url, redirect, { deliver: true }))
        assert.strictEqual(followed.response?.status, 200)
        assert.include(followed.response?.body ?? "", "alice@example.test")
        assert.strictEqual(yield* Effect.promise(() => run.exited), 0, run.stderr())
        assert.include(run.stdout(), "connected acme as alice@example.test (connection work)")

        const connection = yield* Effect.flatMap(Switchboard.Switchboard, (sb) => sb.getConnection("work")).pipe(
          Effect.provide(Layers.embedded({ env: box.env, home: paths.home })),
          Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal())
        )
        assert.strictEqual(connection.status, "active")
        assert.strictEqual(connection.account_label, "alice@example.test")
      }),
    // The binary starts from TypeScript sources: slow on a loaded machine.
    120_000
  )
})

describe("OAuth through the daemon", () => {
  it.live(
    "auth_url over the socket, the callback on the loopback listener (Host checked), auth login",
    () =>
      Effect.gen(function* () {
        const box = newBox()
        const daemon = yield* Effect.promise(() => startDaemon(box))
        const post = (path: string, body: unknown) => Effect.promise(() => request(box.socket, "POST", path, body))
        assert.strictEqual((yield* post("/v1/connectors", connectorPayload())).status, 201)
        const client = yield* post("/v1/connectors/acme/organization/credentials", {
          name: "oauth_client",
          values: { client_id: "cli-app" }
        })
        assert.strictEqual(client.status, 200, client.text)
        const created = yield* post("/v1/connectors/acme/connections", { name: "work", allow_private_network: true })
        assert.strictEqual(created.status, 201, created.text)
        assert.strictEqual(created.json.status, "pending_auth")

        const answer = yield* Effect.promise(() =>
          request(box.socket, "GET", "/v1/connectors/acme/auth_url?connection=work")
        )
        assert.strictEqual(answer.status, 200, answer.text)
        assert.hasAllKeys(answer.json, ["url", "state_expires_at"])
        const url = new URL(answer.json.url as string)
        const redirect = url.searchParams.get("redirect_uri") ?? ""
        assert.match(redirect, /^http:\/\/127\.0\.0\.1:\d+\/v1\/oauth\/callback$/u)
        // `/healthz` (what `daemon status` reads) names the same callback URL.
        const health = yield* Effect.promise(() => request(box.socket, "GET", "/healthz"))
        assert.strictEqual(health.json.oauth_callback_url, redirect)

        // DNS rebinding: the same listener reached under another name is refused, and nothing changes.
        const port = Number(new URL(redirect).port)
        const rebound = yield* Effect.promise(async () => {
          const { request: httpRequest } = await import("node:http")
          return new Promise<number>((resolve, reject) => {
            const req = httpRequest(
              {
                host: "127.0.0.1",
                port,
                path: `/v1/oauth/callback${url.search}`,
                headers: { host: `evil.example:${port}` }
              },
              (res) => {
                res.resume()
                resolve(res.statusCode ?? 0)
              }
            )
            req.on("error", reject)
            req.end()
          })
        })
        assert.strictEqual(rebound, 421)
        // The REST API is not on the browser listener.
        const apiOnBrowser = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/v1/connectors`))
        assert.strictEqual(apiOnBrowser.status, 404)

        const followed = yield* Effect.promise(() => follow(url.href, redirect, { deliver: true }))
        assert.strictEqual(followed.response?.status, 200, followed.response?.body)
        assert.include(followed.response?.body ?? "", "Connected")
        const connection = yield* Effect.promise(() => request(box.socket, "GET", "/v1/connections/work"))
        assert.strictEqual(connection.json.status, "active")
        assert.strictEqual(connection.json.account_label, "alice@example.test")

        // A second delivery of the same callback is refused.
        const replay = yield* Effect.promise(() => fetch(followed.callback.href))
        assert.strictEqual(replay.status, 400)
        assert.include(yield* Effect.promise(() => replay.text()), "already used")

        // `auth login` through the daemon: the daemon's listener takes the callback, the CLI sees the change.
        oidc.account = "bob"
        try {
          const run = cli(box, ["auth", "login", "acme", "--connection", "work", "--no-open"])
          yield* Effect.promise(() => eventually(() => urlIn(run.stdout()) !== undefined, 90_000))
          const again = urlIn(run.stdout()) as string
          const redirectAgain = new URL(again).searchParams.get("redirect_uri") ?? ""
          assert.strictEqual(redirectAgain, redirect)
          yield* Effect.promise(() => follow(again, redirectAgain, { deliver: true }))
          assert.strictEqual(yield* Effect.promise(() => run.exited), 0, run.stderr())
          assert.include(run.stdout(), "connected acme as bob@example.test (connection work)")
          // Canary: no token or code in anything the daemon logged or the CLI printed.
          const printed = [daemon.stderr(), daemon.stdout(), run.stdout(), run.stderr()].join("\n")
          assert.isAbove(oidc.issued.length, 3)
          for (const secret of oidc.issued) assert.notInclude(printed, secret)
        } finally {
          oidc.account = "alice"
        }
      }),
    120_000
  )
})
