/**
 * Switchboard's tools as LangChain.js (`@langchain/core` 1.x) `DynamicStructuredTool`s with the MCP server's
 * names and JSON Schemas. The response format is `content_and_artifact`: the text parts joined are the content
 * the model reads, the structured content (when present) the artifact. An `isError` result becomes a
 * `ToolMessage` with `status: "error"` when the tool is invoked with a tool call (as agents and `ToolNode` do),
 * and a thrown `SwitchboardToolError` otherwise. The run's `signal` cancels the call upstream.
 *
 * ```ts
 * const tools = await toolsFor(runtime)
 * const agent = createAgent({ model, tools })
 * ```
 */
import { ToolMessage } from "@langchain/core/messages"
import { DynamicStructuredTool, type ToolRunnableConfig } from "@langchain/core/tools"
import * as Toolset from "@switchboard/core/Toolset"
import { type AgentTool, listTools, type Options, type Source, SwitchboardToolError } from "./Agents.ts"

export { type Options, type Source, SwitchboardToolError } from "./Agents.ts"

const toTool = (t: AgentTool) =>
  new DynamicStructuredTool({
    name: t.name,
    description: t.description,
    schema: t.inputSchema,
    responseFormat: "content_and_artifact",
    func: async (input: unknown, _runManager, config) => {
      const result = await t.call(input, config?.signal)
      const content = Toolset.textOf(result)
      if (result.isError === true) {
        const id = (config as ToolRunnableConfig | undefined)?.toolCall?.id
        if (id === undefined) throw new SwitchboardToolError(t.name, result)
        return [new ToolMessage({ content, tool_call_id: id, name: t.name, status: "error" }), undefined]
      }
      return [content, result.structuredContent]
    }
  })

/** Every tool on offer, as LangChain structured tools named as the MCP server names them. */
export const toolsFor = async <E>(source: Source<E>, options: Options = {}): Promise<Array<DynamicStructuredTool>> =>
  (await listTools(source, options)).map(toTool)
