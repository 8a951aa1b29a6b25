/**
 * Switchboard's tools as OpenAI Agents SDK (`@openai/agents`) function tools made with its `tool()`: the MCP
 * server's names and JSON Schemas, `strict: true` only when a schema meets the strict-mode rules (every object
 * closed, every property required, no unsupported keywords), `strict: false` otherwise. The output is the
 * structured content as JSON when present, else the text parts joined. An `isError` result (or a call Switchboard
 * could not make) goes through the SDK's `errorFunction`, so the model reads the error's message. The run's
 * `signal` cancels the call upstream.
 *
 * ```ts
 * const agent = new Agent({ name: "ops", instructions: "…", tools: await toolsFor(runtime) })
 * const result = await run(agent, "…")
 * ```
 */
import { type FunctionTool, tool } from "@openai/agents"
import * as Toolset from "@switchboard/core/Toolset"
import { type AgentTool, check, listTools, type Options, type Source, SwitchboardToolError } from "./Agents.ts"

export { type Options, type Source, SwitchboardToolError } from "./Agents.ts"

const strictKeywords: ReadonlySet<string> = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "enum",
  "const",
  "anyOf",
  "description",
  "title",
  "$defs",
  "definitions",
  "$ref"
])

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Whether a JSON Schema can be used in OpenAI's strict mode as it is. */
export const isStrictCompatible = (schema: unknown, root = true): boolean => {
  if (!isRecord(schema)) return false
  if (root && schema.type !== "object") return false
  if (Object.keys(schema).some((key) => !strictKeywords.has(key))) return false
  if (schema.type === "object" || schema.properties !== undefined) {
    if (schema.additionalProperties !== false) return false
    const properties = isRecord(schema.properties) ? schema.properties : {}
    const required = new Set(Array.isArray(schema.required) ? schema.required : [])
    if (Object.keys(properties).some((key) => !required.has(key))) return false
    if (!Object.values(properties).every((p) => isStrictCompatible(p, false))) return false
  }
  if (schema.items !== undefined && !isStrictCompatible(schema.items, false)) return false
  if (schema.anyOf !== undefined) {
    if (!Array.isArray(schema.anyOf) || !schema.anyOf.every((s) => isStrictCompatible(s, false))) return false
  }
  for (const defs of [schema.$defs, schema.definitions]) {
    if (defs !== undefined && (!isRecord(defs) || !Object.values(defs).every((s) => isStrictCompatible(s, false)))) {
      return false
    }
  }
  return true
}

const output = (result: Toolset.CallResult): string =>
  result.structuredContent === undefined ? Toolset.textOf(result) : JSON.stringify(result.structuredContent)

const errorFunction = (_context: unknown, error: unknown): string =>
  error instanceof SwitchboardToolError
    ? error.message
    : "An error occurred while running the tool. Please try again. Error: internal_error"

const toTool = (t: AgentTool): FunctionTool => {
  const common = {
    name: t.name,
    description: t.description,
    execute: async (input: unknown, _context?: unknown, details?: { readonly signal?: AbortSignal | undefined }) =>
      output(check(t.name, await t.call(input, details?.signal))),
    errorFunction
  }
  // The schema is the upstream's, passed through verbatim; the SDK's types describe only the two shapes it
  // builds itself.
  return isStrictCompatible(t.inputSchema)
    ? (tool({ ...common, parameters: t.inputSchema as never, strict: true }) as FunctionTool)
    : (tool({ ...common, parameters: t.inputSchema as never, strict: false }) as FunctionTool)
}

/** Every tool on offer, as OpenAI Agents function tools named as the MCP server names them. */
export const toolsFor = async <E>(source: Source<E>, options: Options = {}): Promise<Array<FunctionTool>> =>
  (await listTools(source, options)).map(toTool)
