/**
 * The real `switchboard` binary calling upstreams through a detached daemon, like a user would: `daemon start
 * --detach`, then `request` (body, `--include`, exit 9 on an upstream 5xx) and `tools call` (result, progress on
 * stderr, Ctrl-C cancelling the call at the MCP server), against a recording HTTP upstream
 * and an SDK MCP server on 127.0.0.1. A canary credential appears in no output and not in the daemon's log.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { HttpServers } from "../../support/mcp/index.ts"
import { eventually, killAll, repoRoot, request, sandbox } from "../daemon/harness.ts"
import { received, recordingServer } from "../proxy/support.ts"

const CANARY = "sb-canary-cli-e2e-Rb7Kc2Mz"
const bin = Path.join(repoRoot, "packages", "daemon", "bin", "switchboard.js")

const box = sandbox()
const outputs: Array<string> = []

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Start the binary; `done` resolves with its exit code (128 + n when a signal ended it) and output. */
const start = (args: ReadonlyArray<string>) => {
  const child = spawn(process.execPath, [bin, ...args], { env: box.env, stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")))
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")))
  const done = new Promise<Ran>((resolve) => {
    child.once("exit", (code, signal) => {
      outputs.push(stdout, stderr)
      resolve({ code: code ?? (signal === "SIGINT" ? 130 : 128), stdout, stderr })
    })
  })
  return { child, done, stderr: () => stderr }
}

const run = (...args: ReadonlyArray<string>) => Effect.promise(() => start(args).done)

afterAll(async () => {
  const pid = Fs.existsSync(box.pidFile) ? Number.parseInt(Fs.readFileSync(box.pidFile, "utf8").trim(), 10) : 0
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, "SIGTERM")
    } catch {
      // already gone
    }
  }
  killAll()
  await new Promise((resolve) => setTimeout(resolve, 100))
  box.cleanup()
})

describe("the switchboard binary through a daemon", () => {
  it.live(
    "request and tools call, with exit codes, progress and Ctrl-C",
    () =>
      Effect.gen(function* () {
        const up = yield* recordingServer
        const mcp = yield* HttpServers.scoped(() => HttpServers.startStreamable())

        const started = yield* run("daemon", "start", "--detach", "--store", "memory")
        assert.strictEqual(started.code, 0, started.stderr)
        assert.match(started.stdout, /daemon running \(pid \d+\)/)

        const api = (method: string, path: string, body?: unknown) =>
          Effect.promise(() => request(box.socket, method, path, body))
        const bearer = [{ type: "BEARER", fields: [{ field_name: "token", input_type: "password", required: true }] }]
        assert.strictEqual(
          (yield* api("POST", "/v1/connectors", {
            name: "rest",
            display_name: "REST",
            auth_patterns: bearer,
            proxy_url: `${up.origin}/v1`,
            proxy_enabled: true
          })).status,
          201
        )
        assert.strictEqual(
          (yield* api("POST", "/v1/connectors", {
            name: "tools",
            display_name: "Tools",
            kind: "mcp",
            proxy_url: mcp.url,
            auth_patterns: bearer
          })).status,
          201
        )
        for (const [connector, name] of [
          ["rest", "api"],
          ["tools", "mcp"]
        ] as const) {
          const made = yield* api("POST", `/v1/connectors/${connector}/connections`, {
            name,
            security: { token: CANARY },
            allow_private_network: true
          })
          assert.strictEqual(made.status, 201, made.text)
        }

        const got = yield* run("request", "api", "GET", "/users", "--query", "page=2", "--include")
        assert.strictEqual(got.code, 0, got.stderr)
        assert.match(got.stdout, /^HTTP 200\n/)
        assert.match(got.stdout, /\n\nupstream says ok$/)
        assert.strictEqual(up.seen.at(-1)?.url, "/v1/users?page=2")
        assert.deepStrictEqual(received(up.seen.at(-1), "authorization"), [`Bearer ${CANARY}`])

        const failed = yield* run("request", "api", "POST", "/status/502", "--data", '{"a":1}')
        assert.strictEqual(failed.code, 9)
        assert.strictEqual(failed.stdout, "upstream says ok")
        assert.strictEqual(up.seen.at(-1)?.bytes, 7)

        const called = yield* run("tools", "call", "mcp", "slow", "--args", '{"steps":2,"delay_ms":1}')
        assert.strictEqual(called.code, 0, called.stderr)
        assert.strictEqual(called.stdout.trim(), "done after 2 steps")
        assert.include(called.stderr, "progress 1/2 step 1\nprogress 2/2 step 2")

        // Ctrl-C after the first progress notification: the call is cancelled at the MCP server.
        const slow = start(["tools", "call", "mcp", "slow", "--args", '{"steps":200,"delay_ms":100}'])
        yield* Effect.promise(() => eventually(() => slow.stderr().includes("progress 1/200"), 30_000))
        slow.child.kill("SIGINT")
        const interrupted = yield* Effect.promise(() => slow.done)
        assert.strictEqual(interrupted.code, 130)
        yield* Effect.promise(() => eventually(() => mcp.state.cancelled.length > 0, 10_000))

        const stopped = yield* run("daemon", "stop")
        assert.strictEqual(stopped.code, 0, stopped.stderr)
        const log = Fs.readFileSync(Path.join(box.home, "daemon.log"), "utf8")
        for (const text of [...outputs, log]) assert.notInclude(text, CANARY)
      }),
    120_000
  )
})
