/**
 * How a probe fails inside the adapter: one tagged error with the reason a `ProbeResult` reports, and the
 * mapping of the guarded HTTP client's and the sockets' failures onto those reasons. Details name hosts and
 * addresses, never URLs, connection strings or credentials.
 */
import type { UpstreamError } from "@switchboard/core/Errors"
import type { ProbeResult } from "@switchboard/core/Probe"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

export type Reason = Extract<ProbeResult, { readonly ok: false }>["reason"]

export class ProbeFailure extends Data.TaggedError("ProbeFailure")<{
  readonly reason: Reason
  readonly detail: string
}> {}

export const fail = (reason: Reason, detail: string): Effect.Effect<never, ProbeFailure> =>
  Effect.fail(new ProbeFailure({ reason, detail }))

/** The guarded client's (and the SSRF guard's) errors as probe failures. */
export const fromUpstream = (error: UpstreamError): ProbeFailure => {
  switch (error.reason) {
    case "destination_refused":
      return new ProbeFailure({ reason: "refused", detail: error.message })
    case "upstream_timeout":
      return new ProbeFailure({ reason: "timeout", detail: error.message })
    case "upstream_protocol_error":
      return new ProbeFailure({ reason: "protocol_error", detail: error.message })
    case "upstream_unreachable":
    case "circuit_open":
    case "rate_limited":
    case "cassette_miss":
      return new ProbeFailure({ reason: "unreachable", detail: error.message })
  }
}

export const codeOf = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : "ECONNRESET"

const TLS_CODE = /CERT|^ERR_TLS_|^ERR_SSL_|^UNABLE_TO_|^EPROTO$|^DEPTH_ZERO|^SELF_SIGNED/u

/** A socket error (connect or later) as a probe failure. */
export const fromSocket = (cause: unknown, where: string): ProbeFailure => {
  const code = codeOf(cause)
  if (TLS_CODE.test(code))
    return new ProbeFailure({ reason: "protocol_error", detail: `TLS with ${where} failed (${code})` })
  if (code === "ECONNREFUSED") {
    return new ProbeFailure({ reason: "unreachable", detail: `${where} refused the connection (ECONNREFUSED)` })
  }
  return new ProbeFailure({ reason: "unreachable", detail: `could not reach ${where} (${code})` })
}

/** Text a server sent, made safe to show: control characters replaced, length bounded. */
export const clean = (text: string, max = 200): string => {
  let out = ""
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0
    out += code < 0x20 || (code >= 0x7f && code < 0xa0) ? " " : char
  }
  const printable = out.replace(/ {2,}/gu, " ").trim()
  return printable.length > max ? `${printable.slice(0, max)}…` : printable
}
