/**
 * The `ApiKeyStore` port behaves the same on memory and on the SQLite file (migration 5), and `ApiKeys` on top of
 * it: a made key authenticates as its principal, only its digest is stored, a forged, malformed or revoked key is
 * refused, a second revoke keeps the first time, and `last_used_at` is recorded.
 */
import * as Memory from "@switchboard/adapters/memory"
import { ApiKeyStore } from "@switchboard/core/ApiKeyStore"
import { ApiKeys } from "@switchboard/daemon"
import * as Layers from "@switchboard/daemon/Layers"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, assert, describe, it } from "vitest"
import { masterKey, secretOf, tempRoot } from "./harness.ts"

const root = tempRoot()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))

const sqliteStore = (): Layer.Layer<ApiKeyStore, unknown> => {
  const paths = Layers.resolvePaths({ home: Path.join(root, `sqlite-${Math.random().toString(36).slice(2)}`) })
  Fs.mkdirSync(paths.home, { recursive: true, mode: 0o700 })
  const stores = Layers.oauthStoreLayer({ kind: "sqlite", paths, env: { SWITCHBOARD_MASTER_KEY: masterKey() } })
  return Layer.effect(
    ApiKeyStore,
    Effect.map(Layer.build(stores), (context) => Context.get(context, ApiKeyStore))
  )
}

const adapters: ReadonlyArray<readonly [string, () => Layer.Layer<ApiKeyStore, unknown>]> = [
  ["memory", () => Memory.ApiKeyStore.layer],
  ["sqlite", sqliteStore]
]

const bob = { org: "acme", workspace: "main", user: "bob", role: "editor" } as const

for (const [name, makeLayer] of adapters) {
  describe(`ApiKeyStore on ${name}`, () => {
    it("authenticates a made key as its principal, and refuses forged, malformed and revoked keys", () =>
      Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* ApiKeyStore
          const authenticate = ApiKeys.makeAuthenticator(store)
          const { key, secret } = yield* ApiKeys.create({ principal: bob, name: "bob's laptop" })
          const plain = Redacted.value(secret)
          assert.strictEqual(String(secret), "<redacted>")
          assert.isTrue(plain.startsWith(`${key.prefix}_`))

          // Only the digest is kept, and nothing stored or listed holds the secret.
          const stored = Option.getOrThrow(yield* store.get(key.id))
          assert.strictEqual(stored.digest, ApiKeys.digestOf(plain))
          assert.notInclude(JSON.stringify(stored), secretOf(plain))
          assert.notInclude(JSON.stringify(yield* store.list), secretOf(plain))

          const ok = yield* authenticate(`Bearer ${plain}`)
          assert.deepStrictEqual(ok, { principal: bob, keyId: key.id })
          assert.deepStrictEqual(yield* authenticate(`bearer   ${plain}`), ok)
          const used = Option.getOrThrow(yield* store.get(key.id)).key
          assert.isString(used.last_used_at)

          const flipped = `${plain.slice(0, -1)}${plain.endsWith("A") ? "B" : "A"}`
          assert.deepStrictEqual(yield* authenticate(`Bearer ${flipped}`), { rejected: "unknown" })
          assert.deepStrictEqual(yield* authenticate(`Bearer sbk_0000000000000000_${secretOf(plain)}`), {
            rejected: "unknown"
          })
          assert.deepStrictEqual(yield* authenticate(undefined), { rejected: "missing" })
          assert.deepStrictEqual(yield* authenticate(`Token ${plain}`), { rejected: "malformed" })
          assert.deepStrictEqual(yield* authenticate(`Bearer ${plain} extra`), { rejected: "malformed" })

          const revoked = Option.getOrThrow(yield* ApiKeys.revoke(key.id))
          assert.isString(revoked.revoked_at)
          assert.deepStrictEqual(yield* authenticate(`Bearer ${plain}`), { rejected: "revoked" })
          const again = Option.getOrThrow(yield* ApiKeys.revoke(key.id))
          assert.strictEqual(again.revoked_at, revoked.revoked_at)
          assert.isTrue(Option.isNone(yield* ApiKeys.revoke("ak_0000000000000000")))

          const listed = yield* ApiKeys.list
          assert.deepStrictEqual(
            listed.map((k) => [k.id, k.name, k.role, k.revoked_at !== null]),
            [[key.id, "bob's laptop", "editor", true]]
          )
          assert.isFalse(yield* ApiKeys.hasActiveKey)
        }).pipe(Effect.provide(makeLayer()), Effect.scoped)
      ))

    it("refuses a principal that is not valid", () =>
      Effect.runPromise(
        Effect.gen(function* () {
          const failed = yield* Effect.flip(
            ApiKeys.create({ principal: { ...bob, role: "owner" as never } }).pipe(Effect.asVoid)
          )
          assert.include(String(failed), "role")
          assert.deepStrictEqual(yield* ApiKeys.list, [])
        }).pipe(Effect.provide(makeLayer()), Effect.scoped)
      ))
  })
}
