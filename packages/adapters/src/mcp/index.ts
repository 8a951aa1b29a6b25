/**
 * MCP adapter: the `McpUpstream` port on the MCP SDK client — streamable HTTP with a legacy SSE fallback, and
 * local programs on stdio.
 */
export * as McpUpstream from "./McpUpstream.ts"
export { layer, make } from "./McpUpstream.ts"
