/**
 * The CLI in-process over an in-memory Switchboard: commands, tables and JSON, secrets only from stdin or a
 * prompt, failures in the one error shape with meaningful exit codes.
 */
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { TestConsole } from "effect/testing"
import { Access } from "../../src/cli/Access.ts"
import * as Main from "../../src/cli/Main.ts"

/** A CLI session: one shared in-memory Switchboard for every command run in the test. */
const session = Effect.gen(function* () {
  const context = yield* Layer.build(Switchboard.layer.pipe(Layer.provide(Memory.layer)))
  const access = Layer.succeed(Access, Access.of({ layer: () => Layer.succeedContext(context) }))
  const cli = (argv: ReadonlyArray<string>, stdin = "") =>
    Effect.gen(function* () {
      const before = (yield* TestConsole.logLines).length
      const beforeErr = (yield* TestConsole.errorLines).length
      const code = yield* Main.run(argv).pipe(
        Effect.provide(access),
        Effect.provide(
          Layer.mergeAll(NodeServices.layer, Stdio.layerTest({ stdin: Stream.make(new TextEncoder().encode(stdin)) }))
        )
      )
      const out = (yield* TestConsole.logLines).slice(before).join("\n")
      const err = (yield* TestConsole.errorLines).slice(beforeErr).join("\n")
      return { code, out, err }
    })
  return cli
})

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname

describe("switchboard CLI", () => {
  it.effect("imports, lists and shows connectors as tables and as JSON", () =>
    Effect.gen(function* () {
      const cli = yield* session
      const added = yield* cli(["connector", "import", fixture("acme.json")])
      assert.strictEqual(added.code, 0, added.err)
      assert.match(added.out, /created connector acme-api \(ctr_/)
      const list = yield* cli(["connector", "list"])
      assert.match(list.out, /^NAME\s+KIND\s+AUTH\s+VERSION\s+ID\s+DISPLAY NAME/m)
      assert.match(list.out, /acme-api\s+http\s+API_KEY\s+1\s+ctr_/)
      const asJson = yield* cli(["--json", "connector", "get", "acme-api"])
      assert.strictEqual(JSON.parse(asJson.out).name, "acme-api")
    })
  )

  it.effect("takes secrets from stdin, refuses them on argv, and shows them masked", () =>
    Effect.gen(function* () {
      const cli = yield* session
      yield* cli(["connector", "import", fixture("acme.json")])
      const onArgv = yield* cli([
        "cred",
        "set",
        "acme-api",
        "--value",
        "api_key=sk-live-123456",
        "--value",
        "domain=a.test"
      ])
      assert.strictEqual(onArgv.code, 2)
      assert.include(onArgv.err, "api_key is a secret")
      const noTerminal = yield* cli(["cred", "set", "acme-api", "--value", "domain=a.test"])
      assert.strictEqual(noTerminal.code, 2)
      assert.include(noTerminal.err, "pass --stdin")
      const fromStdin = yield* cli(
        ["cred", "set", "acme-api", "--stdin"],
        JSON.stringify({ api_key: "sk-live-123456", domain: "a.test" })
      )
      assert.strictEqual(fromStdin.code, 0, fromStdin.err)
      const listed = yield* cli(["cred", "list", "acme-api"])
      assert.include(listed.out, "api_key=sk***56")
      assert.notInclude(listed.out + fromStdin.out, "sk-live-123456")
    })
  )

  it.effect("connects, lists connections and deletes in order", () =>
    Effect.gen(function* () {
      const cli = yield* session
      yield* cli(["connector", "import", fixture("acme.json")])
      const connected = yield* cli(
        ["connect", "acme-api", "--name", "Prod", "--query", "per_page=50", "--stdin"],
        JSON.stringify({ security: { api_key: "sk-live-123456", domain: "a.test" }, headers: { "X-Secret": "s" } })
      )
      assert.strictEqual(connected.code, 0, connected.err)
      assert.match(connected.out, /connected Prod \(conn_\w+\): active/)
      const shown = yield* cli(["--json", "connection", "get", "Prod"])
      const body = JSON.parse(shown.out)
      assert.deepStrictEqual(body.header_names, ["X-Secret"])
      assert.deepStrictEqual(body.parameters, { query: { per_page: "50" } })
      assert.notInclude(shown.out, "sk-live-123456")
      const inUse = yield* cli(["connector", "rm", "acme-api"])
      assert.strictEqual(inUse.code, 4)
      assert.include(inUse.err, "connector_in_use")
      assert.strictEqual((yield* cli(["connection", "rm", "Prod"])).code, 0)
      assert.strictEqual((yield* cli(["connector", "rm", "acme-api"])).code, 0)
    })
  )

  it.effect("failures: JSON error shape with --json, exit codes by kind", () =>
    Effect.gen(function* () {
      const cli = yield* session
      const missing = yield* cli(["--json", "connector", "get", "nope"])
      assert.strictEqual(missing.code, 3)
      assert.deepStrictEqual(JSON.parse(missing.err), {
        error: { code: "connector_not_found", message: "connector nope not found", details: { connector: "nope" } }
      })
      const bad = yield* cli(["connector", "add", "-"], JSON.stringify({ display_name: "X", proxy_url: "ftp://x" }))
      assert.strictEqual(bad.code, 2)
      assert.include(bad.err, "proxy_url:")
      const usage = yield* cli(["connector", "frobnicate"])
      assert.strictEqual(usage.code, 2)
    })
  )
})
