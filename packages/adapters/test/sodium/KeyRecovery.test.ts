/**
 * Settling the pending key and salt files `key rotate` leaves (`master.key.next`, `master.salt.next`): against a
 * check value standing in for the database, the pending file is removed when the current key is proved, renamed
 * into place when its own key is, and left alone when neither is; always under the check's lock, and never
 * without one. `writePending` writes whole, private, durable files.
 */
import { assert, describe, it } from "@effect/vitest"
import type { SealError } from "@switchboard/core/Errors"
import type { MasterKey } from "@switchboard/core/KeyProvider"
import type { Sealed } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { KeyProvider, Sealer } from "../../src/sodium/index.ts"

const tempHome = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-recovery-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const fast = { opsLimit: 1, memLimit: 8192 }
const bytes = (fill: number, size = 32) => new Uint8Array(size).fill(fill)
const base64 = (data: Uint8Array) => `${Buffer.from(data).toString("base64")}\n`
const write = (path: string, data: Uint8Array) => Fs.writeFileSync(path, base64(data), { mode: 0o600 })
const read = (path: string) => Buffer.from(Fs.readFileSync(path, "utf8").trim(), "base64")
const modeOf = (path: string) => Fs.statSync(path).mode & 0o777

const checkValueOf = (key: MasterKey) =>
  Effect.flatMap(Sealer.fromMasterKey(key), (sealer) => Sealer.makeCheckValue(sealer))

const fileKey = (data: Uint8Array) => KeyProvider.makeMasterKey(data, "file")

/** A stand-in for the database: its check value, and a log of when the lock was held. */
const fakeCheck = (value: Sealed | undefined) => {
  const log: Array<string> = []
  let held = false
  const check: KeyProvider.KeyCheck = {
    locked: (decide) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          held = true
          log.push("lock")
        }),
        () => decide(value),
        () =>
          Effect.sync(() => {
            held = false
            log.push("unlock")
          })
      )
  }
  return { check, log, isHeld: () => held }
}

const expectReason = (error: SealError, reason: SealError["reason"]) => assert.strictEqual(error.reason, reason)

describe("settling a pending key file", () => {
  it.effect("nothing pending: the key file is used and the database is not asked", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      write(Path.join(home, KeyProvider.KEY_FILE), bytes(1))
      const fake = fakeCheck(yield* checkValueOf(yield* fileKey(bytes(1))))
      const key = yield* KeyProvider.fromConfig({ home, env: {}, check: fake.check })
      assert.strictEqual(key.id, (yield* fileKey(bytes(1))).id)
      assert.deepStrictEqual(fake.log, [])
      assert.strictEqual(yield* KeyProvider.settle({ home, env: {}, check: fake.check }), "none")
    })
  )

  it.effect("the database still opens with the current key: the pending file is a leftover and is removed", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const current = Path.join(home, KeyProvider.KEY_FILE)
      const pending = Path.join(home, KeyProvider.KEY_FILE_NEXT)
      write(current, bytes(1))
      write(pending, bytes(2))
      const fake = fakeCheck(yield* checkValueOf(yield* fileKey(bytes(1))))
      const key = yield* KeyProvider.fromConfig({ home, env: {}, check: fake.check })
      assert.strictEqual(key.id, (yield* fileKey(bytes(1))).id)
      assert.isFalse(Fs.existsSync(pending))
      assert.deepStrictEqual(read(current), Buffer.from(bytes(1)))
      assert.deepStrictEqual(fake.log, ["lock", "unlock"])
    })
  )

  it.effect("the database opens with the pending key: it is moved into place, under the lock", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const current = Path.join(home, KeyProvider.KEY_FILE)
      const pending = Path.join(home, KeyProvider.KEY_FILE_NEXT)
      write(current, bytes(1))
      write(pending, bytes(2))
      const fake = fakeCheck(yield* checkValueOf(yield* fileKey(bytes(2))))
      let renamedWhileHeld = false
      const watching: KeyProvider.KeyCheck = {
        locked: (decide) =>
          fake.check.locked((value) =>
            Effect.tap(decide(value), () =>
              Effect.sync(() => {
                renamedWhileHeld = fake.isHeld() && !Fs.existsSync(pending)
              })
            )
          )
      }
      const key = yield* KeyProvider.fromConfig({ home, env: {}, check: watching })
      assert.strictEqual(key.id, (yield* fileKey(bytes(2))).id)
      assert.strictEqual(key.source, "file")
      assert.isTrue(renamedWhileHeld)
      assert.isFalse(Fs.existsSync(pending))
      assert.deepStrictEqual(read(current), Buffer.from(bytes(2)))
      assert.strictEqual(modeOf(current), 0o600)
      // Settled once; the next open has nothing to do.
      assert.strictEqual(yield* KeyProvider.settle({ home, env: {}, check: fake.check }), "none")
    })
  )

  it.effect("neither key proved (a wrong key, or no check value yet): nothing changes", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const current = Path.join(home, KeyProvider.KEY_FILE)
      const pending = Path.join(home, KeyProvider.KEY_FILE_NEXT)
      write(current, bytes(1))
      write(pending, bytes(2))
      for (const value of [yield* checkValueOf(yield* fileKey(bytes(3))), undefined]) {
        const fake = fakeCheck(value)
        assert.strictEqual(yield* KeyProvider.settle({ home, env: {}, check: fake.check }), "undecided")
        const key = yield* KeyProvider.fromConfig({ home, env: {}, check: fake.check })
        assert.strictEqual(key.id, (yield* fileKey(bytes(1))).id)
        assert.deepStrictEqual(read(current), Buffer.from(bytes(1)))
        assert.deepStrictEqual(read(pending), Buffer.from(bytes(2)))
      }
    })
  )

  it.effect("a check value with the right key id that does not open proves nothing", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      write(Path.join(home, KeyProvider.KEY_FILE), bytes(1))
      write(Path.join(home, KeyProvider.KEY_FILE_NEXT), bytes(2))
      const real = yield* checkValueOf(yield* fileKey(bytes(2)))
      const tampered = Uint8Array.from(real.bytes)
      tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1
      const fake = fakeCheck({ keyId: real.keyId, bytes: tampered })
      assert.strictEqual(yield* KeyProvider.settle({ home, env: {}, check: fake.check }), "undecided")
      assert.isTrue(Fs.existsSync(Path.join(home, KeyProvider.KEY_FILE_NEXT)))
    })
  )

  it.effect("without a check, or with an environment key, pending files are never touched", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      write(Path.join(home, KeyProvider.KEY_FILE), bytes(1))
      write(Path.join(home, KeyProvider.KEY_FILE_NEXT), bytes(2))
      const key = yield* KeyProvider.fromConfig({ home, env: {} })
      assert.strictEqual(key.id, (yield* fileKey(bytes(1))).id)
      const fake = fakeCheck(yield* checkValueOf(yield* fileKey(bytes(2))))
      const env = { [KeyProvider.ENV_MASTER_KEY]: base64(bytes(4)) }
      const fromEnv = yield* KeyProvider.fromConfig({ home, env, check: fake.check })
      assert.strictEqual(fromEnv.source, "env")
      assert.strictEqual(yield* KeyProvider.settle({ home, env, check: fake.check }), "none")
      assert.deepStrictEqual(fake.log, [])
      assert.isTrue(Fs.existsSync(Path.join(home, KeyProvider.KEY_FILE_NEXT)))
    })
  )

  it.effect("a pending file with a wide mode is refused, not adopted", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      write(Path.join(home, KeyProvider.KEY_FILE), bytes(1))
      const pending = Path.join(home, KeyProvider.KEY_FILE_NEXT)
      write(pending, bytes(2))
      Fs.chmodSync(pending, 0o644)
      const fake = fakeCheck(yield* checkValueOf(yield* fileKey(bytes(2))))
      const error = yield* Effect.flip(KeyProvider.fromConfig({ home, env: {}, check: fake.check }))
      expectReason(error, "key_invalid")
      assert.include(error.message, KeyProvider.KEY_FILE_NEXT)
      assert.deepStrictEqual(read(Path.join(home, KeyProvider.KEY_FILE)), Buffer.from(bytes(1)))
    })
  )
})

describe("settling a pending salt file", () => {
  const passphraseKey = (passphrase: string, salt: Uint8Array) =>
    KeyProvider.fromPassphrase(Redacted.make(passphrase), salt, fast)

  it.effect("adopts the new salt only with the new passphrase; the old one changes nothing", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const current = Path.join(home, KeyProvider.SALT_FILE)
      const pending = Path.join(home, KeyProvider.SALT_FILE_NEXT)
      const oldSalt = bytes(7, KeyProvider.SALT_BYTES)
      const newSalt = bytes(8, KeyProvider.SALT_BYTES)
      write(current, oldSalt)
      write(pending, newSalt)
      const next = yield* passphraseKey("new words", newSalt)
      const fake = fakeCheck(yield* checkValueOf(next))
      const config = (passphrase: string) => ({
        home,
        env: { [KeyProvider.ENV_PASSPHRASE]: passphrase },
        passphrase: fast,
        check: fake.check
      })

      // The old passphrase proves neither salt: the key it gives is the old one, and the files stay.
      const old = yield* KeyProvider.fromConfig(config("old words"))
      assert.strictEqual(old.id, (yield* passphraseKey("old words", oldSalt)).id)
      assert.isTrue(Fs.existsSync(pending))

      const key = yield* KeyProvider.fromConfig(config("new words"))
      assert.strictEqual(key.id, next.id)
      assert.strictEqual(key.source, "passphrase")
      assert.isFalse(Fs.existsSync(pending))
      assert.deepStrictEqual(read(current), Buffer.from(newSalt))
    })
  )

  it.effect("removes a leftover salt when the database still opens with the current one", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const salt = bytes(7, KeyProvider.SALT_BYTES)
      write(Path.join(home, KeyProvider.SALT_FILE), salt)
      write(Path.join(home, KeyProvider.SALT_FILE_NEXT), bytes(8, KeyProvider.SALT_BYTES))
      const fake = fakeCheck(yield* checkValueOf(yield* passphraseKey("words", salt)))
      const env = { [KeyProvider.ENV_PASSPHRASE]: "words" }
      assert.strictEqual(yield* KeyProvider.settle({ home, env, passphrase: fast, check: fake.check }), "discarded")
      assert.isFalse(Fs.existsSync(Path.join(home, KeyProvider.SALT_FILE_NEXT)))
    })
  )
})

describe("writePending", () => {
  it.effect("writes a private, whole file beside the current one, replacing a leftover, with no temporary left", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const current = Path.join(home, KeyProvider.KEY_FILE)
      write(current, bytes(1))
      yield* KeyProvider.writePending(current, bytes(2))
      const pending = Path.join(home, KeyProvider.KEY_FILE_NEXT)
      assert.deepStrictEqual(read(pending), Buffer.from(bytes(2)))
      assert.strictEqual(modeOf(pending), 0o600)
      yield* KeyProvider.writePending(current, bytes(3))
      assert.deepStrictEqual(read(pending), Buffer.from(bytes(3)))
      assert.deepStrictEqual(Fs.readdirSync(home).sort(), [KeyProvider.KEY_FILE, KeyProvider.KEY_FILE_NEXT])
      // What it wrote is what the key file provider reads.
      const adopted = yield* KeyProvider.fromFile(pending)
      assert.strictEqual(adopted.id, (yield* fileKey(bytes(3))).id)
    })
  )

  it.effect("toBase64 gives what SWITCHBOARD_MASTER_KEY takes; generate gives a fresh key each time", () =>
    Effect.gen(function* () {
      const key = yield* KeyProvider.generate("env")
      const again = yield* KeyProvider.generate("env")
      assert.notStrictEqual(key.id, again.id)
      const text = yield* KeyProvider.toBase64(key)
      const parsed = yield* KeyProvider.fromEnv(text)
      assert.strictEqual(parsed.id, key.id)
      assert.strictEqual(KeyProvider.sourceOf({}), "file")
      assert.strictEqual(KeyProvider.sourceOf({ [KeyProvider.ENV_PASSPHRASE]: "x" }), "passphrase")
      assert.strictEqual(
        KeyProvider.sourceOf({ [KeyProvider.ENV_PASSPHRASE]: "x", [KeyProvider.ENV_MASTER_KEY]: "y" }),
        "env"
      )
      assert.strictEqual(KeyProvider.sourceOf({ [KeyProvider.ENV_MASTER_KEY]: "" }), "file")
    })
  )
})
