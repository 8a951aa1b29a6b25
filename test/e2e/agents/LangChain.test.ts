/**
 * `@switchboard/agents/langchain` with the real `@langchain/core` 1.x: its fake tool-calling chat model (tools
 * bound with `bindTools`) asks for tool calls, each goes through LangChain's tool execution (`tool.invoke(toolCall)`)
 * and Switchboard to a loopback MCP server and a loopback REST upstream, and the `ToolMessage`s go back into the
 * conversation for the next model call. Also: the MCP server's names and schemas, upstream errors as error
 * `ToolMessage`s, and an abort that cancels the call upstream.
 */
import { AIMessageChunk, type BaseMessage, HumanMessage, ToolMessage } from "@langchain/core/messages"
import { FakeListChatModel, FakeStreamingChatModel } from "@langchain/core/utils/testing"
import { SwitchboardToolError, toolsFor } from "@switchboard/agents/langchain"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { API_KEY, eventually, type Fixture, start } from "./support.ts"

let fx: Fixture
beforeAll(async () => {
  fx = await start()
}, 30_000)
afterAll(() => fx?.close())

/** One agent turn: the model's tool calls, executed by LangChain's tool API, answered by a second model call. */
const turn = async (calls: ReadonlyArray<{ readonly name: string; readonly args: Record<string, unknown> }>) => {
  const tools = await toolsFor(fx.runtime)
  const byName = new Map(tools.map((t) => [t.name, t] as const))
  const model = new FakeStreamingChatModel({
    chunks: [
      new AIMessageChunk({
        content: "",
        tool_calls: calls.map((c, i) => ({ id: `call-${i}`, name: c.name, args: c.args, type: "tool_call" as const }))
      })
    ]
  }).bindTools(tools)
  const messages: Array<BaseMessage> = [new HumanMessage("go")]
  const ai = await model.invoke(messages)
  messages.push(ai)
  for (const call of ai.tool_calls ?? []) {
    const tool = byName.get(call.name)
    assert.isDefined(tool, call.name)
    // oxlint-disable-next-line no-await-in-loop -- one call after the other, as a simple agent loop does
    const message = (await tool?.invoke({ ...call, type: "tool_call" })) as ToolMessage
    messages.push(message)
  }
  const final = new FakeListChatModel({ responses: ["done"] })
  const answer = await final.invoke(messages)
  messages.push(answer)
  return messages
}

describe("langchain", () => {
  it("offers the MCP server's names and schemas", async () => {
    const tools = await toolsFor(fx.runtime)
    const listed = await fx.mcpServerTools()
    assert.deepStrictEqual(tools.map((t) => t.name).sort(), listed.map((t) => t.name).sort())
    for (const t of listed) {
      assert.deepStrictEqual(tools.find((x) => x.name === t.name)?.schema, t.inputSchema, t.name)
    }
  })

  it("runs the model's tool calls through Switchboard and feeds the results back", async () => {
    const messages = await turn([
      { name: "tools__echo", args: { text: "hello" } },
      { name: "tools__weather", args: { city: "Lima" } },
      { name: "api__request", args: { path: "/items", query: { limit: 2 } } }
    ])
    const results = messages.filter((m): m is ToolMessage => ToolMessage.isInstance(m))
    assert.strictEqual(results.length, 3)
    assert.deepStrictEqual(
      results.map((m) => m.status),
      ["success", "success", "success"]
    )
    assert.strictEqual(results[0]?.content, "hello")
    assert.strictEqual(results[1]?.content, "sunny in Lima")
    assert.deepStrictEqual(results[1]?.artifact, { city: "Lima", temperature: 21 })
    assert.strictEqual((results[2]?.artifact as { status: number } | undefined)?.status, 200)
    assert.include(results[2]?.text ?? "", "second")
    assert.strictEqual(fx.rest.seen.at(-1)?.url, "/api/items?limit=2")
    assert.strictEqual(fx.rest.seen.at(-1)?.key, API_KEY)
    assert.strictEqual(messages.at(-1)?.content, "done")
  })

  it("turns upstream errors into error ToolMessages, or throws when invoked without a tool call", async () => {
    const messages = await turn([
      { name: "tools__fail", args: {} },
      { name: "api__request", args: { path: "/missing" } }
    ])
    const results = messages.filter((m): m is ToolMessage => ToolMessage.isInstance(m))
    assert.deepStrictEqual(
      results.map((m) => m.status),
      ["error", "error"]
    )
    assert.include(results[0]?.text ?? "", "the tool failed on purpose")
    assert.include(results[1]?.text ?? "", "404")

    const fail = (await toolsFor(fx.runtime, { tools: ["tools__fail"] }))[0]
    const thrown = await fail?.invoke({}).then(
      () => undefined,
      (e: unknown) => e
    )
    assert.instanceOf(thrown, SwitchboardToolError)
  })

  it("an abort cancels the call upstream", async () => {
    const [slow] = await toolsFor(fx.runtime, { tools: ["tools__slow"] })
    const controller = new AbortController()
    const before = fx.mcp.state.cancelled.length
    const calls = fx.mcp.state.calls.length
    const pending = slow?.invoke({ steps: 100, delay_ms: 100 }, { signal: controller.signal })
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
