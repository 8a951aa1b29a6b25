/**
 * HTTP exchanges of the HTTP-based probes, always through the `Upstream` port (the SSRF-guarded client that
 * pins the checked address, times out and re-checks redirects): the request, its status and headers, and at
 * most a bounded prefix of the body. Messages name the host, never the URL (a query may carry a SAS token).
 */
import { Upstream } from "@switchboard/core/Upstream"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { fail, fromUpstream, type ProbeFailure } from "./failure.ts"

export interface Call {
  readonly method: string
  readonly url: string
  readonly headers?: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
  readonly body?: Uint8Array | undefined
  /** Bytes of the response body to keep (0: none). */
  readonly keep?: number | undefined
}

export interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

export interface Settings {
  readonly allowPrivateNetwork: boolean
  readonly timeoutMillis: number
}

/** One exchange; the body is read up to `keep` bytes, then the response is closed. */
export const call = (settings: Settings, req: Call): Effect.Effect<Answer, ProbeFailure, Upstream> =>
  Effect.gen(function* () {
    const upstream = yield* Upstream
    const response = yield* upstream
      .request({
        method: req.method,
        url: req.url,
        headers: {
          "user-agent": "switchboard-probe",
          ...(req.body === undefined ? {} : { "content-length": String(req.body.length) }),
          ...req.headers
        },
        body: req.body === undefined ? undefined : Stream.make(req.body),
        allowPrivateNetwork: settings.allowPrivateNetwork,
        connectTimeoutMillis: settings.timeoutMillis,
        totalTimeoutMillis: settings.timeoutMillis
      })
      .pipe(Effect.mapError(fromUpstream))
    const keep = req.keep ?? 0
    const chunks = yield* (req.method === "HEAD" ? Stream.empty : response.body).pipe(
      Stream.take(keep === 0 ? 1 : 64),
      Stream.runCollect,
      Effect.timeoutOption("2 seconds"),
      Effect.map((o) => (o._tag === "Some" ? o.value : [])),
      Effect.orElseSucceed((): Array<Uint8Array> => [])
    )
    const body = keep === 0 ? "" : Buffer.concat(chunks).subarray(0, keep).toString("utf8")
    return { status: response.status, headers: response.headers, body }
  })

/** The host of a URL for messages, or a failure when the URL is not http(s). */
export const hostOf = (url: string, field: string): Effect.Effect<string, ProbeFailure> => {
  if (!URL.canParse(url)) return fail("protocol_error", `config field "${field}" is not a valid URL`)
  const parsed = new URL(url)
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return fail("refused", `config field "${field}" must be an http or https URL`)
  }
  return Effect.succeed(parsed.host)
}

/** A JSON object body, or `undefined` when it is not one. */
export const json = (text: string): Record<string, unknown> | undefined => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : undefined
}
