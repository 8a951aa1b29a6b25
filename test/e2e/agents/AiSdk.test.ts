/**
 * `@switchboard/agents/ai-sdk` with the real `ai` 7 and its mock language model: a scripted model asks for tool
 * calls, `generateText` runs them through Switchboard against a loopback MCP server and a loopback REST upstream,
 * and the results come back into the next model call. Also: the MCP server's names and schemas, filters, upstream
 * errors as `tool-error`s, and an abort that cancels the call upstream.
 */
import { toolsFor } from "@switchboard/agents/ai-sdk"
import * as Principal from "@switchboard/core/Principal"
import { generateText, isStepCount, type ToolSet } from "ai"
import { MockLanguageModelV4 } from "ai/test"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { API_KEY, eventually, type Fixture, scriptedTurns, start } from "./support.ts"

let fx: Fixture
beforeAll(async () => {
  fx = await start()
}, 30_000)
afterAll(() => fx?.close())

/** A model that asks for `calls` first, then answers "done". */
const scripted = (calls: ReadonlyArray<{ readonly name: string; readonly input: unknown }>) =>
  new MockLanguageModelV4({
    doGenerate: scriptedTurns(calls)
  })

const schemaOf = (tools: ToolSet, name: string): unknown => {
  const schema = tools[name]?.inputSchema as { readonly jsonSchema?: unknown } | undefined
  return schema?.jsonSchema
}

describe("ai-sdk", () => {
  it("offers the MCP server's names and schemas", async () => {
    const tools = await toolsFor(fx.runtime)
    const listed = await fx.mcpServerTools()
    assert.deepStrictEqual(Object.keys(tools).sort(), listed.map((t) => t.name).sort())
    assert.includeMembers(Object.keys(tools), ["tools__echo", "tools__add", "tools__weather", "api__request"])
    for (const t of listed) assert.deepStrictEqual(schemaOf(tools, t.name), t.inputSchema, t.name)
  })

  it("filters by connection and by tool allow-list", async () => {
    assert.deepStrictEqual(Object.keys(await toolsFor(fx.runtime, { connections: ["api"] })), ["api__request"])
    assert.deepStrictEqual(Object.keys(await toolsFor(fx.runtime, { tools: ["tools__e*", "tools__add"] })).sort(), [
      "tools__add",
      "tools__echo"
    ])
  })

  it("lists as the given principal", async () => {
    // The connections are personal to the local user: someone in another org sees none of them.
    const stranger = { org: "elsewhere", workspace: "default", user: "mallory", role: "admin" } as const
    assert.deepStrictEqual(Object.keys(await toolsFor(fx.runtime, { principal: stranger })), [])
    assert.isNotEmpty(Object.keys(await toolsFor(fx.runtime, { principal: Principal.local("local") })))
  })

  it("runs the model's tool calls through Switchboard and feeds the results back", async () => {
    const model = scripted([
      { name: "tools__add", input: { a: 2, b: 3 } },
      { name: "tools__weather", input: { city: "Oslo" } },
      { name: "api__request", input: { path: "/items" } }
    ])
    const result = await generateText({
      model,
      tools: await toolsFor(fx.runtime),
      prompt: "add, weather, items",
      stopWhen: isStepCount(3)
    })
    assert.strictEqual(result.text, "done")
    const outputs = Object.fromEntries(result.steps[0]?.toolResults.map((r) => [r.toolName, r.output]) ?? [])
    assert.strictEqual(outputs.tools__add, "5")
    assert.deepStrictEqual(outputs.tools__weather, { city: "Oslo", temperature: 21 })
    const response = outputs.api__request as { status: number; body: unknown }
    assert.strictEqual(response.status, 200)
    assert.deepStrictEqual(response.body, {
      items: [
        { id: 1, name: "first" },
        { id: 2, name: "second" }
      ]
    })
    assert.strictEqual(fx.rest.seen.at(-1)?.key, API_KEY)
    // The second model call saw the three results.
    const prompt = JSON.stringify(model.doGenerateCalls[1]?.prompt)
    assert.include(prompt, "Oslo")
    assert.include(prompt, "second")
  })

  it("turns upstream errors into tool errors the model sees", async () => {
    const model = scripted([
      { name: "tools__fail", input: {} },
      { name: "api__request", input: { path: "/missing" } }
    ])
    const result = await generateText({
      model,
      tools: await toolsFor(fx.runtime),
      prompt: "x",
      stopWhen: isStepCount(3)
    })
    const errors = result.steps[0]?.content.filter((p) => p.type === "tool-error") ?? []
    assert.strictEqual(errors.length, 2)
    const byName = Object.fromEntries(errors.map((e) => [e.toolName, (e.error as Error).message]))
    assert.include(byName.tools__fail, "the tool failed on purpose")
    assert.include(byName.api__request, "404")
    assert.include(JSON.stringify(model.doGenerateCalls[1]?.prompt), "the tool failed on purpose")
  })

  it("an abort cancels the call upstream", async () => {
    const tools = await toolsFor(fx.runtime, { tools: ["tools__slow"] })
    const execute = tools.tools__slow?.execute
    assert.isDefined(execute)
    const controller = new AbortController()
    const before = fx.mcp.state.cancelled.length
    const calls = fx.mcp.state.calls.length
    const pending = Promise.resolve(
      execute?.(
        { steps: 100, delay_ms: 100 },
        { toolCallId: "slow-1", messages: [], abortSignal: controller.signal, context: {} }
      )
    )
    await eventually(() => fx.mcp.state.calls.length > calls)
    controller.abort()
    const outcome = await pending.then(
      () => "resolved",
      () => "rejected"
    )
    assert.strictEqual(outcome, "rejected")
    await eventually(() => fx.mcp.state.cancelled.length > before)
  })
})
