/**
 * The Azure Blob Storage probe: Get Container Properties (`HEAD /{container}?restype=container`) against
 * `https://{storageAccount}.blob.core.windows.net` or an `endpoint` override (Azurite's path-style
 * `http://127.0.0.1:10000/devstoreaccount1`), signed with the account key (Shared Key) or carrying a SAS
 * token, else anonymous. The key and the token are never shown; the URL (which then holds the SAS) neither.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Upstream } from "@switchboard/core/Upstream"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import { secret, text } from "./internal/env.ts"
import { fail, type ProbeFailure } from "./internal/failure.ts"
import * as Http from "./internal/http.ts"

export const API_VERSION = "2021-08-06"

/** The Shared Key string to sign of a request without a body (the x-ms-* headers and the resource). */
export const stringToSign = (
  method: string,
  url: URL,
  account: string,
  headers: Readonly<Record<string, string>>
): string => {
  const msHeaders = Object.entries(headers)
    .map(([k, v]) => [k.toLowerCase(), v.trim()] as const)
    .filter(([k]) => k.startsWith("x-ms-"))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}:${v}\n`)
    .join("")
  const params = new Map<string, Array<string>>()
  for (const [k, v] of url.searchParams) params.set(k.toLowerCase(), [...(params.get(k.toLowerCase()) ?? []), v])
  const query = [...params.keys()]
    .sort()
    .map((k) => `\n${k}:${(params.get(k) ?? []).sort().join(",")}`)
    .join("")
  // VERB, then Content-Encoding … Range (11 standard headers, all empty here), then x-ms-*, then the resource.
  return `${method.toUpperCase()}\n${"\n".repeat(11)}${msHeaders}/${account}${url.pathname}${query}`
}

/** `SharedKey account:signature`. */
export const sharedKey = (
  method: string,
  url: URL,
  account: string,
  key: string,
  headers: Readonly<Record<string, string>>
): string =>
  `SharedKey ${account}:${Crypto.createHmac("sha256", Buffer.from(key, "base64"))
    .update(stringToSign(method, url, account, headers), "utf8")
    .digest("base64")}`

/** Probe a container: config `container`, `storageAccount`, `endpoint`; credentials `account_key` or `sas_token`. */
export const blob = (request: ProbeRequest, settings: Http.Settings): Effect.Effect<string, ProbeFailure, Upstream> =>
  Effect.gen(function* () {
    const account = text(request, "storageAccount")?.trim()
    const container = text(request, "container")?.trim()
    if (account === undefined || !/^[a-z0-9]{3,24}$/u.test(account)) {
      return yield* fail("protocol_error", 'config field "storageAccount" is missing or not a storage account name')
    }
    if (container === undefined || !/^(?:\$root|[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])?)$/u.test(container)) {
      return yield* fail("protocol_error", 'config field "container" is missing or not a container name')
    }
    const base = (text(request, "endpoint")?.trim() ?? `https://${account}.blob.core.windows.net`).replace(/\/+$/u, "")
    const host = yield* Http.hostOf(base, "endpoint")
    const url = new URL(`${base}/${container}?restype=container`)
    const key = secret(request, "account_key")
    const sas = secret(request, "sas_token")
    const headers: Record<string, string | Redacted.Redacted<string>> = {}
    let how = "anonymously"
    if (key !== undefined) {
      const date = new Date(yield* Clock.currentTimeMillis).toUTCString()
      const ms = { "x-ms-date": date, "x-ms-version": API_VERSION }
      Object.assign(headers, ms, { authorization: Redacted.make(sharedKey("HEAD", url, account, key, ms)) })
      how = "with the account key"
    } else {
      headers["x-ms-version"] = API_VERSION
      if (sas !== undefined) {
        for (const [k, v] of new URLSearchParams(sas.replace(/^\?/u, ""))) url.searchParams.append(k, v)
        how = "with the SAS token"
      }
    }
    const answer = yield* Http.call(settings, { method: "HEAD", url: url.href, headers })
    if (answer.status === 200) return `container ${container} of ${account} answers at ${host} (${how})`
    if (answer.status === 404) {
      return yield* fail("not_found", `container ${container} does not exist at ${host} (or is not visible ${how})`)
    }
    if (answer.status === 401 || answer.status === 403) {
      return yield* fail(
        "authentication_failed",
        `${host} refused access to container ${container} ${how} (HTTP ${answer.status})`
      )
    }
    return yield* fail("protocol_error", `${host} answered the container check with HTTP ${answer.status}`)
  })
