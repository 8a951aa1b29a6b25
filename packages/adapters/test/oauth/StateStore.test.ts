/**
 * The `OAuthStateStore` adapters, memory and SQLite, against one behavioural suite (single-use flows, expiry
 * clean-up, records, leases), and what only SQLite has: flows and records sealed at rest under their own row (no
 * secret in the file, a sealed value moved to another row does not open), leases shared by two connections to one
 * file, and key rotation re-sealing them.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { OAuthStateStore } from "@switchboard/core/OAuthStateStore"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as StateStore from "../../src/oauth/StateStore.ts"
import * as Sqlite from "../../src/sqlite/index.ts"
import { keyA, keyB, makeSealer, sealerLayer, storeLayer, tempDir, withRaw } from "../sqlite/support.ts"

const SECRET = "code-verifier-CANARY-5d1e9a7c"

const sqliteLayer = (filename: string, key = keyA) =>
  StateStore.layerSqlite.pipe(Layer.provideMerge(storeLayer(filename, key)), Layer.provide(sealerLayer(key)))

const suite = (name: string, layer: () => Layer.Layer<OAuthStateStore, unknown>) =>
  describe(`OAuthStateStore (${name})`, () => {
    const run = <A, E>(effect: Effect.Effect<A, E, OAuthStateStore>) =>
      Effect.scoped(effect.pipe(Effect.provide(layer())))

    it.effect("a flow is found by id and deleted once", () =>
      run(
        Effect.gen(function* () {
          const store = yield* OAuthStateStore
          yield* store.putFlow({ id: "ost_1", expires_at: "2030-01-01T00:10:00.000Z", body: Redacted.make(SECRET) })
          const found = yield* store.getFlow("ost_1")
          assert.strictEqual(Redacted.value(Option.getOrThrow(found).body), SECRET)
          assert.strictEqual(Option.getOrThrow(found).expires_at, "2030-01-01T00:10:00.000Z")
          const results = yield* Effect.all([store.deleteFlow("ost_1"), store.deleteFlow("ost_1")], {
            concurrency: "unbounded"
          })
          assert.strictEqual(results.filter((deleted) => deleted).length, 1)
          assert.isTrue(Option.isNone(yield* store.getFlow("ost_1")))
        })
      )
    )

    it.effect("expired flows are cleaned up, later ones stay", () =>
      run(
        Effect.gen(function* () {
          const store = yield* OAuthStateStore
          yield* store.putFlow({ id: "ost_a", expires_at: "2030-01-01T00:00:00.000Z", body: Redacted.make("a") })
          yield* store.putFlow({ id: "ost_b", expires_at: "2030-01-01T00:20:00.000Z", body: Redacted.make("b") })
          assert.strictEqual(yield* store.deleteExpiredFlows("2030-01-01T00:10:00.000Z"), 1)
          assert.isTrue(Option.isNone(yield* store.getFlow("ost_a")))
          assert.isTrue(Option.isSome(yield* store.getFlow("ost_b")))
        })
      )
    )

    it.effect("records are replaced by key and deleted", () =>
      run(
        Effect.gen(function* () {
          const store = yield* OAuthStateStore
          yield* store.putRecord("mcp-client:ctr_1:https://x", Redacted.make("one"))
          yield* store.putRecord("mcp-client:ctr_1:https://x", Redacted.make("two"))
          const found = yield* store.getRecord("mcp-client:ctr_1:https://x")
          assert.strictEqual(Redacted.value(Option.getOrThrow(found)), "two")
          assert.isTrue(yield* store.deleteRecord("mcp-client:ctr_1:https://x"))
          assert.isFalse(yield* store.deleteRecord("mcp-client:ctr_1:https://x"))
        })
      )
    )

    it.effect("a lease has one holder until it is released or expires", () =>
      run(
        Effect.gen(function* () {
          const store = yield* OAuthStateStore
          assert.isTrue(yield* store.acquireLease("refresh:cred_1", "p1", 1000, 31_000))
          assert.isTrue(yield* store.acquireLease("refresh:cred_1", "p1", 2000, 32_000))
          assert.isFalse(yield* store.acquireLease("refresh:cred_1", "p2", 2000, 32_000))
          assert.isTrue(yield* store.acquireLease("refresh:cred_2", "p2", 2000, 32_000))
          yield* store.releaseLease("refresh:cred_1", "p2")
          assert.isFalse(yield* store.acquireLease("refresh:cred_1", "p2", 3000, 33_000))
          yield* store.releaseLease("refresh:cred_1", "p1")
          assert.isTrue(yield* store.acquireLease("refresh:cred_1", "p2", 3000, 33_000))
          // An expired lease is taken over.
          assert.isTrue(yield* store.acquireLease("refresh:cred_1", "p3", 33_000, 63_000))
        })
      )
    )
  })

suite("memory", () => StateStore.layerMemory)

const dir = tempDir("oauth")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => Path.join(dir, `state-${++files}.db`)

suite("sqlite", () => sqliteLayer(freshFile()))

describe("OAuthStateStore (sqlite only)", () => {
  it.effect("flows and records are sealed at rest, bound to their row", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const store = yield* OAuthStateStore
          yield* store.putFlow({ id: "ost_1", expires_at: "2030-01-01T00:10:00.000Z", body: Redacted.make(SECRET) })
          yield* store.putFlow({ id: "ost_2", expires_at: "2030-01-01T00:10:00.000Z", body: Redacted.make("other") })
          yield* store.putRecord("token:cred_1", Redacted.make(SECRET))
        }).pipe(Effect.provide(sqliteLayer(filename)))
      )
      const bytes = Buffer.concat(
        [filename, `${filename}-wal`].filter((f) => Fs.existsSync(f)).map((f) => Fs.readFileSync(f))
      )
      assert.isFalse(bytes.includes(Buffer.from(SECRET)))
      // Move flow 1's sealed value into flow 2's row: it no longer opens.
      withRaw(filename, (db) =>
        db
          .prepare(
            "UPDATE oauth_flows SET sealed = (SELECT sealed FROM oauth_flows WHERE id = 'ost_1') WHERE id = 'ost_2'"
          )
          .run()
      )
      const moved = yield* Effect.scoped(
        Effect.flip(Effect.flatMap(OAuthStateStore, (s) => s.getFlow("ost_2"))).pipe(
          Effect.provide(sqliteLayer(filename))
        )
      )
      assert.strictEqual(moved._tag, "SealError")
    })
  )

  it.effect("two connections to one file share leases", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const one = yield* Layer.build(sqliteLayer(filename))
      const two = yield* Layer.build(sqliteLayer(filename))
      const take = (context: typeof one, holder: string) =>
        Effect.flatMap(OAuthStateStore, (s) => s.acquireLease("refresh:cred_9", holder, 1000, 31_000)).pipe(
          Effect.provideContext(context)
        )
      assert.isTrue(yield* take(one, "process-1"))
      assert.isFalse(yield* take(two, "process-2"))
    }).pipe(Effect.scoped)
  )

  it.effect("key rotation re-seals flows and records", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const next = yield* makeSealer(keyB)
      const counts = yield* Effect.scoped(
        Effect.gen(function* () {
          const store = yield* OAuthStateStore
          yield* store.putFlow({ id: "ost_1", expires_at: "2030-01-01T00:10:00.000Z", body: Redacted.make(SECRET) })
          yield* store.putRecord("token:cred_1", Redacted.make("record"))
          const db = yield* Sqlite.Database.SqliteDatabase
          return yield* Sqlite.rotateKey(db, yield* makeSealer(keyA), next)
        }).pipe(Effect.provide(sqliteLayer(filename)))
      )
      assert.strictEqual(counts.oauth_flows, 1)
      assert.strictEqual(counts.oauth_records, 1)
      const reopened = yield* Effect.scoped(
        Effect.gen(function* () {
          const store = yield* OAuthStateStore
          const flow = yield* store.getFlow("ost_1")
          const record = yield* store.getRecord("token:cred_1")
          return [Redacted.value(Option.getOrThrow(flow).body), Redacted.value(Option.getOrThrow(record))]
        }).pipe(Effect.provide(sqliteLayer(filename, keyB)))
      )
      assert.deepStrictEqual(reopened, [SECRET, "record"])
    })
  )
})
