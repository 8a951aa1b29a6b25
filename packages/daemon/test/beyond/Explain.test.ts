/**
 * Explain over an in-memory Switchboard, the real SSRF classification behind the `DestinationGuard` adapter and a
 * fake `Resolver` (nothing is ever connected to): the credential chosen along the chain and why, mutations by name,
 * the rendered URL and headers with secrets masked, the policy verdict, breaker and rate-limit state, the SSRF
 * decision; through the CLI (`switchboard explain`) and through the daemon's API route; no secret in any output.
 */
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as HttpAdapter from "@switchboard/adapters/http"
import * as Memory from "@switchboard/adapters/memory"
import { UpstreamError } from "@switchboard/core/Errors"
import * as Explain from "@switchboard/core/Explain"
import * as Principal from "@switchboard/core/Principal"
import * as Resilience from "@switchboard/core/Resilience"
import { Resolver } from "@switchboard/core/Resolver"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { TestConsole } from "effect/testing"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import * as Client from "../../src/Client.ts"
import { Access } from "../../src/cli/Access.ts"
import * as Main from "../../src/cli/Main.ts"
import type * as Layers from "../../src/Layers.ts"
import * as Server from "../../src/Server.ts"
import { tempDir } from "../support.ts"

const SECRET = "sk-live-Zq81LmXw4TyP"
const USER_SECRET = "user-token-Hb62NcVr"
const PASSWORD = "pw-Secret-9Kd3Jq"

const dir = tempDir("sbx-")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

/** A fake DNS: public names answer a public address, `intranet.example` a private one; `lookups` records names. */
const fakeResolver = (lookups: Array<string>) =>
  Layer.succeed(
    Resolver,
    Resolver.of({
      resolve: (host) =>
        Effect.suspend(() => {
          lookups.push(host)
          if (host === "nowhere.example") {
            return Effect.fail(new UpstreamError({ reason: "upstream_unreachable", message: `no address for ${host}` }))
          }
          return Effect.succeed(
            host === "intranet.example"
              ? [{ address: "10.1.2.3", family: 4 as const }]
              : [{ address: "93.184.216.34", family: 4 as const }]
          )
        })
    })
  )

const services = (lookups: Array<string>) =>
  Explain.layerNoDeps.pipe(
    Layer.provide(HttpAdapter.DestinationGuard.layer().pipe(Layer.provide(fakeResolver(lookups)))),
    Layer.provideMerge(Resilience.layer),
    Layer.provideMerge(Switchboard.layer),
    Layer.provide(Layer.fresh(Memory.layer))
  )

const apiKey = {
  name: "acme",
  display_name: "Acme",
  auth_patterns: [
    {
      type: "API_KEY",
      display_name: "API key",
      fields: [
        { field_name: "api_key", label: "API key", input_type: "password", required: true },
        { field_name: "domain", label: "Domain", input_type: "text", required: true }
      ],
      auth_header_key_override: "X-API-Key"
    }
  ],
  proxy_url: "https://{{domain}}/api/v1",
  proxy_enabled: true
}

const freshdesk = {
  name: "freshdesk",
  display_name: "Freshdesk",
  auth_patterns: [
    {
      type: "BASIC",
      display_name: "API key as user",
      fields: [{ field_name: "username", label: "API key", required: true }],
      auth_field_mutations: { password: { default: "X" }, username: { suffix: "/token" } }
    }
  ],
  proxy_url: "https://acme.freshdesk.example/api/v2",
  proxy_enabled: true
}

const mcp = {
  name: "tools",
  display_name: "Tools",
  kind: "mcp",
  auth_patterns: [
    {
      type: "BEARER",
      display_name: "Token",
      is_mcp: true,
      fields: [{ field_name: "token", label: "Token", input_type: "password", required: true }]
    }
  ],
  proxy_url: "https://intranet.example/mcp"
}

const setup = Effect.gen(function* () {
  const sb = yield* Switchboard.Switchboard
  yield* sb.createConnector(apiKey)
  yield* sb.createConnector(freshdesk)
  yield* sb.createConnector(mcp)
  yield* sb.setCredential("acme", "organization", { values: { api_key: SECRET, domain: "api.acme.example" } })
  yield* sb.createConnection("acme", {
    name: "shared",
    access_scope: "organizational",
    rate_limit: { requests_per_second: 2, burst: 4 }
  })
  yield* sb.createConnection("freshdesk", { name: "desk", security: { username: PASSWORD } })
  yield* sb.createConnection("tools", { name: "mcp", security: { token: SECRET } })
  yield* sb.createConnection("acme", { name: "empty", credential: { scope: "user", name: "other" } })
})

const explain = (connection: string, query: unknown = {}) =>
  Effect.flatMap(Effect.service(Explain.Explainer), (e) => e.explain(connection, query))

const noSecret = (text: string) => {
  for (const s of [SECRET, USER_SECRET, PASSWORD]) assert.notInclude(text, s)
}

describe("Explain service", () => {
  it.effect("an organizational connection: the chain looked at, the organization credential chosen, masked", () => {
    const lookups: Array<string> = []
    return Effect.gen(function* () {
      yield* setup
      const e = yield* explain("shared", { method: "post", path: "/items/7?x=1" })
      assert.strictEqual(e.policy.allowed, true)
      assert.strictEqual(e.credential.source, "stored")
      assert.strictEqual(e.credential.chosen?.scope, "organization")
      assert.deepStrictEqual(
        e.credential.chain.map((c) => [c.scope, c.outcome]),
        [
          ["user", "missing"],
          ["workspace", "missing"],
          ["organization", "chosen"]
        ]
      )
      assert.match(e.credential.why, /caller's \(local\) own credential first/)
      assert.match(e.credential.why, /none at user, workspace/)
      assert.deepStrictEqual(e.credential.fields, ["api_key", "domain"])
      assert.strictEqual(e.request.method, "POST")
      assert.strictEqual(e.request.url, "https://api.acme.example/api/v1/items/7?x=1")
      assert.deepStrictEqual(e.request.headers, { "X-API-Key": "sk***yP" })
      assert.strictEqual(e.resilience.circuit, "closed")
      assert.deepStrictEqual(e.resilience.rate_limit, {
        requests_per_second: 2,
        burst: 4,
        tokens_available: 4,
        source: "connection"
      })
      assert.strictEqual(e.ssrf.decision, "allow")
      assert.deepStrictEqual(e.ssrf.addresses, ["93.184.216.34"])
      assert.deepStrictEqual(lookups, ["api.acme.example"])
      assert.strictEqual(e.error, null)
      assert.strictEqual(e.sent, false)
      noSecret(JSON.stringify(e))

      // The caller's own user credential wins once there is one.
      const sb = yield* Switchboard.Switchboard
      yield* sb.setCredential("acme", "user", { values: { api_key: USER_SECRET, domain: "me.acme.example" } })
      const mine = yield* explain("shared")
      assert.strictEqual(mine.credential.chosen?.scope, "user")
      assert.deepStrictEqual(
        mine.credential.chain.map((c) => c.outcome),
        ["chosen", "not_reached", "not_reached"]
      )
      assert.strictEqual(mine.request.url, "https://me.acme.example/api/v1/")
      noSecret(JSON.stringify(mine))
    }).pipe(Effect.provide(services(lookups)))
  })

  it.effect("field mutations by name, Basic auth masked with its scheme kept, inline credential", () =>
    Effect.gen(function* () {
      yield* setup
      const e = yield* explain("desk", { method: "GET", path: "/tickets" })
      assert.strictEqual(e.credential.source, "inline")
      assert.deepStrictEqual(e.credential.chain, [])
      assert.match(e.credential.why, /carries its own credential/)
      assert.deepStrictEqual([...e.mutations].sort(), ["password.default", "username.suffix"])
      const auth = e.request.headers["Authorization"] ?? ""
      assert.match(auth, /^Basic \S{2}\*\*\*\S{2}$/)
      noSecret(JSON.stringify(e))
    }).pipe(Effect.provide(services([])))
  )

  it.effect("a private destination is what the guard would refuse; an MCP tool call shows the server URL", () =>
    Effect.gen(function* () {
      yield* setup
      const e = yield* explain("mcp", { tool: "search" })
      assert.strictEqual(e.request.tool, "search")
      assert.strictEqual(e.request.url, "https://intranet.example/mcp")
      assert.deepStrictEqual(e.request.headers, { Authorization: "Bearer sk***yP" })
      assert.strictEqual(e.ssrf.decision, "refuse")
      assert.strictEqual(e.ssrf.rule, "private")
      assert.deepStrictEqual(e.ssrf.addresses, ["10.1.2.3"])
      assert.match(e.ssrf.message, /allow_private_network/)
      const http = yield* explain("mcp", { method: "GET", path: "/" })
      assert.strictEqual(http.error?.code, "invalid_parameter")
    }).pipe(Effect.provide(services([])))
  )

  it.effect("a missing credential: every place looked at is reported, and the call's error", () =>
    Effect.gen(function* () {
      yield* setup
      const e = yield* explain("empty")
      assert.strictEqual(e.credential.source, "unresolved")
      assert.deepStrictEqual(
        e.credential.chain.map((c) => [c.scope, c.name, c.outcome]),
        [["user", "other", "missing"]]
      )
      assert.match(e.credential.why, /none found/)
      assert.strictEqual(e.error?.code, "credential_missing")
      assert.strictEqual(e.request.url, null)
      assert.strictEqual(e.ssrf.decision, "not_applicable")
    }).pipe(Effect.provide(services([])))
  )

  it.effect("a viewer is told the policy denies the call, and sees no headers", () =>
    Effect.gen(function* () {
      yield* setup
      const e = yield* explain("shared").pipe(
        Effect.provideService(Principal.CurrentPrincipal, { ...Principal.local("local"), role: "viewer" })
      )
      assert.strictEqual(e.policy.allowed, false)
      assert.match(e.policy.reason ?? "", /viewers may only read/)
      assert.deepStrictEqual(e.request.headers, {})
      assert.strictEqual(e.credential.source, "unresolved")
    }).pipe(Effect.provide(services([])))
  )

  it.effect("an open breaker is reported; an unresolvable host is `unresolved`; bad queries are refused", () =>
    Effect.gen(function* () {
      yield* setup
      const sb = yield* Switchboard.Switchboard
      const resilience = yield* Resilience.Resilience
      const shared = yield* sb.getConnection("shared")
      for (let i = 0; i < 5; i++) {
        yield* Effect.ignore(
          resilience.guard(shared.id, Effect.fail(new UpstreamError({ reason: "upstream_unreachable", message: "x" })))
        )
      }
      const e = yield* explain("shared")
      assert.strictEqual(e.resilience.circuit, "open")
      yield* sb.setCredential("acme", "workspace", { values: { api_key: SECRET, domain: "nowhere.example" } })
      const gone = yield* explain("shared")
      assert.strictEqual(gone.credential.chosen?.scope, "workspace")
      assert.strictEqual(gone.ssrf.decision, "unresolved")
      const bad = yield* Effect.flip(explain("shared", { method: "X".repeat(40) }))
      assert.strictEqual(bad.code, "validation_failed")
    }).pipe(Effect.provide(services([])))
  )
})

describe("switchboard explain and GET /v1/connections/{id}/explain", () => {
  it.live("the CLI prints the dry run (human and --json), through the daemon's route too, never a secret", () =>
    Effect.gen(function* () {
      const context = yield* Layer.build(services([]))
      yield* Effect.provideContext(setup, context)
      const provided = Layer.succeedContext(context)
      const run = (argv: ReadonlyArray<string>, access: Layer.Layer<Access>) =>
        Effect.gen(function* () {
          const before = (yield* TestConsole.logLines).length
          const code = yield* Main.run(argv).pipe(
            Effect.provide(access),
            Effect.provide(Layer.mergeAll(NodeServices.layer, Stdio.layerTest({ stdin: Stream.empty })))
          )
          const out = (yield* TestConsole.logLines).slice(before).join("\n")
          return { code, out }
        })
      // Explain needs only the Switchboard and the Explainer; the proxy and tools are never reached.
      const calls = provided as unknown as Layer.Layer<Layers.Services>
      const embedded = Layer.succeed(Access, Access.of({ layer: () => provided, calls: () => calls }))
      const human = yield* run(["explain", "shared", "GET", "/users"], embedded)
      assert.strictEqual(human.code, 0, human.out)
      assert.match(human.out, /credential\s+organization\/default/)
      assert.match(human.out, /missing\s+user\/default/)
      assert.match(human.out, /request: GET https:\/\/api\.acme\.example\/api\/v1\/users/)
      assert.match(human.out, /X-API-Key: sk\*\*\*yP/)
      assert.match(human.out, /ssrf: allow \[93\.184\.216\.34\]/)
      assert.match(human.out, /nothing was sent/)
      noSecret(human.out)
      const both = yield* run(["explain", "shared", "GET", "/x", "--tool", "t"], embedded)
      assert.strictEqual(both.code, 2)

      // Through the daemon: the API route, the remote Explainer of the CLI.
      const socket = Path.join(dir, "x.sock")
      const server = Server.layer({
        socket,
        trustHeaders: true,
        principal: Principal.local("local"),
        logRequests: false,
        shutdownTimeout: "1 second"
      }).pipe(Layer.provide(provided))
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* Layer.build(server)
          const remote = Layer.succeed(
            Access,
            Access.of({
              layer: () => Client.layerRemote(socket),
              calls: () => Layer.merge(Client.layerRemote(socket), Client.layerRemoteCalls(socket))
            })
          )
          const json = yield* run(["--json", "explain", "desk", "GET", "/tickets"], remote)
          assert.strictEqual(json.code, 0, json.out)
          const parsed = JSON.parse(json.out) as Explain.Explanation
          assert.strictEqual(parsed.credential.source, "inline")
          assert.deepStrictEqual([...parsed.mutations].sort(), ["password.default", "username.suffix"])
          assert.strictEqual(parsed.request.url, "https://acme.freshdesk.example/api/v2/tickets")
          noSecret(json.out)
          const missing = yield* run(["explain", "nope"], remote)
          assert.strictEqual(missing.code, 3)
        })
      )
    }).pipe(Effect.scoped, Effect.provide(TestConsole.layer))
  )
})
