/**
 * The key providers against real libsodium and real files under the OS temp directory: environment keys,
 * the key file's creation and its refusals, passphrases, and the precedence of `layerConfig`.
 */
import { assert, describe, it } from "@effect/vitest"
import type { SealError } from "@switchboard/core/Errors"
import { KeyProvider as KeyProviderPort, type MasterKey } from "@switchboard/core/KeyProvider"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"
import * as Util from "node:util"
import { KeyProvider } from "../../src/sodium/index.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-sodium-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const masterKeyOf = (layer: Layer.Layer<KeyProviderPort>) =>
  KeyProviderPort.use((provider) => provider.masterKey).pipe(Effect.provide(layer))

const failureOf = (layer: Layer.Layer<KeyProviderPort>) => Effect.flip(masterKeyOf(layer))

const expectReason = (error: SealError, reason: SealError["reason"]) => {
  assert.strictEqual(error._tag, "SealError")
  assert.strictEqual(error.reason, reason)
}

const bytes = (fill: number, size = 32) => new Uint8Array(size).fill(fill)
const base64 = (data: Uint8Array) => Buffer.from(data).toString("base64")
const base64url = (data: Uint8Array) => Buffer.from(data).toString("base64url")
const modeOf = (path: string) => Fs.statSync(path).mode & 0o777

// Derived keys are compared by id: the id is a fingerprint of the key.
const idOf = (key: Uint8Array) => Effect.map(masterKeyOf(KeyProvider.layerMemory(key)), (master) => master.id)

const fast = { opsLimit: 1, memLimit: 8192 }

const execFile = Util.promisify(ChildProcess.execFile)

const adaptersRoot = Url.fileURLToPath(new URL("../../", import.meta.url))
const keyProviderSource = Path.join(adaptersRoot, "src", "sodium", "KeyProvider.ts")

const keyFileIn = (dir: string) => Path.join(dir, "data", KeyProvider.KEY_FILE)

const writeKeyFile = (path: string, content: string, mode: number) => {
  Fs.mkdirSync(Path.dirname(path), { recursive: true, mode: 0o700 })
  Fs.writeFileSync(path, content, { mode })
  Fs.chmodSync(path, mode)
}

describe("sodium KeyProvider", () => {
  describe("layerEnv", () => {
    it.effect("reads 32 bytes of standard or url-safe base64, padded or not", () =>
      Effect.gen(function* () {
        const raw = Uint8Array.from({ length: 32 }, (_, i) => 250 - i) // has + and / in standard base64
        const expected = yield* idOf(raw)
        const variants = [
          base64(raw),
          base64(raw).replace(/=+$/, ""),
          base64url(raw),
          `${base64url(raw)}=`,
          ` ${base64(raw)}\n`
        ]
        for (const text of variants) {
          const master = yield* masterKeyOf(KeyProvider.layerEnv(Redacted.make(text)))
          assert.strictEqual(master.id, expected, text)
          assert.strictEqual(master.source, "env")
          assert.deepStrictEqual(Redacted.value(master.key), raw)
        }
      })
    )

    it.effect("refuses bad base64 and wrong lengths without echoing the value", () =>
      Effect.gen(function* () {
        const bad = [
          "not base64 at all!",
          "c2VjcmV0LXZhbHVl*",
          base64(bytes(9, 16)),
          base64(bytes(9, 33)),
          base64(bytes(9, 31)),
          "",
          "QUJD=A"
        ]
        for (const value of bad) {
          const error = yield* failureOf(KeyProvider.layerEnv(Redacted.make(value)))
          expectReason(error, "key_invalid")
          assert.include(error.message, KeyProvider.ENV_MASTER_KEY)
          if (value.trim() !== "") {
            assert.notInclude(error.message, value)
            assert.notInclude(String(error), value)
            assert.notInclude(JSON.stringify(error), value)
          }
        }
      })
    )
  })

  describe("layerFile", () => {
    it.effect("creates the key file 0600 (and its directory 0700) on first run, then reuses it", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const path = keyFileIn(dir)
        const first = yield* masterKeyOf(KeyProvider.layerFile(path))
        assert.strictEqual(first.source, "file")
        assert.strictEqual(modeOf(path), 0o600)
        assert.strictEqual(modeOf(Path.dirname(path)), 0o700)
        assert.isTrue(Fs.lstatSync(path).isFile())
        assert.strictEqual(Buffer.from(Fs.readFileSync(path, "utf8").trim(), "base64").length, 32)
        assert.deepStrictEqual(Fs.readdirSync(Path.dirname(path)), [KeyProvider.KEY_FILE]) // no temporary left

        const second = yield* masterKeyOf(KeyProvider.layerFile(path))
        assert.strictEqual(second.id, first.id)
        assert.deepStrictEqual(Redacted.value(second.key), Redacted.value(first.key))
      })
    )

    it.live(
      "gives every process racing to create it the same key",
      () =>
        Effect.gen(function* () {
          const dir = yield* tempDir
          const path = keyFileIn(dir)
          const script = [
            `import * as Effect from "effect/Effect"`,
            `import { fromFile } from ${JSON.stringify(Url.pathToFileURL(keyProviderSource).href)}`,
            `const key = await Effect.runPromise(fromFile(process.argv[1]))`,
            `process.stdout.write(key.id)`
          ].join("\n")
          const run = () =>
            Effect.promise(() =>
              execFile(process.execPath, ["--input-type=module", "-e", script, path], { cwd: adaptersRoot })
            ).pipe(Effect.map((result) => result.stdout))
          const ids = yield* Effect.all(Array.from({ length: 6 }, run), { concurrency: "unbounded" })
          assert.strictEqual(ids.length, 6)
          assert.match(ids[0]!, /^[0-9a-f]{16}$/)
          assert.strictEqual(new Set(ids).size, 1)
          const again = yield* masterKeyOf(KeyProvider.layerFile(path))
          assert.strictEqual(again.id, ids[0])
          assert.deepStrictEqual(Fs.readdirSync(Path.dirname(path)), [KeyProvider.KEY_FILE])
        }),
      30_000
    )

    it.effect("reads an existing key file", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const path = keyFileIn(dir)
        writeKeyFile(path, `${base64(bytes(5))}\n`, 0o600)
        const master = yield* masterKeyOf(KeyProvider.layerFile(path))
        assert.strictEqual(master.id, yield* idOf(bytes(5)))
      })
    )

    it.effect("refuses a key file other users can read", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const path = keyFileIn(dir)
        for (const mode of [0o644, 0o640, 0o604, 0o660]) {
          writeKeyFile(path, base64(bytes(5)), mode)
          const error = yield* failureOf(KeyProvider.layerFile(path))
          expectReason(error, "key_invalid")
          assert.include(error.message, `0${mode.toString(8)}`)
          assert.include(error.message, "chmod 600")
        }
      })
    )

    it.effect("refuses a symbolic link, even to a good key file", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const target = Path.join(dir, "real.key")
        writeKeyFile(target, base64(bytes(5)), 0o600)
        const path = keyFileIn(dir)
        Fs.mkdirSync(Path.dirname(path), { recursive: true })
        Fs.symlinkSync(target, path)
        const error = yield* failureOf(KeyProvider.layerFile(path))
        expectReason(error, "key_invalid")
        assert.include(error.message, "symbolic link")
      })
    )

    it.effect("refuses a directory and a FIFO without blocking", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const path = keyFileIn(dir)
        Fs.mkdirSync(path, { recursive: true, mode: 0o700 })
        expectReason(yield* failureOf(KeyProvider.layerFile(path)), "key_invalid")
        const fifo = Path.join(dir, "fifo.key")
        ChildProcess.execFileSync("mkfifo", ["-m", "600", fifo])
        const error = yield* failureOf(KeyProvider.layerFile(fifo))
        expectReason(error, "key_invalid")
        assert.include(error.message, "not a regular file")
      })
    )

    it.effect("refuses bad content without echoing it", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const path = keyFileIn(dir)
        for (const content of ["hunter2-not-a-key", base64(bytes(5, 16)), "", "x".repeat(4096)]) {
          writeKeyFile(path, content, 0o600)
          const error = yield* failureOf(KeyProvider.layerFile(path))
          expectReason(error, "key_invalid")
          if (content !== "") assert.notInclude(error.message, content)
        }
      })
    )
  })

  describe("layerPassphrase", () => {
    const salt = bytes(1, 16)

    it.effect("gives the same key for the same salt, another for another salt", () =>
      Effect.gen(function* () {
        const derive = (passphrase: string, s: Uint8Array) =>
          masterKeyOf(KeyProvider.layerPassphrase(Redacted.make(passphrase), s, fast))
        const a = yield* derive("correct horse battery staple", salt)
        const again = yield* derive("correct horse battery staple", salt)
        const otherSalt = yield* derive("correct horse battery staple", bytes(2, 16))
        const otherPassphrase = yield* derive("correct horse battery stapler", salt)
        assert.strictEqual(a.source, "passphrase")
        assert.strictEqual(a.id, again.id)
        assert.notStrictEqual(a.id, otherSalt.id)
        assert.notStrictEqual(a.id, otherPassphrase.id)
        // NFC: a precomposed and a decomposed "é" are the same passphrase.
        const composed = yield* derive("caf\u00e9", salt)
        const decomposed = yield* derive("cafe\u0301", salt)
        assert.strictEqual(composed.id, decomposed.id)
      })
    )

    it.effect("refuses an empty passphrase and a salt of the wrong size", () =>
      Effect.gen(function* () {
        expectReason(yield* failureOf(KeyProvider.layerPassphrase(Redacted.make(""), salt, fast)), "key_invalid")
        const short = yield* failureOf(KeyProvider.layerPassphrase(Redacted.make("pw"), bytes(1, 8), fast))
        expectReason(short, "key_invalid")
      })
    )
  })

  describe("layerConfig", () => {
    const envKey = base64(bytes(42))

    it.effect("prefers SWITCHBOARD_MASTER_KEY over the passphrase and the key file", () =>
      Effect.gen(function* () {
        const home = yield* tempDir
        const env = { SWITCHBOARD_MASTER_KEY: envKey, SWITCHBOARD_PASSPHRASE: "pw" }
        const master = yield* masterKeyOf(KeyProvider.layerConfig({ home, env, passphrase: fast }))
        assert.strictEqual(master.source, "env")
        assert.strictEqual(master.id, yield* idOf(bytes(42)))
        assert.deepStrictEqual(Fs.readdirSync(home), []) // nothing written
      })
    )

    it.effect("uses the passphrase next, with a salt file created beside it", () =>
      Effect.gen(function* () {
        const home = yield* tempDir
        const env = { SWITCHBOARD_MASTER_KEY: "", SWITCHBOARD_PASSPHRASE: "pw" }
        const first = yield* masterKeyOf(KeyProvider.layerConfig({ home, env, passphrase: fast }))
        assert.strictEqual(first.source, "passphrase")
        assert.deepStrictEqual(Fs.readdirSync(home), [KeyProvider.SALT_FILE])
        const saltPath = Path.join(home, KeyProvider.SALT_FILE)
        assert.strictEqual(modeOf(saltPath), 0o600)
        assert.strictEqual(Buffer.from(Fs.readFileSync(saltPath, "utf8").trim(), "base64").length, 16)
        const second = yield* masterKeyOf(KeyProvider.layerConfig({ home, env, passphrase: fast }))
        assert.strictEqual(second.id, first.id)
        const otherHome = yield* tempDir
        const elsewhere = yield* masterKeyOf(KeyProvider.layerConfig({ home: otherHome, env, passphrase: fast }))
        assert.notStrictEqual(elsewhere.id, first.id) // another salt
      })
    )

    it.effect("falls back to the key file in the data directory", () =>
      Effect.gen(function* () {
        const root = yield* tempDir
        const home = Path.join(root, "switchboard")
        const master = yield* masterKeyOf(KeyProvider.layerConfig({ home, env: {} }))
        assert.strictEqual(master.source, "file")
        assert.strictEqual(modeOf(home), 0o700)
        assert.strictEqual(modeOf(Path.join(home, KeyProvider.KEY_FILE)), 0o600)
        const again = yield* masterKeyOf(KeyProvider.layerConfig({ home, env: { SWITCHBOARD_PASSPHRASE: "" } }))
        assert.strictEqual(again.id, master.id)
      })
    )
  })

  describe("layerMemory", () => {
    it.effect("keeps one random key per layer, or the key it is given", () =>
      Effect.gen(function* () {
        const layer = KeyProvider.layerMemory()
        const [a, b]: ReadonlyArray<MasterKey> = yield* Effect.provide(
          Effect.flatMap(Effect.service(KeyProviderPort), (provider) =>
            Effect.all([provider.masterKey, provider.masterKey])
          ),
          layer
        )
        assert.strictEqual(a.id, b.id)
        assert.strictEqual(a.source, "memory")
        const other = yield* masterKeyOf(KeyProvider.layerMemory())
        assert.notStrictEqual(other.id, a.id)
        expectReason(yield* failureOf(KeyProvider.layerMemory(bytes(1, 16))), "key_invalid")
      })
    )
  })
})
