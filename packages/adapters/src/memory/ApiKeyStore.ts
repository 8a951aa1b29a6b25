/** The in-memory `ApiKeyStore`: for tests and throwaway daemons (keys vanish with the process). */
import { ApiKeyStore, type StoredApiKey } from "@switchboard/core/ApiKeyStore"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/** An empty store over one map. */
export const make = Effect.sync(() => {
  const keys = new Map<string, StoredApiKey>()
  return ApiKeyStore.of({
    insert: (stored) => Effect.sync(() => void keys.set(stored.key.id, stored)),
    get: (id) => Effect.sync(() => Option.fromNullishOr(keys.get(id))),
    list: Effect.sync(() => [...keys.values()].map((s) => s.key).sort((a, b) => (a.id < b.id ? -1 : 1))),
    revoke: (id, at) =>
      Effect.sync(() => {
        const stored = keys.get(id)
        if (stored === undefined) return Option.none()
        const key = stored.key.revoked_at === null ? { ...stored.key, revoked_at: at } : stored.key
        keys.set(id, { ...stored, key })
        return Option.some(key)
      }),
    touch: (id, at) =>
      Effect.sync(() => {
        const stored = keys.get(id)
        if (stored !== undefined) keys.set(id, { ...stored, key: { ...stored.key, last_used_at: at } })
      })
  })
})

export const layer: Layer.Layer<ApiKeyStore> = Layer.effect(ApiKeyStore, make)
