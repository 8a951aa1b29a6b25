/**
 * Switchboard's tools as a Vercel AI SDK (`ai` 7) `ToolSet`, built with the SDK's own `tool()` and `jsonSchema()`:
 * the MCP server's names and JSON Schemas; a result's structured content (else its text) as the tool's output; an
 * `isError` result thrown, which the SDK turns into a `tool-error` the model sees; the call's `abortSignal`
 * cancelling the call upstream.
 *
 * ```ts
 * const tools = await toolsFor(runtime)
 * const { text } = await generateText({ model, tools, prompt: "…", stopWhen: stepCountIs(5) })
 * ```
 */
import { jsonSchema, type JSONSchema7, type ToolSet, tool } from "ai"
import { type AgentTool, check, listTools, type Options, type Source, valueOf } from "./Agents.ts"

export { type Options, type Source, SwitchboardToolError } from "./Agents.ts"

const toTool = (t: AgentTool) =>
  tool({
    description: t.description,
    inputSchema: jsonSchema<Record<string, unknown>>(t.inputSchema as JSONSchema7),
    ...(t.outputSchema === undefined ? {} : { outputSchema: jsonSchema<unknown>(t.outputSchema as JSONSchema7) }),
    execute: async (input: Record<string, unknown>, { abortSignal }) =>
      valueOf(check(t.name, await t.call(input, abortSignal)))
  })

/** Every tool on offer, as an AI SDK `ToolSet` keyed by the MCP server's names. */
export const toolsFor = async <E>(source: Source<E>, options: Options = {}): Promise<ToolSet> => {
  const tools: ToolSet = {}
  for (const t of await listTools(source, options)) tools[t.name] = toTool(t)
  return tools
}
