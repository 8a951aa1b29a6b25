/**
 * Port: MCP servers as upstreams — one pooled client session per connection, over streamable HTTP, legacy
 * SSE, or a local program on stdio.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type { UpstreamError } from "./Errors.ts"

/** How to reach one MCP server, with credentials already resolved. */
export type McpTarget =
  | {
      readonly _tag: "Http"
      readonly key: string
      readonly url: string
      readonly headers: Readonly<Record<string, Redacted.Redacted<string>>>
      readonly allowPrivateNetwork: boolean
    }
  | {
      readonly _tag: "Stdio"
      readonly key: string
      readonly program: string
      readonly args: ReadonlyArray<string>
      readonly env: Readonly<Record<string, Redacted.Redacted<string>>>
    }

/** A tool as the upstream describes it (JSON Schemas passed through verbatim). */
export interface McpTool {
  readonly name: string
  readonly title?: string | undefined
  readonly description?: string | undefined
  readonly inputSchema: Readonly<Record<string, unknown>>
  readonly outputSchema?: Readonly<Record<string, unknown>> | undefined
  readonly annotations?: Readonly<Record<string, unknown>> | undefined
}

/** A tool result; `isError` results are results, not failures. */
export interface McpToolResult {
  readonly content: ReadonlyArray<Readonly<Record<string, unknown>>>
  readonly structuredContent?: Readonly<Record<string, unknown>> | undefined
  readonly isError?: boolean | undefined
}

export interface CallOptions {
  readonly onProgress?:
    | ((progress: {
        readonly progress: number
        readonly total?: number | undefined
        readonly message?: string | undefined
      }) => void)
    | undefined
  readonly timeoutMillis?: number | undefined
}

export class McpUpstream extends Context.Service<
  McpUpstream,
  {
    readonly listTools: (target: McpTarget) => Effect.Effect<ReadonlyArray<McpTool>, UpstreamError>
    readonly callTool: (
      target: McpTarget,
      name: string,
      args: Readonly<Record<string, unknown>>,
      options?: CallOptions
    ) => Effect.Effect<McpToolResult, UpstreamError>
  }
>()("@switchboard/core/McpUpstream") {}
