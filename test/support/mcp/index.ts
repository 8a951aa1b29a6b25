/**
 * Reusable MCP servers for tests: streamable HTTP and legacy SSE servers on 127.0.0.1, a stdio test program
 * and `@modelcontextprotocol/server-everything`.
 */
export * as HttpServers from "./HttpServers.ts"
export * as Programs from "./Programs.ts"
export * as ToolServer from "./ToolServer.ts"
