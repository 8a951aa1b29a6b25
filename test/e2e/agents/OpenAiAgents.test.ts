/**
 * `@switchboard/agents/openai-agents` with the real `@openai/agents`: `run()` drives an `Agent` whose model is a
 * scripted implementation of the SDK's `Model` interface (no network, no key). The model asks for function calls,
 * the runner executes them through Switchboard against a loopback MCP server and a loopback REST upstream, and the
 * outputs come back in the next model request. Also: the MCP server's names and schemas, strict mode only for
 * strict-compatible schemas, upstream errors through the SDK's error function, and an abort that cancels upstream.
 */
import {
  Agent,
  type AgentInputItem,
  type Model,
  type ModelRequest,
  type ModelResponse,
  RunContext,
  run,
  setTracingDisabled,
  Usage
} from "@openai/agents"
import { isStrictCompatible, toolsFor } from "@switchboard/agents/openai-agents"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { API_KEY, eventually, type Fixture, start } from "./support.ts"

let fx: Fixture
beforeAll(async () => {
  setTracingDisabled(true)
  fx = await start()
}, 30_000)
afterAll(() => fx?.close())

/** A model that asks for `calls` first and answers "done" once it has their outputs; it keeps every request. */
class ScriptedModel implements Model {
  readonly requests: Array<ModelRequest> = []
  readonly calls: ReadonlyArray<{ readonly name: string; readonly args: unknown }>
  constructor(calls: ReadonlyArray<{ readonly name: string; readonly args: unknown }>) {
    this.calls = calls
  }
  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    this.requests.push(request)
    const output: Array<AgentInputItem> =
      this.requests.length === 1
        ? this.calls.map((c, i) => ({
            type: "function_call",
            callId: `call-${i}`,
            name: c.name,
            arguments: JSON.stringify(c.args),
            status: "completed"
          }))
        : [
            {
              type: "message",
              role: "assistant",
              status: "completed",
              content: [{ type: "output_text", text: "done" }]
            }
          ]
    return { usage: new Usage(), output }
  }
  // oxlint-disable-next-line require-yield -- this model never streams
  async *getStreamedResponse(): AsyncIterable<never> {
    throw new Error("not streamed")
  }
}

/** The function-call outputs the model was given in its second request, by call id. */
const outputsOf = (model: ScriptedModel): Record<string, string> => {
  const input = model.requests[1]?.input
  const items = Array.isArray(input) ? input : []
  const out: Record<string, string> = {}
  for (const item of items) {
    if (item.type !== "function_call_result") continue
    const output = item.output as string | { readonly type: string; readonly text?: string }
    out[item.callId] = typeof output === "string" ? output : (output.text ?? JSON.stringify(output))
  }
  return out
}

describe("openai-agents", () => {
  it("offers the MCP server's names and schemas, strict only where the schema allows it", async () => {
    const tools = await toolsFor(fx.runtime)
    const listed = await fx.mcpServerTools()
    assert.deepStrictEqual(tools.map((t) => t.name).sort(), listed.map((t) => t.name).sort())
    for (const t of listed) {
      const tool = tools.find((x) => x.name === t.name)
      assert.strictEqual(tool?.strict, isStrictCompatible(t.inputSchema), t.name)
      if (tool?.strict === false) assert.deepStrictEqual(tool.parameters, t.inputSchema, t.name)
    }
    // `add` is closed with every property required; `echo` leaves additionalProperties open.
    assert.isTrue(tools.find((t) => t.name === "tools__add")?.strict)
    assert.isFalse(tools.find((t) => t.name === "tools__echo")?.strict)
    assert.isFalse(tools.find((t) => t.name === "api__request")?.strict)
  })

  it("run() executes the model's function calls through Switchboard and returns the outputs", async () => {
    const model = new ScriptedModel([
      { name: "tools__add", args: { a: 20, b: 22 } },
      { name: "tools__weather", args: { city: "Rome" } },
      { name: "api__request", args: { path: "/items" } }
    ])
    const agent = new Agent({ name: "ops", instructions: "use the tools", model, tools: await toolsFor(fx.runtime) })
    const result = await run(agent, "go")
    assert.strictEqual(result.finalOutput, "done")
    const outputs = outputsOf(model)
    assert.strictEqual(outputs["call-0"], "42")
    assert.deepStrictEqual(JSON.parse(outputs["call-1"] ?? "null"), { city: "Rome", temperature: 21 })
    const response = JSON.parse(outputs["call-2"] ?? "null") as { status: number; body: unknown }
    assert.strictEqual(response.status, 200)
    assert.deepStrictEqual(response.body, {
      items: [
        { id: 1, name: "first" },
        { id: 2, name: "second" }
      ]
    })
    assert.strictEqual(fx.rest.seen.at(-1)?.key, API_KEY)
  })

  it("upstream errors reach the model through the error function", async () => {
    const model = new ScriptedModel([
      { name: "tools__fail", args: {} },
      { name: "api__request", args: { path: "/missing" } }
    ])
    const agent = new Agent({ name: "ops", instructions: "x", model, tools: await toolsFor(fx.runtime) })
    const result = await run(agent, "go")
    assert.strictEqual(result.finalOutput, "done")
    const outputs = outputsOf(model)
    assert.include(outputs["call-0"], "the tool failed on purpose")
    assert.include(outputs["call-1"], "404")
  })

  it("an abort cancels the call upstream", async () => {
    const [slow] = await toolsFor(fx.runtime, { tools: ["tools__slow"] })
    const controller = new AbortController()
    const before = fx.mcp.state.cancelled.length
    const calls = fx.mcp.state.calls.length
    const pending = slow?.invoke(new RunContext(), JSON.stringify({ steps: 100, delay_ms: 100 }), {
      signal: controller.signal
    })
    await eventually(() => fx.mcp.state.calls.length > calls)
    controller.abort()
    await pending?.catch(() => undefined)
    await eventually(() => fx.mcp.state.cancelled.length > before)
    assert.strictEqual(fx.mcp.state.cancelled.length, before + 1)
  })
})
