/**
 * Port: MCP servers as upstreams — one pooled client session per connection, over streamable HTTP, legacy
 * SSE, or a local program on stdio.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Stream from "effect/Stream"
import type { UpstreamError, ValidationFailed } from "./Errors.ts"

/**
 * How to reach one MCP server, with credentials already resolved. `key` names the connection the target
 * belongs to; the adapter pools sessions by it together with a digest of the credential-bearing fields, so
 * rotated credentials get a new session.
 */
export type McpTarget =
  | {
      readonly _tag: "Http"
      readonly key: string
      /** The server URL; never holds a secret (auth query parameters go in `query`). */
      readonly url: string
      readonly headers: Readonly<Record<string, Redacted.Redacted<string>>>
      /** Query parameters that carry secrets (API keys in the query), added when a request is sent. */
      readonly query?: Readonly<Record<string, Redacted.Redacted<string>>> | undefined
      readonly allowPrivateNetwork: boolean
      /** Further values to keep out of every message (secret credential fields, e.g. one in the URL path). */
      readonly secrets?: ReadonlyArray<Redacted.Redacted<string>> | undefined
    }
  | {
      readonly _tag: "Stdio"
      readonly key: string
      readonly program: string
      readonly args: ReadonlyArray<string>
      readonly env: Readonly<Record<string, Redacted.Redacted<string>>>
      /** Further values to keep out of every message (secret credential fields). */
      readonly secrets?: ReadonlyArray<Redacted.Redacted<string>> | undefined
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

export interface Progress {
  readonly progress: number
  readonly total?: number | undefined
  readonly message?: string | undefined
}

export interface CallOptions {
  /** Called for each progress notification of the call (a progress token is sent only when this is given). */
  readonly onProgress?: ((progress: Progress) => void) | undefined
  /** Time without an answer (or, by default, without progress) before the call fails; 60 s by default. */
  readonly timeoutMillis?: number | undefined
  /** Whether a progress notification restarts `timeoutMillis`; true by default. */
  readonly resetTimeoutOnProgress?: boolean | undefined
  /** A limit on the whole call that progress does not extend; none by default. */
  readonly maxTotalTimeoutMillis?: number | undefined
}

export class McpUpstream extends Context.Service<
  McpUpstream,
  {
    /** Every tool of the server (all pages), cached per session until the server says the list changed. */
    readonly listTools: (target: McpTarget) => Effect.Effect<ReadonlyArray<McpTool>, UpstreamError>
    /**
     * Call a tool. Arguments are checked against the tool's input schema before anything is sent
     * (`ValidationFailed` naming each path); interrupting the effect cancels the call upstream.
     */
    readonly callTool: (
      target: McpTarget,
      name: string,
      args: Readonly<Record<string, unknown>>,
      options?: CallOptions
    ) => Effect.Effect<McpToolResult, UpstreamError | ValidationFailed>
    /** The `key` of every target whose server announced `notifications/tools/list_changed`. */
    readonly toolsChanged: Stream.Stream<string>
  }
>()("@switchboard/core/McpUpstream") {}
