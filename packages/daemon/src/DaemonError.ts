/**
 * Why the daemon could not start, stop or be reached: a socket already served by a live daemon, a socket
 * directory anyone else could get at, a bad configuration file, an I/O failure, a team server refusing the API key
 * (`unauthorized`). Each has a stable `code` (its reason) and a message that says what to do; the cause is kept
 * for logs and never holds a secret.
 */
import * as Schema from "effect/Schema"

export class DaemonError extends Schema.TaggedError<DaemonError>()("DaemonError", {
  reason: Schema.Literals([
    "daemon_running",
    "daemon_not_running",
    "socket_insecure",
    "config_invalid",
    "io_error",
    "stop_timeout",
    "unauthorized"
  ]),
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  get code() {
    return this.reason
  }
}

/** The errno code of a Node error (`ENOENT`, `ECONNREFUSED`, …), or undefined. */
export const errnoOf = (error: unknown): string | undefined => {
  const code = (error as { readonly code?: unknown } | null | undefined)?.code
  return typeof code === "string" ? code : undefined
}

/** An `io_error` saying what was being done and the errno, keeping the cause. */
export const io = (doing: string, cause: unknown): DaemonError =>
  new DaemonError({ reason: "io_error", message: `${doing} failed: ${errnoOf(cause) ?? String(cause)}`, cause })
