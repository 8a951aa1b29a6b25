/**
 * Field mutations and the outgoing auth they feed: `default` (when the value is empty or absent), then
 * `prefix`, then `suffix`; then the auth type formats the result — BASIC as `Basic base64(user:password)`,
 * BEARER and OAUTH as `Bearer <token>`, API_KEY raw in `Authorization`, in the header named by
 * `auth_header_key_override`, or in a query parameter. One pure function; secrets stay `Redacted`.
 */
import * as Base64 from "effect/encoding/Base64"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import type { AuthPattern, FieldMutation } from "./AuthPattern.ts"
import { CredentialMissing } from "./Errors.ts"

/** Apply one mutation to a value: default → prefix → suffix. Absent stays absent when there is no default. */
export const apply = (mutation: FieldMutation | undefined, value: string | undefined): string | undefined => {
  const base = value === undefined || value === "" ? mutation?.default : value
  if (base === undefined) return undefined
  return `${mutation?.prefix ?? ""}${base}${mutation?.suffix ?? ""}`
}

/** What is added to an outgoing request. Values are secrets until the moment they are sent. */
export interface OutgoingAuth {
  readonly headers: Readonly<Record<string, Redacted.Redacted<string>>>
  readonly query: Readonly<Record<string, Redacted.Redacted<string>>>
}

export const none: OutgoingAuth = { headers: {}, query: {} }

const missing = (field: string, type: string) =>
  new CredentialMissing({
    message: `the credential has no value for "${field}", which ${type} auth needs`,
    details: { field, auth_type: type }
  })

/**
 * Build the outgoing auth of a pattern from credential values. For OAUTH the value is `access_token`
 * (mutated as `token`).
 */
export const buildOutgoingAuth = (
  pattern: AuthPattern,
  values: Readonly<Record<string, Redacted.Redacted<string>>>
): Result.Result<OutgoingAuth, CredentialMissing> => {
  const raw = (name: string) => {
    const v = values[name]
    return v === undefined ? undefined : Redacted.value(v)
  }
  const mutations = pattern.auth_field_mutations ?? {}
  const header = pattern.auth_header_key_override ?? "Authorization"
  const single = (name: string, value: string): OutgoingAuth => ({
    headers: { [name]: Redacted.make(value) },
    query: {}
  })
  switch (pattern.type) {
    case "BASIC": {
      const username = apply(mutations.username, raw("username"))
      if (username === undefined) return Result.fail(missing("username", "BASIC"))
      const password = apply(mutations.password, raw("password"))
      if (password === undefined) return Result.fail(missing("password", "BASIC"))
      return Result.succeed(single(header, `Basic ${Base64.encode(`${username}:${password}`)}`))
    }
    case "BEARER": {
      const token = apply(mutations.token, raw("token"))
      if (token === undefined) return Result.fail(missing("token", "BEARER"))
      return Result.succeed(single(header, `Bearer ${token}`))
    }
    case "OAUTH": {
      const token = apply(mutations.token, raw("access_token"))
      if (token === undefined) return Result.fail(missing("access_token", "OAUTH"))
      return Result.succeed(single(header, `Bearer ${token}`))
    }
    case "API_KEY": {
      const key = apply(mutations.api_key, raw("api_key"))
      if (key === undefined) return Result.fail(missing("api_key", "API_KEY"))
      if (pattern.api_key_query_param !== undefined) {
        return Result.succeed({ headers: {}, query: { [pattern.api_key_query_param]: Redacted.make(key) } })
      }
      return Result.succeed(single(header, key))
    }
  }
}
