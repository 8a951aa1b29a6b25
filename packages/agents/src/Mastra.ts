/**
 * Switchboard's tools as Mastra (`@mastra/core` 1.x) tools made with `createTool`, keyed by the MCP server's names
 * (also each tool's `id`), with its JSON Schemas. The output is the structured content when present, else the text
 * parts joined; an `isError` result is thrown as a `SwitchboardToolError`, which Mastra reports to the model as the
 * tool's error. The execution context's `abortSignal` cancels the call upstream.
 *
 * ```ts
 * const agent = new Agent({ name: "ops", instructions: "…", model, tools: await toolsFor(runtime) })
 * ```
 */
import { createTool } from "@mastra/core/tools"
import { type AgentTool, check, listTools, type Options, type Source, valueOf } from "./Agents.ts"

export { type Options, type Source, SwitchboardToolError } from "./Agents.ts"

type JsonSchema = Parameters<typeof createTool>[0]["inputSchema"]

const toTool = (t: AgentTool) =>
  createTool({
    id: t.name,
    description: t.description,
    inputSchema: t.inputSchema as JsonSchema,
    execute: async (input: unknown, context) => valueOf(check(t.name, await t.call(input, context?.abortSignal)))
  })

/** A Mastra tool. */
export type MastraTool = ReturnType<typeof toTool>

/** Every tool on offer, as Mastra tools keyed (and identified) by the MCP server's names. */
export const toolsFor = async <E>(source: Source<E>, options: Options = {}): Promise<Record<string, MastraTool>> => {
  const tools: Record<string, MastraTool> = {}
  for (const t of await listTools(source, options)) tools[t.name] = toTool(t)
  return tools
}
