/**
 * `@switchboard/agents/mastra` with the real `@mastra/core`: a Mastra `Agent` on a scripted AI SDK mock model
 * (`MockLanguageModelV3` from `ai/test`, the spec Mastra runs) asks for tool calls, Mastra executes the
 * `createTool` tools through Switchboard against a loopback MCP server and a loopback REST upstream, and the results
 * go into the next model call. Also: the MCP server's names and schemas, upstream errors, and an abort through the
 * execution context's `abortSignal` that cancels the call upstream.
 */
import { Agent } from "@mastra/core/agent"
import { type MastraTool, SwitchboardToolError, toolsFor } from "@switchboard/agents/mastra"
import { MockLanguageModelV3 } from "ai/test"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { API_KEY, eventually, type Fixture, scriptedTurns, start } from "./support.ts"

/** How Mastra keeps a JSON Schema: a Standard Schema that gives it back. */
interface StandardJson {
  readonly "~standard": { readonly jsonSchema: { readonly input: (options: { readonly target: string }) => unknown } }
}

/** The execution context Mastra gives `execute` (its observability part is not needed here). */
const context = (fields: { readonly abortSignal?: AbortSignal } = {}) =>
  fields as Parameters<NonNullable<MastraTool["execute"]>>[1]

let fx: Fixture
beforeAll(async () => {
  fx = await start()
}, 30_000)
afterAll(() => fx?.close())

/** A model that asks for `calls` first, then answers "done"; it keeps every call's options. */
const scripted = (calls: ReadonlyArray<{ readonly name: string; readonly input: unknown }>) =>
  new MockLanguageModelV3({
    doGenerate: scriptedTurns(calls)
  })

describe("mastra", () => {
  it("offers the MCP server's names (as keys and ids) and schemas", async () => {
    const tools = await toolsFor(fx.runtime)
    const listed = await fx.mcpServerTools()
    assert.deepStrictEqual(Object.keys(tools).sort(), listed.map((t) => t.name).sort())
    for (const t of listed) {
      assert.strictEqual(tools[t.name]?.id, t.name)
      const schema = tools[t.name]?.inputSchema as unknown as StandardJson | undefined
      // Mastra keeps the schema as it is given and only stamps the draft it was asked for.
      const stamped = schema?.["~standard"].jsonSchema.input({ target: "draft-07" }) as
        | Record<string, unknown>
        | undefined
      const { $schema: _, ...given } = stamped ?? {}
      assert.deepStrictEqual(given, t.inputSchema, t.name)
    }
  })

  it("an Agent runs the model's tool calls through Switchboard and feeds the results back", async () => {
    const model = scripted([
      { name: "tools__add", input: { a: 1, b: 2 } },
      { name: "tools__weather", input: { city: "Kyiv" } },
      { name: "api__request", input: { path: "/items" } }
    ])
    const agentTools = await toolsFor(fx.runtime)
    const agent = new Agent({
      id: "ops",
      name: "ops",
      instructions: "use the tools",
      // ai 7's mock implements the same V3 spec Mastra runs; the two packages carry their own copies of its types.
      model: model as unknown as ConstructorParameters<typeof Agent>[0]["model"],
      tools: agentTools
    })
    const result = await agent.generate("go", { maxSteps: 3 })
    assert.strictEqual(result.text, "done")
    assert.deepStrictEqual(model.doGenerateCalls[0]?.tools?.map((t) => t.name).sort(), Object.keys(agentTools).sort())
    const outputs = Object.fromEntries(result.toolResults.map((r) => [r.payload.toolName, r.payload.result]))
    assert.strictEqual(outputs.tools__add, "3")
    assert.deepStrictEqual(outputs.tools__weather, { city: "Kyiv", temperature: 21 })
    assert.strictEqual((outputs.api__request as { status: number }).status, 200)
    assert.strictEqual(fx.rest.seen.at(-1)?.key, API_KEY)
    const prompt = JSON.stringify(model.doGenerateCalls[1]?.prompt)
    assert.include(prompt, "Kyiv")
    assert.include(prompt, "second")
  })

  it("upstream errors are thrown as SwitchboardToolError from execute", async () => {
    const tools = await toolsFor(fx.runtime)
    const failed = await tools.tools__fail?.execute?.({}, context()).then(
      () => undefined,
      (e: unknown) => e
    )
    assert.instanceOf(failed, SwitchboardToolError)
    assert.include((failed as Error).message, "the tool failed on purpose")
    const missing = await tools.api__request?.execute?.({ path: "/missing" }, context()).then(
      () => undefined,
      (e: unknown) => e
    )
    assert.instanceOf(missing, SwitchboardToolError)
    assert.include((missing as Error).message, "404")
  })

  it("an abort cancels the call upstream", async () => {
    const tools = await toolsFor(fx.runtime, { tools: ["tools__slow"] })
    const controller = new AbortController()
    const before = fx.mcp.state.cancelled.length
    const calls = fx.mcp.state.calls.length
    const pending = tools.tools__slow?.execute?.(
      { steps: 100, delay_ms: 100 },
      context({ abortSignal: controller.signal })
    )
    await eventually(() => fx.mcp.state.calls.length > calls)
    controller.abort()
    const outcome = await pending?.then(
      () => "resolved",
      () => "rejected"
    )
    assert.strictEqual(outcome, "rejected")
    await eventually(() => fx.mcp.state.cancelled.length > before)
  })
})
