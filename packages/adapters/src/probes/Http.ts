/**
 * The HTTP probe (REST APIs, webhooks, and the HTTP-reachable warehouses and CRMs whose URL the caller puts
 * in `config.url`): `HEAD`, falling back to `GET` when the server does not support HEAD (405, 501), through
 * the guarded client. The connection's credentials go along: `header:<Name>` values verbatim (and `query:<name>`
 * values as query parameters), else a `token`
 * or `api_key` as a bearer token, a Google `service_account_json` as an access token, or `username` and
 * `password` as Basic. 2xx and 3xx (and 4xx other than those below) mean the endpoint answers; 401/403/407 are
 * `authentication_failed`, 404/410 `not_found` (unless config `expect` is `any`: a base URL that answers at all),
 * 5xx a `protocol_error`. Redirects are followed by the client (GET/HEAD only, each hop checked).
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import { headerPrefix, queryPrefix } from "@switchboard/core/Testing"
import type { Upstream } from "@switchboard/core/Upstream"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { secret, text } from "./internal/env.ts"
import { fail, type ProbeFailure } from "./internal/failure.ts"
import * as Http from "./internal/http.ts"
import * as Google from "./Google.ts"

/** The request headers the credentials make. */
export const authHeaders = (
  request: ProbeRequest,
  settings: Http.Settings
): Effect.Effect<Record<string, Redacted.Redacted<string>>, ProbeFailure, Upstream> =>
  Effect.gen(function* () {
    const verbatim = Object.entries(request.credentials).filter(([k]) => k.startsWith(headerPrefix))
    if (verbatim.length > 0) return Object.fromEntries(verbatim.map(([k, v]) => [k.slice(headerPrefix.length), v]))
    if (Object.keys(request.credentials).some((k) => k.startsWith(queryPrefix))) return {}
    const token = secret(request, "token") ?? secret(request, "api_key")
    if (token !== undefined) return { authorization: Redacted.make(`Bearer ${token}`) }
    const key = secret(request, "service_account_json")
    if (key !== undefined) {
      const access = yield* Google.accessToken(key, Google.SCOPE_READ_ONLY, settings)
      return { authorization: Redacted.make(`Bearer ${Redacted.value(access)}`) }
    }
    const username = secret(request, "username")
    const password = secret(request, "password")
    if (username !== undefined || password !== undefined) {
      const basic = Buffer.from(`${username ?? ""}:${password ?? ""}`, "utf8").toString("base64")
      return { authorization: Redacted.make(`Basic ${basic}`) }
    }
    return {}
  })

/** Probe an HTTP endpoint: config `url`. */
export const probe = (request: ProbeRequest, settings: Http.Settings): Effect.Effect<string, ProbeFailure, Upstream> =>
  Effect.gen(function* () {
    const base = text(request, "url")
    if (base === undefined) return yield* fail("protocol_error", 'config field "url" is missing')
    const host = yield* Http.hostOf(base, "url")
    const parsed = new URL(base)
    for (const [k, v] of Object.entries(request.credentials)) {
      if (k.startsWith(queryPrefix)) parsed.searchParams.set(k.slice(queryPrefix.length), Redacted.value(v))
    }
    const url = parsed.href
    const lenient = text(request, "expect") === "any"
    const headers = yield* authHeaders(request, settings)
    let method = "HEAD"
    let answer = yield* Http.call(settings, { method, url, headers })
    if (answer.status === 405 || answer.status === 501) {
      method = "GET"
      answer = yield* Http.call(settings, { method, url, headers })
    }
    const { status } = answer
    const said = `${host} answered ${method} with HTTP ${status}`
    if (status === 401 || status === 403 || status === 407) {
      return yield* fail(
        "authentication_failed",
        Object.keys(headers).length === 0 ? `${said}: it needs credentials` : `${said}: the credentials were refused`
      )
    }
    if ((status === 404 || status === 410) && !lenient) return yield* fail("not_found", said)
    if (status >= 500) return yield* fail("protocol_error", said)
    return said
  })
