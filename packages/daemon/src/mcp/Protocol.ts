/**
 * The MCP shapes the gateway deals in, as plain JSON (the low-level SDK `Server` passes them through as they
 * are), and how failures become tool results: an `isError` result with the error's code and its message,
 * which Switchboard errors keep free of secrets. Nothing here talks to the SDK.
 */
import * as Schema from "effect/Schema"
import { SwitchboardError } from "@switchboard/core/Errors"

/** A tool as `tools/list` returns it; upstream schemas and annotations go through verbatim. */
export interface ToolDefinition {
  readonly name: string
  readonly title?: string | undefined
  readonly description?: string | undefined
  readonly inputSchema: Readonly<Record<string, unknown>>
  readonly outputSchema?: Readonly<Record<string, unknown>> | undefined
  readonly annotations?: Readonly<Record<string, unknown>> | undefined
}

/** A `tools/call` result. */
export interface CallResult {
  readonly content: ReadonlyArray<Readonly<Record<string, unknown>>>
  readonly structuredContent?: Readonly<Record<string, unknown>> | undefined
  readonly isError?: boolean | undefined
}

/** A progress report of a running call, passed on as `notifications/progress`. */
export interface Progress {
  readonly progress: number
  readonly total?: number | undefined
  readonly message?: string | undefined
}

export interface CallOptions {
  /** Set when the client asked for progress (it sent a progress token). */
  readonly onProgress?: ((progress: Progress) => void) | undefined
}

export const text = (value: string, isError = false): CallResult => ({
  content: [{ type: "text", text: value }],
  ...(isError ? { isError: true } : {})
})

/** A JSON result: the value as structured content, and its JSON text for clients that read only text. */
export const json = (value: Readonly<Record<string, unknown>>, isError = false): CallResult => ({
  content: [{ type: "text", text: JSON.stringify(value, null, 2) }],
  structuredContent: value,
  ...(isError ? { isError: true } : {})
})

const isSwitchboardError = Schema.is(SwitchboardError)

/** The error code and message of a typed failure; anything else is an internal error with no details. */
export const describeError = (error: unknown): { readonly code: string; readonly message: string } =>
  isSwitchboardError(error)
    ? { code: error.code, message: error.message }
    : { code: "internal_error", message: "an unexpected error; see the server's log (stderr)" }

/** A failure as a tool result the agent can read: `<message> (<code>)`. */
export const errorResult = (error: unknown): CallResult => {
  const { code, message } = describeError(error)
  return text(`${message} (${code})`, true)
}

/** An unexpected failure (a defect) as a tool result; the cause itself goes only to the log. */
export const defectResult: CallResult = text(
  "internal error: the call failed unexpectedly; see the Switchboard MCP server's log (stderr) (internal_error)",
  true
)
