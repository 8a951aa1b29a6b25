/**
 * The MCP shapes the gateway deals in, as plain JSON (the low-level SDK `Server` passes them through as they
 * are), and how failures become tool results: an `isError` result with the error's code and its message,
 * which Switchboard errors keep free of secrets. Nothing here talks to the SDK.
 */
import { text } from "@switchboard/core/Toolset"

export {
  type CallResult,
  describeError,
  errorResult,
  json,
  text,
  type ToolDefinition
} from "@switchboard/core/Toolset"

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

/** An unexpected failure (a defect) as a tool result; the cause itself goes only to the log. */
export const defectResult = text(
  "internal error: the call failed unexpectedly; see the Switchboard MCP server's log (stderr) (internal_error)",
  true
)
