/**
 * Key rotation with each provider, against a real data directory: afterwards every secret opens with the new key
 * and none with the old; a rotation that fails midway changes nothing; each point where a rotation of the key file
 * (or the passphrase salt) can be killed is recovered by the next open; refusals change nothing on disk.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Sodium from "@switchboard/adapters/sodium"
import * as Sqlite from "@switchboard/adapters/sqlite"
import { SealError } from "@switchboard/core/Errors"
import type { Sealer } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as KeyRotation from "../../src/KeyRotation.ts"
import * as Layers from "../../src/Layers.ts"
import { base64Key, CANARY, expectMismatch, fast, type Home, makeHome, readSecrets, seed, snapshot } from "./support.ts"

const homes: Array<Home> = []
const fresh = () => {
  const home = makeHome()
  homes.push(home)
  return home
}
afterAll(() => {
  for (const home of homes) home.cleanup()
})

const { ENV_MASTER_KEY, ENV_PASSPHRASE } = Sodium.KeyProvider
const pendingKey = (home: Home) => `${home.keyFile}${Sodium.KeyProvider.NEXT_SUFFIX}`
const pendingSalt = (home: Home) => `${home.saltFile}${Sodium.KeyProvider.NEXT_SUFFIX}`
const fileKeyId = (path: string) => Effect.map(Sodium.KeyProvider.fromFile(path), (key) => key.id)
const unspecified: KeyRotation.NewKey = { _tag: "Unspecified" }

/** A sealer that behaves like `inner` until its nth seal, which runs `onNth` instead. */
const failingAt =
  (nth: number, onNth: () => Effect.Effect<never, SealError>) =>
  (inner: (typeof Sealer)["Service"]): (typeof Sealer)["Service"] => {
    let seals = 0
    return {
      keyId: inner.keyId,
      open: inner.open,
      seal: (plaintext, context) => (++seals === nth ? onNth() : inner.seal(plaintext, context))
    }
  }

const injected = () => Effect.fail(new SealError({ reason: "seal_failed", message: "injected failure" }))

describe("key rotation", () => {
  describe("key file", () => {
    it.effect("re-seals every value under a new master.key; the old key opens nothing any more", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, {})
        const oldKey = Fs.readFileSync(home.keyFile)
        const oldId = yield* fileKeyId(home.keyFile)
        const result = yield* KeyRotation.rotate({ paths: home.paths, env: {}, newKey: unspecified })
        assert.deepStrictEqual(Object.keys(result).sort(), ["key_id_new", "key_id_old", "provider", "rotated"])
        assert.strictEqual(result.provider, "file")
        assert.strictEqual(result.rotated, 3) // one credential, two connections
        assert.strictEqual(result.key_id_old, oldId)
        assert.strictEqual(result.key_id_new, yield* fileKeyId(home.keyFile))
        assert.notStrictEqual(result.key_id_new, oldId)
        assert.strictEqual(Fs.statSync(home.keyFile).mode & 0o777, 0o600)
        assert.deepStrictEqual(Fs.readdirSync(home.paths.home).sort(), ["master.key", "switchboard.db"])

        assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
        // The old key file put back: refused.
        const newKey = Fs.readFileSync(home.keyFile)
        Fs.writeFileSync(home.keyFile, oldKey)
        yield* expectMismatch(home, {})
        Fs.writeFileSync(home.keyFile, newKey)
        // Rotating again works from the new key.
        const again = yield* KeyRotation.rotate({ paths: home.paths, env: {}, newKey: unspecified })
        assert.strictEqual(again.key_id_old, result.key_id_new)
        assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
      })
    )

    it.effect("a rotation that fails midway leaves the old key working and adopts no pending file", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, {})
        const before = snapshot(home)
        let pendingDuringRotation = false
        const error = yield* Effect.flip(
          KeyRotation.rotate(
            { paths: home.paths, env: {}, newKey: unspecified },
            failingAt(2, () => {
              pendingDuringRotation = Fs.existsSync(pendingKey(home))
              return injected()
            })
          )
        )
        assert.strictEqual(error.message, "injected failure")
        // The pending key was on disk before anything was re-sealed, and is gone again.
        assert.isTrue(pendingDuringRotation)
        assert.isFalse(Fs.existsSync(pendingKey(home)))
        assert.strictEqual(snapshot(home)["master.key"], before["master.key"])
        assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
      })
    )

    it.effect("killed after writing master.key.next, before the commit: the next open removes it", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, {})
        const oldId = yield* fileKeyId(home.keyFile)
        const plan = yield* KeyRotation.plan({ paths: home.paths, env: {}, newKey: unspecified })
        // Dying inside the transaction rolls it back, as a kill would; nothing settles afterwards.
        yield* Effect.exit(
          KeyRotation.reseal(
            plan,
            home.paths.database,
            failingAt(1, () => Effect.die("killed"))
          )
        )
        assert.isTrue(Fs.existsSync(pendingKey(home)))
        assert.strictEqual(yield* fileKeyId(pendingKey(home)), plan.next.id)

        // The real open path (what the daemon and the CLI use) settles.
        yield* Effect.scoped(Layer.build(Layers.storeLayer({ kind: "sqlite", paths: home.paths, env: {} })))
        assert.isFalse(Fs.existsSync(pendingKey(home)))
        assert.strictEqual(yield* fileKeyId(home.keyFile), oldId)
        assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
      })
    )

    it.effect("killed after the commit, before the rename: the next open finishes the rotation", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, {})
        const oldId = yield* fileKeyId(home.keyFile)
        const plan = yield* KeyRotation.plan({ paths: home.paths, env: {}, newKey: unspecified })
        const counts = yield* KeyRotation.reseal(plan, home.paths.database)
        assert.strictEqual(counts.keyId, plan.next.id)
        assert.strictEqual(yield* fileKeyId(home.keyFile), oldId)
        assert.strictEqual(yield* fileKeyId(pendingKey(home)), plan.next.id)

        yield* Effect.scoped(Layer.build(Layers.storeLayer({ kind: "sqlite", paths: home.paths, env: {} })))
        assert.isFalse(Fs.existsSync(pendingKey(home)))
        assert.strictEqual(yield* fileKeyId(home.keyFile), plan.next.id)
        assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
      })
    )

    it.effect("killed while writing master.key.next: the temporary file is ignored, a later rotation works", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, {})
        Fs.writeFileSync(`${pendingKey(home)}.0011223344556677.tmp`, "half", { mode: 0o600 })
        assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
        yield* KeyRotation.rotate({ paths: home.paths, env: {}, newKey: unspecified })
        assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
        assert.isFalse(Fs.existsSync(pendingKey(home)))
      })
    )
  })

  describe("environment key", () => {
    const oldKey = base64Key(1)
    const newKey = base64Key(2)

    it.effect("--new-key-from-env: only the new key opens afterwards, and no file is written", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, { [ENV_MASTER_KEY]: oldKey })
        const result = yield* KeyRotation.rotate({
          paths: home.paths,
          env: { [ENV_MASTER_KEY]: oldKey, NEW_SB_KEY: newKey },
          newKey: { _tag: "FromEnv", name: "NEW_SB_KEY" }
        })
        assert.strictEqual(result.provider, "env")
        assert.strictEqual(result.rotated, 3)
        assert.strictEqual(result.key_id_new, (yield* Sodium.KeyProvider.fromEnv(Redacted.make(newKey))).id)
        assert.deepStrictEqual(Fs.readdirSync(home.paths.home), ["switchboard.db"])
        assert.deepStrictEqual(yield* readSecrets(home, { [ENV_MASTER_KEY]: newKey }), CANARY)
        yield* expectMismatch(home, { [ENV_MASTER_KEY]: oldKey })
      })
    )

    it.effect("--generate: the new key is handed over once, before the database commits to it", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, { [ENV_MASTER_KEY]: oldKey })
        const oldId = (yield* Sodium.KeyProvider.fromEnv(Redacted.make(oldKey))).id
        const announced: Array<{ key: string; databaseKeyId: string | undefined }> = []
        const announce = (key: Redacted.Redacted<string>) =>
          Effect.scoped(
            Effect.gen(function* () {
              const db = yield* Sqlite.Database.open({ filename: home.paths.database })
              const row = yield* db.get<{ key_id: string }>("SELECT key_id FROM meta WHERE key = 'key_check'")
              announced.push({ key: Redacted.value(key), databaseKeyId: row?.key_id })
            })
          ).pipe(Effect.orDie)
        const result = yield* KeyRotation.rotate({
          paths: home.paths,
          env: { [ENV_MASTER_KEY]: oldKey },
          newKey: { _tag: "Generate", announce }
        })
        assert.strictEqual(announced.length, 1)
        const [first] = announced
        assert.strictEqual(first?.databaseKeyId, oldId) // not committed yet when announced
        const key = first?.key ?? ""
        assert.strictEqual(result.key_id_new, (yield* Sodium.KeyProvider.fromEnv(Redacted.make(key))).id)
        assert.deepStrictEqual(yield* readSecrets(home, { [ENV_MASTER_KEY]: key }), CANARY)
        yield* expectMismatch(home, { [ENV_MASTER_KEY]: oldKey })
      })
    )
  })

  describe("passphrase", () => {
    const oldEnv = { [ENV_PASSPHRASE]: "correct horse battery" }
    const newEnv = { [ENV_PASSPHRASE]: "staple trombone ukulele" }
    const newPassphrase: KeyRotation.NewKey = { _tag: "Passphrase", passphrase: Redacted.make(newEnv[ENV_PASSPHRASE]) }

    it.effect("re-seals under the new passphrase and a fresh salt; the old passphrase opens nothing", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, oldEnv)
        const oldSalt = Fs.readFileSync(home.saltFile, "utf8")
        const result = yield* KeyRotation.rotate({
          paths: home.paths,
          env: oldEnv,
          newKey: newPassphrase,
          passphrase: fast
        })
        assert.strictEqual(result.provider, "passphrase")
        assert.strictEqual(result.rotated, 3)
        assert.notStrictEqual(Fs.readFileSync(home.saltFile, "utf8"), oldSalt)
        assert.deepStrictEqual(Fs.readdirSync(home.paths.home).sort(), ["master.salt", "switchboard.db"])
        assert.deepStrictEqual(yield* readSecrets(home, newEnv), CANARY)
        yield* expectMismatch(home, oldEnv)
      })
    )

    it.effect("killed after the commit: the new passphrase adopts the new salt, the old one changes nothing", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, oldEnv)
        const oldSalt = Fs.readFileSync(home.saltFile, "utf8")
        const plan = yield* KeyRotation.plan({
          paths: home.paths,
          env: oldEnv,
          newKey: newPassphrase,
          passphrase: fast
        })
        yield* KeyRotation.reseal(plan, home.paths.database)
        assert.isTrue(Fs.existsSync(pendingSalt(home)))

        // Someone still on the old passphrase: refused, and the pending salt stays for the right one.
        yield* expectMismatch(home, oldEnv)
        assert.isTrue(Fs.existsSync(pendingSalt(home)))
        assert.strictEqual(Fs.readFileSync(home.saltFile, "utf8"), oldSalt)

        assert.deepStrictEqual(yield* readSecrets(home, newEnv), CANARY)
        assert.isFalse(Fs.existsSync(pendingSalt(home)))
        assert.notStrictEqual(Fs.readFileSync(home.saltFile, "utf8"), oldSalt)
      })
    )

    it.effect("a rotation that fails midway keeps the old salt and passphrase", () =>
      Effect.gen(function* () {
        const home = fresh()
        yield* seed(home, oldEnv)
        const before = snapshot(home)
        yield* Effect.flip(
          KeyRotation.rotate(
            { paths: home.paths, env: oldEnv, newKey: newPassphrase, passphrase: fast },
            failingAt(3, injected)
          )
        )
        assert.isFalse(Fs.existsSync(pendingSalt(home)))
        assert.strictEqual(snapshot(home)["master.salt"], before["master.salt"])
        assert.deepStrictEqual(yield* readSecrets(home, oldEnv), CANARY)
        yield* expectMismatch(home, newEnv)
      })
    )
  })

  describe("refusals change nothing", () => {
    const refused = (home: Home, options: Omit<KeyRotation.Options, "paths">) =>
      Effect.gen(function* () {
        const before = snapshot(home)
        const error = yield* Effect.flip(KeyRotation.rotate({ paths: home.paths, ...options }))
        assert.deepStrictEqual(snapshot(home), before)
        return error
      })

    it.effect("a new key given the way another provider takes it, none at all, or the current one", () =>
      Effect.gen(function* () {
        const file = fresh()
        yield* seed(file, {})
        const viaEnv = yield* refused(file, { env: { X: base64Key(3) }, newKey: { _tag: "FromEnv", name: "X" } })
        assert.strictEqual(viaEnv._tag, "ValidationFailed")
        assert.include(viaEnv.message, "the key file")
        const generated = yield* refused(file, { env: {}, newKey: { _tag: "Generate", announce: () => Effect.void } })
        assert.strictEqual(generated._tag, "ValidationFailed")

        const env = fresh()
        const envVars = { [ENV_MASTER_KEY]: base64Key(1) }
        yield* seed(env, envVars)
        const none = yield* refused(env, { env: envVars, newKey: unspecified })
        assert.include(none.message, "--new-key-from-env NAME")
        const missing = yield* refused(env, { env: envVars, newKey: { _tag: "FromEnv", name: "NOT_SET_ANYWHERE" } })
        assert.include(missing.message, "NOT_SET_ANYWHERE is not set")
        const same = yield* refused(env, {
          env: { ...envVars, SAME: base64Key(1) },
          newKey: { _tag: "FromEnv", name: "SAME" }
        })
        assert.include(same.message, "the new key is the current key")
        const garbage = "not-a-key-but-a-secret-anyway"
        const bad = yield* refused(env, { env: { ...envVars, BAD: garbage }, newKey: { _tag: "FromEnv", name: "BAD" } })
        assert.strictEqual(bad._tag, "SealError")
        assert.include(bad.message, "BAD")
        assert.notInclude(JSON.stringify(bad), garbage)

        const pass = fresh()
        const passVars = { [ENV_PASSPHRASE]: "words" }
        yield* seed(pass, passVars)
        const empty = yield* refused(pass, {
          env: passVars,
          newKey: { _tag: "Passphrase", passphrase: Redacted.make("") },
          passphrase: fast
        })
        assert.include(empty.message, "empty")
        const notPassphrase = yield* refused(pass, { env: passVars, newKey: unspecified, passphrase: fast })
        assert.include(notPassphrase.message, "--new-passphrase-stdin")
      })
    )

    it.effect("no database, or the wrong key: nothing to rotate", () =>
      Effect.gen(function* () {
        const home = fresh()
        const missing = yield* refused(home, { env: {}, newKey: unspecified })
        assert.strictEqual(missing._tag, "StoreError")
        assert.include(missing.message, "nothing to rotate")
        assert.isFalse(Fs.existsSync(home.paths.database))

        const envVars = { [ENV_MASTER_KEY]: base64Key(1) }
        yield* seed(home, envVars)
        const wrong = yield* refused(home, {
          env: { [ENV_MASTER_KEY]: base64Key(5), NEXT: base64Key(6) },
          newKey: { _tag: "FromEnv", name: "NEXT" }
        })
        assert.strictEqual(wrong._tag, "SealError")
        assert.strictEqual((wrong as SealError).reason, "key_mismatch")
        assert.deepStrictEqual(yield* readSecrets(home, envVars), CANARY)
      })
    )
  })

  describe("databaseCheck", () => {
    it.effect("decides holding the write lock; a missing database has no check value and is not created", () =>
      Effect.gen(function* () {
        const home = fresh()
        const check = KeyRotation.databaseCheck(home.paths.database)
        assert.isUndefined(yield* check.locked((value) => Effect.succeed(value)))
        assert.isFalse(Fs.existsSync(home.paths.database))

        yield* seed(home, {})
        const keyId = yield* fileKeyId(home.keyFile)
        const seen = yield* check.locked((value) =>
          Effect.scoped(
            Effect.gen(function* () {
              const other = yield* Sqlite.Database.open({ filename: home.paths.database })
              yield* other.pragma("busy_timeout = 0")
              const busy = yield* Effect.flip(other.exec("BEGIN IMMEDIATE"))
              return { keyId: value?.keyId, busy: busy.message }
            })
          ).pipe(Effect.orDie)
        )
        assert.strictEqual(seen.keyId, keyId)
        assert.include(seen.busy, "SQLITE_BUSY")
      })
    )
  })
})
