/**
 * API keys of the team server: making them, listing and revoking them, and checking the `Authorization: Bearer`
 * header of every request on the TCP listener.
 *
 * A key is `sbk_<public id>_<secret>`: 8 random bytes of public id (hex; the key's id is `ak_<public id>` and
 * `sbk_<public id>` is the prefix shown in lists) and 32 random bytes of secret (base64url). Only the SHA-256
 * digest of the whole key is stored: a key has 256 bits of entropy, so a plain digest is as good as a slow hash
 * and costs nothing per request. A request's key is found by its public id and its digest compared in constant
 * time. The key is shown once, when made; it is never logged, and no answer ever holds it.
 */
import { type ApiKey, ApiKeyStore, principalOf } from "@switchboard/core/ApiKeyStore"
import * as Principal from "@switchboard/core/Principal"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"

/** The principal an API key authenticated the current request as (none on the Unix socket). */
export const Authenticated = Context.Reference<Principal.Principal | undefined>(
  "@switchboard/daemon/ApiKeys/Authenticated",
  { defaultValue: () => undefined }
)

const KEY = /^sbk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/u

/** Hex SHA-256 of a key. */
export const digestOf = (key: string): string => createHash("sha256").update(key).digest("hex")

const sameDigest = (a: string, b: string): boolean => {
  const left = Buffer.from(a, "hex")
  const right = Buffer.from(b, "hex")
  return left.length === right.length && left.length === 32 && timingSafeEqual(left, right)
}

const nowIso = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())

export interface CreateInput {
  readonly principal: Principal.Principal
  readonly name?: string | undefined
}

/** A key just made: its description and the key itself, to be shown this once. */
export interface Created {
  readonly key: ApiKey
  readonly secret: Redacted.Redacted<string>
}

/** Make a key for a principal, store its digest, and give the key back (once). */
export const create = Effect.fn("ApiKeys.create")(function* (input: CreateInput) {
  const store = yield* ApiKeyStore
  const principal = yield* Schema.decodeUnknownEffect(Principal.Principal)(input.principal, { errors: "all" })
  const publicId = randomBytes(8).toString("hex")
  const secret = Redacted.make(`sbk_${publicId}_${randomBytes(32).toString("base64url")}`)
  const key: ApiKey = {
    id: `ak_${publicId}`,
    name: input.name ?? null,
    prefix: `sbk_${publicId}`,
    ...principal,
    created_at: yield* nowIso,
    last_used_at: null,
    revoked_at: null
  }
  yield* store.insert({ key, digest: digestOf(Redacted.value(secret)) })
  return { key, secret } satisfies Created
})

export const list = Effect.flatMap(Effect.service(ApiKeyStore), (store) => store.list)

/** Revoke a key by id; none when there is no such key. */
export const revoke = Effect.fn("ApiKeys.revoke")(function* (id: string) {
  const store = yield* ApiKeyStore
  return yield* store.revoke(id, yield* nowIso)
})

/** Why a request was not authenticated (the message never quotes what was sent). */
export type Rejection = "missing" | "malformed" | "unknown" | "revoked"

const rejectionMessages: Readonly<Record<Rejection, string>> = {
  missing: "this listener requires an API key: send Authorization: Bearer sbk_…",
  malformed: "the Authorization header does not hold an API key (Bearer sbk_…)",
  unknown: "the API key is not valid",
  revoked: "the API key has been revoked"
}

/** `last_used_at` is written at most once a minute per key and process, not on every request. */
const TOUCH_INTERVAL_MS = 60_000

/**
 * Check an `Authorization` header against the store: the key's principal, or why it was refused. A digest is
 * compared even for an unknown id, so the answer takes about as long either way.
 */
export const makeAuthenticator = (store: ApiKeyStore["Service"]) => {
  const touched = new Map<string, number>()
  return Effect.fn("ApiKeys.authenticate")(function* (authorization: string | undefined) {
    if (authorization === undefined || authorization === "") return { rejected: "missing" as Rejection }
    const [scheme, token, ...rest] = authorization.trim().split(/\s+/u)
    const match = scheme?.toLowerCase() === "bearer" && rest.length === 0 ? KEY.exec(token ?? "") : null
    if (match === null) return { rejected: "malformed" as Rejection }
    const digest = digestOf(token as string)
    const stored = yield* store.get(`ak_${match[1]}`)
    const expected = Option.isSome(stored) ? stored.value.digest : "0".repeat(64)
    if (!sameDigest(digest, expected) || Option.isNone(stored)) return { rejected: "unknown" as Rejection }
    const key = stored.value.key
    if (key.revoked_at !== null) return { rejected: "revoked" as Rejection }
    const now = yield* Clock.currentTimeMillis
    if (now - (touched.get(key.id) ?? 0) >= TOUCH_INTERVAL_MS) {
      touched.set(key.id, now)
      yield* store
        .touch(key.id, new Date(now).toISOString())
        .pipe(
          Effect.catch((error) => Effect.logWarning(`recording the use of API key ${key.id} failed: ${error.message}`))
        )
    }
    return { principal: principalOf(key), keyId: key.id }
  })
}

const unauthorized = (reason: Rejection) =>
  HttpServerResponse.jsonUnsafe(
    { error: { code: "unauthorized", message: rejectionMessages[reason] } },
    { status: 401, headers: { "www-authenticate": 'Bearer realm="switchboard"' } }
  )

/**
 * The global middleware of the TCP listener: every request carries a valid, unrevoked key, else 401
 * `unauthorized`; the key's principal is `Authenticated` for the handlers (and the principal headers are not
 * trusted). A store failure is a 500. `open` names the paths whose GET takes no key because something else
 * authenticates it (the OAuth callback of `public_url`: its single-use state); those routes get no principal.
 */
export const middlewareWith = (options: { readonly open?: ReadonlySet<string> | undefined } = {}) =>
  HttpRouter.middleware(
    Effect.gen(function* () {
      const authenticate = makeAuthenticator(yield* ApiKeyStore)
      const open = options.open ?? new Set<string>()
      return (httpEffect) =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          if (open.size > 0 && request.method === "GET" && open.has(request.url.split("?", 1)[0] ?? "")) {
            return yield* httpEffect
          }
          const result = yield* authenticate(request.headers.authorization).pipe(Effect.result)
          if (result._tag === "Failure") {
            yield* Effect.logError(`checking an API key failed: ${result.failure.message}`)
            return HttpServerResponse.jsonUnsafe(
              { error: { code: "internal_error", message: "internal error; see the daemon log" } },
              { status: 500 }
            )
          }
          const outcome = result.success
          if ("rejected" in outcome) return unauthorized(outcome.rejected)
          return yield* Effect.provideService(httpEffect, Authenticated, outcome.principal).pipe(
            Effect.annotateLogs({ api_key: outcome.keyId })
          )
        })
    }),
    { global: true }
  )

/** `middlewareWith` with no open path: every request needs a key. */
export const middleware = middlewareWith()

/** Whether the store holds at least one key that is not revoked. */
export const hasActiveKey = Effect.map(list, (keys) => keys.some((key) => key.revoked_at === null))
