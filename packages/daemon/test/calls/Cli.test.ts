/**
 * `switchboard request` and `switchboard tools list|call` in process, over an in-memory Switchboard with the real
 * proxy (a loopback upstream) and a scripted MCP upstream: bodies printed as they stream (and byte-exact), the
 * status and headers with `--include`, exit codes 8 and 9 for upstream 4xx and 5xx answers and 8 for a tool
 * error, progress on stderr, Ctrl-C cancelling the call upstream, and a canary credential in no output.
 */
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Sink from "effect/Sink"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { TestConsole } from "effect/testing"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { Access } from "../../src/cli/Access.ts"
import * as Main from "../../src/cli/Main.ts"
import { tempDir } from "../support.ts"
import {
  CANARY,
  header,
  mcpConnector,
  pattern,
  restConnector,
  scriptedMcp,
  services,
  sha256,
  upstream
} from "./support.ts"

const dir = tempDir()
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

interface Run {
  readonly code: number
  readonly out: string
  readonly bytes: Buffer
  readonly err: string
}

/** A CLI session over one in-memory Switchboard with the calling services; every output is kept for the scan. */
const session = Effect.gen(function* () {
  const mcp = scriptedMcp()
  const up = yield* upstream
  const context = yield* Layer.build(services(mcp.layer))
  const provided = Layer.succeedContext(context)
  const access = Layer.succeed(Access, Access.of({ layer: () => provided, calls: () => provided }))
  const outputs: Array<string> = []
  const cli = (argv: ReadonlyArray<string>, stdin: Uint8Array | string = "") =>
    Effect.gen(function* () {
      const beforeOut = (yield* TestConsole.logLines).length
      const beforeErr = (yield* TestConsole.errorLines).length
      const chunks: Array<Buffer> = []
      const stdout = Sink.forEach((chunk: string | Uint8Array) => Effect.sync(() => chunks.push(Buffer.from(chunk))))
      const input = typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin
      const code = yield* Main.run(argv).pipe(
        Effect.provide(access),
        Effect.provide(
          Layer.mergeAll(NodeServices.layer, Stdio.layerTest({ stdin: Stream.make(input), stdout: () => stdout }))
        )
      )
      const exit = yield* Effect.sync(() => {
        const set = process.exitCode
        process.exitCode = undefined
        return typeof set === "number" ? set : 0
      })
      const bytes = Buffer.concat(chunks)
      const out = [bytes.toString("utf8"), ...(yield* TestConsole.logLines).slice(beforeOut)].join("")
      const err = (yield* TestConsole.errorLines).slice(beforeErr).join("\n")
      outputs.push(out, err)
      return { code: code === 0 ? exit : code, out, bytes, err } satisfies Run
    })
  const sb = yield* Effect.provideContext(Effect.service(Switchboard.Switchboard), context)
  yield* sb.createConnector(restConnector("rest", up.origin))
  yield* sb.createConnector(mcpConnector("tools"))
  yield* sb.createConnection("rest", { name: "api", security: { api_key: CANARY }, allow_private_network: true })
  yield* sb.createConnection("rest", { name: "closed", security: { api_key: CANARY } })
  yield* sb.createConnection("tools", { name: "mcp", security: { token: CANARY } })
  return { cli, up, mcp, outputs }
})

const noCanary = (outputs: ReadonlyArray<string>) => {
  for (const text of outputs) assert.notInclude(text, CANARY)
}

describe("switchboard request", () => {
  it.live("prints the body; --include adds status and headers; query and headers are sent", () =>
    Effect.gen(function* () {
      const { cli, up, outputs } = yield* session
      const plain = yield* cli(["request", "api", "get", "/users", "--query", "page=2", "--header", "X-Trace=t1"])
      assert.strictEqual(plain.code, 0, plain.err)
      assert.deepStrictEqual(JSON.parse(plain.out), { ok: true, method: "GET", path: "/api/users" })
      assert.strictEqual(up.seen.at(-1)?.url, "/api/users?page=2")
      assert.deepStrictEqual(header(up.seen.at(-1), "x-trace"), ["t1"])
      assert.deepStrictEqual(header(up.seen.at(-1), "x-api-key"), [CANARY])

      const included = yield* cli(["request", "api", "DELETE", "/users/1", "--include"])
      assert.strictEqual(included.code, 0)
      assert.match(included.out, /^HTTP 200\n/)
      assert.match(included.out, /\nx-kept: yes\n/)
      assert.notMatch(included.out, /set-cookie/i)
      assert.match(included.out, /\n\n\{"ok":true,"method":"DELETE","path":"\/api\/users\/1"\}$/)

      const json = yield* cli(["--json", "request", "api", "GET", "/x"])
      const parsed = JSON.parse(json.out)
      assert.strictEqual(parsed.status, 200)
      assert.strictEqual(parsed.headers["x-kept"], "yes")
      assert.deepStrictEqual(JSON.parse(parsed.body), { ok: true, method: "GET", path: "/api/x" })
      noCanary(outputs)
    }).pipe(Effect.provide(TestConsole.layer))
  )

  it.live("sends --data as text, from a file (streamed, exact bytes) and from stdin", () =>
    Effect.gen(function* () {
      const { cli, up } = yield* session
      const text = yield* cli(["request", "api", "POST", "/items", "--data", '{"name":"x"}'])
      assert.strictEqual(text.code, 0, text.err)
      assert.strictEqual(up.seen.at(-1)?.bytes, 12)
      assert.deepStrictEqual(header(up.seen.at(-1), "content-type"), ["application/json"])

      const file = Path.join(dir, "upload.bin")
      const data = pattern(2 * 1024 * 1024 + 5)
      Fs.writeFileSync(file, data)
      const piped = yield* cli([
        "request",
        "api",
        "PUT",
        "/pipe",
        "--data",
        `@${file}`,
        "--header",
        "content-type=application/octet-stream"
      ])
      assert.strictEqual(piped.code, 0, piped.err)
      assert.strictEqual(piped.bytes.length, data.length)
      assert.strictEqual(sha256(piped.bytes), sha256(data))
      assert.deepStrictEqual(header(up.seen.at(-1), "content-length"), [String(data.length)])

      const fromStdin = yield* cli(["request", "api", "POST", "/pipe", "--data", "-"], "from stdin")
      assert.strictEqual(fromStdin.out, "from stdin")

      const missing = yield* cli(["request", "api", "POST", "/x", "--data", `@${Path.join(dir, "nope")}`])
      assert.strictEqual(missing.code, 2)
    }).pipe(Effect.provide(TestConsole.layer))
  )

  it.live("exit codes: 8 for a 4xx answer, 9 for 5xx (body still printed); Switchboard's own refusals", () =>
    Effect.gen(function* () {
      const { cli, outputs } = yield* session
      const notFound = yield* cli(["request", "api", "GET", "/status/404"])
      assert.strictEqual(notFound.code, 8)
      assert.strictEqual(notFound.out, "upstream answered 404")
      const failed = yield* cli(["request", "api", "GET", "/status/503"])
      assert.strictEqual(failed.code, 9)
      const refused = yield* cli(["--json", "request", "closed", "GET", "/x"])
      assert.strictEqual(refused.code, 5)
      assert.strictEqual(JSON.parse(refused.err).error.code, "destination_refused")
      const unknown = yield* cli(["request", "nope", "GET", "/x"])
      assert.strictEqual(unknown.code, 3)
      assert.include(unknown.err, "connection_not_found")
      const climb = yield* cli(["request", "api", "GET", "/../../etc/passwd"])
      assert.strictEqual(climb.code, 2)
      noCanary(outputs)
    }).pipe(Effect.provide(TestConsole.layer))
  )
})

describe("switchboard tools", () => {
  it.live("list as a table and as JSON", () =>
    Effect.gen(function* () {
      const { cli } = yield* session
      const table = yield* cli(["tools", "list", "mcp"])
      assert.strictEqual(table.code, 0, table.err)
      assert.match(table.out, /^NAME\s+ARGUMENTS\s+DESCRIPTION/m)
      assert.match(table.out, /^echo\s+text\*\s+Echo the text back$/m)
      assert.match(table.out, /^add\s+a\* b\*\s+Add two numbers$/m)
      const json = yield* cli(["--json", "tools", "list", "mcp"])
      assert.deepStrictEqual(
        JSON.parse(json.out).data.map((t: { name: string }) => t.name),
        ["echo", "add", "fail", "slow"]
      )
    }).pipe(Effect.provide(TestConsole.layer))
  )

  it.live("call: the result's content, progress on stderr, isError exits 8, bad arguments exit 2", () =>
    Effect.gen(function* () {
      const { cli, mcp, outputs } = yield* session
      const echoed = yield* cli(["tools", "call", "mcp", "echo", "--args", '{"text":"hello"}'])
      assert.strictEqual(echoed.code, 0, echoed.err)
      assert.strictEqual(echoed.out, "hello")
      assert.strictEqual(mcp.state.calls.at(-1)?.authorization, `Bearer ${CANARY}`)

      const slow = yield* cli(["tools", "call", "mcp", "slow", "--args", '{"steps":2}'])
      assert.strictEqual(slow.out, "done after 2 steps")
      assert.strictEqual(slow.err, "progress 1/2 step 1\nprogress 2/2 step 2")

      const failed = yield* cli(["tools", "call", "mcp", "fail"])
      assert.strictEqual(failed.code, 8)
      assert.strictEqual(failed.out, "the tool failed on purpose")
      assert.include(failed.err, "reported an error")

      const invalid = yield* cli(["tools", "call", "mcp", "add", "--args", '{"a":"x","b":1}'])
      assert.strictEqual(invalid.code, 2)
      assert.include(invalid.err, "a: Expected number")
      const notObject = yield* cli(["tools", "call", "mcp", "add", "--args", "[1]"])
      assert.strictEqual(notObject.code, 2)

      const file = Path.join(dir, "args.json")
      Fs.writeFileSync(file, '{"a":2,"b":3}')
      assert.strictEqual((yield* cli(["tools", "call", "mcp", "add", "--args", `@${file}`])).out, "5")
      assert.strictEqual((yield* cli(["tools", "call", "mcp", "add", "--args", "-"], '{"a":1,"b":1}')).out, "2")
      const json = yield* cli(["--json", "tools", "call", "mcp", "fail"])
      assert.strictEqual(json.code, 8)
      assert.isTrue(JSON.parse(json.out).isError)
      noCanary(outputs)
    }).pipe(Effect.provide(TestConsole.layer))
  )

  it.live("Ctrl-C (interruption) cancels the call upstream", () =>
    Effect.gen(function* () {
      const { cli, mcp } = yield* session
      const fiber = yield* Effect.forkChild(
        cli(["tools", "call", "mcp", "slow", "--args", '{"steps":1,"forever":true}'])
      )
      yield* Effect.sync(() => mcp.state.started.length > 0).pipe(
        Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (started) => started })
      )
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(mcp.state.cancelled.length, 1)
      assert.include((yield* TestConsole.errorLines).join("\n"), "cancelled")
    }).pipe(Effect.provide(TestConsole.layer))
  )
})
