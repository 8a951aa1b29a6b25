/**
 * The integrations through a running daemon: `Daemon.run` in this process (memory store, its Unix socket), the
 * tools taken from a Layer of the daemon client (`Client.layerRemote` + `Client.layerRemoteCalls`), and an AI SDK
 * agent loop whose calls travel client → daemon → loopback MCP server / REST upstream. The names are the ones the
 * embedded MCP server gives the same data; an abort cancels the call at the MCP server.
 */
import { toolsFor } from "@switchboard/agents/ai-sdk"
import { Daemon } from "@switchboard/daemon"
import * as Client from "@switchboard/daemon/client"
import { generateText, isStepCount } from "ai"
import { MockLanguageModelV4 } from "ai/test"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schedule from "effect/Schedule"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { HttpServers } from "../../support/mcp/index.ts"
import type { HttpMcpServer } from "../../support/mcp/HttpServers.ts"
import { API_KEY, eventually, type RestUpstream, seed, startRest } from "./support.ts"

const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sba-"))
const socket = Path.join(home, "run", "sb.sock")
let daemon: Fiber.Fiber<unknown, unknown>
let mcp: HttpMcpServer
let rest: RestUpstream
let remote: ReturnType<typeof layers>
let admin: ManagedRuntime.ManagedRuntime<Layer.Success<ReturnType<typeof layers>>, never>

const layers = () => Layer.mergeAll(Client.layerRemote(socket), Client.layerRemoteCalls(socket))

beforeAll(async () => {
  daemon = Effect.runFork(
    Daemon.run({ home, store: "memory", env: { SWITCHBOARD_SOCKET: socket }, logRequests: false }).pipe(
      Effect.provide(Logger.layer([]))
    )
  )
  await Effect.runPromise(
    Client.health(socket).pipe(Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 }))
  )
  mcp = await HttpServers.startStreamable()
  rest = await startRest()
  remote = layers()
  admin = ManagedRuntime.make(layers())
  await seed(admin, mcp, rest)
}, 30_000)

afterAll(async () => {
  await admin?.dispose()
  await Effect.runPromise(Fiber.interrupt(daemon))
  await Promise.all([mcp?.stop().catch(() => {}), rest?.stop()])
  Fs.rmSync(home, { recursive: true, force: true })
})

const usage = {
  inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 1, text: 1, reasoning: undefined }
}

describe("through the daemon", () => {
  it("an agent loop calls MCP and REST tools via the daemon client", async () => {
    const tools = await toolsFor(remote)
    assert.includeMembers(Object.keys(tools), ["tools__echo", "tools__add", "api__request"])
    const model = new MockLanguageModelV4({
      doGenerate: [
        {
          content: [
            { type: "tool-call", toolCallId: "a", toolName: "tools__add", input: JSON.stringify({ a: 4, b: 5 }) },
            { type: "tool-call", toolCallId: "b", toolName: "api__request", input: JSON.stringify({ path: "/items" }) }
          ],
          finishReason: { unified: "tool-calls", raw: undefined },
          usage,
          warnings: []
        },
        {
          content: [{ type: "text", text: "done" }],
          finishReason: { unified: "stop", raw: undefined },
          usage,
          warnings: []
        }
      ]
    })
    const result = await generateText({ model, tools, prompt: "go", stopWhen: isStepCount(3) })
    assert.strictEqual(result.text, "done")
    const outputs = Object.fromEntries(result.steps[0]?.toolResults.map((r) => [r.toolName, r.output]) ?? [])
    assert.strictEqual(outputs.tools__add, "9")
    assert.strictEqual((outputs.api__request as { status: number } | undefined)?.status, 200)
    assert.strictEqual(rest.seen.at(-1)?.key, API_KEY)
  })

  it("an abort cancels the call at the MCP server", async () => {
    const tools = await toolsFor(remote, { tools: ["tools__slow"] })
    const controller = new AbortController()
    const before = mcp.state.cancelled.length
    const calls = mcp.state.calls.length
    const pending = Promise.resolve(
      tools.tools__slow?.execute?.(
        { steps: 100, delay_ms: 100 },
        { toolCallId: "slow", messages: [], abortSignal: controller.signal, context: {} }
      )
    )
    await eventually(() => mcp.state.calls.length > calls)
    controller.abort()
    const outcome = await pending.then(
      () => "resolved",
      () => "rejected"
    )
    assert.strictEqual(outcome, "rejected")
    await eventually(() => mcp.state.cancelled.length > before)
  })
})
