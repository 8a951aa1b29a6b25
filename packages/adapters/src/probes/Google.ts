/**
 * Google Cloud: an access token from a service account key (the OAuth 2.0 JWT bearer grant, RFC 7523: an
 * RS256-signed assertion posted to the key's `token_uri`, through the guarded client like every other
 * request), and the GCS bucket check (`GET /storage/v1/b/{bucket}` against `https://storage.googleapis.com`
 * or an `endpoint` override). The key and the token are never shown.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Upstream } from "@switchboard/core/Upstream"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import { secret, text } from "./internal/env.ts"
import { clean, fail, type ProbeFailure } from "./internal/failure.ts"
import * as Http from "./internal/http.ts"

export const DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
export const SCOPE_READ_ONLY = "https://www.googleapis.com/auth/cloud-platform.read-only"

interface ServiceAccount {
  readonly client_email: string
  readonly private_key: string
  readonly private_key_id: string | undefined
  readonly token_uri: string
}

const base64url = (data: string | Buffer): string => Buffer.from(data).toString("base64url")

const parseKey = (json: string): ServiceAccount | undefined => {
  const doc = Http.json(json)
  if (doc === undefined) return undefined
  const { client_email, private_key, private_key_id, token_uri } = doc
  if (typeof client_email !== "string" || typeof private_key !== "string") return undefined
  return {
    client_email,
    private_key,
    private_key_id: typeof private_key_id === "string" ? private_key_id : undefined,
    token_uri: typeof token_uri === "string" && token_uri !== "" ? token_uri : DEFAULT_TOKEN_URI
  }
}

/** The signed JWT assertion of a service account for `scope`, valid for an hour from `nowSeconds`. */
export const assertion = (key: ServiceAccount, scope: string, nowSeconds: number): string | undefined => {
  const header = { alg: "RS256", typ: "JWT", ...(key.private_key_id === undefined ? {} : { kid: key.private_key_id }) }
  const claims = { iss: key.client_email, scope, aud: key.token_uri, iat: nowSeconds, exp: nowSeconds + 3600 }
  const unsigned = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`
  try {
    return `${unsigned}.${Crypto.createSign("RSA-SHA256").update(unsigned).sign(key.private_key, "base64url")}`
  } catch {
    return undefined
  }
}

/** An access token for the service account in the credential `service_account_json`. */
export const accessToken = (
  json: string,
  scope: string,
  settings: Http.Settings
): Effect.Effect<Redacted.Redacted<string>, ProbeFailure, Upstream> =>
  Effect.gen(function* () {
    const key = parseKey(json)
    if (key === undefined) {
      return yield* fail("authentication_failed", "the credential's service_account_json is not a service account key")
    }
    const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const signed = assertion(key, scope, now)
    if (signed === undefined) {
      return yield* fail("authentication_failed", "the service account's private_key cannot sign (not an RSA key)")
    }
    const host = yield* Http.hostOf(key.token_uri, "token_uri")
    const body = Buffer.from(
      new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: signed }).toString(),
      "utf8"
    )
    const answer = yield* Http.call(settings, {
      method: "POST",
      url: key.token_uri,
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body,
      keep: 64 * 1024
    })
    const doc = Http.json(answer.body)
    if (answer.status === 200 && typeof doc?.access_token === "string") return Redacted.make(doc.access_token)
    const error = typeof doc?.error === "string" ? clean(doc.error, 60) : `HTTP ${answer.status}`
    return yield* fail(
      answer.status === 400 || answer.status === 401 || answer.status === 403
        ? "authentication_failed"
        : "protocol_error",
      `${host} refused the service account (${error})`
    )
  })

/** Probe a GCS bucket: config `bucket`, `endpoint`; credential `service_account_json`. */
export const gcs = (request: ProbeRequest, settings: Http.Settings): Effect.Effect<string, ProbeFailure, Upstream> =>
  Effect.gen(function* () {
    const bucket = text(request, "bucket")?.trim()
    if (bucket === undefined || !/^[a-z0-9][a-z0-9._-]{1,221}$/u.test(bucket)) {
      return yield* fail("protocol_error", 'config field "bucket" is missing or not a bucket name')
    }
    const base = (text(request, "endpoint")?.trim() ?? "https://storage.googleapis.com").replace(/\/+$/u, "")
    const url = `${base}/storage/v1/b/${encodeURIComponent(bucket)}?fields=name`
    const host = yield* Http.hostOf(url, "endpoint")
    const key = secret(request, "service_account_json")
    const token = key === undefined ? undefined : yield* accessToken(key, SCOPE_READ_ONLY, settings)
    const answer = yield* Http.call(settings, {
      method: "GET",
      url,
      headers: token === undefined ? {} : { authorization: Redacted.make(`Bearer ${Redacted.value(token)}`) }
    })
    if (answer.status === 200)
      return `bucket ${bucket} answers at ${host}${token === undefined ? " (no credentials)" : ""}`
    if (answer.status === 404) return yield* fail("not_found", `bucket ${bucket} does not exist at ${host}`)
    if (answer.status === 401 || answer.status === 403) {
      return yield* fail(
        "authentication_failed",
        token === undefined
          ? `${host} refused access to bucket ${bucket} without credentials (HTTP ${answer.status})`
          : `${host} refused the service account for bucket ${bucket} (HTTP ${answer.status})`
      )
    }
    return yield* fail("protocol_error", `${host} answered the bucket check with HTTP ${answer.status}`)
  })
